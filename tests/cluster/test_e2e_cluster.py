"""A real cluster, end to end: `ray up` of cluster-onprem.yaml with its head on 127.0.0.1 (an SSH server
started here), a real `mlflow server` on loopback, `ecgtune search --space quickstart --smoke-test`
against both, then `ray down`, and a check that nothing the test started or wrote is left behind.

Run it alone with `bash tests/run -m cluster`. It needs root (sshd), and the Debian packages openssh-server, rsync
and netcat-openbsd (tests/run installs them). Because `ray down` runs `ray stop`, which stops every Ray on
the machine, it refuses to start while another Ray runs here.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.cluster import local_cluster as lc

pytestmark = [pytest.mark.cluster, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# The names Ray and its tools could leave in /tmp or a home folder if they escaped the test's folder.
ESCAPEES = ("ray", "_ray", "cluster-", "mlflow", "pymp-", "torchinductor", "ecgtune")


def entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def dashboard_status(path: str, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:8265{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def dashboard_json(path: str, token: str) -> dict | list:
    request = urllib.request.Request(f"http://127.0.0.1:8265{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def onprem_config_for_this_machine(cluster_name: str, ssh: lc.SshServer) -> dict:
    """cluster-onprem.yaml as committed, but for a one-node lab whose head is this machine.

    Only what names the lab changes: its addresses (head 127.0.0.1, no workers) and the SSH login (this
    user, the test's key, through a proxy to the test's sshd port, since Ray's SSH has no port option).
    Setup and start commands, file mounts and token handling are the file's own.
    """
    config = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
    config["cluster_name"] = cluster_name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {
        "ssh_user": getpass.getuser(),
        "ssh_private_key": str(ssh.client_key),
        "ssh_proxy_command": ssh.proxy_command,
    }
    return config


def check_runs_arrived_through_server(server: lc.MlflowServer) -> list:
    """The search's parent run, trial runs, test metrics, checkpoints and champion, read back over HTTP."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
    experiment = client.get_experiment_by_name("quickstart-smoke")
    assert experiment is not None, "no quickstart-smoke experiment on the tracking server"
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in trials)
    selected = [r for r in trials if r.data.tags.get("ecgtune.selected") == "true"]
    assert len(selected) == 1 and "test_balanced_accuracy" in selected[0].data.metrics
    assert [a.path for a in client.list_artifacts(selected[0].info.run_id, "checkpoint")], "no checkpoint uploaded"

    name = "pretrain-cnn1d_residual-smoke-373e-abnormal_windows_quickstart-mitdb-per_patient"
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == selected[0].info.run_id
    # The artifacts went through the server into its own artifact store, not into a client-side folder.
    stored = [p for p in server.artifacts.rglob("*") if p.is_file()]
    assert any(p.name == "MLmodel" for p in stored) and any("checkpoint" in p.parts for p in stored)
    return trials


