"""Real searches on the real MIT-BIH copy: real local Ray, real SQLite MLflow store, real registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgtune.cli import main
from tests.tuning.conftest import runs_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def _name(stage: str, patient: str | None = None, split: str = "per_patient") -> str:
    patient_part = f"-{patient}" if patient else ""
    return f"ecgtune-abnormal_windows-mitdb-{split}-{stage}-cnn1d_residual{patient_part}-smoke"


SPACES = {  # space -> (extra CLI args, expected trials, expected registered models)
    "quickstart": ([], 2, [_name("pretrain")]),
    "pretrain_mitdb": ([], 1, [_name("pretrain")]),
    "individuals_patients": (["--patients", "100,208"], 36, [_name("scratch", p) for p in ("100", "208")]),
    "finetune_patients": (
        ["--patients", "100,208"], 1 + 36 + 36,
        [_name("pretrain")] + [_name(s, p) for s in ("scratch", "finetune") for p in ("100", "208")],
    ),
    "heartbeat_seed": (
        ["--models", "cnet"], 1, ["ecgtune-aami_beats-mitdb-random_beats-scratch-cnet-smoke"],
    ),
    "mi_scratch": (
        [], 4 * 2, [f"ecgtune-mi_beats-ptbxl-folds-scratch-{m}-smoke" for m in ("cnet", "seq2seq", "bilstm", "bigru")],
    ),
}


@pytest.mark.parametrize("space", sorted(SPACES))
def test_every_space_runs_end_to_end_with_smoke_test(space, real_data_dir, ray_local, mlflow_uri, capsys):
    extra, n_trials, models = SPACES[space]
    code = main(["search", "--space", space, "--smoke-test", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(real_data_dir), *extra])
    out = capsys.readouterr().out
    assert code == 0, out

    client, parents, children = runs_of(mlflow_uri, f"{space}-smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == n_trials
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["ecgtune.trial_id"] for c in children}) == n_trials  # one run per trial
    child = children[0]
    assert "train.lr" in child.data.params and "val_balanced_accuracy" in child.data.metrics
    assert "val_f1_macro" in child.data.metrics
    assert any(a.path == "checkpoint" for a in client.list_artifacts(child.info.run_id))

    selected = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
    assert len(selected) == len(models)  # test metrics logged once per unit, on the selected trial only
    assert all("test_balanced_accuracy" in c.data.metrics for c in selected)
    # The selected model's confusion matrix on test, as an image and as counts.
    for c in selected:
        paths = {a.path for a in client.list_artifacts(c.info.run_id, "confusion_matrix")}
        assert paths == {"confusion_matrix/test.png", "confusion_matrix/test.json"}
    assert not any("test_balanced_accuracy" in c.data.metrics for c in children if c not in selected)

    for name in models:
        version = client.get_model_version_by_alias(name, "champion")
        assert {"space_file", "split", "git_revision", "data_key", "test_balanced_accuracy"} <= set(version.tags)
    if space == "finetune_patients":
        assert "scratch vs fine-tuned" in out


def test_quickstart_champion_loads_and_classifies_real_windows(real_data_dir, ray_local, mlflow_uri):
    import mlflow
    import mlflow.pytorch

    from ecgtune.data import assign_split, get_dataset

    assert main(["search", "--space", "quickstart", "--smoke-test", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(real_data_dir)]) == 0
    mlflow.set_tracking_uri(mlflow_uri)
    model = mlflow.pytorch.load_model(f"models:/{_name('pretrain')}@champion")
    examples = get_dataset("mitdb", root=real_data_dir).prepare(
        mode="windows", labels="binary", records=["100", "208"])
    test = examples.subset(assign_split("per_patient", examples) == "test")
    with torch.no_grad():
        logits = model(torch.from_numpy(test.x[:50]))
    assert logits.shape == (50, 1) and torch.isfinite(logits).all()
    predictions = (torch.sigmoid(logits[:, 0]) > 0.5).numpy().astype(np.int64)
    assert set(np.unique(predictions)) <= {0, 1}


def test_interrupted_search_resumes_without_duplicating_trials_or_runs(real_data_dir, ray_local, mlflow_uri, monkeypatch):
    from ecgtune.tuning import selection

    real_select = selection.select_best
    calls = {"n": 0}

    def crash_on_second_unit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second patient's trials all finished; the driver dies before selection
            raise KeyboardInterrupt
        return real_select(*args, **kwargs)

    monkeypatch.setattr(selection, "select_best", crash_on_second_unit)
    args = ["search", "--space", "individuals_patients", "--patients", "100,208", "--smoke-test",
            "--mlflow-uri", mlflow_uri, "--data-dir", str(real_data_dir)]
    with pytest.raises(KeyboardInterrupt):
        main(args)
    _, parents, children = runs_of(mlflow_uri, "individuals_patients-smoke")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert not [c for c in children if c.info.status == "RUNNING"]  # nothing left RUNNING after a crash
    assert len(children) == 36

    monkeypatch.setattr(selection, "select_best", real_select)
    assert main([*args, "--resume"]) == 0
    client, parents_after, children_after = runs_of(mlflow_uri, "individuals_patients-smoke")
    assert [p.info.run_id for p in parents_after] == [parents[0].info.run_id]  # the same parent run
    assert parents_after[0].info.status == "FINISHED"
    assert len(children_after) == 36  # the 18 finished trials of patient 208 were not run again
    versions = client.search_model_versions(f"name='{_name('scratch', '100')}'")
    assert len(versions) == 1  # patient 100 was promoted once, before the crash, and not again

    assert main([*args, "--resume"]) == 2  # nothing left to resume: a clear error, not a new search
