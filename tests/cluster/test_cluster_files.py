"""cluster.yaml (AWS) and cluster-onprem.yaml pass the validation `ray up` itself runs, and keep the
promises they make: token authentication on every node, the token never in the file, the dashboard on
loopback only, checkpoints and runs on storage that outlives a node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_FILES = ["cluster.yaml", "cluster-onprem.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def ray_validated(config: dict) -> dict:
    """What `ray up` does before it contacts any machine: fill in the provider's defaults, then check
    the result against Ray's cluster schema (raises on an unknown key or a wrong type)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(config)
    validate_config(prepared)
    return prepared


def start_commands(config: dict) -> list[str]:
    return [c for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in config[key]]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_ray_accepts_the_cluster_file(name):
    prepared = ray_validated(load(name))
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_ray_validation_would_catch_a_mistake(name):
    """The validation above is not vacuous: a misspelt key of the same file is refused."""
    config = load(name)
    config["idle_timeout_minute"] = config.pop("idle_timeout_minutes")
    with pytest.raises(Exception, match="idle_timeout_minute"):
        ray_validated(config)


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_every_node_starts_ray_with_token_auth_and_gets_the_token(name):
    config = load(name)
    for command in start_commands(config):
        if command.strip() != "ray stop":
            assert "RAY_AUTH_MODE=token ray start" in command, command
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_no_secret_is_committed(name):
    text = (REPO / name).read_text()
    assert not re.search(r"RAY_AUTH_TOKEN\s*[=:]\s*\S", text)
    assert not re.search(r"(PASSWORD|SECRET|AWS_SECRET_ACCESS_KEY)\s*[=:]\s*\S", text, re.IGNORECASE)
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)  # an AWS access key id
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text)  # user:password@ in a URI


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_the_dashboard_listens_on_the_head_loopback_only(name):
    head = " ".join(load(name)["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head


def test_aws_gpu_workers_autoscale_from_zero_on_spot():
    config = load("cluster.yaml")
    assert config["provider"]["type"] == "aws"
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and not head["node_config"]["InstanceType"].startswith(("g", "p"))
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert workers and all(w["min_workers"] == 0 for w in workers.values())
    assert all(w["node_config"]["InstanceType"].startswith(("g", "p")) for w in workers.values())  # GPU types
    assert any(w["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot" for w in workers.values())


def test_aws_nodes_run_the_ecgtune_image_with_tracking_and_storage_settings():
    config = load("cluster.yaml")
    options = " ".join(config["docker"]["run_options"])
    assert "ecgtune-node" in config["docker"]["image"]
    assert "--env RAY_AUTH_MODE=token" in options
    assert re.search(r"--env MLFLOW_TRACKING_URI=https?://", options)
    assert re.search(r"--env ECGTUNE_STORAGE_PATH=s3://", options)
    # Only SSH is opened, and not to the whole internet.
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert all(ip["CidrIp"] != "0.0.0.0/0" for r in rules for ip in r["IpRanges"])


def test_every_key_is_commented():
    """Each top-level key of both files has a comment above it or on its line, as Ray's examples do."""
    for name in CLUSTER_FILES:
        lines = (REPO / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^[a-z_]+:", line):
                above = lines[i - 1].strip() if i else ""
                assert above.startswith("#") or "#" in line, f"{name}:{i + 1}: {line!r} has no comment"


def test_onprem_file_installs_ecgtune_as_the_readme_does():
    setup = " ".join(load("cluster-onprem.yaml")["setup_commands"])
    readme = (REPO / "README.md").read_text()
    torch_pin = re.search(r"torch==[\w.]+", readme).group(0)
    assert f"pip install --quiet {torch_pin}" in setup and "pip install --quiet -e ." in setup
    assert setup.index(torch_pin) < setup.index("-e .")  # the pinned torch first
