"""Safe decoding of untrusted image bytes, and turning a picture into a model input.

`decode_image` is the one door through which uploaded or folder images enter
the playground: it refuses decompression bombs before decoding, applies the
EXIF orientation, keeps the first frame of animations, flattens transparency
onto white and converts every Pillow mode to uint8 gray (C = 1) or RGB (C = 3).
Anything it cannot use raises `ImageError` with a one-line reason a person
can act on.

`prepare_for_model` takes decoded pixels to what a network trained on a
given dataset expects: its size and channels, light-on-dark polarity for the
MNIST family, and MNIST's digit layout (a 20x20 box centred by mass in 28x28).
"""

from __future__ import annotations

import io
import math
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


# ---------------------------------------------------------------------------
# From decoded pixels to a model input.
# ---------------------------------------------------------------------------

INVERT_CHOICES = ("auto", "always", "never")
# MNIST digits: the digit fits a 20x20 box inside the 28x28 image.
_DIGIT_BOX_FRACTION = 20 / 28
# Work on at most this many pixels along the longer side (a strided view of larger arrays).
_WORK_SIDE = 384
# ITU-R 601 luma, as Pillow's "L" conversion.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image as a model takes it, and what was done to get there."""

    array: np.ndarray  # float32 (H, W, C) in 0..255: the model input for one image
    inverted: bool  # True when dark-on-light was turned into light-on-dark
    note: str  # short human summary, e.g. "resized 640x480 to 28x28, gray, inverted, centred by mass"


def prepare_for_model(
    pixels: np.ndarray,
    input_shape: tuple[int, int, int],
    *,
    invert: str = "auto",
    light_on_dark: bool = True,
    center: bool = True,
) -> PreparedImage:
    """Turn decoded pixels into the input a model trained on some dataset expects.

    Args:
        pixels: uint8 (or 0..255 float) array (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4); a fourth channel is alpha and is composited on white.
        input_shape: (height, width, channels) of the model input, channels 1 or 3.
        invert: "auto" inverts a light-background picture when the dataset
            is light-on-dark; "always" or "never" decide by hand.
        light_on_dark: the dataset shows light objects on a dark background
            (MNIST, Fashion-MNIST). Then the background is also pulled to 0
            and the brightest strokes to 255.
        center: lay the content out as MNIST digits are: cropped to its
            bounding box, fitted in a 20x20 box (scaled to the input size)
            and centred by centre of mass. Only used when `light_on_dark`.
            Without it the whole picture is fitted, keeping its aspect, and
            padded with the background.

    Returns:
        PreparedImage with a float32 (H, W, C) array in 0..255.
    """
    height, width, channels = _check_input_shape(input_shape)
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}. Received: invert={invert!r}")
    source_h, source_w = np.shape(pixels)[:2]
    image = _as_float_rgb_or_gray(pixels)  # float32 (h, w, 1 or 3)
    notes = [f"resized {source_w}x{source_h} to {width}x{height}"]

    if channels == 1 and image.shape[2] == 3:
        image = (image @ _LUMA)[:, :, np.newaxis]
        notes.append("gray")
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
        notes.append("gray to RGB")

    luma = image[:, :, 0] if channels == 1 else image @ _LUMA
    background = float(np.median(_border(luma)))
    inverted = invert == "always" or (invert == "auto" and light_on_dark and background > 127.5)
    if inverted:
        image = 255.0 - image
        luma = 255.0 - luma
        background = 255.0 - background
        notes.append("inverted (dark on light)")

    if light_on_dark:
        # Pull the background to 0 and the strokes to 255, as in MNIST.
        top = float(np.percentile(luma, 99.5))
        if top - background >= 16:
            image = np.clip((image - background) * (255.0 / (top - background)), 0, 255)
        else:
            notes.append("blank")
            center = False
        pad_value = np.zeros(image.shape[2], np.float32)
    else:
        pad_value = np.median(_border(image), axis=0).astype(np.float32)

    if light_on_dark and center:
        placed = _center_by_mass(image, height, width)
        if placed is None:
            out = _fit_and_pad(image, height, width, pad_value)
        else:
            out = placed
            notes.append("centred by mass")
    else:
        out = _fit_and_pad(image, height, width, pad_value)
    return PreparedImage(array=np.ascontiguousarray(out, dtype=np.float32), inverted=inverted, note=", ".join(notes))


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        height, width, channels = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (height, width, channels). Received: input_shape={input_shape!r}") from None
    if height < 1 or width < 1 or channels not in (1, 3):
        raise ValueError(f"input_shape needs a positive size and 1 or 3 channels. Received: input_shape={input_shape!r}")
    return height, width, channels


