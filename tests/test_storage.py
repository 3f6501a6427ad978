"""Where Ray keeps checkpoints: a local folder by default, any path or object-store URI when asked, and
what a search on a cluster is told about places only the driver's machine reaches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ecgtune.paths import join_storage, storage_root
from ecgtune.tuning.ray_runtime import cluster_notes
from ecgtune.tuning.state import SearchState


def test_default_storage_is_under_the_ecgtune_home(ecgtune_home, monkeypatch):
    monkeypatch.delenv("ECGTUNE_STORAGE_PATH", raising=False)
    assert storage_root() == str(ecgtune_home.resolve() / "ray_results")


def test_an_explicit_path_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGTUNE_STORAGE_PATH", "s3://from-env/prefix")
    assert storage_root() == "s3://from-env/prefix"
    assert storage_root(str(tmp_path / "shared")) == str(tmp_path / "shared")


def test_uris_keep_their_double_slash_when_joined():
    assert join_storage("s3://bucket/searches/", "quickstart", "2026") == "s3://bucket/searches/quickstart/2026"
    assert join_storage("/mnt/shared", "quickstart", "2026") == "/mnt/shared/quickstart/2026"


def test_a_new_search_state_puts_its_results_under_the_storage_root(monkeypatch):
    monkeypatch.delenv("ECGTUNE_STORAGE_PATH", raising=False)
    state = SearchState.new("quickstart", {"quickstart": {"space_file": "quickstart.yaml", "patients": []}},
                            "gs://lab-bucket/ecg")
    assert state.storage_path == f"gs://lab-bucket/ecg/quickstart/{state.invocation}"


def test_two_searches_started_in_the_same_second_are_different_invocations():
    first, second = (SearchState.new("quickstart", {}) for _ in range(2))
    assert first.invocation != second.invocation and first.storage_path != second.storage_path


def test_files_are_written_and_read_back_at_a_path_or_uri(tmp_path):
    from ecgtune.paths import read_bytes, write_bytes

    for location in (str(tmp_path / "a" / "b.pt"), (tmp_path / "c" / "d.pt").as_uri()):
        write_bytes(location, b"weights")
        assert read_bytes(location) == b"weights"


def test_a_cluster_search_is_told_about_machine_local_places():
    local = cluster_notes("auto", "sqlite:////home/me/.ecgtune/mlflow.db", "/home/me/.ecgtune/ray_results")
    assert len(local) == 2 and "--storage-path" in local[0] and "--mlflow-uri" in local[1]
    assert cluster_notes("auto", "http://mlflow:5000", "s3://bucket/x") == []
    assert cluster_notes(None, "sqlite:////x.db", "/x") == []  # a local Ray: both are fine


def test_trials_see_the_drivers_tracking_uri():
    """init_ray hands the tracking URI to every worker process (a real local Ray, in a fresh process)."""
    script = (
        "import os, ray\n"
        "from ecgtune.tuning.ray_runtime import init_ray\n"
        f"init_ray(None, 'http://tracking.example:5000')\n"
        "print('URI', ray.get(ray.remote(lambda: os.environ.get('MLFLOW_TRACKING_URI')).remote()))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert "URI http://tracking.example:5000" in out.stdout, out.stderr[-3000:]
