"""R-R rhythm features on synthetic R-peak trains: each feature at a known premature beat, and causality
(a feature never changes when beats after the next R-peak change)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.transforms.rhythm import FEATURES, rr_features

FS = 360.0


def _train(intervals_s) -> np.ndarray:
    """R-peak samples at FS of a train with these R-R intervals (seconds), the first peak at 1 s."""
    return np.round((1.0 + np.concatenate([[0.0], np.cumsum(intervals_s)])) * FS).astype(np.int64)


def test_a_premature_beat_is_early_against_its_own_recent_rhythm():
    # Regular 0.8 s, then a premature beat 0.5 s after its predecessor and a compensatory pause of 1.1 s.
    intervals = [0.8] * 12 + [0.5, 1.1] + [0.8] * 5
    f = rr_features(_train(intervals), FS)
    col = {name: f[:, k] for k, name in enumerate(FEATURES)}
    premature = 13  # beat index: the 13th interval ends at it
    assert col["pre_rr"][premature] == pytest.approx(0.5, abs=1 / FS)
    assert col["post_rr"][premature] == pytest.approx(1.1, abs=1 / FS)
    # Local mean of the last ten pre-R-R (nine of 0.8 and this 0.5).
    assert col["local_rr"][premature] == pytest.approx((9 * 0.8 + 0.5) / 10, abs=1 / FS)
    assert col["global_rr"][premature] == pytest.approx((13 * 0.8 + 0.5) / 14, abs=1 / FS)  # every beat so far
    assert col["pre_local"][premature] == pytest.approx(0.5 / ((9 * 0.8 + 0.5) / 10), rel=1e-2)
    regular = col["pre_local"][5]
    assert regular == pytest.approx(1.0, abs=1e-2) and col["pre_local"][premature] < 0.7
    # The ends: the first beat has no past (its post-R-R stands in), the last no future.
    assert col["pre_rr"][0] == col["post_rr"][0] and col["post_rr"][-1] == col["pre_rr"][-1]


def test_the_global_mean_covers_the_last_five_minutes_only():
    intervals = [1.0] * 400 + [0.5] * 10  # 400 s at 60 bpm, then a fast run
    f = rr_features(_train(intervals), FS)
    last = f[-1, FEATURES.index("global_rr")]
    # The beats of the last 300 s: the 10 fast ones (5 s) and the 296 at 1.0 s in the 295 s before them.
    assert last == pytest.approx((10 * 0.5 + 296 * 1.0) / 306, abs=2e-3)


def test_features_are_causal_beyond_the_next_r_peak():
    rng = np.random.default_rng(0)
    peaks = _train(rng.uniform(0.5, 1.2, 60))
    before = rr_features(peaks, FS)
    changed = peaks.copy()
    changed[31:] += np.round(rng.uniform(0.1, 0.3) * FS).astype(np.int64)  # every beat from 31 on moves later
    after = rr_features(changed, FS)
    np.testing.assert_array_equal(after[:30], before[:30])  # beats up to 29 see peaks up to 30 only
    assert not np.array_equal(after[30], before[30])  # beat 30's post-R-R is the moved next peak


def test_short_trains_and_bad_peaks():
    assert rr_features(np.array([100]), FS).shape == (1, 6) and not rr_features(np.array([100]), FS).any()
    assert rr_features(np.array([], np.int64), FS).shape == (0, 6)
    with pytest.raises(ValueError, match="strictly increasing"):
        rr_features(np.array([10, 5]), FS)

