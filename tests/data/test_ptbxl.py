"""PTB-XL's MI-vs-normal beat task on a tiny generated ptbxl/ folder (tmp_path only, no network)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgtune import paths
from ecgtune.data import assign_split, cache, get_dataset, list_datasets
from ecgtune.data.ptbxl import DUPLICATE_ECG_IDS, PtbXl
from ecgtune.errors import EcgtuneError
from tests.data.conftest import serving

FS = 100
N_SAMPLES = 1000  # 10 s, as every PTB-XL record
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

# ecg_id: (patient_id, scp_codes, strat_fold, R-spike period and first spike in 100 Hz samples).
RECORDS = {
    1: (1001.0, {"IMI": 100.0, "SR": 0.0}, 1, 80, 40),  # MI
    2: (1002.0, {"NORM": 100.0, "SR": 0.0}, 9, 100, 55),  # normal: NORM and a non-diagnostic code
    3: (1003.0, {"NORM": 80.0, "ISC_": 50.0}, 2, 80, 40),  # NORM with an STTC code: left out
    4: (1004.0, {"ISC_": 100.0}, 3, 80, 40),  # STTC only: left out
    5: (1005.0, {"ASMI": 100.0, "NORM": 50.0}, 10, 90, 30),  # any MI code makes it MI
    6: (1001.0, {"NORM": 100.0}, 1, 100, 55),  # normal, the same patient as ecg_id 1 (same fold)
    7: (1007.0, {"SR": 0.0}, 5, 80, 40),  # no diagnostic statement: left out
    8: (1008.0, {"NORM": 100.0, "SR": 0.0}, 8, 100, 55),  # normal
    137: (1137.0, {"NORM": 100.0}, 4, 80, 40),  # a duplicate PTB-XL 1.0.2 dropped: always left out
}
KEPT = {1: 1, 2: 0, 5: 1, 6: 0, 8: 0}  # ecg_id -> label (0 normal, 1 MI)
STATEMENTS = {"NORM": "NORM", "IMI": "MI", "ASMI": "MI", "ISC_": "STTC", "SR": ""}
UNREACHABLE = "http://127.0.0.1:9/"  # a test that reaches for the network by mistake fails fast


def spike_samples(ecg_id: int) -> list[int]:
    _, _, _, period, first = RECORDS[ecg_id]
    return list(range(first, N_SAMPLES - 50, period))


def record_path(ecg_id: int) -> str:
    return f"records100/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_lr"


def synthetic_leads(spikes: list[int]) -> np.ndarray:
    """12 leads in mV; lead II is a slow baseline plus a sharp R-spike at each of `spikes`."""
    t = np.arange(N_SAMPLES)
    lead_ii = 0.02 * np.sin(2 * np.pi * 0.2 * t / FS)
    for s in spikes:
        # 20 ms wide: even a spike that falls between two 125 Hz samples keeps its sampled top
        # well above the detector's 0.9 of the window's range.
        lead_ii += 1.0 * np.exp(-0.5 * ((t - s) / 2.0) ** 2)
    others = [0.3 * np.sin(2 * np.pi * (k + 1) * t / N_SAMPLES) for k in range(len(LEADS))]
    leads = np.stack(others, axis=1)
    leads[:, LEADS.index("II")] = lead_ii
    return leads


def write_record(folder: Path, ecg_id: int) -> None:
    import wfdb

    target = folder / record_path(ecg_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        target.name,
        fs=FS,
        units=["mV"] * len(LEADS),
        sig_name=list(LEADS),
        p_signal=synthetic_leads(spike_samples(ecg_id)),
        fmt=["16"] * len(LEADS),
        write_dir=str(target.parent),
    )


def table_rows() -> list[dict[str, object]]:
    """The rows of ptbxl_database.csv for RECORDS; "age" stands for the columns the task does not read."""
    return [
        {"ecg_id": i, "patient_id": f"{patient:.1f}", "age": 50, "scp_codes": str(codes), "strat_fold": fold,
         "filename_lr": record_path(i)}
        for i, (patient, codes, fold, _, _) in RECORDS.items()
    ]  # fmt: skip


def write_table(folder: Path, rows: list[dict[str, object]] | None = None, columns: list[str] | None = None) -> None:
    rows = table_rows() if rows is None else rows
    with open(folder / "ptbxl_database.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_statements(
    folder: Path, statements: dict[str, str] = STATEMENTS, class_column: str = "diagnostic_class"
) -> None:
    with open(folder / "scp_statements.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "description", "diagnostic", class_column])
        for code, cls in statements.items():
            writer.writerow([code, f"statement {code}", "1.0" if cls else "", cls])


def write_ptbxl(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_table(folder)
    write_statements(folder)
    for ecg_id in RECORDS:
        write_record(folder, ecg_id)
    return folder


@pytest.fixture(scope="module")
def generated_ptbxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated ptbxl/ folder per module; tests get copies (wfdb writes take most of a second)."""
    return write_ptbxl(tmp_path_factory.mktemp("generated") / "ptbxl")


