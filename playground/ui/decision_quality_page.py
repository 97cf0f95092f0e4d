"""The Decision quality page: how a saved run decides on its test set.

Confusion matrix (click a cell, or pick it, to see its images), per-class
precision/recall/F1, the most confident mistakes with their top-3
probabilities, confidence histograms and a reliability diagram with the
expected calibration error, a 2-D map (PCA or t-SNE) of the penultimate-layer
features coloured by class (click a point to see its image), and the run's
training and validation curves.

The run's predictions come from `runs.evaluation`, computed once per run and
cached in its folder; projections are cached per process by their input.
Class names (an imported bundle's among them) are shown as plain text.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.analysis import metric_figures, metrics
from playground.data.dataset import Dataset, DatasetError
from playground.data.datasets import load_for_spec
from playground.runs.evaluation import Evaluation, EvaluationError, evaluate_run
from playground.runs.record import RunRecord
from playground.runs.store import RunStoreError
from playground.ui.plain_text import escape_markdown
from playground.ui.run_picker import pick_run

GRID = 8  # thumbnails per row
SHORT = {"pca": "PCA", "tsne": "t-SNE"}
THUMB = 84  # thumbnail side in pixels


@st.cache_data(max_entries=16, show_spinner=False)
def projection(features: np.ndarray, method: str) -> np.ndarray:
    """2-D coordinates (S, 2) of the feature sample (S, D) (cached: t-SNE takes seconds)."""
    return metrics.project_2d(features, method)


def thumbnails(images: np.ndarray, indices: np.ndarray, captions: list[str], columns: int = GRID) -> None:
    """A grid of crisp, upscaled test images with one caption each."""
    cols = st.columns(columns)
    for slot, (index, caption) in enumerate(zip(indices, captions)):
        with cols[slot % columns]:
            st.image(metric_figures.thumbnail(images[index], THUMB), width=THUMB)
            st.caption(caption)


def top3_text(probabilities: np.ndarray, names: tuple[str, ...]) -> str:
    """The three most probable classes of one image (probabilities (C,)), one "name: p%" per line, as markdown."""
    classes, values = metrics.top_k(probabilities[None], 3)
    return "  \n".join(f"{escape_markdown(names[c])}: {v:.0%}" for c, v in zip(classes[0], values[0]))


def render() -> None:
    """Draw the Decision quality page."""
    st.title("Decision quality")
    st.caption("How a trained network decides on the test set: where it is confused, how sure it is, and what it has learned to separate.")
    record = pick_run("quality_run", "Run to judge")
    if record is None:
        st.stop()
    data, ev = evaluate(record)
    names = tuple(record.class_names)
    headline(ev, len(names))
    tab_confusion, tab_mistakes, tab_confidence, tab_space, tab_curves = st.tabs(
        ["Confusion matrix", "Mistakes", "Confidence & calibration", "Feature space", "Training curves"]
    )
    with tab_confusion:
        confusion_tab(record, data, ev, names)
    with tab_mistakes:
        mistakes_tab(data, ev, names)
    with tab_confidence:
        confidence_tab(ev)
    with tab_space:
        feature_space_tab(data, ev, names)
    with tab_curves:
        curves_tab(record)


def evaluate(record: RunRecord) -> tuple[Dataset, Evaluation]:
    """The run's test set and its predictions on it; the page stops with the reason when either cannot be had."""
    try:
        with st.spinner("Loading the test set..."):
            data = load_for_spec(record.spec)
        with st.spinner("Predicting the test set (once per run; cached in the run folder)..."):
            return data, evaluate_run(record, data)
    except (DatasetError, EvaluationError, RunStoreError) as exc:
        st.error(escape_markdown(str(exc)))  # it may quote the run's name
        st.stop()


