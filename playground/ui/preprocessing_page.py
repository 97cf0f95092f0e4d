"""The Preprocessing page: what scaling, whitening and random augmentation do to the images and their pixel values.

The images and settings are those of a saved run or of the Playground
(`model_source.choose_network`). The normalisers and augmentations are the
model's own Keras layers, made under `network.BUILD_LOCK`.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.analysis import figures
from playground.data.dataset import Dataset
from playground.model.network import BUILD_LOCK
from playground.model.preprocess import augment_examples, normalize_examples
from playground.spec.experiment import ExperimentSpec, SpecError
from playground.spec.fields import NORMALIZATIONS
from playground.ui.model_source import choose_network, load_data

NO_BAR = {"displayModeBar": False}
STAT_SAMPLE = 2000  # training images whose mean/std the "dataset" normaliser uses here
TITLES = {
    "original": "original 0..255",
    "scaled": "scaled ÷255",
    "per_image": "per-image whitened",
    "dataset": "dataset standardised",
}


def _range(values: np.ndarray) -> str:
    """ "min .. max" of the values, 3 significant digits."""
    return f"{values.min():.3g} .. {values.max():.3g}"


def _new_samples() -> None:
    """Callback of "New samples": the next sample seed."""
    st.session_state["pre_seed"] = int(st.session_state.get("pre_seed", 0)) + 1


def sample_images(dataset: Dataset) -> np.ndarray:
    """A few training images, uint8 (N, H, W, C), drawn with a seed the user can change."""
    left, mid, right = st.columns([2, 2, 1], vertical_alignment="bottom")
    count = left.slider("Sample images", 1, 6, 3, key="pre_count")
    seed = mid.number_input("Sample seed", 0, 10**6, 0, key="pre_seed")
    right.button("New samples", on_click=_new_samples, icon=":material/shuffle:", key="pre_new")
    rng = np.random.default_rng(seed)
    return dataset.x_train[rng.choice(len(dataset.x_train), size=count, replace=False)]


def normalisation_section(spec: ExperimentSpec, samples: np.ndarray, dataset: Dataset) -> None:
    """Each sample under every normalisation, with the value ranges and histograms."""
    used = {"scale": "scaled"}.get(spec.preprocess.normalization, spec.preprocess.normalization)  # spec name -> example key
    x_sample = dataset.x_train[: STAT_SAMPLE]
    with BUILD_LOCK:  # makes the normalisation layers
        versions = normalize_examples(spec, samples, x_sample)
    st.markdown(
        f"This network uses **{NORMALIZATIONS.get(spec.preprocess.normalization, used)}** (✓ below). "
        "Scaling divides by 255 (0..1). Per-image whitening subtracts each image's own mean and divides by its own "
        "standard deviation, so bright and dim images look alike. Dataset standardisation subtracts the mean and "
        f"divides by the standard deviation of each channel over {len(x_sample):,} training images."
    )
    order = ["original", "scaled", "per_image", "dataset"]
    for i in range(len(samples)):
        titles = [f"{TITLES[k]}{' ✓' if k == used else ''}<br>{_range(versions[k][i])}" for k in order]
        st.plotly_chart(figures.image_row([versions[k][i] for k in order], titles, height=250), config=NO_BAR,
                        key=f"pre_norm_{i}")
    st.plotly_chart(
        figures.pixel_histograms({TITLES[k]: versions[k] for k in order}, bins=40, height=260),
        config=NO_BAR, key="pre_norm_hist",
    )
    st.caption("Pixel values of the samples above under each normalisation (share of pixels per bin). The shapes of "
               "the histograms barely change: normalisation moves and stretches the values, it does not reorder them.")


def augmentation_controls(spec: ExperimentSpec) -> ExperimentSpec:
    """Sliders for every augmentation, starting from the spec's settings; returns the spec with them."""
    p = spec.preprocess
    tag = spec.spec_id()  # new defaults when another spec is chosen
    a, b, c = st.columns(3)
    crop = a.slider("Random crop: pad by (pixels)", 0, 8, min(p.crop_padding, 8), key=f"pre_crop_{tag}")
    rotation = b.slider("Rotation up to ± (degrees)", 0, 90, int(min(p.rotation, 90)), key=f"pre_rotation_{tag}")
    shift = c.slider("Shift up to ± (fraction)", 0.0, 0.3, float(min(p.shift, 0.3)), 0.01, key=f"pre_shift_{tag}")
    d, e, f = st.columns(3)
    brightness = d.slider("Brightness ± (fraction)", 0.0, 0.5, float(min(p.brightness, 0.5)), 0.05, key=f"pre_brightness_{tag}")
    contrast = e.slider("Contrast ± (fraction)", 0.0, 0.5, float(min(p.contrast, 0.5)), 0.05, key=f"pre_contrast_{tag}")
    flip = f.toggle("Random horizontal flip", p.flip, key=f"pre_flip_{tag}")
    return spec.with_values(crop_padding=crop, rotation=float(rotation), shift=shift, brightness=brightness,
                            contrast=contrast, flip=flip)


