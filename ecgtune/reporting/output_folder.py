"""The report's output folder: one a refused or failed report created is removed again, so that a
refusal leaves nothing behind (a folder that existed before is left as it is)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path


@contextlib.contextmanager
def removed_on_error(out: Path):
    """Remove ``out`` if it did not exist before and the block raises."""
    existed = out.exists()
    try:
        yield out
    except BaseException:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise
