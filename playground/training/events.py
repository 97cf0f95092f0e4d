"""The training protocol, declared once: what training reports, what a worker sends, what the manager commands.

Every message is a small frozen dataclass of plain values (and small numpy
arrays in the probe and live-view records: uint8 pictures, a few counts), so
it pickles small across the worker's pipes. The
kinds, by who sends them to whom:

    training events  `loop.train` -> its on_progress:   Start, Batch, Epoch, Probe; with live views also
                                                        ProbeImage, Network, DecisionSet, Decision, Weights  (TrainingEvent)
    job events       worker -> manager, for one job:    the training events, ProbeImage, Checkpoint, Paused,
                                                        Resumed, then one of Done | Failed | Stopped   (JobEvent)
    worker messages  worker -> manager:                 Ready once TensorFlow is imported, then each job
                                                        event wrapped as FromJob(job_id, event), and
                                                        Prepared after each PrepareData it carried out  (WorkerMessage)
    commands         manager -> worker:                 RunJob, ControlJob, SetProbe, PrepareData, Shutdown  (Command)

Epochs count from 1 (epoch 0 = before training) and from the model's first
epoch, so a continued model's epochs go on where they stopped.

`TrainSummary` holds the numbers of a training result, named as a run's
metrics.json names them (`TrainResult.summary()` writes it); the "done" event,
the run store and the CLI all use it.

Standard library only: the web server imports this without TensorFlow or NumPy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

# Per-epoch values of a training history (`TrainResult.history`, a run's history.json), in this order.
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


@dataclass(frozen=True)
class TrainSummary:
    """The numbers of a training result: exactly the keys and order of a run's metrics.json."""

    test_accuracy: float  # accuracy on the whole test set (NaN for a checkpoint: not evaluated)
    test_loss: float  # loss on the whole test set (NaN for a checkpoint)
    train_seconds: float  # wall time of fitting, pauses and test evaluation excluded
    images_per_second: float  # training images per second of the training steps (first, compiling step excluded)
    params: int  # number of weights of the model
    epochs_completed: int  # epochs the model has finished, counting those of earlier calls it continues
    stop_reason: str  # one of `loop.STOP_REASONS` ("imported" for a model from a bundle)
    test_size: int  # test images evaluated (0 for a checkpoint)

    def as_dict(self) -> dict[str, Any]:
        """{key: value} in metrics.json's order."""
        return asdict(self)


