"""The places a search talks to, checked before anything starts: the Ray address, the MLflow tracking
URI, the storage path and the ecgtune home.

Without these checks a typo surfaced minutes later, deep inside Ray or MLflow, as a traceback (an address
that is not one), a hang (a port nobody listens on: Ray retries for minutes and ignores Ctrl-C) or a
half-started search (an unwritable folder after the parent run was opened).
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from ecgtune.errors import EcgtuneError

CONNECT_TIMEOUT = 5.0  # seconds: a head node or tracking server that does not answer in this is not there
# Tracking URI schemes MLflow stores itself (the file store is refused by MLflow 3).
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def check_address(address: str | None) -> None:
    """``--address``: None (a local Ray), ``auto`` (a cluster started on this machine: ray start / ray up),
    ``host:port`` of a head node that answers, or ``ray://host:port`` (Ray Client)."""
    if address is None or address == "auto":
        return
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise EcgtuneError(f"--address: expected auto, host:port of the head node (e.g. 10.0.0.5:6379) or "
                           f"ray://host:port, got {address!r}")
    if not _reachable(host, int(port)):
        raise EcgtuneError(f"--address: nothing answers at {host}:{port} within {CONNECT_TIMEOUT:.0f} s; is the "
                           "cluster up (ray up cluster.yaml / ray start --head) and the port open?")
    if not _speaks_grpc(host, int(port)):
        # ray.init would retry for minutes against a web server, deaf to Ctrl-C meanwhile.
        raise EcgtuneError(f"--address: {host}:{port} answers, but not as a Ray head (no gRPC within "
                           f"{CONNECT_TIMEOUT:.0f} s): give the head's GCS port (6379 by default) or ray://host:10001")


def _speaks_grpc(host: str, port: int) -> bool:
    """Whether ``host:port`` completes a gRPC (HTTP/2) connection, as Ray's GCS and Ray Client servers do. A
    cluster with TLS (RAY_USE_TLS) needs its certificates for that: it is taken on trust."""
    import os

    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return True
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def listener_user(port: int) -> str | None:
    """The user whose process listens on local TCP ``port`` (None where the system does not tell)."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid).username()
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        return None
    return None


def check_tracking_uri(uri: str) -> None:
    """A tracking URI MLflow can store runs in: a writable SQLite file, or a server that answers."""
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in TRACKING_SCHEMES:
        raise EcgtuneError(f"--mlflow-uri: expected a URI of one of the schemes {', '.join(TRACKING_SCHEMES)} "
                           f"(e.g. sqlite:///runs/mlflow.db or http://mlflow-host:5000), got {uri!r}")
    if scheme == "sqlite":
        database = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if database is None or not database.name:
            raise EcgtuneError(f"--mlflow-uri: expected sqlite:///<path to a database file>, got {uri!r}")
        check_writable_folder(database.parent, "--mlflow-uri", f"the folder of the SQLite database {database}")
    elif scheme in ("http", "https"):
        parsed = urlparse(uri)
        port = parsed.port or (443 if scheme == "https" else 80)
        if not parsed.hostname or not _reachable(parsed.hostname, port):
            raise EcgtuneError(f"--mlflow-uri: no MLflow server answers at {uri} within {CONNECT_TIMEOUT:.0f} s; "
                               "start it (mlflow server ...) or check the address")


def check_writable_folder(folder: Path, flag: str, what: str) -> None:
    """``folder`` exists (or can be made) and takes a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ecgtune-write-check-"):
            pass
    except OSError as exc:
        raise EcgtuneError(f"{flag}: {what} is not writable ({exc.strerror or exc}): {folder}") from None


STORAGE_PROBE_S = 30.0  # an object store that has not answered in this is not there (its client retries inside)


def check_storage_uri(uri: str) -> None:
    """A storage URI (s3://, gs://, ...) that pyarrow understands and whose location answers: otherwise Ray
    fails with a traceback after it started and the parent runs were opened."""
    import threading

    import pyarrow.fs

    if "?" in uri:
        # Ray appends the search's folders to the path, after the query: '...?scheme=http/quickstart/...'.
        raise EcgtuneError(f"--storage-path {uri}: options after '?' do not survive Ray adding folders to the path; "
                           "give them as the store's environment variables (AWS_ENDPOINT_URL, AWS_REGION, ...)")
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, ValueError, OSError) as exc:
        raise EcgtuneError(f"--storage-path {uri}: not a storage URI pyarrow can open ({exc})") from None
    answer: dict = {}

    def probe() -> None:
        try:
            answer["info"] = fs.get_file_info(path)
        except Exception as exc:  # noqa: BLE001 - any failure here is the answer, reported below
            answer["error"] = exc

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(STORAGE_PROBE_S)
    if worker.is_alive():
        raise EcgtuneError(f"--storage-path {uri}: no answer within {STORAGE_PROBE_S:.0f} s; check the address, the "
                           "network and the credentials")
    if "error" in answer:
        detail = " ".join(str(answer["error"]).split())[:300]
        raise EcgtuneError(f"--storage-path {uri}: cannot be read ({detail}); check the address, the network and the "
                           "credentials")


def check_targets(*, address: str | None, mlflow_uri: str | None, storage_path: str | None) -> None:
    """Every place a search will write to or connect to (the options as given, defaults filled), before
    data, MLflow or Ray are touched."""
    from ecgtune.paths import ecgtune_home, is_uri, storage_root
    from ecgtune.tuning.tracking import tracking_uri

    check_writable_folder(ecgtune_home(), "ECGTUNE_HOME", "the ecgtune home (search state, prepared data)")
    storage = storage_root(storage_path)
    if is_uri(storage):
        check_storage_uri(storage)
    else:
        check_writable_folder(Path(storage), "--storage-path", "the Ray results folder")
    check_tracking_uri(tracking_uri(mlflow_uri))
    check_address(address)
