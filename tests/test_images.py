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
from playground.data.images import ImageError, decode_image, read_image

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
