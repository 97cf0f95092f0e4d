"""The Playground's pictures of the network, drawn with Pillow from the small uint8 arrays the worker sends.

    draw_network(columns, class_names, label)    the diagram, left to right: the probe image, a column of
                                                 feature maps per conv block (tiles sized by the tensor's
                                                 H x W), the dense units and the class probabilities
    network_layout(columns)                      where each column and each of its tiles lies in it
    draw_mosaic(mosaic_tiles(images), correct)   the decision set, each image bordered green (right) or red
    enlarge_map(values) / draw_filter(weights)   one feature map larger, and the filter that makes it

One composed picture per refresh costs a few milliseconds here and one image
in the browser, where a chart per column would cost far more. No Streamlit
here: the page module shows these pictures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from playground.training.events import Column

MAP_AREA = 260  # pixels of height the tiles of a column may fill
HEADER = 32  # two lines of text above the tiles: the column's name and shape
FOOTER = 32  # two lines below: the pooled size, and how many of the maps are shown
GAP = 30  # pixels between two columns (an arrow)
MIN_COLUMN = 90  # the narrowest column (room for its text, e.g. "32 of 256 shown")
LARGEST_TILE = 44  # pixels along the longer side of the first conv block's maps (deeper blocks: smaller)
SMALLEST_TILE = 7
TILE_GAP = 2
INPUT_SIDE = 96  # pixels along the longer side of the probe image
INPUT_COLUMN = 140  # the input column's width (room for the probe image's label)
UNIT = 8  # pixels of one dense unit's square
BAR = 100  # pixels of a probability of 1
NAME_WIDTH = 96  # pixels of a class name next to its bar (longer names are cut)
BACKGROUND = (255, 255, 255)
TEXT = (49, 51, 63)
FAINT = (120, 120, 130)
HIGHLIGHT = (255, 127, 14)
RIGHT, WRONG, UNKNOWN = (44, 160, 44), (214, 39, 40), (190, 190, 190)
BAR_COLOR, TOP_BAR_COLOR, BAR_TRACK = (76, 120, 168), (255, 127, 14), (232, 234, 240)
# Viridis at six stops; `COLORMAP` interpolates them to 256 colours (dark = low, yellow = high).
_VIRIDIS = np.array([[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]], float)
COLORMAP = np.stack([np.interp(np.linspace(0, 5, 256), np.arange(6), _VIRIDIS[:, c]) for c in range(3)], 1).astype(np.uint8)


@dataclass(frozen=True)
class ColumnBox:
    """Where one column of the diagram lies in the picture (pixels, origin top left)."""

    name: str
    kind: str
    left: int
    width: int
    tiles: tuple[tuple[int, int, int, int], ...]  # (x0, y0, x1, y1) of each shown map, unit, bar or the image


def network_layout(columns: tuple[Column, ...] | list[Column], min_width: int = 0) -> tuple[int, int, list[ColumnBox]]:
    """The diagram's size and the place of every column and tile, from the columns' shapes alone.

    Conv tiles follow the tensor's H x W: the first block's maps are LARGEST_TILE pixels along
    their longer side and a block with maps half as large gets tiles half as large. A column's
    tiles fill MAP_AREA from the top down, then the next row of tiles to the right.

    Args:
        columns: the diagram's columns.
        min_width: spread the columns apart (up to four times GAP between two) to be at least this wide.

    Returns:
        (width, height, one ColumnBox per column).
    """
    first_conv = next((c.shape for c in columns if c.kind == "conv"), None)
    scale = LARGEST_TILE / max(first_conv[:2]) if first_conv else 1.0
    boxes, left = [], 0
    gap = GAP
    if min_width and len(columns) > 1:
        natural = network_layout(columns)[0]
        gap = int(min(4 * GAP, GAP + max(0, min_width - natural) / (len(columns) - 1)))
    for column in columns:
        if column.kind == "input":
            h, w = _fit(column.shape[0], column.shape[1], INPUT_SIDE)
            width = max(INPUT_COLUMN, w)
            tiles = [(left + (width - w) // 2, 0, left + (width - w) // 2 + w, h)]
        elif column.kind == "conv":
            h = max(SMALLEST_TILE, round(column.shape[0] * scale))
            w = max(SMALLEST_TILE, round(column.shape[1] * scale))
            width, tiles = _grid(len(column.shown), h, w, left)
        elif column.kind == "dense":
            width, tiles = _grid(len(column.shown), UNIT, UNIT, left, gap=1)
        else:
            bar = int(np.clip(MAP_AREA // max(len(column.shown), 1) - 3, 4, 18))
            width = BAR + 6 + NAME_WIDTH
            tiles = [(left, i * (bar + 3), left + BAR, i * (bar + 3) + bar) for i in range(len(column.shown))]
        boxes.append(ColumnBox(column.name, column.kind, left, width, tuple(_centred(tiles))))
        left += width + gap
    return max(left - gap, 1), HEADER + MAP_AREA + FOOTER, boxes


def _fit(h: int, w: int, side: int) -> tuple[int, int]:
    """(h, w) scaled to `side` pixels along the longer side: by a whole factor when it is smaller."""
    longer = max(h, w, 1)
    factor = side // longer if longer <= side else side / longer
    return max(1, round(h * factor)), max(1, round(w * factor))


def _grid(count: int, h: int, w: int, left: int, gap: int = TILE_GAP) -> tuple[int, list[tuple[int, int, int, int]]]:
    """(column width, tiles) of `count` h x w tiles, top to bottom, then left to right, in MAP_AREA."""
    if count == 0:
        return MIN_COLUMN, []
    rows = max(1, min(count, (MAP_AREA + gap) // (h + gap)))
    cols = math.ceil(count / rows)
    rows = math.ceil(count / cols)  # the same number of columns, balanced rows
    width = max(MIN_COLUMN, cols * (w + gap) - gap)
    offset = left + (width - (cols * (w + gap) - gap)) // 2
    tiles = []
    for i in range(count):
        col, row = divmod(i, rows)
        x, y = offset + col * (w + gap), row * (h + gap)
        tiles.append((x, y, x + w, y + h))
    return width, tiles


def _centred(tiles: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Tiles laid out from y = 0, moved below the header and centred in MAP_AREA."""
    if not tiles:
        return []
    top = HEADER + (MAP_AREA - max(t[3] for t in tiles)) // 2
    return [(x0, y0 + top, x1, y1 + top) for x0, y0, x1, y1 in tiles]


