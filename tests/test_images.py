"""decode_image against a generated corpus of odd and broken files; prepare_for_model's layout rules."""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from image_corpus import (
    animated_gif,
    broken_files,
    encode,
    exif_rotated_jpeg,
    gradient,
    photo,
    png_header_bomb,
)
from playground.data.images import ImageError, decode_image, prepare_for_model, read_image

# ---------------------------------------------------------------------------
# Every mode, in the formats that can store it.
# ---------------------------------------------------------------------------

GRAY_MODES = {"1", "L", "LA", "I;16", "I", "F"}
MODE_FORMATS = [
    ("1", "PNG"), ("1", "BMP"), ("L", "PNG"), ("L", "JPEG"), ("L", "PPM"), ("LA", "PNG"), ("LA", "TIFF"),
    ("P", "PNG"), ("P", "GIF"), ("PA", "TIFF"), ("RGB", "PNG"), ("RGB", "JPEG"), ("RGB", "WEBP"), ("RGB", "BMP"),
    ("RGBA", "PNG"), ("RGBA", "WEBP"), ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("I;16", "PNG"), ("I;16", "TIFF"),
    ("I", "TIFF"), ("F", "TIFF"), ("YCbCr", "JPEG"), ("YCbCr", "TIFF"),
]


def _image_in_mode(mode: str) -> Image.Image:
    rgb = Image.fromarray(gradient(20, 30))
    if mode == "I;16":
        return Image.fromarray(gradient(20, 30, 1)[:, :, 0].astype(np.uint16) * 257)  # mode "I;16"
    if mode == "I":
        return Image.fromarray(gradient(20, 30, 1)[:, :, 0].astype(np.int32) * 1000 - 50_000)
    if mode == "F":
        return Image.fromarray(gradient(20, 30, 1)[:, :, 0].astype(np.float32) / 255 * 3.5 - 1.0)
    if mode == "PA":
        return rgb.convert("P").convert("PA")
    return rgb.convert(mode)


@pytest.mark.parametrize("mode,fmt", MODE_FORMATS)
def test_every_mode_decodes_to_uint8_gray_or_rgb(mode, fmt):
    data = encode(_image_in_mode(mode), fmt)
    pixels = decode_image(data, name=f"picture.{fmt.lower()}")
    assert pixels.dtype == np.uint8
    assert pixels.shape == (20, 30, 1 if mode in GRAY_MODES else 3)
    assert pixels.max() > 150 and pixels.min() < 100  # the gradient's range survived conversion


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_deep_images_are_rescaled_by_their_range(mode):
    pixels = decode_image(encode(_image_in_mode(mode), "TIFF"))
    assert pixels.min() == 0 and pixels.max() == 255


def test_float_image_with_nan_uses_the_finite_range():
    values = np.linspace(-2.0, 6.0, 64, dtype=np.float32).reshape(8, 8)
    values[0, 1] = np.nan  # shown as the low end
    pixels = decode_image(encode(Image.fromarray(values), "TIFF"))[:, :, 0]
    assert pixels[0, 0] == 0 and pixels[0, 1] == 0 and pixels[-1, -1] == 255
    assert pixels[4, 4] == round((values[4, 4] + 2) / 8 * 255)


def test_transparency_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red: white
    rgba[0, 1] = (0, 0, 0, 255)  # opaque black: black
    rgba[0, 2] = (0, 0, 0, 128)  # half black: mid gray
    pixels = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [0, 0, 0]
    assert abs(int(pixels[0, 2, 0]) - 127) <= 1
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    assert decode_image(encode(la, "PNG"))[:, :, 0].tolist() == [[255, 0]]
    # PNG's tRNS chunk: one gray value, or one RGB colour, marked transparent.
    gray = Image.fromarray(np.array([[0, 100]], np.uint8))
    assert decode_image(encode(gray, "PNG", transparency=0))[:, :, 0].tolist() == [[255, 100]]
    rgb = Image.fromarray(np.array([[[0, 0, 0], [10, 200, 10]]], np.uint8))
    assert decode_image(encode(rgb, "PNG", transparency=(0, 0, 0))).tolist() == [[[255, 255, 255], [10, 200, 10]]]


def test_palette_gif_with_a_transparent_index_is_composited():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    pixels = decode_image(encode(image, "GIF", transparency=0))
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[1, 1].tolist() == [200, 30, 30]


def test_animated_gif_gives_its_first_frame():
    assert np.all(decode_image(animated_gif((40, 140, 240))) == 40)


