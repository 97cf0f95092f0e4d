"""Datasets uploaded from browsers: checked away from the web server, stored per session, within quotas.

An upload (.zip of class folders, or .npz) is decoded in a child process with
a memory ceiling and a time limit, so a hostile file costs that child, never
the server. What is kept is the decoded dataset as a .npz under

    <uploads>/<owner folder>/<name>-<hash of the bytes>.npz

where the owner folder is a hash of the browser session's id (the same bytes
from the same session give the same file). Each session may keep up to
`settings.upload_quota_mb` and all uploads together `settings.uploads_total_mb`;
with private runs on, a session lists only its own uploads. Uploads saved by
earlier versions, directly in the uploads folder, are listed for everyone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from playground.child_process import ChildFailed, run_in_child
from playground.data.dataset import DatasetError
from playground.settings import get_settings

UPLOAD_SUFFIXES = (".zip", ".npz")  # what an upload may be
DECODE_TIMEOUT_S = 300.0  # an upload still decoding after this is refused
_PARTIAL = ".part"  # suffix of files being written (save_npz)


@dataclass(frozen=True)
class Upload:
    """One stored upload."""

    path: Path  # the decoded dataset (.npz): what `spec.data.dataset` names
    label: str  # what people read: the original file name's stem
    size: int  # bytes on disk
    mine: bool  # stored by the asking session


def import_upload(data: bytes, name: str, *, owner: str | None = None) -> Path:
    """Check an uploaded .zip or .npz and keep it as a dataset of `owner`.

    Args:
        data: the file's bytes.
        name: the uploaded file's name (its suffix says what it is; used in messages and the saved name).
        owner: the browser session; None stores it for everyone (not done by the app).

    Returns:
        Path of the stored .npz, to use as `spec.data.dataset`. The same bytes
        from the same owner give the same path.

    Raises:
        DatasetError: one sentence: wrong type, too large, over a quota, unsafe or unusable.
    """
    settings = get_settings()
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise DatasetError(f"{name} is not a .zip or .npz; zip a folder with one sub-folder per class and upload that.")
    if len(data) > settings.max_upload_mb * 1024**2:
        raise DatasetError(f"{name} is {len(data) / 1024**2:.0f} MB, over the upload limit of {settings.max_upload_mb} MB.")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")[:40] or "upload"
    target = _owner_dir(owner) / f"{stem}-{hashlib.sha256(bytes(data)).hexdigest()[:12]}.npz"
    if target.is_file():
        return target
    _check_room(owner, incoming=len(data))
    # The child decodes within a memory ceiling of a few times the largest dataset allowed.
    memory_mb = 4 * settings.max_dataset_mb + settings.max_upload_mb + 1024
    try:
        run_in_child(_decode_and_save, bytes(data), name, str(target), timeout=DECODE_TIMEOUT_S, memory_mb=memory_mb)
    except ChildFailed as exc:
        raise DatasetError(f"{name} could not be read: {exc}; use a smaller dataset.") from None
    _check_room(owner, incoming=0, just_saved=target)
    return target


def list_uploads(owner: str | None) -> list[Upload]:
    """The uploads a session may choose, newest first.

    With `settings.private_runs` a session sees its own uploads (and those of
    earlier versions, kept directly in the uploads folder); otherwise everyone's.
    """
    settings = get_settings()
    root = settings.uploads_dir
    if not root.is_dir():
        return []
    mine = _owner_dir(owner)
    folders = [root, mine] if settings.private_runs else [root, *(p for p in root.iterdir() if p.is_dir())]
    uploads = []
    for folder in dict.fromkeys(folders):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.suffix == ".npz" and path.is_file():
                info = path.stat()
                label = re.sub(r"-[0-9a-f]{12}$", "", path.stem)
                uploads.append((info.st_mtime, Upload(path.resolve(), label, info.st_size, folder == mine)))
    return [u for _, u in sorted(uploads, key=lambda pair: (-pair[0], str(pair[1].path)))]


def clear_uploads(older_than_days: float) -> tuple[int, int]:
    """Delete uploads not changed for `older_than_days` (the teacher's clean-up).

    Returns:
        (files deleted, bytes freed).
    """
    root = get_settings().uploads_dir
    cutoff = time.time() - older_than_days * 86400
    count = freed = 0
    if not root.is_dir():
        return 0, 0
    for path in sorted(root.rglob("*.npz")):
        info = path.stat()
        if info.st_mtime <= cutoff:
            path.unlink(missing_ok=True)
            count, freed = count + 1, freed + info.st_size
    for folder in root.iterdir():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return count, freed


def sweep_partial_files(min_age_s: float = 600.0) -> int:
    """Delete files left half-written by a process that died while saving (older than `min_age_s`).

    Returns:
        How many were deleted.
    """
    data_dir = get_settings().data_dir
    cutoff = time.time() - min_age_s
    count = 0
    for folder in (data_dir / "uploads", data_dir / "cache"):
        if not folder.is_dir():
            continue
        for path in folder.rglob(f"*{_PARTIAL}"):
            if path.is_file() and path.stat().st_mtime <= cutoff:
                path.unlink(missing_ok=True)
                count += 1
    return count


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (0 when it does not exist); what vanishes while counting counts 0."""
    total = 0
    for parent, _, files in os.walk(folder):  # (os.walk skips folders it cannot read, and symlinked ones)
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def _decode_and_save(data: bytes, name: str, target: str) -> str:
    """In the child: read the upload with the dataset readers and store it as .npz."""
    from playground.data.folders import read_image_zip
    from playground.data.npz import read_npz, save_npz

    ds = read_image_zip(data, name) if name.lower().endswith(".zip") else read_npz(data, name)
    return str(save_npz(ds, Path(target)))


def _owner_dir(owner: str | None) -> Path:
    root = get_settings().uploads_dir
    if owner is None:
        return root
    return root / hashlib.sha256(owner.encode()).hexdigest()[:16]


def _check_room(owner: str | None, incoming: int, just_saved: Path | None = None) -> None:
    """Refuse an upload that would take a session, or all uploads, over their quota.

    Before decoding, `incoming` (the upload's size) is weighed; after, the stored
    file itself, which is removed again when it does not fit.
    """
    settings = get_settings()
    checks = [(settings.uploads_total_mb, folder_bytes(settings.uploads_dir), "all uploads on this server")]
    if owner is not None:
        checks.insert(0, (settings.upload_quota_mb, folder_bytes(_owner_dir(owner)), "your uploads"))
    for limit_mb, used, whose in checks:
        if used + incoming > limit_mb * 1024**2:
            if just_saved is not None:
                just_saved.unlink(missing_ok=True)
            raise DatasetError(
                f"There is no room for this upload: {whose} would take more than {limit_mb:,} MB; "
                "delete older uploads (or ask the teacher to clear them) first."
            )


def delete_upload(path: Path, owner: str | None) -> None:
    """Delete one of `owner`'s uploads.

    Raises:
        DatasetError: when `path` is not an upload of `owner`.
    """
    folder = _owner_dir(owner).resolve()
    path = Path(path).resolve()
    if path.parent != folder or path.suffix != ".npz" or not path.is_file():
        raise DatasetError(f"{path.name} is not one of your uploads, so it was not deleted.")
    path.unlink()
    if folder != get_settings().uploads_dir.resolve() and not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
