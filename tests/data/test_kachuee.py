"""Kachuee segmentation (ecgtune/data/kachuee.py) against known R-peaks, and MIT-BIH's kachuee mode."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.data import get_dataset
from ecgtune.data.kachuee import detect_rpeaks, kachuee_beats, match_peaks
from ecgtune.errors import EcgtuneError

FS = 125


def _spiky(n: int, peaks, height: float = 1.0, baseline: float = 0.0) -> np.ndarray:
    signal = np.full(n, baseline, dtype=np.float64)
    for p in peaks:
        signal[p - 2 : p + 3] += height * np.array([0.2, 0.6, 1.0, 0.6, 0.2])
    return signal


def test_beats_start_at_the_peak_span_1_2_median_rr_and_are_zero_padded():
    peaks = np.arange(20, 1250, 100)  # R-R 100 samples -> beats of 120 samples
    signal = _spiky(1250, peaks) + np.linspace(0, 0.1, 1250)
    beats, starts = kachuee_beats(signal, FS, peaks=peaks)
    assert beats.shape == (len(peaks), 187) and beats.dtype == np.float32
    np.testing.assert_array_equal(starts, peaks)
    assert np.all(beats[:, 0] > 0.9)  # each beat starts on its (scaled) R-peak
    assert np.all(beats[:, 120:] == 0)  # 1.2 x 100 samples, then zero padding
    assert np.all(beats[:-1, 119] > 0)  # the lead itself is never exactly 0 there (the ramp)
    assert beats.min() >= 0 and beats.max() <= 1


def test_each_window_has_its_own_scale_and_period():
    # Window 1 (samples 0-1249): R-R 100, amplitude 1. Window 2: R-R 80, amplitude 4 on a baseline of 10.
    first, second = np.arange(50, 1250, 100), np.arange(1270, 2500, 80)
    signal = np.concatenate([_spiky(1250, first), _spiky(1250, second - 1250, height=4.0, baseline=10.0)])
    beats, starts = kachuee_beats(signal, FS, peaks=np.concatenate([first, second]))
    in_second = starts >= 1250
    assert np.all(beats[~in_second, 120:] == 0) and np.all(beats[~in_second, 119] >= 0)
    assert np.all(beats[in_second, 96:] == 0)  # 1.2 x 80
    # Both windows scale their own amplitude: every beat peaks at 1 despite the baseline jump.
    np.testing.assert_allclose(beats.max(axis=1), 1.0)


def test_long_periods_are_cut_to_187_and_a_beat_may_run_into_the_next_window():
    peaks = np.array([100, 400, 700, 1000, 1200])  # R-R 300 (0.4 bpm... 25 bpm): 1.2 T = 360 > 187
    beats, starts = kachuee_beats(_spiky(1600, peaks), FS, peaks=peaks)
    assert beats.shape == (5, 187) and (beats[:, -1] >= 0).all()
    # The last beat (at 1200) spans into samples of the next window; it is kept, scaled, clipped.
    assert 1200 in starts.tolist()


def test_windows_without_an_rr_interval_give_no_beats():
    beats, starts = kachuee_beats(_spiky(1250, [600]), FS, peaks=np.array([600]))
    assert beats.shape == (0, 187) and starts.shape == (0,)
    flat, _ = kachuee_beats(np.zeros(1250), FS)
    assert len(flat) == 0


def test_detector_finds_the_reference_peaks_of_a_clean_signal():
    rng = np.random.default_rng(0)
    peaks = np.cumsum(rng.integers(85, 115, size=30))
    signal = _spiky(peaks[-1] + 100, peaks) + 0.02 * rng.standard_normal(peaks[-1] + 100)
    beats, found = kachuee_beats(signal, FS)
    matched = match_peaks(found, peaks, tolerance=2)
    assert (matched >= 0).all()
    assert len(set(matched.tolist())) >= len(peaks) - 2  # windows' lone edge peaks may be lost
    # A lower peak (scaled below 0.9) is not an R-peak candidate.
    window = _spiky(500, [100, 300], height=1.0) + _spiky(500, [200], height=0.5)
    assert detect_rpeaks((window - window.min()) / np.ptp(window)).tolist() == [100, 300]


def test_match_peaks_takes_the_nearest_within_tolerance():
    reference = np.array([300, 100, 200])
    assert match_peaks(np.array([98, 203, 250, 500]), reference, tolerance=5).tolist() == [1, 2, -1, -1]
    assert match_peaks(np.array([1, 2]), np.array([], dtype=np.int64), tolerance=5).tolist() == [-1, -1]


def test_mitdb_kachuee_mode_puts_a_beat_at_every_reference_peak(fake_root, standard_annotations):
    ds = get_dataset("mitdb", root=fake_root)
    ex = ds.prepare(mode="kachuee", records=["100"])
    beats = [(s, sym) for s, sym in standard_annotations if sym in "NAVQ"]  # the AAMI beats
    # The record is 10.55 s: the beat at 3700 is alone in its (partial) 10 s window, without an R-R.
    beats = [(s, sym) for s, sym in beats if s < 10 * 360]
    assert ex.x.shape == (len(beats), 1, 187)
    np.testing.assert_array_equal(ex.positions, [s for s, _ in beats])  # raw 360 Hz R-peaks
    assert [ex.label_names[y] for y in ex.y] == [{"A": "S"}.get(sym, sym) for _, sym in beats]
    assert np.all(ex.x[:, 0, 0] > 0.5)  # beats start on their R-peak
    assert ex.x.min() >= 0 and ex.x.max() <= 1


def test_mitdb_kachuee_detector_labels_peaks_from_the_annotations(fake_root, standard_annotations):
    ds = get_dataset("mitdb", root=fake_root)
    ex = ds.prepare(mode="kachuee", records=["100"], rpeaks="detector")
    by_sample = {s: sym for s, sym in standard_annotations}
    assert len(ex) > 0
    for position, y in zip(ex.positions, ex.y):
        nearest = min(by_sample, key=lambda s: abs(s - position))
        assert abs(nearest - position) <= 0.15 * 360
        assert ex.label_names[y] == {"A": "S"}.get(by_sample[nearest], by_sample[nearest])


def test_mitdb_kachuee_parameters_are_checked_and_keyed(fake_root):
    ds = get_dataset("mitdb", root=fake_root)
    with pytest.raises(EcgtuneError, match="rpeaks must be one of reference, detector"):
        ds.prepare(mode="kachuee", records=["100"], rpeaks="pan_tompkins")
    with pytest.raises(EcgtuneError, match="unknown prepare\\(\\) parameter 'before_seconds' for mode='kachuee'"):
        ds.prepare(mode="kachuee", records=["100"], before_seconds=0.2)
    assert ds.prepared_key(mode="kachuee", records=["100"]) != ds.prepared_key(
        mode="kachuee", records=["100"], rpeaks="detector"
    )
    assert ds.prepared_key(mode="kachuee", records=["100"]) == ds.prepared_key(
        mode="kachuee", records=[100], target_length=187
    )


def test_mitdb_beats_carry_their_rr_features_as_a_second_input(fake_root, standard_annotations):
    """Kachuee beats with rhythm: true: the features of each beat from the record's R-peaks, computed before
    max_per_record draws beats; a model taking the beat alone is given the beat alone."""
    from ecgtune.transforms.rhythm import FEATURES, rr_features

    ds = get_dataset("mitdb", root=fake_root)
    ex = ds.prepare(mode="kachuee", records=["100"], rhythm=True)
    assert list(ex.inputs) == ["signal", "rhythm"] and ex.inputs["rhythm"].shape == (len(ex), len(FEATURES))
    np.testing.assert_allclose(ex.inputs["rhythm"], rr_features(ex.positions, 360.0))
    plain = ds.prepare(mode="kachuee", records=["100"])
    np.testing.assert_array_equal(ex.with_inputs(["signal"]).inputs["signal"], plain.inputs["signal"])
    capped = ds.prepare(mode="kachuee", records=["100"], rhythm=True, max_per_record=2)
    full = dict(zip(ex.positions.tolist(), ex.inputs["rhythm"]))
    for position, row in zip(capped.positions.tolist(), capped.inputs["rhythm"]):
        np.testing.assert_array_equal(row, full[position])  # the same features as without the cap
    assert ds.prepared_key(mode="kachuee", records=["100"], rhythm=True) != ds.prepared_key(mode="kachuee", records=["100"])


def test_mitdb_beats_with_neighbours_and_patient_normalisation(fake_root, standard_annotations):
    """neighbours: N adds the beat with its N preceding beats and the next one (from the whole record, before
    the cap); patient_normalise z-scores the record's beats; both keyed, both checked."""
    from ecgtune.transforms.beat_context import neighbour_beats, patient_zscore

    ds = get_dataset("mitdb", root=fake_root)
    plain = ds.prepare(mode="kachuee", records=["100"], rhythm=True)
    ex = ds.prepare(mode="kachuee", records=["100"], rhythm=True, neighbours=2, patient_normalise=True)
    assert list(ex.inputs) == ["signal", "neighbours", "rhythm"] and ex.layout == "fixed"
    beats = plain.inputs["signal"][:, 0]
    np.testing.assert_allclose(ex.inputs["signal"][:, 0], patient_zscore(beats), atol=1e-6)
    np.testing.assert_allclose(ex.inputs["neighbours"], neighbour_beats(patient_zscore(beats), plain.positions, 2), atol=1e-6)
    np.testing.assert_array_equal(ex.inputs["neighbours"][:, 2], ex.inputs["signal"][:, 0])  # channel 2: the beat
    capped = ds.prepare(mode="kachuee", records=["100"], neighbours=2, patient_normalise=True, max_per_record=2)
    full = dict(zip(ex.positions.tolist(), ex.inputs["neighbours"]))
    for position, row in zip(capped.positions.tolist(), capped.inputs["neighbours"]):
        np.testing.assert_array_equal(row, full[position])
    keys = {ds.prepared_key(mode="kachuee", records=["100"], **extra)
            for extra in ({}, {"neighbours": 2}, {"patient_normalise": True})}
    assert len(keys) == 3
    with pytest.raises(EcgtuneError, match="neighbours must be a whole number of preceding beats from 0 to 16, got 'two'"):
        ds.prepare(mode="kachuee", records=["100"], neighbours="two")
    with pytest.raises(EcgtuneError, match="patient_normalise must be true or false, got 'yes'"):
        ds.prepare(mode="kachuee", records=["100"], patient_normalise="yes")
