"""A real multi-node Ray cluster on this machine: Ray's fake multi-node autoscaler.

`ray start --head --autoscaling-config` with ``provider: {type: fake_multinode}`` (and RAY_FAKE_CLUSTER=1)
runs Ray's own autoscaler, which starts every worker node as a real raylet of its own on this machine, with
the node type's CPUs and logical GPUs, and stops it when idle. The head asks for no CPU, as in
cluster.yaml, so every trial runs on a worker the autoscaler started for it.

Every process of the cluster carries a marker in its environment (the autoscaler hands it on to the
raylets it starts), so the cluster is stopped by the process ids found with it, never by `ray stop`,
which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.cluster import local_cluster as lc

FAKE_NODE_ID_VAR = "RAY_OVERRIDE_NODE_ID_FOR_TESTING"  # the fake provider names each node's raylet with it
HEAD_NODE_ID = "f" * 51 + "00000"  # the fake provider's fixed id for the head node


def autoscaling_config(gcs_port: int, worker: dict, max_workers: int, idle_timeout_minutes: float) -> dict:
    """What the fake provider reads: a CPU-less head, and one worker type started from zero."""
    return {
        "cluster_name": "ecgtune-fake",
        "max_workers": max_workers,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"127.0.0.1:{gcs_port}",
            "launch_multiple": True,  # start every node a demand needs at once, not one per update
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": worker, "node_config": {}, "min_workers": 0, "max_workers": max_workers},
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": 100,  # the whole demand at once: the test is about placement, not ramp-up
        "idle_timeout_minutes": idle_timeout_minutes,
        **{key: [] for key in ("initialization_commands", "setup_commands", "head_setup_commands",
                               "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands",
                               "cluster_synced_files", "rsync_exclude", "rsync_filter")},
        "docker": {},
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
    }


class FakeCluster:
    """Args:
        root: a temporary folder for the cluster's config, sessions, logs and home.
        worker: each worker node's resources (CPU, GPU, object_store_memory).
        max_workers: how many worker nodes the autoscaler may start.
    """

    def __init__(self, root: Path, *, worker: dict, max_workers: int, idle_timeout_minutes: float = 5):
        self.root, self.worker, self.max_workers = root, worker, max_workers
        self.idle_timeout_minutes = idle_timeout_minutes
        self.marker = secrets.token_hex(8)
        self.port = lc.free_port()
        self.log = root / "ray-start.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process of the cluster, and of its drivers."""
        scratch = self.root / "tmp"
        return {
            **{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE")},
            lc.MARKER_VAR: self.marker, "RAY_FAKE_CLUSTER": "1", "HOME": str(self.root / "home"),
            "TMPDIR": str(scratch), "RAY_TMPDIR": str(scratch),
        }

    def __enter__(self) -> "FakeCluster":
        for folder in ("tmp", "home"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        config = self.root / "autoscaling.yaml"
        config.write_text(yaml.safe_dump(autoscaling_config(self.port, self.worker, self.max_workers, self.idle_timeout_minutes)))
        ray = str(Path(sys.executable).with_name("ray"))
        try:
            with self.log.open("ab") as out:
                started = subprocess.run(
                    # The whole cluster at a lower priority: on a real cluster the driver has a head node of
                    # its own; here it shares two cores with every trial of every fake node.
                    ["nice", "-n", "10", ray, "start", "--head", "--port", str(self.port), "--num-cpus", "0", "--num-gpus", "0",
                     "--autoscaling-config", str(config), "--include-dashboard", "false", "--disable-usage-stats",
                     "--object-store-memory", str(200 * 2**20), "--ray-client-server-port", str(lc.free_port()),
                     "--dashboard-agent-listen-port", str(lc.free_port())],
                    env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=180,
                )
            if started.returncode != 0:
                raise RuntimeError(f"ray start failed:\n{self.log.read_text()[-4000:]}")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def processes(self) -> list[tuple[int, str]]:
        return lc.marked_processes(self.marker)

    def stop(self) -> list[tuple[int, str]]:
        """End every process carrying the marker (SIGTERM, then SIGKILL); returns those SIGTERM missed."""
        for pid, _ in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self._wait_until_gone(30)  # a GCS flushing its tables on two busy cores can take a while
        stubborn = self.processes()
        for pid, _ in stubborn:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: a killed process can still be listed for a moment.
        self._wait_until_gone(10)
        return stubborn

    def _wait_until_gone(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.5)

    def raylet_of(self, node_id: str) -> int | None:
        """The process id of a worker node's raylet (the fake provider gives each node's processes its id)."""
        needle = f"{FAKE_NODE_ID_VAR}={node_id}".encode()
        found = lc.processes_with(lambda env, cmd: needle in env.split(b"\0") and Path(
            cmd.split(b"\0")[0].decode(errors="replace")).name == "raylet")
        return found[0][0] if found else None

    def worker_nodes(self) -> list[str]:
        """Node ids of the worker nodes with a process alive now."""
        ids = set()
        for pid, _ in lc.processes_with(lambda env, cmd: self.marker.encode() in env and FAKE_NODE_ID_VAR.encode() in env):
            with contextlib.suppress(OSError):
                env = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item)
                ids.add(env[FAKE_NODE_ID_VAR.encode()].decode())
        return sorted(ids - {HEAD_NODE_ID})