def test_quickstart_search_on_a_cluster_started_by_ray_up(real_data_dir):
    missing = lc.missing_tools()
    if missing:
        pytest.fail("the cluster test needs " + ", ".join(missing) + " (bash tests/run installs them with apt-get)")
    if os.geteuid() != 0:
        pytest.fail("the cluster test starts sshd on 127.0.0.1 and needs root (CI runs as root)")
    other_ray = lc.other_ray_line(lc.running_ray())
    if other_ray:  # a failure, not a skip: CI, where no other Ray runs, must run this test
        pytest.fail(other_ray, pytrace=False)

    tmp_listing, home = entries(Path("/tmp")), Path.home()
    home_listing = entries(home)
    root = Path(tempfile.mkdtemp(prefix="ecgc-", dir="/tmp"))  # short: Ray's socket paths live below it
    marker = secrets.token_hex(8)
    cluster_name = f"ecgtune-e2e-{marker}"
    control_dir = Path("/tmp") / ("ray_ssh_" + hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10])
    control_dir_existed = control_dir.exists()

    client_home, node_home, scratch = root / "client", root / "node", root / "tmp"
    for folder in (client_home, node_home, scratch):
        folder.mkdir()
    # The node's login shell finds ecgtune and ray in this environment (a workstation set up once),
    # so the file's install step skips; in a real lab the first `ray up` installs them.
    (node_home / ".bashrc").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    # Everything the test starts writes temporary files and Ray sessions below ``root``.
    contained = {lc.MARKER_VAR: marker, "TMPDIR": str(scratch), "RAY_TMPDIR": str(scratch)}
    client_env = {**os.environ, **contained, "HOME": str(client_home)}
    client_env.pop("RAY_AUTH_TOKEN", None)
    client_env.pop("RAY_AUTH_MODE", None)
    log = root / "ray-cli.log"

    leftovers: list = []
    for folder in ("mlflow", "ssh"):
        (root / folder).mkdir()
    server = lc.MlflowServer(root / "mlflow", contained)
    config_file = root / "cluster.yaml"
    ssh_control = control_dir / hashlib.sha256(cluster_name.encode()).hexdigest()[:10]
    try:
        with lc.SshServer(root / "ssh", node_home, contained) as ssh:
            try:
                # The token as a user makes it: on the client, at ~/.ray/auth_token; the file mounts it.
                assert lc.ray_cli("get-auth-token", "--generate", env=client_env, cwd=REPO, log=log).returncode == 0
                token = (client_home / ".ray" / "auth_token").read_text().strip()
                assert token

                config_file.write_text(yaml.safe_dump(onprem_config_for_this_machine(cluster_name, ssh)))
                server.start()  # boots while `ray up` runs
                up = lc.ray_cli("up", "-y", "--no-config-cache", str(config_file), env=client_env, cwd=REPO, log=log)
                assert up.returncode == 0, f"ray up failed:\n{log.read_text()[-6000:]}"
                assert (node_home / ".ray" / "auth_token").read_text().strip() == token, "token not mounted"

                # Token auth is on: the head's dashboard refuses a request without the token.
                assert dashboard_status("/api/jobs/", None) == 401
                assert dashboard_status("/api/jobs/", "not-the-token") in (401, 403)
                assert dashboard_status("/api/jobs/", token) == 200

                # A job client with the token submits as the README does; the job's driver, on the
                # head, connects with --address auto under token auth.
                probe = "import ray; ray.init(address='auto'); print('alive nodes', len(ray.nodes()))"
                job = lc.ray_cli("job", "submit", "--address", "http://127.0.0.1:8265", "--",
                                 "python", "-c", probe, env={**client_env, "RAY_AUTH_MODE": "token"},
                                 cwd=REPO, log=log, timeout=300)
                assert job.returncode == 0 and "alive nodes 1" in log.read_text(), log.read_text()[-4000:]

                server.wait_ready()
                storage = root / "shared" / "ray_results"
                driver_env = {
                    **client_env, "RAY_AUTH_MODE": "token", "ECGTUNE_HOME": str(root / "driver"),
                    "ECGTUNE_DATA_DIR": str(real_data_dir),
                }
                search = subprocess.run(
                    [str(Path(sys.executable).with_name("ecgtune")), "search", "--space", "quickstart",
                     "--smoke-test", "--address", "127.0.0.1:6379", "--mlflow-uri", server.uri,
                     # The lab node has no GPU: its trials ask for none (a GPU request is never lowered on
                     # a cluster). Its one node and the driver share this folder.
                     "--resources", "gpu=0", "--storage-path", str(storage), "--shared-storage"],
                    env=driver_env, cwd=REPO, capture_output=True, text=True, timeout=900,
                )
                assert search.returncode == 0, f"search failed:\n{search.stdout[-4000:]}\n{search.stderr[-4000:]}"

                trials = check_runs_arrived_through_server(server)
                # The trials ran on the cluster's node, and the search was a driver of that cluster.
                node_ips = {n["raylet"]["nodeManagerAddress"]
                            for n in dashboard_json("/nodes?view=summary", token)["data"]["summary"]}
                assert {r.data.tags.get("ray.node_ip") for r in trials} <= node_ips
                drivers = [j for j in dashboard_json("/api/jobs/", token) if j.get("type") == "DRIVER"]
                assert any("ecgtune search --space quickstart" in (j.get("entrypoint") or "")
                           and j.get("status") == "SUCCEEDED" for j in drivers), drivers
                # Checkpoints went to the storage path given, not into ~/.ecgtune.
                assert list(storage.glob("quickstart-smoke/*/trials/*/checkpoint_*"))
            finally:
                down = None
                if config_file.exists():
                    down = lc.ray_cli("down", "-y", str(config_file), env=client_env, cwd=REPO, log=log, timeout=300)
                server.stop()
                lc.close_ssh_masters(ssh_control, client_env)
                assert down is None or down.returncode == 0, f"ray down failed:\n{log.read_text()[-4000:]}"
    finally:
        leftovers = lc.marked_processes(marker)
        for pid, _ in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(ssh_control, ignore_errors=True)
        if not control_dir_existed:
            shutil.rmtree(control_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)

    assert not leftovers, f"processes outlived ray down and the servers' shutdown: {leftovers}"
    assert not lc.running_ray(), "Ray daemons still run after ray down"
    escaped_tmp = {n for n in entries(Path("/tmp")) - tmp_listing if n.startswith(ESCAPEES)}
    escaped_home = {n for n in entries(home) - home_listing if n.startswith(ESCAPEES) or n == ".ray"}
    assert not escaped_tmp and not escaped_home, f"left behind: /tmp {escaped_tmp}, {home} {escaped_home}"
