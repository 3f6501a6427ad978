"""A progress bar for the data steps a user waits on (downloads, preparing records): it appears only once
a step has taken a few seconds, and only on a terminal, so logs and quick cached runs stay clean."""

from __future__ import annotations

import sys
from typing import Collection, Iterator, TypeVar

T = TypeVar("T")
SHOW_AFTER_S = 3.0


def steps(items: Collection[T], *, what: str, unit: str = "record", file=None,
          delay: float = SHOW_AFTER_S) -> Iterator[T]:
    """Iterate ``items`` with a tqdm bar on stderr described by ``what`` (e.g. "mitdb: preparing"), out of
    ``len(items)``."""
    from tqdm import tqdm

    stream = file if file is not None else sys.stderr
    on_terminal = file is not None or getattr(stream, "isatty", lambda: False)()
    yield from tqdm(items, total=len(items), desc=what, unit=unit, file=stream, delay=delay, disable=not on_terminal,
                    leave=False, dynamic_ncols=True)
