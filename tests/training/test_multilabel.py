"""Multi-label metrics: thresholds chosen on validation by sqrt(TPR x (1 - FPR)) and applied unchanged to test,
TP/FN/FP/TN against a hand count, BCE with positive weights, and the test evaluation of a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgtune.training.loop import loss_fn
from ecgtune.training.metrics import classification_metrics
from ecgtune.training.multilabel import choose_thresholds, label_counts, multilabel_metrics, sigmoid

NAMES = ("A", "B")


def _logit(p) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return np.log(p / (1 - p)).astype(np.float32)


# Validation: label A is separated best at 0.6 (every positive at or above it, every negative below),
# label B at 0.3.
VAL_P = np.array([[0.9, 0.2], [0.6, 0.3], [0.55, 0.8], [0.2, 0.1], [0.1, 0.35], [0.58, 0.25]])
VAL_Y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [0, 1], [0, 0]], np.float32)


def test_thresholds_maximise_the_geometric_mean_of_sensitivity_and_specificity():
    thresholds = choose_thresholds(VAL_P, VAL_Y)
    np.testing.assert_allclose(thresholds, [0.6, 0.3])
    # A label that validation holds with one value only: nothing to choose, 0.5.
    np.testing.assert_allclose(choose_thresholds(VAL_P, np.c_[VAL_Y[:, 0], np.zeros(6)]), [0.6, 0.5])


def test_counts_against_a_hand_count():
    proba = np.array([[0.7, 0.1], [0.4, 0.9], [0.65, 0.6], [0.2, 0.2], [0.6, 0.05]])
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0]], np.float32)
    # A at 0.6: predicted 1 for rows 0, 2, 4 -> TP rows 0, 4; FN row 1; FP row 2; TN row 3.
    # B at 0.5: predicted 1 for rows 1, 2 -> TP row 1; FN row 3; FP row 2; TN rows 0, 4.
    counts = label_counts(proba, y, np.array([0.6, 0.5]))
    assert counts.tolist() == [[2, 1, 1, 1], [1, 1, 1, 2]]


def test_test_metrics_use_the_validation_thresholds_never_their_own():
    val = multilabel_metrics(_logit(VAL_P), VAL_Y, NAMES)
    thresholds = np.array([val["threshold_A"], val["threshold_B"]])
    # On test, A's best cut would be 0.45; the validation threshold 0.6 misses one positive.
    test_p = np.array([[0.5, 0.4], [0.45, 0.32], [0.3, 0.35], [0.1, 0.1]])
    test_y = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], np.float32)
    test = classification_metrics(_logit(test_p), test_y, "test", NAMES, thresholds=thresholds)
    assert test["test_threshold_A"] == pytest.approx(0.6) and test["test_threshold_B"] == pytest.approx(0.3)
    assert test["test_sensitivity_A"] == 0.0  # both positives (0.5, 0.45) lie below 0.6
    assert test["test_specificity_A"] == 1.0
    assert test["test_sensitivity_B"] == 1.0 and test["test_specificity_B"] == pytest.approx(0.5)
    assert test["test_auroc_A"] == 1.0  # AUROC needs no threshold
    own = classification_metrics(_logit(test_p), test_y, "test", NAMES)  # what choosing on test would give
    assert own["test_sensitivity_A"] == 1.0


def test_macro_and_pooled_measures():
    m = multilabel_metrics(_logit(VAL_P), VAL_Y, NAMES)
    assert m["auroc_macro"] == pytest.approx((m["auroc_A"] + m["auroc_B"]) / 2)
    assert m["f1_macro"] == pytest.approx((m["f1_A"] + m["f1_B"]) / 2)
    counts = label_counts(sigmoid(_logit(VAL_P)), VAL_Y, np.array([m["threshold_A"], m["threshold_B"]])).sum(0)
    assert m["sensitivity_pooled"] == pytest.approx(counts[0] / (counts[0] + counts[1]))
    np.testing.assert_allclose(sigmoid(_logit(VAL_P)), VAL_P, atol=1e-6)


def test_bce_per_label_with_positive_weights():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    weights = torch.tensor([3.0, 1.0])
    expected = -(3 * np.log(0.5) + np.log(1 - 1 / (1 + np.exp(-2))) + np.log(1 - 1 / (1 + np.exp(-1)))
                 + np.log(1 / (1 + np.exp(1)))) / 4
    assert loss_fn(logits, y, weights).item() == pytest.approx(expected, rel=1e-5)


def test_a_checkpoints_test_evaluation_applies_its_validation_thresholds(tmp_path):
    """evaluate_test scores test once with the thresholds kept in the checkpoint (chosen on validation),
    and returns each label's TP/FN/FP/TN."""
    from ray.tune import Checkpoint

    from ecgtune.data import Examples
    from ecgtune.training.checkpoint import save_state
    from ecgtune.tuning.selection import evaluate_test

    spec = {"name": "cnet", "hparams": {}, "inputs": {"signal": [1, 187]}, "num_outputs": 2}
    from ecgtune.training.checkpoint import build_model

    model = build_model(spec)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 1, 187)).astype(np.float32)
    y = (rng.random((12, 2)) > 0.5).astype(np.float32)
    examples = Examples(inputs={"signal": x}, y=y, records=[str(i) for i in range(12)],
                        patients=[str(i) for i in range(12)], positions=np.zeros(12, np.int64), label_names=NAMES)
    split = np.array(["train"] * 4 + ["val"] * 4 + ["test"] * 4)
    thresholds = [0.37, 0.61]
    save_state(tmp_path, {"model_state": model.state_dict(), "model_spec": spec, "thresholds": thresholds,
                          "epoch": 1, "best": 0.5, "metric": "val_auroc_macro", "val_metrics": {}})

    result = evaluate_test(Checkpoint.from_directory(str(tmp_path)), examples, split, None)
    assert not any(k.endswith("_ci_low") for k in result.metrics)  # none asked for

    assert result.metrics["test_threshold_A"] == pytest.approx(0.37)
    assert result.metrics["test_threshold_B"] == pytest.approx(0.61)
    with torch.no_grad():
        proba = torch.sigmoid(result.model.eval()(torch.from_numpy(x[8:]))).numpy()
    assert result.confusion.tolist() == label_counts(proba, y[8:], np.array(thresholds)).tolist()
    assert result.confusion.sum(1).tolist() == [4, 4]


