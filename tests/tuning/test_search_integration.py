"""Real searches on the real MIT-BIH copy: real local Ray, real SQLite MLflow store, real registry."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgtune.cli import main
from tests.tuning.conftest import runs_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def _name(stage: str, patient: str | None = None, split: str = "per_patient", task: str = "abnormal_windows") -> str:
    from ecgtune.tuning.promotion import registered_name

    return registered_name(task=task, dataset="mitdb", split=split, stage=stage, model="cnn1d_residual",
                           patient=patient, smoke=True)


QUICKSTART = _name("pretrain", task="abnormal_windows_quickstart")  # its own line: 8 records, not pretraining's 29


SPACES = {  # space -> (extra CLI args, expected trials, expected registered models)
    "quickstart": ([], 2, [QUICKSTART]),
    "pretrain_mitdb": ([], 1, [_name("pretrain")]),
    "individuals_patients": (["--patients", "100,208"], 36, [_name("scratch", p) for p in ("100", "208")]),
    "heartbeat_seed": (
        ["--models", "cnet"], 1, ["scratch-cnet-smoke-5619-aami_beats-mitdb-random_beats"],
    ),
    "dualnet_xs": (  # augmented training batches of 30 s recordings
        [], 2, [f"scratch-{m}-smoke-306a-af_rhythm_30s-cinc2017-stratified_records" for m in ("dualnet", "dualnet_pp")],
    ),
}  # finetune_patients, heartbeat_aami, mi_scratch and mi_transfer run together in test_all_pairs_*


@pytest.mark.parametrize("space", sorted(SPACES))
def test_every_space_runs_end_to_end_with_smoke_test(space, real_data_dir, ray_local, mlflow_uri, capsys):
    extra, n_trials, models = SPACES[space]
    code = main(["search", "--space", space, "--smoke-test", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(real_data_dir), *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    # While trials train, each unit says how far they are (its first result is always shown).
    running = [line for line in out.splitlines() if re.match(
        rf"    {space}-smoke/\S+: \d+ trials? running \(epoch 1/1(, 1/1)*\), \d+/\d+ finished; best val_\w+ so far "
        r"(\d\.\d{4}|nan) \(\d+ s into the search\)$", line)]
    assert len({line.split(":")[0] for line in running}) == len(models), out

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

    # Issue 26: true end times, best-epoch figures, descriptions, the parent's summary as one artifact.
    metric = parents[0].data.params["metric"]
    for c in selected:
        last = max(m.timestamp for m in client.get_metric_history(c.info.run_id, metric))
        assert abs(c.info.end_time - last) <= 5000, (c.info.end_time, last)  # not re-ended at registration
        assert c.data.tags["mlflow.note.content"].startswith("Selected for unit")
    assert all(f"best_{metric}" in c.data.metrics and "system/epoch" in c.data.metrics for c in children)
    assert not any("/" in k for k in parents[0].data.metrics)  # no metric per unit on the parent
    summary = client.download_artifacts(parents[0].info.run_id, "summary")
    table = (Path(summary) / "units.md").read_text()
    assert all(name in table for name in models) and metric in table
    assert "mlflow.note.content" in parents[0].data.tags and "mlflow.note.content" in experiment_tags(client, space)
    assert "viewStateShareKey=ecgtune-" in out and "--port 5000" in out

    for name in models:
        version = client.get_model_version_by_alias(name, "champion")
        assert {"space_file", "split", "git_revision", "data_key", "test_balanced_accuracy"} <= set(version.tags)
        assert version.tags["space"] == space and version.run_id in version.description
        registered = client.get_registered_model(name)
        assert {"task", "dataset", "split", "stage", "model", "patient", "space"} <= set(registered.tags)
        assert version.run_id in registered.description
        # The registered version is the logged model of its selected run (the run's Models column); the
        # SQL registry keeps the link as the version's source, models:/<logged model id>.
        assert version.source.startswith("models:/m-")
        logged = client.get_logged_model(version.model_id or version.source[len("models:/"):])
        assert logged.source_run_id == version.run_id and version.run_id in {c.info.run_id for c in selected}

    # What the MLflow UI shows: the training-runs view, runs named for what they are, their data.
    experiment = client.get_experiment_by_name(f"{space}-smoke")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert not any(c.info.run_name.startswith("train_fn_") for c in children)
    assert sorted(c.data.tags["ecgtune.selected"] for c in children) == ["false"] * (n_trials - len(models)) + ["true"] * len(models)
    assert all(c.info.run_name.split()[0] == c.data.tags["ecgtune.stage"] for c in children)
    data_key = children[0].data.params["data"]
    assert {c.data.params["data"] for c in children} == {data_key}
    # Every trial trained with a seed of its own, derived from the search's (train.seed) and on its run.
    assert len({c.data.params["trial_seed"] for c in children}) == n_trials
    # The data a unit was trained and tested on: on its selected run and the parent (a trial run's is its
    # `data` param, the same key).
    for c in [*selected, parents[0]]:
        inputs = c.inputs.dataset_inputs
        assert {i.dataset.digest for i in inputs} == {data_key}
        assert {t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context"} <= {"train", "validation", "test"}
        assert "train" in {t.value for i in inputs for t in i.tags}


def experiment_tags(client, space: str) -> dict:
    return client.get_experiment_by_name(f"{space}-smoke").tags


def test_quickstart_champion_loads_and_classifies_real_windows(real_data_dir, ray_local, mlflow_uri):
    import mlflow
    import mlflow.pytorch

    from ecgtune.data import assign_split, get_dataset

    assert main(["search", "--space", "quickstart", "--smoke-test", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(real_data_dir)]) == 0
    mlflow.set_tracking_uri(mlflow_uri)
    model = mlflow.pytorch.load_model(f"models:/{QUICKSTART}@champion")
    examples = get_dataset("mitdb", root=real_data_dir).prepare(
        mode="windows", labels="binary", records=["100", "208"])
    test = examples.subset(assign_split("per_patient", examples) == "test")
    with torch.no_grad():
        logits = model(torch.from_numpy(test.x[:50]))
    assert logits.shape == (50, 1) and torch.isfinite(logits).all()
    predictions = (torch.sigmoid(logits[:, 0]) > 0.5).numpy().astype(np.int64)
    assert set(np.unique(predictions)) <= {0, 1}

    # What serving it needs is the torch it was saved with and the packages its bundled code imports, and
    # nothing that is not on PyPI.
    uri = f"models:/{QUICKSTART}@champion"
    requirements = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements and "ecgtune" not in requirements
    # `mlflow models serve` of the champion answers a raw recording with what its pyfunc computes.
    raw = get_dataset("mitdb", root=real_data_dir).recording("208")
    rows = [{"signal": raw.signal[:, :36000].tolist(), "fs": raw.fs, "leads": list(raw.leads), "record": "208"}]
    local = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame(rows))
    assert len(local) == 100 and set(local["label"]) <= {"normal", "abnormal"}  # 100 one-second windows
    port = free_port()
    # The server runs `uvicorn` by name: the environment's scripts must be on PATH, as in an activated venv.
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_uri, MLFLOW_REGISTRY_URI=mlflow_uri,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                               "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        answer = score_when_up(f"http://127.0.0.1:{port}", {"dataframe_records": rows}, server, timeout=180)
    finally:
        try:  # the server and the uvicorn it started share their own process group
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        server.wait(timeout=30)
    served = pd.DataFrame(answer["predictions"])
    np.testing.assert_allclose(served["p_abnormal"].to_numpy(float), local["p_abnormal"].to_numpy(float), atol=1e-6)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def score_when_up(base: str, payload: dict, server, timeout: float) -> dict:
    """POST to /invocations once /ping answers; fails if the server exits or never comes up."""
    import json
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"mlflow models serve exited with {server.returncode}"
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=2) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, "mlflow models serve did not answer /ping"
        time.sleep(1)
    request = urllib.request.Request(f"{base}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def _lines_until(proc, pattern: str, timeout: float) -> list[str]:
    """Read the search's output until a line matches ``pattern``."""
    import re
    import time

    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)[-4000:]}")