def draw_network(columns: tuple[Column, ...] | list[Column], class_names: tuple[str, ...] | list[str] = (),
                 label: str = "", highlight: tuple[str, int] | None = None, min_width: int = 0) -> np.ndarray:
    """The network diagram as one RGB picture.

    Args:
        columns: the diagram's columns (events.Network.columns, or `NetworkProbe.views`).
        class_names: one name per class, written next to the probability bars ("class k" when missing).
        label: what the probe image is, written under it.
        highlight: (conv column name, map index among its filters) to frame, e.g. the map looked at closer.
        min_width: spread the columns to at least this many pixels (see `network_layout`).

    Returns:
        uint8 (height, width, 3).
    """
    width, height, boxes = network_layout(columns, min_width)
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    for column, box in zip(columns, boxes):
        if column.kind == "input":
            _paste(canvas, [_rgb(column.values)], box.tiles)
        elif column.kind == "conv":
            _paste(canvas, COLORMAP[column.values], box.tiles)  # (n, h, w, 3)
        elif column.kind == "dense":
            for (x0, y0, x1, y1), value in zip(box.tiles, column.values):
                canvas[y0:y1, x0:x1] = COLORMAP[value]
        else:
            top = int(np.argmax(column.values)) if len(column.values) else -1
            for i, ((x0, y0, x1, y1), value) in enumerate(zip(box.tiles, column.values)):
                canvas[y0:y1, x0:x1] = BAR_TRACK
                canvas[y0:y1, x0:x0 + round(BAR * int(value) / 255)] = TOP_BAR_COLOR if i == top else BAR_COLOR
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for i, (column, box) in enumerate(zip(columns, boxes)):
        header, footer = _texts(column, label)
        for line, (text, color) in enumerate(header):
            _text(draw, box, 2 + 14 * line, text, color)
        for line, (text, color) in enumerate(footer):
            _text(draw, box, height - FOOTER + 4 + 14 * line, text, color)
        if column.kind == "output":
            names = list(class_names) + [f"class {k}" for k in range(len(class_names), len(column.values))]
            for (x0, y0, x1, y1), name in zip(box.tiles, names):
                draw.text((x1 + 6, (y0 + y1) / 2), _cut(draw, str(name), NAME_WIDTH), fill=TEXT, font=_font(), anchor="lm")
        if i + 1 < len(boxes):  # an arrow to the next column
            start, end, y = box.left + box.width + 5, boxes[i + 1].left - 5, HEADER + MAP_AREA // 2
            draw.line([(start, y), (end - 6, y)], fill=FAINT, width=2)
            draw.polygon([(end - 6, y - 4), (end, y), (end - 6, y + 4)], fill=FAINT)
        if highlight is not None and column.name == highlight[0] and highlight[1] in column.shown:
            x0, y0, x1, y1 = box.tiles[column.shown.index(highlight[1])]
            draw.rectangle([x0 - 2, y0 - 2, x1 + 1, y1 + 1], outline=HIGHLIGHT, width=2)
    return np.asarray(picture)


