"""A champion registered with its preparation, against a real SQLite registry: the pyfunc predicts raw
recordings as the dataset prepared its examples, refuses what it cannot take by name, and `ecgtune
predict` / `ecgtune evaluate` use it (a recording refused does not stop the others; data overlapping the
training records are refused)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ecgtune.cli import main
from ecgtune.data import get_dataset
from ecgtune.data.recordings import Recording
from ecgtune.errors import EcgtuneError
from ecgtune.models import create_model
from ecgtune.training.checkpoint import save_state
from ecgtune.tuning import promotion, tracking
from ecgtune.tuning.apply import TRAINING_RECORDS
from tests.synthetic_wfdb import write_beat_database

NAME = "ecgtune-test-beats"
PREPROCESSING = {"mode": "kachuee", "lead": "ECG1", "symbol_map": {"N": ["N"], "S": ["A"], "V": ["V"]}, "rhythm": True}


@pytest.fixture
def champion(tmp_path):
    """A cnet_rr champion of a synthetic 128 Hz database (records 800-803 trained on), its registry and data."""
    write_beat_database(tmp_path / "db", fs=128, records=("800", "801", "802", "803"), seconds=60)
    dataset = get_dataset("wfdb", path=str(tmp_path / "db"))
    examples = dataset.prepare(**PREPROCESSING)
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = tracking.client(uri)
    run = client.create_run(tracking.experiment_id(client, "champion-test"))
    torch.manual_seed(0)
    model = create_model("cnet_rr", inputs=examples.input_shapes, num_outputs=3).eval()
    spec = {"name": "cnet_rr", "inputs": {k: list(v) for k, v in examples.input_shapes.items()}, "num_outputs": 3,
            "hparams": {}, "label_names": ["N", "S", "V"]}
    (tmp_path / "ckpt").mkdir()
    save_state(tmp_path / "ckpt", {"model_state": model.state_dict(), "model_spec": spec})
    client.log_artifacts(run.info.run_id, str(tmp_path / "ckpt"), "checkpoint")
    client.log_dict(run.info.run_id, {"source": str(dataset.folder), "records": ["800", "801"]}, TRAINING_RECORDS)
    parts = {"preparation": {**dataset.preparation(**PREPROCESSING), "samples": 187}, "label_names": ["N", "S", "V"],
             "scores": [], "thresholds": None, "model_spec": spec, "weights": model.state_dict()}
    example = {k: v[:2] for k, v in examples.inputs.items()}
    promotion.promote(client, name=NAME, run_id=run.info.run_id, model=model, example=example, metric="val_f1_macro",
                      value=0.5, mode="max", tags={"data_key": "k"}, champion=parts)
    client.set_terminated(run.info.run_id)
    return {"uri": uri, "model": model, "examples": examples, "dataset": dataset, "folder": tmp_path / "db"}


def test_the_pyfunc_predicts_raw_recordings_as_the_dataset_prepared_them(champion):
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(champion["uri"])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    raw = champion["dataset"].recording("800")
    examples = champion["examples"].subset(champion["examples"].records == "800")
    rpeaks = sorted(set(examples.positions.tolist()))
    out = pyfunc.predict(pd.DataFrame([{"signal": raw.signal.tolist(), "fs": raw.fs, "leads": list(raw.leads),
                                        "rpeaks": rpeaks, "record": "800"}]))
    with torch.no_grad():
        logits = champion["model"](torch.from_numpy(examples.inputs["signal"]), torch.from_numpy(examples.inputs["rhythm"]))
    expected = torch.softmax(logits.double(), dim=1).numpy()
    got = out.set_index("sample").loc[examples.positions, ["p_N", "p_S", "p_V"]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert set(out["rpeaks"]) == {"given"} and set(out["label"]) <= {"N", "S", "V"}
    detected = pyfunc.predict(pd.DataFrame([{"signal": raw.signal.tolist(), "fs": int(raw.fs), "leads": list(raw.leads)}]))
    assert len(detected) > 10 and set(detected["rpeaks"]) == {"detected"}
    network = mlflow.pytorch.load_model(f"models:/{NAME}@champion")  # the bare network stays there for tensors
    assert tuple(network(torch.zeros(2, 1, 187), torch.zeros(2, 6)).shape) == (2, 3)


def test_a_recording_without_the_lead_is_refused_by_name(champion):
    from ecgtune.tuning.apply import load_champion

    predictor = load_champion(f"models:/{NAME}@champion", champion["uri"]).predictor
    with pytest.raises(EcgtuneError, match=r"x1: the model reads lead 'ECG1'; the recording has \['V5', 'V1'\]"):
        predictor.predict_recording(Recording(np.zeros((2, 5000)), 128, ("V5", "V1"), name="x1"))
    one_lead = predictor.predict_recording(Recording(champion["dataset"].recording("800").signal[:1], 128, name="x2"))
    assert len(one_lead) > 10  # a one-lead model takes any one-lead recording


def test_predict_writes_rows_and_refuses_a_recording_without_stopping_the_others(champion, tmp_path, capsys):
    write_beat_database(tmp_path / "other", fs=257, records=("900",), leads=("V5", "V1"), seconds=40)
    np.save(tmp_path / "signal.npy", champion["dataset"].recording("801").signal[0])
    out = tmp_path / "predictions.parquet"
    code = main(["predict", "--model", f"models:/{NAME}@champion", str(champion["folder"]), str(tmp_path / "other" / "900"),
                 str(tmp_path / "signal.npy"), "--fs", "128", "--annotator", "atr", "--out", str(out),
                 "--mlflow-uri", champion["uri"]])
    assert code == 1  # one recording refused
    assert "refused " + str(tmp_path / "other" / "900") in capsys.readouterr().out
    table = pd.read_parquet(out)
    assert {"record", "sample", "rpeaks", "p_N", "p_S", "p_V", "label"} == set(table.columns)
    assert table["record"].nunique() == 5  # the four records of the folder and the .npy signal
    assert set(table.loc[table["record"].str.endswith(".npy"), "rpeaks"]) == {"detected"}


def test_evaluate_refuses_the_records_it_trained_on_and_scores_the_others(champion, tmp_path, capsys):
    block = tmp_path / "same.yaml"
    block.write_text(f"dataset:\n  name: wfdb\n  path: {champion['folder']}\n  preprocessing: {PREPROCESSING}\n")
    db = champion["uri"]
    assert main(["evaluate", "--model", f"models:/{NAME}@champion", "--dataset", str(block), "--mlflow-uri", db]) == 2
    assert "trained or was selected on 2 of these records (800, 801)" in capsys.readouterr().err
    (champion["folder"] / "RECORDS").write_text("802\n803\n")  # the records it never saw
    assert main(["evaluate", "--model", f"models:/{NAME}@champion", "--dataset", str(block), "--mlflow-uri", db]) == 0
    out = capsys.readouterr().out
    assert "external validation:" in out and "2 records (fewer than 20 records: no intervals)" in out
    client = tracking.client(db)
    version = client.get_model_version_by_alias(NAME, "champion")
    assert f"external.wfdb_db.f1_macro" in version.tags
    runs = client.search_runs([client.get_experiment_by_name("champion-test").experiment_id],
                              filter_string="tags.`ecgtune.evaluation` = 'external'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and "external_f1_macro" in runs[0].data.metrics