def headline(ev: Evaluation, num_classes: int) -> None:
    """Test accuracy, test loss, calibration error and the number of mistakes."""
    y, pred, probs = ev.y_true, ev.predictions, ev.probabilities
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Test accuracy", f"{metrics.accuracy(y, pred):.2%}")
    c2.metric("Test loss", f"{metrics.log_loss(y, probs):.4f}")
    c3.metric("Calibration error (ECE)", f"{metrics.calibration(y, probs, bins=10).ece:.3f}", help="Expected calibration error over 10 equal-width confidence bins: sum over bins of |bin| / N x |accuracy - mean confidence|.")
    c4.metric("Mistakes", f"{len(metrics.worst_mistakes(y, probs))} of {len(y)}")


def confusion_tab(record: RunRecord, data: Dataset, ev: Evaluation, names: tuple[str, ...]) -> None:
    """The confusion matrix and per-class scores, then the images of the cell clicked or picked."""
    y, pred, probs = ev.y_true, ev.predictions, ev.probabilities
    cm = metrics.confusion_matrix(y, pred, len(names))  # (C, C): rows true, columns predicted
    cells = [(t, p) for t, p in zip(*np.nonzero(cm))]
    # Off-diagonal cells first, most images first: the biggest confusions lead.
    cells.sort(key=lambda tp: (tp[0] == tp[1], -cm[tp]))
    options = [f"{t}-{p}" for t, p in cells]
    cell_key = f"quality_cell_{record.run_id}"

    def pick_clicked_cell() -> None:
        points = st.session_state["quality_confusion"]["selection"]["points"]
        if points and "customdata" in points[0]:
            t, p = (int(v) for v in points[0]["customdata"][:2])
            if f"{t}-{p}" in options:
                st.session_state[cell_key] = f"{t}-{p}"

    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            metric_figures.confusion_figure(cm, names), key="quality_confusion",
            on_select=pick_clicked_cell, selection_mode="points",
        )
        st.caption("Rows are true classes, columns predictions; colour is the share of the row. Click a cell to see its images.")
    with right:
        scores = metrics.class_scores(y, pred, len(names))
        st.dataframe(
            {"class": list(names), "precision": scores.precision, "recall": scores.recall, "F1": scores.f1, "support": scores.support},
            hide_index=True, column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("precision", "recall", "F1")},
        )
        st.plotly_chart(metric_figures.class_scores_figure(scores, names), key="quality_scores")

    def cell_label(option: str) -> str:
        t, p = (int(v) for v in option.split("-"))
        kind = "right" if t == p else "confused"
        return f"true {names[t]} → predicted {names[p]}: {cm[t, p]} images ({kind})"

    chosen = st.selectbox("Cell to look at", options, format_func=cell_label, key=cell_key)
    if chosen:
        t, p = (int(v) for v in chosen.split("-"))
        found = metrics.cell_indices(y, pred, t, p)
        # Most confident first, so the clearest cases of this cell lead.
        found = found[np.argsort(-probs[found, p], kind="stable")][: GRID * 4]
        st.write(f"**{cm[t, p]}** test images of **{escape_markdown(names[t])}** predicted as **{escape_markdown(names[p])}**"
                 + (f" (showing {len(found)})" if len(found) < cm[t, p] else ""))
        thumbnails(data.x_test, found, [f"#{i} · {probs[i, p]:.0%}" for i in found])


def mistakes_tab(data: Dataset, ev: Evaluation, names: tuple[str, ...]) -> None:
    """The most confident mistakes, each with its true class and top-3 probabilities."""
    y, probs = ev.y_true, ev.probabilities
    mistakes = metrics.worst_mistakes(y, probs)
    if not len(mistakes):
        st.success("No mistakes on the test set.")
        return
    count = st.select_slider("Mistakes to show", [12, 24, 48, 96], value=24, key="quality_mistake_count")
    st.write(f"The **{min(count, len(mistakes))}** most confident mistakes of {len(mistakes)}: the network was surest of the wrong class first.")
    shown = mistakes[:count]
    thumbnails(data.x_test, shown, [f"#{i} · true **{escape_markdown(names[y[i]])}**  \n{top3_text(probs[i], names)}" for i in shown],
               columns=6)


