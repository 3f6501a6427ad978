"""A real SQLite MLflow store holding runs laid out as a search leaves them (no search is run: cheap)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.tracking import MlflowClient

PRETRAIN_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)  # the pre-training unit's trials, in start order


def _trial(client, exp_id, parent, unit, stage, patient, *, lr, metric_values, selected=False, test=None,
           status="FINISHED", batch_size=32, weighted=True, test_records=None):
    run = client.create_run(exp_id, run_name=f"{stage} {patient} lr={lr}", tags={
        "mlflow.parentRunId": parent, "ecgtune.trial_id": f"t{abs(hash((unit, lr))) % 10**6}",
        "ecgtune.unit": unit, "ecgtune.stage": stage, "ecgtune.patient": patient, "ecgtune.space": "demo-smoke",
        "ecgtune.model": "cnn", "ray.gpu_ids": "none", "ecgtune.selected": "true" if selected else "false"})
    rid = run.info.run_id
    metrics = [Metric("val_f1_macro", v, 0, step) for step, v in enumerate(metric_values, 1)]
    metrics += [Metric("best_metric", max(metric_values), 0, 0), Metric("epoch", len(metric_values), 0, 0)]
    metrics += [Metric(k, v, 0, 0) for k, v in (test or {}).items()]
    client.log_batch(rid, metrics=metrics, params=[
        Param("train.lr", str(lr)), Param("train.optimizer", "adam"), Param("train.batch_size", str(batch_size)),
        Param("train.weighted_sampling", str(weighted)), Param("metric", "val_f1_macro"), Param("mode", "max")])
    if test_records is not None:  # what selection logs on the selected run: the test part's size
        profile = json.dumps({"examples": 10 * test_records, "records": test_records})
        client.log_inputs(rid, datasets=[DatasetInput(Dataset(f"mitdb/w {unit}:test", "key", "ecgtune", "{}",
                                                              profile=profile), [InputTag("mlflow.data.context", "test")])])
    client.set_terminated(rid, status)
    return rid


@pytest.fixture
def report_store(tmp_path):
    """(tracking URI, trial run ids). Units: demo/pretrain-cnn, 8 trials where lr alone decides; per patient
    100 a scratch unit (2 trials, the second selected, an interval on test) and a fine-tuned one (1 trial,
    1 test record: no interval); patient 208's scratch unit, whose one trial failed; 102 skipped."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    exp_id = client.create_experiment("demo-smoke", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp_id, run_name="demo-1", tags={"ecgtune.search": "demo-smoke"}).info.run_id
    client.set_tag(parent, "scratch-cnn-102/skipped", "no S beat in its validation part")
    # The space the search ran, as it logs it: its lr is searched on a log scale.
    client.log_artifact(parent, str(Path(__file__).parents[2] / "search_spaces" / "quickstart.yaml"), "space")
    ids = [
        _trial(client, exp_id, parent, "demo/pretrain-cnn", "pretrain", "all", lr=lr, batch_size=(16, 64)[i % 2],
               weighted=i % 3 == 0, metric_values=[0.5, 0.9 - abs(i - 3) / 10])
        for i, lr in enumerate(PRETRAIN_LRS)
    ]
    ids += [
        _trial(client, exp_id, parent, "demo/scratch-cnn-100", "scratch", "100", lr=0.01, metric_values=[0.5, 0.6]),
        _trial(client, exp_id, parent, "demo/scratch-cnn-100", "scratch", "100", lr=0.001, metric_values=[0.6, 0.7],
               selected=True, test_records=12,
               test={"test_f1_macro": 0.65, "test_f1_macro_ci_low": 0.55, "test_f1_macro_ci_high": 0.75}),
        _trial(client, exp_id, parent, "demo/finetune-cnn-100", "finetune", "100", lr=0.001, metric_values=[0.8],
               selected=True, test={"test_f1_macro": 0.8}, test_records=1),
        _trial(client, exp_id, parent, "demo/scratch-cnn-208", "scratch", "208", lr=0.1, metric_values=[0.1],
               status="FAILED"),
    ]
    client.create_registered_model("demo-model")
    client.create_model_version("demo-model", source=str(tmp_path / "model"), run_id=ids[-3])
    client.set_registered_model_alias("demo-model", "champion", "1")
    return uri, ids