def _texts(column: Column, label: str) -> tuple[list[tuple[str, tuple]], list[tuple[str, tuple]]]:
    """(header lines, footer lines) of a column, each (text, colour)."""
    shape = "x".join(str(d) for d in column.shape)
    sample = [(f"{len(column.shown)} of {column.total} shown", HIGHLIGHT)] if len(column.shown) < column.total else []
    if column.kind == "input":  # the label on two lines: "Ankle boot", "(test image 3)"
        name, bracket, rest = label.partition(" (")
        return [("input", TEXT), (shape, FAINT)], [(name, TEXT)] + ([(bracket.strip() + rest, FAINT)] if rest else [])
    if column.kind == "conv":
        pooled = [(f"pool {column.pooled[0]}x{column.pooled[1]}", FAINT)] if column.pooled else []
        return [(column.name, TEXT), (shape, FAINT)], pooled + sample
    if column.kind == "dense":
        return [(column.name, TEXT), (f"{column.total} units", FAINT)], sample
    return [("output", TEXT), (f"{column.total} classes", FAINT)], []


def _text(draw: ImageDraw.ImageDraw, box: ColumnBox, y: int, text: str, color: tuple) -> None:
    """One line of text centred over a column, cut to its width."""
    draw.text((box.left + box.width / 2, y), _cut(draw, text, box.width), fill=color, font=_font(), anchor="ma")


def _cut(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    """`text`, shortened with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=_font()) <= width:
        return text
    while text and draw.textlength(text + "…", font=_font()) > width:
        text = text[:-1]
    return text + "…"


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (most scripts' letters) where the system has it, else Pillow's own font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 11)
    except OSError:
        return ImageFont.load_default(size=11)


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 1 or 3) -> (H, W, 3)."""
    image = np.asarray(image, np.uint8)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, :3]


def _paste(canvas: np.ndarray, pictures, tiles) -> None:
    """Each (h, w, 3) picture resized (nearest pixel) into its tile of `canvas`."""
    for (x0, y0, x1, y1), picture in zip(tiles, pictures):
        canvas[y0:y1, x0:x1] = resize_nearest(picture, y1 - y0, x1 - x0)


def resize_nearest(picture: np.ndarray, h: int, w: int) -> np.ndarray:
    """`picture` (H, W, ...) as h x w pixels, each taken from the nearest source pixel."""
    ys = np.arange(h) * picture.shape[0] // h
    xs = np.arange(w) * picture.shape[1] // w
    return picture[ys][:, xs]


# ---------------------------------------------------------------------------
# The decision mosaic, one feature map larger, and its filter.
# ---------------------------------------------------------------------------

MOSAIC_TILE = 40  # pixels along the longer side of a decision image
MOSAIC_BORDER = 3
MOSAIC_COLUMNS = 10


