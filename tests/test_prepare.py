"""Pictures made to look like the training data: MNIST's preparation, photo crops, and every step kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from image_corpus import encode, gradient
from playground.analysis.familiarity import TrainingLook, unfamiliar
from playground.data.datasets import load_dataset, prepare_options
from playground.data.images import decode_image
from playground.data.prepare import prepare_for_model


def _drawing(dark_on_light: bool, size=(200, 160)) -> np.ndarray:
    """A thick vertical stroke off to the upper left, like a "1" written on paper."""
    h, w = size
    canvas = np.full((h, w), 235 if dark_on_light else 10, np.uint8)
    canvas[30:110, 40:52] = 20 if dark_on_light else 250
    return canvas[:, :, np.newaxis]


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image[:, :, 0]
    ys, xs = np.mgrid[0 : weights.shape[0], 0 : weights.shape[1]]
    return float((ys * weights).sum() / weights.sum()), float((xs * weights).sum() / weights.sum())


def test_dark_on_light_drawing_is_inverted_and_centred_like_mnist():
    prepared = prepare_for_model(_drawing(dark_on_light=True), (28, 28, 1))
    image = prepared.array
    assert image.dtype == np.float32 and image.shape == (28, 28, 1)
    assert prepared.inverted and "inverted" in prepared.note and "centred" in prepared.note
    assert image.min() >= 0 and image.max() == pytest.approx(255, abs=1)
    # Background pulled to 0; the stroke fits the 20x20 box; its mass sits in the middle.
    rows, cols = np.flatnonzero(image[:, :, 0].max(axis=1) > 0), np.flatnonzero(image[:, :, 0].max(axis=0) > 0)
    assert rows[-1] - rows[0] + 1 <= 21 and cols[-1] - cols[0] + 1 <= 21
    cy, cx = _centre_of_mass(image)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 0


def test_light_on_dark_drawing_is_not_inverted():
    prepared = prepare_for_model(_drawing(dark_on_light=False), (28, 28, 1))
    assert not prepared.inverted and prepared.array.max() > 200


def test_invert_can_be_forced_either_way():
    light = _drawing(dark_on_light=True)
    assert not prepare_for_model(light, (28, 28, 1), invert="never").inverted
    assert prepare_for_model(_drawing(dark_on_light=False), (28, 28, 1), invert="always").inverted
    with pytest.raises(ValueError, match="invert='sometimes'"):
        prepare_for_model(light, (28, 28, 1), invert="sometimes")


def test_photos_for_colour_datasets_are_centre_cropped_to_the_input_aspect():
    photo = np.zeros((40, 80, 3), np.uint8)
    photo[:] = (250, 250, 250)  # light background
    photo[10:30, 30:50] = (200, 20, 20)  # red square in the middle
    photo[:, :10] = (0, 0, 255)  # a blue band at the left edge: cropped away
    prepared = prepare_for_model(photo, (32, 32, 3), light_on_dark=False, center=False)
    image = prepared.array
    assert not prepared.inverted and image.shape == (32, 32, 3) and "centre-cropped to 32:32" in prepared.note
    # The middle 40x40 of the 80x40 picture fills the input: the square is 16x16 in the middle, no blue left.
    assert image[16, 16, 0] > 150 and image[16, 16, 1] < 80 and image[:, 0, 0].min() > 240  # no blue at the left
    assert np.allclose(image[:6], 250, atol=1)


def test_channels_are_converted_both_ways():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., 1] = 200  # pure green: luma 0.587 * 200
    gray = prepare_for_model(rgb, (10, 10, 1), light_on_dark=False, center=False)
    assert gray.array.shape == (10, 10, 1) and np.allclose(gray.array, 0.587 * 200, atol=1)
    back = prepare_for_model(np.full((10, 10), 90, np.uint8), (10, 10, 3), light_on_dark=False, center=False)
    assert back.array.shape == (10, 10, 3) and np.allclose(back.array, 90)


def test_rgba_input_is_composited_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent
    prepared = prepare_for_model(rgba, (10, 10, 3), light_on_dark=False, center=False)
    assert np.allclose(prepared.array, 255)


def test_blank_image_is_reported_not_refused():
    prepared = prepare_for_model(np.full((50, 50), 255, np.uint8), (28, 28, 1))
    assert "blank" in prepared.note and prepared.array.shape == (28, 28, 1)


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 2), (0, 28, 1), "28x28"])
def test_bad_input_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="input_shape"):
        prepare_for_model(np.zeros((5, 5), np.uint8), shape)


def test_bad_pixels_are_refused():
    with pytest.raises(ValueError, match="shape="):
        prepare_for_model(np.zeros((5, 5, 2), np.uint8), (28, 28, 1))


def test_same_size_colour_image_passes_through_unchanged():
    pixels = decode_image(encode(Image.fromarray(gradient(30, 30)), "PNG")).astype(np.float64)
    prepared = prepare_for_model(pixels, (30, 30, 3), light_on_dark=False, center=False)
    assert np.allclose(prepared.array, pixels, atol=0.5)


def test_every_step_is_kept_as_a_small_picture():
    prepared = prepare_for_model(_drawing(dark_on_light=True), (28, 28, 1))
    captions = [caption for caption, _ in prepared.steps]
    assert captions == ["your picture", "ink found, inverted", "cropped to the ink", "the network's input"]
    assert all(p.dtype == np.uint8 and p.ndim == 3 and max(p.shape[:2]) <= 96 for _, p in prepared.steps)
    photo = prepare_for_model(np.zeros((40, 80, 3), np.uint8), (32, 32, 3), light_on_dark=False)
    assert [c for c, _ in photo.steps] == ["your picture", "centre-cropped to 32:32", "the network's input"]


def test_uneven_lighting_is_not_taken_for_ink():
    # Paper lit from the left (from 140 to 250), a dark stroke in the middle: only the stroke is content.
    paper = np.tile(np.linspace(140, 250, 300, dtype=np.float32), (200, 1))
    paper[60:140, 140:160] = 30
    prepared = prepare_for_model(paper.astype(np.uint8), (28, 28, 1))
    image = prepared.array[:, :, 0]
    rows, cols = np.flatnonzero(image.max(axis=1) > 0), np.flatnonzero(image.max(axis=0) > 0)
    # A 80x20 stroke fitted in the 20x20 box: about 20 rows by 5 columns, nothing of the dim left side.
    assert 18 <= len(rows) <= 21 and len(cols) <= 8


def test_content_fill_and_centring_come_from_the_training_images():
    # Fashion-MNIST items fill the frame and are centred by their box; the built-in shapes fill about 2/3 of it.
    assert prepare_options(load_dataset("fashion_mnist")) == {"light_on_dark": True, "center": False, "fill": 1.0}
    shapes = prepare_options(load_dataset("shapes"))
    assert shapes["light_on_dark"] and 0.6 <= shapes["fill"] <= 0.75
    assert prepare_options(load_dataset("digits"))["fill"] == 1.0


def _digit_photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A built-in 8x8 digit (0..16) as a phone photo of ink on paper: 640x480, off-centre, rotated,
    unevenly lit, noisy and JPEG-compressed; returns the decoded uint8 (480, 640, 3) pixels."""
    ink = Image.fromarray((255 - digit * 15.9).astype(np.uint8)).resize((150, 150), Image.Resampling.BILINEAR)
    ink = ink.filter(ImageFilter.GaussianBlur(3)).rotate(float(rng.uniform(-8, 8)), fillcolor=255, expand=True)
    lighting = np.tile(np.linspace(185, 250, 640, dtype=np.float32), (480, 1))  # brighter to the right
    top, left = int(rng.integers(40, 480 - ink.height - 40)), int(rng.integers(60, 640 - ink.width - 60))
    page = lighting.copy()
    window = page[top : top + ink.height, left : left + ink.width]
    page[top : top + ink.height, left : left + ink.width] = np.minimum(window, np.asarray(ink, np.float32) * window / 255)
    page += rng.normal(0, 6, page.shape)
    rgb = np.repeat(np.clip(page, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return decode_image(encode(Image.fromarray(rgb), "JPEG", quality=70))


def test_photographed_digits_are_classified_about_as_well_as_the_test_set():
    # A classifier of the built-in 8x8 digits (scikit-learn's, as the images are 0..16) on the raw test
    # images, then on the same digits photographed on paper and prepared: the photos score nearly as well.
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("digits")
    options = prepare_options(ds)
    features = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255  # noqa: E731
    classifier = LogisticRegression(max_iter=2000).fit(features(ds.x_train), ds.y_train)
    test_accuracy = classifier.score(features(ds.x_test), ds.y_test)

    rng = np.random.default_rng(0)
    picks = rng.choice(len(ds.x_test), 150, replace=False)
    prepared = np.stack([
        prepare_for_model(_digit_photo(ds.x_test[i, :, :, 0] / 255 * 16, rng), (8, 8, 1), **options).array
        for i in picks
    ])
    photo_accuracy = classifier.score(features(prepared), ds.y_test[picks])
    assert test_accuracy > 0.9 and photo_accuracy >= test_accuracy - 0.12, (test_accuracy, photo_accuracy)


def test_a_colour_photo_sent_to_a_gray_digit_network_is_called_unfamiliar():
    ds = load_dataset("digits")
    look = TrainingLook.of(ds.x_train)
    probabilities = np.full(10, 0.02)
    probabilities[3] = 0.82  # a confident answer
    photo = gradient(120, 160, channels=3)
    prepared = prepare_for_model(photo, (8, 8, 1), **prepare_options(ds))
    warning = unfamiliar(prepared.array, photo, probabilities, look)
    assert warning.startswith("This picture looks unlike the training images (a colour picture")
    # A training image itself is familiar, and an unsure answer is named as such.
    assert unfamiliar(ds.x_test[0].astype(np.float32), ds.x_test[0], probabilities, look) == ""
    assert unfamiliar(ds.x_test[0].astype(np.float32), ds.x_test[0], np.full(10, 0.1), look).startswith(
        "The network is unsure")
