"""The synthetic WFDB generators write what they return, readable by wfdb's own readers."""

from __future__ import annotations

import csv

import numpy as np
import wfdb

from tests.synthetic_wfdb import (
    DX_POOL,
    patients_owning_several,
    synthetic_beats,
    write_12lead_database,
    write_beat_database,
    write_label_table,
)


def test_synthetic_beats_shape_depends_on_symbol():
    fs = 360
    normal = synthetic_beats(2 * fs, fs, [fs], ["N"], seed=1)
    ventricular = synthetic_beats(2 * fs, fs, [fs], ["V"], seed=1)
    atrial = synthetic_beats(2 * fs, fs, [fs], ["A"], seed=1)
    assert normal.shape == (2 * fs,) and np.array_equal(normal, synthetic_beats(2 * fs, fs, [fs], ["N"], seed=1))
    p_wave = fs - int(0.16 * fs)
    assert normal[p_wave] > 0.1 and atrial[p_wave] < -0.05 and abs(ventricular[p_wave]) < 0.1
    width = lambda x: np.sum(np.abs(x[fs - fs // 8: fs + fs // 8]) > 0.3) / fs  # s above 0.3 mV
    assert width(ventricular) > 1.5 * width(normal)
    assert ventricular.max() > normal.max()
    rbbb = synthetic_beats(2 * fs, fs, [fs], ["R"], seed=1)  # wide notched QRS for the 12-lead RBBB records
    no_p = synthetic_beats(2 * fs, fs, [fs], ["j"], seed=1)  # the 12-lead AF records' beats
    assert width(rbbb) > 1.5 * width(normal) and abs(no_p[p_wave]) < 0.1


def test_beat_database_round_trip(tmp_path):
    folder = tmp_path / "beats"
    written = write_beat_database(folder, seconds=30.0, quirks=("past_end", "unknown_symbol", "missing_annotator"))
    names = ["800", "801", "802", "803", "804", "805"]
    assert list(written) == names
    assert (folder / "RECORDS").read_text().split("\n") == names + [""]
    for name, info in written.items():
        record = wfdb.rdrecord(str(folder / name))
        assert record.fs == 128 and info["fs"] == 128
        assert record.sig_name == ["ECG1", "ECG2"] and record.units == ["mV", "mV"]
        assert record.fmt == ["212", "212"]
        assert record.sig_len == info["n_samples"] == 30 * 128
        assert np.ptp(record.p_signal[:, 0]) > 1.0  # beats, not just noise
        assert 0.3 < np.corrcoef(record.p_signal[:, 0], record.p_signal[:, 1])[0, 1]  # a shifted copy
        if name == "805":
            assert not (folder / "805.atr").exists() and len(info["samples"]) == 0 and info["symbols"] == []
            continue
        ann = wfdb.rdann(str(folder / name), "atr")
        assert ann.sample.tolist() == info["samples"].tolist() and info["samples"].dtype == np.int64
        assert ann.symbol == info["symbols"]
        assert ann.symbol[0] == "+" and ann.sample[0] == 0 and ann.aux_note[0] == "(N"
        assert ann.symbol.count("~") == 1 and ann.fs == 128
        beats = [(s, y) for s, y in zip(ann.sample, ann.symbol) if y not in "+~"]
        assert {"N", "A", "V"} <= {y for _, y in beats}
        assert sum(y == "N" for _, y in beats) > 0.5 * len(beats)
        in_signal = [(s, y) for s, y in beats if s < record.sig_len]
        rr = {y: [] for y in "NAV"}
        for (s0, _), (s1, y) in zip(in_signal, in_signal[1:]):
            rr.setdefault(y, []).append((s1 - s0) / 128)
        assert 0.7 < np.median(rr["N"]) < 0.9 and np.median(rr["A"]) < 0.55 and np.median(rr["V"]) < 0.55
        past_end = [s for s, _ in beats if s >= record.sig_len]
        assert len(past_end) == (2 if name == "800" else 0)
        assert ann.symbol.count("r") == (3 if name == "800" else 0)


def test_beat_database_options_and_determinism(tmp_path):
    kwargs = dict(records=("100", "101"), fs=360, leads=("MLII", "V5", "V1"), fmt="16", seconds=12.0,
                  annotator="ann", write_records_file=False, classes=("N", "V"), seed=3)
    first = write_beat_database(tmp_path / "a", **kwargs)
    second = write_beat_database(tmp_path / "b", **kwargs)
    assert not (tmp_path / "a" / "RECORDS").exists()
    for name in ("100", "101"):
        assert first[name]["samples"].tolist() == second[name]["samples"].tolist()
        record = wfdb.rdrecord(str(tmp_path / "a" / name))
        assert record.fs == 360 and record.fmt == ["16"] * 3 and record.sig_name == ["MLII", "V5", "V1"]
        assert record.sig_len == 12 * 360
        assert np.array_equal(record.p_signal, wfdb.rdrecord(str(tmp_path / "b" / name)).p_signal)
        ann = wfdb.rdann(str(tmp_path / "a" / name), "ann")
        assert set(ann.symbol) == {"+", "~", "N", "V"}


def test_12lead_database_round_trip(tmp_path):
    written = write_12lead_database(tmp_path, n_records=24, seconds=4.0)
    assert list(written)[:2] == ["g1/A0001", "g1/A0002"] and "g2/A0009" in written and "g3/A0024" in written
    assert not (tmp_path / "RECORDS").exists()
    labels = [tuple(info["labels"]) for info in written.values()]
    for name in ("AF", "RBBB", "NSR"):
        assert sum(name in x for x in labels) >= 6
    assert labels.count(("AF", "RBBB")) >= 2 and 1 <= labels.count(("OTHER",)) <= 4
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for path, info in written.items():
        header = wfdb.rdheader(str(tmp_path / path))
        assert header.fs == 500 and header.sig_len == info["n_samples"] == 2000
        assert header.sig_name == leads and header.fmt == ["16"] * 12 and header.units == ["mV"] * 12
        assert info["codes"] == [DX_POOL[x] for x in info["labels"]]
        assert f"Dx: {','.join(info['codes'])}" in header.comments
        assert header.comments[0].startswith("Age: ") and header.comments[1] in ("Sex: Male", "Sex: Female")
    assert "Dx: 164889003,59118001" in wfdb.rdheader(str(tmp_path / "g1/A0004")).comments
    record = wfdb.rdrecord(str(tmp_path / "g1/A0003"))
    assert record.p_signal.shape == (2000, 12) and np.ptp(record.p_signal[:, 1]) > 1.0


def test_12lead_signals_depend_on_label(tmp_path):
    written = write_12lead_database(tmp_path, n_records=8, nested=False, seconds=10.0, fs=250, fmt="212")
    assert list(written) == [f"A{i:04d}" for i in range(1, 9)]

    def rr_spread(name):  # coefficient of variation of R-R intervals found on lead II
        x = wfdb.rdrecord(str(tmp_path / name)).p_signal[:, 1]
        peaks = [i for i in range(1, len(x) - 1) if x[i] > 0.7 and x[i] >= x[i - 1] and x[i] > x[i + 1]]
        rr = np.diff(peaks)
        return rr.std() / rr.mean()

    assert rr_spread("A0001") > 3 * rr_spread("A0003")  # AF irregular, NSR regular
    assert wfdb.rdrecord(str(tmp_path / "A0001")).fmt == ["212"] * 12


def test_label_table_styles(tmp_path):
    records = write_12lead_database(tmp_path / "db", n_records=8, seconds=2.0)
    patients = patients_owning_several(list(records), per_patient=3)
    splits = {r: ("test" if i % 4 == 0 else "train") for i, r in enumerate(records)}
    write_label_table(tmp_path / "names.csv", records, patients=patients, splits=splits)
    with open(tmp_path / "names.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["record", "labels", "patient", "split"]
    assert [r["record"] for r in rows] == list(records)
    assert [r["labels"] for r in rows] == ["AF", "RBBB", "NSR", "AF;RBBB", "NSR", "AF", "RBBB", ""]
    assert [r["patient"] for r in rows] == ["P01"] * 3 + ["P02"] * 3 + ["P03"] * 2
    assert [r["split"] for r in rows] == [splits[r] for r in records]

    write_label_table(tmp_path / "columns.csv", records, style="columns")
    with open(tmp_path / "columns.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["record", "AF", "RBBB", "NSR"]
    assert rows[4] == ["g1/A0004", "1", "1", "0"] and rows[8] == ["g1/A0008", "0", "0", "0"]


def test_patients_owning_several():
    owners = patients_owning_several([f"r{i}" for i in range(7)], per_patient=3)
    assert list(owners.values()) == ["P01", "P01", "P01", "P02", "P02", "P02", "P03"]
    assert patients_owning_several(["a", "b"], per_patient=1) == {"a": "P01", "b": "P02"}
