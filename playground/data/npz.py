"""Your own data as arrays: a .npz with x_train, y_train, x_test, y_test.

Images may be (N, H, W) or (N, H, W, C) with C = 1 or 3, as uint8, as
integers 0..255, or as floats in 0..1 or 0..255; labels integers (N,) or
(N, 1), or one-hot (N, K); optional `class_names` (strings) and `skipped`
(the count `save_npz` records for converted folders). Nothing is unpickled:
object arrays are refused.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from playground.data.dataset import MAX_CLASSES, Dataset, DatasetError
from playground.settings import get_settings
from playground.spec.fields import MAX_INPUT_SIDE

MAX_NPZ_BYTES = 4 * 1024**3  # uncompressed bytes of all arrays in one .npz
MAX_COMPRESSION_RATIO = 200  # an array over 1 MiB expanding more than this is a zip bomb
MAX_LABEL_BYTES = 256 * 1024**2  # uncompressed bytes of one label array (one-hot labels included)
_MAX_HEADER = 10_000  # bytes of one .npy header (NumPy's own default limit)
_CHUNK_BYTES = 16 * 1024**2  # raw bytes converted at a time: memory beyond the result stays this small

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class _Member:
    """One array of the archive as its .npy header describes it, before any data is read."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def raw_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_npz(source: Path | bytes, name: str) -> Dataset:
    """Read a .npz with x_train, y_train, x_test, y_test (and optionally class_names, skipped).

    Images may be (N, H, W) or (N, H, W, C) with C = 1 or 3, as uint8, as
    integers 0..255, or as floats in 0..1 or 0..255. Labels may be integers
    (N,) or (N, 1), or one-hot (N, K). Pickled (object) arrays are never loaded.

    Every array's header is checked first (shapes, types, the image side, the
    decoded size against `settings.max_dataset_mb`, the compression ratio), so
    a hostile file is refused before its data is read; images are then
    converted a slice at a time, so memory holds little more than the result.

    Raises:
        DatasetError: with a one-sentence reason.
    """
    label = str(source) if isinstance(source, Path) else name
    try:
        archive = zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{label} is not a readable .npz archive ({exc}).") from None
    try:
        with archive:
            members = _headers(archive, label)
            x_train, x_test = _npz_images(archive, members["x_train"], members["x_test"], label)
            y_train = _npz_labels(_read_small(archive, members["y_train"], label), len(x_train), "y_train", label)
            y_test = _npz_labels(_read_small(archive, members["y_test"], label), len(x_test), "y_test", label)
            class_names = _read_small(archive, members["class_names"], label) if "class_names" in members else None
            skipped = _read_small(archive, members["skipped"], label) if "skipped" in members else None
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DatasetError(f"{label} cannot be read as a .npz ({_first_line(exc)}).") from None
    if len(x_train) < 2 or len(x_test) < 1:
        raise DatasetError(f"{label} needs at least 2 training and 1 test image. Received: {len(x_train)} and {len(x_test)}")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    names = _npz_class_names(class_names, num_classes, label)
    if len(names) < 2:
        raise DatasetError(f"{label} has a single class; a classifier needs at least 2.")
    extra = int(skipped) if skipped is not None and skipped.shape == () and skipped.dtype.kind in "iu" else 0
    return Dataset(Path(name).name, x_train, y_train, x_test, y_test, names, source=label, skipped=max(0, extra))


def _headers(archive: zipfile.ZipFile, label: str) -> dict[str, _Member]:
    """The .npy header of every array, checked against the limits before any data is read."""
    infos = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
    missing = [k for k in _NPZ_KEYS if k not in infos]
    if missing:
        raise DatasetError(f"{label} lacks {', '.join(missing)}; a dataset .npz needs x_train, y_train, x_test and y_test.")
    wanted = {k: infos[k] for k in (*_NPZ_KEYS, "class_names", "skipped") if k in infos}
    if sum(info.file_size for info in wanted.values()) > MAX_NPZ_BYTES:
        raise DatasetError(f"{label} is refused: its arrays expand to more than {MAX_NPZ_BYTES / 1024**3:g} GiB.")
    members = {}
    for key, info in wanted.items():
        if info.file_size > 1024**2 and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise DatasetError(
                f"{label} is refused: {key} expands {info.file_size // max(info.compress_size, 1):,} times "
                f"(over {MAX_COMPRESSION_RATIO}), as zip bombs do; save it with np.savez (uncompressed)."
            )
        with archive.open(info) as stream:
            try:
                shape, fortran_order, dtype = _read_header(stream)
            except ValueError as exc:
                raise DatasetError(f"{label}: {key} is not a readable array ({_first_line(exc)}).") from None
        if dtype.hasobject:
            raise DatasetError(f"{label} holds pickled Python objects, which are never loaded; save plain numeric arrays.")
        members[key] = _Member(info, tuple(int(n) for n in shape), dtype, bool(fortran_order))
        if info.file_size < members[key].raw_bytes:
            raise DatasetError(f"{label}: {key} is truncated: its header promises more data than the file holds.")
    for key in ("y_train", "y_test"):
        if members[key].raw_bytes > MAX_LABEL_BYTES:
            raise DatasetError(f"{label}: {key} is too large for labels ({members[key].raw_bytes / 1024**2:.0f} MB). Received: shape={members[key].shape}")
    for key in ("class_names", "skipped"):
        if key in members and members[key].raw_bytes > 16 * 1024**2:
            raise DatasetError(f"{label}: {key} is too large ({members[key].raw_bytes / 1024**2:.0f} MB).")
    return members


