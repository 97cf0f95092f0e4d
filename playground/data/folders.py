"""Your own data: a folder or .zip of class sub-folders (a .npz of arrays: `npz_datasets`).

Folder and zip layout (as Keras' `image_dataset_from_directory` reads it):

    <root>/<class>/<image>              one sub-folder per class
    <root>/train/<class>/<image>        or train/ and test/ (or val/) splits
    <root>/test/<class>/<image>

A single wrapping folder (what zipping a folder produces) is looked through.
Hidden files and `__MACOSX` are ignored; other files that are not images are
skipped and counted. Without a test folder, 20% of each class is held out for
testing with a fixed seed, so every run on the dataset is scored on the same
images. A val/ folder is the test split when there is no test/ folder, and
joins the training images when there is one (validation is drawn later).

Images of other sizes are resized to the most common size, capped at 64x64
by default so training stays fast on a CPU; the dataset is gray when every
image is gray, RGB otherwise.

A decoded folder or archive is cached as a .npz under `<data dir>/cache/`.

Zip archives are read in memory, never extracted, and refused when an entry
points outside the archive (../, absolute paths, symlinks), when they hold
too many files or too many uncompressed bytes, or when an entry is
compressed suspiciously well (a zip bomb).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import logging
import os
import stat
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from playground.data.dataset import MAX_CLASSES, Dataset, DatasetError, stratified_holdout
from playground.data.images import ImageError, read_image, read_size
from playground.data.npz import read_npz, save_npz
from playground.settings import get_settings

log = logging.getLogger(__name__)

MAX_FILES = 200_000  # files in one folder or archive
MAX_TOTAL_BYTES = 4 * 1024**3  # uncompressed bytes in one folder or archive
MAX_FILE_BYTES = 64 * 1024**2  # larger single files are skipped
MAX_COMPRESSION_RATIO = 100  # an entry over 1 MiB expanding more than this is a zip bomb
MAX_IMAGE_SIDE = 64  # the common image size is scaled down to fit this square
TEST_FRACTION = 0.2  # share of each class held out for testing when there is no test folder
SPLIT_SEED = 0  # fixed, so the test images do not change with the experiment seed
CACHE_VERSION = "1"  # bump when decoding changes, so old cached conversions are not reused

_TRAIN_NAMES = {"train", "training"}
_TEST_NAMES = {"test", "testing"}
_VAL_NAMES = {"val", "valid", "validation"}
_IGNORED_DIRS = {"__MACOSX", "__pycache__"}
_BATCH = 1024  # images read or decoded at a time: bounds the memory of decoded images in flight
# What reading one member may raise when it is not an image or the archive member is damaged: skipped and counted.
_UNREADABLE = (ImageError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class _Entry:
    """One file of a folder or archive: its path parts below the root and how to read it."""

    parts: tuple[str, ...]
    read: Callable[[], bytes]


# ---------------------------------------------------------------------------
# Folders and zip archives of images.
# ---------------------------------------------------------------------------


def read_image_folder(path: Path, *, max_side: int = MAX_IMAGE_SIDE) -> Dataset:
    """Read a folder of class sub-folders (see the module docstring for the layout).

    The decoded dataset is kept as a .npz under the data folder's cache/,
    keyed by every file's path, size and modification time, so the next
    process (a training worker, the CLI) reads it in a fraction of a second.
    """
    entries: list[_Entry] = []
    skipped = 0
    total = 0
    listing = hashlib.sha256(f"{CACHE_VERSION}\0{path}\0{max_side}\n".encode())
    for parts, item in _walk(str(path), ()):
        if len(entries) + skipped >= MAX_FILES:
            raise DatasetError(f"{path} holds more than {MAX_FILES:,} files; use a smaller dataset.")
        info = item.stat()
        total += info.st_size
        if total > MAX_TOTAL_BYTES:
            raise DatasetError(f"{path} holds more than {MAX_TOTAL_BYTES / 1024**3:g} GiB of files; use a smaller dataset.")
        listing.update(f"{'/'.join(parts)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        if info.st_size > MAX_FILE_BYTES:
            skipped += 1
            continue
        entries.append(_Entry(parts, functools.partial(_read_file, item.path)))
    name = path.name or str(path)
    return _cached_build(listing.hexdigest(), name, str(path), lambda: _build(entries, name=name, source=str(path), skipped=skipped, max_side=max_side))


def _walk(folder: str, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], os.DirEntry]]:
    """(path parts below the root, entry) of every file, sorted, skipping hidden ones; symlinked folders are not followed."""
    with os.scandir(folder) as scan:
        items = sorted(scan, key=lambda item: item.name)
    for item in items:
        if _ignored(item.name):
            continue
        if item.is_dir(follow_symlinks=False):
            yield from _walk(item.path, (*parts, item.name))
        elif item.is_file():
            yield (*parts, item.name), item


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_image_zip(source: Path | bytes, name: str, *, max_side: int = MAX_IMAGE_SIDE) -> Dataset:
    """Read a .zip of class sub-folders, from a path or from bytes (an upload), without extracting it.

    Archives on disk are cached like folders, keyed by path, size and modification time.
    """
    label = str(source) if isinstance(source, Path) else name
    try:
        archive = zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError(f"{label} is not a readable .zip archive ({exc}).") from None
    with archive:
        infos, skipped = _checked_zip_members(archive, label)
        entries = [_Entry(_zip_parts(info.filename), _zip_reader(archive, info)) for info in infos]

        def build() -> Dataset:
            return _build(entries, name=Path(name).name, source=label, skipped=skipped, max_side=max_side)

        if not isinstance(source, Path):
            return build()
        info = source.stat()
        key = hashlib.sha256(f"{CACHE_VERSION}\0{source}\0{info.st_size}\0{info.st_mtime_ns}\0{max_side}".encode())
        return _cached_build(key.hexdigest(), Path(name).name, label, build)


def _cached_build(key: str, name: str, source: str, build: Callable[[], Dataset]) -> Dataset:
    """The dataset cached on disk under `key`, or `build()` saved there.

    Cache files are named images-<hash of the source path>-<key>.npz; saving
    one removes the source's older conversions.
    """
    folder = get_settings().data_dir / "cache"
    prefix = f"images-{hashlib.sha256(source.encode()).hexdigest()[:12]}-"
    cache_file = folder / f"{prefix}{key[:24]}.npz"
    if cache_file.is_file():
        try:
            return dataclasses.replace(read_npz(cache_file, name), source=source)
        except DatasetError:
            cache_file.unlink(missing_ok=True)  # damaged: rebuild it
    ds = build()
    try:
        save_npz(ds, cache_file)
        for old in folder.glob(f"{prefix}*.npz"):
            if old != cache_file:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("Could not cache %s in %s: %s", source, cache_file, exc)
    return ds


def _checked_zip_members(archive: zipfile.ZipFile, label: str) -> tuple[list[zipfile.ZipInfo], int]:
    """The file members worth reading; raises on unsafe archives. Returns (members, skipped count)."""
    infos = archive.infolist()
    if len(infos) > MAX_FILES:
        raise DatasetError(f"{label} holds {len(infos):,} entries, more than the limit of {MAX_FILES:,}.")
    members: list[zipfile.ZipInfo] = []
    skipped = 0
    total = 0
    for info in infos:
        raw = info.filename
        normal = raw.replace("\\", "/")
        parts = PurePosixPath(normal).parts
        if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or ".." in parts:
            raise DatasetError(f"{label} is refused: the entry {raw!r} points outside the archive.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(f"{label} is refused: the entry {raw!r} is a symbolic link.")
        if info.is_dir() or any(_ignored(p) for p in parts):
            continue
        if info.flag_bits & 0x1:
            raise DatasetError(f"{label} is refused: the entry {raw!r} is encrypted.")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise DatasetError(
                f"{label} is refused: it expands to more than {MAX_TOTAL_BYTES / 1024**3:g} GiB."
            )
        if info.file_size > 1024**2 and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise DatasetError(
                f"{label} is refused: the entry {raw!r} expands {info.file_size // max(info.compress_size, 1):,} times "
                f"(over {MAX_COMPRESSION_RATIO}), as zip bombs do."
            )
        if info.file_size > MAX_FILE_BYTES:
            skipped += 1
            continue
        members.append(info)
    return members, skipped


def _zip_parts(filename: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(filename.replace("\\", "/")).parts if p not in ("", "."))


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    return lambda: archive.read(info)


def _ignored(name: str) -> bool:
    """Hidden files and folders, and the metadata folders archivers add."""
    return name.startswith(".") or name in _IGNORED_DIRS or name in ("Thumbs.db", "desktop.ini")


def _build(entries: list[_Entry], *, name: str, source: str, skipped: int, max_side: int) -> Dataset:
    """Class layout -> image sizes (headers only) -> decoded, resized images -> Dataset.

    The sizes come first, so the common size and the decoded size are known
    before any pixel is decoded: a dataset over `settings.max_dataset_mb` is
    refused at that point, and decoding then writes each image straight into
    the final array (memory: the result plus one batch of decoded images).
    """
    train, test, skipped_layout = _layout(entries, source)
    skipped += skipped_layout
    class_names = sorted(train)
    missing = sorted(set(test) - set(train))
    if missing:
        raise DatasetError(f"{source}: the test folder has classes the training folder lacks: {_quoted(missing)}.")
    if len(class_names) > MAX_CLASSES:
        raise DatasetError(f"{source} has {len(class_names):,} class folders, more than the limit of {MAX_CLASSES:,}.")

    jobs = [(label, entry, False) for label, c in enumerate(class_names) for entry in train[c]]
    jobs += [(class_names.index(c), entry, True) for c in sorted(test) for entry in test[c]]
    sizes = _map_in_batches(_probe, [entry for _, entry, _ in jobs])
    readable = [(job, size) for job, size in zip(jobs, sizes) if size is not None]
    skipped += len(jobs) - len(readable)
    _check_counts(np.asarray([label for (label, _, held), _ in readable if not held], np.int32), class_names, source)
    height, width = _target_size(Counter(size for _, size in readable), max_side)
    _check_decoded_size(len(readable), height, width, source)

    x, decoded = _decode_into([entry for (_, entry, _), _ in readable], height, width, max_side)
    skipped += int((~decoded).sum())
    labels_arr = np.asarray([label for (label, _, _), _ in readable], np.int32)[decoded]
    is_test_arr = np.asarray([held for (_, _, held), _ in readable], bool)[decoded]
    x = x[decoded] if not decoded.all() else x
    _check_counts(labels_arr[~is_test_arr], class_names, source)

    if is_test_arr.any():
        train_idx, test_idx = np.flatnonzero(~is_test_arr), np.flatnonzero(is_test_arr)
    else:
        train_idx, test_idx = stratified_holdout(labels_arr, TEST_FRACTION, np.random.default_rng(SPLIT_SEED))
        train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return Dataset(
        name=name,
        x_train=x[train_idx],
        y_train=labels_arr[train_idx],
        x_test=x[test_idx],
        y_test=labels_arr[test_idx],
        class_names=tuple(class_names),
        source=source,
        skipped=skipped,
    )


def _check_counts(train_labels: np.ndarray, class_names: list[str], source: str) -> None:
    """Every class needs two readable training images, and a classifier two classes."""
    counts = np.bincount(train_labels, minlength=len(class_names))
    too_few = [f"{class_names[i]!r} ({counts[i]})" for i in np.flatnonzero(counts < 2)]
    if too_few:
        raise DatasetError(
            f"{source}: each class needs at least 2 readable training images; these have fewer: {', '.join(too_few)}."
        )
    if len(class_names) < 2:
        raise DatasetError(f"{source} has {len(class_names)} class folder(s) with images; a classifier needs at least 2.")


def _check_decoded_size(count: int, height: int, width: int, source: str) -> None:
    """Refuse, before decoding, a dataset whose pixels (as RGB, the largest case) exceed the setting."""
    limit_mb = get_settings().max_dataset_mb
    decoded = count * height * width * 3
    if decoded > limit_mb * 1024**2:
        raise DatasetError(
            f"{source} is refused: its {count:,} images at {width}x{height} take {decoded / 1024**2:,.0f} MB as "
            f"8-bit pixels, over the limit of {limit_mb:,} MB; use fewer or smaller images."
        )


def _layout(entries: list[_Entry], source: str) -> tuple[dict[str, list[_Entry]], dict[str, list[_Entry]], int]:
    """Sort entries into {class: entries} for training and testing. Returns (train, test, skipped)."""
    entries, skipped = _without_wrappers(entries)
    if not entries:
        raise DatasetError(f"{source} has no class folders with files; put each class's images in a folder named after the class.")

    by_top: dict[str, list[_Entry]] = {}
    for e in entries:
        by_top.setdefault(e.parts[0], []).append(e)
    lower = {t.lower(): t for t in by_top}
    train_key = next((lower[n] for n in sorted(lower) if n in _TRAIN_NAMES), None)
    if train_key is None:
        return _by_class(entries, 0), {}, skipped
    test_key = next((lower[n] for n in sorted(lower) if n in _TEST_NAMES), None)
    val_key = next((lower[n] for n in sorted(lower) if n in _VAL_NAMES), None)
    train_entries = list(by_top[train_key])
    if test_key is None:
        test_key = val_key
    elif val_key is not None:
        train_entries += by_top[val_key]
    used = {train_key, test_key, val_key}
    skipped += sum(len(v) for k, v in by_top.items() if k not in used)
    train_entries, loose = [e for e in train_entries if len(e.parts) >= 3], [e for e in train_entries if len(e.parts) < 3]
    skipped += len(loose)
    test_entries = [e for e in by_top.get(test_key, []) if len(e.parts) >= 3] if test_key else []
    skipped += (len(by_top[test_key]) - len(test_entries)) if test_key else 0
    return _by_class(train_entries, 1), _by_class(test_entries, 1), skipped


def _without_wrappers(entries: list[_Entry]) -> tuple[list[_Entry], int]:
    """Look through wrapping folders (one top folder holding folders); files beside them are skipped.

    Level k wraps the dataset when every entry still in play (at least two parts
    below level k) has the same folder at k, some entry lies two folders deeper,
    and that folder is not a train/test/val split. The depth is found in one
    pass over the path parts, so deep archive paths cost their length, not its
    square. Returns (entries below the wrappers, files skipped beside them).
    """
    if not entries:
        return [], 0
    reference = max(entries, key=lambda e: len(e.parts)).parts
    depth = len(reference) - 2  # some entry must lie two folders below the last wrapper
    for e in entries:
        # The first folder where this entry leaves the reference path ends the wrappers there.
        folders = len(e.parts) - 1
        for k in range(min(folders, depth)):
            if e.parts[k] != reference[k]:
                depth = k
                break
    split_names = _TRAIN_NAMES | _TEST_NAMES | _VAL_NAMES
    depth = next((k for k in range(max(depth, 0)) if reference[k].lower() in split_names), max(depth, 0))
    kept = [_Entry(e.parts[depth:], e.read) for e in entries if len(e.parts) - depth >= 2]
    return kept, len(entries) - len(kept)


def _by_class(entries: list[_Entry], depth: int) -> dict[str, list[_Entry]]:
    classes: dict[str, list[_Entry]] = {}
    for e in entries:
        classes.setdefault(e.parts[depth], []).append(e)
    return classes


def _map_in_batches(work: Callable[[_Entry], Any], entries: list[_Entry]) -> list[Any]:
    """`work` on every entry, on threads (Pillow and zlib release the GIL), a bounded batch at a time."""
    workers = min(8, os.cpu_count() or 1)
    if workers == 1 or len(entries) < 64:
        return [work(e) for e in entries]
    out: list[Any] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(entries), _BATCH):
            out.extend(pool.map(work, entries[start : start + _BATCH]))
    return out


def _probe(entry: _Entry) -> tuple[int, int] | None:
    """(height, width) from the image's header, upright; None for non-images and damaged members."""
    try:
        width, height = read_size(entry.read(), name="/".join(entry.parts))
    except _UNREADABLE:
        return None
    return height, width


