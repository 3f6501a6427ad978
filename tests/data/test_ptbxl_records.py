"""PTB-XL's `records` task on a hand-written table and generated 12-lead records: which records each label
set keeps and what it calls them, the likelihood threshold, duplicates, lead order, rates and lengths."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ecgtune.data import assign_split, get_dataset
from ecgtune.data.ptbxl_records import LEADS, diagnostic_classes, record_label, spread_over_folds
from ecgtune.errors import EcgtuneError

FS = 100
N = 1000
UNREACHABLE = "http://127.0.0.1:9/"

# ecg_id: (patient_id, scp_codes, strat_fold); the diagnostic classes each code stands for are STATEMENTS'.
TABLE = {
    1: (11, {"IMI": 100.0, "ISC_": 50.0}, 1),  # MI and STTC
    2: (12, {"NORM": 100.0, "SR": 0.0}, 9),  # normal, plus a rhythm code without a diagnostic class
    3: (13, {"NORM": 80.0, "LAFB": 100.0}, 10),  # NORM and CD: abnormal for normal_abnormal
    4: (14, {"LVH": 15.0}, 2),  # HYP, stated with a likelihood of 15 only
    5: (15, {"SR": 0.0}, 3),  # no diagnostic statement: every label set leaves it out
    6: (16, {"IMI": 100.0, "NORM": 0.0}, 9),  # MI, and NORM at likelihood 0
    137: (17, {"NORM": 100.0}, 4),  # a duplicate of PTB-XL 1.0.2: always left out
}
STATEMENTS = {"NORM": "NORM", "IMI": "MI", "ISC_": "STTC", "LAFB": "CD", "LVH": "HYP", "SR": ""}


def _path(ecg_id: int, rate: int) -> str:
    folder, suffix = ("records100", "lr") if rate == 100 else ("records500", "hr")
    return f"{folder}/00000/{ecg_id:05d}_{suffix}"


def leads_of(ecg_id: int, rate: int = FS) -> np.ndarray:
    """(samples, 12) in mV: lead k is a sine of k + 1 cycles over the record plus k mV and the record's id,
    so that each lead and record can be told apart after standardisation."""
    t = np.arange(10 * rate) / (10 * rate)
    return np.stack([np.sin(2 * np.pi * (k + 1) * t) * (1 + ecg_id / 10) + k for k in range(12)], axis=1)


def write_release(folder: Path, hr_ids=()) -> None:
    import wfdb

    folder.mkdir(parents=True)
    with open(folder / "ptbxl_database.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr"])
        for i, (patient, codes, fold) in TABLE.items():
            writer.writerow([i, f"{patient}.0", str(codes), fold, _path(i, 100), _path(i, 500) if i in hr_ids else ""])
    with open(folder / "scp_statements.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "description", "diagnostic", "diagnostic_class"])
        for code, cls in STATEMENTS.items():
            writer.writerow([code, code, "1.0" if cls else "", cls])
    for i in TABLE:
        for rate in (100, 500) if i in hr_ids else (100,):
            target = folder / _path(i, rate)
            target.parent.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(target.name, fs=rate, units=["mV"] * 12, sig_name=list(LEADS), p_signal=leads_of(i, rate),
                        fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(target.parent))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records") / "data"
    write_release(root / "ptbxl", hr_ids=(2, 3))
    return root


def _prepare(root: Path, **params):
    return get_dataset("ptbxl", root=root, base_url=UNREACHABLE).prepare(task="records", **params)


def _labels(examples) -> dict[int, object]:
    return {int(r): (tuple(y) if np.ndim(y) else int(y)) for r, y in zip(examples.records, examples.y)}


def test_superdiagnostic_is_multi_label_over_the_five_classes(release):
    ex = _prepare(release)
    assert ex.label_names == ("NORM", "MI", "STTC", "CD", "HYP") and ex.multi_label
    assert _labels(ex) == {
        1: (0, 1, 1, 0, 0),
        2: (1, 0, 0, 0, 0),
        3: (1, 0, 0, 1, 0),
        4: (0, 0, 0, 0, 1),
        6: (1, 1, 0, 0, 0),  # likelihood 0 still counts at the default min_likelihood 0, as the benchmark's
    }  # 5 has no diagnostic statement; 137 is a duplicate


def test_min_likelihood_drops_weak_statements_and_records_left_without_any(release):
    ex = _prepare(release, min_likelihood=20)
    labels = _labels(ex)
    assert labels[6] == (0, 1, 0, 0, 0)  # NORM at 0 no longer counts
    assert 4 not in labels  # its only statement (LVH at 15) is too weak: no diagnostic class left


def test_superdiagnostic4_writes_a_normal_record_as_all_zero(release):
    ex = _prepare(release, labels="superdiagnostic4")
    assert ex.label_names == ("MI", "STTC", "CD", "HYP")
    assert _labels(ex) == {1: (1, 1, 0, 0), 2: (0, 0, 0, 0), 3: (0, 0, 1, 0), 4: (0, 0, 0, 1), 6: (1, 0, 0, 0)}


def test_normal_abnormal_is_norm_alone_against_anything_else(release):
    ex = _prepare(release, labels="normal_abnormal")
    assert ex.label_names == ("normal", "abnormal") and not ex.multi_label
    assert _labels(ex) == {1: 1, 2: 0, 3: 1, 4: 1, 6: 1}


def test_records_carry_patients_and_folds_and_the_folds_split_is_strat_fold(release):
    ex = _prepare(release)
    assert list(ex.patients) == ["11", "12", "13", "14", "16"]
    split = dict(zip(map(int, ex.records), assign_split("folds", ex)))
    assert split == {1: "train", 2: "val", 3: "test", 4: "train", 6: "val"}


def test_leads_come_in_the_order_asked_standardised_per_lead(release):
    ex = _prepare(release, leads=["v6", "I"], standardize=False)
    raw = leads_of(1)
    np.testing.assert_allclose(ex.x[0], raw[:, [11, 0]].T, atol=2e-3)  # 16-bit at 1000 units per mV
    assert ex.x.shape == (5, 2, N)

    std = _prepare(release)
    assert std.x.shape == (5, 12, N)
    np.testing.assert_allclose(std.x.mean(axis=2), 0, atol=1e-5)
    np.testing.assert_allclose(std.x.std(axis=2), 1, atol=1e-4)


def test_100_hz_records_reach_ribeiros_input_by_resampling_and_centred_zero_padding(release):
    ex = _prepare(release, target_rate=400, length=4096)
    assert ex.x.shape == (5, 12, 4096)
    assert np.all(ex.x[:, :, :48] == 0) and np.all(ex.x[:, :, -48:] == 0)  # 4,000 samples, 48 zeros each side
    body = ex.x[:, :, 48:-48]
    np.testing.assert_allclose(body.mean(axis=2), 0, atol=1e-5)  # standardised before padding: zeros stay zeros
    np.testing.assert_allclose(body.std(axis=2), 1, atol=1e-4)
    resampled = _prepare(release, target_rate=400, standardize=False)
    np.testing.assert_allclose(resampled.x[0, 3, ::4], leads_of(1)[:, 3], atol=0.01)  # every 4th is the record's
    np.testing.assert_allclose(resampled.x[0, 3], leads_of(1, 400)[:, 3], atol=0.03)  # no ringing at the ends


def test_cropping_keeps_the_centre(release):
    ex = _prepare(release, length=600, standardize=False)
    np.testing.assert_allclose(ex.x[0, 0], leads_of(1)[200:800, 0], atol=2e-3)


def test_500_hz_records_are_read_where_the_table_names_them(release):
    ex = _prepare(release, rate=500, ecg_ids=[2, 3], standardize=False)
    assert ex.x.shape == (2, 12, 5000)
    np.testing.assert_allclose(ex.x[1, 5], leads_of(3, 500)[:, 5], atol=2e-3)
    with pytest.raises(EcgtuneError, match=r"ecg_id 1: the table names no 500 Hz record \(filename_hr\)"):
        _prepare(release, rate=500, ecg_ids=[1, 2])


def test_bandpass_removes_an_offset_and_keeps_the_rhythm(release):
    ex = _prepare(release, bandpass=[0.5, 40.0], standardize=False, leads=["III"])
    wave = leads_of(1)[:, 2]
    assert abs(ex.x[0, 0, 300:700].mean()) < 0.1  # the 2 mV offset of lead III is gone
    corr = np.corrcoef(ex.x[0, 0, 100:900], wave[100:900])[0, 1]
    assert corr > 0.95  # zero-phase: the 3 cycles over 10 s pass in place


def test_max_records_spreads_over_the_folds():
    folds = np.array([1] * 5 + [2] * 5 + [9] * 5 + [10] * 5)
    keep = spread_over_folds(folds, 8)
    assert set(folds[keep]) == {1, 2, 9, 10}
    # With one class per record, each fold's few records come from its classes in turn: fold 10's abnormal
    # record is its last, yet it is kept, so a smoke test part is not all normal.
    classes = np.array([0, 1, 0, 0, 0] * 3 + [0, 0, 0, 0, 1])
    keep = spread_over_folds(folds, 20, classes)  # two records a fold
    for fold in (1, 2, 9, 10):
        assert set(classes[keep][folds[keep] == fold]) == {0, 1}


@pytest.mark.parametrize("params, message", [
    ({"labels": "diagnostic"}, "labels must be one of"),
    ({"leads": ["II", "II"]}, "leads must be distinct"),
    ({"leads": ["X"]}, "leads must be distinct names"),
    ({"rate": 250}, "rate must be 100 or 500"),
    ({"length": 0}, "length must be a positive integer"),
    ({"bandpass": [40, 0.5]}, "bandpass must satisfy 0 < low < high < 50 Hz"),
    ({"min_likelihood": 150}, "min_likelihood must be a number from 0 to 100"),
    ({"target_length": 187}, "unknown records parameter 'target_length'"),
    ({"images": ["gaf", "spectrogram"]}, "images must be null or distinct kinds of"),
    ({"images": ["gaf"], "image_size": 4}, "image_size must be an integer from 8 to 1024"),
])
def test_bad_parameters_name_the_key(release, params, message):
    with pytest.raises(EcgtuneError, match=message):
        _prepare(release, **params)


def test_label_rules_directly():
    classes = {"NORM": "NORM", "IMI": "MI", "SR": ""}
    assert diagnostic_classes(("IMI", "SR"), (40.0, 0.0), classes, 50) == set()
    assert record_label(set(), "superdiagnostic") is None
    assert record_label({"NORM"}, "normal_abnormal") == 0 and record_label({"NORM", "MI"}, "normal_abnormal") == 1


def test_prepare_downloads_and_verifies_the_records_it_keeps(release, tmp_path):
    """For users with internet: the table, the statements and each kept record at the rate asked, each
    checked against the release's SHA256SUMS.txt; the records a label set leaves out are not fetched."""
    import shutil

    from tests.data.conftest import serving
    from tests.data.test_ptbxl import write_checksum_list

    server = Path(shutil.copytree(release / "ptbxl", tmp_path / "server"))
    write_checksum_list(server)
    with serving(server) as (url, requested):
        ex = get_dataset("ptbxl", root=tmp_path / "data", base_url=url).prepare(task="records", rate=500, ecg_ids=[2, 3])
    assert ex.x.shape == (2, 12, 5000)
    records = sorted(r for r in requested if r.startswith("records"))
    assert records == sorted(f"{_path(i, 500)}.{ext}" for i in (2, 3) for ext in ("hea", "dat"))
    assert requested[0] == "SHA256SUMS.txt"


