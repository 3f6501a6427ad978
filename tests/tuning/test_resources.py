"""What trials ask for and what a cluster can give: never a GPU request dropped on a cluster, a clear refusal
for what no node could ever hold, and checkpoints only where every node reaches."""

from __future__ import annotations

import pytest

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import load_space
from ecgtune.tuning.resources import ClusterView, NodeShape, check_storage, parse_resources, trial_resources

LAPTOP = ClusterView([NodeShape("laptop", 2, 0)], None, autoscaler=False)
# cluster.yaml's shape: a CPU-less head, GPU workers from zero, node types the autoscaler does not report.
FROM_ZERO = ClusterView([NodeShape("head", 0, 0)], None, autoscaler=True)
FIXED_CPU = ClusterView([NodeShape("a", 16, 0), NodeShape("b", 16, 0)], None, autoscaler=False)
TYPED = ClusterView([NodeShape("head", 0, 0)], [NodeShape("head", 0, 0, 0), NodeShape("gpu", 4, 1, 8)], autoscaler=True)


def test_resources_option_parses_and_refuses_what_it_cannot_read():
    assert parse_resources("cpu=2,gpu=0.5") == {"cpu": 2.0, "gpu": 0.5}
    assert parse_resources("gpu=0") == {"gpu": 0.0}
    for bad in ("gpu", "tpu=1", "cpu=-1", "cpu=1,cpu=2", "cpu=lots"):
        with pytest.raises(EcgtuneError, match="--resources"):
            parse_resources(bad)


def test_locally_without_a_gpu_trials_run_on_the_cpu():
    said = []
    space = load_space("quickstart")  # asks for 0.25 GPU
    out = trial_resources([space], on_cluster=False, cluster=LAPTOP, override={}, echo=said.append)
    assert out == {"quickstart": {"cpu": 1.0, "gpu": 0.0, "when": {}}} and "run on the CPU" in said[0]


def test_on_a_cluster_whose_gpu_workers_start_from_zero_the_gpu_request_stays():
    said = []
    out = trial_resources([load_space("quickstart")], on_cluster=True, cluster=FROM_ZERO, override={}, echo=said.append)
    assert out["quickstart"]["gpu"] == 0.25  # the autoscaler must see the GPU demand
    assert "autoscaler" in said[0]
    assert trial_resources([load_space("quickstart")], on_cluster=True, cluster=TYPED, override={}, echo=said.append)


def test_a_request_no_node_could_ever_hold_is_refused_naming_the_file_and_key():
    for cluster, on_cluster, override in ((FIXED_CPU, True, {}), (LAPTOP, False, {"cpu": 64}),
                                          (TYPED, True, {"gpu": 2})):
        with pytest.raises(EcgtuneError, match=r"quickstart.yaml: key 'resources'.*--resources"):
            trial_resources([load_space("quickstart")], on_cluster=on_cluster, cluster=cluster, override=override)
    # An explicit --resources gpu=0 runs a GPU space on a CPU-only cluster.
    assert trial_resources([load_space("quickstart")], on_cluster=True, cluster=FIXED_CPU, override={"gpu": 0})
    with pytest.raises(EcgtuneError, match="needs a CPU or a GPU"):
        trial_resources([load_space("quickstart")], on_cluster=False, cluster=LAPTOP, override={"cpu": 0, "gpu": 0})


def test_a_local_storage_folder_is_refused_where_other_nodes_would_write_checkpoints():
    local = "/home/me/.ecgtune/ray_results"
    one_node = ClusterView([NodeShape("only", 8, 1)], None, autoscaler=False)
    check_storage(local, on_cluster=True, cluster=one_node, declared_shared=False)
    check_storage(local, on_cluster=False, cluster=FIXED_CPU, declared_shared=False)
    check_storage("s3://bucket/ecg", on_cluster=True, cluster=FIXED_CPU, declared_shared=False)
    check_storage(local, on_cluster=True, cluster=FIXED_CPU, declared_shared=True)
    for cluster in (FIXED_CPU, FROM_ZERO, TYPED):
        with pytest.raises(EcgtuneError, match="--storage-path.*--shared-storage"):
            check_storage(local, on_cluster=True, cluster=cluster, declared_shared=False)
    lone = ClusterView([NodeShape("head", 8, 0)], [NodeShape("head", 8, 0, 1)], autoscaler=True)
    check_storage(local, on_cluster=True, cluster=lone, declared_shared=False)  # it can never grow


def test_a_space_asks_more_for_its_larger_models_and_every_request_is_checked():
    """dualnet_cinc2017: one S or M trial per GPU, four xs trials per GPU (resources.when.size.xs)."""
    from ecgtune.tuning.tuner import trial_amounts

    space = load_space("dualnet_cinc2017")
    gpu_node = ClusterView([NodeShape("gpu", 8, 1)], None, autoscaler=False)
    out = trial_resources([space], on_cluster=True, cluster=gpu_node, override={})["dualnet_cinc2017"]
    assert trial_amounts({"resources": out, "model": {"hparams": {"size": "s"}}}) == {"cpu": 2.0, "gpu": 1.0}
    assert trial_amounts({"resources": out, "model": {"hparams": {"size": "xs"}}}) == {"cpu": 1.0, "gpu": 0.25}
    half_gpu = ClusterView([NodeShape("small", 8, 0.5)], None, autoscaler=False)
    with pytest.raises(EcgtuneError, match="key 'resources'"):
        trial_resources([space], on_cluster=True, cluster=half_gpu, override={})
    local = trial_resources([space], on_cluster=False, cluster=LAPTOP, override={}, echo=lambda line: None)
    assert local["dualnet_cinc2017"]["when"]["size"]["xs"]["gpu"] == 0.0  # no GPU here: none asked, any size
