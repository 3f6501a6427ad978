"""Two searches started together on a new MLflow SQLite store both get to use it."""

from __future__ import annotations

import subprocess
import sys

# Each process opens the store when the file ``go`` appears, once both have imported MLflow: together, as
# two `ecgtune search` started at once do. Without the lock one of the two failed creating the tables in
# each of the 5 rounds tried here.
OPEN_ON_GO = """
import os, sys, time
from ecgtune.tuning import tracking
import mlflow.store.tracking.sqlalchemy_store  # imported before the start, as a search has it
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
print(len(tracking.client(sys.argv[1]).search_experiments()))
"""


def test_two_processes_opening_a_new_sqlite_store_at_once_both_succeed(tmp_path):
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_ON_GO, uri, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert [o.split()[-1] for o in outputs] == ["1", "1"]  # the Default experiment, made once
