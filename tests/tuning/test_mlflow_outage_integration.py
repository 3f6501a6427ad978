"""A search whose MLflow server goes away for a while keeps training and catches up: a real `mlflow server`
(SQLite backend, artifacts proxied), stopped in mid-search and started again on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.tuning.conftest import runs_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(folder: Path, port: int) -> subprocess.Popen:
    """`mlflow server` in a process group of its own (its workers go with it), answering /health."""
    log = open(folder / f"server-{time.monotonic_ns()}.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180  # tens of seconds on a loaded 2-core machine
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(1)
    _stop_server(server)
    raise AssertionError(f"mlflow server did not answer on port {port}: {(folder / log.name).read_text()[-2000:]}")


def _stop_server(server: subprocess.Popen, crash: bool = False) -> None:
    """Stop the server's process group: at once (``crash``: requests in flight lose their answers, some
    after their write was committed), else as a service manager does."""
    try:
        os.killpg(server.pid, signal.SIGKILL if crash else signal.SIGTERM)
        server.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def test_a_search_survives_its_mlflow_server_stopping_for_a_while(tmp_path, real_data_dir):
    """The 36-trial smoke search of two patients (the smallest with two units, so that a selection and a
    promotion can meet the outage too): the server dies as the first trial ends, for OUTAGE_S. A
    search of its own: no other test's search can have its MLflow server stopped under it."""
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(tmp_path, port)
    env = {**os.environ, "ECGTUNE_HOME": str(tmp_path / "home"), "ECGTUNE_DATA_DIR": str(real_data_dir),
           "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    search = subprocess.Popen([str(Path(sys.executable).with_name("ecgtune")), "search", "--space", "individuals_patients",
                               "--patients", "100,208", "--smoke-test", "--mlflow-uri", uri],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in search.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        # The smoke trials are a second or so each: the server goes down with the first one's end, so
        # that most of them train, report and end while it is away.
        while not any(" finished: " in line for _, line in lines) and search.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert search.poll() is None, "".join(line for _, line in lines)[-4000:]
        _stop_server(server, crash=True)
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        server = _start_server(tmp_path, port)
        up = time.monotonic()
        code = search.wait(timeout=900)
        reader.join(timeout=30)
        out = "".join(line for _, line in lines)
        assert code == 0, out[-4000:]
        # Trials went on finishing while MLflow was away: training never waited for it.
        finished_at = [round(at - down, 1) for at, line in lines if " finished: " in line]
        assert any(0 < at < up - down for at in finished_at), (
            f"trials finished at {finished_at} s from the outage's start, which ended at {up - down:.1f} s")
        _check_runs(uri, tmp_path)
    finally:
        if search.poll() is None:
            search.terminate()
            search.wait(timeout=120)
        _stop_server(server)


def _check_runs(uri: str, folder: Path) -> None:
    """Exactly one run per trial, both units promoted once, the checkpoints without the optimizer's state."""
    import torch

    from ecgtune.tuning.promotion import registered_name

    client, parents, children = runs_of(uri, "individuals_patients-smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 36 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["ecgtune.trial_id"] for c in children}) == 36  # exactly one run per trial
    for patient in ("100", "208"):
        name = registered_name(task="abnormal_windows", dataset="mitdb", split="per_patient", stage="scratch",
                               model="cnn1d_residual", patient=patient, smoke=True)
        assert len(client.search_model_versions(f"name='{name}'")) == 1  # registered once, not twice
        assert client.get_model_version_by_alias(name, "champion").version == "1"
    # What MLflow keeps of a trial is its weights and model spec: the optimizer's state only resumes a trial.
    selected = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
    assert len(selected) == 2
    local = client.download_artifacts(selected[0].info.run_id, "checkpoint/state.pt", str(folder))
    state = torch.load(local, weights_only=True)
    assert {"model_state", "model_spec"} <= set(state) and "optimizer_state" not in state
