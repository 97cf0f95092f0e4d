"""The command line: train, predict, export code, and list datasets and presets, without a browser.

    python -m playground train --dataset fashion_mnist --preset default --set filters=16,32 --epochs 3 --json
    python -m playground predict --run runs/20261122-101500123-ab12 shirt.png shoe.jpg
    python -m playground code --preset lenet5 --dataset mnist
    python -m playground datasets
    python -m playground presets
    python -m playground serve --classroom --port 8501

Every error (an impossible setting, a missing dataset, an unreadable run or
file, a full disk) is one line on stderr and exit status 2, never a
traceback. `train` prints one progress line per epoch on stderr; with
`--json` the last line on stdout is one JSON object with the results: the
keys of the run's metrics.json (`TrainResult.summary()`), then run_dir,
message, dataset, preset and history.
`predict` prints one JSON line per file; a file that cannot be used gets an
"error" line and the others still run (the exit status is then 1).
`serve` starts the web app on this machine only; `serve --classroom` serves
it to every computer on the network, with each session's runs private and
a teacher code (PLAYGROUND_TEACHER_CODE, or a new one printed at start)
protecting the class challenge and the runs of other sessions.

TensorFlow is imported only by the commands that need it, so `presets` and
`datasets` answer at once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from playground.data.catalog import CATALOG, is_named_dataset
from playground.settings import TEACHER_CODE_ENV
from playground.spec.experiment import ExperimentSpec, SpecError, field_names
from playground.spec.presets import PRESETS, preset_spec
from playground.spec.validation import validate
from playground.training import events

EXIT_OK = 0
EXIT_SOME_FILES_FAILED = 1  # predict: at least one file could not be used
EXIT_ERROR = 2  # bad arguments, settings, data, run, or a failed save
APP_FILE = Path(__file__).resolve().parents[1] / "streamlit_app.py"  # what `serve` runs
DEFAULT_PORT = 8501
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (i, l, o, 0, 1): read aloud, typed by hand


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), in the style of every other error here."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(f"{message} (see `python -m playground {self.prog.split()[-1]} --help`)"
              if " " in self.prog else f"{message} (see `python -m playground --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m playground`."""
    parser = _Parser(prog="playground", description="CNN Playground from the command line.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser("train", help="train a network and save the run")
    train.add_argument("--dataset", required=True, help="a dataset name (see `datasets`) or a .npz, .zip or folder path")
    train.add_argument("--preset", default="default", help="the starting architecture (see `presets`); default: default")
    _add_set_option(train)
    train.add_argument("--epochs", type=int, help="passes over the training images (same as --set epochs=N)")
    train.add_argument("--time-budget", type=float, metavar="SECONDS",
                       help="stop training after this many seconds (same as --set time_budget=S)")
    train.add_argument("--out", metavar="DIR", help="runs folder to save in; default: PLAYGROUND_RUNS_DIR or ./runs")
    train.add_argument("--name", help='the run\'s name; default "<preset> on <dataset> #<n>"')
    train.add_argument("--threads", type=int, metavar="N",
                       help="TensorFlow threads (intra- and inter-op); default: every usable core")
    train.add_argument("--json", action="store_true", help="end with one JSON line of results on stdout")

    predict = commands.add_parser("predict", help="classify image files with a saved run")
    predict.add_argument("--run", required=True, metavar="DIR", help="a run folder (or a run id in the runs folder)")
    predict.add_argument("files", nargs="+", metavar="FILE", help="image files (PNG, JPEG, GIF, BMP, TIFF, WebP)")

    code = commands.add_parser("code", help="print Keras code that builds a network")
    source = code.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR", help="the network of a saved run")
    source.add_argument("--preset", help="the network of a preset")
    source.add_argument("--spec", metavar="FILE.json", help="the network of a spec saved as JSON")
    code.add_argument("--dataset", help="the dataset the preset is for; default: fashion_mnist")
    _add_set_option(code)

    datasets = commands.add_parser("datasets", help="which datasets are available here, and from where")
    datasets.add_argument("--json", action="store_true", help="one JSON line per dataset")

    presets = commands.add_parser("presets", help="the preset networks")
    presets.add_argument("--json", action="store_true", help="one JSON line per preset")

    serve = commands.add_parser("serve", help="start the web app (on this machine; --classroom: for a class)")
    serve.add_argument("--classroom", action="store_true",
                       help="serve every computer on the network, each session's runs private, with a teacher code "
                            f"({TEACHER_CODE_ENV}, or a new one printed at start)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port to serve on; default {DEFAULT_PORT}")
    return parser


def _add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting by its name, e.g. --set filters=16,32 --set learning_rate=0.01 "
                             "(repeatable)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (ValueError, OSError) as exc:  # SpecError, DatasetError, ImageError, RunStoreError, ... are ValueErrors
        _fail(_one_line(exc))


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    spec = _apply_sets(preset_spec(_preset_name(args.preset), args.dataset), args.set)
    if args.epochs is not None:
        spec = spec.with_values(epochs=args.epochs)
    if args.time_budget is not None:
        spec = spec.with_values(time_budget=args.time_budget)
    validate(spec)  # before loading anything: a wrong setting costs nothing

    from playground.data import datasets

    dataset = datasets.load_for_spec(spec)  # before TensorFlow: a missing dataset is reported at once
    validate(spec, dataset.input_shape)

    _import_tensorflow_quietly()
    from playground.training import loop as training
    from playground.runs.store import RunStore, RunStoreError

    training.configure_threads(args.threads, args.threads)
    store = RunStore(args.out) if args.out else RunStore()

    with _StopOnInterrupt() as stop:
        result = training.train(spec, dataset, on_progress=_EpochPrinter(), should_stop=stop)
    _say(result.message)
    save_error = ""
    run_dir = None
    try:
        record = store.save(result, spec, dataset, name=args.name)
        run_dir = str(record.path)
        _say(f"Saved run {record.name!r} in {record.path}")
    except RunStoreError as exc:
        save_error = str(exc)
    if args.json:
        print(json.dumps(_plain({
            **result.summary().as_dict(),  # the keys of the run's metrics.json
            "run_dir": run_dir,
            "message": result.message,
            "dataset": dataset.name,
            "preset": spec.preset,
            "history": result.history,
        })))
    else:
        print(f"{result.message} Run folder: {run_dir or '(not saved)'}")
    if save_error:
        _fail(save_error)
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    store, run_id = _locate_run(args.run)
    from playground.analysis.predict import Predictor

    predictor = Predictor.from_run(run_id, store)
    status = EXIT_OK
    for file in args.files:
        try:
            data = Path(file).read_bytes()
            prediction = predictor.predict_bytes(data, name=file)
        except (ValueError, OSError) as exc:  # ImageError and unreadable files: report, go on
            print(json.dumps({"file": file, "error": _one_line(exc)}), flush=True)
            status = EXIT_SOME_FILES_FAILED
            continue
        probabilities = {name: round(float(p), 6) for name, p in zip(prediction.class_names, prediction.probabilities)}
        print(json.dumps({"file": file, "label": prediction.label, "probabilities": probabilities}), flush=True)
    return status


def _code(args: argparse.Namespace) -> int:
    if args.run:
        store, run_id = _locate_run(args.run)
        record = store.load(run_id)
        if record.damaged:
            raise SpecError(f"Run {run_id} cannot be used: {record.damaged}.")
        spec, input_shape, num_classes = _apply_sets(record.spec, args.set), record.input_shape, record.num_classes
    else:
        if args.spec:
            spec = ExperimentSpec.from_json(Path(args.spec).read_text())
            if args.dataset:
                spec = spec.with_values(dataset=args.dataset)
        else:
            spec = preset_spec(_preset_name(args.preset), args.dataset or "fashion_mnist")
        spec = _apply_sets(spec, args.set)
        input_shape, num_classes = _shape_and_classes(spec)
    _import_tensorflow_quietly()
    from playground.model.network import export_keras_code

    print(export_keras_code(spec, input_shape, num_classes), end="")
    return EXIT_OK


def _datasets(args: argparse.Namespace) -> int:
    from playground.data.datasets import dataset_status

    for status in dataset_status():
        if args.json:
            print(json.dumps({"name": status.name, "title": status.title,
                              "available_locally": status.available_locally, "where": status.where}))
        else:
            here = "available here" if status.available_locally else "not here"
            print(f"{status.name:<14} {status.title:<24} {here:<15} {status.where}")
    return EXIT_OK


def _presets(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        if args.json:
            print(json.dumps({"name": preset.name, "title": preset.title, "description": preset.description}))
        else:
            print(f"{preset.name:<15} {preset.title} — {preset.description}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise SpecError(f"--port needs a port number from 1 to 65535. Received: --port {args.port}")
    if not APP_FILE.is_file():
        raise SpecError(f"The app file {APP_FILE} is missing; run `serve` from a checkout of CNN Playground.")
    argv, env, new_code = serve_command(classroom=args.classroom, port=args.port, environ=os.environ)
    if args.classroom:
        print(f"Teacher code: {new_code}" if new_code else f"Teacher code: the one in {TEACHER_CODE_ENV}", flush=True)
        print(f"Students open http://<this computer's address>:{args.port} (every session sees only its own runs).", flush=True)
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # Streamlit takes over this process: Ctrl-C and signals reach it directly


def serve_command(*, classroom: bool, port: int, environ: Mapping[str, str]) -> tuple[list[str], dict[str, str], str]:
    """How `serve` starts Streamlit: its command line, its environment, and a new teacher code to announce.

    Args:
        classroom: serve every computer on the network (all addresses), each
            browser session seeing only its own runs (PLAYGROUND_PRIVATE_RUNS=1),
            with a teacher code; else this machine only, settings unchanged.
        port: the port to serve on.
        environ: the environment to start from (os.environ).

    Returns:
        (argv, environment, new code): the code is the one generated for
        this start, "" when none was (not a classroom, or PLAYGROUND_TEACHER_CODE
        already holds one). Errors are never shown in detail to browsers either way.
    """
    env = dict(environ)
    new_code = ""
    if classroom:
        env["PLAYGROUND_PRIVATE_RUNS"] = "1"
        if not env.get(TEACHER_CODE_ENV):
            new_code = env[TEACHER_CODE_ENV] = new_teacher_code()
    argv = [
        sys.executable, "-m", "streamlit", "run", str(APP_FILE),
        "--server.address", "0.0.0.0" if classroom else "localhost",
        "--server.port", str(port),
        "--server.headless", "true",
        "--client.showErrorDetails", "none",
    ]
    return argv, env, new_code


def new_teacher_code() -> str:
    """A fresh random teacher code, easy to read out and type: e.g. "k7dq-m2xa-9wpe" (about 59 bits)."""
    return "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(3))


_COMMANDS = {"train": _train, "predict": _predict, "code": _code, "datasets": _datasets, "presets": _presets, "serve": _serve}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter kept off stderr.

    On machines without CUDA, TensorFlow's import prints several log lines
    about missing GPU drivers before its log level applies; they would bury
    the CLI's own lines. Python errors raised by the import still show.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ logs: errors and above are ours to report
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _preset_name(name: str) -> str:
    if name not in PRESETS:
        raise SpecError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.", "preset")
    return name


def _apply_sets(spec: ExperimentSpec, items: Sequence[str]) -> ExperimentSpec:
    """Apply --set KEY=VALUE items (flat spec field names) in order."""
    known = field_names()
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--set needs KEY=VALUE. Received: --set {item}")
        if key not in known:
            raise SpecError(f"Unknown setting {key!r} in --set {item}: the settings are {', '.join(known)}.", key)
        spec = spec.with_values(**{key: value})
    return spec


def _shape_and_classes(spec: ExperimentSpec) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of a spec's dataset: known for named datasets, read for paths."""
    name = spec.data.dataset
    if is_named_dataset(name):
        return CATALOG[name].input_shape, CATALOG[name].num_classes
    from playground.data.datasets import load_for_spec

    dataset = load_for_spec(spec)
    return dataset.input_shape, dataset.num_classes


def _locate_run(where: str):
    """(store, run_id) for a run folder path, or for a run id in the default runs folder."""
    path = Path(where).expanduser()
    if not path.is_dir() and len(path.parts) != 1:
        raise SpecError(f"There is no run folder at {path}.")
    _import_tensorflow_quietly()
    from playground.runs.store import RunStore

    if path.is_dir():
        return RunStore(path.resolve().parent), path.resolve().name
    return RunStore(), where


class _EpochPrinter:
    """on_progress for the CLI: one line on stderr when training starts and after each epoch."""

    def __call__(self, event: events.TrainingEvent) -> None:
        if isinstance(event, events.Start):
            _say(
                f"Training {event.train_size} images ({event.val_size} for validation), "
                f"{event.epochs - event.initial_epoch} epochs of {event.steps_per_epoch} steps, "
                f"{event.params:,} weights"
            )
        elif isinstance(event, events.Epoch):
            validation = (f"  val_loss {event.val_loss:.4f}  val_accuracy {event.val_accuracy:.4f}"
                          if event.val_loss is not None else "")
            _say(
                f"epoch {event.epoch}  loss {event.loss:.4f}  accuracy {event.accuracy:.4f}{validation}  "
                f"{event.images_per_second:.0f} img/s  {event.seconds:.1f} s"
            )


class _StopOnInterrupt:
    """should_stop for the CLI: the first Ctrl-C stops training after the current batch (the run is kept).

    Used as a context manager, so the previous Ctrl-C handler is back afterwards.
    """

    def __enter__(self) -> "_StopOnInterrupt":
        self.requested = False
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts
        _say("Stopping after this batch (Ctrl-C again to abort)...")

    def __call__(self) -> bool:
        return self.requested


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_ERROR)
