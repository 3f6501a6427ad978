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
