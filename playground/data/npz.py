"""Your own data as arrays: a .npz with x_train, y_train, x_test, y_test.

Images may be (N, H, W) or (N, H, W, C) with C = 1 or 3, as uint8, as
integers 0..255, or as floats in 0..1 or 0..255; labels integers (N,) or
(N, 1), or one-hot (N, K); optional `class_names` (strings) and `skipped`
(the count `save_npz` records for converted folders). Nothing is unpickled:
object arrays are refused.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from playground.data.dataset import MAX_CLASSES, Dataset, DatasetError

MAX_NPZ_BYTES = 4 * 1024**3  # uncompressed bytes of all arrays in one .npz


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
    if expanded > MAX_NPZ_BYTES:
        raise DatasetError(f"{label} is refused: its arrays expand to more than {MAX_NPZ_BYTES / 1024**3:g} GiB.")
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
