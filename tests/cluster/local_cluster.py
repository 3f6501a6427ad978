"""The real parts of the cluster end-to-end test: an SSH server on 127.0.0.1, `ray up`/`ray down` of an
on-prem cluster file, and an `mlflow server` on loopback.

Every process the test starts carries a marker in its environment (sshd hands it to every session, so
Ray's daemons on the "remote" node inherit it), so whatever outlives the test can be found by it, with
its own process id, however it was daemonised.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MARKER_VAR = "ECGTUNE_E2E_CLUSTER"
SSHD = "/usr/sbin/sshd"
# sshd's compiled-in privilege separation folder; Debian's init script makes it, a container has none.
PRIVSEP_DIR = Path("/run/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def wait_for(check, what: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: exited with {proc.returncode}\n{log.read_text() if log else ''}")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s\n{log.read_text() if log else ''}")


def missing_tools() -> list[str]:
    """What the test needs from the machine (tests/run installs them from Debian's packages)."""
    needed = {SSHD: "openssh-server", "ssh": "openssh-client", "rsync": "rsync", "nc": "netcat-openbsd"}
    return [f"{tool} (Debian package {pkg})" for tool, pkg in needed.items() if not shutil.which(tool)]


def processes_with(predicate) -> list[tuple[int, str]]:
    """(pid, command line) of every process for which predicate(environ bytes, cmdline bytes) holds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if predicate(environ, cmdline):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def running_ray() -> list[tuple[int, str]]:
    """Ray daemons already on this machine: `ray down` runs `ray stop`, which would stop them too."""
    names = (b"gcs_server", b"raylet")
    return processes_with(lambda env, cmd: any(Path(cmd.split(b"\0")[0].decode(errors="replace")).name.encode() == n
                                               for n in names))


def other_ray_line(processes: list[tuple[int, str]]) -> str | None:
    """One short line naming ``processes`` (running_ray's) by name and process id, or None when there are none.
    Their command lines are not shown: a gcs_server's alone runs to thousands of characters."""
    if not processes:
        return None
    named = ", ".join(f"{Path(command.split(' ', 1)[0]).name} {pid}" for pid, command in sorted(processes))
    return (f"another Ray runs on this machine ({named}) and this test's `ray down` would stop it: "
            'run the other tests with -m "not cluster"')


def marked_processes(marker: str) -> list[tuple[int, str]]:
    needle = f"{MARKER_VAR}={marker}".encode()
    return processes_with(lambda env, cmd: needle in env.split(b"\0"))


def stop(proc: subprocess.Popen, group: bool = False, grace: float = 20) -> None:
    """SIGTERM by process id (its whole process group if it leads one), SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    send = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    with contextlib.suppress(ProcessLookupError):
        send(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            send(signal.SIGKILL)
        proc.wait(10)


class SshServer:
    """sshd on 127.0.0.1:<free port>, for key login by the current user only.

    Sessions get HOME=``node_home`` (so `ray up` writes its bootstrap files and the token there, not into
    the real home) and the given variables (the marker, TMPDIR/RAY_TMPDIR for Ray's session folders).
    Ray's SSH has no port option, so clients reach this port through ``proxy_command``.
    """

    def __init__(self, root: Path, node_home: Path, env: dict[str, str]):
        self.root, self.node_home, self.env = root, node_home, env
        self.port = free_port()
        self.client_key = root / "client_key"
        self.proc: subprocess.Popen | None = None
        self.made_privsep_dir = False

    @property
    def proxy_command(self) -> str:
        return f"nc 127.0.0.1 {self.port}"

    def __enter__(self) -> "SshServer":
        host_key = self.root / "host_key"
        for key in (host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        authorized = self.root / "authorized_keys"
        shutil.copy(f"{self.client_key}.pub", authorized)
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized}",
            f"PidFile {self.root / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",  # the key files live in a temporary folder
            "SetEnv " + " ".join(f"{k}={v}" for k, v in {"HOME": str(self.node_home), **self.env}.items()),
            "",
        ]))
        if not PRIVSEP_DIR.exists():
            PRIVSEP_DIR.mkdir(mode=0o755)
            self.made_privsep_dir = True
        log = self.root / "sshd.log"
        try:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log.open("wb"),
                                         stderr=subprocess.STDOUT, env={**os.environ, **self.env})
            wait_for(lambda: accepts_connections(self.port), "sshd", 20, self.proc, log)
        except BaseException:
            self.__exit__(None, None, None)  # a `with` does not call __exit__ when __enter__ fails
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            stop(self.proc)
        if self.made_privsep_dir:
            shutil.rmtree(PRIVSEP_DIR, ignore_errors=True)


class MlflowServer:
    """`mlflow server` on 127.0.0.1: a SQLite backend store and an artifact store it serves itself."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env
        self.port = free_port()
        self.artifacts = root / "artifacts"
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.log = self.root / "mlflow-server.log"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.artifacts),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            start_new_session=True,  # its own process group: uvicorn and job workers stop with it
        )
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        def healthy():
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200
        wait_for(healthy, "mlflow server", timeout, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, group=True)


def ray_cli(*args: str, env: dict[str, str], cwd: Path, log: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The `ray` command of this environment (the same Ray as the nodes run), output kept in ``log``."""
    ray = str(Path(sys.executable).with_name("ray"))
    with log.open("ab") as out:
        return subprocess.run([ray, *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)


def close_ssh_masters(control_dir: Path, env: dict[str, str]) -> None:
    """Ray's SSH keeps a control master alive for 10 s after its last command; end them now."""
    if not control_dir.is_dir():
        return
    for sock in control_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "127.0.0.1"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