@pytest.fixture
def root(tmp_path: Path, generated_ptbxl: Path) -> Path:
    """A data root holding a complete generated ptbxl/ folder of this test's own."""
    shutil.copytree(generated_ptbxl, tmp_path / "data" / "ptbxl")
    return tmp_path / "data"


def _dataset(root: Path, base_url: str = UNREACHABLE) -> PtbXl:
    return get_dataset("ptbxl", root=root, base_url=base_url)


# ---------------------------------------------------------------- labels, beats, fields


def test_registered():
    assert "ptbxl" in list_datasets()
    assert isinstance(get_dataset("ptbxl", root="/tmp/x"), PtbXl)


def test_labelling_rule_and_duplicates(root):
    ex = _dataset(root).prepare()

    assert ex.label_names == ("normal", "MI")
    labels = {int(r): int(y) for r, y in zip(ex.records, ex.y)}
    assert labels == KEPT  # 3 (NORM + STTC), 4 (STTC), 7 (no diagnostic class), 137 (duplicate) left out
    for record in np.unique(ex.records):  # every beat takes its record's label
        assert len(set(ex.y[ex.records == record].tolist())) == 1


def test_duplicate_is_left_out_even_when_asked_for(root):
    assert 137 in DUPLICATE_ECG_IDS
    ex = _dataset(root).prepare(ecg_ids=[137, 2])
    assert set(ex.records.tolist()) == {"2"}


def test_beats_sit_on_the_spikes(root):
    ex = _dataset(root).prepare()

    assert ex.x.shape[1:] == (1, 187) and ex.x.dtype == np.float32
    assert ex.x.min() >= 0.0 and ex.x.max() <= 1.0
    for ecg_id in KEPT:
        spikes = np.asarray(spike_samples(ecg_id))
        positions = ex.positions[ex.records == str(ecg_id)]
        assert len(positions) == len(spikes), f"ecg_id {ecg_id}"
        assert np.all(np.diff(positions) > 0)  # time order
        assert np.max(np.abs(positions - spikes)) <= 1, f"ecg_id {ecg_id}: {positions} vs {spikes}"


def test_beat_starts_at_its_r_peak(root):
    ex = _dataset(root).prepare(ecg_ids=[2])
    # Each beat starts at its R-peak (the maximum of the scaled window, near 1) and is
    # zero-padded after 1.2 median R-R intervals (1.2 * 125 samples at 125 Hz = 150).
    assert np.all(ex.x[:, 0, 0] > 0.9)
    assert np.all(ex.x[:-1, 0, 150:] == 0.0)


def test_folds_patients_and_records_are_carried(root):
    ex = _dataset(root).prepare()

    for ecg_id in KEPT:
        rows = ex.records == str(ecg_id)
        patient, _, fold, _, _ = RECORDS[ecg_id]
        assert set(ex.folds[rows].tolist()) == {fold}
        assert set(ex.patients[rows].tolist()) == {str(int(patient))}
    assert set(ex.patients[ex.records == "6"].tolist()) == {"1001"}  # one patient, two records


def test_folds_protocol_follows_strat_fold(root):
    ds = _dataset(root)
    ex = ds.prepare()
    split = assign_split("folds", ex)

    records_in = {s: set(ex.records[split == s].tolist()) for s in ("train", "val", "test")}
    assert records_in == {"train": {"1", "6", "8"}, "val": {"2"}, "test": {"5"}}
    assert np.all(split != "")
    train = ds.load("train")
    assert set(train.records.tolist()) == {"1", "6", "8"} and len(train) == int(np.sum(split == "train"))
    assert set(ds.load("test").folds.tolist()) == {10}