def _as_float_rgb_or_gray(pixels: np.ndarray) -> np.ndarray:
    """(H, W[, C]) pixels -> float32 (h, w, 1 or 3), large inputs shrunk by an integer stride."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"pixels must be (H, W) or (H, W, C) with C = 1, 3 or 4. Received: shape={array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"pixels must be numbers in 0..255. Received: dtype={array.dtype}")
    # A phone photo needs no more than a few hundred pixels to become 28x28 or 32x32:
    # a strided view costs nothing and keeps the rest fast.
    step = math.ceil(max(array.shape[:2]) / _WORK_SIDE)
    if step > 1:
        array = array[::step, ::step]
    image = np.clip(array.astype(np.float32), 0, 255)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:] / 255.0
        image = image[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    return image


def _border(image: np.ndarray) -> np.ndarray:
    """The pixels of the outer frame (about 5% of each side), as (n, ...) rows."""
    h, w = image.shape[:2]
    bh, bw = max(1, h // 20), max(1, w // 20)
    parts = [image[:bh].reshape(-1, *image.shape[2:]), image[-bh:].reshape(-1, *image.shape[2:]),
             image[:, :bw].reshape(-1, *image.shape[2:]), image[:, -bw:].reshape(-1, *image.shape[2:])]
    return np.concatenate(parts, axis=0)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 (h, w, C) -> (height, width, C); area average when shrinking, bilinear when growing."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height < image.shape[0] or width < image.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c]), "F").resize((width, height), method))
        for c in range(image.shape[2])
    ]
    return np.stack(planes, axis=2)


def _fit_and_pad(image: np.ndarray, height: int, width: int, pad_value: np.ndarray) -> np.ndarray:
    """Scale to fit (height, width) keeping the aspect ratio; pad the rest with pad_value."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    out = np.empty((height, width, image.shape[2]), np.float32)
    out[:] = pad_value
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = _resize(image, new_h, new_w)
    return out


def _center_by_mass(image: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """MNIST layout: crop to the content, fit a 20/28 box, put the centre of mass in the middle."""
    mass = image.mean(axis=2)
    # Faint paper texture and shadows left after stretching are not content.
    content = mass > 0.15 * 255
    if not content.any():
        return None
    image = np.where(content[:, :, np.newaxis], image, 0.0)
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    box_h, box_w = max(1, round(height * _DIGIT_BOX_FRACTION)), max(1, round(width * _DIGIT_BOX_FRACTION))
    scale = min(box_h / crop.shape[0], box_w / crop.shape[1])
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.clip(_resize(crop, new_h, new_w), 0, 255)
    weights = small.mean(axis=2)
    total = float(weights.sum())
    if total <= 0:
        return None
    cy = float((weights.sum(axis=1) * np.arange(new_h)).sum() / total)
    cx = float((weights.sum(axis=0) * np.arange(new_w)).sum() / total)
    # Top-left corner that puts the centre of mass at the image centre, kept inside the frame.
    top = int(np.clip(round((height - 1) / 2 - cy), 0, height - new_h))
    left = int(np.clip(round((width - 1) / 2 - cx), 0, width - new_w))
    out = np.zeros((height, width, image.shape[2]), np.float32)
    out[top : top + new_h, left : left + new_w] = small
    return out
