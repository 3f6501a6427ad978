"""A beat seen in its record: the beats around it, and the record's own amplitude scale.

Both help a model classify the beats of a patient it has never seen (de Chazal's inter-patient protocol):
a premature supraventricular beat looks like its neighbours but comes early and often with another P wave,
and one patient's "large" beat is another's normal one. Both work on the beats of one record, cut in time
order, and use no label.
"""

from __future__ import annotations

import numpy as np


def neighbour_beats(beats: np.ndarray, positions: np.ndarray, before: int) -> np.ndarray:
    """Each beat with the ``before`` beats preceding it and the one following it, as channels.

    Only the next beat is taken from the future, as a monitor that classifies a beat once the next one has
    arrived could (the R-R features of ecgtune.transforms.rhythm use the same horizon).

    Args:
        beats: The record's beats (n, length), one lead.
        positions: The R-peak sample of each beat (n,); the beats' time order comes from them (ties keep
            their order).
        before: How many preceding beats each example shows (0: the beat and the next one).

    Returns:
        (n, before + 2, length) float32: channels oldest first, then the beat itself (channel ``before``),
        then the next beat. A neighbour beyond the record's first or last beat is zeros.
    """
    beats = np.asarray(beats, dtype=np.float32)
    if beats.ndim != 2 or len(positions) != len(beats):
        raise ValueError(f"beats (n, length) with one position each expected, got {beats.shape} and {len(positions)}")
    if before < 0:
        raise ValueError(f"before must be >= 0, got {before}")
    order = np.argsort(positions, kind="stable")
    in_time = np.concatenate([np.zeros((before, beats.shape[1]), np.float32), beats[order],
                              np.zeros((1, beats.shape[1]), np.float32)])
    # The row of beat i (i-th in time) in in_time is i + before; its channel c is row i + c.
    index = np.arange(len(beats))[:, None] + np.arange(before + 2)[None, :]
    context = in_time[index]
    out = np.empty_like(context)
    out[order] = context  # back to the beats' own order
    return out


def patient_zscore(beats: np.ndarray) -> np.ndarray:
    """The beats of one record (patient) less their mean, over their standard deviation: one offset and
    one scale per record, from all its samples, so the shapes within a record keep their proportions.

    It uses the whole record (no labels): a monitor would calibrate on the first minutes instead.
    A flat record (no spread) is returned centred, unscaled.
    """
    beats = np.asarray(beats, dtype=np.float64)
    if beats.size == 0:
        return beats.astype(np.float32)
    centred = beats - beats.mean()
    spread = centred.std()
    return (centred / spread if spread > 0 else centred).astype(np.float32)