def test_max_per_record_keeps_the_first_beats(root):
    full = _dataset(root).prepare()
    capped = _dataset(root).prepare(max_per_record=3)

    for ecg_id in KEPT:
        first = full.positions[full.records == str(ecg_id)][:3]
        assert capped.positions[capped.records == str(ecg_id)].tolist() == first.tolist()


def test_bandpass_and_other_rates_still_find_the_beats(root):
    ex = _dataset(root).prepare(ecg_ids=[1], bandpass=(0.5, 40.0))
    assert len(ex) == len(spike_samples(1))

    at_100 = _dataset(root).prepare(ecg_ids=[1], target_rate=100, target_length=120)
    assert at_100.x.shape[1:] == (1, 120)
    assert np.max(np.abs(at_100.positions - np.asarray(spike_samples(1)))) <= 1


def test_ecg_ids_restrict_and_unknown_ones_are_listed(root):
    ex = _dataset(root).prepare(ecg_ids=["5", 1, 1])
    assert sorted(set(ex.records.tolist())) == ["1", "5"]

    with pytest.raises(EcgtuneError, match=r"2 ecg_id\(s\) not in .*ptbxl_database\.csv: 99, 4242"):
        _dataset(root).prepare(ecg_ids=[1, 4242, 99])


# ---------------------------------------------------------------- cache and key


def test_second_prepare_reads_the_cache(root, monkeypatch):
    import wfdb

    first = _dataset(root).prepare()

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached prepare() must not read records")

    monkeypatch.setattr(wfdb, "rdrecord", no_reading)
    again = _dataset(root).prepare()

    np.testing.assert_array_equal(first.x, again.x)
    for field in ("y", "records", "patients", "positions", "folds"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert len(list(paths.cache_dir().glob("ptbxl-mi_beats-*.npz"))) == 1
    # Another parameter is another build: it reaches the (patched) reader.
    with pytest.raises(EcgtuneError, match="cached prepare"):
        _dataset(root).prepare(threshold=0.8)


def test_prepared_key_normalises_and_sees_the_table(root):
    ds = _dataset(root)
    base = ds.prepared_key(ecg_ids=[1, 2])
    assert ds.prepared_key(task="mi_beats", ecg_ids=["2", 1], threshold=0.9) == base
    assert ds.prepared_key(ecg_ids=[1]) != base
    assert ds.prepared_key(ecg_ids=[1, 2], target_rate=100) != base

    # Another table (e.g. the full release instead of a subset) is another key.
    rows = table_rows()[:-1]
    write_table(root / "ptbxl", rows)
    assert ds.prepared_key(ecg_ids=[1, 2]) != base


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "params, message",
    [
        ({"labels": "binary"}, r"unknown prepare\(\) parameter 'labels'; accepted: task, bandpass, ecg_ids, lead"),
        ({"task": "rhythm"}, r"unknown task 'rhythm'; expected one of mi_beats"),
        ({"target_rate": 0}, r"target_rate must be a positive integer, got 0"),
        ({"target_length": 18.7}, r"target_length must be a positive integer"),
        ({"window_seconds": -1}, r"window_seconds must be a number > 0"),
        ({"rr_factor": "1.2"}, r"rr_factor must be a number > 0"),
        ({"threshold": 1.5}, r"threshold must be a number with 0 <= threshold < 1, got 1.5"),
        ({"bandpass": (30, 1)}, r"bandpass must satisfy 0 < low < high < 50 Hz"),
        ({"bandpass": (0.5, 60)}, r"bandpass must satisfy 0 < low < high < 50 Hz"),
        ({"bandpass": "low"}, r"bandpass must be None or \(low_hz, high_hz\)"),
        ({"max_per_record": 0}, r"max_per_record must be a positive integer or None"),
        ({"lead": ""}, r"lead must be a signal name"),
        ({"ecg_ids": []}, r"ecg_ids is empty"),
        ({"ecg_ids": [1, -3]}, r"ecg_ids must be positive integers such as 42, got -3"),
        ({"ecg_ids": [True]}, r"ecg_ids must be positive integers"),
    ],
)
def test_bad_parameters(tmp_path, params, message):
    # Checked before any file is needed: the root does not even exist.
    with pytest.raises(EcgtuneError, match=message):
        _dataset(tmp_path / "nowhere").prepare(**params)


def test_missing_table_names_the_file(root):
    (root / "ptbxl" / "ptbxl_database.csv").unlink()
    with pytest.raises(EcgtuneError, match=r"ptbxl_database\.csv is not in .*ptbxl.*SHA256SUMS\.txt.*ECGTUNE_DATA_DIR"):
        _dataset(root).prepare()


