"""The SHA-256 of raw data files, hashed once per file version.

What preparation read is identified by its bytes (a data key that follows the data), but hashing PTB-XL's
gigabytes at every search would cost more than the search's preparation. A file's hash is therefore
kept per path in a small SQLite table under the ecgtune home, with the file's size, modification and
status-change times and inode: while all four are what they were, the file is the one that was hashed
(an edit, a copy or a replacement moves at least one, and resetting the modification time by hand moves
the status-change time), and a stat is all it costs.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterable

from ecgtune import paths

TABLE_FILE = "file-hashes.sqlite"
_CHUNK = 1 << 20  # 1 MiB: MIT-BIH .dat files are ~1.9 MB, so a few reads each


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _connect() -> sqlite3.Connection:
    folder = paths.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    # Several processes (two searches, `ecgtune evaluate`) may hash at once: SQLite serialises the writes.
    db = sqlite3.connect(folder / TABLE_FILE, timeout=120)
    db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
               "ctime_ns INTEGER, inode INTEGER, sha256 TEXT)")
    return db


def file_hashes(files: Iterable[str | os.PathLike]) -> dict[str, str | None]:
    """Each file's hex SHA-256 (None for a file that does not exist), by absolute path; only files new or
    changed since they were last hashed are read."""
    wanted = sorted({str(Path(f).absolute()) for f in files})
    out: dict[str, str | None] = {}
    with closing(_connect()) as db:
        known = {}
        for start in range(0, len(wanted), 500):  # SQLite limits the parameters of one statement
            chunk = wanted[start:start + 500]
            rows = db.execute(f"SELECT path, size, mtime_ns, ctime_ns, inode, sha256 FROM hashes WHERE path IN "
                              f"({','.join('?' * len(chunk))})", chunk)
            known.update({row[0]: row[1:] for row in rows})
        fresh = []
        for path in wanted:
            try:
                st = os.stat(path)
            except OSError:
                out[path] = None
                continue
            identity = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            if path in known and tuple(known[path][:4]) == identity:
                out[path] = known[path][4]
                continue
            out[path] = sha256_file(path)
            fresh.append((path, *identity, out[path]))
        if fresh:
            with db:
                db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)", fresh)
    return out
