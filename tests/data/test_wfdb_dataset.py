"""The `wfdb` dataset on synthetic WFDB databases the tests write: other rates, lead names, formats, nested
folders, `# Dx:` headers and label tables; leads explicit, quirks counted, bad input refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.data import assign_split, get_dataset, protocol_options
from ecgtune.data.kachuee import KACHUEE_LENGTH
from ecgtune.errors import EcgtuneError
from tests.synthetic_wfdb import (
    patients_owning_several,
    write_12lead_database,
    write_beat_database,
    write_label_table,
)

DX = {"AF": ["164889003"], "RBBB": ["59118001", "713427006"], "NSR": ["426783006"]}
AAMI_SYMBOLS = {"N": ["N"], "S": ["A"], "V": ["V"]}


def _beats(folder, **kwargs):
    return get_dataset("wfdb", path=str(folder)).prepare(**kwargs)


@pytest.mark.parametrize("fs,fmt", [(128, "212"), (257, "16"), (500, "212")])
def test_a_beat_task_has_its_own_rate_whatever_the_database(tmp_path, fs, fmt):
    written = write_beat_database(tmp_path / "db", fs=fs, fmt=fmt, records=("800", "801"), seconds=60)
    ex = _beats(tmp_path / "db", mode="kachuee", lead="ECG2", symbol_map=AAMI_SYMBOLS, rhythm=True)
    assert ex.input_shapes == {"signal": (1, KACHUEE_LENGTH), "rhythm": (6,)}
    assert ex.label_names == ("N", "S", "V") and set(np.unique(ex.y)) == {0, 1, 2}
    beats = {r: [s for s, sym in zip(w["samples"], w["symbols"]) if sym in "NAV"] for r, w in written.items()}
    assert sorted(set(ex.records)) == ["800", "801"]
    for record in ("800", "801"):  # positions stay samples of the raw record, at its own rate
        assert set(ex.positions[ex.records == record]) <= set(beats[record])
    # beats mode: 0.25 s + 0.45 s at target_rate 250 Hz, from 128, 257 or 500 Hz
    ex = _beats(tmp_path / "db", mode="beats", lead="ECG1", target_rate=250, symbol_map=AAMI_SYMBOLS)
    assert ex.input_shapes == {"signal": (1, round(0.25 * 250) + round(0.45 * 250))}
    assert ex.notes["leads"] == {"800": "ECG1", "801": "ECG1"}


def test_records_come_from_the_records_file_else_every_header_below(tmp_path):
    write_beat_database(tmp_path / "db", records=("800", "801", "802"), seconds=30)
    (tmp_path / "db" / "RECORDS").write_text("800\n802\n")
    assert sorted(set(_beats(tmp_path / "db", mode="kachuee", lead="ECG1").records)) == ["800", "802"]
    (tmp_path / "db" / "RECORDS").unlink()
    assert sorted(set(_beats(tmp_path / "db", mode="kachuee", lead="ECG1").records)) == ["800", "801", "802"]


def test_a_missing_lead_is_refused_naming_the_record_and_its_leads_unless_a_fallback_is_named(tmp_path):
    write_beat_database(tmp_path / "db", records=("800", "801"), leads=("ECG1", "ECG2"), seconds=30)
    write_beat_database(tmp_path / "db", records=("802",), leads=("V5", "V1"), seconds=30, write_records_file=False)
    (tmp_path / "db" / "RECORDS").write_text("800\n801\n802\n")
    with pytest.raises(EcgtuneError, match=r"wfdb record 800 has no lead 'MLII'; its leads: ECG1, ECG2 \(and 2 more of "
                                           r"the 3 records\); name one .* or list alternatives with lead_fallback"):
        _beats(tmp_path / "db", mode="kachuee", lead="MLII", symbol_map=AAMI_SYMBOLS)
    with pytest.raises(EcgtuneError, match=r"wfdb record 802 has no lead 'ECG1'; its leads: V5, V1;"):
        _beats(tmp_path / "db", mode="kachuee", lead="ECG1", symbol_map=AAMI_SYMBOLS)
    ex = _beats(tmp_path / "db", mode="kachuee", lead="ECG1", lead_fallback=["V5"], symbol_map=AAMI_SYMBOLS)
    assert ex.notes["leads"] == {"800": "ECG1", "801": "ECG1", "802": "V5"}  # the lead read, per record


def test_quirks_are_counted_not_hidden(tmp_path):
    write_beat_database(tmp_path / "db", records=("800", "801", "802"), seconds=30,
                        quirks=("past_end", "unknown_symbol", "missing_annotator"))
    ex = _beats(tmp_path / "db", mode="kachuee", lead="ECG1", labels="aami")
    assert set(ex.records) == {"800", "801"}
    assert ex.notes["left_out"] == {"no annotation file .atr": ["802"]}
    assert ex.notes["dropped"] == {"annotations past the signal's end": 2,
                                   "beats with a symbol outside the label map": {"r": 3}}


def test_a_label_map_that_matches_nothing_is_refused(tmp_path):
    write_beat_database(tmp_path / "db", records=("800",), seconds=30)
    with pytest.raises(EcgtuneError, match=r"the labels \('X',\) match no annotation.*'N'"):
        _beats(tmp_path / "db", mode="kachuee", lead="ECG1", symbol_map={"X": ["!"]})
    write_12lead_database(tmp_path / "twelve", n_records=8)
    with pytest.raises(EcgtuneError, match="labels.header_dx matches no record.*164889003"):
        get_dataset("wfdb", path=str(tmp_path / "twelve")).prepare(task="records", labels={"header_dx": {"X": ["1"]}})


def test_nested_challenge_records_labelled_by_their_dx_codes(tmp_path):
    written = write_12lead_database(tmp_path / "twelve", n_records=16, fs=500, nested=True)
    ex = get_dataset("wfdb", path=str(tmp_path / "twelve")).prepare(
        task="records", labels={"header_dx": DX}, target_rate=100, length=1024)
    labelled = {r: w for r, w in written.items() if set(w["labels"]) & set(DX)}
    assert sorted(ex.records) == sorted(labelled) and any("/" in r for r in ex.records)  # nested folders
    assert ex.label_names == ("AF", "RBBB", "NSR") and ex.multi_label  # AF with RBBB in some records
    for row, record in zip(ex.y, ex.records):
        assert [n for n, on in zip(ex.label_names, row) if on] == [n for n in DX if n in written[record]["labels"]]
    assert ex.input_shapes == {"signal": (12, 1024)}
    assert ex.notes["left_out"]["none of the labels"] == sorted(set(written) - set(labelled))


@pytest.mark.parametrize("style", ["names", "columns"])
def test_a_label_table_gives_labels_patients_and_splits(tmp_path, style):
    written = write_12lead_database(tmp_path / "twelve", n_records=12, nested=False, fs=257)
    patients = patients_owning_several(sorted(written), 3)
    splits = {r: ("test" if patients[r] == "P04" else "val" if patients[r] == "P03" else "train") for r in written}
    write_label_table(tmp_path / "twelve" / "labels.csv", written, patients=patients, style=style, splits=splits)
    ex = get_dataset("wfdb", path=str(tmp_path / "twelve")).prepare(
        task="records", labels={"table": "labels.csv"}, leads=["II", "V1"], target_rate=100, length=1024)
    assert set(ex.label_names) == {"AF", "RBBB", "NSR"} and ex.input_shapes == {"signal": (2, 1024)}
    assert all(ex.patients[i] == patients[r] for i, r in enumerate(ex.records))
    given = assign_split("given", ex)
    assert all(given[i] == splits[r] for i, r in enumerate(ex.records))


def test_no_patient_sits_in_two_parts_under_any_patient_wise_protocol(tmp_path):
    """Patients own three records each: every protocol dealing whole patients keeps them together."""
    written = write_12lead_database(tmp_path / "twelve", n_records=48, nested=True)
    patients = patients_owning_several(sorted(written), 3)
    write_label_table(tmp_path / "twelve" / "labels.csv", written, patients=patients)
    preprocessing = {"task": "records", "labels": {"table": "labels.csv"}, "target_rate": 50, "length": 512}
    ex = get_dataset("wfdb", path=str(tmp_path / "twelve")).prepare(**preprocessing)
    assert len(set(ex.patients)) < len(set(ex.records))
    for protocol in ("random_records", "stratified_records"):
        options = protocol_options("wfdb", preprocessing, protocol)
        parts = assign_split(protocol, ex, **options)
        assert {"train", "val", "test"} <= set(parts)
        for patient in set(ex.patients):
            assert len(set(parts[ex.patients == patient])) == 1, (protocol, patient)


def test_a_patient_under_two_splits_or_a_bad_table_is_refused_by_name(tmp_path):
    written = write_12lead_database(tmp_path / "twelve", n_records=6, nested=False)
    names = sorted(written)
    table = tmp_path / "twelve" / "labels.csv"
    dataset = get_dataset("wfdb", path=str(tmp_path / "twelve"))
    prepare = dict(task="records", labels={"table": "labels.csv"}, target_rate=100, length=1024)
    write_label_table(table, written, patients=dict.fromkeys(names, "P1"),
                      splits={r: "test" if r == names[-1] else "train" for r in names})
    with pytest.raises(EcgtuneError, match=r"patient 'P1' is under two splits: record A0001 in train, record A0006 in test"):
        dataset.prepare(**prepare)
    table.write_text("record,labels\nA0001,AF\nZ999,AF\n")
    with pytest.raises(EcgtuneError, match=r"labels.csv, line 3: record 'Z999' is not a record of the database"):
        dataset.prepare(**prepare)
    table.write_text("record,labels\nA0001,AF\nA0001,NSR\n")
    with pytest.raises(EcgtuneError, match=r"line 3: record 'A0001' is named twice"):
        dataset.prepare(**prepare)


def test_missing_folder_no_records_and_unfit_protocols_are_refused(tmp_path):
    with pytest.raises(EcgtuneError, match="is not a folder; expected a folder of WFDB records"):
        get_dataset("wfdb", path=str(tmp_path / "nowhere")).prepare(mode="kachuee")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EcgtuneError, match="holds no WFDB record"):
        get_dataset("wfdb", path=str(tmp_path / "empty")).prepare(mode="kachuee")
    with pytest.raises(EcgtuneError, match="split 'per_patient' does not fit dataset 'wfdb'.*given, random_records"):
        protocol_options("wfdb", {"task": "records"}, "per_patient")
    with pytest.raises(EcgtuneError, match="split 'folds' does not fit dataset 'mitdb'"):
        protocol_options("mitdb", {}, "folds")


def test_records_of_several_rates_need_a_target_rate(tmp_path):
    write_12lead_database(tmp_path / "twelve", n_records=4, nested=False, fs=500)
    write_12lead_database(tmp_path / "twelve" / "more", n_records=4, nested=False, fs=250, seed=1)
    with pytest.raises(EcgtuneError, match=r"rates \[250.0, 500.0\] Hz; set target_rate"):
        get_dataset("wfdb", path=str(tmp_path / "twelve")).prepare(task="records", labels={"header_dx": DX})


def test_random_records_fractions_are_settable(tmp_path):
    written = write_12lead_database(tmp_path / "twelve", n_records=40, nested=True)
    preprocessing = {"task": "records", "labels": {"header_dx": DX}, "target_rate": 50, "length": 512}
    ex = get_dataset("wfdb", path=str(tmp_path / "twelve")).prepare(**preprocessing)
    parts = assign_split("random_records", ex, **protocol_options("wfdb", preprocessing, "random_records",
                                                                  {"test": 0.5, "val": 0.0, "seed": 3}))
    assert set(parts) == {"train", "test"} and abs((parts == "test").mean() - 0.5) < 0.05
    assert len(written) == 40
