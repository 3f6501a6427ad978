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


def test_another_ray_on_the_machine_is_named_in_one_short_line():
    """The cluster test fails with this line when another Ray runs (its `ray down` would stop that Ray);
    the processes are made up here: starting or stopping a real second Ray is what the test must avoid."""
    gcs = "/venv/lib/python3.11/site-packages/ray/core/src/ray/gcs/gcs_server --log_dir=/tmp/ray/session_x " + "--x=y " * 2000
    raylet = "/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/ray/s " + "-a " * 3000
    line = lc.other_ray_line([(4242, raylet), (311, gcs)])
    assert line == ("another Ray runs on this machine (gcs_server 311, raylet 4242) and this test's `ray down` would "
                    'stop it: run the other tests with -m "not cluster"')
    assert lc.other_ray_line([]) is None