def augmentation_section(spec: ExperimentSpec, samples: np.ndarray) -> None:
    """Random augmentations of each sample, drawn by the training pipeline's own Keras layers."""
    st.markdown("These are the Keras layers the model applies to every training batch (and never at test time). "
                "Move the sliders to try other strengths; the Playground's settings are the starting point.")
    trial = augmentation_controls(spec)
    per_image_col, seed_col = st.columns(2)
    per_image = per_image_col.slider("Augmented versions per image", 2, 8, 5, key="pre_versions")
    seed = seed_col.number_input("Augmentation seed", 0, 10**6, spec.seed, key="pre_aug_seed")
    try:
        with BUILD_LOCK:  # makes the augmentation layers
            augmented = augment_examples(trial, samples, len(samples) * per_image, int(seed))  # image i from sample i % N
    except (SpecError, ValueError) as exc:
        st.error(str(exc))
        return
    t = trial.preprocess
    if not (t.crop_padding or t.rotation or t.shift or t.brightness or t.contrast or t.flip):
        st.info("Every augmentation is off: training sees the images unchanged. Move a slider to see what it does.")
    for i in range(len(samples)):
        versions = [samples[i]] + [augmented[j] for j in range(i, len(augmented), len(samples))]
        titles = ["original"] + [f"augmented #{k + 1}" for k in range(per_image)]
        st.plotly_chart(figures.image_row(versions, titles, height=200), config=NO_BAR, key=f"pre_aug_{i}")
    st.plotly_chart(
        figures.pixel_histograms({"originals": samples, "augmented": augmented}, bins=40, overlay=True, height=260),
        config=NO_BAR, key="pre_aug_hist",
    )
    st.caption("Pixel values before and after augmentation, on the same 0..255 axis. Brightness shifts the histogram, "
               "contrast stretches or squeezes it around the mean, and crops, shifts and rotations bring in black (0) pixels.")


def render() -> None:
    """Draw the Preprocessing page."""
    st.title("Preprocessing")
    st.caption("What the network's first layers do to the images before any convolution: scaling or whitening, "
               "and (in training only) random augmentation.")
    network = choose_network("pre", label="Settings of")
    if network is None:
        st.stop()
    spec = network.spec
    if network.trained:
        st.caption(f"The preprocessing of run **{network.record.name or network.record.run_id}**.")
    else:
        st.caption(f"The Playground's current preprocessing, on {spec.data.dataset}.")
    dataset = load_data(spec)
    if dataset is None:
        st.stop()
    samples = sample_images(dataset)
    st.header("Scaling and whitening")
    normalisation_section(spec, samples, dataset)
    st.header("Augmentation")
    augmentation_section(spec, samples)
