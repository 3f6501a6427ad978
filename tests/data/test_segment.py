"""The pure signal steps: windows, labels by rank, beat cutting, per-class cap."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.data import segment


def test_cut_windows_drops_partial_tail():
    w = segment.cut_windows(np.arange(10.0), 3)
    assert w.shape == (3, 3) and w[-1].tolist() == [6, 7, 8]


def test_window_codes_take_the_highest_rank_and_ignore_minus_one():
    samples = np.array([0, 1, 4, 7, 9, 30])
    codes = np.array([0, 1, 0, -1, 0, 1])  # 30 is beyond the last full window
    assert segment.window_codes(samples, codes, n_windows=3, window=3).tolist() == [1, 0, -1]


def test_cut_beats_drops_segments_off_either_end():
    signal = np.arange(20.0)
    segments, kept = segment.cut_beats(signal, np.array([1, 5, 17, 18]), before=2, after=3)
    assert kept.tolist() == [False, True, True, False]
    assert segments.tolist() == [[3, 4, 5, 6, 7], [15, 16, 17, 18, 19]]


def test_minmax_scale_and_constant_signal():
    assert segment.minmax_scale(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="constant"):
        segment.minmax_scale(np.ones(5))


def test_bandpass_removes_baseline_and_keeps_qrs_band():
    fs = 360
    t = np.arange(20 * fs) / fs
    slow, mid = np.sin(2 * np.pi * 0.05 * t), np.sin(2 * np.pi * 10 * t)
    out = segment.bandpass(slow + mid, fs, 0.4, 30.0)
    core = slice(2 * fs, -2 * fs)
    assert np.abs(out[core] - mid[core]).max() < 0.05


def test_resample_rate_changes_length():
    assert len(segment.resample_rate(np.zeros(360), 360, 180)) == 180
    x = np.arange(5.0)
    assert segment.resample_rate(x, 360, 360) is x


@pytest.mark.parametrize("cap", [1, 2, 5, 10, 40])
def test_cap_per_class_respects_cap_and_keeps_rare_classes(cap):
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    chosen = segment.cap_per_class(labels, cap, np.random.default_rng(0))

    assert len(chosen) == cap and len(set(chosen.tolist())) == cap
    assert np.all(np.diff(chosen) > 0)
    if cap >= 3:
        assert set(labels[chosen].tolist()) == {0, 1, 2}
    if cap >= 10:
        assert (labels[chosen] == 0).sum() > (labels[chosen] == 2).sum()


def test_cap_per_class_keeps_everything_under_the_cap():
    assert segment.cap_per_class(np.array([1, 0, 1]), 5, np.random.default_rng(0)).tolist() == [0, 1, 2]