def test_exif_orientation_is_applied():
    decoded = read_image(exif_rotated_jpeg(orientation=6), name="phone.jpg")
    pixels = decoded.pixels.astype(int)
    # Orientation 6 means "rotate 90 degrees clockwise to view": the left (red) half comes on top.
    assert pixels.shape == (40, 20, 3)
    assert decoded.original_size == (20, 40)
    top, bottom = pixels[:15].mean(axis=(0, 1)), pixels[-15:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_size_hint_decodes_large_jpegs_at_a_reduced_scale():
    data = encode(photo(1600, 1200), "JPEG", quality=85)
    decoded = read_image(data, size_hint=(100, 100))
    assert decoded.original_size == (1600, 1200)
    assert 100 <= min(decoded.pixels.shape[:2]) < 300
    png = encode(photo(800, 600), "PNG")
    reduced = decode_image(png, size_hint=(100, 100))
    assert 100 <= min(reduced.shape[:2]) < 200


@pytest.mark.parametrize("name", sorted(broken_files()))
def test_broken_files_raise_one_line_image_errors(name):
    data, words = broken_files()[name]
    with pytest.raises(ImageError) as info:
        decode_image(data, name=name)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert words in message
    assert "\n" not in message and len(message) < 200


def test_error_without_a_name_is_a_sentence():
    with pytest.raises(ImageError, match=r"^The file is empty \(0 bytes\)\.$"):
        decode_image(b"")


def test_max_pixels_is_checked_before_decoding():
    data = encode(Image.fromarray(gradient(100, 100)), "PNG")
    with pytest.raises(ImageError, match="100x100 pixels"):
        decode_image(data, name="a.png", max_pixels=5_000)
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)


def test_header_bomb_is_refused_fast():
    start = time.process_time()
    with pytest.raises(ImageError):
        decode_image(png_header_bomb(60_000, 60_000))
    assert time.process_time() - start < 1.0  # refused from the header, nothing decoded


def test_decoding_in_threads_leaves_the_warning_filters_alone():
    before = list(warnings.filters)
    files = [data for data, _ in broken_files().values()] + VALID_FILES
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(_decode_or_image_error, files * 50))
    assert warnings.filters == before


def test_decode_image_takes_only_bytes():
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Fuzzing: nothing but ImageError, whatever the bytes.
# ---------------------------------------------------------------------------

VALID_FILES = [
    encode(Image.fromarray(gradient(16, 16)), "PNG"),
    encode(Image.fromarray(gradient(16, 16)), "JPEG", quality=80),
    encode(Image.fromarray(gradient(16, 16)).convert("P"), "GIF"),
    encode(Image.fromarray(gradient(16, 16)), "WEBP"),
    encode(Image.fromarray(gradient(16, 16)), "TIFF"),
    encode(Image.fromarray(gradient(16, 16)), "BMP"),
]


def _decode_or_image_error(data: bytes) -> None:
    try:
        pixels = decode_image(data, name="fuzz.png")
    except ImageError as exc:
        assert "\n" not in str(exc)
        return
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] in (1, 3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _decode_or_image_error(data)


@st.composite
def mutated_files(draw):
    data = bytearray(draw(st.sampled_from(VALID_FILES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_files())
def test_fuzz_mutated_valid_files(data):
    _decode_or_image_error(data)


# ---------------------------------------------------------------------------
# prepare_for_model
# ---------------------------------------------------------------------------


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


def test_photos_for_colour_datasets_keep_aspect_and_pad_with_the_background():
    photo = np.zeros((40, 80, 3), np.uint8)
    photo[:] = (250, 250, 250)  # light background
    photo[10:30, 30:50] = (200, 20, 20)  # red square in the middle
    prepared = prepare_for_model(photo, (32, 32, 3), light_on_dark=False, center=False)
    image = prepared.array
    assert not prepared.inverted and image.shape == (32, 32, 3)
    # 80x40 fits as 32x16 in rows 8..23; rows above and below are padding in the border colour.
    assert np.allclose(image[:8], 250) and np.allclose(image[24:], 250)
    assert image[16, 16, 0] > 150 and image[16, 16, 1] < 80


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


def test_phone_photo_is_prepared_in_milliseconds():
    pixels = np.asarray(photo(4032, 3024)).copy()
    pixels[1000:2000, 1500:2500] = 0
    times = []
    for _ in range(5):
        start = time.process_time()
        prepare_for_model(pixels, (28, 28, 1))
        times.append(time.process_time() - start)
    # CPU time of this process (other work on a shared machine does not count); target 10 ms.
    assert min(times) < 0.015


def test_decoded_jpeg_photo_round_trip_is_fast_with_a_size_hint():
    data = encode(photo(4000, 3000), "JPEG", quality=85)
    start = time.process_time()
    pixels = decode_image(data, size_hint=(256, 256))
    prepare_for_model(pixels, (32, 32, 3), light_on_dark=False, center=False)
    assert time.process_time() - start < 0.5
    assert max(pixels.shape[:2]) < 1100


def test_same_size_colour_image_passes_through_unchanged():
    pixels = decode_image(encode(Image.fromarray(gradient(30, 30)), "PNG")).astype(np.float64)
    prepared = prepare_for_model(pixels, (30, 30, 3), light_on_dark=False, center=False)
    assert np.allclose(prepared.array, pixels, atol=0.5)
