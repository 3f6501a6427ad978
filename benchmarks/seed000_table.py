"""Seed 000's results table from MLflow, after a search of its spaces: per selected model the per-class
sensitivity / specificity and TP / FN / FP / TN on fold 10, the pooled sensitivity and specificity (the
seed's headline, micro over the four labels) and the macro AUROC, each with a bootstrap 95 % interval over
test records, recomputed from the test predictions the search logged (nothing is re-trained or re-scored
by a model; the thresholds are the ones chosen on validation).

    python benchmarks/seed000_table.py [--mlflow-uri URI] [--spaces signal_ptbxl image_ptbxl fusion_ptbxl_cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def selected_runs(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.`ecgtune.selected` = 'true'", order_by=["start_time DESC"])
    latest = {}
    for run in runs:  # the latest search's selection per unit
        latest.setdefault(run.data.tags["ecgtune.unit"], run)
    return list(latest.values())


def pooled(logits: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    from ecgtune.training.multilabel import multilabel_metrics

    m = multilabel_metrics(logits, y, [str(k) for k in range(y.shape[1])], thresholds=thresholds)
    return {"sensitivity_pooled": m["sensitivity_pooled"], "specificity_pooled": m["specificity_pooled"],
            "auroc_macro": m["auroc_macro"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mlflow-uri", default=None, help="default: the local store ecgtune search writes")
    parser.add_argument("--spaces", nargs="+", default=["signal_ptbxl", "image_ptbxl", "fusion_ptbxl_cpu"])
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from ecgtune.training.bootstrap import record_bootstrap
    from ecgtune.tuning.tracking import tracking_uri

    uri = tracking_uri(args.mlflow_uri)
    client = MlflowClient(uri)
    for space in args.spaces:
        for run in sorted(selected_runs(client, space), key=lambda r: r.data.tags["ecgtune.model"]):
            with tempfile.TemporaryDirectory() as d:
                for folder in ("test_predictions", "label_counts"):
                    download_artifacts(run_id=run.info.run_id, artifact_path=folder, dst_path=d, tracking_uri=uri)
                kept = np.load(Path(d) / "test_predictions" / "test.npz")
                rows = json.loads((Path(d) / "label_counts" / "test.json").read_text())
            thresholds = np.array([r["threshold"] for r in rows])
            figures = pooled(kept["logits"], kept["y"], thresholds)
            spread = record_bootstrap(lambda i: pooled(kept["logits"][i], kept["y"][i], thresholds), kept["records"])
            m = run.data.metrics
            print(f"\n{space} {run.data.tags['ecgtune.model']} (run {run.info.run_id[:8]}, trained "
                  f"{int(m.get('epoch', 0))} epochs, best val AUROC {m.get('best_metric', float('nan')):.4f})")
            print("  label  threshold   TP  FN  FP   TN  sensitivity  specificity")
            for r in rows:
                se = f"{r['TP'] / (r['TP'] + r['FN']):11.4f}" if r["TP"] + r["FN"] else f"{'-':>11}"
                sp = f"{r['TN'] / (r['TN'] + r['FP']):11.4f}" if r["TN"] + r["FP"] else f"{'-':>11}"
                print(f"  {r['label']:<5}  {r['threshold']:9.3f} {r['TP']:4d} {r['FN']:3d} {r['FP']:3d} {r['TN']:4d}  {se}  {sp}")
            for name in ("sensitivity_pooled", "specificity_pooled", "auroc_macro"):
                low, high = spread.get(name, (float("nan"), float("nan")))
                print(f"  {name:<19} {figures[name]:.4f} [95% CI {low:.4f}, {high:.4f}]")


if __name__ == "__main__":
    main()
