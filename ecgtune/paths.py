"""Where ecgtune keeps things on disk: data root, prepared-array cache, locks, MLflow store, Ray results.

Every path is absolute, because a Ray trial changes its working directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def ecgtune_home() -> Path:
    """The per-user ecgtune folder: ECGTUNE_HOME, else ~/.ecgtune."""
    return Path(os.environ.get("ECGTUNE_HOME", Path.home() / ".ecgtune")).expanduser().resolve()


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Raw datasets live here: `--data-dir`, else ECGTUNE_DATA_DIR, else <home>/data."""
    chosen = explicit or os.environ.get("ECGTUNE_DATA_DIR") or ecgtune_home() / "data"
    return Path(chosen).expanduser().resolve()


def cache_dir() -> Path:
    """Prepared arrays live here, never inside the raw data root (it may be read-only)."""
    return ecgtune_home() / "prepared"


def lock_dir() -> Path:
    """File locks for download/prepare; outside the data root for the same reason."""
    return ecgtune_home() / "locks"


def storage_root(explicit: str | None = None) -> str:
    """Where Ray Tune keeps trial checkpoints and experiment state: `--storage-path`, else
    ECGTUNE_STORAGE_PATH, else <home>/ray_results.

    On a cluster of more than one machine this must be a place every node reaches, an object-store URI
    (s3://bucket/prefix, gs://...) or a shared mount: Ray stopped syncing checkpoints to the head in 2.7.
    """
    chosen = explicit or os.environ.get("ECGTUNE_STORAGE_PATH")
    if chosen and is_uri(chosen):
        return chosen.rstrip("/")
    return str(Path(chosen or ecgtune_home() / "ray_results").expanduser().resolve())


def is_uri(location: str) -> bool:
    return "://" in location


def join_storage(root: str, *parts: str) -> str:
    """A folder under a storage root, local path or URI alike (pathlib would fold s3:// into s3:/)."""
    if is_uri(root):
        return "/".join([root.rstrip("/"), *parts])
    return str(Path(root, *parts))


def write_bytes(location: str, data: bytes) -> None:
    """Write a file at a local path or an object-store URI (through pyarrow, as Ray's own storage does)."""
    if not is_uri(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader never sees half a file
        return
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def read_bytes(location: str) -> bytes:
    """Read a file written by `write_bytes`, from whichever node."""
    if not is_uri(location):
        return Path(location).read_bytes()
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(location)
    with fs.open_input_stream(path) as f:
        return f.readall()
