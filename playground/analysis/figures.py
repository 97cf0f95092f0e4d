"""Plotly figures for looking inside a network: NumPy arrays in, `go.Figure` out.

Nothing here computes on a model; `playground.inspect` does that and returns
arrays. The pages hand those arrays to these functions and show the figures.

Feature maps and filters are drawn as ONE heatmap per grid: `tile_maps` lays
the (H, W, F) maps out with a single NumPy reshape, with NaN gaps between
them, so 64 maps cost one trace, not 64 subplots.

Names from people (class names, run names) reach titles, legends and ticks
through `plotly_text`: Plotly reads a few HTML tags there, so `<`, `>` and
`&` are escaped and a name always shows as typed.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

DIVERGING = "RdBu_r"  # negative blue, zero white, positive red
# Grad-CAM and saliency over an image: unimportant pixels stay see-through, important ones turn yellow to red.
HEAT = [
    [0.0, "rgba(40, 40, 200, 0)"],
    [0.25, "rgba(40, 120, 255, 0.3)"],
    [0.5, "rgba(40, 220, 120, 0.55)"],
    [0.75, "rgba(255, 210, 0, 0.75)"],
    [1.0, "rgba(230, 20, 20, 0.85)"],
]


_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2"]  # distinct even when overlaid


class FigureError(ValueError):
    """Arrays of a shape a figure cannot draw, in one sentence."""


def plotly_text(text: str) -> str:
    """`text` as Plotly shows it literally in a title, legend, tick or hover label (<, > and & escaped)."""
    return html.escape(str(text), quote=False)


# ---------------------------------------------------------------------------
# Grids of feature maps and filters.
# ---------------------------------------------------------------------------


def grid_columns(count: int) -> int:
    """Columns of a near-square grid for `count` tiles (at least 1)."""
    return max(1, math.ceil(math.sqrt(count)))


def tile_maps(maps: np.ndarray, columns: int | None = None, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Lay out F maps of H x W (x channels) in a grid, with one reshape.

    Args:
        maps: (H, W, F) maps, or (H, W, F, 3) RGB tiles.
        columns: tiles per row; default a near-square grid.
        gap: pixels between tiles, filled with `fill`.
        fill: value of the gaps and of empty tiles at the end (NaN shows as background).

    Returns:
        (rows * (H + gap) - gap, columns * (W + gap) - gap) for 3-D `maps`,
        with a trailing channel axis of 3 for RGB tiles. Tile f sits at
        row f // columns, column f % columns.
    """
    maps = np.asarray(maps)
    if maps.ndim not in (3, 4) or (maps.ndim == 4 and maps.shape[3] != 3) or maps.shape[2] == 0:
        raise FigureError(f"Maps must be (H, W, F) or (H, W, F, 3) with F >= 1. Received: shape={maps.shape}")
    h, w, count = maps.shape[:3]
    columns = columns or grid_columns(count)
    rows = math.ceil(count / columns)
    tiles = np.moveaxis(maps, 2, 0).astype(np.float32)  # (F, H, W[, 3])
    extra = [(0, 0)] * (tiles.ndim - 3)
    # Pad every tile with `gap` on the bottom/right, and the tile list up to rows * columns.
    tiles = np.pad(tiles, [(0, rows * columns - count), (0, gap), (0, gap)] + extra, constant_values=fill)
    tiles = tiles.reshape(rows, columns, h + gap, w + gap, *tiles.shape[3:])
    grid = tiles.swapaxes(1, 2).reshape(rows * (h + gap), columns * (w + gap), *tiles.shape[4:])
    return grid[: grid.shape[0] - gap, : grid.shape[1] - gap]


def map_scale(*maps: np.ndarray) -> np.ndarray:
    """Per-map colour scale shared by several (H, W, F) arrays: max |value| of each map over all of them.

    Pass the conv output and the activation output of one layer to draw both
    on the same scale, so what the activation removes is visible.

    Returns:
        float32 (F,), never 0 (all-zero maps get 1).
    """
    scale = np.max([np.abs(np.asarray(m, dtype=np.float32)).max(axis=(0, 1)) for m in maps], axis=0)
    return np.where(scale > 0, scale, 1.0).astype(np.float32)


