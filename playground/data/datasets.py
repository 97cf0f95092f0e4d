"""Datasets: named sources, built-ins and your own files, as uint8 NHWC arrays with class names.

    load_dataset("fashion_mnist")          # local copy, or downloaded once and verified
    load_dataset("shapes", shapes_noise=0.3, seed=1)
    load_dataset("data/uploads/pets-1a2b3c.npz")   # or a folder / .zip of class folders

Where the images come from:

- "mnist", "fashion_mnist", "cifar10": `playground.dataset_sources` (local
  copies, a classroom mirror, or the official files, checksum-verified).
- "shapes", "digits": `playground.builtin_datasets` (no network).
- a path: `playground.npz_datasets` (.npz) or `playground.folder_datasets` (folder or .zip).

Loaded datasets are cached per process (same arguments, same object) and
their arrays are read-only, so every session can share them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from playground.data import builtin as builtin_datasets
from playground.data import sources as dataset_sources
from playground.data import folders as folder_datasets
from playground.data import npz as npz_datasets
from playground.data.dataset import Dataset, DatasetError, stratified_pick
from playground.data.catalog import CATALOG
from playground.spec.experiment import ExperimentSpec

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetStatus",
    "clear_cache",
    "dataset_status",
    "load_dataset",
    "load_for_spec",
    "prepare_options",
    "split_train_validation",
]

MAX_CACHED = 6  # datasets kept in memory per process (CIFAR-10 is about 180 MB)


@dataclass(frozen=True)
class DatasetStatus:
    """Whether a named dataset can be used here without the network, and from where."""

    name: str  # "mnist", ...
    title: str  # "MNIST digits", ...
    available_locally: bool  # True when no download is needed
    where: str  # the local folder, "built in", or where it would be downloaded from


def load_dataset(name_or_path: str, *, shapes_noise: float = 0.2, seed: int = 0) -> Dataset:
    """Load a named dataset or a dataset file/folder, cached per process.

    Args:
        name_or_path: one of "mnist", "fashion_mnist", "cifar10", "shapes",
            "digits"; or a path to a .npz, a .zip or a folder of class folders.
        shapes_noise: pixel noise of "shapes", 0..1 (ignored otherwise).
        seed: draws the "shapes" images (ignored otherwise: the test split of
            a folder without test/ is fixed, so runs are scored alike).

    Returns:
        The Dataset; the same object for the same arguments while it is cached.

    Raises:
        DatasetError: one message saying what was tried and what to do.
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise DatasetError(f"Name a dataset ({', '.join(CATALOG)}) or give a path. Received: {name_or_path!r}")
    if name_or_path == "shapes":
        noise = float(shapes_noise)
        return _cached(("shapes", round(noise, 6), int(seed)), lambda: builtin_datasets.load_shapes(noise, int(seed)))
    if name_or_path == "digits":
        return _cached(("digits",), builtin_datasets.load_digits)
    if name_or_path in dataset_sources.NAMED_SOURCES:
        return _cached((name_or_path,), lambda: dataset_sources.load_named(name_or_path))
    path = _copies.get(name_or_path) or Path(name_or_path).expanduser().resolve()
    try:
        info = path.stat()
    except OSError:
        raise DatasetError(
            f"Unknown dataset {name_or_path!r}: it is not one of {', '.join(CATALOG)}, and there is no file or folder at {path}."
        ) from None
    key = ("path", str(path), info.st_mtime_ns, info.st_size)
    if path.is_dir():
        return _cached(key, lambda: folder_datasets.read_image_folder(path))
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _cached(key, lambda: folder_datasets.read_image_zip(path, path.name))
    if suffix == ".npz":
        return _cached(key, lambda: npz_datasets.read_npz(path, path.name))
    raise DatasetError(f"{path} is neither a folder, a .zip nor a .npz; give a dataset in one of those forms.")


def load_for_spec(spec: ExperimentSpec) -> Dataset:
    """The dataset an experiment spec names, with its shapes noise and seed."""
    return load_dataset(spec.data.dataset, shapes_noise=spec.data.shapes_noise, seed=spec.seed)


