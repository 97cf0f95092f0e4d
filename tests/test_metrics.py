"""Decision-quality metrics against scikit-learn and hand-computed answers."""

import numpy as np
import pytest
from sklearn import metrics as sk

from playground.analysis import metrics

# Fixed arrays: 4 classes, class 3 never predicted, class 2 never true.
Y_TRUE = np.array([0, 0, 0, 1, 1, 1, 1, 3, 3, 0, 1, 3], dtype=np.int32)
Y_PRED = np.array([0, 1, 0, 1, 1, 2, 1, 0, 1, 0, 1, 2], dtype=np.int32)


def test_confusion_matrix_equals_sklearn():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(Y_TRUE, Y_PRED, labels=[0, 1, 2, 3]))
    assert cm.shape == (4, 4) and cm.sum() == len(Y_TRUE)
    assert cm[0, 0] == 3 and cm[3, 0] == 1 and cm[2].sum() == 0


def test_class_scores_equal_sklearn():
    scores = metrics.class_scores(Y_TRUE, Y_PRED, 4)
    p, r, f, s = sk.precision_recall_fscore_support(Y_TRUE, Y_PRED, labels=[0, 1, 2, 3], zero_division=0)
    np.testing.assert_allclose(scores.precision, p)
    np.testing.assert_allclose(scores.recall, r)
    np.testing.assert_allclose(scores.f1, f)
    np.testing.assert_array_equal(scores.support, s)
    # Hand check: class 0 predicted 4 times, 3 right; 4 true images of class 0, 3 found.
    assert scores.precision[0] == pytest.approx(3 / 4) and scores.recall[0] == pytest.approx(3 / 4)
    assert scores.precision[3] == 0.0 and scores.support[2] == 0


def test_accuracy_and_log_loss():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(sk.accuracy_score(Y_TRUE, Y_PRED))
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]])
    y = np.array([0, 2, 0])
    assert metrics.log_loss(y, probs) == pytest.approx(sk.log_loss(y, probs, labels=[0, 1, 2]))


def test_ece_known_answer():
    # Bin (0.9, 1.0]: two images at confidence 0.95, one right -> |0.5 - 0.95| = 0.45.
    # Bin (0.5, 0.6]: two images at confidence 0.6, both right -> |1.0 - 0.6| = 0.4.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    cal = metrics.calibration(y, probs, bins=10)
    assert cal.ece == pytest.approx(2 / 4 * 0.45 + 2 / 4 * 0.4)
    assert cal.count.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert cal.accuracy[9] == pytest.approx(0.5) and cal.confidence[5] == pytest.approx(0.6)
    assert np.isnan(cal.accuracy[0])
    np.testing.assert_allclose(cal.edges, np.linspace(0, 1, 11))


def test_ece_perfectly_calibrated_is_zero():
    # Confidence 1.0 and always right: the last bin holds everything.
    probs = np.eye(3)[[0, 1, 2, 1]]
    cal = metrics.calibration(np.array([0, 1, 2, 1]), probs)
    assert cal.ece == 0.0 and cal.count[-1] == 4


def test_top_k_and_worst_mistakes():
    probs = np.array([
        [0.1, 0.6, 0.3],  # true 0, wrong with 0.6
        [0.9, 0.05, 0.05],  # true 0, right
        [0.05, 0.05, 0.9],  # true 1, wrong with 0.9: the worst
        [0.2, 0.5, 0.3],  # true 1, right
    ])
    y = np.array([0, 0, 1, 1])
    classes, values = metrics.top_k(probs, 3)
    assert classes[0].tolist() == [1, 2, 0]
    np.testing.assert_allclose(values[0], [0.6, 0.3, 0.1])
    assert metrics.top_k(probs, 5)[0].shape == (4, 3)
    assert metrics.worst_mistakes(y, probs).tolist() == [2, 0]
    assert metrics.cell_indices(y, probs.argmax(1), 1, 2).tolist() == [2]