# ---------------------------------------------------------------------------
# Training events: what `loop.train` reports while it trains
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Training is about to start (sent before anything slow, so the page can show it at once)."""

    epochs: int  # the epoch this call trains up to
    initial_epoch: int  # epochs the model had finished before this call
    steps_per_epoch: int  # batches per epoch
    batch_size: int  # images per batch (the last batch of an epoch may hold fewer)
    params: int  # number of weights of the model
    train_size: int  # training images per epoch
    val_size: int  # validation images (0 without a validation split)


@dataclass(frozen=True)
class Batch:
    """Batches trained so far in the epoch in progress: at most about 10 of these per second.

    For a new model the first one, at step 0, is the untrained model on the first batch.
    """

    epoch: int  # the epoch in progress (from 1)
    step: int  # batches finished in it (from 1; 0 = the untrained model)
    steps: int  # batches per epoch
    seen: int  # images trained on in this epoch
    loss: float  # mean training loss of the epoch so far (of the first batch at step 0)
    accuracy: float  # mean training accuracy of the epoch so far
    images_per_second: float | None  # training speed in this epoch; None at step 0 (nothing trained yet)
    elapsed: float  # seconds of training so far in this call, pauses excluded


@dataclass(frozen=True)
class Epoch:
    """An epoch finished (validated, not diverged) and entered the history."""

    epoch: int  # the epoch (from 1)
    loss: float  # mean training loss over the epoch
    accuracy: float  # mean training accuracy over the epoch
    val_loss: float | None  # loss on the validation images; None without a validation split
    val_accuracy: float | None  # accuracy on the validation images; None without a validation split
    seconds: float  # wall time of the epoch, validation included, pauses excluded
    images_per_second: float  # training speed of its steps
    lr: float  # the learning rate at its end
    elapsed: float  # seconds of training so far in this call, pauses excluded


@dataclass(frozen=True, eq=False)
class Probe:
    """Feature maps of the probe image: once before training, then after every finished epoch."""

    epoch: int  # the epochs the weights have seen (initial_epoch before training)
    maps: dict[str, np.ndarray]  # layer name -> float32 (H, W, F) outputs of the first conv blocks


@dataclass(frozen=True, eq=False)
class ProbeImage:
    """The image the Probe and Network events show: sent first, and again whenever the user picks another."""

    image: np.ndarray  # uint8 (H, W, C), the model's input size
    label: str  # what it is, for people: its class name, or e.g. "your picture"


# The live views of the Playground's network diagram (see `analysis.network_view`): each column
# of the diagram for the probe image, the decision picture of a fixed set of images, and the
# weights. Values travel as small uint8 pictures so they can be sent several times an epoch.


@dataclass(frozen=True, eq=False)
class Column:
    """One column of the network diagram for one image."""

    name: str  # "input", "block1", ..., "dense1", ..., "output"
    kind: str  # "input", "conv", "dense" or "output"
    values: np.ndarray  # uint8: input (H, W, C); conv (n, h, w); dense (n,); output (K,) probability x 255
    total: int  # maps or units the layer has (conv: F; dense: units; output: classes)
    shown: tuple[int, ...]  # which of them `values` holds, in order
    shape: tuple[int, ...]  # the layer's output shape for one image: (h, w, F) or (units,)
    pooled: tuple[int, int] | None = None  # (h, w) after the block's pooling; None without pooling
    stats: np.ndarray | None = None  # conv: float32 (n, 3) mean, max and share of zeros of each shown map


@dataclass(frozen=True, eq=False)
class Network:
    """The network diagram for the probe image with the weights of the moment.

    Sent before training, several times an epoch (at most one per
    `callbacks.NETWORK_EVENT_INTERVAL`) and after every finished epoch.
    """

    epoch: float  # epochs trained: whole before training and after an epoch, fractional within one
    columns: tuple[Column, ...]  # input, one per conv block, one per dense layer, output


@dataclass(frozen=True, eq=False)
class DecisionSet:
    """The fixed images the decision picture follows, a few of each class (sent once, before training)."""

    images: np.ndarray  # uint8 (n, H, W, C), validation images (test images without a validation split)
    labels: np.ndarray  # int16 (n,) their classes
    class_names: tuple[str, ...]  # one per class


@dataclass(frozen=True, eq=False)
class Decision:
    """How the network treats the DecisionSet's images: before training and after every finished epoch."""

    epoch: int  # the epochs the weights have seen
    predicted: np.ndarray  # int16 (n,) predicted class of each image
    correct: np.ndarray  # bool (n,) whether it is the image's label
    points: np.ndarray  # float16 (n, 2) penultimate features projected to 2-D, axes kept from the last Decision


@dataclass(frozen=True, eq=False)
class Kernels:
    """The filters that make the maps a conv column shows."""

    layer: str  # the conv layer (the block's last conv)
    weights: np.ndarray  # float16 (n_out, n_in, k, k): a filter per shown map, over a sample of its input channels
    inputs: tuple[int, ...]  # the input channels `weights` holds
    total_inputs: int  # the input channels the layer has


@dataclass(frozen=True, eq=False)
class Weights:
    """The weights of every conv and dense layer: before training and after every finished epoch."""

    epoch: int  # the epochs the weights have seen
    counts: dict[str, np.ndarray]  # layer name -> int32 (bins,) kernel weights in each bin
    edges: dict[str, np.ndarray]  # layer name -> float32 (bins + 1,) bin edges, the same for the whole job
    kernels: dict[str, Kernels]  # conv column name ("block1", ...) -> the filters of its shown maps


TrainingEvent = Start | Batch | Epoch | Probe | ProbeImage | Network | DecisionSet | Decision | Weights


