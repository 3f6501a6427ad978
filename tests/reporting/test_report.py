"""`ecgtune report` on a real SQLite MLflow store holding runs laid out as a search leaves them."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from ecgtune.cli import main


def _trial(client, exp_id, parent, unit, stage, patient, *, lr, metric_values, selected=False, test=None,
           status="FINISHED"):
    run = client.create_run(exp_id, run_name=f"{stage} {patient} lr={lr}", tags={
        "mlflow.parentRunId": parent, "ecgtune.trial_id": f"t{abs(hash((unit, lr))) % 10**6}",
        "ecgtune.unit": unit, "ecgtune.stage": stage, "ecgtune.patient": patient, "ecgtune.space": "demo-smoke",
        "ecgtune.model": "cnn", **({"ecgtune.selected": "true"} if selected else {})})
    rid = run.info.run_id
    metrics = [Metric("val_f1_macro", v, 0, step) for step, v in enumerate(metric_values, 1)]
    metrics += [Metric("best_metric", max(metric_values), 0, 0), Metric("epoch", len(metric_values), 0, 0)]
    metrics += [Metric(k, v, 0, 0) for k, v in (test or {}).items()]
    client.log_batch(rid, metrics=metrics, params=[Param("train.lr", str(lr)), Param("train.optimizer", "adam"),
                                                    Param("metric", "val_f1_macro")])
    client.set_terminated(rid, status)
    return rid


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    exp_id = client.create_experiment("demo-smoke")
    parent = client.create_run(exp_id, run_name="demo-1", tags={"ecgtune.search": "demo-smoke"}).info.run_id
    client.set_tag(parent, "scratch-cnn-102/skipped", "no S beat in its validation part")
    ids = [  # unit scratch-cnn-100: two trials, the second selected; finetune-cnn-100: one; 208: one that failed
        _trial(client, exp_id, parent, "demo/scratch-cnn-100", "scratch", "100", lr=0.01, metric_values=[0.5, 0.6]),
        _trial(client, exp_id, parent, "demo/scratch-cnn-100", "scratch", "100", lr=0.001, metric_values=[0.6, 0.7],
               selected=True, test={"test_f1_macro": 0.65, "test_f1_macro_ci_low": 0.55, "test_f1_macro_ci_high": 0.75}),
        _trial(client, exp_id, parent, "demo/finetune-cnn-100", "finetune", "100", lr=0.001, metric_values=[0.8],
               selected=True, test={"test_f1_macro": 0.8, "test_f1_macro_ci_low": 0.7, "test_f1_macro_ci_high": 0.9}),
        _trial(client, exp_id, parent, "demo/scratch-cnn-208", "scratch", "208", lr=0.1, metric_values=[0.1],
               status="FAILED"),
    ]
    selected = ids[1]
    client.create_registered_model("demo-model")
    client.create_model_version("demo-model", source=str(tmp_path / "model"), run_id=selected)
    client.set_registered_model_alias("demo-model", "champion", "1")
    return uri, ids


def test_the_report_holds_every_unit_and_one_parquet_row_per_trial_run(store, tmp_path, capsys):
    uri, ids = store
    out = tmp_path / "report"
    assert main(["report", "--space", "demo", "--smoke-test", "--mlflow-uri", uri, "--out", str(out)]) == 0
    assert "4 trial runs" in capsys.readouterr().out

    frame = pd.read_parquet(out / "trials.parquet")
    assert sorted(frame["run_id"]) == sorted(ids)
    assert frame["train.lr"].dtype.kind == "f" and set(frame["train.lr"]) == {0.01, 0.001, 0.1}
    assert frame["selected"].sum() == 2 and set(frame["status"]) == {"FINISHED", "FAILED"}
    assert frame.loc[frame["selected"] & (frame["stage"] == "finetune"), "test_f1_macro"].item() == 0.8

    page = (out / "index.html").read_text()
    for unit in ("demo/scratch-cnn-100", "demo/finetune-cnn-100", "demo/scratch-cnn-208"):
        assert unit in page
    assert "0.6500 [0.5500, 0.7500]" in page  # the selected trial's test figure with its interval
    assert "demo-model v1 (champion)" in page  # the registered version made from the selected run
    assert "none selected" in page and "skipped: no S beat in its validation part" in page
    for figure in ("demo-smoke-patients.png", "demo-smoke-units.png", "demo-smoke-curves.png"):
        assert (out / figure).stat().st_size > 1000 and figure in page


def test_reporting_an_experiment_with_no_search_is_refused_in_one_line(store, tmp_path, capsys):
    uri, _ = store
    assert main(["report", "--experiment", "nothing-here", "--mlflow-uri", uri, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "experiment 'nothing-here': no trial runs" in err and "demo-smoke" in err and "Traceback" not in err
