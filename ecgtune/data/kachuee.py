"""Kachuee beats: the heartbeat segmentation of Kachuee, Fazeli and Sarrafzadeh (ICHI 2018).

Their steps, on a lead already resampled to 125 Hz:
1. cut the lead into 10 s windows and scale each window's amplitude to [0, 1];
2. find the R-peaks: local maxima (zero crossings of the first derivative) whose scaled value exceeds
   0.9 — or, where a database has them, take the reference beat annotations instead;
3. the nominal heart period T of the window is the median R-R interval of its peaks;
4. each beat starts at its R-peak and spans 1.2 T, zero-padded (or cut) to a fixed 187 samples.

The paper leaves open what happens to a beat whose 1.2 T runs past its window: here it goes on into
the next samples of the lead, scaled like its own window and clipped to [0, 1], so that no beat is
dropped for its position (the published Kaggle export keeps nearly every annotated beat too).
"""

from __future__ import annotations

import numpy as np

KACHUEE_RATE = 125  # Hz
KACHUEE_LENGTH = 187  # samples per beat, zero-padded
KACHUEE_WINDOW_SECONDS = 10.0
KACHUEE_RR_FACTOR = 1.2
KACHUEE_THRESHOLD = 0.9


def detect_rpeaks(scaled_window: np.ndarray, threshold: float = KACHUEE_THRESHOLD) -> np.ndarray:
    """R-peak candidates of one window scaled to [0, 1]: local maxima above ``threshold``.

    A local maximum is where the first difference turns from rising to not rising; a flat top
    (equal neighbours) counts once, at its first sample.
    """
    d = np.diff(scaled_window)
    maxima = np.flatnonzero((d[:-1] > 0) & (d[1:] <= 0)) + 1
    return maxima[scaled_window[maxima] > threshold]


def kachuee_beats(
    signal: np.ndarray,
    fs: float,
    *,
    peaks: np.ndarray | None = None,
    window_seconds: float = KACHUEE_WINDOW_SECONDS,
    rr_factor: float = KACHUEE_RR_FACTOR,
    length: int = KACHUEE_LENGTH,
    threshold: float = KACHUEE_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one lead into Kachuee beats.

    Args:
        signal: One lead at ``fs`` Hz (the paper: 125 Hz), shape (n,).
        fs: Sampling rate of ``signal``.
        peaks: Reference R-peak sample indices into ``signal``; None detects them per window
            (``detect_rpeaks``).
        window_seconds: Length of the windows that set the amplitude scale and the heart period.
        rr_factor: A beat spans this many median R-R intervals of its window.
        length: Samples per beat; shorter beats are zero-padded, longer ones cut.
        threshold: Detection threshold on the scaled window (detection only).

    Returns:
        (beats of shape (m, length) float32 in [0, 1], the R-peak index of each beat (m,) int64).
        Windows with fewer than two peaks (no R-R interval) or a flat signal give no beats; the
        partial window at the end of the lead is used too.
    """
    signal = np.asarray(signal, dtype=np.float64)
    window = int(round(window_seconds * fs))
    reference = None if peaks is None else np.sort(np.asarray(peaks, dtype=np.int64))
    beats, starts = [], []
    for start in range(0, len(signal), window):
        stop = min(start + window, len(signal))
        low, high = float(signal[start:stop].min()), float(signal[start:stop].max())
        if not high > low:
            continue  # a flat window has no amplitude to scale and no beat
        if reference is None:
            in_window = start + detect_rpeaks((signal[start:stop] - low) / (high - low), threshold)
        else:
            in_window = reference[(reference >= start) & (reference < stop)]
        if len(in_window) < 2:
            continue
        span = min(int(round(rr_factor * float(np.median(np.diff(in_window))))), length)
        for peak in in_window:
            segment = signal[peak : peak + span]
            beat = np.zeros(length, dtype=np.float64)
            beat[: len(segment)] = np.clip((segment - low) / (high - low), 0.0, 1.0)
            beats.append(beat)
            starts.append(peak)
    if not beats:
        return np.zeros((0, length), np.float32), np.zeros(0, np.int64)
    return np.asarray(beats, dtype=np.float32), np.asarray(starts, dtype=np.int64)


def match_peaks(detected: np.ndarray, reference: np.ndarray, tolerance: int) -> np.ndarray:
    """For each detected peak, the index of the nearest reference peak within ``tolerance`` samples, else -1.

    Used to label detected beats from reference annotations; a detected peak no annotation
    explains (noise, a T wave) stays unlabelled and is dropped by the caller.
    """
    detected = np.asarray(detected, dtype=np.int64)
    order = np.argsort(reference, kind="stable")
    ref = np.asarray(reference, dtype=np.int64)[order]
    if len(ref) == 0:
        return np.full(len(detected), -1, dtype=np.int64)
    right = np.clip(np.searchsorted(ref, detected), 0, len(ref) - 1)
    left = np.clip(right - 1, 0, len(ref) - 1)
    nearest = np.where(np.abs(ref[left] - detected) <= np.abs(ref[right] - detected), left, right)
    matched = np.abs(ref[nearest] - detected) <= tolerance
    return np.where(matched, order[nearest], -1)
