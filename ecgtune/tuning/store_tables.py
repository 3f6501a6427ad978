"""A fresh MLflow SQLite store gets its tables once, under a file lock.

MLflow's tracking store creates the tables (and runs its migrations) when it finds them missing, without a
lock: two searches started together on a new store both start creating them, and one fails with "table
... already exists". The first `ecgtune` process to open a store creates them here, holding a lock the
other waits on; after that every client finds them made.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

_ready: set[str] = set()  # the stores this process already found (or made) complete


def ensure_tables(uri: str) -> None:
    """Create the tables of the SQLite store ``uri`` if it has none; nothing for other stores (a server
    makes its own)."""
    if not uri.startswith("sqlite:") or uri in _ready:
        return
    from filelock import FileLock
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    database = os.path.abspath(uri.split("sqlite:///", 1)[-1])
    # In the system's temporary folder, keyed by the database file: every ecgtune home (and user) on this
    # machine that opens this store takes the same lock.
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    with FileLock(os.path.join(tempfile.gettempdir(), f"ecgtune-mlflow-tables-{digest}.lock")):
        store = SqlAlchemyStore(uri, os.path.dirname(database))  # creates what is missing, the Default experiment too
        store.engine.dispose()
    _ready.add(uri)
