"""A search killed (SIGKILL: no handler runs, nothing is saved on the way out) while its last unit is
selected, tested or promoted is finished by ``--resume``: the unit is tested once, registered once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecgtune.tuning import pause_points
from tests.tuning.conftest import runs_of


def _killed_at(point: str, args: list[str], env: dict, tmp_path: Path) -> None:
    """Run the search until it waits at ``point`` (`ecgtune.tuning.pause_points`), then SIGKILL it and
    everything it started (its local Ray), as a lost machine would."""
    marker = tmp_path / f"paused-{point}"
    proc = subprocess.Popen(args, env={**env, pause_points.PAUSE_AT: point, pause_points.PAUSE_FILE: str(marker)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert marker.exists(), f"the search never reached {point}:\n{(proc.communicate(timeout=60)[0] or '')[-4000:]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, by its id
        proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.integration
def test_a_search_killed_while_its_last_unit_is_selected_tested_or_promoted_is_finished_by_resume(real_data_dir, tmp_path):
    """One real quickstart smoke search (2 trials: the smallest with a unit to finalise) killed at selection;
    its --resume killed at the test evaluation (after the test figures were logged), that one's --resume
    killed at promotion (after the version was registered); the last --resume finishes the unit. Each resume
    reaching the next point shows it went past the one before; a chain costs one search, not three."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "ECGTUNE_HOME": str(tmp_path / "home"), "ECGTUNE_DATA_DIR": str(real_data_dir),
           "PYTHONUNBUFFERED": "1"}
    env.pop(pause_points.PAUSE_AT, None)
    args = [str(Path(sys.executable).with_name("ecgtune")), "search", "--space", "quickstart", "--smoke-test",
            "--mlflow-uri", uri]
    _killed_at(pause_points.SELECTION, args, env, tmp_path)
    _killed_at(pause_points.TEST_EVALUATION, [*args, "--resume"], env, tmp_path)
    _killed_at(pause_points.PROMOTION, [*args, "--resume"], env, tmp_path)

    resumed = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    client, parents, children = runs_of(uri, "quickstart-smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and len({c.data.tags["ecgtune.trial_id"] for c in children}) == 2  # one run per trial
    (selected,) = [c for c in children if c.data.tags.get("ecgtune.selected") == "true"]
    tests = [k for k in selected.data.metrics if k.startswith("test_")]
    assert "test_balanced_accuracy" in tests
    assert all(len(client.get_metric_history(selected.info.run_id, k)) == 1 for k in tests)  # logged once
    (model,) = client.search_registered_models()
    versions = client.search_model_versions(f"name='{model.name}'")
    assert len(versions) == 1 and model.aliases == {"champion": versions[0].version}  # registered once, promoted
    summary = json.loads(Path(client.download_artifacts(parents[0].info.run_id, "summary/units.json", str(tmp_path))).read_text())
    assert [u["version"] for u in summary["units"]] == [str(versions[0].version)]