def feature_map_grid(
    maps: np.ndarray,
    *,
    scale: np.ndarray | float | None = None,
    title: str = "",
    columns: int | None = None,
    height: int | None = None,
) -> go.Figure:
    """All feature maps of one layer as one colour-scaled heatmap.

    Args:
        maps: float (H, W, F) activations of one image.
        scale: divide map f by scale[f] (an (F,) array, e.g. from `map_scale`)
            or by one number for all maps; default each map's own max |value|.
            Colours then run from -1 (blue) through 0 (white) to 1 (red).
        title: figure title.
        columns: maps per row; default near-square.
        height: figure height in pixels; default from the grid's aspect.

    Returns:
        A figure with one heatmap; hovering shows the map number and the scaled value.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise FigureError(f"Feature maps must be (H, W, F). Received: shape={maps.shape}")
    scale = map_scale(maps) if scale is None else np.broadcast_to(np.asarray(scale, dtype=np.float32), maps.shape[2:])
    scaled = maps / np.where(scale > 0, scale, 1.0)
    count = maps.shape[2]
    columns = columns or grid_columns(count)
    grid = tile_maps(scaled, columns)
    # Map number under each pixel, for the hover text (int16 keeps the page small).
    index = tile_maps(np.broadcast_to(np.arange(count, dtype=np.float32), maps.shape), columns, fill=-1)
    heatmap = go.Heatmap(
        z=grid,
        customdata=index.astype(np.int16)[:, :, None],
        colorscale=DIVERGING,
        zmin=-1,
        zmax=1,
        hovertemplate="map %{customdata[0]}<br>%{z:.2f} × scale<extra></extra>",
        hoverongaps=False,
        colorbar=dict(title=dict(text="value / scale"), thickness=10),
    )
    return _image_layout(go.Figure(heatmap), grid.shape, title, height)


def filter_grid(weights: np.ndarray, *, title: str = "", columns: int | None = None, height: int | None = None) -> go.Figure:
    """Conv filters as small images: RGB for 3 input channels, otherwise blue-white-red.

    Each filter is scaled on its own (what matters is its pattern, not its
    size, which grows in training), so filters before and after training can
    be compared side by side.

    Args:
        weights: float (k, k, C_in, F) kernel of a conv layer. With C_in other
            than 1 or 3 the mean over input channels is drawn.
        title: figure title.
        columns: filters per row; default near-square.
        height: figure height in pixels.

    Returns:
        A figure with one image (RGB) or one heatmap (single channel).
    """
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 4:
        raise FigureError(f"Filters must be (k, k, C_in, F). Received: shape={weights.shape}")
    count = weights.shape[3]
    columns = columns or grid_columns(count)
    if weights.shape[2] == 3:
        # (k, k, 3, F) -> (k, k, F, 3), each filter stretched to 0..255 on its own.
        tiles = np.moveaxis(weights, 2, 3)
        low = tiles.min(axis=(0, 1, 3), keepdims=True)
        high = tiles.max(axis=(0, 1, 3), keepdims=True)
        tiles = (tiles - low) / np.where(high > low, high - low, 1.0) * 255.0
        grid = tile_maps(tiles, columns, fill=255.0)  # white gaps
        figure = go.Figure(go.Image(z=grid.astype(np.uint8), hovertemplate="rgb %{z}<extra></extra>"))
        return _image_layout(figure, grid.shape[:2], title, height or _filter_height(count, columns, title))
    maps = weights.mean(axis=2)  # (k, k, F)
    return feature_map_grid(maps, title=title, columns=columns, height=height or _filter_height(count, columns, title))


def _filter_height(count: int, columns: int, title: str) -> int:
    # Filters are tiny (3x3, 5x5): about 48 pixels per row of tiles is enough.
    return min(420, 40 + 48 * math.ceil(count / columns)) + (30 if title else 0)


def _image_layout(figure: go.Figure, shape: tuple[int, ...], title: str, height: int | None) -> go.Figure:
    rows, cols = shape[:2]
    height = height or int(min(560, max(180, 420 * rows / max(cols, 1))) + (30 if title else 0))
    figure.update_layout(
        title=dict(text=plotly_text(title)) if title else None,
        height=height,
        margin=dict(l=4, r=4, t=36 if title else 4, b=4),
    )
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return figure


# ---------------------------------------------------------------------------
# Images, heatmaps over images, histograms.
# ---------------------------------------------------------------------------


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An image as uint8 (H, W, 3) for display: 0..255 kept, other ranges stretched min..max.

    Args:
        image: (H, W) or (H, W, C) with C = 1 or 3, any float range.

    Returns:
        uint8 (H, W, 3).
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise FigureError(f"An image must be (H, W), (H, W, 1) or (H, W, 3). Received: shape={image.shape}")
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 255 or (high <= 1.0 and high > low):
        image = (image - low) / (high - low if high > low else 1.0) * 255.0
    return np.repeat(np.clip(image, 0, 255), 3 // image.shape[2], axis=2).astype(np.uint8)


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, *, title: str = "", opacity: float = 1.0, height: int = 320) -> go.Figure:
    """A heatmap in 0..1 (Grad-CAM, saliency) over the image it explains.

    Args:
        image: (H, W, C) pixels (0..255 as the model takes them).
        heatmap: float (H, W) in 0..1, the same size as the image.
        title: figure title.
        opacity: of the heatmap over the image (the colour scale itself fades out towards 0).
        height: figure height in pixels.

    Returns:
        A figure: the image, and the heatmap on top (hover shows its value).
    """
    rgb = display_rgb(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape != rgb.shape[:2]:
        raise FigureError(f"The heatmap must have the image's size {rgb.shape[:2]}. Received: shape={heatmap.shape}")
    figure = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    figure.add_trace(
        go.Heatmap(
            z=heatmap, zmin=0, zmax=1, colorscale=HEAT, opacity=opacity,
            hovertemplate="x %{x}, y %{y}<br>importance %{z:.2f}<extra></extra>",
            colorbar=dict(thickness=10),
        )
    )
    return _image_layout(figure, rgb.shape, title, height)


def image_row(images: Sequence[np.ndarray], titles: Sequence[str], *, height: int = 230) -> go.Figure:
    """Several images side by side, each with its own value range (hover shows the real values).

    Gray images are heatmaps from their min to their max; RGB images are
    stretched to 0..255 with `display_rgb`.

    Args:
        images: (H, W) or (H, W, C) arrays, C = 1 or 3.
        titles: one title per image (put the value range in it when it matters).
        height: figure height in pixels.

    Returns:
        A figure with one subplot per image.
    """
    if len(images) != len(titles) or not images:
        raise FigureError(f"Give one title per image and at least one image. Received: {len(images)} image(s), {len(titles)} title(s)")
    figure = make_subplots(rows=1, cols=len(images), subplot_titles=[plotly_text(t) for t in titles],
                           horizontal_spacing=0.02)
    for i, image in enumerate(images, start=1):
        image = np.asarray(image, dtype=np.float32)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            trace: Any = go.Heatmap(
                z=image, colorscale="gray", showscale=False, zmin=float(image.min()), zmax=float(image.max()),
                hovertemplate="x %{x}, y %{y}<br>value %{z:.3g}<extra></extra>",
            )
        else:
            trace = go.Image(z=display_rgb(image), hovertemplate="x %{x}, y %{y}<extra></extra>")
        figure.add_trace(trace, row=1, col=i)
        figure.update_yaxes(autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, constrain="domain")
    figure.update_annotations(font_size=12)
    figure.update_layout(height=height, margin=dict(l=4, r=4, t=40, b=4))
    return figure


def pixel_histograms(arrays: Mapping[str, np.ndarray], *, bins: int = 50, overlay: bool = False, height: int = 260) -> go.Figure:
    """Histograms of pixel values, computed here with NumPy (only bin counts go to the browser).

    Args:
        arrays: {label: array of any shape}; all values of each array are counted.
        bins: bins per histogram.
        overlay: True draws all on one axis (arrays on the same scale, e.g.
            originals vs augmented 0..255); False gives each its own subplot
            and x range (e.g. 0..255 vs 0..1 vs standardised).
        height: figure height in pixels.

    Returns:
        A figure of bar charts of the fraction of values per bin.
    """
    if not arrays:
        raise FigureError("Give at least one array to histogram. Received: arrays={}")
    names = list(arrays)
    titles = [plotly_text(name) for name in names]
    figure = go.Figure() if overlay else make_subplots(rows=1, cols=len(names), subplot_titles=titles, horizontal_spacing=0.06)
    for i, name in enumerate(names, start=1):
        values = np.asarray(arrays[name], dtype=np.float64).ravel()
        counts, edges = np.histogram(values, bins=bins)
        bar = go.Bar(
            x=(edges[:-1] + edges[1:]) / 2, y=counts / max(values.size, 1), width=np.diff(edges), name=titles[i - 1],
            opacity=0.6 if overlay else 1.0, marker_color=_PALETTE[(i - 1) % len(_PALETTE)],
            hovertemplate="%{fullData.name}<br>%{x:.3g}: %{y:.1%}<extra></extra>",
        )
        if overlay:
            figure.add_trace(bar)
        else:
            figure.add_trace(bar, row=1, col=i)
    figure.update_layout(
        barmode="overlay", height=height, showlegend=overlay, bargap=0,
        margin=dict(l=4, r=4, t=40, b=4), yaxis=dict(title="share of pixels"),
    )
    figure.update_yaxes(tickformat=".0%")
    figure.update_annotations(font_size=12)
    return figure


def probability_bars(probabilities: np.ndarray, class_names: Sequence[str], *, highlight: int | None = None, height: int | None = None) -> go.Figure:
    """Class probabilities as horizontal bars, the highlighted class in a strong colour.

    Args:
        probabilities: (num_classes,) softmax output.
        class_names: one name per class.
        highlight: class index to colour (e.g. the one Grad-CAM explains).
        height: figure height in pixels; default from the number of classes.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(class_names),):
        raise FigureError(f"Give one probability per class ({len(class_names)}). Received: shape={probabilities.shape}")
    colours = ["#d62728" if i == highlight else "#7f9fbf" for i in range(len(class_names))]
    figure = go.Figure(
        go.Bar(x=probabilities, y=[plotly_text(name) for name in class_names], orientation="h", marker_color=colours,
               hovertemplate="%{y}: %{x:.1%}<extra></extra>")
    )
    figure.update_layout(
        height=height or 60 + 22 * len(class_names), margin=dict(l=4, r=4, t=10, b=4),
        xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"),
    )
    return figure