def test_intervals_score_each_draw_once_whatever_the_number_of_measures(tmp_path, monkeypatch):
    """Every bootstrap draw is one scoring of the test rows, from which all the measures asked for come."""
    from ray.tune import Checkpoint

    from ecgtune.data import Examples
    from ecgtune.training.checkpoint import build_model, save_state
    from ecgtune.tuning import selection

    spec = {"name": "cnet", "hparams": {}, "inputs": {"signal": [1, 187]}, "num_outputs": 2}
    rng = np.random.default_rng(1)
    n = 60
    examples = Examples(inputs={"signal": rng.standard_normal((n, 1, 187)).astype(np.float32)},
                        y=(rng.random((n, 2)) > 0.5).astype(np.float32), records=[str(i // 2) for i in range(n)],
                        patients=[str(i // 2) for i in range(n)], positions=np.zeros(n, np.int64), label_names=NAMES)
    torch.manual_seed(0)  # an untrained model: some draws of init predict one class everywhere (F1 0 in every draw)
    save_state(tmp_path, {"model_state": build_model(spec).state_dict(), "model_spec": spec, "thresholds": [0.5, 0.5],
                          "epoch": 1, "best": 0.5, "metric": "val_auroc_macro", "val_metrics": {}})
    calls = []
    real = selection.classification_metrics
    monkeypatch.setattr(selection, "classification_metrics", lambda *a, **k: calls.append(1) or real(*a, **k))

    result = selection.evaluate_test(Checkpoint.from_directory(str(tmp_path)), examples, np.array(["test"] * n), None,
                                     intervals_for=selection.interval_measures("auroc_macro", NAMES), resamples=40)
    assert len(calls) == 1 + 40  # the figure itself, then one scoring per draw
    for name in ("test_auroc_macro", "test_f1_macro", "test_auroc_A", "test_auroc_B", "test_sensitivity_pooled",
                 "test_specificity_pooled"):  # the pooled pair: seed 000's headline
        assert result.metrics[f"{name}_ci_low"] < result.metrics[f"{name}_ci_high"]
