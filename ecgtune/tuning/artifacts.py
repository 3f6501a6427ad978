"""What is logged beside a selected trial's run from its one test evaluation: the confusion matrix (or per-label
counts) and the test predictions."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np


def confusion_matrix_figure(confusion: np.ndarray, label_names, title: str, path: Path) -> None:
    """A PNG of counts, each cell shaded by its share of the true class (rows sum to 1), so that rare
    classes (S, F) are as readable as N."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a cluster node
    import matplotlib.pyplot as plt

    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros(confusion.shape, float), where=totals > 0)
    size = 1.2 + 0.8 * len(label_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(label_names))
    ax.set_xticks(ticks, labels=label_names)
    ax.set_yticks(ticks, labels=label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in ticks:
        for j in ticks:
            ax.text(j, i, f"{confusion[i, j]}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log_confusion_matrix(mlf, run_id: str, confusion: np.ndarray, label_names, *, title: str) -> None:
    """``confusion_matrix/test.png`` and ``test.json`` (the counts) in the run's artifacts."""
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        confusion_matrix_figure(confusion, label_names, title, folder / "test.png")
        counts = {"labels": list(label_names), "rows_true_columns_predicted": confusion.astype(int).tolist()}
        (folder / "test.json").write_text(json.dumps(counts, indent=1) + "\n")
        mlf.log_artifacts(run_id, str(folder), artifact_path="confusion_matrix")


def log_label_counts(mlf, run_id: str, counts: np.ndarray, label_names, thresholds) -> None:
    """Multi-label tasks: ``label_counts/test.csv`` and ``test.json``, per label its threshold (chosen on
    validation) and TP, FN, FP, TN on test."""
    rows = [{"label": name, "threshold": float(t), **dict(zip(("TP", "FN", "FP", "TN"), map(int, c)))}
            for name, t, c in zip(label_names, thresholds, counts)]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "test.json").write_text(json.dumps(rows, indent=1) + "\n")
        lines = ["label,threshold,TP,FN,FP,TN"] + [
            f"{r['label']},{r['threshold']:.6g},{r['TP']},{r['FN']},{r['FP']},{r['TN']}" for r in rows]
        (folder / "test.csv").write_text("\n".join(lines) + "\n")
        mlf.log_artifacts(run_id, str(folder), artifact_path="label_counts")


def log_test_predictions(mlf, run_id: str, predictions: dict, label_names) -> None:
    """``test_predictions/test.npz``: the selected model's test logits, targets, records and positions (a
    beat's R-peak, a window's start: samples of the raw record), and the label names: enough to re-score the test (other measures, intervals) without rebuilding the model."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "test.npz"
        np.savez_compressed(path, label_names=np.asarray(label_names, dtype=str), **predictions)
        mlf.log_artifact(run_id, str(path), artifact_path="test_predictions")
