"""Runs on disk: each trained model in its own folder, readable after a restart.

A run folder under the runs root (settings.runs_dir) holds

    spec.json                the ExperimentSpec (our JSON, never a pickled object)
    model.weights.h5         the weights; the model is rebuilt from spec.json, then loaded
    initial_first_conv.npy   the first conv kernel before training (absent without convs)
    history.json             per-epoch loss, accuracy, val_loss, val_accuracy, lr (null = none)
    metrics.json             test accuracy and loss, speed, parameters, epochs, stop reason (TrainResult.summary())
    meta.json                name, dataset, class names, input shape, creation time, owner, message
    tb/train, tb/validation  TensorBoard scalars per epoch: `tensorboard --logdir runs` shows every run

A run is written into a hidden temporary folder and renamed into place when
complete, so a half-written run is never listed. Saving again under the same
run id (a checkpoint after each epoch, then the final run) swaps the new
folder for the old one in one step, so the run is always whole and listed
once. Any folder that is not a readable run (damaged files, a foreign folder)
is listed with `damaged` set to the reason, and reading never raises for it. Models are only ever rebuilt from
our spec.json plus model.weights.h5: never from a user's .keras file, never
from a pickle.

For quotas and clean-up, without reading any run's weights: `count_runs(owner)`,
`total_bytes()`, `sweep_temporary()` (what killed saves left behind) and
`clear_older_than(days)`.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import math
import os
import re
import secrets
import shutil
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from playground.model import network as models
from playground.training import loop as training
from playground.settings import get_settings
from playground.data.uploads import folder_bytes
from playground.runs.record import RunRecord
from playground.spec.experiment import ExperimentSpec, SpecError

FORMAT_VERSION = 1  # written to meta.json; a folder with another version is reported as damaged
MAX_NAME_LENGTH = 200  # characters in a run name
_REQUIRED_FILES = ("meta.json", "spec.json", "model.weights.h5", "history.json", "metrics.json")
_OPTIONAL_FILES = ("initial_first_conv.npy", "tb")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# A run id is one folder name in the root: no separators, control characters or leading dot.
_RUN_ID = re.compile(r"[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,254}")
_TEMP_PREFIX = ".tmp-"
_AT_FDCWD = -100  # renameat2: paths relative to the working directory
_RENAME_EXCHANGE = 2  # renameat2 flag (Linux 3.15+): swap two existing paths atomically


class RunStoreError(ValueError):
    """A run cannot be saved, found, loaded, renamed or deleted; the message says why in one sentence."""


class RunStore:
    """Save, list, load, rename and delete runs under one root folder.

    Args:
        root: the runs folder; default `get_settings().runs_dir`, read when the
            store is made. It is created on the first save.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else get_settings().runs_dir

    # -- writing -------------------------------------------------------------

    def new_run_id(self) -> str:
        """A fresh run id: the UTC time, sortable to the millisecond, plus a short random part.

        Returns:
            An id for `save(..., run_id=...)`, e.g. to save a run's checkpoints
            and then its final state under one id.
        """
        now = datetime.now(timezone.utc)
        return f"{now:%Y%m%d-%H%M%S}{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"

    def save(self, result: training.TrainResult, spec: ExperimentSpec, dataset_info: Any, *,
             name: str | None = None, owner: str | None = None, run_id: str | None = None) -> RunRecord:
        """Write a training run as a run folder: a new one, or one replacing an earlier save of the run.

        Args:
            result: what `training.train` returned.
            spec: the spec it was trained with.
            dataset_info: the `data.dataset.Dataset`, or a dict with at least "name",
                "class_names" and "input_shape" (like `Dataset.info()`); its other
                plain keys are kept in meta.json under "dataset_info", and a
                "prepare" dict (how to prepare outside images) as meta["prepare"].
            name: the run's name; default: the name of the run it replaces, else
                "<preset> on <dataset> #<n>".
            owner: who made it (e.g. a browser session id); None = anyone.
            run_id: the id to save under (see `new_run_id`); default a new id.
                When a run with this id exists (e.g. a checkpoint of this run:
                `result` from `training.train`'s `on_epoch_end`), it is replaced
                in one step and its creation time kept. Non-finite numbers in
                `result` (the test accuracy of a checkpoint) are stored as null.

        Returns:
            The record of the saved run.

        Raises:
            RunStoreError: when the folder cannot be written (not writable, disk
                full) or `run_id` names a folder that is not a run; the trained
                model in `result` is still usable.
        """
        info = _dataset_fields(dataset_info)
        run_id = self.new_run_id() if run_id is None else run_id
        final = self._path(run_id)
        earlier = self._earlier_meta(final)
        if name is not None:
            name = _clean_name(name)
        else:
            name = earlier.get("name") or self._default_name(spec.preset, info["name"])
        meta = {
            "format": FORMAT_VERSION,
            "name": name,
            "dataset": info["name"],
            "class_names": info["class_names"],
            "input_shape": info["input_shape"],
            "created": earlier.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "owner": owner,
            "stop_reason": result.stop_reason,
            "message": result.message,
            "dataset_info": info["extra"],
        }
        if info["prepare"] is not None:
            meta["prepare"] = info["prepare"]
        # A fresh temporary name each time: a save killed half-way leaves its folder behind.
        temp = self.root / f"{_TEMP_PREFIX}{run_id}-{secrets.token_hex(2)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            temp.mkdir()
            (temp / "spec.json").write_text(spec.to_json())
            _write_json(temp / "history.json", _history_to_json(result.history))
            _write_json(temp / "metrics.json", _finite_or_none(result.summary().as_dict()))
            result.model.save_weights(str(temp / "model.weights.h5"))
            if result.initial_first_conv is not None:
                np.save(temp / "initial_first_conv.npy", np.asarray(result.initial_first_conv), allow_pickle=False)
            _write_tensorboard(temp / "tb", result.history)
            _write_json(temp / "meta.json", meta)  # written last: a folder with meta.json is complete
            _move_into_place(temp, final)
        except (OSError, tf.errors.OpError) as exc:
            shutil.rmtree(temp, ignore_errors=True)
            reason = getattr(exc, "strerror", None) or _first_line(exc)
            raise RunStoreError(
                f"Cannot save the run in {self.root} ({reason}); choose a writable runs folder "
                f"(PLAYGROUND_RUNS_DIR) with free space."
            ) from None
        return self.load(run_id)

    def read_files(self, run_id: str) -> dict[str, bytes]:
        """Every file of a run's folder, to send it to a machine that does not share this disk.

        Args:
            run_id: the run.

        Returns:
            {path inside the folder, "/"-separated: contents}.

        Raises:
            RunStoreError: no such run, or it cannot be read.
        """
        path = self._path(run_id)
        try:
            return {f.relative_to(path).as_posix(): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}
        except OSError as exc:
            raise RunStoreError(f"Cannot read run {run_id} ({exc.strerror or exc}).") from None

    def write_files(self, run_id: str, files: dict[str, bytes]) -> RunRecord:
        """Write a run's folder from its files (`read_files` elsewhere), replacing an earlier one whole.

        Args:
            run_id: the run.
            files: {path inside the folder, "/"-separated: contents}; paths must stay inside it.

        Returns:
            The written run.

        Raises:
            RunStoreError: a path outside the folder, or the folder cannot be written.
        """
        final = self._path(run_id)
        temp = self.root / f"{_TEMP_PREFIX}{run_id}-{secrets.token_hex(2)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            temp.mkdir()
            for name, data in sorted(files.items(), key=lambda item: item[0] == "meta.json"):  # meta.json last
                target = temp.joinpath(*name.split("/"))
                if name.startswith("/") or ".." in name.split("/") or not target.resolve().is_relative_to(temp.resolve()):
                    raise RunStoreError(f"A run file may not leave its folder. Received: {name!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            _move_into_place(temp, final)
        except OSError as exc:
            shutil.rmtree(temp, ignore_errors=True)
            raise RunStoreError(f"Cannot save the run in {self.root} ({exc.strerror or exc}); choose a writable runs "
                                f"folder (PLAYGROUND_RUNS_DIR) with free space.") from None
        except RunStoreError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return self.load(run_id)

    def rename(self, run_id: str, name: str) -> RunRecord:
        """Give a run a new name; returns the updated record."""
        record = self._readable(run_id)
        meta = _read_json(record.path / "meta.json")
        meta["name"] = _clean_name(name)
        try:
            _write_json(record.path / "meta.json", meta)
        except OSError as exc:
            raise RunStoreError(f"Cannot rename run {run_id} ({exc.strerror or exc}).") from None
        return self.load(run_id)

    def delete(self, run_id: str) -> None:
        """Delete a run folder (damaged ones too); refuses anything that is not a run folder in the root."""
        path = self._path(run_id)
        if path.is_symlink() or not path.is_dir():
            raise RunStoreError(f"There is no run folder {run_id!r} in {self.root}.")
        if not any((path / f).exists() for f in _REQUIRED_FILES + _OPTIONAL_FILES):
            raise RunStoreError(f"{path} does not look like a run folder, so it was not deleted.")
        trash = self.root / f"{_TEMP_PREFIX}deleting-{run_id}"
        try:
            os.rename(path, trash)  # it disappears from listings at once, whole
            shutil.rmtree(trash)
        except OSError as exc:
            raise RunStoreError(f"Cannot delete run {run_id} ({exc.strerror or exc}).") from None

    # -- housekeeping --------------------------------------------------------

    def count_runs(self, owner: str) -> int:
        """How many run folders `owner` saved (damaged ones too); only each folder's meta.json is read. Never raises."""
        return sum(_owner_of(path) == owner for path in self._folders())

    def total_bytes(self) -> int:
        """Bytes of every file in the runs folder, temporary folders included (0 when there is none). Never raises."""
        return folder_bytes(self.root)

    def sweep_temporary(self, min_age_s: float = 600.0) -> int:
        """Delete the temporary folders and files that a process killed while saving or deleting left in the runs folder.

        Args:
            min_age_s: only those not written to for this many seconds go, so
                a save in progress is never touched.

        Returns:
            How many were deleted. Never raises.
        """
        cutoff = time.time() - min_age_s
        try:
            leftovers = [p for p in self.root.iterdir() if p.name.startswith(_TEMP_PREFIX)]
        except OSError:
            return 0
        count = 0
        for path in leftovers:
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                continue  # already gone, or not ours to delete
            count += 1
        return count

    def clear_older_than(self, days: float) -> tuple[int, int]:
        """Delete every run (damaged ones too) not changed for `days` days: the teacher's clean-up.

        A run changes when it is saved (each checkpoint) or renamed. Folders that
        are not runs are left alone, like `delete` leaves them.

        Args:
            days: the age, in days, of a run folder's newest file (0 = every run).

        Returns:
            (runs deleted, bytes freed).
        """
        cutoff = time.time() - days * 86400
        count = freed = 0
        for path in self._folders():
            try:
                if _last_change(path) > cutoff:
                    continue
            except OSError:
                continue  # deleted meanwhile
            size = folder_bytes(path)
            try:
                self.delete(path.name)
            except RunStoreError:
                continue
            count += 1
            freed += size
        return count, freed

    # -- reading -------------------------------------------------------------

    def list_runs(self, owner: str | None = None) -> list[RunRecord]:
        """Every run folder, newest first; damaged ones have `damaged` set. Never raises.

        Args:
            owner: only runs of this owner; None lists everyone's.
        """
        records = [self._read(p) for p in sorted(self._folders(), key=lambda p: p.name, reverse=True)]
        if owner is not None:
            records = [r for r in records if r.owner == owner]
        return records

    def load(self, run_id: str) -> RunRecord:
        """The record of one run (with `damaged` set when it is not usable).

        Raises:
            RunStoreError: when there is no such run folder.
        """
        path = self._path(run_id)
        if not path.is_dir():
            raise RunStoreError(f"There is no run {run_id!r} in {self.root}.")
        return self._read(path)

    def load_model(self, run_id: str) -> keras.Model:
        """Rebuild a run's model from its spec.json and load model.weights.h5 into it.

        The model is not compiled; `training.train(..., model=model,
        initial_epoch=record.metrics["epochs_completed"])` continues it with its
        history.

        Raises:
            RunStoreError: when the run is missing or damaged, or its weights do
                not fit its spec.
        """
        record = self._readable(run_id)
        model = models.build_model(record.spec, record.input_shape, record.num_classes)
        try:
            with warnings.catch_warnings():
                # A mismatch raises ValueError below; Keras' warnings on the way only repeat it.
                warnings.simplefilter("ignore")
                model.load_weights(str(record.path / "model.weights.h5"))
        except (OSError, ValueError) as exc:
            raise RunStoreError(
                f"The weights of run {run_id} do not fit its spec ({_first_line(exc)})."
            ) from None
        training.remember_history(model, record.history, self.load_initial_first_conv(run_id))
        return model

    def load_initial_first_conv(self, run_id: str) -> np.ndarray | None:
        """The first conv kernel (k, k, C_in, F) before training, or None when the run has none."""
        path = self._path(run_id) / "initial_first_conv.npy"
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    # -- helpers -------------------------------------------------------------

    def _folders(self) -> list[Path]:
        """The folders in the root that may be runs (not hidden); [] when there is no readable root."""
        try:
            return [p for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir()]
        except OSError:
            return []  # no runs folder yet, or not readable: no runs

    def _path(self, run_id: str) -> Path:
        """The folder of `run_id`, refusing ids that would point outside the root."""
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise RunStoreError(f"Not a run id: {run_id!r}.")
        path = self.root / run_id
        if path.resolve().parent != self.root.resolve():
            raise RunStoreError(f"Run {run_id!r} is not inside the runs folder {self.root}.")
        return path

    def _earlier_meta(self, path: Path) -> dict[str, Any]:
        """meta.json of the run a save under `path` replaces; {} when there is none (or it is unreadable).

        Raises:
            RunStoreError: when `path` exists but is not a run folder, so it must not be replaced.
        """
        if not path.exists() and not path.is_symlink():
            return {}
        if path.is_symlink() or not path.is_dir() or not any((path / f).exists() for f in _REQUIRED_FILES):
            raise RunStoreError(f"{path} exists and is not a run folder, so no run was saved over it.")
        try:
            meta = _read_json(path / "meta.json")
        except (OSError, _Damaged):
            return {}
        if not isinstance(meta, dict):
            return {}
        return {key: meta[key] for key in ("name", "created") if isinstance(meta.get(key), str) and meta[key]}

    def _readable(self, run_id: str) -> RunRecord:
        record = self.load(run_id)
        if record.damaged:
            raise RunStoreError(f"Run {run_id} cannot be used: {record.damaged}.")
        return record

    def _read(self, path: Path) -> RunRecord:
        """Read a run folder; every problem becomes `damaged`, nothing raises."""
        record = RunRecord(run_id=path.name, path=path)
        try:
            _fill(record, path)
        except _Damaged as exc:
            record.damaged = str(exc)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            record.damaged = f"unreadable ({_first_line(exc)})"
        return record

    def _default_name(self, preset: str, dataset: str) -> str:
        prefix = f"{preset} on {Path(dataset).name or dataset} #"
        numbers = [int(r.name[len(prefix):]) for r in self.list_runs()
                   if r.name.startswith(prefix) and r.name[len(prefix):].isdigit()]
        return f"{prefix}{max(numbers, default=0) + 1}"


class _Damaged(Exception):
    """Why a folder is not a usable run (internal to reading)."""


def _dataset_fields(dataset_info: Any) -> dict[str, Any]:
    """Name, class names, input shape, "prepare" options and other plain keys of a Dataset or its info dict."""
    info = dict(dataset_info) if isinstance(dataset_info, Mapping) else dataset_info.info()
    try:
        fields = {
            "name": str(info["name"]),
            "class_names": [str(c) for c in info["class_names"]],
            "input_shape": [int(v) for v in info["input_shape"]],
        }
    except (KeyError, TypeError, ValueError):
        raise RunStoreError(
            f"dataset_info needs a name, class_names and input_shape. Received keys: {sorted(info)}"
        ) from None
    prepare = info.get("prepare")
    fields["prepare"] = json.loads(json.dumps(prepare, default=str)) if isinstance(prepare, Mapping) else None
    extra = {k: v for k, v in info.items() if k not in ("name", "class_names", "input_shape", "prepare")}
    fields["extra"] = json.loads(json.dumps(extra, default=str))  # plain JSON whatever arrived
    return fields


def _fill(record: RunRecord, path: Path) -> None:
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if len(missing) == len(_REQUIRED_FILES):
        raise _Damaged("not a run folder (none of the run files)")
    if "meta.json" in missing:
        raise _Damaged("incomplete run: meta.json is missing")
    meta = _read_json(path / "meta.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise _Damaged(f"meta.json is not a run description of format {FORMAT_VERSION}")
    record.name = str(meta.get("name", ""))
    record.dataset = str(meta.get("dataset", ""))
    record.created = str(meta.get("created", ""))
    record.owner = meta.get("owner") if isinstance(meta.get("owner"), str) else None
    record.message = str(meta.get("message", ""))
    names = meta.get("class_names")
    record.class_names = tuple(str(c) for c in names) if isinstance(names, list) else ()
    shape = meta.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise _Damaged(f"meta.json has no valid input_shape (found {shape!r})")
    record.input_shape = tuple(shape)
    if len(record.class_names) < 2:
        raise _Damaged("meta.json lists fewer than two class names")
    if missing:
        raise _Damaged(f"incomplete run: {', '.join(missing)} missing")
    try:
        record.spec = ExperimentSpec.from_json((path / "spec.json").read_text())
    except SpecError as exc:
        raise _Damaged(f"spec.json is not a valid spec ({exc})") from None
    record.history = _history_from_json(_read_json(path / "history.json"))
    metrics = _read_json(path / "metrics.json")
    if not isinstance(metrics, dict):
        raise _Damaged("metrics.json is not an object")
    record.metrics = {k: (math.nan if v is None else v) for k, v in metrics.items()}
    with open(path / "model.weights.h5", "rb") as f:
        if f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            raise _Damaged("model.weights.h5 is not an HDF5 weights file")


def _owner_of(folder: Path) -> str | None:
    """The owner named in a run folder's meta.json; None when it names none or cannot be read."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    owner = meta.get("owner") if isinstance(meta, dict) else None
    return owner if isinstance(owner, str) else None


def _last_change(folder: Path) -> float:
    """time.time() of the newest change to a run folder: the folder itself or an entry at its top."""
    with os.scandir(folder) as entries:
        return max([folder.stat().st_mtime, *(e.stat(follow_symlinks=False).st_mtime for e in entries)])


def _move_into_place(temp: Path, final: Path) -> None:
    """Make the complete run folder `temp` the folder `final`, replacing an earlier version of it.

    On Linux the two folders swap in one step, so readers (and a process
    killed half-way) see the old run or the new one, never none. Elsewhere the
    old folder is moved aside first: for an instant the run is not listed.
    """
    if not final.exists():
        os.rename(temp, final)
        return
    if _exchange(temp, final):
        shutil.rmtree(temp, ignore_errors=True)  # temp now holds the earlier version
        return
    aside = temp.with_name(f"{temp.name}-replaced")
    os.rename(final, aside)
    try:
        os.rename(temp, final)
    except OSError:
        os.rename(aside, final)  # put the earlier version back
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False (nothing changed) where the system cannot.

    Raises:
        OSError: when the swap is possible here but fails (e.g. permissions).
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the kernel or file system cannot swap
        return False
    raise OSError(error, os.strerror(error), str(second))


@functools.cache
def _renameat2() -> Any:
    """The C library's renameat2 (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise _Damaged(f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise _Damaged(f"{path.name} is not text") from None


def _write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    temp = path.with_name(f"{_TEMP_PREFIX}{path.name}")
    temp.write_text(json.dumps(data, indent=2, allow_nan=False))
    os.replace(temp, path)


def _finite_or_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def _history_to_json(history: dict[str, list[float]]) -> dict[str, list[float | None]]:
    return {k: [float(v) if math.isfinite(v) else None for v in values] for k, values in history.items()}


def _history_from_json(data: Any) -> dict[str, list[float]]:
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise _Damaged("history.json is not an object of lists")
    try:
        return {str(k): [math.nan if v is None else float(v) for v in values] for k, values in data.items()}
    except (TypeError, ValueError):
        raise _Damaged("history.json holds values that are not numbers") from None


def _write_tensorboard(folder: Path, history: dict[str, list[float]]) -> None:
    """Per-epoch scalars named as Keras' TensorBoard callback names them, so runs overlay.

    Written with `tf.summary.write` and the scalar plugin's metadata, so saving
    needs no `tensorboard` package; viewing them does (`pip install tensorboard`).
    """
    series = {
        "train": {"epoch_loss": "loss", "epoch_accuracy": "accuracy", "epoch_learning_rate": "lr"},
        "validation": {"epoch_loss": "val_loss", "epoch_accuracy": "val_accuracy"},
    }
    for split, tags in series.items():
        writer = tf.summary.create_file_writer(str(folder / split))
        try:
            with writer.as_default():
                for tag, key in tags.items():
                    for epoch, value in enumerate(history.get(key, []), start=1):
                        if math.isfinite(value):
                            tf.summary.write(tag, tf.constant(value, tf.float32), step=epoch, metadata=_SCALAR_METADATA)
        finally:
            writer.close()


# What TensorBoard's scalar plugin attaches to each scalar (plugin "scalars", content version 0 = b"").
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars", content=b"")
)


def _clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH:
        raise RunStoreError(f"A run name needs 1 to {MAX_NAME_LENGTH} characters. Received: {name!r}")
    return cleaned


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
