"""Export a trained run, and import one back, as our own bundle.

A bundle is a .zip of exactly three files:

    spec.json          the ExperimentSpec (architecture, preprocessing, training)
    model.weights.h5   the weights, as Keras `save_weights` writes them (HDF5: data only)
    meta.json          {"format", "version", "name", "class_names", "input_shape",
                        "prepare": {"light_on_dark", "center"}, "metrics", "dataset"}

Importing never deserialises code: the model is rebuilt from the validated
spec by `network.build_model` (under its build lock), and only the HDF5
weights are read into it.
That is why a `.keras` file is refused: its config can name arbitrary
callables, and Keras' safe mode has been bypassed more than once.

Nothing in an upload is trusted to be small or honest: the zip's directory is
measured before it is parsed, every member is read with a cap, the weights
file's layout (shapes, types, storage) is checked against the network before
Keras reads a byte of data, and the metrics a bundle carries are kept only as
claims (finite, in range; see `RunRecord.imported`): scores that count are
computed on this server.

Export also offers the trained model as a `.keras` file (for use in Keras
elsewhere) and the Keras code of the architecture.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import tempfile
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from playground.analysis.predict import prepare_options_for, stored_options
from playground.data.catalog import is_named_dataset
from playground.runs.record import IMPORTED, RunRecord
from playground.settings import get_settings
from playground.spec.experiment import ExperimentSpec, SpecError
from playground.spec.fields import FIELDS
from playground.spec.validation import validate

if TYPE_CHECKING:  # Keras and the store import TensorFlow; they are imported only when needed
    import keras

    from playground.runs.store import RunStore

BUNDLE_FORMAT = "cnn-playground-bundle"
BUNDLE_VERSION = 1
SPEC_FILE = "spec.json"
WEIGHTS_FILE = "model.weights.h5"
META_FILE = "meta.json"
BUNDLE_FILES = (SPEC_FILE, WEIGHTS_FILE, META_FILE)

MAX_JSON_BYTES = 1 << 20  # spec.json and meta.json are a few kB; 1 MiB is plenty
MAX_COMPRESSION_RATIO = 100  # weights barely compress; a higher ratio means a zip bomb
MAX_CLASSES = 1000
MAX_CLASS_NAME_CHARS = 100
MAX_INPUT_SIDE = 512
MAX_ZIP_ENTRIES = 16  # a bundle holds 3; a few more are named as duplicates or strays, more are refused unread
MAX_ZIP_DIRECTORY_BYTES = 64 << 10  # the zip's central directory (parsing time grows with it); a bundle's is under 1 kB
OPTIMIZER_GROUP = "optimizer"  # HDF5 group of the optimizer state a trained run's weights file also holds
_EOCD = struct.Struct("<4s4H2LH")  # zip end record: signature, 2 disk numbers, 2 entry counts, directory size, offset, comment size
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # precedes the end record of a ZIP64 archive
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_KERAS_ARCHIVE_FILES = {"config.json", "metadata.json"}  # what a .keras zip holds besides weights
_KERAS_REFUSAL = (
    "is a Keras model file, which is refused because loading one can run code hidden in it; "
    "upload a bundle (.zip) exported from CNN Playground instead."
)


class BundleError(ValueError):
    """A bundle that cannot be imported, in one sentence naming what was received."""


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def bundle_meta(run: RunRecord) -> dict[str, Any]:
    """The meta.json content of a run.

    Args:
        run: a saved run.

    Returns:
        A JSON-able dict.
    """
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "name": run.name,
        "class_names": list(run.class_names),
        "input_shape": [int(d) for d in run.input_shape],
        "prepare": prepare_options_for(run.spec.data.dataset, stored_options(run)),
        "metrics": _plain_metrics(run.metrics),
        "dataset": run.spec.data.dataset,
    }


def export_bundle(run: RunRecord) -> bytes:
    """Our bundle of a saved run: a zip of spec.json, model.weights.h5 and meta.json.

    Args:
        run: a saved run whose folder holds model.weights.h5.

    Returns:
        The zip file's bytes.
    """
    weights = Path(run.path) / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"Run {run.run_id!r} has no saved weights to export. Received: {weights}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(SPEC_FILE, run.spec.to_json())
        zf.write(weights, WEIGHTS_FILE)
        zf.writestr(META_FILE, json.dumps(bundle_meta(run), indent=2))
    return buffer.getvalue()


def export_keras_file(model: keras.Model) -> bytes:
    """The model saved as a `.keras` file (for Keras elsewhere; this app never loads one back).

    Args:
        model: a built keras.Model.

    Returns:
        The .keras file's bytes.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def export_filename(run: RunRecord, suffix: str) -> str:
    """A safe download file name from the run's name and `suffix`, e.g. "my-run.bundle.zip".

    Args:
        run: a saved run.
        suffix: what follows the name, e.g. ".bundle.zip" or "_model.py".
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", str(run.name or run.run_id)).strip("-.") or "model"
    return f"{stem[:60]}{suffix}"


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


def read_bundle(data: bytes, filename: str = "", *, max_bytes: int | None = None) -> tuple[ExperimentSpec, dict[str, Any], bytes]:
    """Check an uploaded bundle and return its parts, without building anything.

    Args:
        data: the uploaded file's bytes.
        filename: its name, for messages and to refuse `.keras` files early.
        max_bytes: the largest upload and the largest unpacked weights file;
            default: `settings.max_upload_mb`.

    Returns:
        (spec validated against the bundle's input shape, meta dict, weights bytes).

    Raises:
        BundleError: with one sentence naming the file and the problem.
    """
    max_bytes = max_bytes or get_settings().max_upload_mb * (1 << 20)
    label = filename or "The upload"
    lowered = filename.lower()
    if lowered.endswith(".keras"):
        raise BundleError(f"{label} {_KERAS_REFUSAL}")
    if len(data) > max_bytes:
        raise BundleError(f"{label} is {_mb(len(data))}, over the limit of {_mb(max_bytes)}.")
    if not data:
        raise BundleError(f"{label} is empty (0 bytes).")
    if data.startswith(_HDF5_SIGNATURE):
        raise BundleError(f"{label} is a bare HDF5 weights file; upload the whole bundle (.zip) with its spec.json and meta.json.")
    _check_zip_directory(data, label)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BundleError(f"{label} is not a zip file; upload a bundle (.zip) exported from CNN Playground.") from None
    with zf:
        infos = zf.infolist()
        names = [info.filename for info in infos]
        if _KERAS_ARCHIVE_FILES & set(names):
            raise BundleError(f"{label} {_KERAS_REFUSAL}")
        for info in infos:
            if info.filename not in BUNDLE_FILES:
                raise BundleError(
                    f"{label} holds an unexpected entry {info.filename!r}; a bundle holds only {', '.join(BUNDLE_FILES)}."
                )
        counts = Counter(names)
        duplicates = sorted(n for n, count in counts.items() if count > 1)
        if duplicates:
            raise BundleError(f"{label} holds {duplicates[0]!r} more than once.")
        missing = [n for n in BUNDLE_FILES if n not in counts]
        if missing:
            raise BundleError(f"{label} lacks {', '.join(missing)}; a bundle holds {', '.join(BUNDLE_FILES)}.")
        parts = {info.filename: _read_member(zf, info, label, MAX_JSON_BYTES if info.filename != WEIGHTS_FILE else max_bytes)
                 for info in infos}

    meta = _parse_meta(parts[META_FILE], label)
    input_shape = tuple(meta["input_shape"])
    try:
        spec = ExperimentSpec.from_json(parts[SPEC_FILE].decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{label}: spec.json is not UTF-8 text.") from None
    except SpecError as exc:
        raise BundleError(f"{label}: spec.json is not a valid spec: {exc}") from None
    except (ValueError, RecursionError):  # numbers of thousands of digits, or arrays nested thousands deep
        raise BundleError(f"{label}: spec.json is not valid JSON.") from None
    spec = spec.with_values(dataset=_safe_dataset(spec.data.dataset))
    try:
        validate(spec, input_shape)
    except SpecError as exc:
        raise BundleError(f"{label}: spec.json describes an impossible network: {exc}") from None
    weights = parts[WEIGHTS_FILE]
    if not weights.startswith(_HDF5_SIGNATURE):
        raise BundleError(f"{label}: model.weights.h5 is not an HDF5 weights file.")
    return spec, meta, weights


def import_bundle(data: bytes, filename: str = "", *, owner: str | None = None, name: str | None = None,
                  store: RunStore | None = None, max_bytes: int | None = None) -> RunRecord:
    """Import our bundle as a new run: checked, rebuilt from the spec, weights loaded, saved.

    Args:
        data: the uploaded bundle's bytes.
        filename: its name, for messages.
        owner: the session that imports it (the run's owner).
        name: the run's name; default: the name stored in the bundle plus " (imported)".
        store: the run store to save in; default: the store at `settings.runs_dir`.
        max_bytes: as for `read_bundle`.

    Returns:
        The new run.

    Raises:
        BundleError: with one sentence naming the file and the problem.
    """
    from playground.model.network import build_model
    from playground.runs.store import RunStore
    from playground.training.loop import TrainResult

    spec, meta, weights = read_bundle(data, filename, max_bytes=max_bytes)
    label = filename or "The upload"
    input_shape = tuple(meta["input_shape"])
    class_names = tuple(meta["class_names"])
    model = build_model(spec, input_shape, len(class_names))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS_FILE
        path.write_bytes(weights)
        check_weights_layout(path, model, label)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.load_weights(path)
        except Exception as exc:  # noqa: BLE001 - h5py and Keras raise many types for mismatched files
            raise BundleError(
                f"{label}: model.weights.h5 does not fit the network in spec.json ({type(exc).__name__}: {_first_line(exc)})."
            ) from None
        # Keras only warns when a part of the network finds no weights in the file and keeps its initial ones.
        skipped = [str(w.message) for w in caught if "freshly-initialized" in str(w.message) or "Skipping" in str(w.message)]
        if skipped:
            raise BundleError(f"{label}: model.weights.h5 does not fit the network in spec.json ({_first_line(Exception(skipped[0]))}).")
    claims = claimed_metrics(meta.get("metrics", {}))
    result = TrainResult(
        model=model, history={}, test_loss=claims["test_loss"], test_accuracy=claims["test_accuracy"],
        epochs_completed=int(claims["epochs_completed"]), train_seconds=claims["train_seconds"],
        images_per_second=claims["images_per_second"], stop_reason=IMPORTED,
        message=f"Imported from {filename or 'a bundle'}.", params=int(model.count_params()), initial_first_conv=None,
    )
    dataset_name = meta.get("dataset") if isinstance(meta.get("dataset"), str) and meta.get("dataset") else spec.data.dataset
    dataset_info = {
        "name": dataset_name if is_named_dataset(dataset_name) else Path(_safe_dataset(dataset_name)).name,
        "class_names": list(class_names),
        "input_shape": list(input_shape),
        "source": f"imported bundle {filename}".strip(),
        "prepare": meta["prepare"],  # how outside pictures are prepared for this network
    }
    store = store or RunStore()
    # Default name: the exported run's, marked, so the copy is told apart from the original in the run list.
    stored = meta.get("name") if isinstance(meta.get("name"), str) else ""
    run_name = name or f"{(stored or Path(filename).stem or 'bundle')[:180]} (imported)"
    return store.save(result, spec, dataset_info, name=run_name, owner=owner)


def claimed_metrics(metrics: Any) -> dict[str, float]:
    """The numbers a bundle's meta.json claims, kept only where plausible (NaN = absent).

    They are stored with the imported run as its claims (`RunRecord.imported`)
    and never ranked; the parameter count is always the rebuilt model's own.

    Args:
        metrics: meta.json's "metrics" value (anything).

    Returns:
        {test_accuracy, test_loss, train_seconds, images_per_second,
        epochs_completed}: each a finite number in its range (accuracy 0..1,
        the others >= 0, epochs a whole number up to the most a run may
        train), else NaN; epochs_completed 0 when absent.
    """
    metrics = metrics if isinstance(metrics, dict) else {}
    claims = {key: _number(metrics.get(key), low, high) for key, (low, high) in _CLAIM_RANGES.items()}
    epochs = _number(metrics.get("epochs_completed"), 0, FIELDS["epochs"].hi)
    claims["epochs_completed"] = epochs if epochs.is_integer() else 0.0
    return claims


def check_weights_layout(path: Path, model: keras.Model, label: str = "The upload") -> None:
    """Refuse a weights file that is not exactly `model`'s, reading only its layout, before Keras reads any data.

    A few kB of HDF5 can declare a 4 GiB compressed dataset that Keras would
    read whole, or point a dataset at another file on this server. So every
    object is looked at first (names, shapes, types, storage; no data):

    - outside the "optimizer" group, the datasets are the model's weights,
      shape for shape and of the same kind (float, or integer for counters),
      nothing more, nothing less;
    - the "optimizer" group (the optimizer state a trained run saves, which an
      import never reads) holds at most 3 datasets per trainable weight, each
      a scalar or a trainable weight's shape;
    - every link is a plain link inside the file; no dataset has external or
      virtual storage, or chunks larger than itself.

    Args:
        path: the weights file, written to a temporary folder.
        model: the network built from the bundle's spec.
        label: the upload's name, for messages.

    Raises:
        BundleError: with one sentence naming the first problem.
    """
    import h5py

    problem = f"{label}: model.weights.h5"
    expected = Counter(_weight_key(w.shape, w.dtype) for w in model.weights)
    trainable = {tuple(int(d) for d in w.shape) for w in model.trainable_weights}
    optimizer_limit = 3 * len(model.trainable_weights) + 4
    try:
        with h5py.File(path, "r") as f:
            datasets = _hdf5_datasets(f, 4 * (len(model.weights) + optimizer_limit) + 64, problem)
            found: Counter = Counter()
            optimizer_count = 0
            for name, dataset in datasets:
                shape = dataset.shape
                if shape is None or dataset.external or dataset.is_virtual or dataset.dtype.kind not in "fiu":
                    raise BundleError(f"{problem} holds {name}, which is not a plain array of numbers stored in the file.")
                if dataset.chunks and math.prod(dataset.chunks) > max(1, math.prod(shape)):
                    raise BundleError(f"{problem} stores {name} in chunks larger than the array itself.")
                if name.startswith(f"/{OPTIMIZER_GROUP}/"):
                    optimizer_count += 1
                    if optimizer_count > optimizer_limit or (shape and (shape not in trainable or dataset.dtype.kind != "f")):
                        raise BundleError(f"{problem} holds optimizer state {name} of shape {shape} that the network in spec.json has no use for.")
                    continue
                key = _weight_key(shape, dataset.dtype)
                found[key] += 1
                if found[key] > expected[key]:
                    raise BundleError(f"{problem} does not fit the network in spec.json (it holds {name} of shape {shape}, "
                                      f"{dataset.dtype}, where the network has no such weight left).")
    except BundleError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # h5py's errors on damaged files
        raise BundleError(f"{problem} cannot be read as HDF5 ({_first_line(exc)}).") from None
    missing = expected - found
    if missing:
        shape = next(iter(missing))[0]
        raise BundleError(f"{problem} does not fit the network in spec.json (it lacks a weight of shape {shape}).")


def _weight_key(shape: Any, dtype: Any) -> tuple[tuple[int, ...], str]:
    """(shape, "float" or "integer"): what a weight and its dataset must agree on."""
    return tuple(int(d) for d in shape), "float" if np.dtype(dtype).kind == "f" else "integer"


def _hdf5_datasets(root: Any, limit: int, problem: str) -> list[tuple[str, Any]]:
    """Every dataset under the HDF5 group `root` as (path, h5py.Dataset), visiting at most `limit` links.

    Args:
        root: an open h5py File or Group.
        limit: the most links to visit (this also ends cycles of hard links).
        problem: the start of every message, e.g. "b.zip: model.weights.h5".

    Raises:
        BundleError: a soft link or a link to another file (the walk never
            leaves the file), a stored type, or more than `limit` links.
    """
    import h5py

    datasets, stack, visited = [], [("", root)], 0
    while stack:
        prefix, group = stack.pop()
        for name in group:
            visited += 1
            path = f"{prefix}/{name}"
            if visited > limit:
                raise BundleError(f"{problem} holds more than {limit} objects, far more than the network has weights.")
            if not isinstance(group.get(name, getlink=True), h5py.HardLink):
                raise BundleError(f"{problem} links {path} to somewhere else.")
            item = group[name]
            if isinstance(item, h5py.Group):
                stack.append((path, item))
            elif isinstance(item, h5py.Dataset):
                datasets.append((path, item))
            else:
                raise BundleError(f"{problem} holds {path}, which is neither a group nor an array.")
    return datasets


def _check_zip_directory(data: bytes, label: str) -> None:
    """Refuse a zip whose directory is far too big for a bundle, before `zipfile` parses it.

    zipfile turns the whole central directory into objects when it opens an
    archive, so its time and memory grow with the number of entries (an
    upload of a few MB can list hundreds of thousands). The end record, found
    where zipfile looks for it, gives the entry count and the directory's size;
    data without one is left to zipfile to refuse.
    """
    tail = len(data) - _EOCD.size
    if tail >= 0 and data.startswith(_EOCD_SIGNATURE, tail) and data.endswith(b"\x00\x00"):
        start = tail  # no archive comment: the record ends the file
    else:
        start = data.rfind(_EOCD_SIGNATURE, max(0, tail - (1 << 16)))
    if start < 0 or start > tail:
        return
    _, _, _, on_disk, entries, directory_bytes, _, _ = _EOCD.unpack_from(data, start)
    if start >= _ZIP64_LOCATOR.size and data.startswith(_ZIP64_LOCATOR_SIGNATURE, start - _ZIP64_LOCATOR.size):
        raise BundleError(f"{label} is a ZIP64 archive, made for more or bigger files than a bundle ever holds.")
    if max(on_disk, entries) > MAX_ZIP_ENTRIES:
        raise BundleError(f"{label} lists {max(on_disk, entries):,} entries; a bundle holds only {', '.join(BUNDLE_FILES)}.")
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise BundleError(f"{label} has a zip directory of {directory_bytes:,} bytes, far more than a bundle's "
                          f"{len(BUNDLE_FILES)} files need.")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, cap: int) -> bytes:
    """Read one zip member, refusing encrypted, oversized and suspiciously compressed entries."""
    if info.flag_bits & 0x1:
        raise BundleError(f"{label}: {info.filename} is encrypted.")
    if info.file_size > cap:
        raise BundleError(f"{label}: {info.filename} unpacks to {_mb(info.file_size)}, over the limit of {_mb(cap)}.")
    if info.file_size > (1 << 20) and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise BundleError(f"{label}: {info.filename} is compressed {info.file_size // max(info.compress_size, 1)}:1, which looks like a zip bomb.")
    try:
        with zf.open(info) as member:
            content = member.read(cap + 1)  # the header's size may lie: never read past the cap
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
        raise BundleError(f"{label}: {info.filename} cannot be unpacked ({_first_line(exc)}).") from None
    if len(content) > cap:
        raise BundleError(f"{label}: {info.filename} unpacks to more than {_mb(cap)}.")
    return content


def _parse_meta(raw: bytes, label: str) -> dict[str, Any]:
    try:
        # NaN and Infinity (which Python's json accepts) read as null: absent, like any implausible claim.
        meta = json.loads(raw.decode("utf-8"), parse_constant=lambda _: None)
    except (UnicodeDecodeError, ValueError, RecursionError):  # also numbers of thousands of digits, deep nesting
        raise BundleError(f"{label}: meta.json is not valid JSON.") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{label}: meta.json does not describe a CNN Playground bundle. Received: format={_short(meta.get('format') if isinstance(meta, dict) else meta)}")
    if meta.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{label}: bundle version {_short(meta.get('version'))} is not supported; this app reads version {BUNDLE_VERSION}.")
    names = meta.get("class_names")
    if (not isinstance(names, list) or not 2 <= len(names) <= MAX_CLASSES
            or not all(isinstance(n, str) and 0 < len(n) <= MAX_CLASS_NAME_CHARS and n.isprintable() for n in names)):
        raise BundleError(f"{label}: meta.json needs 2 to {MAX_CLASSES} printable class names. Received: class_names={_short(names)}")
    shape = meta.get("input_shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            or not all(1 <= d <= MAX_INPUT_SIDE for d in shape[:2]) or shape[2] not in (1, 3)):
        raise BundleError(f"{label}: meta.json needs an input shape [height, width, 1 or 3] with sides up to {MAX_INPUT_SIDE}. Received: input_shape={_short(shape)}")
    prepare = meta.get("prepare")
    if not isinstance(prepare, dict) or not all(isinstance(prepare.get(k), bool) for k in ("light_on_dark", "center")):
        raise BundleError(f"{label}: meta.json needs prepare options {{light_on_dark, center}} as true/false. Received: prepare={_short(prepare)}")
    meta["prepare"] = {"light_on_dark": prepare["light_on_dark"], "center": prepare["center"]}
    if "metrics" in meta and not isinstance(meta["metrics"], dict):
        raise BundleError(f"{label}: meta.json metrics must be an object. Received: metrics={_short(meta['metrics'])}")
    return meta


def _safe_dataset(dataset: str) -> str:
    """A bundle's dataset: named datasets stay; a path keeps only its last part, under the uploads folder.

    A spec from outside must never point this server at an arbitrary path.
    """
    if is_named_dataset(dataset):
        return dataset
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", re.split(r"[\\/]", dataset.rstrip("/\\"))[-1]).lstrip(".") or "imported"
    return str(get_settings().uploads_dir / tail)


def _plain_metrics(metrics: Any) -> dict[str, Any]:
    if not isinstance(metrics, dict):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


_CLAIM_RANGES = {  # metric -> (lowest, highest) plausible value
    "test_accuracy": (0.0, 1.0),
    "test_loss": (0.0, math.inf),
    "train_seconds": (0.0, math.inf),
    "images_per_second": (0.0, math.inf),
}


def _number(value: Any, low: float, high: float) -> float:
    """`value` as a finite float in [low, high]; NaN for anything else (text, bool, 1e999, out of range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return math.nan
    return number if math.isfinite(number) and low <= number <= high else math.nan


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
