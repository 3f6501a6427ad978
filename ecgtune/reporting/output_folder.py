"""The report's output folder: one a refused or failed report created is removed again, so that a
refusal leaves nothing behind (a folder that existed before is left as it is)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from ecgtune.errors import EcgtuneError


def check_output_folder(out: Path, flag: str) -> None:
    """``out`` is a folder, or can be made one, that takes files: checked before anything is read or written."""
    if out.exists() and not out.is_dir():
        raise EcgtuneError(f"{flag} {out}: a file, not a folder; name a folder to write the report into")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise EcgtuneError(f"{flag} {out}: {existing} is a file, so no folder can be made below it")
    try:  # os.access says yes to root everywhere, /proc included: a real file tells
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".ecgtune-write-check-"):
            pass
    except OSError as exc:
        raise EcgtuneError(f"{flag} {out}: cannot write into {existing} ({exc.strerror or exc})") from None


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
