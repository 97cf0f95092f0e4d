"""Plotly figures for judging a classifier and comparing runs: NumPy in, `go.Figure` out.

`playground.metrics` computes the numbers; these functions only draw them.
Figures that the pages make clickable (the confusion matrix and the 2-D
projection) carry `customdata` on their points, so a Streamlit selection event
says which cell or which image was chosen.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from playground.analysis.metrics import Calibration, ClassScores

PALETTE = qualitative.Plotly + qualitative.D3  # 20 distinguishable colours, then repeated
RIGHT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"


class MetricFigureError(ValueError):
    """Arrays of a shape a figure cannot draw, in one sentence."""



def plotly_text(text: object) -> str:
    """Someone else's text (a class or run name) for Plotly, which renders a few HTML tags: shown as typed."""
    return html.escape(str(text), quote=False)

def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], *, height: int | None = None) -> go.Figure:
    """Confusion matrix heatmap: rows true class, columns predicted class.

    Cells are coloured by the row fraction (the share of a true class sent to
    each prediction), so the diagonal reads as per-class recall whatever the
    class sizes; the text is the count. An invisible marker sits on every
    non-empty cell with customdata [true, predicted], so clicking a cell is a
    point selection.

    Args:
        matrix: int (C, C) counts, e.g. `metrics.confusion_matrix`.
        class_names: C names.
        height: pixels; default grows with C up to 900.

    Returns:
        The figure.
    """
    m = np.asarray(matrix)
    c = len(class_names)
    if m.shape != (c, c):
        raise MetricFigureError(f"The matrix must be (C, C) for {c} class names. Received: shape={m.shape}")
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    names = [plotly_text(n) for n in class_names]
    hover = [[f"true {names[t]}<br>predicted {names[p]}<br>{m[t, p]} images ({share[t, p]:.0%} of {names[t]})"
              for p in range(c)] for t in range(c)]
    fig = go.Figure(go.Heatmap(
        # Counts in the cells while they fit; with many classes the colours and the hover say it.
        z=share, x=names, y=names, text=m, texttemplate="%{text}" if c <= 20 else None, colorscale="Blues", zmin=0, zmax=1,
        hovertext=hover, hoverinfo="text", colorbar=dict(title="share of<br>true class", tickformat=".0%"),
    ))
    t_idx, p_idx = np.nonzero(m)
    fig.add_trace(go.Scatter(
        x=[names[p] for p in p_idx], y=[names[t] for t in t_idx], mode="markers",
        marker=dict(size=max(10, 300 // max(c, 1)), symbol="square", opacity=0.01, color="black"),
        # Plain lists: NumPy arrays would travel as typed arrays, which selection events do not decode.
        customdata=np.stack([t_idx, p_idx], axis=1).tolist(), hovertext=[hover[t][p] for t, p in zip(t_idx, p_idx)],
        hoverinfo="text", showlegend=False, name="cells",
    ))
    fig.update_layout(
        xaxis=dict(title="predicted class", side="bottom", type="category"),
        yaxis=dict(title="true class", autorange="reversed", type="category"),
        height=height or min(260 + 32 * c, 900), margin=dict(l=10, r=10, t=30, b=10), clickmode="event+select",
    )
    return fig


def class_scores_figure(scores: ClassScores, class_names: Sequence[str], *, height: int = 300) -> go.Figure:
    """Grouped bars of precision, recall and F1 for every class."""
    names = [plotly_text(n) for n in class_names]
    fig = go.Figure()
    for label, values, color in (("precision", scores.precision, "#1f77b4"), ("recall", scores.recall, "#ff7f0e"), ("F1", scores.f1, "#2ca02c")):
        fig.add_trace(go.Bar(x=names, y=values, name=label, marker_color=color,
                             hovertemplate=f"%{{x}}<br>{label} %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", xaxis=dict(type="category"), yaxis=dict(range=[0, 1.02], title="score"), height=height,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12))
    return fig


def confidence_histogram(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 20, height: int = 300) -> go.Figure:
    """Histograms of the top probability for right and for wrong predictions.

    Args:
        confidence: (N,) top probability of each image.
        correct: (N,) bool, whether the top class was the true class.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise MetricFigureError(f"'confidence' and 'correct' must be (N,) arrays of one length. Received: shapes {confidence.shape} and {correct.shape}")
    fig = go.Figure()
    for label, mask, color in (("right", correct, RIGHT_COLOR), ("wrong", ~correct, WRONG_COLOR)):
        fig.add_trace(go.Histogram(
            x=confidence[mask], name=f"{label} ({int(mask.sum())})", marker_color=color, opacity=0.7,
            xbins=dict(start=0.0, end=1.0, size=1.0 / bins),
            hovertemplate=f"{label}<br>confidence %{{x}}<br>%{{y}} images<extra></extra>",
        ))
    fig.update_layout(barmode="overlay", xaxis=dict(title="confidence (top probability)", range=[0, 1]),
                      yaxis=dict(title="images"), height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.12))
    return fig


def reliability_figure(cal: Calibration, *, height: int = 300) -> go.Figure:
    """Reliability diagram: accuracy of each confidence bin against the diagonal, with the ECE in the title."""
    centers = (cal.edges[:-1] + cal.edges[1:]) / 2
    width = float(cal.edges[1] - cal.edges[0])
    filled = cal.count > 0
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=centers[filled], y=cal.accuracy[filled], width=width * 0.95, name="accuracy", marker_color="#1f77b4",
        customdata=np.stack([cal.confidence[filled], cal.count[filled]], axis=1).tolist(),
        hovertemplate="bin %{x:.2f}<br>accuracy %{y:.3f}<br>mean confidence %{customdata[0]:.3f}<br>%{customdata[1]} images<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=centers[filled], y=cal.confidence[filled], mode="markers", name="mean confidence",
        marker=dict(color=WRONG_COLOR, symbol="line-ew-open", size=width * 300, line=dict(width=2)),
        hoverinfo="skip",
    ))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(color="gray", dash="dash"), hoverinfo="skip"))
    fig.update_layout(
        title=dict(text=f"Expected calibration error: {cal.ece:.3f}", font=dict(size=14)),
        xaxis=dict(title="confidence", range=[0, 1]), yaxis=dict(title="accuracy", range=[0, 1.02]),
        height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
    )
    return fig


def projection_figure(
    points: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    indices: np.ndarray,
    *,
    title: str = "",
    height: int = 520,
) -> go.Figure:
    """Scatter of a 2-D projection coloured by true class; wrong predictions drawn as crosses.

    Args:
        points: (N, 2) coordinates.
        y_true: (N,) true class ids; y_pred: (N,) predicted class ids.
        class_names: names of the C classes.
        indices: (N,) test-set index of each point, carried as customdata[0]
            (customdata = [index, true name, predicted name]) for hover and selection.
    """
    points = np.asarray(points)
    n = len(points)
    if points.shape != (n, 2) or not (len(y_true) == len(y_pred) == len(indices) == n):
        raise MetricFigureError(f"Points must be (N, 2) with N labels, predictions and indices. Received: shape={points.shape}, {len(y_true)} labels")
    names = np.array([plotly_text(c) for c in class_names], dtype=object)
    fig = go.Figure()
    for c, name in enumerate(names):
        mask = np.asarray(y_true) == c
        if not mask.any():
            continue
        wrong = np.asarray(y_pred)[mask] != c
        fig.add_trace(go.Scatter(
            x=points[mask, 0], y=points[mask, 1], mode="markers", name=str(name), legendgroup=str(name),
            marker=dict(color=_color(c), size=np.where(wrong, 9, 6), symbol=np.where(wrong, "x", "circle"),
                        line=dict(width=0)),
            customdata=np.stack([np.asarray(indices)[mask], names[np.asarray(y_true)[mask]], names[np.asarray(y_pred)[mask]]], axis=1).tolist(),
            selected=dict(marker=dict(size=14, opacity=1.0)), unselected=dict(marker=dict(opacity=0.35)),
            hovertemplate="image #%{customdata[0]}<br>true %{customdata[1]}<br>predicted %{customdata[2]}<extra></extra>",
        ))
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)), height=height, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(showticklabels=False, zeroline=False), yaxis=dict(showticklabels=False, zeroline=False),
        legend=dict(title="true class (x = wrong)"), clickmode="event+select", dragmode="pan",
    )
    return fig


def history_figure(history: Mapping[str, Sequence[float]], *, height: int = 320) -> go.Figure:
    """Loss and accuracy per epoch, training solid and validation dashed, with the best validation epoch marked.

    A validation loss that rises while the training loss keeps falling is over-fitting;
    the shaded region starts at the epoch of the lowest validation loss.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    for col, metric in ((1, "loss"), (2, "accuracy")):
        for key, label, dash in ((metric, "training", "solid"), (f"val_{metric}", "validation", "dash")):
            values = list(history.get(key) or [])
            if values:
                fig.add_trace(go.Scatter(
                    x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=f"{label} {metric}",
                    line=dict(color="#1f77b4" if label == "training" else "#ff7f0e", dash=dash),
                    hovertemplate=f"epoch %{{x}}<br>{label} {metric} %{{y:.4f}}<extra></extra>",
                ), row=1, col=col)
    val_loss = [v for v in (history.get("val_loss") or [])]
    if len(val_loss) > 1:
        best = int(np.nanargmin(np.asarray(val_loss, dtype=np.float64))) + 1
        if best < len(val_loss):
            for col in (1, 2):
                fig.add_vrect(x0=best, x1=len(val_loss), fillcolor=WRONG_COLOR, opacity=0.07, line_width=0, row=1, col=col)
            fig.add_annotation(x=best, y=1.0, yref="y domain", xref="x", text=f"lowest val loss (epoch {best})",
                               showarrow=False, xanchor="left", yanchor="top", font=dict(size=11, color=WRONG_COLOR))
    fig.update_xaxes(title_text="epoch", dtick=1 if len(history.get("loss") or []) <= 20 else None)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def overlay_figure(histories: Mapping[str, Mapping[str, Sequence[float]]], *, height: int = 380) -> go.Figure:
    """Curves of several runs on shared axes: one colour per run, validation solid, training dotted.

    Args:
        histories: {run label: history dict with loss, accuracy, val_loss, val_accuracy lists}.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    for i, (label, history) in enumerate(histories.items()):
        for col, metric in ((1, "loss"), (2, "accuracy")):
            for key, part, dash in ((f"val_{metric}", "validation", "solid"), (metric, "training", "dot")):
                values = list(history.get(key) or [])
                if not values:
                    continue
                fig.add_trace(go.Scatter(
                    x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=plotly_text(label),
                    legendgroup=label, showlegend=(col == 1 and part == "validation"),
                    line=dict(color=_color(i), dash=dash), marker=dict(size=5),
                    hovertemplate=f"{plotly_text(label)}<br>epoch %{{x}}<br>{part} {metric} %{{y:.4f}}<extra></extra>",
                ), row=1, col=col)
    longest = max((len(h.get("loss") or []) for h in histories.values()), default=0)
    fig.update_xaxes(title_text="epoch", dtick=1 if longest <= 20 else None)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.22, title="solid: validation, dotted: training  "))
    return fig


def ensemble_figure(member_names: Sequence[str], member_accuracy: Sequence[float], ensemble_accuracy: float, *, height: int = 300) -> go.Figure:
    """Bars of each member's test accuracy and the ensemble's, zoomed to the interesting range."""
    names = [str(n) for n in member_names] + ["ensemble"]
    values = [float(a) for a in member_accuracy] + [float(ensemble_accuracy)]
    colors = ["#9ecae1"] * len(member_names) + ["#08519c"]
    low = max(0.0, min(values) - 0.05)
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=colors, text=[f"{v:.2%}" for v in values],
                           textposition="outside", hovertemplate="%{x}<br>accuracy %{y:.4f}<extra></extra>"))
    fig.update_layout(yaxis=dict(title="test accuracy", range=[low, min(1.0, max(values) + 0.03) + 0.01], tickformat=".0%"),
                      height=height, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def thumbnail(image: np.ndarray, size: int = 84) -> np.ndarray:
    """A uint8 image upscaled by whole pixels (nearest neighbour) to at least `size` px, for crisp galleries.

    Args:
        image: uint8 (H, W, C) with C = 1 or 3, or (H, W).

    Returns:
        uint8 (H * k, W * k) for gray or (H * k, W * k, 3) for colour, k = ceil(size / max(H, W)).
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise MetricFigureError(f"An image must be (H, W), (H, W, 1) or (H, W, 3). Received: shape={image.shape}")
    k = max(1, -(-size // max(image.shape[:2])))
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1).astype(np.uint8)
