"""Several spaces in one schedule, on the real data: `ecgtune search --space all_pairs --smoke-test` runs
every shipped model/dataset pair in one Tune run, each dependant after (and from) what it starts from."""

from __future__ import annotations

import json

import pytest

from ecgtune.cli import main
from tests.tuning.conftest import runs_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ("cnet", "seq2seq", "bilstm", "bigru")


def planned_runs() -> dict[str, tuple[int, int]]:
    """Space -> (trials, units) of its smoke version, from the plan the search runs (a unit's planned trials:
    its grid times num_samples, tests/tuning/test_plan.py): a new pair changes no count here, and a unit that
    runs one trial too few or too many fails below."""
    from ecgtune.spaces import load_search, shape_search
    from ecgtune.tuning.plan import build_plan

    runs: dict[str, tuple[int, int]] = {}
    for unit in build_plan(shape_search(load_search(["all_pairs"])[0], smoke_test=True)):
        trials, units = runs.get(unit.space.experiment_name, (0, 0))
        runs[unit.space.experiment_name] = (trials + unit.planned_trials, units + 1)
    return runs


EXPECTED = planned_runs()


def _interval(run) -> tuple[int, int]:
    return run.info.start_time, run.info.end_time


def test_all_pairs_runs_every_unit_of_its_spaces_in_one_schedule(real_data_dir, ray_local, mlflow_uri, capsys,
                                                                 tmp_path):
    assert main(["search", "--space", "all_pairs", "--smoke-test", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(real_data_dir)]) == 0
    out = capsys.readouterr().out
    assert "search all_pairs-smoke" in out and "scratch vs fine-tuned" in out
    assert all(f"== {space}" in out for space in EXPECTED)

    trials = {}
    for space, (n_trials, n_units) in EXPECTED.items():
        client, parents, children = runs_of(mlflow_uri, space)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(children) == n_trials and all(c.info.status == "FINISHED" for c in children)
        assert len({c.data.tags["ecgtune.unit"] for c in children}) == n_units
        selected = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
        assert len(selected) == n_units and all("test_f1_macro" in c.data.metrics or "test_threshold_NORM" in c.data.metrics
                                                for c in selected)  # multi-label smoke: too few test records for F1
        trials[space] = children

    # One schedule: trials of different spaces were in flight at the same time.
    heartbeat = [_interval(r) for r in trials["heartbeat_aami-smoke"]]
    study = [_interval(r) for r in trials["finetune_patients-smoke"]]
    assert any(a0 < b1 and b0 < a1 for a0, a1 in heartbeat for b0, b1 in study)

    # Each MI transfer unit started from the heartbeat_aami model this same search registered, after it was.
    for model in MODELS:
        source = f"scratch-{model}-smoke-5619-aami_beats-mitdb-random_beats"
        versions = client.search_model_versions(f"name='{source}'")
        assert len(versions) == 1
        runs = [r for r in trials["mi_transfer-smoke"] if r.data.tags["ecgtune.model"] == model]
        # Its runs record the registered version they started from, not where the trial read it.
        assert all(r.data.params["starts_from.model"] == f"models:/{source}/{versions[0].version}" for r in runs)
        assert not any(k.startswith("init_weights") for r in runs for k in r.data.params)
        assert all(r.info.start_time >= versions[0].creation_timestamp for r in runs)
    # Fine-tuning per patient started from this search's pre-training.
    pretrain = client.search_model_versions(
        "name='pretrain-cnn1d_residual-smoke-ad9a-abnormal_windows-mitdb-per_patient'")[0]
    finetune = [r for r in trials["finetune_patients-smoke"] if r.data.tags["ecgtune.stage"] == "finetune"]
    assert len(finetune) == 36 and all(r.info.start_time >= pretrain.creation_timestamp for r in finetune)
    assert {r.data.params["starts_from.model"] for r in finetune} == {f"models:/{pretrain.name}/{pretrain.version}"}
    # Every trial run says which node trained it and that it had no GPU (this machine has none).
    every = [r for runs in trials.values() for r in runs]
    assert all(r.data.tags.get("ray.node_id") and r.data.tags.get("ray.gpu_ids") == "none" for r in every)
    # ECG-DualNet's units trained on two inputs and report the challenge's score on test.
    dualnet = [r for r in trials["dualnet_cinc2017-smoke"] if r.data.tags.get("ecgtune.selected") == "true"]
    assert {r.data.tags["ecgtune.model"] for r in dualnet} == {"dualnet", "dualnet_pp"}
    assert all("test_cinc_f1" in r.data.metrics and "val_cinc_f1" in r.data.metrics for r in dualnet)
    assert all(r.data.params["model.hparams.size"] == "xs" for r in trials["dualnet_cinc2017-smoke"])
    # Ribeiro's ResNet: multi-label pre-training on 4,096 samples of 400 Hz, then normal vs abnormal from it.
    superdiag = trials["ribeiro_ptbxl_superdiagnostic-smoke"]
    assert all("val_auroc_macro" in r.data.metrics and "val_threshold_NORM" in r.data.metrics for r in superdiag)
    source = client.search_model_versions("name='pretrain-ribeiro_resnet-smoke-8d24-ptbxl_superdiag-ptbxl-folds'")[0]
    transferred = [r for r in trials["ribeiro_ptbxl_binary-smoke"] if r.data.tags["ecgtune.stage"] == "finetune"]
    assert len(transferred) == 12 and all(r.info.start_time >= source.creation_timestamp for r in transferred)
    # Seed 000: each fusion model started from both branch champions this search registered, after both were.
    branches = {b: client.search_model_versions(f"name='scratch-{m}-smoke-4c94-ptbxl_superdiag4-ptbxl-folds'")
                for b, m in (("signal", "gru1d"), ("image", "alexnet2d"))}
    assert all(len(v) == 1 for v in branches.values())
    fusion = trials["fusion_ptbxl-smoke"]
    assert {r.data.tags["ecgtune.model"] for r in fusion} == {"fusion_early", "fusion_late", "fusion_joint"}
    for r in fusion:
        for branch, (version,) in branches.items():
            assert r.data.params[f"starts_from.{branch}"] == f"models:/{version.name}/{version.version}"
            assert r.info.start_time >= version.creation_timestamp
    # The inter-patient beats carry their R-R features and neighbours; each model reads the inputs it takes.
    rhythm = [r for r in trials["heartbeat_interpatient-smoke"] if r.data.tags.get("ecgtune.selected") == "true"]
    assert {r.data.tags["ecgtune.model"] for r in rhythm} == {"cnet", "cnet_rr", "cnet_neighbours_rr", "bigru", "bigru_rr"}
    assert all("test_f1_S" in r.data.metrics for r in rhythm)
    images = [r for r in trials["image_ptbxl-smoke"] if r.data.tags.get("ecgtune.selected") == "true"]
    assert len(images) == 4 and all("val_auroc_macro" in r.data.metrics for r in images)

    # The report of the whole study: every unit on the page, every trial run a row of trials.parquet.
    import pandas as pd

    report = tmp_path / "report"
    assert main(["report", "--mlflow-uri", mlflow_uri, "--out", str(report)]) == 0
    frame = pd.read_parquet(report / "trials.parquet")
    assert sorted(frame["run_id"]) == sorted(r.info.run_id for r in every)
    page = (report / "index.html").read_text()
    assert all(r.data.tags["ecgtune.unit"] in page for r in every)
    assert (report / "finetune_patients-smoke-patients.png").exists()
    assert (report / "heartbeat_aami-smoke-units.png").exists()
    # Typed: one selected run per unit, a boolean column; no GPU here: null GPU ids, not "none".
    assert frame["selected"].dtype == bool and frame["selected"].sum() == sum(n for _, n in EXPECTED.values())
    assert frame["gpu_ids"].isna().all()
    # Each trial's best epoch beside its last: what selection compared (a max metric: never below the last).
    pairs = [(row[f"best_{row['metric']}"], row[row["metric"]], row["mode"]) for _, row in frame.iterrows()
             if row["status"] != "FAILED"]
    pairs = [(best, last, mode) for best, last, mode in pairs if pd.notna(best) and pd.notna(last)]  # NaN: not logged
    assert len(pairs) > len(frame) // 2
    assert all(best >= last - 1e-9 if mode == "max" else best <= last + 1e-9 for best, last, mode in pairs)
    # Every unit's search on the page: its best so far; a per-patient unit's 18-trial grid its importance, or
    # (one epoch each in a smoke run) why not.
    units = {r.data.tags["ecgtune.unit"] for r in every}
    assert all(f"Best so far vs trial index ({u})" in page for u in units)
    per_patient = [u for u in units if u.startswith("finetune_patients-smoke/") and "pretrain" not in u]
    assert len(per_patient) == 4
    for u in per_patient:
        view = page.split(f"<h4>{u}</h4>", 1)[1].split("</section>", 1)[0]
        assert "Parameter importance, fANOVA" in view or "importance: all 18 trials reached the same value" in view
    assert "<th>patient</th><th>scratch: test balanced_accuracy</th>" in page

    # Every champion of every pair predicts a raw recording of its dataset through its pyfunc, and
    # `mlflow models serve` answers the same JSON request for one champion of every model family.
    _champions_take_raw_recordings(client, mlflow_uri, real_data_dir)


