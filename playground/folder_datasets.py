"""Your own data: a folder or .zip of class sub-folders, or a .npz of arrays.

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
import tempfile
import stat
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from playground.dataset_base import Dataset, DatasetError, stratified_holdout
from playground.images import ImageError, read_image
from playground.settings import get_settings

log = logging.getLogger(__name__)

MAX_FILES = 200_000  # files in one folder or archive
MAX_TOTAL_BYTES = 4 * 1024**3  # uncompressed bytes in one folder, archive or .npz
MAX_FILE_BYTES = 64 * 1024**2  # larger single files are skipped
MAX_COMPRESSION_RATIO = 100  # an entry over 1 MiB expanding more than this is a zip bomb
MAX_IMAGE_SIDE = 64  # the common image size is scaled down to fit this square
TEST_FRACTION = 0.2  # share of each class held out for testing when there is no test folder
SPLIT_SEED = 0  # fixed, so the test images do not change with the experiment seed
MAX_CLASSES = 1000
CACHE_VERSION = "1"  # bump when decoding changes, so old cached conversions are not reused

_TRAIN_NAMES = {"train", "training"}
_TEST_NAMES = {"test", "testing"}
_VAL_NAMES = {"val", "valid", "validation"}
_IGNORED_DIRS = {"__MACOSX", "__pycache__"}


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


def save_npz(ds: Dataset, target: Path) -> Path:
    """Write `ds` as a dataset .npz that `read_npz` reads back (atomically: temporary file, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(
                out,
                x_train=ds.x_train,
                y_train=ds.y_train,
                x_test=ds.x_test,
                y_test=ds.y_test,
                class_names=np.array(ds.class_names, dtype=str),
                skipped=np.int64(ds.skipped),
            )
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


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
    """Class layout -> decoded, resized images -> Dataset."""
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
    decoded = _decode_all([entry for _, entry, _ in jobs], max_side)
    images, labels, is_test, sizes = [], [], [], Counter()
    for (label, _, held), result in zip(jobs, decoded):
        if result is None:
            skipped += 1
            continue
        pixels, original_size = result
        images.append(pixels)
        labels.append(label)
        is_test.append(held)
        sizes[original_size] += 1
    labels_arr = np.asarray(labels, np.int32)
    is_test_arr = np.asarray(is_test, bool)

    counts = np.bincount(labels_arr[~is_test_arr], minlength=len(class_names))
    too_few = [f"{class_names[i]!r} ({counts[i]})" for i in np.flatnonzero(counts < 2)]
    if too_few:
        raise DatasetError(
            f"{source}: each class needs at least 2 readable training images; these have fewer: {', '.join(too_few)}."
        )
    if len(class_names) < 2:
        raise DatasetError(f"{source} has {len(class_names)} class folder(s) with images; a classifier needs at least 2.")

    height, width = _target_size(sizes, max_side)
    gray = all(_is_gray(p) for p in images)
    x = np.empty((len(images), height, width, 1 if gray else 3), np.uint8)
    for i, pixels in enumerate(images):
        x[i] = _fit(pixels, height, width, gray)

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


def _layout(entries: list[_Entry], source: str) -> tuple[dict[str, list[_Entry]], dict[str, list[_Entry]], int]:
    """Sort entries into {class: entries} for training and testing. Returns (train, test, skipped)."""
    skipped = 0
    while True:
        loose = [e for e in entries if len(e.parts) < 2]  # files beside the class folders
        skipped += len(loose)
        entries = [e for e in entries if len(e.parts) >= 2]
        tops = {e.parts[0] for e in entries}
        # One top folder that holds folders (not just images) wraps the dataset.
        wrapper = len(tops) == 1 and any(len(e.parts) >= 3 for e in entries)
        if not wrapper or next(iter(tops)).lower() in _TRAIN_NAMES | _TEST_NAMES | _VAL_NAMES:
            break
        entries = [_Entry(e.parts[1:], e.read) for e in entries]  # look through a wrapping folder
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


def _by_class(entries: list[_Entry], depth: int) -> dict[str, list[_Entry]]:
    classes: dict[str, list[_Entry]] = {}
    for e in entries:
        classes.setdefault(e.parts[depth], []).append(e)
    return classes


def _decode_all(entries: list[_Entry], max_side: int) -> list[tuple[np.ndarray, tuple[int, int]] | None]:
    """Decode every entry (Pillow releases the GIL, so threads use all cores); None for non-images."""

    def decode(entry: _Entry):
        try:
            decoded = read_image(entry.read(), name="/".join(entry.parts), size_hint=(max_side, max_side))
        except (ImageError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error):
            # Not an image, or a damaged archive member: skipped and counted.
            return None
        width, height = decoded.original_size
        return decoded.pixels, (height, width)

    workers = min(8, os.cpu_count() or 1)
    if workers == 1 or len(entries) < 64:
        return [decode(e) for e in entries]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(decode, entries, chunksize=256))


def _target_size(sizes: Counter, max_side: int) -> tuple[int, int]:
    """The most common (height, width), scaled down to fit a max_side square."""
    (height, width), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0]))
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _is_gray(pixels: np.ndarray) -> bool:
    if pixels.shape[2] == 1:
        return True
    return bool((pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all())


def _fit(pixels: np.ndarray, height: int, width: int, gray: bool) -> np.ndarray:
    """(h, w, C) uint8 -> (height, width, 1 if gray else 3)."""
    if gray and pixels.shape[2] == 3:
        pixels = pixels[:, :, :1]  # the channels are equal
    elif not gray and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if pixels.shape[:2] != (height, width):
        image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        pixels = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).reshape(height, width, -1)
    return pixels


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