def test_missing_statements_name_the_file(root):
    (root / "ptbxl" / "scp_statements.csv").unlink()
    with pytest.raises(EcgtuneError, match=r"scp_statements\.csv is not in "):
        _dataset(root).prepare()


def test_table_without_a_needed_column(root):
    write_table(root / "ptbxl", columns=["ecg_id", "patient_id", "scp_codes", "filename_lr"])
    with pytest.raises(EcgtuneError, match=r"ptbxl_database\.csv: column 'strat_fold' is missing"):
        _dataset(root).prepare()


def test_statements_without_diagnostic_class(root):
    write_statements(root / "ptbxl", class_column="superclass")
    with pytest.raises(EcgtuneError, match=r"scp_statements\.csv: column 'diagnostic_class' is missing"):
        _dataset(root).prepare()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("scp_codes", "{'NORM': 100.0", r"ecg_id 2: scp_codes \"\{'NORM': 100\.0\" is not a dict literal"),
        ("scp_codes", "['NORM']", r"ecg_id 2: scp_codes \"\['NORM'\]\" is not a dict literal"),
        ("patient_id", "anon", r"ecg_id 2: patient_id 'anon' is not a whole number"),
        ("strat_fold", "11", r"ecg_id 2: strat_fold '11' is not an integer from 1 to 10"),
        ("filename_lr", "../../etc/passwd", r"ecg_id 2: filename_lr '\.\./\.\./etc/passwd' is not a relative record"),
        ("ecg_id", "two", r": ecg_id 'two' is not a positive integer"),
    ],
)
def test_malformed_table_cells_name_file_and_ecg_id(root, field, value, message):
    rows = table_rows()
    rows[1][field] = value  # the row of ecg_id 2
    write_table(root / "ptbxl", rows)
    with pytest.raises(EcgtuneError, match=r"ptbxl_database\.csv.*" + message):
        _dataset(root).prepare()


def test_repeated_ecg_id_is_an_error(root):
    rows = table_rows()
    rows.append(dict(rows[0]))
    write_table(root / "ptbxl", rows)
    with pytest.raises(EcgtuneError, match=r"ptbxl_database\.csv: ecg_id 1 appears in two rows"):
        _dataset(root).prepare()


def test_code_missing_from_statements(root):
    write_statements(root / "ptbxl", {k: v for k, v in STATEMENTS.items() if k != "ASMI"})
    with pytest.raises(EcgtuneError, match=r"ecg_id 5 has SCP code 'ASMI', which .*scp_statements\.csv does not"):
        _dataset(root).prepare()


def test_unreadable_record_names_its_path(root):
    (root / "ptbxl" / "records100" / "00000" / "00002_lr.hea").write_text("this is not a header\n")
    with pytest.raises(EcgtuneError, match=r"ptbxl ecg_id 2: wfdb cannot read record .*records100/00000/00002_lr"):
        _dataset(root).prepare()


def test_truncated_signal_file_is_an_error(root):
    dat = root / "ptbxl" / "records100" / "00000" / "00002_lr.dat"
    dat.write_bytes(dat.read_bytes()[:500])
    with pytest.raises(EcgtuneError, match=r"ecg_id 2.*00002_lr"):
        _dataset(root).prepare()


def test_missing_lead_lists_the_leads(root):
    with pytest.raises(EcgtuneError, match=r"ecg_id 1 \(.*00001_lr\.hea\) has no lead 'MLII'; its leads: I, II, III"):
        _dataset(root).prepare(lead="MLII")


def test_unknown_split():
    with pytest.raises(EcgtuneError, match=r"unknown split 'dev'; expected one of train, val, test"):
        PtbXl(root="/nonexistent").load("dev")


# ---------------------------------------------------------------- download


