"""Predict the class of your own images with a trained run.

A `Predictor` holds one loaded model and everything needed to feed it an
image from outside the dataset: the input shape, the class names and whether
the training images were light strokes on a dark background (the MNIST
family), so that a dark-on-light drawing or photo is inverted before it
reaches the network.

The forward pass is `model(x, training=False)` inside a `tf.function` with a
fixed input signature: traced once per predictor, then about a millisecond
per image on a CPU for the default network. `model.predict` is never used
for single images (it builds a dataset pipeline on every call and costs
hundreds of milliseconds).

A predictor only reads its model, so one instance may serve several callers
(the Predict page keeps one per browser session and run; see that page).
Loading a run's model builds it under `network.BUILD_LOCK` (in
`RunStore.load_model`); predicting builds no layers.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from playground.analysis.familiarity import TrainingLook, unfamiliar
from playground.data.images import ImageError, read_image
from playground.data.prepare import MNIST_FILL, prepare_for_model
from playground.runs.record import RunRecord
from playground.spec.experiment import ExperimentSpec

if TYPE_CHECKING:  # Keras and the store import TensorFlow; they are imported only when a model is loaded
    import keras

    from playground.runs.store import RunStore

# How pictures are prepared for networks trained on the named datasets, as
# `data.datasets.prepare_options` finds it in the images themselves (a test checks
# the built-in ones agree; MNIST's is its documented preparation): light strokes on
# a dark background for the MNIST family, the share of the frame the content fills,
# and whether it is centred by its centre of mass (MNIST) or by its box.
NAMED_PREPARE_OPTIONS = {
    "mnist": {"light_on_dark": True, "center": True, "fill": round(MNIST_FILL, 2)},
    "fashion_mnist": {"light_on_dark": True, "center": False, "fill": 1.0},
    "digits": {"light_on_dark": True, "center": False, "fill": 1.0},
    "shapes": {"light_on_dark": True, "center": False, "fill": 0.68},
    "cifar10": {"light_on_dark": False, "center": False, "fill": 1.0},
}
_PHOTO_OPTIONS = {"light_on_dark": False, "center": False, "fill": 1.0}

# Large images are decoded at a reduced scale, never below this side (pixels).
_MIN_DECODE_SIDE = 256


def _tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(buffer, format="PNG")
    return buffer.getvalue()


_WARM_UP_PNG = _tiny_png()  # an 8x8 gray gradient


class PredictError(ValueError):
    """A predictor cannot be built for a run (damaged run, missing weights), in one sentence."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """The network's answer for one image.

    Attributes:
        name: the file name (or "camera", "drawing") the image came from.
        label: the predicted class name.
        class_index: index of the predicted class.
        probabilities: float32 (num_classes,), summing to 1.
        class_names: the run's class names, in index order.
        image: float32 (H, W, C) in 0..255, the image as the network sees it
            (resized, gray or RGB, inverted and centred where needed).
        inverted: True when the image was inverted to match the dataset.
        note: one line saying what was done to the image, for the page.
        seconds: server time for decode + prepare + forward pass.
        pixels: uint8 (h, w, C), the decoded picture before preparation (large
            JPEGs are decoded at a reduced scale), for showing next to `image`.
        steps: (caption, uint8 picture) per preparation step, ending with `image`.
        warning: one sentence when the picture looks unlike the training images or
            the network is unsure (`analysis.familiarity.unfamiliar`); "" otherwise.
    """

    name: str
    label: str
    class_index: int
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    image: np.ndarray
    inverted: bool
    note: str
    seconds: float
    pixels: np.ndarray
    steps: tuple[tuple[str, np.ndarray], ...] = ()
    warning: str = ""

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return float(self.probabilities[self.class_index])

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes as (name, probability), most probable first."""
        order = np.argsort(-self.probabilities)[:k]
        return [(self.class_names[i], float(self.probabilities[i])) for i in order]


@dataclass(frozen=True)
class PredictionFailure:
    """One image that could not be used.

    Attributes:
        name: the file name.
        message: one line naming the file and the reason, as the page shows it.
    """

    name: str
    message: str


def training_look(spec: ExperimentSpec) -> TrainingLook | None:
    """Statistics of the training images of `spec`'s dataset, or None when they cannot be read here."""
    from playground.data.dataset import DatasetError
    from playground.data.datasets import load_for_spec

    try:
        return TrainingLook.of(load_for_spec(spec).x_train)
    except (DatasetError, OSError, ValueError):
        return None