def split_train_validation(
    ds: Dataset, sample_size: int, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded subset of the training images, split into training and validation.

    Both steps keep the class proportions (stratified), and equal arguments
    give equal arrays.

    Args:
        ds: the dataset.
        sample_size: training images to use (validation included); 0 or more
            than there are means all of them.
        validation_split: fraction of the subset held out, 0 <= f < 1; 0 gives
            empty validation arrays of the right shape.
        seed: draws the subset and the split.

    Returns:
        (x_train, y_train, x_val, y_val): uint8 (n, H, W, C), int32 (n,),
        uint8 (m, H, W, C), int32 (m,), in random order.
    """
    if int(sample_size) != sample_size or sample_size < 0:
        raise ValueError(f"sample_size must be 0 (all) or a positive count. Received: sample_size={sample_size!r}")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1). Received: validation_split={validation_split!r}")
    rng = np.random.default_rng(seed)
    n = len(ds.y_train)
    count = n if sample_size == 0 or sample_size >= n else int(sample_size)
    subset = rng.permutation(n) if count == n else stratified_pick(ds.y_train, count, rng)
    n_val = int(round(count * validation_split))
    if validation_split > 0:
        n_val = min(max(n_val, 1), count - 1)  # at least one of each side when possible
    val_pos = stratified_pick(ds.y_train[subset], n_val, rng)
    train_mask = np.ones(count, bool)
    train_mask[val_pos] = False
    train_idx, val_idx = subset[train_mask], subset[val_pos]
    return ds.x_train[train_idx], ds.y_train[train_idx], ds.x_train[val_idx], ds.y_train[val_idx]


def dataset_status() -> list[DatasetStatus]:
    """For each named dataset: usable without the network here, and from where."""
    statuses = []
    for name, facts in CATALOG.items():
        title = facts.title
        if facts.built_in:
            statuses.append(DatasetStatus(name, title, True, "built in"))
            continue
        folder = dataset_sources.find_local(name)
        if folder is not None:
            statuses.append(DatasetStatus(name, title, True, str(folder)))
        else:
            origin = dataset_sources.download_origin(name)
            statuses.append(DatasetStatus(name, title, False, f"not on this machine; downloaded from {origin} on first use"))
    return statuses


def prepare_options(ds: Dataset) -> dict[str, Any]:
    """Keyword arguments of `prepare.prepare_for_model` that make outside pictures look like `ds`'s images.

    Looked up in the images themselves (a sample of up to 500): whether they are
    light strokes on a dark background (the MNIST family), how much of the frame
    their content fills, and whether it is centred by its centre of mass (MNIST)
    or by its bounding box (Fashion-MNIST).

    Returns:
        {"light_on_dark": bool, "center": bool (by mass), "fill": float (0..1)}.
    """
    sample = ds.x_train[:: max(1, len(ds.x_train) // 500)]
    frame = np.concatenate([sample[:, 0], sample[:, -1], sample[:, :, 0], sample[:, :, -1]], axis=1)
    light_on_dark = ds.input_shape[2] == 1 and float(np.median(frame)) < 64
    if not light_on_dark:
        return {"light_on_dark": False, "center": False, "fill": 1.0}
    fill, by_mass = _content_layout(sample[..., 0].astype(np.float32))
    return {"light_on_dark": True, "center": by_mass, "fill": fill}


def _content_layout(images: np.ndarray) -> tuple[float, bool]:
    """(median share of the frame the content's box fills, whether the centre of mass is what is centred).

    Args:
        images: float32 (n, H, W), light content on a dark background.
    """
    n, height, width = images.shape
    peak = images.reshape(n, -1).max(axis=1)[:, None, None]
    content = (images > 0.25 * peak) & (peak > 0)
    rows, cols = content.any(axis=2), content.any(axis=1)  # (n, H), (n, W)
    has = rows.any(axis=1)
    if not has.any():
        return 1.0, False
    rows, cols, weights = rows[has], cols[has], (images * content)[has]
    first_row, last_row = rows.argmax(axis=1), height - 1 - rows[:, ::-1].argmax(axis=1)
    first_col, last_col = cols.argmax(axis=1), width - 1 - cols[:, ::-1].argmax(axis=1)
    fill = np.maximum((last_row - first_row + 1) / height, (last_col - first_col + 1) / width)
    total = weights.sum(axis=(1, 2))
    mass_y = (weights.sum(axis=2) * np.arange(height)).sum(axis=1) / total
    mass_x = (weights.sum(axis=1) * np.arange(width)).sum(axis=1) / total
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    mass_offset = np.hypot(mass_y - centre_y, mass_x - centre_x)
    box_offset = np.hypot((first_row + last_row) / 2 - centre_y, (first_col + last_col) / 2 - centre_x)
    return round(float(np.median(fill)), 2), bool(np.median(mass_offset) < np.median(box_offset))


# Dataset paths named by specs -> where this process keeps a copy of the file (a Ray node away from the app).
_copies: dict[str, Path] = {}


def use_copy(name_or_path: str, copy: Path) -> None:
    """Read the dataset file `name_or_path` names from `copy` from now on (its copy on this machine).

    Args:
        name_or_path: the path as a spec names it.
        copy: the same file's bytes stored on this machine, under the same file name.
    """
    _copies[name_or_path] = Path(copy)


def clear_cache() -> None:
    """Forget every cached dataset (the next load reads it again)."""
    with _cache_lock:
        _cache.clear()


# ---------------------------------------------------------------------------
# The per-process cache: one lock per key, so a dataset is loaded once even
# when several sessions ask for it at the same moment.
# ---------------------------------------------------------------------------

_cache: OrderedDict[tuple, Dataset] = OrderedDict()
_cache_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}


def _cached(key: tuple, load: Callable[[], Dataset]) -> Dataset:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        ds = load()
        with _cache_lock:
            _cache[key] = ds
            while len(_cache) > MAX_CACHED:
                _cache.popitem(last=False)
            _key_locks.pop(key, None)
    return ds
