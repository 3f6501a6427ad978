"""Disk plumbing shared by datasets: file locks, verified downloads, and the prepared-array cache.

Nothing here knows about a particular dataset. Two rules hold throughout:

1. No half-written file ever carries its final name: every write goes to a temporary file
   in the destination folder and is renamed into place (atomic on one filesystem).
2. Locks live in `paths.lock_dir()`, never beside the data, because the data root may be
   read-only and several Ray trials may start at once.
"""

from __future__ import annotations

import contextvars
import hashlib
import http.client
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ecgtune import paths
from ecgtune.data.file_hashes import file_hashes, sha256_file  # noqa: F401  (sha256_file: the datasets' name for it)
from ecgtune.errors import EcgtuneError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # 1 MiB: MIT-BIH .dat files are ~1.9 MB, so a few reads each
# mkstemp creates files readable by the owner only; data and caches may be shared by the
# users of a cluster, so finished files get the usual rw-r--r--.
_FILE_MODE = 0o644


class DownloadError(EcgtuneError):
    """A file could not be fetched or written; `reason` says why, `url` where from."""

    def __init__(self, message: str, *, url: str, reason: str) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class ChecksumError(EcgtuneError):
    """A downloaded file's SHA-256 differs from the published one (the file was discarded)."""


def file_lock(name: str, timeout: float = -1):
    """An inter-process lock file `<lock_dir>/<name>.lock`.

    Args:
        name: Lock name; use one per resource (e.g. "mitdb-download").
        timeout: Seconds to wait; negative waits forever.

    Returns:
        A `filelock.FileLock`, to be used as a context manager.
    """
    from filelock import FileLock  # light, but only download/prepare need it

    lock_dir = paths.lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{name}.lock"), timeout=timeout)


def parse_checksums(text: str, *, source: str = "<checksums>") -> dict[str, str]:
    """Parse `sha256sum` output ("<hex>  <path>" per line) into {path: hex}.

    Args:
        text: The file's contents.
        source: Where the text came from, for error messages.

    Raises:
        EcgtuneError: On a line that is not "<64 hex digits>  <path>".
    """
    table: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        # sha256sum writes "*" before the name in binary mode and " " in text mode.
        name = name.lstrip(" *")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise EcgtuneError(f"{source}, line {number}: expected '<sha256 hex>  <path>', got {line!r}")
        table[name] = digest.lower()
    return table