# ---------------------------------------------------------------------------
# .npz arrays.
# ---------------------------------------------------------------------------

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(source: Path | bytes, name: str) -> Dataset:
    """Read a .npz with x_train, y_train, x_test, y_test (and optionally class_names, skipped).

    Images may be (N, H, W) or (N, H, W, C) with C = 1 or 3, as uint8, as
    integers 0..255, or as floats in 0..1 or 0..255. Labels may be integers
    (N,) or (N, 1), or one-hot (N, K). Pickled (object) arrays are never loaded.
    """
    label = str(source) if isinstance(source, Path) else name
    raw = source if isinstance(source, Path) else io.BytesIO(source)
    try:
        with zipfile.ZipFile(raw) as archive:
            expanded = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{label} is not a readable .npz archive ({exc}).") from None
    if expanded > MAX_TOTAL_BYTES:
        raise DatasetError(f"{label} is refused: its arrays expand to more than {MAX_TOTAL_BYTES / 1024**3:g} GiB.")
    if not isinstance(raw, Path):
        raw.seek(0)
    try:
        with np.load(raw, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{label} lacks {', '.join(missing)}; a dataset .npz needs x_train, y_train, x_test and y_test."
                )
            arrays = {k: npz[k] for k in _NPZ_KEYS}
            class_names = npz["class_names"] if "class_names" in npz.files else None
            skipped = npz["skipped"] if "skipped" in npz.files else None
    except DatasetError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DatasetError(f"{label} holds pickled Python objects, which are never loaded; save plain numeric arrays.") from None
        raise DatasetError(f"{label} cannot be read as a .npz ({exc}).") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{label} cannot be read as a .npz ({exc}).") from None

    x_train, x_test = _npz_images(arrays["x_train"], arrays["x_test"], label)
    y_train = _npz_labels(arrays["y_train"], len(x_train), "y_train", label)
    y_test = _npz_labels(arrays["y_test"], len(x_test), "y_test", label)
    if len(x_train) < 2 or len(x_test) < 1:
        raise DatasetError(f"{label} needs at least 2 training and 1 test image. Received: {len(x_train)} and {len(x_test)}")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    names = _npz_class_names(class_names, num_classes, label)
    if len(names) < 2:
        raise DatasetError(f"{label} has a single class; a classifier needs at least 2.")
    extra = int(skipped) if skipped is not None and skipped.shape == () and skipped.dtype.kind in "iu" else 0
    return Dataset(Path(name).name, x_train, y_train, x_test, y_test, names, source=label, skipped=max(0, extra))


def _npz_images(x_train: np.ndarray, x_test: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Both image arrays -> uint8 (N, H, W, C), scaled together (floats in 0..1 become 0..255)."""
    shaped = []
    for key, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim == 3:
            x = x[..., np.newaxis]
        if x.ndim != 4 or x.shape[3] not in (1, 3) or min(x.shape[1:3]) < 1:
            raise DatasetError(f"{label}: {key} must be (N, H, W) or (N, H, W, C) with C = 1 or 3. Received: shape={x.shape}")
        if x.dtype.kind not in "biuf":
            raise DatasetError(f"{label}: {key} must hold numbers. Received: dtype={x.dtype}")
        shaped.append(x)
    x_train, x_test = shaped
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{label}: x_train and x_test differ in image shape. Received: {x_train.shape[1:]} and {x_test.shape[1:]}")
    if x_train.dtype == np.uint8 and x_test.dtype == np.uint8:
        return x_train, x_test
    lo = min(float(x.min()) if x.size else 0.0 for x in shaped)
    hi = max(float(x.max()) if x.size else 0.0 for x in shaped)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
        raise DatasetError(f"{label}: pixel values must lie in 0..1 or 0..255. Received: {lo:g}..{hi:g}")
    floats = any(x.dtype.kind == "f" for x in shaped)
    booleans = all(x.dtype.kind == "b" for x in shaped)
    factor = 255.0 if booleans or (floats and hi <= 1.0) else 1.0
    return tuple(np.rint(x.astype(np.float32) * factor).astype(np.uint8) for x in shaped)


def _npz_labels(y: np.ndarray, count: int, key: str, label: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":
        y = np.argmax(y, axis=1)  # one-hot
    if y.ndim != 1 or len(y) != count:
        raise DatasetError(f"{label}: {key} must hold one label per image ({count}). Received: shape={y.shape}")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.rint(y)))):
        raise DatasetError(f"{label}: {key} must hold whole-number class indices. Received: dtype={y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DatasetError(f"{label}: {key} must hold class indices 0..{MAX_CLASSES - 1}. Received: {y.min():g}..{y.max():g}")
    return y.astype(np.int32)


def _npz_class_names(names: np.ndarray | None, num_classes: int, label: str) -> tuple[str, ...]:
    if names is None:
        return tuple(str(i) for i in range(num_classes))
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DatasetError(f"{label}: class_names must be a 1-D array of strings. Received: {names.dtype} {names.shape}")
    if len(names) < num_classes:
        raise DatasetError(f"{label}: class_names has {len(names)} names but the labels go up to {num_classes - 1}.")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist())