def write_checksum_list(folder: Path, skip: tuple[str, ...] = (), override: dict[str, str] | None = None) -> None:
    """SHA256SUMS.txt as PhysioNet writes it: "<sha256> <relative path>" for every file of the folder."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS.txt"):
        relative = path.relative_to(folder).as_posix()
        if relative not in skip:
            lines.append(f"{(override or {}).get(relative, cache.sha256_file(path))} {relative}\n")
    (folder / "SHA256SUMS.txt").write_text("".join(lines))


@pytest.fixture
def served(tmp_path, generated_ptbxl):
    """(base_url, the served ptbxl folder, requested paths): a generated release on 127.0.0.1."""
    folder = Path(shutil.copytree(generated_ptbxl, tmp_path / "server"))
    write_checksum_list(folder)
    with serving(folder) as (url, requested):
        yield url, folder, requested


def _record_files(*ecg_ids: int) -> list[str]:
    return [f"{record_path(i)}.{ext}" for i in ecg_ids for ext in ("hea", "dat")]


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_download_fetches_the_list_first_and_verifies_each_file(served, tmp_path):
    base_url, server_dir, requested = served
    ds = PtbXl(root=tmp_path / "data", base_url=base_url)

    ds.download(ecg_ids=[1, 2])

    expected = sorted(["ptbxl_database.csv", "scp_statements.csv", *_record_files(1, 2)])
    got = tmp_path / "data" / "ptbxl"
    assert _files_under(got) == expected  # no temporary file left, the list not stored
    for name in expected:
        assert (got / name).read_bytes() == (server_dir / name).read_bytes()
    assert requested[0] == "SHA256SUMS.txt" and sorted(requested[1:]) == expected
    assert (paths.lock_dir() / "ptbxl-download.lock").exists()


def test_download_without_ids_fetches_every_record_but_the_duplicates(served, tmp_path):
    base_url, _, requested = served
    PtbXl(root=tmp_path / "data", base_url=base_url).download()

    assert sorted(requested[3:]) == sorted(_record_files(*(i for i in RECORDS if i not in DUPLICATE_ECG_IDS)))


def test_present_files_are_left_alone(served, tmp_path):
    base_url, _, requested = served
    PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[1])
    n_first = len(requested)

    PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[1])
    assert len(requested) == n_first  # nothing fetched, not even the list

    PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[1, 2])
    assert requested[n_first:] == ["SHA256SUMS.txt", *_record_files(2)]


def test_prepare_downloads_only_the_labelled_records(served, tmp_path):
    base_url, _, requested = served
    ex = PtbXl(root=tmp_path / "data", base_url=base_url).prepare()

    assert {int(r) for r in ex.records} == set(KEPT)
    record_requests = sorted(r for r in requested if r.startswith("records100/"))
    assert record_requests == sorted(_record_files(*KEPT))


def test_a_file_whose_hash_differs_is_refused_and_not_kept(served, tmp_path):
    base_url, server_dir, _ = served
    target = _record_files(1)[1]  # records100/00000/00001_lr.dat
    real = cache.sha256_file(server_dir / target)
    write_checksum_list(server_dir, override={target: "0" * 64})

    with pytest.raises(EcgtuneError) as info:
        PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[1])

    message = str(info.value)
    assert "00001_lr.dat" in message and "0" * 64 in message and real in message
    record_dir = tmp_path / "data" / "ptbxl" / "records100" / "00000"
    assert not (record_dir / "00001_lr.dat").exists()
    assert not [p for p in record_dir.iterdir() if p.name.startswith(".")]  # no partial file


def test_a_file_the_list_does_not_name_is_never_fetched(served, tmp_path):
    base_url, server_dir, requested = served
    unlisted = _record_files(2)[0]
    write_checksum_list(server_dir, skip=(unlisted,))

    with pytest.raises(EcgtuneError, match=r"not in the checksum list .*SHA256SUMS.*: records100/00000/00002_lr\.hea"):
        PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[2])

    assert not any(r.startswith("records100/") for r in requested)


def test_missing_checksum_list_gives_a_clear_error(served, tmp_path):
    base_url, server_dir, _ = served
    (server_dir / "SHA256SUMS.txt").unlink()

    with pytest.raises(EcgtuneError, match=r"ptbxl_database\.csv \(and 1 more files\) is not in .*SHA256SUMS.*404"):
        PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[1])
    assert not (tmp_path / "data" / "ptbxl").exists() or _files_under(tmp_path / "data" / "ptbxl") == []


def test_http_error_on_a_record_names_file_url_and_the_local_copy_hint(served, tmp_path):
    base_url, server_dir, _ = served
    (server_dir / _record_files(1)[1]).unlink()  # listed but gone from the server

    with pytest.raises(EcgtuneError) as info:
        PtbXl(root=tmp_path / "data", base_url=base_url).download(ecg_ids=[1])

    message = str(info.value)
    for fragment in ("00001_lr.dat", base_url, "404", "ECGTUNE_DATA_DIR", "--data-dir"):
        assert fragment in message