def prepare_options_for(dataset: str, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How to prepare outside pictures for a network trained on `dataset`.

    Args:
        dataset: a spec's dataset (a name, or the path of your own data).
        stored: options saved with the run or bundle ({"light_on_dark", "center"[, "fill"]}),
            used first when present; without "fill" (older bundles) MNIST's 20/28 goes with
            centring by mass and the whole frame with centring by box.

    Returns:
        {"light_on_dark": bool, "center": bool, "fill": float}, the keyword arguments of
        `data.prepare.prepare_for_model`. For your own data the images are looked
        at (`data.datasets.prepare_options`); data that cannot be read any more
        counts as photos.
    """
    if stored and isinstance(stored.get("light_on_dark"), bool):
        light = stored["light_on_dark"]
        center = light and bool(stored.get("center", False))
        fill = stored.get("fill")
        if not isinstance(fill, (int, float)) or isinstance(fill, bool) or not 0.1 <= fill <= 1.0:
            fill = round(MNIST_FILL, 2) if center else 1.0
        return {"light_on_dark": light, "center": center, "fill": float(fill)}
    if dataset in NAMED_PREPARE_OPTIONS:
        return dict(NAMED_PREPARE_OPTIONS[dataset])
    from playground.data.dataset import DatasetError
    from playground.data.datasets import load_dataset, prepare_options

    try:
        return prepare_options(load_dataset(dataset))
    except (DatasetError, OSError, ValueError):
        return dict(_PHOTO_OPTIONS)


class Predictor:
    """A loaded model plus what is needed to feed it outside images.

    Args:
        model: a model from `network.build_model` (input: raw pixels 0..255,
            output: softmax probabilities).
        class_names: one name per output unit.
        light_on_dark: whether the training images were light on dark
            (MNIST family); dark-on-light inputs are then inverted.
        center: centre the content by its centre of mass (MNIST) rather than its
            box; only with `light_on_dark`.
        fill: the share of the frame the content fills (MNIST: 20/28).
        look: statistics of the training images, to tell pictures unlike them;
            None when the training images are not at hand.
        run_id: the run the model belongs to (informational).
    """

    def __init__(self, model: keras.Model, class_names: Sequence[str], *, light_on_dark: bool, center: bool = False,
                 fill: float | None = None, look: TrainingLook | None = None, run_id: str = ""):
        input_shape = tuple(int(d) for d in model.input_shape[1:])
        outputs = int(model.output_shape[-1])
        if len(input_shape) != 3:
            raise PredictError(f"The model must take (height, width, channels) images. Received: input shape {input_shape}")
        if outputs != len(class_names):
            raise PredictError(
                f"The model has {outputs} outputs but the run names {len(class_names)} classes. Received: class_names={list(class_names)!r}"
            )
        import tensorflow as tf

        self.model = model
        self.class_names = tuple(str(c) for c in class_names)
        self.input_shape: tuple[int, int, int] = input_shape  # (H, W, C)
        self.light_on_dark = bool(light_on_dark)
        self.center = bool(center) and self.light_on_dark
        self.fill = fill
        self.look = look
        self.run_id = run_id
        # Decode at least this size (MNIST-style centring crops the content, so keep detail).
        side = max(_MIN_DECODE_SIDE, 4 * max(input_shape[:2]))
        self._decode_size = (side, side)
        # One trace for any batch size; autograph off: the body has no Python control flow.
        self._forward = tf.function(
            self._call_model,
            input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)],
            autograph=False,
            reduce_retracing=True,
        )
        # Trace and run the whole path once now (decode, prepare, forward), so the
        # first image a user uploads is as fast as the rest.
        self.predict_bytes(_WARM_UP_PNG, "warm-up")

    def _call_model(self, x):
        # (batch, H, W, C) raw pixels -> (batch, num_classes) probabilities; dropout and augmentation off.
        from playground.model.network import predict_probabilities

        return predict_probabilities(self.model, x)

    @classmethod
    def from_run(cls, run_id: str, store: RunStore | None = None) -> Predictor:
        """Load the model of a saved run (from its spec.json and model.weights.h5 only).

        Args:
            run_id: a run in `store`.
            store: the run store; default: the store at `settings.runs_dir`.

        Returns:
            The predictor. Raises PredictError when the run cannot be loaded.
        """
        from playground.runs.store import RunStore

        store = store or RunStore()
        try:
            record = store.load(run_id)
            if record.damaged:
                raise PredictError(f"Run {run_id!r} cannot be used: {record.damaged}")
            model = store.load_model(run_id)
        except PredictError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise PredictError(f"The model of run {run_id!r} could not be loaded: {_first_line(exc)}") from None
        options = prepare_options_for(record.spec.data.dataset, stored_options(record))
        return cls(model, record.class_names, look=training_look(record.spec), run_id=run_id, **options)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities of a batch of prepared images.

        Args:
            batch: float32 or uint8 (N, H, W, C) raw pixels in 0..255 of the input shape.

        Returns:
            float32 (N, num_classes).
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(f"Expected images of shape (N, {', '.join(map(str, self.input_shape))}). Received: shape {batch.shape}")
        return np.asarray(self._forward(batch), dtype=np.float32)

    def predict(self, pixels: np.ndarray, *, name: str = "", invert: str = "auto", started: float | None = None) -> Prediction:
        """Predict one decoded image.

        Args:
            pixels: uint8 (H, W, C) of any size, C = 1 or 3 (from `data.images.decode_image`).
            name: where the image came from, for messages.
            invert: "auto" (invert dark-on-light images for light-on-dark
                datasets), "always" or "never".
            started: `time.perf_counter()` when work on this image began
                (so decoding counts); default: now.

        Returns:
            The Prediction.
        """
        started = time.perf_counter() if started is None else started
        prepared = prepare_for_model(pixels, self.input_shape, invert=invert, light_on_dark=self.light_on_dark,
                                     center=self.center, fill=self.fill)
        image = np.asarray(prepared.array, dtype=np.float32)  # (H, W, C) 0..255
        probs = self.probabilities(image[None])[0]  # (num_classes,)
        index = int(np.argmax(probs))
        return Prediction(
            name=name, label=self.class_names[index], class_index=index, probabilities=probs,
            class_names=self.class_names, image=image, inverted=bool(prepared.inverted), note=prepared.note,
            seconds=time.perf_counter() - started, pixels=np.asarray(pixels), steps=prepared.steps,
            warning=unfamiliar(image, pixels, probs, self.look),
        )

    def predict_bytes(self, data: bytes, name: str = "", *, invert: str = "auto") -> Prediction:
        """Decode untrusted image bytes and predict them; raises ImageError with a one-line reason."""
        started = time.perf_counter()
        # A phone photo is decoded at a reduced scale: plenty for a 28x28 or 32x32 input.
        decoded = read_image(data, name=name, size_hint=self._decode_size)
        result = self.predict(decoded.pixels, name=name, invert=invert, started=started)
        width, height = decoded.original_size
        where = f"{decoded.format or 'image'} {width}x{height}"
        return dataclasses.replace(result, note=f"{where}; {result.note}")

    def predict_files(self, files: Iterable[tuple[str, bytes]], *, invert: str = "auto") -> list[Prediction | PredictionFailure]:
        """Predict each (name, bytes) pair; a bad file becomes a PredictionFailure, the rest still predict.

        Args:
            files: (file name, file content) pairs, e.g. from an upload.
            invert: as for `predict`.

        Returns:
            One Prediction or PredictionFailure per file, in order.
        """
        results: list[Prediction | PredictionFailure] = []
        for name, data in files:
            try:
                results.append(self.predict_bytes(data, name, invert=invert))
            except ImageError as exc:  # its message already names the file
                results.append(PredictionFailure(name, _first_line(exc)))
            except Exception as exc:  # noqa: BLE001 - an untrusted file must never take the batch down
                reason = f"could not be used ({type(exc).__name__}: {_first_line(exc)})"
                results.append(PredictionFailure(name, f"{name}: {reason}" if name else reason.capitalize()))
        return results


def stored_options(record: RunRecord) -> dict[str, Any] | None:
    """The prepare options saved with a run (meta.json's "prepare"), or None.

    Args:
        record: a saved run.
    """
    try:
        meta = json.loads((Path(record.path) / "meta.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
    prepare = meta.get("prepare") if isinstance(meta, dict) else None
    return prepare if isinstance(prepare, dict) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