def _decode_into(entries: list[_Entry], height: int, width: int, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode and fit every entry into one uint8 (N, height, width, C) array, a batch at a time.

    C is 1 while every image is gray and becomes 3 at the first colour image.
    Returns (images, decoded): `decoded[i]` is False where entry i could not be decoded.
    """

    def decode(entry: _Entry) -> np.ndarray | None:
        try:
            pixels = read_image(entry.read(), name="/".join(entry.parts), size_hint=(max_side, max_side)).pixels
        except _UNREADABLE:
            return None
        return _fit(pixels, height, width)

    x = np.zeros((len(entries), height, width, 1), np.uint8)
    decoded = np.zeros(len(entries), bool)
    for start in range(0, len(entries), _BATCH):
        for i, fitted in enumerate(_map_in_batches(decode, entries[start : start + _BATCH]), start):
            if fitted is None:
                continue
            if x.shape[3] == 1 and not _is_gray(fitted):
                x = np.repeat(x, 3, axis=3)  # the first colour image: the dataset becomes RGB
            x[i] = fitted[:, :, :1] if x.shape[3] == 1 else (fitted if fitted.shape[2] == 3 else np.repeat(fitted, 3, axis=2))
            decoded[i] = True
    return x, decoded


def _target_size(sizes: Counter, max_side: int) -> tuple[int, int]:
    """The most common (height, width), scaled down to fit a max_side square."""
    (height, width), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0]))
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _is_gray(pixels: np.ndarray) -> bool:
    if pixels.shape[2] == 1:
        return True
    return bool((pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all())


def _fit(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, C) uint8 -> (height, width, C), bilinear."""
    if pixels.shape[:2] != (height, width):
        image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        pixels = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).reshape(height, width, -1)
    return pixels


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
