"""What each trial asks of the cluster, and what the cluster can give.

On the local Ray that ecgtune starts, a machine without a GPU runs every trial on the CPU. On a cluster
(``--address``) the space's GPU request is never lowered: an autoscaler starts GPU workers only for
demand it sees. A request that no node could ever hold is refused before anything starts, instead of
waiting forever; where an autoscaler may still start such a node, the search says it waits for one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ecgtune.errors import EcgtuneError
from ecgtune.paths import is_uri
from ecgtune.spaces import SearchSpace


@dataclass(frozen=True)
class NodeShape:
    """The CPUs and GPUs of one node, or of one node type an autoscaler can start."""

    name: str
    cpu: float
    gpu: float
    max_count: int = 1  # node types: up to how many such nodes the autoscaler may run

    def holds(self, cpu: float, gpu: float) -> bool:
        return self.cpu >= cpu and self.gpu >= gpu


@dataclass(frozen=True)
class ClusterView:
    nodes: list[NodeShape]  # alive now
    node_types: list[NodeShape] | None  # what its autoscaler may start; None where it does not say
    autoscaler: bool  # an autoscaler manages the cluster (Ray's own monitor, as `ray up` starts it)

    def can_hold(self, cpu: float, gpu: float) -> bool | None:
        """True if a node could hold a trial, False if none ever could, None if only an autoscaler whose
        node types are unknown could tell."""
        if any(n.holds(cpu, gpu) for n in self.nodes + (self.node_types or [])):
            return True
        return None if self.autoscaler and self.node_types is None else False

    @property
    def multi_node(self) -> bool:
        if len(self.nodes) > 1:
            return True
        if not self.autoscaler:
            return False
        if self.node_types is None:
            return True  # it may add nodes: assume it will
        return sum(t.max_count for t in self.node_types) > 1


MIN_SHARE = 0.01  # of a CPU or GPU: a hundred trials per device at most


def parse_resources(text: str | None) -> dict[str, float]:
    """``--resources cpu=2,gpu=0.5`` -> {"cpu": 2.0, "gpu": 0.5}."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or key not in ("cpu", "gpu") or key in out or not number >= 0:
            raise EcgtuneError(f"--resources: expected cpu=<number>,gpu=<number> (each at most once, >= 0), got {text!r}")
        if 0 < number < MIN_SHARE:  # Ray rounds resource requests to 1e-4: smaller ones break its scheduler
            raise EcgtuneError(f"--resources: {key}={value.strip()} is below the smallest share a trial can ask for "
                               f"({MIN_SHARE}); give 0 or at least {MIN_SHARE}")
        out[key] = number
    return out


def _autoscaler_status(wait_s: float) -> dict | None:
    """The status Ray's monitor writes every few seconds on a head started by `ray start --head`."""
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    deadline = time.monotonic() + wait_s
    while True:
        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        if raw or time.monotonic() >= deadline:
            return json.loads(raw) if raw else None
        time.sleep(0.5)


def local_view() -> ClusterView:
    """This machine as the local Ray that ecgtune starts will see it, known before Ray starts: a request it
    can never hold (cpu: 64 on a laptop) is refused without starting anything."""
    import os

    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ClusterView([NodeShape("this machine", float(cpus), float(gpus))], None, autoscaler=False)


def cluster_view(*, on_cluster: bool) -> ClusterView:
    """What the connected Ray cluster has, and (on a cluster) what its autoscaler may add."""
    import ray

    nodes = [
        NodeShape(n["NodeManagerAddress"] + "/" + n["NodeID"][:8], n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
        for n in ray.nodes() if n.get("Alive")
    ]
    if not on_cluster:
        return ClusterView(nodes, None, autoscaler=False)
    try:
        config = ray._private.state.state.get_cluster_config()  # reported by Ray's newer autoscaler only
    except Exception:
        config = None
    node_types = None
    if config is not None and config.node_group_configs:
        node_types = [
            NodeShape(g.name, float(g.resources.get("CPU", 0)), float(g.resources.get("GPU", 0)),
                      g.max_count if g.max_count >= 0 else 1 << 30)
            for g in config.node_group_configs
        ]
    status = _autoscaler_status(wait_s=15)
    return ClusterView(nodes, node_types, autoscaler=node_types is not None or bool(status and "autoscaler_report" in status))


def trial_resources(spaces: list[SearchSpace], *, on_cluster: bool, cluster: ClusterView, override: dict[str, float],
                    echo=print) -> dict[str, dict[str, float]]:
    """Per space (by experiment name), the resources each of its trials asks for.

    Raises:
        EcgtuneError: a request no node of the cluster could ever hold.
    """
    has_gpu = any(n.gpu > 0 for n in cluster.nodes)
    out = {}
    for space in spaces:
        base = {"cpu": float(override.get("cpu", space.cpu)), "gpu": float(override.get("gpu", space.gpu))}
        # --resources replaces the space's requests, those it makes for some model hyperparameters too.
        when = {} if override else {h: {v: {k: float(a) for k, a in amounts.items()} for v, amounts in t.items()}
                                    for h, t in space.resources_when.items()}
        if not has_gpu and not on_cluster and (base["gpu"] or any(a.get("gpu") for t in when.values() for a in t.values())):
            echo(f"no GPU on this machine: trials of {space.name} run on the CPU")
            base["gpu"] = 0.0
            when = {h: {v: dict(a, gpu=0.0) for v, a in t.items()} for h, t in when.items()}
        requests = [("resources", base)] + [(f"resources.when.{h}.{v}", {**base, **a})
                                            for h, t in when.items() for v, a in t.items()]
        for key, amounts in requests:
            check_request(space, key, amounts, cluster, echo)
        out[space.experiment_name] = {**base, "when": when}
    return out


def check_request(space: SearchSpace, key: str, amounts: dict[str, float], cluster: ClusterView, echo) -> None:
    cpu, gpu = amounts["cpu"], amounts["gpu"]
    if cpu == 0 and gpu == 0:
        raise EcgtuneError(f"{space.path}: key '{key}': a trial needs a CPU or a GPU, got cpu 0 and gpu 0")
    fits = cluster.can_hold(cpu, gpu)
    if fits is False:
        offered = ", ".join(f"{n.name} (CPU {n.cpu:g}, GPU {n.gpu:g})" for n in cluster.nodes + (cluster.node_types or []))
        raise EcgtuneError(
            f"{space.path}: key '{key}': a trial asks for CPU {cpu:g}, GPU {gpu:g}, but no node of the Ray "
            f"cluster can hold it ({offered or 'no node'}); lower the request with --resources cpu=N,gpu=M"
        )
    if fits is None:
        echo(f"note: no node holds a trial of {space.name} (CPU {cpu:g}, GPU {gpu:g}) yet; "
             "the cluster's autoscaler is to start one")


def check_storage(storage_path: str, *, on_cluster: bool, cluster: ClusterView, declared_shared: bool) -> None:
    """On a cluster of several nodes (or one an autoscaler may grow), checkpoints must go where every node
    writes and the driver reads: an object-store URI, or a folder the user declares shared.

    Raises:
        EcgtuneError: a folder of this machine alone for such a cluster.
    """
    if not on_cluster or is_uri(storage_path) or declared_shared or not cluster.multi_node:
        return
    raise EcgtuneError(
        f"--storage-path: {storage_path} is a folder of this machine, but the Ray cluster has (or may start) "
        "several nodes, whose trials would write their checkpoints elsewhere; give --storage-path s3://... "
        "(or gs://...), or a folder every node mounts, with --shared-storage"
    )
