"""Classification metrics from logits, for binary (one logit), N-class and multi-label heads."""

from __future__ import annotations

import numpy as np


def probabilities(logits: np.ndarray) -> np.ndarray:
    """(N, 1) logits -> (N, 2) probabilities; (N, K) logits -> softmax (N, K)."""
    if logits.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float64)))
        return np.stack([1.0 - p, p], axis=1)
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predictions(logits: np.ndarray) -> np.ndarray:
    """The predicted class of each row of logits."""
    return probabilities(logits).argmax(axis=1)


def cinc2017_score(y: np.ndarray, pred: np.ndarray, label_names) -> float:
    """The PhysioNet/CinC Challenge 2017 score (score2017.m): the mean of the F1 of normal (N), AF (A)
    and other rhythm (O), each 2 x correct / (its row + its column of the confusion matrix), the noise
    class (~) counting in the matrix but not in the mean. A class neither present nor predicted (possible
    in a small validation set only) has no F1 and leaves the mean."""
    names = list(label_names)
    f1 = []
    for label in ("N", "A", "O"):
        k = names.index(label)
        correct = np.sum((y == k) & (pred == k))
        total = np.sum(y == k) + np.sum(pred == k)
        if total:
            f1.append(2.0 * correct / total)
    return float(np.mean(f1)) if f1 else float("nan")


# Task scores a dataset asks for beside the generic metrics (Examples.scores): name -> score(y, pred, labels).
SCORES = {"cinc_f1": cinc2017_score}


def classification_metrics(logits: np.ndarray, y: np.ndarray, prefix: str, label_names=None, scores=(),
                           thresholds=None) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 / precision / recall, AUROC, and per class precision, recall
    (sensitivity) and F1 as ``<prefix>_<measure>_<class name>``; names prefixed by the stage.

    Classes absent from ``y`` do not count in the macro averages and get no per-class recall
    (NaN); AUROC is NaN when ``y`` holds one class only (a patient whose validation windows are
    all normal, say).
    """
    from sklearn.metrics import (
        balanced_accuracy_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    if y.ndim == 2:  # multi-label: a sigmoid per label, thresholds chosen on validation
        from ecgtune.training.multilabel import multilabel_metrics

        return {f"{prefix}_{k}": v for k, v in multilabel_metrics(logits, y, label_names, thresholds).items()}

    proba = probabilities(logits)
    pred = proba.argmax(axis=1)
    present = np.unique(y)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, labels=present, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if len(y) else float("nan"),
        "f1_macro": float(f1),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "auroc": float("nan"),
    }
    if label_names is not None:
        classes = np.arange(len(label_names))
        per_p, per_r, per_f, support = precision_recall_fscore_support(
            y, pred, labels=classes, average=None, zero_division=0
        )
        predicted = np.bincount(pred, minlength=len(classes))
        for i, name in enumerate(label_names):
            # Undefined figures are NaN, not 0: no example of the class, or never predicted.
            metrics[f"recall_{name}"] = float(per_r[i]) if support[i] else float("nan")
            metrics[f"precision_{name}"] = float(per_p[i]) if predicted[i] else float("nan")
            metrics[f"f1_{name}"] = float(per_f[i]) if support[i] else float("nan")
    if len(present) > 1:
        if proba.shape[1] == 2:
            metrics["auroc"] = float(roc_auc_score(y, proba[:, 1]))
        else:
            cols = proba[:, present]
            cols = cols / cols.sum(axis=1, keepdims=True)
            if len(present) == 2:  # sklearn takes two present classes as a binary problem: one score column
                metrics["auroc"] = float(roc_auc_score(y == present[1], cols[:, 1]))
            else:
                metrics["auroc"] = float(roc_auc_score(y, cols, multi_class="ovr", labels=present))
    for name in scores:
        metrics[name] = SCORES[name](y, pred, label_names) if len(y) else float("nan")
    return {f"{prefix}_{k}": v for k, v in metrics.items()}