def _image_shape(member: _Member, key: str, label: str) -> tuple[int, int, int, int]:
    """(N, H, W, C) of an image array from its header, or a one-sentence refusal."""
    shape = member.shape + (1,) if len(member.shape) == 3 else member.shape
    if len(shape) != 4 or shape[3] not in (1, 3) or min(shape[1:3]) < 1:
        raise DatasetError(f"{label}: {key} must be (N, H, W) or (N, H, W, C) with C = 1 or 3. Received: shape={member.shape}")
    if member.dtype.kind not in "biuf":
        raise DatasetError(f"{label}: {key} must hold numbers. Received: dtype={member.dtype}")
    if max(shape[1:3]) > MAX_INPUT_SIDE:
        raise DatasetError(
            f"{label}: {key} holds {shape[1]}x{shape[2]} images, larger than the limit of {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}; "
            "resize them first."
        )
    return shape  # type: ignore[return-value]


def _npz_images(archive: zipfile.ZipFile, train: _Member, test: _Member, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Both image arrays -> uint8 (N, H, W, C), scaled together (floats in 0..1 become 0..255)."""
    shapes = [_image_shape(train, "x_train", label), _image_shape(test, "x_test", label)]
    if shapes[0][1:] != shapes[1][1:]:
        raise DatasetError(f"{label}: x_train and x_test differ in image shape. Received: {shapes[0][1:]} and {shapes[1][1:]}")
    decoded = sum(math.prod(s) for s in shapes)
    limit_mb = get_settings().max_dataset_mb
    if decoded > limit_mb * 1024**2:
        raise DatasetError(
            f"{label} is refused: its images take {decoded / 1024**2:,.0f} MB as 8-bit pixels, over the limit of "
            f"{limit_mb:,} MB; use fewer or smaller images."
        )
    members = (train, test)
    if all(m.dtype == np.uint8 for m in members):
        factor = 1.0
    else:
        lo, hi = np.inf, -np.inf
        for member in members:
            for chunk in _chunks(archive, member):
                if chunk.size:
                    lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
        lo, hi = (0.0, 0.0) if lo > hi else (lo, hi)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
            raise DatasetError(f"{label}: pixel values must lie in 0..1 or 0..255. Received: {lo:g}..{hi:g}")
        floats = any(m.dtype.kind == "f" for m in members)
        booleans = all(m.dtype.kind == "b" for m in members)
        factor = 255.0 if booleans or (floats and hi <= 1.0) else 1.0
    out = []
    for member, shape in zip(members, shapes):
        images = np.empty(shape, np.uint8)
        flat = images.reshape(-1)
        at = 0
        for chunk in _chunks(archive, member):
            part = chunk.reshape(-1)
            if factor == 1.0 and part.dtype == np.uint8:
                flat[at : at + part.size] = part
            else:
                scaled = part.astype(np.float32)  # at most _CHUNK_BYTES: the only copy beyond the result
                scaled *= np.float32(factor)
                flat[at : at + part.size] = np.rint(scaled, out=scaled)
            at += part.size
        out.append(images)
    return out[0], out[1]


def _chunks(archive: zipfile.ZipFile, member: _Member) -> Iterator[np.ndarray]:
    """The array's values a slice at a time, in C order, read straight from the archive member."""
    if member.fortran_order:  # rare (NumPy writes C order): read whole, within the size limits above
        with archive.open(member.info) as stream:
            yield np.lib.format.read_array(stream, allow_pickle=False)
        return
    count = math.prod(member.shape)
    per_chunk = max(1, _CHUNK_BYTES // max(member.dtype.itemsize, 4))  # float32 copies of a chunk stay within _CHUNK_BYTES
    with archive.open(member.info) as stream:
        _read_header(stream)
        done = 0
        while done < count:
            n = min(per_chunk, count - done)
            data = stream.read(n * member.dtype.itemsize)
            if len(data) != n * member.dtype.itemsize:
                raise EOFError("the array data ends early")
            yield np.frombuffer(data, dtype=member.dtype)
            done += n


def _read_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a .npy stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream, max_header_size=_MAX_HEADER)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream, max_header_size=_MAX_HEADER)
    raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")


def _read_small(archive: zipfile.ZipFile, member: _Member, label: str) -> np.ndarray:
    """A label, name or count array (size already checked), read whole."""
    with archive.open(member.info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


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
