"""A beat in its record: its neighbours as channels (past beats and the next one only) and the record's
amplitude scale."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.transforms.beat_context import neighbour_beats, patient_zscore


def _beats(n: int, length: int = 5) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float32)[:, None] * np.ones(length, np.float32)  # beat i is all i + 1


def test_each_beat_gets_the_beats_before_it_and_the_next_one_in_time_order():
    beats = _beats(5)
    shuffled = np.array([3, 0, 4, 1, 2])  # the beats in another order than time: their positions give it
    context = neighbour_beats(beats[shuffled], (np.arange(5) * 300)[shuffled], before=2)
    assert context.shape == (5, 4, 5) and context.dtype == np.float32
    by_time = context[np.argsort(shuffled)]
    np.testing.assert_array_equal(by_time[2, :, 0], [1, 2, 3, 4])  # beats 0, 1, the beat 2 itself, then 3
    np.testing.assert_array_equal(by_time[0, :, 0], [0, 0, 1, 2])  # nothing before the first beat: zeros
    np.testing.assert_array_equal(by_time[4, :, 0], [3, 4, 5, 0])  # nothing after the last one
    np.testing.assert_array_equal(neighbour_beats(beats, np.arange(5), 0)[1, :, 0], [2, 3])


def test_a_beat_never_sees_beyond_the_next_beat():
    beats, positions = _beats(8), np.arange(8) * 300
    changed = beats.copy()
    changed[5:] = -7.0  # every beat after beat 4
    before, after = neighbour_beats(beats, positions, 3), neighbour_beats(changed, positions, 3)
    np.testing.assert_array_equal(before[:4], after[:4])  # beats 0-3 see at most beat 4
    assert not np.array_equal(before[4], after[4])  # beat 4 sees beat 5, its next


def test_neighbours_refuse_a_mismatch():
    with pytest.raises(ValueError, match="one position each"):
        neighbour_beats(_beats(3), np.arange(2), 1)
    with pytest.raises(ValueError, match="before must be >= 0"):
        neighbour_beats(_beats(3), np.arange(3), -1)


def test_patient_zscore_removes_the_patients_scale_and_keeps_the_shapes_proportions():
    rng = np.random.default_rng(0)
    shapes = rng.standard_normal((50, 20))
    small, large = patient_zscore(shapes), patient_zscore(5.0 * shapes + 3.0)  # one patient's leads 5x larger
    np.testing.assert_allclose(small, large, atol=1e-5)
    assert abs(float(small.mean())) < 1e-6 and float(small.std()) == pytest.approx(1.0, abs=1e-5)
    # One scale for the whole record, not one per beat: a beat twice as tall as another stays twice as tall.
    two = patient_zscore(np.array([[0.0, 1.0], [0.0, 2.0]]))
    assert (two[1, 1] - two[1, 0]) / (two[0, 1] - two[0, 0]) == pytest.approx(2.0)
    np.testing.assert_array_equal(patient_zscore(np.ones((3, 4))), np.zeros((3, 4)))  # flat: centred, unscaled
