"""Safe decoding of untrusted image bytes.

`decode_image` is the one door through which uploaded or folder images enter
the playground: it refuses decompression bombs before decoding, applies the
EXIF orientation, keeps the first frame of animations, flattens transparency
onto white and converts every Pillow mode to uint8 gray (C = 1) or RGB (C = 3).
Anything it cannot use raises `ImageError` with a one-line reason a person
can act on.

`data.prepare` then makes decoded pixels look like a dataset's training images.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A phone photo is 12-48 megapixels; anything far bigger is refused before decoding.
DEFAULT_MAX_PIXELS = 50_000_000
# Formats Pillow may open (JPEG includes the MPO files some cameras write). Deliberately
# short: formats whose plugins call external programs (EPS) or guess from weak
# signatures (TGA) are left out.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "AVIF", "PPM", "ICO")
_SUPPORTED_WORDS = "PNG, JPEG, GIF, BMP, TIFF, WebP or AVIF"
_SAVE_AS = "save it as PNG or JPEG."

_HEADER_LOCK = threading.Lock()
_ICO_MAGIC = b"\x00\x00\x01\x00"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_ICON_SIDE = 1024  # icons are at most 256x256; larger frames are refused before Pillow decodes them
# EXIF orientations 5-8 swap width and height.
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # 16-bit, 32-bit and float images
_BAND_ROWS = 256  # rows of a wide image scaled at a time


class ImageError(ValueError):
    """An image that cannot be used, with a one-line reason (prefixed by its name when known)."""


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """Pixels of one decoded image and what it was before decoding."""

    pixels: np.ndarray  # uint8 (H, W, C), C = 1 (gray) or 3 (RGB), upright, alpha composited on white
    original_size: tuple[int, int]  # (width, height) of the stored image after EXIF rotation, before any reduction
    format: str  # Pillow's format name, e.g. "JPEG"


def decode_image(
    data: bytes,
    *,
    name: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_hint: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode untrusted image bytes into uint8 pixels.

    Args:
        data: the file's bytes.
        name: the file name, used in error messages and to recognise formats.
        max_pixels: images with more pixels (width x height) are refused
            before they are decoded (Pillow's own limit, about 89 million,
            applies on top).
        size_hint: (height, width) the caller will shrink the image to. Large
            JPEGs are then decoded at a reduced scale (Pillow's draft mode)
            and other large images reduced by an integer factor, never below
            this size; None decodes at full size.

    Returns:
        uint8 array (H, W, C) with C = 1 for gray images and 3 for colour.

    Raises:
        ImageError: with a one-line reason when the bytes are not a usable image.
    """
    return read_image(data, name=name, max_pixels=max_pixels, size_hint=size_hint).pixels


def read_image(
    data: bytes,
    *,
    name: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_hint: tuple[int, int] | None = None,
) -> DecodedImage:
    """Like `decode_image`, but also returns the original size and format."""
    opened, orientation = _open_header(data, name, max_pixels)
    return _decode(opened, orientation, name, size_hint)


