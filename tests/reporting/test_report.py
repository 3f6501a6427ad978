"""`ecgtune report` on a real SQLite MLflow store holding runs laid out as a search leaves them."""

from __future__ import annotations

import pandas as pd

from ecgtune.cli import main
from tests.reporting.conftest import PRETRAIN_LRS


def test_the_report_holds_every_unit_and_one_parquet_row_per_trial_run(report_store, tmp_path, capsys):
    uri, ids = report_store
    out = tmp_path / "report"
    assert main(["report", "--space", "demo", "--smoke-test", "--mlflow-uri", uri, "--out", str(out)]) == 0
    assert "12 trial runs" in capsys.readouterr().out

    frame = pd.read_parquet(out / "trials.parquet")
    assert sorted(frame["run_id"]) == sorted(ids)
    assert frame["train.lr"].dtype.kind == "f" and set(frame["train.lr"]) == {*PRETRAIN_LRS, 0.01, 0.001, 0.1}
    assert frame["selected"].dtype == bool and frame["selected"].sum() == 2
    assert frame["train.weighted_sampling"].dtype == bool and frame["train.batch_size"].dtype == "int64"
    assert frame["gpu_ids"].isna().all() and set(frame["status"]) == {"FINISHED", "FAILED"}
    assert frame.loc[frame["selected"] & (frame["stage"] == "finetune"), "test_f1_macro"].item() == 0.8

    page = (out / "index.html").read_text()
    for unit in ("demo/scratch-cnn-100", "demo/finetune-cnn-100", "demo/scratch-cnn-208"):
        assert unit in page
    assert "0.6500 [0.5500, 0.7500]" in page  # the selected trial's test figure with its interval
    assert "0.8000 (no interval: 1 test record)" in page  # one test record: nothing to resample
    assert "<th>test [95 % CI]</th>" in page  # one unit has an interval
    assert "demo-model v1 (champion)" in page  # the registered version made from the selected run
    assert "none selected" in page and "skipped: no S beat in its validation part" in page
    for figure in ("demo-smoke-patients.png", "demo-smoke-units.png", "demo-smoke-curves.png"):
        assert (out / figure).stat().st_size > 1000 and figure in page

    # Per patient, scratch vs fine-tuned: the interval promised only in the column that has one.
    assert "<th>scratch: test f1_macro [95 % CI]</th><th>fine-tuned: test f1_macro</th>" in page
    assert "<td>100</td><td>0.6500 [0.5500, 0.7500]</td><td>0.8000 (no interval: 1 test record)</td><td>+0.1500</td>" in page

    # Each unit's search: best so far, importance (lr decides the pre-training unit's value), parallel
    # coordinates with lr on the log axis the logged space file asks for; too few trials said in words.
    for kind in ("best", "importance", "parallel"):
        assert (out / f"demo-smoke-pretrain-cnn-{kind}.png").stat().st_size > 1000
    assert "importance (fANOVA, share of the value's variance): lr " in page
    assert "Log axes: lr, as read from the space the search logged (space/quickstart.yaml)" in page
    assert "importance: 2 trial(s) with a validation value: importance needs at least 5" in page
    assert (out / "demo-smoke-scratch-cnn-100-best.png").exists()


def test_reporting_an_experiment_with_no_search_is_refused_in_one_line(report_store, tmp_path, capsys):
    uri, _ = report_store
    assert main(["report", "--experiment", "nothing-here", "--mlflow-uri", uri, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "experiment 'nothing-here': no trial runs" in err and "demo-smoke" in err and "Traceback" not in err
