"""Bootstrap confidence intervals of test figures, resampling whole records.

Examples of one record (the beats of one recording, say) are not independent: resampling them one by one
would make an interval too narrow. Records are drawn with replacement instead, each bringing all of its
examples (a cluster bootstrap); where every example is its own record this is the ordinary bootstrap.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

RESAMPLES = 1000
# One draw re-scores every test example (0.24 s for 50,000 five-class examples on one core): beyond this
# many examples the draws shrink in proportion, so no unit spends more than about a minute on its
# intervals, down to MIN_RESAMPLES (percentile intervals from fewer draws wobble in their second digit).
FULL_RESAMPLES_UP_TO = 10_000
MIN_RESAMPLES = 200
MIN_RECORDS = 20  # fewer test records say too little about the spread to draw an interval from
LEVEL = 0.95


def resamples_for(examples: int) -> int:
    """How many draws a test set of ``examples`` examples gets."""
    if examples <= FULL_RESAMPLES_UP_TO:
        return RESAMPLES
    return max(MIN_RESAMPLES, RESAMPLES * FULL_RESAMPLES_UP_TO // examples)


def record_bootstrap(scores: Callable[[np.ndarray], dict[str, float]], records, *, resamples: int | None = None,
                     level: float = LEVEL, seed: int = 0, min_records: int = MIN_RECORDS) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each figure ``scores(indices)`` returns, over ``resamples`` draws of the
    records with replacement (by default as many as resamples_for the examples); {} with fewer than
    ``min_records`` records. A figure undefined in a draw (NaN: a label absent from it) leaves that draw
    out of its interval."""
    records = np.asarray(records)
    resamples = resamples_for(len(records)) if resamples is None else resamples
    names, inverse = np.unique(records, return_inverse=True)
    if len(names) < min_records:
        return {}
    members = [np.flatnonzero(inverse == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        chosen = rng.integers(0, len(names), len(names))
        for name, value in scores(np.concatenate([members[k] for k in chosen])).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    intervals = {}
    for name, values in draws.items():
        finite = np.asarray(values, np.float64)
        finite = finite[np.isfinite(finite)]
        if len(finite) >= resamples // 2:
            intervals[name] = (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail)))
    return intervals