def mosaic_tiles(images: np.ndarray, side: int = MOSAIC_TILE) -> np.ndarray:
    """The decision set's images as RGB tiles of `side` pixels (nearest pixel up, averaged down).

    Args:
        images: uint8 (n, H, W, C).

    Returns:
        uint8 (n, side, side, 3), each image centred on white when it is not square.
    """
    tiles = np.full((len(images), side, side, 3), 255, np.uint8)
    for i, image in enumerate(images):
        longer = max(image.shape[:2])
        h, w = max(1, round(image.shape[0] * side / longer)), max(1, round(image.shape[1] * side / longer))
        rgb = _rgb(image)
        if h >= image.shape[0]:
            small = resize_nearest(rgb, h, w)
        else:
            small = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))
        tiles[i, (side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = small
    return tiles


def draw_mosaic(tiles: np.ndarray, correct: np.ndarray | None, columns: int = MOSAIC_COLUMNS) -> np.ndarray:
    """The decision set in a grid, each image framed green when the network gets it right, red when not.

    Args:
        tiles: uint8 (n, side, side, 3) from `mosaic_tiles`.
        correct: bool (n,); None (no decision yet) frames them gray.

    Returns:
        uint8 RGB picture.
    """
    n, side = len(tiles), tiles.shape[1] if len(tiles) else MOSAIC_TILE
    columns = max(1, min(columns, n))
    cell = side + 2 * MOSAIC_BORDER + 2
    rows = max(1, math.ceil(n / columns))
    canvas = np.full((rows * cell, columns * cell, 3), BACKGROUND, np.uint8)
    for i in range(n):
        row, col = divmod(i, columns)
        y, x = row * cell + 1, col * cell + 1
        colour = UNKNOWN if correct is None else (RIGHT if correct[i] else WRONG)
        canvas[y:y + side + 2 * MOSAIC_BORDER, x:x + side + 2 * MOSAIC_BORDER] = colour
        canvas[y + MOSAIC_BORDER:y + MOSAIC_BORDER + side, x + MOSAIC_BORDER:x + MOSAIC_BORDER + side] = tiles[i]
    return canvas


def enlarge_map(values: np.ndarray, side: int = 192) -> np.ndarray:
    """One feature map (uint8 (h, w), the block's scale) in the diagram's colours, `side` pixels along its longer side."""
    h, w = _fit(values.shape[0], values.shape[1], side)
    return resize_nearest(COLORMAP[values], max(h, 1), max(w, 1))


def draw_filter(weights: np.ndarray, *, as_image: bool, tile: int = 40, columns: int = 8) -> np.ndarray:
    """The filter that makes one feature map, as a picture.

    Args:
        weights: float (n_in, k, k): its weights over each input channel (a sample of them).
        as_image: the filter looks at the input image itself (the first conv): drawn as one small
            picture, gray or colour like the image, stretched to its own range. Otherwise one tile per
            input channel, blue for negative and red for positive weights, white for 0.
        tile: pixels of one channel's tile (or of the picture's longer side / 3).
        columns: tiles per row.

    Returns:
        uint8 RGB picture.
    """
    weights = np.asarray(weights, np.float32)
    if as_image:
        picture = np.moveaxis(weights, 0, -1)  # (k, k, C)
        low, high = float(picture.min()), float(picture.max())
        picture = (picture - low) * (255.0 / (high - low)) if high > low else np.full_like(picture, 128.0)
        return resize_nearest(_rgb(np.rint(picture).astype(np.uint8)), 3 * tile, 3 * tile)
    bound = float(np.abs(weights).max()) or 1.0
    share = np.clip(weights / bound, -1, 1)[..., None]  # (n, k, k, 1) in -1..1
    white, red, blue = np.array([255.0, 255, 255]), np.array([214.0, 39, 40]), np.array([31.0, 119, 180])
    coloured = np.where(share >= 0, white + share * (red - white), white - share * (blue - white)).astype(np.uint8)
    n = len(coloured)
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    canvas = np.full((rows * (tile + 3), columns * (tile + 3), 3), BACKGROUND, np.uint8)
    for i, kernel in enumerate(coloured):
        row, col = divmod(i, columns)
        canvas[row * (tile + 3):row * (tile + 3) + tile, col * (tile + 3):col * (tile + 3) + tile] = \
            resize_nearest(kernel, tile, tile)
    return canvas