def confidence_tab(ev: Evaluation) -> None:
    """Confidence histograms of right and wrong answers, and the reliability diagram."""
    left, right = st.columns(2)
    with left:
        st.plotly_chart(metric_figures.confidence_histogram(ev.confidence, ev.correct), key="quality_confidence")
        st.caption("Top probability of every test image, split by right and wrong. A good network is unsure mostly when it is wrong.")
    with right:
        st.plotly_chart(metric_figures.reliability_figure(metrics.calibration(ev.y_true, ev.probabilities, bins=10)),
                        key="quality_reliability")
        gap = float(np.mean(ev.confidence) - np.mean(ev.correct))
        verdict = "over-confident (more sure than right)" if gap > 0.01 else "under-confident (right more often than it claims)" if gap < -0.01 else "well calibrated on average"
        st.caption(f"Bars are the accuracy of each confidence bin; on the dashed line, confidence means what it says. "
                   f"Mean confidence {np.mean(ev.confidence):.1%} against accuracy {np.mean(ev.correct):.1%}: {verdict}.")


def feature_space_tab(data: Dataset, ev: Evaluation, names: tuple[str, ...]) -> None:
    """A 2-D map of the penultimate-layer features of a sample of test images; a clicked dot shows its image."""
    y, pred, probs = ev.y_true, ev.predictions, ev.probabilities
    method = st.radio("Projection", list(metrics.PROJECTIONS), format_func=metrics.PROJECTIONS.get, horizontal=True, key="quality_projection_method")
    sample = ev.feature_indices
    try:
        with st.spinner(f"Projecting {len(sample)} images with {SHORT[method]}..."):
            xy = projection(ev.features, method)
    except metrics.MetricsError as exc:
        st.warning(str(exc))
        return
    left, right = st.columns([3, 1])
    with left:
        event = st.plotly_chart(
            metric_figures.projection_figure(
                xy, y[sample], pred[sample], names, sample,
                title=f"Penultimate-layer features of {len(sample)} test images ({SHORT[method]})",
            ),
            key=f"quality_projection_{method}", on_select="rerun", selection_mode="points",
        )
        st.caption("Each dot is a test image, placed by what the layer before the classifier makes of it, coloured by its true class; "
                   "crosses are mistakes. Hover for the classes, click a dot to see the image.")
    with right:
        points = event.selection.points if event else []
        if points and "customdata" in points[0]:
            i = int(points[0]["customdata"][0])
            st.image(metric_figures.thumbnail(data.x_test[i], 168), width=168)
            mark = "right" if pred[i] == y[i] else "wrong"
            st.markdown(f"**#{i}** · true **{escape_markdown(names[y[i]])}** · predicted **{escape_markdown(names[pred[i]])}** "
                        f"({mark})  \n{top3_text(probs[i], names)}")
        else:
            st.info("Click a dot to see its image here.")


def curves_tab(record: RunRecord) -> None:
    """The run's training and validation curves, and whether it started to over-fit."""
    history = record.history or {}
    if not history.get("loss"):
        st.info("This run has no per-epoch history.")
        return
    st.plotly_chart(metric_figures.history_figure(history), key="quality_history")
    acc, val_acc = (history.get("accuracy") or [np.nan])[-1], (history.get("val_accuracy") or [np.nan])[-1]
    since = metrics.overfitting_epoch(history)
    if since:
        st.warning(f"Validation loss was lowest after epoch {since} and rose afterwards while the training loss kept falling "
                   f"(training accuracy {acc:.1%}, validation {val_acc:.1%}): the network has started to memorise its training "
                   "images (over-fitting). More data, augmentation, dropout or fewer epochs help.")
    else:
        st.caption(f"No clear over-fitting: training accuracy {acc:.1%}, validation {val_acc:.1%}. A validation loss that rises "
                   "while the training loss falls would show it.")
