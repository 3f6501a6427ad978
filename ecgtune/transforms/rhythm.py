"""R-R rhythm features of each beat, causal: what a monitor knows when the next beat has arrived.

A premature supraventricular beat looks like a normal beat; what gives it away is its timing (de Chazal
et al. 2004, Mar et al. 2011, Mondéjar-Guerra et al. 2019: every inter-patient system that finds S beats
feeds R-R intervals). Per beat, from its R-peak, the earlier R-peaks and the next one only:

- ``pre_rr``: seconds since the previous R-peak (the first beat: its ``post_rr``, it has no past);
- ``post_rr``: seconds to the next R-peak (the last beat: its ``pre_rr``);
- ``local_rr``: mean ``pre_rr`` of the last ``local_beats`` beats, this one included;
- ``global_rr``: mean ``pre_rr`` of the beats of the last ``global_seconds`` seconds, this one included;
- ``pre_local`` = pre_rr / local_rr and ``pre_global`` = pre_rr / global_rr: prematurity relative to the
  patient's own recent rhythm (a running mean: dividing by the whole record's mean would need its future).
"""

from __future__ import annotations

import numpy as np

FEATURES = ("pre_rr", "post_rr", "local_rr", "global_rr", "pre_local", "pre_global")
LOCAL_BEATS = 10  # de Chazal et al.: the local average over ten beats
GLOBAL_SECONDS = 300.0  # ... and the average over about five minutes


def rr_features(peaks: np.ndarray, fs: float, *, local_beats: int = LOCAL_BEATS,
                global_seconds: float = GLOBAL_SECONDS) -> np.ndarray:
    """(n,) R-peak sample indices at ``fs`` Hz, in time order -> (n, 6) float32, columns as FEATURES.

    Fewer than two peaks carry no interval: every feature is 0 there (the ratios too), never NaN.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    n = len(peaks)
    if n and np.any(np.diff(peaks) <= 0):
        raise ValueError("R-peaks must be strictly increasing sample indices")
    if local_beats < 1 or global_seconds <= 0 or fs <= 0:
        raise ValueError(f"local_beats >= 1, global_seconds > 0 and fs > 0 expected, got {local_beats}, {global_seconds}, {fs}")
    if n < 2:
        return np.zeros((n, len(FEATURES)), np.float32)
    t = peaks / fs
    rr = np.diff(t)
    pre = np.concatenate([[rr[0]], rr])
    post = np.concatenate([rr, [rr[-1]]])
    cumulative = np.concatenate([[0.0], np.cumsum(pre)])  # sums of pre over beats [a, b): cumulative[b] - cumulative[a]
    index = np.arange(n)
    local_start = np.maximum(index - local_beats + 1, 0)
    local = (cumulative[index + 1] - cumulative[local_start]) / (index + 1 - local_start)
    # The beats whose R-peak lies within global_seconds before this one (this one included).
    global_start = np.searchsorted(t, t - global_seconds, side="left")
    global_mean = (cumulative[index + 1] - cumulative[global_start]) / (index + 1 - global_start)
    return np.stack([pre, post, local, global_mean, pre / local, pre / global_mean], axis=1).astype(np.float32)