def _iter_response(url: str, timeout: float) -> Iterator[bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        yield from iter(lambda: response.read(_CHUNK), b"")


def download_verified(url: str, dest: str | os.PathLike, expected_sha256: str, *, timeout: float = 60.0) -> None:
    """Fetch `url` into `dest`, keeping it only if its SHA-256 is `expected_sha256`.

    The bytes go to a hidden temporary file in `dest`'s folder, hashed as they arrive, and
    are renamed to `dest` only after the hash matched; on any failure the temporary file is
    removed, so `dest` either does not exist or is complete and verified.

    Args:
        url: Where to fetch from (http, https or file).
        dest: Final path of the file.
        expected_sha256: Published hex SHA-256 of the file.
        timeout: Seconds to wait for the server on each read.

    Raises:
        DownloadError: The folder is not writable, or the server or network failed.
        ChecksumError: The bytes arrived but their SHA-256 differs; nothing is kept.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as err:
        raise DownloadError(
            f"cannot write into {dest.parent} ({err.strerror or err}); is the folder read-only?",
            url=url,
            reason=f"folder {dest.parent} is not writable: {err.strerror or err}",
        ) from err
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _iter_response(url, timeout):
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as err:
            reason = f"HTTP {err.code} {err.reason}"
            raise DownloadError(f"{url}: {reason}", url=url, reason=reason) from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = str(getattr(err, "reason", None) or err) or type(err).__name__
            raise DownloadError(f"{url}: {reason}", url=url, reason=reason) from err
        actual = digest.hexdigest()
        if actual != expected_sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {dest.name} downloaded from {url}: expected SHA-256 "
                f"{expected_sha256.lower()}, got {actual}; the file was discarded (a corrupted "
                f"transfer or a changed upstream file; try again)"
            )
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def params_key(params: dict[str, Any]) -> str:
    """A short stable hash of JSON-serialisable parameters (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call `write(file_object)` on a temporary file beside `path`, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None if it is unreadable (then it is rebuilt)."""
    try:
        # allow_pickle=False: the cache holds plain arrays only, never code.
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as err:
        log.warning("ignoring unreadable prepared-array cache %s (%s); rebuilding it", path, err)
        return None


def prepared_path(prefix: str, params: dict[str, Any]) -> Path:
    """Where the arrays prepared with `params` are cached: `<cache_dir>/<prefix>-<hash>.npz`."""
    return paths.cache_dir() / f"{prefix}-{params_key(params)}.npz"


def files_fingerprint(files: Iterable[str | os.PathLike]) -> str:
    """A digest of each file's name below the files' common folder and its SHA-256 (or "missing"): it
    follows the bytes, not where they lie, so a copy of a data folder has the fingerprint of the original
    until one of its files changes. Hashes are kept per file version (`ecgtune.data.file_hashes`): a file
    is read again only when it changed."""
    hashes = file_hashes(files)
    folders = {os.path.dirname(f) for f in hashes}
    base = os.path.commonpath(sorted(folders)) if folders else ""
    digest = hashlib.sha256()
    for path in sorted(hashes, key=lambda f: os.path.relpath(f, base)):
        name = Path(os.path.relpath(path, base)).as_posix()
        digest.update(f"{name}\t{hashes[path] or 'missing'}\n".encode())  # the bytes' hash says their size too
    return digest.hexdigest()


_read_sources: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("ecgtune_read_sources", default=None)


@contextmanager
def recording_sources():
    """Collect the fingerprints of the raw files behind every prepared array served in this block (built or
    read from the cache): a search's data key covers them, so that it follows the data, not the folder's name.

    Yields:
        The list the fingerprints are appended to, in the order the arrays were served.
    """
    seen: list[str] = []
    token = _read_sources.set(seen)
    try:
        yield seen
    finally:
        _read_sources.reset(token)


def _note_sources(fingerprint: str | None) -> None:
    seen = _read_sources.get()
    if seen is not None and fingerprint:
        seen.append(fingerprint)


def folder_files(folder: str | os.PathLike) -> list[Path]:
    """Every file under ``folder`` (none if it does not exist)."""
    root = Path(folder)
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def get_or_build(
    prefix: str, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]],
    sources: Callable[[], Iterable[str | os.PathLike]] | None = None,
) -> dict[str, np.ndarray]:
    """Load the arrays cached for `params`, or build, cache and return them.

    The cache holds `<prefix>-<hash>.npz` and, beside it, `<prefix>-<hash>.json` with the
    parameters (for people looking at the folder) and `<prefix>-<hash>.sources` with the fingerprint
    of the raw files the arrays were built from. Building runs under a lock so that trials starting
    together build once; the others wait and then read the file.

    Args:
        prefix: File-name prefix, e.g. "mitdb-windows".
        params: Everything that determines the arrays (JSON-serialisable); hashed into the name.
        build: Computes the arrays on a cache miss.
        sources: The raw files the arrays are built from: a cache built from other files (another data
            folder, a record replaced or edited since) is stale and built again; where none of them
            exists any more, the cache is served as it is.
    """
    path = prepared_path(prefix, params)
    stamp = path.with_suffix(".sources")

    def fresh() -> dict[str, np.ndarray] | None:
        if not path.exists():
            return None
        files = list(sources()) if sources is not None else []
        # Raw files gone (deleted to save space, or a machine holding only the cache): nothing the cache
        # could be stale against, so it is served, with the fingerprint of the files it was built from.
        try:
            built_from = stamp.read_text().strip() if sources is not None else None
        except OSError:  # no fingerprint: built before it existed, or interrupted before it was written
            built_from = None
        if any(os.path.exists(f) for f in files) and built_from != files_fingerprint(files):
            return None
        arrays = _read_npz(path)
        if arrays is not None:
            _note_sources(built_from)
        return arrays

    if (arrays := fresh()) is not None:
        return arrays
    with file_lock(path.stem):
        # Another process may have built it while we waited for the lock.
        if (arrays := fresh()) is not None:
            return arrays
        arrays = build()
        text = json.dumps(params, sort_keys=True, indent=2) + "\n"
        _atomic_write(path.with_suffix(".json"), lambda f: f.write(text.encode()))
        _atomic_write(path, lambda f: np.savez(f, **arrays))
        if sources is not None:  # after the arrays: a crash in between leaves no fingerprint, so a rebuild
            # The files as the build found them (it may have downloaded some).
            fingerprint = files_fingerprint(sources())
            _atomic_write(stamp, lambda f: f.write(fingerprint.encode()))
            _note_sources(fingerprint)
    return arrays
