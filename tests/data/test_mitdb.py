"""MIT-BIH preparation on fake WFDB records (see conftest.py for the annotation layout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgtune import paths
from ecgtune.data import Examples, get_dataset
from ecgtune.data.mitdb import MitBih
from ecgtune.errors import EcgtuneError

# Expected from the standard layout in conftest.py: kept windows 0, 1, 4, 5, 7, 8, 9.
WINDOW_POSITIONS = [0, 360, 1440, 1800, 2520, 2880, 3240]
WINDOW_BINARY = [0, 1, 0, 1, 1, 0, 0]
# AAMI windows: w0 N, w1 V, w2 Q, w4 N, w7 S, w8 N, w9 N (w5 holds only "!", not an AAMI beat).
AAMI_WINDOW_POSITIONS = [0, 360, 720, 1440, 2520, 2880, 3240]
AAMI_WINDOW_CLASSES = ["N", "V", "Q", "N", "S", "N", "N"]
# Beats: 50 falls off the start, 3700 off the end; "!" and "+" are no beats.
BEAT_POSITIONS = [180, 400, 600, 900, 1600, 2600, 2700, 3000, 3300]
BEAT_AAMI = ["N", "N", "V", "Q", "N", "S", "N", "N", "N"]


def _dataset(root: Path) -> MitBih:
    # An unreachable base_url: a test that reaches the network by mistake fails fast.
    return get_dataset("mitdb", root=root, base_url="http://127.0.0.1:9/")


def test_windows_binary_labels_positions_and_shapes(fake_root):
    ex = _dataset(fake_root).prepare(mode="windows", records=["100"])

    assert isinstance(ex, Examples)
    assert ex.x.shape == (7, 1, 128) and ex.x.dtype == np.float32
    assert ex.y.dtype == np.int64 and ex.positions.dtype == np.int64
    assert ex.positions.tolist() == WINDOW_POSITIONS
    assert ex.y.tolist() == WINDOW_BINARY
    assert ex.label_names == ("normal", "abnormal")
    assert set(ex.records.tolist()) == {"100"} and set(ex.patients.tolist()) == {"100"}


def test_windows_without_resampling_are_scaled_to_unit_range(fake_root):
    # target_length = 360 samples: no Fourier resampling, so the per-record [0, 1] scaling shows.
    ex = _dataset(fake_root).prepare(records=["100"], target_length=360)

    assert ex.x.shape == (7, 1, 360)
    assert ex.x.min() >= 0.0 and ex.x.max() <= 1.0
    # The largest spike of the record lies in a kept window, so the maximum 1 is reached.
    assert ex.x.max() == pytest.approx(1.0, abs=1e-6)


def test_windows_aami_takes_highest_priority_class(fake_root):
    ex = _dataset(fake_root).prepare(mode="windows", records=["100"], labels="aami")

    assert ex.label_names == ("N", "S", "V", "F", "Q")
    assert ex.positions.tolist() == AAMI_WINDOW_POSITIONS
    assert [ex.label_names[i] for i in ex.y] == AAMI_WINDOW_CLASSES


def test_beats_aami_mapping_and_edge_beats_dropped(fake_root):
    ex = _dataset(fake_root).prepare(mode="beats", records=["100"])

    assert ex.x.shape == (9, 1, 90 + 162) and ex.x.dtype == np.float32
    assert ex.positions.tolist() == BEAT_POSITIONS
    assert [ex.label_names[i] for i in ex.y] == BEAT_AAMI
    assert ex.x.min() >= 0.0 and ex.x.max() <= 1.0
    # Centred on the R-peak: the spike maximum sits at index before = 90 of each segment.
    assert np.all(np.abs(ex.x[:, 0, :].argmax(axis=1) - 90) <= 1)


def test_beats_binary_drops_unclassified(fake_root):
    ex = _dataset(fake_root).prepare(mode="beats", records=["100"], labels="binary")

    assert 900 not in ex.positions.tolist()  # the Q beat
    assert ex.y.tolist() == [0, 0, 1, 0, 1, 0, 0, 0]


def test_beats_resampled_rate_keeps_raw_positions(fake_root):
    ex = _dataset(fake_root).prepare(mode="beats", records=["100"], target_rate=180)

    assert ex.x.shape == (9, 1, 45 + 81)
    assert ex.positions.tolist() == BEAT_POSITIONS


def test_records_accept_ints_and_patients_merge_201_202(fake_root):
    ex = _dataset(fake_root).prepare(records=[202, "201", 100])

    assert ex.records.tolist() == ["100"] * 7 + ["201"] * 7 + ["202"] * 7
    assert ex.patients.tolist() == ["100"] * 7 + ["201"] * 14
    assert MitBih.patient_of(202) == "201" and MitBih.patient_of("100") == "100"


def test_lead_named_mlii_is_chosen_and_missing_mlii_falls_back_to_first_channel(
    tmp_path, make_record, standard_annotations
):
    n = 3600
    rng = np.random.default_rng(1)
    lead_a = rng.standard_normal(n) * 0.1 + np.sin(np.arange(n) / 30.0)
    lead_b = rng.standard_normal(n) * 0.3
    folder = tmp_path / "data" / "mitdb"
    ann = [(s, sym) for s, sym in standard_annotations if s < n]
    make_record(folder, "100", ann, seconds=10, sig_names=("V1", "MLII"), leads=np.stack([lead_b, lead_a], 1))
    make_record(folder, "102", ann, seconds=10, sig_names=("V5", "V2"), leads=np.stack([lead_a, lead_b], 1))
    make_record(folder, "104", ann, seconds=10, sig_names=("V5", "V2"), leads=np.stack([lead_b, lead_a], 1))

    ex = _dataset(tmp_path / "data").prepare(records=["100", "102", "104"])
    x100, x102, x104 = (ex.x[ex.records == r] for r in ("100", "102", "104"))

    np.testing.assert_allclose(x100, x102, atol=1e-4)  # MLII (2nd channel) == first channel of 102
    assert not np.allclose(x102, x104, atol=1e-2)  # 104 falls back to ITS first channel (lead_b)


def test_max_per_record_caps_and_keeps_classes(fake_root):
    ds = _dataset(fake_root)
    full = ds.prepare(records=["100"])
    capped = ds.prepare(records=["100"], max_per_record=3)
    again = ds.prepare(records=["100"], max_per_record=3)

    assert len(capped) == 3
    assert set(capped.y.tolist()) == set(full.y.tolist())
    assert np.all(np.diff(capped.positions) > 0)  # still in time order
    np.testing.assert_array_equal(capped.positions, again.positions)


def test_second_prepare_reads_the_cache_not_wfdb(fake_root, monkeypatch):
    import wfdb

    ds = _dataset(fake_root)
    first = ds.prepare(records=["100", "201"])
    npz = list(paths.cache_dir().glob("mitdb-windows-*.npz"))
    assert len(npz) == 1
    params = json.loads(npz[0].with_suffix(".json").read_text())
    assert params["records"] == ["100", "201"] and params["target_length"] == 128

    def refuse(*args, **kwargs):
        raise AssertionError("WFDB was read on a cache hit")

    for fn in ("rdrecord", "rdann", "rdheader", "rdsamp"):
        monkeypatch.setattr(wfdb, fn, refuse)
    shutil.rmtree(fake_root / "mitdb")
    second = ds.prepare(records=[201, 100])  # same set, other order and type: same key

    for field in ("x", "y", "records", "patients", "positions"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert first.label_names == second.label_names


def test_cache_key_changes_with_parameters(fake_root):
    ds = _dataset(fake_root)
    a = ds.prepare(records=["100"])
    b = ds.prepare(records=["100"], target_length=64)
    c = ds.prepare(records=["100"], bandpass=(0.5, 40.0))
    ds.prepare(records=["100", "201"])

    assert a.x.shape[-1] == 128 and b.x.shape[-1] == 64
    assert not np.allclose(a.x, c.x)
    assert len(list(paths.cache_dir().glob("mitdb-windows-*.npz"))) == 4
    # Nothing derived is ever written into the raw folder.
    assert {p.suffix for p in (fake_root / "mitdb").iterdir()} == {".atr", ".dat", ".hea"}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"window_size": 3}, ["'window_size'", "target_length", "window_seconds"]),
        ({"mode": "beats", "target_length": 64}, ["'target_length'", "before_seconds", "target_rate"]),
        ({"mode": "spectrogram"}, ["'spectrogram'", "windows", "beats"]),
        ({"labels": "multi"}, ["'multi'", "binary", "aami"]),
        ({"records": ["100", "999"]}, ["999", "valid records", "100", "234"]),
        ({"records": []}, ["records is empty"]),
        ({"bandpass": (30.0, 0.4)}, ["bandpass", "0 < low < high"]),
        ({"target_length": 0}, ["target_length", "positive integer"]),
        ({"max_per_record": 2.5}, ["max_per_record", "positive integer or None"]),
    ],
)
def test_bad_parameters_raise_clear_errors(fake_root, kwargs, expected):
    with pytest.raises(EcgtuneError) as info:
        _dataset(fake_root).prepare(**kwargs)
    for fragment in expected:
        assert fragment in str(info.value)


def test_truncated_signal_file_names_record_and_file(fake_root):
    dat = fake_root / "mitdb" / "201.dat"
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])

    with pytest.raises(EcgtuneError, match=r"record 201.*201\.dat"):
        _dataset(fake_root).prepare(records=["100", "201"])


def test_garbage_header_names_record_and_file(fake_root):
    (fake_root / "mitdb" / "202.hea").write_text("this is not a WFDB header\n")

    with pytest.raises(EcgtuneError, match=r"record 202.*202\.hea"):
        _dataset(fake_root).prepare(records=["202"])


def test_garbage_annotations_name_record_and_file(fake_root):
    (fake_root / "mitdb" / "100.atr").write_bytes(b"\xff" * 7)

    with pytest.raises(EcgtuneError, match=r"record 100.*100\.atr"):
        _dataset(fake_root).prepare(records=["100"])


def test_default_records_exclude_paced_for_aami_only():
    ds = MitBih(root="/nonexistent")
    binary = ds._resolve("windows", None, {})
    aami = ds._resolve("beats", None, {})

    assert binary["records"] == list(MitBih.RECORDS) and len(binary["records"]) == 48
    assert set(MitBih.PACED_RECORDS).isdisjoint(aami["records"]) and len(aami["records"]) == 44


def test_record_lists_are_consistent():
    assert len(MitBih.RECORDS) == 48 and len(set(MitBih.RECORDS)) == 48
    assert len(MitBih.SEED_PATIENT_RECORDS) == 29
    assert set(MitBih.SEED_PATIENT_RECORDS) <= set(MitBih.RECORDS)
    assert set(MitBih.PACED_RECORDS) <= set(MitBih.RECORDS)


def test_load_filters_split_and_patient(fake_root):
    ds = _dataset(fake_root)
    records = ["100", "201", "202"]
    parts = {s: ds.load(s, records=records) for s in ("train", "val", "test")}
    only_100 = ds.load("test", patient=100, records=records)

    assert sum(len(p) for p in parts.values()) == len(ds.prepare(records=records))
    assert set(only_100.records.tolist()) <= {"100"}
    assert only_100.positions.tolist() == parts["test"].positions[parts["test"].records == "100"].tolist()


def test_load_rejects_unknown_split_and_unprepared_patient(fake_root):
    ds = _dataset(fake_root)
    with pytest.raises(EcgtuneError, match=r"unknown split 'testing'.*train, val, test"):
        ds.load("testing", records=["100"])
    with pytest.raises(EcgtuneError, match=r"record 201 is not among the prepared records"):
        ds.load("test", patient="201", records=["100"])


def test_pretraining_never_sees_a_fine_tuning_test_window(fake_root):
    """Leakage check across phases: pre-training takes train+val of all records, fine-tuning
    tests each record prepared alone; no (record, position) may be on both sides."""
    ds = _dataset(fake_root)
    records = ["100", "201", "202"]
    seen = set()
    for split in ("train", "val"):
        part = ds.load(split, records=records)
        seen |= set(zip(part.records.tolist(), part.positions.tolist()))
    for record in records:
        test = ds.load("test", patient=record, records=[record])
        assert len(test) > 0
        assert seen.isdisjoint(zip(test.records.tolist(), test.positions.tolist()))


def test_concurrent_prepares_build_once(fake_root, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    ds = _dataset(fake_root)
    builds = []
    real_build = MitBih._build

    def counting_build(self, p):
        builds.append(p["records"])
        return real_build(self, p)

    monkeypatch.setattr(MitBih, "_build", counting_build)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ds.prepare(records=["100", "201"]), range(4)))

    assert len(builds) == 1
    for ex in results[1:]:
        np.testing.assert_array_equal(ex.x, results[0].x)