def test_images_are_a_second_input_made_from_the_unpadded_signal_and_cached_as_uint8(release):
    """Seed 000's images: per lead GAF, MTF and RP of the prepared lead (before any zero padding, which
    would enter every lead's min-max scale), lead-major channels, uint8; a second read comes from the cache."""
    from ecgtune.data.examples import FIXED
    from ecgtune.data.ptbxl_records import IMAGE
    from ecgtune.transforms.images import record_image

    seed = {"labels": "superdiagnostic4", "leads": ["I", "II", "V2"], "bandpass": [1, 45], "bandpass_causal": True,
            "bandpass_order": 2}
    plain = _prepare(release, **seed)
    ex = _prepare(release, **seed, images=["gaf", "mtf", "rp"], image_size=16)
    assert list(ex.inputs) == ["signal", IMAGE] and ex.layout == FIXED
    assert ex.inputs[IMAGE].dtype == np.uint8 and ex.inputs[IMAGE].shape == (len(ex), 9, 16, 16)
    np.testing.assert_array_equal(ex.inputs["signal"], plain.inputs["signal"])
    np.testing.assert_array_equal(ex.inputs[IMAGE][0], record_image(plain.inputs["signal"][0], size=16))
    padded = _prepare(release, **seed, images=["rp"], image_size=16, length=1200)
    assert padded.inputs["signal"].shape[-1] == 1200
    np.testing.assert_array_equal(padded.inputs[IMAGE], ex.inputs[IMAGE][:, 2::3])  # each lead's RP, unpadded
    again = _prepare(release, **seed, images=["gaf", "mtf", "rp"], image_size=16)
    assert again.inputs[IMAGE].dtype == np.uint8
    np.testing.assert_array_equal(again.inputs[IMAGE], ex.inputs[IMAGE])