RAW = {"mitdb": "208", "ptbxl": "1", "cinc2017": "A00001"}  # a recording of each dataset, raw


def _champions_take_raw_recordings(client, mlflow_uri: str, real_data_dir) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    import mlflow
    import pandas as pd

    from ecgtune.data import get_dataset
    from ecgtune.models._registry import _MODELS
    from tests.tuning.test_champion_integration import _stop
    from tests.tuning.test_search_integration import free_port, score_when_up

    mlflow.set_tracking_uri(mlflow_uri)
    families = {}
    names = [m.name for m in client.search_registered_models(max_results=1000)]
    assert len(names) >= 30
    for name in names:
        version = client.get_model_version_by_alias(name, "champion")
        raw = get_dataset(version.tags["dataset"], root=real_data_dir).recording(RAW[version.tags["dataset"]])
        signal = raw.signal[:, : int(60 * raw.fs)]  # a minute is enough for every task
        rows = [{"signal": signal.tolist(), "fs": raw.fs, "leads": list(raw.leads), "record": raw.name}]
        predicted = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame(rows))
        classes = [c[2:] for c in predicted.columns if c.startswith("p_")]
        assert classes == json.loads(version.tags["classes"]) and len(predicted) >= 1, name
        model = client.get_run(version.run_id).data.tags["ecgtune.model"]
        families.setdefault(_MODELS[model].__module__, (name, rows, predicted))
    assert len(families) >= 8  # cnn1d, heartbeat, rhythm_joined, dualnet, resnet12, recurrent1d, image2d, fusion
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_uri, MLFLOW_REGISTRY_URI=mlflow_uri,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    # The servers start together rather than one after the other: each spends most of its start importing
    # mlflow and torch, which overlap with the other servers' waits.
    servers = {}
    try:
        for family, (name, rows, predicted) in families.items():
            port = free_port()
            servers[family] = port, subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion", "--env-manager",
                 "local", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT, start_new_session=True)
        for family, (port, server) in servers.items():
            _, rows, predicted = families[family]
            served = pd.DataFrame(score_when_up(f"http://127.0.0.1:{port}", {"dataframe_records": rows}, server, 300)
                                  ["predictions"])
            assert list(served["label"]) == list(predicted["label"]), family
    finally:
        for _, server in servers.values():
            _stop(server)
