"""benchmarks/gpu_check.sh --dry-run: the GPU machine's one script, checked on the CPU (CI runs it), so that
a GPU lent for minutes is not spent on a broken script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_script_runs_every_step_on_the_cpu_and_writes_its_json_and_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["machine"]["device"] == "cpu"
    tests = report["gpu_tests"]
    # Every gpu test ran or said why not: here, no CUDA.
    assert tests["ran"] and tests["tests"] == 5 and tests["failures"] == tests["errors"] == 0
    assert tests["skipped"] == 0 or any("needs CUDA" in r for r in tests["skip_reasons"])
    p1 = report["p1"]
    assert p1["bare_epoch_s"] > 0 and p1["trial_epoch_s"] > 0 and p1["trial_device"] == "cpu"
    assert p1["trial_over_bare"] == pytest.approx(p1["trial_epoch_s"] / p1["bare_epoch_s"], rel=0.01)
    assert [r["trials_per_gpu"] for r in report["packing"]] == [1, 2]
    assert all(r["examples_per_s"] > 0 and r["devices"] == ["cpu"] and r["gpu_util_mean"] is None
               for r in report["packing"])
    assert {(r["model"], r["precision"]) for r in report["amp"]} == {
        (m, p) for m in ("cnn1d_residual", "ribeiro_resnet") for p in ("fp32", "fp16", "bf16")}
    assert all(r["autocast"] == "none" for r in report["amp"])  # the CPU trains in fp32 whatever is asked
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| P1 |" in table and "| trials per GPU |" in table and "| model | precision" in table
    assert (tmp_path / "gpu_tests.xml").exists() and (tmp_path / "gpu_check.log").exists()
