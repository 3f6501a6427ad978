"""Metrics of multi-label tasks (a sigmoid per label): AUROC, and F1, sensitivity and specificity at
per-label thresholds.

The thresholds are chosen on validation, each maximising sqrt(TPR x (1 - FPR)) (the geometric mean of
sensitivity and specificity, seed 000's rule), reported as ``val_threshold_<label>``, kept with the
checkpoint, and applied unchanged to test: test data never choose a threshold.
"""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def choose_thresholds(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per label, the probability threshold that maximises sqrt(TPR x (1 - FPR)); 0.5 where the data hold
    one class only (nothing to choose from)."""
    from sklearn.metrics import roc_curve

    out = np.full(y.shape[1], 0.5)
    for k in range(y.shape[1]):
        if 0 < y[:, k].sum() < len(y):
            fpr, tpr, thresholds = roc_curve(y[:, k], proba[:, k])
            best = int(np.argmax(np.sqrt(tpr * (1 - fpr))))
            out[k] = min(float(thresholds[best]), 1.0)  # roc_curve's first threshold is inf: nothing positive
    return out


def label_counts(proba: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(labels, 4): TP, FN, FP, TN of each label at its threshold."""
    pred = proba >= thresholds[None, :]
    truth = y > 0.5
    return np.stack([(pred & truth).sum(0), (~pred & truth).sum(0), (pred & ~truth).sum(0), (~pred & ~truth).sum(0)], 1)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def multilabel_metrics(logits: np.ndarray, y: np.ndarray, label_names, thresholds: np.ndarray | None = None) -> dict:
    """Per label and macro (mean over labels) AUROC, F1, sensitivity and specificity, pooled (over every
    label's decisions) sensitivity and specificity, and the thresholds used (chosen here when None)."""
    from sklearn.metrics import roc_auc_score

    proba = sigmoid(logits)
    if thresholds is None:
        thresholds = choose_thresholds(proba, y)
    counts = label_counts(proba, y, np.asarray(thresholds))
    metrics: dict[str, float] = {}
    per = {"auroc": [], "f1": [], "sensitivity": [], "specificity": []}
    for k, name in enumerate(label_names):
        tp, fn, fp, tn = (float(c) for c in counts[k])
        values = {
            "auroc": float(roc_auc_score(y[:, k], proba[:, k])) if 0 < y[:, k].sum() < len(y) else float("nan"),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp),
        }
        for measure, value in values.items():
            metrics[f"{measure}_{name}"] = value
            per[measure].append(value)
        metrics[f"threshold_{name}"] = float(thresholds[k])
    for measure, values in per.items():
        finite = [v for v in values if np.isfinite(v)]
        metrics[f"{measure}_macro"] = float(np.mean(finite)) if finite else float("nan")
    tp, fn, fp, tn = counts.sum(0).astype(float)
    metrics["sensitivity_pooled"] = _ratio(tp, tp + fn)
    metrics["specificity_pooled"] = _ratio(tn, tn + fp)
    return metrics


def thresholds_of(metrics: dict, prefix: str, label_names) -> list[float]:
    """The thresholds a metrics dict reports, in label order."""
    return [float(metrics[f"{prefix}_threshold_{name}"]) for name in label_names]
