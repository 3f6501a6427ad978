"""A real multi-node cluster on this machine (Ray's fake multi-node autoscaler, see fake_cluster.py): GPU
workers started from zero for the trials' GPU requests, a per-patient study spread over several nodes,
and a worker node killed mid-search whose trials go on from their checkpoints elsewhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.fake_cluster import HEAD_NODE_ID, FakeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]

PATIENTS = ["100", "105", "119"]
GRID = {"lr": [1.0e-3, 1.0e-2], "batch_size": [16, 32]}
EPOCHS = 6


def study_space(path: Path) -> Path:
    """A per-patient grid whose trials last several epochs (a node can die under them), on few windows."""
    space = {
        "description": "multi-node test: per patient a 4-run grid of 6 epochs",
        "task": "multinode_test",
        "dataset": {"name": "mitdb", "split": "per_patient",
                    "preprocessing": {"mode": "windows", "labels": "binary", "records": PATIENTS, "max_per_record": 250}},
        "model": {"name": "cnn1d_residual", "num_blocks": 2, "block_channels": 8},
        "metric": "val_balanced_accuracy", "mode": "max",
        "resources": {"cpu": 1, "gpu": 0.25},
        "patients": PATIENTS,
        "stages": [{"stage": "scratch", "search": {"algorithm": "grid"},
                    "params": {**{k: {"grid": v} for k, v in GRID.items()}, "epochs": EPOCHS}}],
    }
    path.write_text(yaml.safe_dump(space))
    return path


def ecgtune(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("ecgtune")), *args]


def trial_runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("multinode_study")
    if experiment is None:
        return client, []
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def kill_a_busy_worker(cluster: FakeCluster, uri: str, timeout: float = 300) -> tuple[str, str]:
    """Once some trial has reported its second epoch on a worker node (so it has a checkpoint and epochs
    to go), SIGKILL that node's raylet. Returns the node id and that trial's id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, runs = trial_runs(uri)
        except Exception:  # the store is being created
            runs = []
        for run in runs:
            if run.info.status == "RUNNING" and 2 <= run.data.metrics.get("system/epoch", 0) <= EPOCHS - 2:
                node = run.data.tags.get("ray.node_id", "")
                raylet = cluster.raylet_of(node)
                if raylet is not None:
                    subprocess.run(["kill", "-9", str(raylet)], check=True)
                    return node, run.data.tags["ecgtune.trial_id"]
        time.sleep(0.5)
    raise AssertionError("no trial reached its second epoch on a worker node")


def test_a_study_spreads_over_gpu_workers_started_from_zero_and_survives_a_dead_node(real_data_dir):
    root = Path(tempfile.mkdtemp(prefix="ecgm-", dir="/tmp"))  # short: Ray's socket paths live below it
    try:
        run_study_on_a_fake_cluster(root, real_data_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_study_on_a_fake_cluster(root: Path, real_data_dir: Path) -> None:
    worker = {"CPU": 4, "GPU": 1, "object_store_memory": 200 * 2**20}
    with FakeCluster(root, worker=worker, max_workers=3) as cluster:
        assert cluster.worker_nodes() == [], "the cluster must start with no worker node"
        space = study_space(root / "multinode_study.yaml")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        env = {**cluster.env, "ECGTUNE_HOME": str(root / "ecgtune"), "ECGTUNE_DATA_DIR": str(real_data_dir)}
        common = ["--space", str(space), "--address", cluster.address, "--mlflow-uri", uri]

        # A folder of this machine alone is refused on a cluster that can have several nodes, before
        # any run is opened.
        refused = subprocess.run(ecgtune("search", *common, "--storage-path", str(root / "local")), env=env,
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert "--storage-path" in refused.stderr and "Traceback" not in refused.stderr
        assert trial_runs(uri)[1] == []

        search = subprocess.Popen(
            ecgtune("search", *common, "--storage-path", str(root / "shared"), "--shared-storage"),
            env=env, stdout=(root / "search.log").open("w"), stderr=subprocess.STDOUT,
        )
        try:
            killed, witness = kill_a_busy_worker(cluster, uri)
            code = search.wait(timeout=900)
        finally:
            if search.poll() is None:
                search.kill()
        log = (root / "search.log").read_text()
        assert code == 0, log[-6000:]

        client, runs = trial_runs(uri)
        planned = len(PATIENTS) * len(GRID["lr"]) * len(GRID["batch_size"])
        # Exactly one MLflow run per trial, every one finished, though some trials lost their node.
        assert len(runs) == planned and len({r.data.tags["ecgtune.trial_id"] for r in runs}) == planned
        assert all(r.info.status == "FINISHED" for r in runs)
        # Every trial was given a GPU by Ray (a logical one: no CUDA here) on a worker started for it.
        assert all(r.data.tags.get("ray.gpu_ids", "").isdigit() for r in runs), [r.data.tags.get("ray.gpu_ids") for r in runs]
        nodes = {r.data.tags["ray.node_id"] for r in runs}
        assert len(nodes) >= 2 and HEAD_NODE_ID not in nodes  # never the CPU-less head
        # The trials of the dead node were retried elsewhere in their own runs; the one that had epochs
        # behind it went on from its checkpoint instead of starting over.
        retried = {r.data.tags["ecgtune.trial_id"]: r for r in runs if r.data.tags.get("ray.failures")}
        assert witness in retried, f"{witness} was on the killed node but not retried: {sorted(retried)}"
        for run in retried.values():
            assert run.data.tags["ray.node_id"] != killed
            assert run.data.metrics["system/epoch"] == EPOCHS
        history = sorted(client.get_metric_history(retried[witness].info.run_id, "system/epoch"), key=lambda m: m.timestamp)
        epochs = [m.value for m in history]
        restart = next(i for i in range(1, len(epochs)) if epochs[i] <= epochs[i - 1])
        assert epochs[restart] > 1, f"{witness} started over after its node died: epochs {epochs}"
        # Every unit was selected and promoted.
        for patient in PATIENTS:
            name = f"scratch-cnn1d_residual-{patient}-4437-multinode_test-mitdb-per_patient"
            assert client.get_model_version_by_alias(name, "champion") is not None
    assert cluster.processes() == [], "processes of the fake cluster outlived it"