# ---------------------------------------------------------------------------
# The network as boxes whose sizes follow the tensor shapes.
# ---------------------------------------------------------------------------

# Layers that change the tensor's shape get a box; the others (batch norm,
# activation, dropout, augmentation, normalisation) are listed in the hover
# text of the box before them.
_KIND_RULES = [
    (re.compile(r"^(image|input.*)$"), "input"),
    (re.compile(r"_conv\d+$|conv"), "conv"),
    (re.compile(r"_pool$|^global_pool$|pool"), "pool"),
    (re.compile(r"_add$"), "add"),
    (re.compile(r"^flatten$"), "flatten"),
    (re.compile(r"^dense\d+$"), "dense"),
    (re.compile(r"^logits$"), "logits"),
]
_BOX_COLOURS = {
    "input": "#9e9e9e", "conv": "#4c78a8", "pool": "#f58518", "add": "#54a24b",
    "flatten": "#b279a2", "dense": "#e45756", "logits": "#72b7b2",
}


def _box_kind(name: str, kind: str) -> str | None:
    text = name.lower()
    # The residual shortcut (and its batch norm) runs beside the convs: an arc, not a box.
    if text.startswith(("augment", "normalize")) or re.search(r"_(bn|act)\d+$|dropout|_act$|probabilities|_shortcut", text):
        return None
    for pattern, box in _KIND_RULES:
        if pattern.search(text):
            return box
    return "conv" if "conv" in kind.lower() else None