# ---------------------------------------------------------------------------
# Job events: what a worker adds about the job it trains
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The run as it stood after an epoch was saved (test set not evaluated)."""

    run_id: str  # the job's run, under the id its final save will use
    epoch: int  # the epoch whose weights the saved run holds


@dataclass(frozen=True)
class Paused:
    """The job paused (Pause, or the end of a Step)."""

    epoch_end: bool  # paused at the end of an epoch (else after a batch)


@dataclass(frozen=True)
class Resumed:
    """The job goes on after a pause."""

    paused_seconds: float  # how long it was paused (not training time)


@dataclass(frozen=True)
class Done:
    """The job ended with a result: trained (maybe stopped early), evaluated, and normally saved."""

    summary: TrainSummary  # the result's numbers
    message: str  # one sentence for people: what happened and the test accuracy, or what to change
    history: dict[str, list[float]]  # {key in HISTORY_KEYS: one value per finished epoch}
    run_id: str | None  # the saved run (the last checkpoint when the final save failed); None = not saved
    save_error: str  # why the run could not be saved; "" when it was


@dataclass(frozen=True)
class Failed:
    """The job ended without a result."""

    message: str  # one line: why
    dataset_error: bool  # the dataset could not be loaded (the page shows it next to the dataset)
    run_id: str | None  # the run saved after the last finished epoch; None when none was saved


@dataclass(frozen=True)
class Stopped:
    """The job ended without a result: reset, cancelled, or its worker died."""

    message: str = ""  # why, when the manager ended it (its worker died); "" when the worker discarded it
    run_id: str | None = None  # the run saved after the last finished epoch of a dead worker; None = none


JobEvent = TrainingEvent | Checkpoint | Paused | Resumed | Done | Failed | Stopped
FINAL_EVENTS = (Done, Failed, Stopped)  # the last event of every job


# ---------------------------------------------------------------------------
# Worker messages: what crosses the event pipe
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The worker has imported TensorFlow and takes jobs."""

    pid: int  # its process id
    where: str = ""  # where it trains, for people: "this machine, CPU" or "node 1a2b3c4d (lab-pc-3), 1 GPU"
    node_id: str = ""  # the Ray node it runs on; "" = a process of the app
    shares_disk: bool = True  # it reads and writes the app's runs and data folders (else files travel in messages)


@dataclass(frozen=True)
class Prepared:
    """The worker has finished (or given up) the PrepareData command it took; the manager may send the next."""


@dataclass(frozen=True, eq=False)
class FromJob:
    """One event of one job."""

    job_id: str  # the job it is about
    event: JobEvent


@dataclass(frozen=True, eq=False)
class RunFolder:
    """The files of a run a worker saved, for an app that does not share the worker's disk (a Ray node).

    Sent before the Checkpoint, Done or Failed event that names the run; the app
    writes them as the run's folder, replacing an earlier save of it.
    """

    run_id: str  # the run
    files: dict[str, bytes]  # path inside the run folder ("/"-separated) -> contents


WorkerMessage = Ready | Prepared | FromJob | RunFolder


# ---------------------------------------------------------------------------
# Commands: what crosses the command pipe
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunJob:
    """Train a job."""

    job_id: str  # the manager's id of the job
    owner: str  # the session the job belongs to (stored with its run)
    spec: str  # the ExperimentSpec as JSON
    env: dict[str, str]  # the app's PLAYGROUND_* settings at submit time (runs and data folders)
    continue_from: str | None  # a run whose saved model trains `spec`'s epochs more; None = a new model
    step: bool  # pause after the first epoch (the Step button on a fresh model)
    # For a worker that does not share the app's disk (a Ray node): the continued run's folder
    # (path inside it -> contents), and the dataset file the spec names when it is not a named dataset.
    run_files: dict[str, bytes] | None = None
    dataset_file: bytes | None = None


ControlAction = Literal["pause", "resume", "step", "stop", "discard"]


@dataclass(frozen=True)
class ControlJob:
    """Change the course of the running job (see `worker.Control.apply`)."""

    job_id: str  # the job; a command for any other job is ignored
    action: ControlAction  # "discard" stops and throws the model away (Reset, or the session is gone)


@dataclass(frozen=True, eq=False)
class SetProbe:
    """Show the running job's network diagram for another image, from its next refresh on."""

    job_id: str  # the job; a command for any other job is ignored
    probe: ProbeImage  # the image, already the size of the job's input


@dataclass(frozen=True)
class PrepareData:
    """Load a spec's dataset into the worker's cache while it is idle, so the next job starts sooner.

    The worker keeps at most one waiting (a newer one replaces it) and drops it when a job arrives.
    """

    spec: str  # the ExperimentSpec as JSON
    env: dict[str, str]  # the app's PLAYGROUND_* settings (data folders)


@dataclass(frozen=True)
class Shutdown:
    """Discard the running job and exit."""


Command = RunJob | ControlJob | SetProbe | PrepareData | Shutdown
