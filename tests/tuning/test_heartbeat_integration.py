"""The heartbeat suite end to end on the real data: AAMI beats on MIT-BIH, then MI on PTB-XL starting
from the AAMI champions (real local Ray, real SQLite MLflow store and registry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgtune.cli import main
from tests.tuning.conftest import runs_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ("cnet", "seq2seq", "bilstm", "bigru")


def _search(space, mlflow_uri, data_dir, *extra):
    return main(["search", "--space", space, "--smoke-test", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(data_dir), *extra])


def test_mi_transfer_without_aami_champions_is_refused_before_anything_runs(real_data_dir, mlflow_uri, capsys):
    assert _search("mi_transfer", mlflow_uri, real_data_dir) == 2
    err = capsys.readouterr().err
    assert "scratch-cnet-smoke-5619-aami_beats-mitdb-random_beats" in err and "--smoke-test" in err
    from mlflow.tracking import MlflowClient

    assert MlflowClient(mlflow_uri).get_experiment_by_name("mi_transfer-smoke") is None  # nothing half-made


def test_heartbeat_aami_then_mi_transfer_run_every_model(real_data_dir, ray_local, mlflow_uri, capsys):
    import mlflow
    import mlflow.pytorch

    assert _search("heartbeat_aami", mlflow_uri, real_data_dir) == 0
    out = capsys.readouterr().out
    assert "per class on test" in out
    client, parents, children = runs_of(mlflow_uri, "heartbeat_aami-smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted({c.data.tags["ecgtune.model"] for c in children}) == sorted(MODELS)
    assert len(children) == 2 * len(MODELS)  # two sampled configurations per model
    for child in children:
        # Every trial logs per-class figures: sensitivity (recall), PPV (precision) and F1 of each AAMI class.
        assert {f"val_{m}_{c}" for m in ("recall", "precision", "f1") for c in "NSVFQ"} & set(child.data.metrics)
        assert "val_f1_macro" in child.data.metrics and "train.smote" in child.data.params
    selected = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
    assert len(selected) == len(MODELS)
    for c in selected:
        assert {"test_f1_macro", "test_f1_N", "test_recall_N"} <= set(c.data.metrics)
        # The random beat split's test part spans the records: bootstrap intervals around the test figures.
        m = c.data.metrics
        # (a percentile interval need not hold its own point estimate: only its ends are asserted)
        assert 0 <= m["test_f1_macro_ci_low"] < m["test_f1_macro_ci_high"] <= 1
        assert "test_predictions/test.npz" in {a.path for a in client.list_artifacts(c.info.run_id, "test_predictions")}
        assert {a.path for a in client.list_artifacts(c.info.run_id, "confusion_matrix")} == {
            "confusion_matrix/test.png", "confusion_matrix/test.json"}
    aami = {m: client.get_model_version_by_alias(f"scratch-{m}-smoke-5619-aami_beats-mitdb-random_beats", "champion")
            for m in MODELS}

    assert _search("mi_transfer", mlflow_uri, real_data_dir) == 0
    client, parents, children = runs_of(mlflow_uri, "mi_transfer-smoke")
    assert parents[0].info.status == "FINISHED"
    assert sorted({c.data.tags["ecgtune.model"] for c in children}) == sorted(MODELS)
    assert {c.data.tags["ecgtune.stage"] for c in children} == {"finetune"}
    from ecgtune.data import assign_split, get_dataset

    beats = get_dataset("ptbxl", root=real_data_dir).prepare(task="mi_beats", lead="II", max_per_record=3)
    test = beats.subset(assign_split("folds", beats) == "test")
    mlflow.set_tracking_uri(mlflow_uri)
    for m in MODELS:
        version = client.get_model_version_by_alias(f"finetune-{m}-smoke-fce8-mi_beats-ptbxl-folds", "champion")
        assert version.tags["dataset"] == "ptbxl" and version.tags["task"] == "mi_beats"
        # The MI model classifies two classes with one logit: its head was replaced.
        model = mlflow.pytorch.load_model(f"models:/{version.name}@champion")
        with torch.no_grad():
            logits = model(torch.from_numpy(test.x[:8]))
        assert logits.shape == (8, 1) and torch.isfinite(logits).all()
        assert aami[m].name != version.name
    assert np.isin(test.y, [0, 1]).all()