def read_size(data: bytes, *, name: str = "", max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image as it will be decoded (EXIF rotation applied), from its header alone.

    Args:
        data: the file's bytes.
        name: the file name, used in error messages.
        max_pixels: as for `decode_image`: larger images are refused.

    Returns:
        (width, height); no pixel is decoded.

    Raises:
        ImageError: for the bytes `decode_image` would refuse before decoding.
    """
    opened, orientation = _open_header(data, name, max_pixels)
    width, height = opened.size
    opened.close()
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


def _open_header(data: bytes, name: str, max_pixels: int) -> tuple[Image.Image, int]:
    """The opened (not yet decoded) image and its EXIF orientation, after every check that needs no pixels."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_image takes bytes. Received: {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise _error(name, "the file is empty (0 bytes).")
    if data.startswith(_ICO_MAGIC):
        _check_icon(data, name)
    # Header parsing runs under changed warning filters. The filters are process-wide,
    # so the lock keeps threads decoding at once (a folder dataset) from restoring
    # each other's filters; the pixel decoding runs outside it, in parallel.
    with _HEADER_LOCK, warnings.catch_warnings():
        # Pillow warns about damaged metadata it skips: the image is judged by whether it decodes.
        warnings.simplefilter("ignore", UserWarning)
        # Pillow warns (and errors beyond twice its limit) on very large images: both are refusals.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        opened = _open(data, name, max_pixels)
        # Read the orientation before any decoding; broken EXIF counts as upright.
        orientation = _orientation(opened)
    return opened, orientation


def _check_icon(data: bytes, name: str) -> None:
    """Refuse an .ico whose frames are not icon-sized, before Pillow decodes one while opening it.

    Pillow decodes an icon's largest frame as it opens the file (under the header
    lock, before the pixel limit is checked); a PNG frame may claim any size.
    """
    count = int.from_bytes(data[4:6], "little")
    if count == 0 or len(data) < 6 + 16 * count:
        raise _error(name, "the icon file is truncated or damaged; export it again as PNG.")
    for i in range(count):
        entry = data[6 + 16 * i : 22 + 16 * i]
        offset = int.from_bytes(entry[12:16], "little")
        frame = data[offset : offset + 24]
        if frame.startswith(_PNG_MAGIC):
            width, height = int.from_bytes(frame[16:20], "big"), int.from_bytes(frame[20:24], "big")
        else:
            width, height = entry[0] or 256, entry[1] or 256  # BMP frames: the directory's size (0 means 256)
        if width > _MAX_ICON_SIDE or height > _MAX_ICON_SIDE:
            raise _error(name, f"the icon holds a {width}x{height} picture, larger than any icon; save it as PNG or JPEG.")


def _decode(opened: Image.Image, orientation: int, name: str, size_hint: tuple[int, int] | None) -> DecodedImage:
    image_format = opened.format or ""
    try:
        original_size = opened.size
        if orientation in _TRANSPOSED_ORIENTATIONS:
            original_size = original_size[::-1]
        if size_hint is not None and image_format in ("JPEG", "MPO"):
            # JPEG decodes at 1/2, 1/4 or 1/8 scale almost for free; draft keeps
            # the result at least as large as the requested square.
            side = max(1, int(max(size_hint)))
            opened.draft(opened.mode if opened.mode in ("L", "RGB") else None, (side, side))
        opened.load()
        image = ImageOps.exif_transpose(opened) if orientation in range(2, 9) else opened
        factor = min(image.size) // max(1, int(max(size_hint))) if size_hint is not None else 1
        if image.mode in _WIDE_MODES:
            pixels = _wide_to_gray(image, factor)
        else:
            standard = _to_gray_or_rgb(image)
            if factor >= 2:
                standard = standard.reduce(factor)
            pixels = np.array(standard, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on damaged data
        raise _error(name, f"the file is truncated or damaged ({_first_line(exc)}); export it again as PNG or JPEG.") from None
    finally:
        opened.close()
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    return DecodedImage(pixels=pixels, original_size=original_size, format=image_format)


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Identify the format and check the size, without decoding pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise _error(name, f"the image has more than {limit / 1e6:.0f} megapixels, too many to decode safely; make it smaller.") from None
    except UnidentifiedImageError:
        raise _error(name, _unidentified_reason(data, name)) from None
    except Exception as exc:  # noqa: BLE001 - damaged headers raise anything
        raise _error(name, f"the file is truncated or damaged ({_first_line(exc)}); export it again as PNG or JPEG.") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise _error(name, f"the image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        image.close()
        raise _error(
            name,
            f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over the limit of "
            f"{max_pixels / 1e6:g} megapixels; make it smaller.",
        )
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make the image unusable
        return 1


def _to_gray_or_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB"; transparency composited on white."""
    mode = image.mode
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
    if has_alpha:
        gray = mode in ("LA", "La") or (mode in ("L", "1") and "transparency" in image.info)
        return _composite_on_white(image.convert("LA" if gray else "RGBA"))
    if mode == "1":
        return image.convert("L")
    if mode in ("L", "RGB"):
        return image
    # P, CMYK, YCbCr, LAB, HSV, RGBX ...
    return image.convert("RGB")


def _wide_to_gray(image: Image.Image, factor: int) -> np.ndarray:
    """A 16-bit, 32-bit or float image -> uint8 (h, w) gray, its value range mapped to 0..255.

    The image is read a band of rows at a time, each band shrunk by `factor`
    (block means, when >= 2): memory beyond Pillow's own copy of the image
    stays a few megabytes, where whole-image float64 copies took gigabytes.
    """
    factor = max(1, factor)
    out_h, out_w = image.size[1] // factor, image.size[0] // factor
    lo, hi = np.inf, -np.inf
    for band in _reduced_bands(image, factor):
        finite = band[np.isfinite(band)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    out = np.zeros((out_h, out_w), np.uint8)
    if not hi > lo:
        return out  # blank, or nothing finite
    top = 0
    for band in _reduced_bands(image, factor):
        scaled = np.nan_to_num(band, nan=lo, posinf=hi, neginf=lo)
        scaled -= lo
        scaled *= 255.0 / (hi - lo)
        out[top : top + len(band)] = np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled)
        top += len(band)
    return out


def _reduced_bands(image: Image.Image, factor: int) -> Iterator[np.ndarray]:
    """float64 bands of rows of a wide image, each shrunk by `factor` with block means."""
    width, height = (image.size[0] // factor) * factor, (image.size[1] // factor) * factor
    rows = max(1, _BAND_ROWS // factor) * factor
    for top in range(0, height, rows):
        band = np.asarray(image.crop((0, top, width, min(top + rows, height))), dtype=np.float64)
        if factor >= 2:
            band = band.reshape(band.shape[0] // factor, factor, width // factor, factor).mean(axis=(1, 3))
        yield band


def _composite_on_white(image: Image.Image) -> Image.Image:
    """An "LA" or "RGBA" image flattened onto a white background."""
    values = np.asarray(image, dtype=np.uint16)
    colour, alpha = values[..., :-1], values[..., -1:]
    # Integer blend: c * a + 255 * (255 - a), rounded, divided by 255.
    flat = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    flat = flat.astype(np.uint8)
    return Image.fromarray(flat[..., 0], "L") if flat.shape[-1] == 1 else Image.fromarray(flat, "RGB")


# Signatures of formats people upload that we do not decode, and what to say.
_UNSUPPORTED_MAGIC = (
    (b"%PDF", "PDF documents are not supported; export the page as PNG or JPEG."),
    (b"8BPS", "Photoshop (PSD) files are not supported; " + _SAVE_AS),
    (b"%!PS", "PostScript/EPS files are not supported; " + _SAVE_AS),
    (b"\xc5\xd0\xd3\xc6", "PostScript/EPS files are not supported; " + _SAVE_AS),
    (b"\xff\x0a", "JPEG XL images are not supported; " + _SAVE_AS),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL images are not supported; " + _SAVE_AS),
    (b"qoif", "QOI images are not supported; " + _SAVE_AS),
    (b"PK\x03\x04", "this is a .zip archive, not an image."),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_UNSUPPORTED_SUFFIXES = {
    ".heic": "HEIC", ".heif": "HEIF", ".svg": "SVG", ".svgz": "SVG", ".psd": "Photoshop (PSD)",
    ".tga": "TGA", ".raw": "camera RAW", ".cr2": "camera RAW", ".nef": "camera RAW", ".arw": "camera RAW",
    ".dng": "camera RAW", ".jxl": "JPEG XL", ".eps": "EPS", ".pdf": "PDF",
}


def _unidentified_reason(data: bytes, name: str) -> str:
    """Why Pillow could not identify the bytes, as specifically as the bytes allow."""
    head = data[:1024]
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC images are not supported; " + _SAVE_AS
    for magic, reason in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return reason
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text or (text.startswith(b"<?xml") and b"svg" in text):
        return "SVG (vector) images are not supported; " + _SAVE_AS
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix in _UNSUPPORTED_SUFFIXES:
        return f"{_UNSUPPORTED_SUFFIXES[suffix]} images are not supported; " + _SAVE_AS
    if _looks_like_text(head):
        return "this is a text file, not an image" + (f", whatever its {suffix} name says." if suffix else ".")
    return f"this is not an image in a supported format ({_SUPPORTED_WORDS}), or it is damaged."


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The head may end inside a multi-byte character.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return bool(text) and printable >= 0.95 * len(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:120]


def _error(name: str, reason: str) -> ImageError:
    if name:
        return ImageError(f"{name}: {reason}")
    return ImageError(reason[0].upper() + reason[1:])