def test_bad_inputs_raise_one_sentence():
    with pytest.raises(metrics.MetricsError, match="same length"):
        metrics.confusion_matrix(Y_TRUE, Y_PRED[:-1], 4)
    with pytest.raises(metrics.MetricsError, match="outside 0..2"):
        metrics.class_scores(Y_TRUE, Y_PRED, 3)
    with pytest.raises(metrics.MetricsError, match="integer class ids"):
        metrics.accuracy(Y_TRUE.astype(float), Y_PRED)
    with pytest.raises(metrics.MetricsError, match="Unknown projection 'umap'"):
        metrics.project_2d(np.zeros((10, 3)), "umap")


def test_overfitting_epoch():
    falling = {"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.0, 0.7, 0.6, 0.55]}
    assert metrics.overfitting_epoch(falling) is None
    memorising = {"loss": [1.0, 0.6, 0.4, 0.2], "val_loss": [1.0, 0.7, 0.8, 0.9]}
    assert metrics.overfitting_epoch(memorising) == 2
    noise = {"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.0, 0.7, 0.71, 0.72]}  # +3%: not over-fitting
    assert metrics.overfitting_epoch(noise) is None
    assert metrics.overfitting_epoch({"loss": [1.0, 0.5], "val_loss": [float("nan"), float("nan")]}) is None
    assert metrics.overfitting_epoch({"loss": [1.0]}) is None


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_separates_clusters(method):
    rng = np.random.default_rng(0)
    centers = np.array([[0.0] * 8, [10.0] * 8])
    labels = np.repeat([0, 1], 40)
    feats = centers[labels] + rng.normal(size=(80, 8))
    xy = metrics.project_2d(feats, method)
    assert xy.shape == (80, 2) and xy.dtype == np.float32
    # The two clusters stay apart: every point is nearer its own cluster's mean.
    means = np.stack([xy[labels == c].mean(0) for c in (0, 1)])
    nearest = np.argmin(((xy[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).all()


def test_confusion_figure_cells_are_clickable_points():
    from playground.analysis import metric_figures

    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4)
    fig = metric_figures.confusion_figure(cm, ["a", "b", "c", "d"])
    heat, cells = fig.data
    np.testing.assert_allclose(np.asarray(heat.z).sum(axis=1)[[0, 1, 3]], 1.0)  # row shares
    # One marker per non-empty cell; customdata [true, predicted] as plain lists (what selection events return).
    assert [list(map(int, c)) for c in cells.customdata] == [[t, p] for t, p in zip(*np.nonzero(cm))]
    assert isinstance(fig.to_plotly_json()["data"][1]["customdata"], list)
    assert list(cells.x) == [["a", "b", "c", "d"][p] for p in np.nonzero(cm)[1]]


def test_projection_figure_carries_test_indices_and_thumbnails_are_crisp():
    from playground.analysis import metric_figures

    xy = np.arange(12, dtype=np.float32).reshape(6, 2)
    y, pred = np.array([0, 1, 0, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    fig = metric_figures.projection_figure(xy, y, pred, ["a", "b", "c"], np.array([10, 11, 12, 13, 14, 15]))
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    assert [row[0] for row in fig.data[0].customdata] == [10, 12]
    assert list(fig.data[0].marker.symbol) == ["circle", "x"]  # image 12 is a mistake
    gray = metric_figures.thumbnail(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 84)
    assert gray.shape == (88, 88) and gray[0, 10] == 0 and gray[0, 11] == 1  # whole-pixel blocks of 11
    assert metric_figures.thumbnail(np.zeros((32, 32, 3), np.uint8)).shape == (96, 96, 3)


def test_names_from_other_people_reach_plotly_as_text_not_markup():
    from playground.analysis import metric_figures

    names = ["<b>cat</b>", "dog & <a href='x'>link</a>", "ok", "fish"]
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4)
    figures = [metric_figures.confusion_figure(cm, names), metric_figures.class_scores_figure(metrics.class_scores(Y_TRUE, Y_PRED, 4), names)]
    for fig in figures:
        text = fig.to_json()
        assert "<b>cat" not in text and "<a href" not in text and "&lt;b&gt;cat" in text
