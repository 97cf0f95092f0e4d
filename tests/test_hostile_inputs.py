"""Hostile files a student could upload: each is refused in one sentence, or read within bounded memory and time.

Every file here is crafted for real in the test (no mocks): zip bombs, huge
array headers, bool arrays that balloon when converted, deep zip paths,
16-bit images, icons hiding a large PNG.
"""

import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from playground.data.dataset import DatasetError
from playground.data.datasets import load_dataset
from playground.data.folders import read_image_zip
from playground.data.images import ImageError, decode_image
from playground.data.npz import read_npz


def _labels(n: int, classes: int = 2) -> np.ndarray:
    return (np.arange(n) % classes).astype(np.int64)


def _npz_bytes(compressed: bool = False, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    """A .npy version 1.0 header promising an array of `shape` (the data itself may be absent)."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


# ---------------------------------------------------------------------------- .npz


def test_npz_of_zeros_compressed_a_thousand_times_is_refused_as_a_zip_bomb():
    zeros = np.zeros((4000, 28, 28), np.uint8)  # 3 MB that compress to a few kB
    data = _npz_bytes(compressed=True, x_train=zeros, y_train=_labels(4000), x_test=zeros[:10], y_test=_labels(10))
    assert len(data) < 20_000
    with pytest.raises(DatasetError, match=r"expands [\d,]+ times .* as zip bombs do"):
        read_npz(data, "zeros.npz")


def test_npz_header_promising_a_huge_array_is_refused_before_reading(monkeypatch):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x_train.npy", _npy_header((1_000_000, 512, 512)))  # 244 GiB promised, nothing stored
        z.writestr("y_train.npy", _npy_header((2,), "<i8") + np.arange(2).tobytes())
        z.writestr("x_test.npy", _npy_header((1, 512, 512)) + bytes(512 * 512))
        z.writestr("y_test.npy", _npy_header((1,), "<i8") + np.arange(1).tobytes())
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="truncated"):
            read_npz(archive.getvalue(), "huge.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024**2


def test_npz_over_the_decoded_size_limit_is_refused_by_its_header(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_MAX_DATASET_MB", "1")
    images = np.zeros((1500, 28, 28), np.uint8)  # 1.2 MB of pixels
    data = _npz_bytes(x_train=images, y_train=_labels(1500), x_test=images[:10], y_test=_labels(10))
    with pytest.raises(DatasetError, match=r"take 1 MB as 8-bit pixels, over the limit of 1 MB"):
        read_npz(data, "big.npz")


def test_npz_of_images_larger_than_any_cnn_input_here_is_refused():
    images = np.zeros((2, 600, 600), np.uint8)
    data = _npz_bytes(x_train=images, y_train=_labels(2), x_test=images[:1], y_test=_labels(1))
    with pytest.raises(DatasetError, match=r"600x600 images, larger than the limit of 512x512"):
        read_npz(data, "wide.npz")


def test_bool_npz_converts_within_little_more_than_its_result():
    rng = np.random.default_rng(0)
    x_train = rng.random((9000, 64, 64)) < 0.5  # 36 MiB of bools
    data = _npz_bytes(x_train=x_train, y_train=_labels(9000), x_test=x_train[:100], y_test=_labels(100))
    del x_train
    tracemalloc.start()
    try:
        ds = read_npz(data, "masks.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = ds.x_train.nbytes + ds.x_test.nbytes
    assert set(np.unique(ds.x_train[:50])) == {0, 255}
    # The result, plus a raw slice and its float32 copy (16 MiB each at most); converting whole
    # arrays through float32 took about nine times the result.
    assert peak < result + 40 * 1024**2, (peak, result)


def test_npz_with_a_non_npy_member_name_or_broken_data_gets_one_sentence():
    good = _npz_bytes(x_train=np.zeros((4, 5, 5), np.uint8), y_train=_labels(4), x_test=np.zeros((2, 5, 5), np.uint8),
                      y_test=_labels(2))
    broken = bytearray(good)
    body = broken.index(b"\x93NUMPY")
    broken[body : body + 6] = b"NOTNPY"
    with pytest.raises(DatasetError) as caught:
        read_npz(bytes(broken), "broken.npz")
    assert "\n" not in str(caught.value) and "broken.npz" in str(caught.value)


def test_npz_reader_keeps_reading_legitimate_files(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "ok.npz"
    np.savez_compressed(path, x_train=x, y_train=_labels(40), x_test=x[:8], y_test=_labels(8))
    ds = load_dataset(str(path))
    assert np.array_equal(ds.x_train, x) and ds.input_shape == (8, 8, 3)


# ---------------------------------------------------------------------------- zip datasets


def _png(size: tuple[int, int], value: int = 0, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value).save(buffer, "PNG")
    return buffer.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_zip_of_many_images_over_the_decoded_limit_is_refused_before_decoding(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_MAX_DATASET_MB", "2")
    tile = _png((48, 48), 128, "RGB")
    data = _zip({f"{c}/{i}.png": tile for c in ("a", "b") for i in range(200)})  # 400 x 48x48x3 = 2.6 MB
    with pytest.raises(DatasetError, match=r"400 images at 48x48 take 3 MB as 8-bit pixels, over the limit of 2 MB"):
        read_image_zip(data, "many.zip")


def test_zip_decodes_into_one_array_in_bounded_memory():
    rng = np.random.default_rng(2)
    tiles = [_png((40, 40), int(v)) for v in rng.integers(0, 256, 8)]
    data = _zip({f"{c}/{i}.png": tiles[i % 8] for c in ("a", "b", "c") for i in range(600)})
    tracemalloc.start()
    try:
        ds = read_image_zip(data, "tiles.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.input_shape == (40, 40, 1) and len(ds.x_train) + len(ds.x_test) == 1800
    # The result is 2.9 MB; decoded images are written into it a batch at a time.
    assert peak < 40 * 1024**2, peak


def test_colour_image_among_gray_ones_makes_the_dataset_rgb():
    entries = {f"{c}/{i}.png": _png((8, 8), 40 * i) for c in ("a", "b") for i in range(3)}
    entries["b/colour.png"] = _png((8, 8), (250, 10, 10), "RGB")
    ds = read_image_zip(_zip(entries), "mixed.zip")
    assert ds.input_shape == (8, 8, 3)
    pixels = np.concatenate([ds.x_train, ds.x_test])
    assert (pixels[..., 0] != pixels[..., 1]).any()  # the colour image kept its colour
    assert sum(bool((p[..., 0] == p[..., 2]).all()) for p in pixels) == 6  # gray ones stayed gray


def test_zip_with_very_deep_wrapper_folders_is_read_in_time_linear_in_its_paths():
    wrappers = "/".join(["w"] * 20_000)  # 40 kB paths: looking through them level by level took hours
    entries = {f"{wrappers}/{c}/{i}.png": _png((6, 6), 60 * i) for c in ("cat", "dog") for i in range(3)}
    entries[f"{wrappers}/notes.txt"] = b"beside the class folders"
    ds = read_image_zip(_zip(entries), "deep.zip")
    assert ds.class_names == ("cat", "dog") and ds.skipped == 1


# ---------------------------------------------------------------------------- single images


def test_16_bit_photo_is_reduced_before_it_is_converted():
    ramp = np.linspace(0, 65535, 7000, dtype=np.uint16)
    image = Image.fromarray(np.broadcast_to(ramp, (7000, 7000)).copy())  # 49 megapixels, mode I;16
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    del image
    tracemalloc.start()
    try:
        pixels = decode_image(buffer.getvalue(), name="scan.png", size_hint=(28, 28))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 1 and min(pixels.shape[:2]) >= 28
    assert pixels[0, 0, 0] < 10 and pixels[0, -1, 0] > 245  # the value range is stretched to 0..255
    # Bands of rows of a few MB each; whole-image float64 copies took about 2 GB.
    assert peak < 64 * 1024**2, peak


def test_icon_hiding_a_large_png_is_refused_before_it_is_decoded():
    png = _png((3000, 3000))
    directory = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    with pytest.raises(ImageError, match="3000x3000 picture, larger than any icon"):
        decode_image(directory + png, name="favicon.ico")


def test_real_icons_still_decode():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 128, 255)).save(buffer, "ICO", sizes=[(16, 16), (64, 64)])
    assert decode_image(buffer.getvalue(), name="app.ico").shape == (64, 64, 3)
