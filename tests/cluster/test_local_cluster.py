"""The cluster test's leftover detection finds a process by the marker in its environment, however it
was started, and only that process."""

from __future__ import annotations

import os
import subprocess

from tests.cluster import local_cluster as lc


def test_marked_processes_finds_exactly_the_processes_carrying_the_marker():
    marked = subprocess.Popen(["sleep", "60"], env={**os.environ, lc.MARKER_VAR: "m1"})
    other = subprocess.Popen(["sleep", "60"], env={**os.environ, lc.MARKER_VAR: "m2"})
    try:
        assert [pid for pid, _ in lc.marked_processes("m1")] == [marked.pid]
    finally:
        for proc in (marked, other):
            lc.stop(proc)
    assert lc.marked_processes("m1") == []


def test_stop_ends_a_whole_process_group():
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True,
                              env={**os.environ, lc.MARKER_VAR: "group"})
    lc.wait_for(lambda: len(lc.marked_processes("group")) == 3, "shell and two sleeps", 10)
    lc.stop(leader, group=True)
    lc.wait_for(lambda: lc.marked_processes("group") == [], "the group gone", 10)