def test_a_stopped_search_closes_its_runs_and_resume_finishes_it_without_repeating_trials(real_data_dir, tmp_path):
    """SIGTERM (what `ray job stop` sends; Ctrl-C takes the same path) mid-search: Tune saves its state, the
    runs are closed as KILLED, exit 130; --resume runs only what was missing and promotes each unit once."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "ECGTUNE_HOME": str(tmp_path / "home"), "ECGTUNE_DATA_DIR": str(real_data_dir),
           "PYTHONUNBUFFERED": "1"}
    args = [str(Path(sys.executable).with_name("ecgtune")), "search", "--space", "individuals_patients",
            "--patients", "100,208,119", "--smoke-test", "--mlflow-uri", uri]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # A dozen of the 54 trials finished. The longest start first, each unit's batch-4 trials before any
        # batch 16, so every unit still has trials to run when the signal comes.
        for _ in range(12):
            _lines_until(proc, r" finished: ", timeout=600)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, rest[-4000:]
    assert "interrupted" in rest and "--resume" in rest and "Traceback (most recent call last)" not in rest
    client, parents, children = runs_of(uri, "individuals_patients-smoke")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert not [c for c in children if c.info.status == "RUNNING"]  # nothing left RUNNING
    before = {c.data.tags["ecgtune.trial_id"]: c.info.status for c in children}
    seeds = {c.data.tags["ecgtune.trial_id"]: c.data.params.get("trial_seed") for c in children}
    assert 18 <= len(before) < 54 or any(s == "KILLED" for s in before.values())

    resumed = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    client, parents_after, children_after = runs_of(uri, "individuals_patients-smoke")
    assert [p.info.run_id for p in parents_after] == [parents[0].info.run_id]  # the same parent run
    assert parents_after[0].info.status == "FINISHED"
    assert len(children_after) == 54 and all(c.info.status == "FINISHED" for c in children_after)
    assert len({c.data.tags["ecgtune.trial_id"] for c in children_after}) == 54  # one run per trial
    # A resumed trial kept its seed; every trial has its own.
    seeds_after = {c.data.tags["ecgtune.trial_id"]: c.data.params["trial_seed"] for c in children_after}
    assert all(seeds_after[t] == seed for t, seed in seeds.items() if seed is not None)
    assert len(set(seeds_after.values())) == 54
    finished_before = {t for t, s in before.items() if s == "FINISHED"}
    rerun = [c for c in children_after if c.data.tags["ecgtune.trial_id"] in finished_before
             and len(client.get_metric_history(c.info.run_id, "system/epoch")) > 1]
    assert not rerun  # a trial that had finished was not trained again
    for child in children_after:  # a trial resumed from its checkpoint logs no epoch twice
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "system/epoch")]
        assert len(steps) == len(set(steps)), (child.info.run_id, steps)
    for patient in ("100", "208", "119"):
        versions = client.search_model_versions(f"name='{_name('scratch', patient)}'")
        assert len(versions) == 1  # each unit promoted once
    selected = [c for c in children_after if c.data.tags.get("ecgtune.selected") == "true"]
    assert len(selected) == 3

    resumed_again = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed_again.returncode == 2 and "nothing to resume" in resumed_again.stderr


def test_the_dualnet_seeds_protocol_selects_and_reports_on_validation_with_no_test_part(real_data_dir, ray_local,
                                                                                     mlflow_uri, capsys):
    """dualnet_seed keeps the seed's split (no test part): its champion is registered on the validation
    figure, no test metric is logged, and the summary says so."""
    assert main(["search", "--space", "dualnet_seed", "--smoke-test", "--models", "dualnet", "--mlflow-uri", mlflow_uri,
                 "--data-dir", str(real_data_dir)]) == 0
    out = capsys.readouterr().out
    assert "no test part" in out
    client, parents, children = runs_of(mlflow_uri, "dualnet_seed-smoke")
    (selected,) = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
    assert not any(k.startswith("test_") for k in selected.data.metrics)
    assert selected.data.tags["ecgtune.test"].startswith("none") and "val_accuracy" in selected.data.metrics
    assert selected.data.params["train.optimizer"] == "radam" and selected.data.params["train.lr_scheduler"] == "step"
    version = client.get_model_version_by_alias("scratch-dualnet-smoke-c741-af_rhythm-cinc2017-random_records",
                                                "champion")
    assert version.tags["split"] == "random_records"


def test_a_unit_that_cannot_be_selected_fairly_is_skipped_and_shown(real_data_dir, ray_local, mlflow_uri, capsys):
    """Record 102 under the chronological split has no normal validation window: its unit is skipped before
    any trial (a printed line, a tag on the parent run, a row of the summary), and the search finishes."""
    code = main(["search", "--space", "individuals_patients", "--patients", "102", "--split", "chronological",
                 "--smoke-test", "--mlflow-uri", mlflow_uri, "--data-dir", str(real_data_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    reason = "its validation part holds only class abnormal"
    assert f"skipped individuals_patients-smoke/scratch-cnn1d_residual-102: {reason}" in out
    assert f"cnn1d_residual       102  skipped: {reason}" in out
    _, parents, children = runs_of(mlflow_uri, "individuals_patients-smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and children == []
    assert parents[0].data.tags["scratch-cnn1d_residual-102/skipped"].startswith(reason)