def _field(row: Any, name: str) -> Any:
    # Rows may be LayerRow objects or their dicts (dataclasses.asdict).
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def _shape_of(output_shape: Any) -> tuple[int, ...]:
    shape = tuple(output_shape)
    if shape and shape[0] is None:
        shape = shape[1:]  # drop the batch axis
    return tuple(int(s) for s in shape)


def network_diagram(rows: Sequence[Any], *, title: str = "", height: int = 360) -> go.Figure:
    """The network as a row of boxes: height ~ log2(spatial size), width ~ log2(channels).

    Args:
        rows: layer rows in order, each with `name`, `kind`, `output_shape`
            (with or without the batch axis) and `params`, as attributes (the
            `LayerRow`s of `models.layer_table`) or as dict keys.
        title: figure title.
        height: figure height in pixels.

    Returns:
        A figure of filled boxes; hovering a box shows its layers, shape and parameters.
    """
    boxes: list[dict[str, Any]] = []
    for row in rows:
        name, params = str(_field(row, "name")), int(_field(row, "params") or 0)
        box = _box_kind(name, str(_field(row, "kind") or ""))
        shape = _shape_of(_field(row, "output_shape"))
        if box is None and boxes:
            boxes[-1]["extra"].append(name)
            boxes[-1]["params"] += params
            continue
        boxes.append({"name": name, "box": box or "input", "shape": shape, "extra": [], "params": params})
    if not boxes:
        raise FigureError("The network has no layers to draw. Received: rows=[]")
    figure = go.Figure()
    x = 0.0
    for b in boxes:
        shape = b["shape"]
        if len(shape) == 3:
            h = 1.0 + math.log2(max(shape[0], 1))
            w = 0.5 + 0.6 * math.log2(max(shape[2], 1))
            label = "×".join(str(s) for s in shape)
            short = f"{shape[0]}×{shape[1]}<br>×{shape[2]}"
        else:
            units = shape[-1] if shape else 1
            h = 1.0 + 0.6 * math.log2(max(units, 1))  # vectors: flatter, so 4096 units do not dwarf the maps
            w = 0.35
            label = short = str(units)
        hover = (
            f"<b>{b['name']}</b>" + (f" + {', '.join(b['extra'])}" if b["extra"] else "")
            + f"<br>output {label}<br>{b['params']:,} parameters"
        )
        colour = _BOX_COLOURS[b["box"]]
        figure.add_trace(
            go.Scatter(
                x=[x, x + w, x + w, x, x], y=[-h / 2, -h / 2, h / 2, h / 2, -h / 2], fill="toself",
                fillcolor=colour, line=dict(color="#333", width=1), mode="lines", hoveron="fills",
                text=hover, hoverinfo="text", name=b["name"], showlegend=False,
            )
        )
        # Shape above the box, layer name below it.
        figure.add_annotation(x=x + w / 2, y=h / 2 + 0.2, text=short, showarrow=False, yanchor="bottom", font=dict(size=9))
        figure.add_annotation(x=x + w / 2, y=-h / 2 - 0.2, text=b["name"], showarrow=False, yanchor="top",
                              xanchor="right", textangle=-40, font=dict(size=10))
        b["x"], b["top"] = (x, x + w), h / 2
        x += w + 0.6
    _residual_arcs(figure, boxes)
    figure.update_layout(
        title=dict(text=plotly_text(title)) if title else None, height=height,
        margin=dict(l=4, r=4, t=40 if title else 10, b=4), xaxis=dict(visible=False, range=[-0.4, x]), yaxis=dict(visible=False, scaleanchor="x", scaleratio=1),
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return figure


def _residual_arcs(figure: go.Figure, boxes: list[dict[str, Any]]) -> None:
    """An arc over each residual block, from the box before its first conv to its add."""
    for i, b in enumerate(boxes):
        match = re.match(r"^block(\d+)_add$", b["name"])
        if not match:
            continue
        first = next((j for j, c in enumerate(boxes) if c["name"].startswith(f"block{match.group(1)}_conv")), None)
        if not first:
            continue
        start, end = boxes[first - 1], b
        top = max(c["top"] for c in boxes[first - 1:i + 1]) + 2.2  # above the shape labels
        x0, x1 = (start["x"][0] + start["x"][1]) / 2, (end["x"][0] + end["x"][1]) / 2
        figure.add_trace(
            go.Scatter(
                x=[x0, x0, x1, x1], y=[start["top"] + 1.5, top, top, end["top"] + 1.5], mode="lines",
                line=dict(color=_BOX_COLOURS["add"], width=2, dash="dot"), hoverinfo="text",
                text=f"shortcut of block {match.group(1)}", name=f"block{match.group(1)} shortcut", showlegend=False,
            )
        )


# ---------------------------------------------------------------------------
# The conv explainer's small matrices.
# ---------------------------------------------------------------------------


def _cell_text(value: float, digits: int) -> str:
    if not np.isfinite(value):
        return ""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def matrix_figure(
    values: np.ndarray,
    *,
    title: str = "",
    highlight: tuple[int, int, int, int] | None = None,
    muted: np.ndarray | None = None,
    digits: int = 2,
    size: int = 46,
) -> go.Figure:
    """A small matrix with its numbers written in the cells.

    Args:
        values: (R, C) numbers; NaN cells are drawn empty.
        title: figure title.
        highlight: (row, col, height, width) of a rectangle to outline (the
            window under the filter, or the chosen output cell).
        muted: (R, C) bool, cells to grey out (zero padding).
        digits: decimals written in the cells.
        size: pixels per cell.

    Returns:
        A heatmap figure (blue-white-red around zero) with the values as text.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise FigureError(f"A matrix must be 2-D. Received: shape={values.shape}")
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    text = [[_cell_text(v, digits) for v in row] for row in values]
    figure = go.Figure(
        go.Heatmap(
            z=np.where(np.isfinite(values), values, np.nan), text=text, texttemplate="%{text}",
            textfont=dict(size=12), colorscale=DIVERGING, zmid=0, zmin=-limit or -1, zmax=limit or 1,
            showscale=False, xgap=1, ygap=1, hovertemplate="row %{y}, col %{x}: %{text}<extra></extra>",
        )
    )
    if muted is not None and np.any(muted):
        r, c = np.nonzero(np.asarray(muted))
        figure.add_trace(go.Scatter(x=c, y=r, mode="markers", marker=dict(symbol="square", size=size - 6, color="rgba(128,128,128,0.35)"),
                                    hoverinfo="skip", showlegend=False))
    if highlight is not None:
        row, col, h, w = highlight
        figure.add_shape(type="rect", x0=col - 0.5, x1=col + w - 0.5, y0=row - 0.5, y1=row + h - 0.5,
                         line=dict(color="#111", width=3))
    rows, cols = values.shape
    figure.update_layout(
        title=dict(text=plotly_text(title), font=dict(size=13)) if title else None,
        width=max(96, cols * size + 16), height=rows * size + (48 if title else 16),
        margin=dict(l=8, r=8, t=36 if title else 8, b=8),
    )
    figure.update_xaxes(visible=False, range=[-0.5, cols - 0.5], constrain="domain")
    # Square cells even when the title makes the figure wider than the matrix.
    figure.update_yaxes(visible=False, range=[rows - 0.5, -0.5], scaleanchor="x", constrain="domain")
    return figure


# ---------------------------------------------------------------------------
# The Playground's live views: the decision picture's projection and the weights over time.
# ---------------------------------------------------------------------------


def decision_projection(points: np.ndarray, labels: np.ndarray, correct: np.ndarray, class_names: Sequence[str],
                        *, bound: float, height: int = 340) -> go.Figure:
    """The decision set's penultimate features in 2-D, coloured by class: a dot when right, a cross when wrong.

    Args:
        points: float (n, 2) projected features (`network_view.stable_projection`).
        labels: int (n,) true classes.
        correct: bool (n,) whether the network gets each image right.
        class_names: one name per class (the legend).
        bound: both axes run from -bound to bound, the same for every epoch, so the classes
            are seen to pull apart.
        height: figure height in pixels.

    Returns:
        A scatter figure, one trace per class.
    """
    points, labels, correct = np.asarray(points, np.float64), np.asarray(labels), np.asarray(correct, bool)
    if points.shape != (len(labels), 2) or correct.shape != labels.shape:
        raise FigureError(f"Give one 2-D point and one flag per label. Received: points {points.shape}, "
                          f"labels {labels.shape}, correct {correct.shape}")
    figure = go.Figure()
    for k, name in enumerate(class_names):
        mine = labels == k
        figure.add_trace(go.Scatter(
            x=points[mine, 0], y=points[mine, 1], mode="markers", name=plotly_text(name),
            marker=dict(size=8, color=_CLASS_COLOURS[k % len(_CLASS_COLOURS)],
                        symbol=np.where(correct[mine], "circle", "x"), line=dict(width=0)),
            hovertemplate="%{fullData.name}<extra></extra>",
        ))
    axis = dict(range=[-bound, bound], zeroline=False, showticklabels=False, title=None, fixedrange=True)
    figure.update_layout(
        height=height, margin=dict(l=4, r=4, t=10, b=4), legend=dict(font=dict(size=11)),
        xaxis=axis, yaxis=dict(axis, scaleanchor="x"), uirevision="projection",
    )
    return figure


_CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                  "#17becf", "#393b79", "#e6550d", "#31a354", "#843c39", "#7b4173", "#3182bd", "#fd8d3c", "#74c476",
                  "#9e9ac8", "#636363"]  # 20 distinct colours: up to 20 classes


def weight_heatmaps(epochs: Sequence[int], counts: Mapping[str, np.ndarray], edges: Mapping[str, np.ndarray],
                    *, marked: int | None = None, columns: int = 3, height_per_row: int = 150) -> go.Figure:
    """Each layer's weight histogram per epoch as a small heatmap: epochs up, weight values across.

    Args:
        epochs: the epochs, one per row of each layer's counts.
        counts: {layer name: (len(epochs), bins) weights per bin}.
        edges: {layer name: (bins + 1,) bin edges}.
        marked: an epoch to outline (the one the page replays); None outlines none.
        columns: heatmaps per row.
        height_per_row: pixels per row of heatmaps.

    Returns:
        A figure with one heatmap per layer; colour is the share of the layer's weights in a bin.
    """
    names = list(counts)
    if not names:
        raise FigureError("Give the weight counts of at least one layer. Received: counts={}")
    columns = max(1, min(columns, len(names)))
    rows = math.ceil(len(names) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[plotly_text(n) for n in names],
                           horizontal_spacing=0.04, vertical_spacing=0.5 / rows)
    for i, name in enumerate(names):
        table = np.asarray(counts[name], np.float64)
        share = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
        centres = (edges[name][:-1] + edges[name][1:]) / 2
        row, col = divmod(i, columns)
        figure.add_trace(go.Heatmap(
            z=share, x=centres, y=list(epochs), colorscale="Viridis", showscale=False,
            hovertemplate="epoch %{y}<br>weight %{x:.3g}: %{z:.1%}<extra></extra>",
        ), row=row + 1, col=col + 1)
        if marked is not None and marked in epochs:
            figure.add_hline(y=marked, line=dict(color="#ff7f0e", width=2), row=row + 1, col=col + 1)
    figure.update_yaxes(title=None, tickfont=dict(size=9), dtick=max(1, math.ceil(len(epochs) / 5)))
    figure.update_xaxes(tickfont=dict(size=9), nticks=5)
    figure.update_annotations(font_size=11)
    figure.update_layout(height=40 + rows * height_per_row, margin=dict(l=4, r=4, t=30, b=4))
    return figure


def map_history_figure(epochs: Sequence[int], stats: np.ndarray, *, height: int = 220) -> go.Figure:
    """One feature map's mean and max for the probe image after each epoch, and its share of zeros.

    Args:
        epochs: the epochs (0 = before training).
        stats: float (len(epochs), 3) mean, max and share of zeros.
        height: figure height in pixels.

    Returns:
        Lines: mean and max on the left axis, the share of zeros (dotted) on the right one.
    """
    stats = np.asarray(stats, np.float64).reshape(-1, 3)
    if len(stats) != len(epochs):
        raise FigureError(f"Give one row of statistics per epoch. Received: {len(epochs)} epochs, {len(stats)} rows")
    x = np.asarray(epochs, np.float64)
    mode = "lines+markers" if len(x) > 1 else "markers"
    figure = go.Figure([
        go.Scatter(x=x, y=stats[:, 0], name="mean", mode=mode, line=dict(color="#1f77b4")),
        go.Scatter(x=x, y=stats[:, 1], name="max", mode=mode, line=dict(color="#ff7f0e")),
        go.Scatter(x=x, y=stats[:, 2], name="share of zeros", mode=mode, yaxis="y2", line=dict(color="#7f7f7f", dash="dot")),
    ])
    figure.update_layout(
        height=height, margin=dict(l=4, r=4, t=10, b=4), xaxis=dict(title=dict(text="epoch"), dtick=1),
        yaxis=dict(title=dict(text="activation")),
        yaxis2=dict(overlaying="y", side="right", range=[0, 1.02], tickformat=".0%", showgrid=False),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.0),
    )
    return figure
