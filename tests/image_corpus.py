"""Generated odd and broken image files, for the image decoding and dataset tests.

Every file is made here from Pillow or by hand, byte for byte, so the tests
need no fixtures on disk and each case says exactly what it contains.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    """`image` saved in format `fmt` (e.g. "PNG", "JPEG")."""
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(height: int = 20, width: int = 30, channels: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, C) with distinct, smoothly varying values (survives JPEG reasonably)."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)), ((x + y) * 127 // max(1, width + height - 2))]
    rng = np.random.default_rng(seed)
    array = np.stack(planes[:channels], axis=2).astype(np.int32) + rng.integers(0, 3, (height, width, channels))
    return np.clip(array, 0, 255).astype(np.uint8)


def photo(width: int, height: int) -> Image.Image:
    """A large smooth RGB picture made with Pillow's C gradients (fast even at phone-photo sizes)."""
    size = (width, height)
    bands = [
        Image.linear_gradient("L").resize(size),
        Image.radial_gradient("L").resize(size),
        Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size),
    ]
    return Image.merge("RGB", bands)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit gray pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + png_chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """A 40x20 JPEG, left half red and right half blue, tagged with an EXIF orientation."""
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = (255, 0, 0)
    array[:, 20:] = (0, 0, 255)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(values=(40, 140, 240)) -> bytes:
    """A 3-frame gray GIF whose frames are flat at the given values."""
    frames = [Image.new("L", (12, 10), v) for v in values]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def truncated_jpeg() -> bytes:
    data = encode(Image.fromarray(gradient(64, 64)), "JPEG", quality=90)
    return data[: len(data) * 2 // 3]


HEIC_HEADER = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
SVG_TEXT = b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><circle r="4"/></svg>\n'
TEXT_FILE = b"These are my holiday notes, not a picture.\nDay 1: beach.\n"


def broken_files() -> dict[str, tuple[bytes, str]]:
    """{file name: (bytes, words the error must contain)} of files decode_image must refuse."""
    return {
        "empty.png": (b"", "empty"),
        "notes.png": (TEXT_FILE, "text file"),
        "drawing.svg": (SVG_TEXT, "SVG"),
        "photo.heic": (HEIC_HEADER, "HEIC images are not supported"),
        "cut.jpg": (truncated_jpeg(), "truncated"),
        "bomb.png": (png_header_bomb(100_000, 100_000), "megapixels"),
        "huge.png": (png_header_bomb(9_000, 9_000), "9000x9000"),
        "scan.pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        "noise.bin": (bytes(np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8)), "not an image"),
    }
