import numpy as np
import pytest

from ecgtune.training.metrics import classification_metrics, probabilities


def test_binary_logits_perfect_and_chance():
    y = np.array([0, 0, 1, 1])
    logits = np.array([[-3.0], [-1.0], [2.0], [4.0]])
    m = classification_metrics(logits, y, "val")
    assert m["val_balanced_accuracy"] == 1.0 and m["val_auroc"] == 1.0 and m["val_f1_macro"] == 1.0
    all_normal = classification_metrics(np.full((4, 1), -5.0), y, "val")
    assert all_normal["val_balanced_accuracy"] == 0.5


def test_multiclass_balanced_accuracy_weights_classes_equally():
    y = np.array([0] * 8 + [1, 2])
    logits = np.zeros((10, 3))
    logits[:, 0] = 1.0  # predicts class 0 always
    m = classification_metrics(logits, y, "test")
    assert m["test_balanced_accuracy"] == pytest.approx(1 / 3)
    assert 0.0 <= m["test_auroc"] <= 1.0 or np.isnan(m["test_auroc"])


def test_single_class_has_nan_auroc_not_an_error():
    m = classification_metrics(np.array([[1.0], [2.0]]), np.array([1, 1]), "val")
    assert np.isnan(m["val_auroc"]) and m["val_balanced_accuracy"] == 1.0


def test_probabilities_sum_to_one():
    p = probabilities(np.random.default_rng(0).normal(size=(5, 4)))
    assert np.allclose(p.sum(axis=1), 1.0)


def test_per_class_precision_recall_f1_are_named_by_class():
    names = ("N", "S", "V")
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    logits = np.eye(3)[pred] * 5.0
    m = classification_metrics(logits, y, "test", names)
    assert m["test_recall_N"] == pytest.approx(3 / 4) and m["test_precision_N"] == pytest.approx(3 / 4)
    assert m["test_recall_S"] == pytest.approx(1 / 2) and m["test_precision_S"] == pytest.approx(1 / 2)
    assert m["test_f1_V"] == 1.0
    assert m["test_f1_macro"] == pytest.approx(np.mean([m[f"test_f1_{n}"] for n in names]))


def test_per_class_figures_are_nan_where_undefined():
    # No V in y: its recall and F1 are undefined; S never predicted: its PPV is undefined.
    y = np.array([0, 0, 1])
    logits = np.eye(3)[[0, 0, 0]]
    m = classification_metrics(logits, y, "val", ("N", "S", "V"))
    assert np.isnan(m["val_recall_V"]) and np.isnan(m["val_f1_V"]) and np.isnan(m["val_precision_S"])
    assert m["val_recall_S"] == 0.0 and m["val_f1_S"] == 0.0


def test_the_cinc_2017_score_is_the_mean_f1_of_normal_af_and_other_from_the_confusion_matrix():
    """score2017.m on a hand-made 4 x 4 confusion matrix (rows true N, O, A, ~; columns predicted)."""
    from ecgtune.training.metrics import cinc2017_score

    confusion = np.array([[50, 5, 3, 2], [4, 20, 2, 1], [1, 3, 10, 0], [2, 1, 0, 3]])
    y = np.repeat(np.arange(4), confusion.sum(1))
    pred = np.concatenate([np.repeat(np.arange(4), row) for row in confusion])
    f1 = {k: 2 * confusion[k, k] / (confusion[k].sum() + confusion[:, k].sum()) for k in range(3)}
    # F1n = 100 / (60 + 57), F1o = 40 / (27 + 29), F1a = 20 / (14 + 15); noise counts in the matrix only.
    assert f1[0] == pytest.approx(100 / 117) and f1[1] == pytest.approx(40 / 56) and f1[2] == pytest.approx(20 / 29)
    labels = ("N", "O", "A", "noise")
    assert cinc2017_score(y, pred, labels) == pytest.approx((100 / 117 + 40 / 56 + 20 / 29) / 3)
    logits = np.eye(4)[pred] * 5.0
    metrics = classification_metrics(logits, y, "val", labels, scores=("cinc_f1",))
    assert metrics["val_cinc_f1"] == pytest.approx((100 / 117 + 40 / 56 + 20 / 29) / 3)
    assert metrics["val_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
