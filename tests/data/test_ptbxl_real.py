"""PTB-XL's MI-vs-normal beat task on the verified real copy (ECGTUNE_DATA_DIR: ptbxl/, ecg_ids 1-500)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from ecgtune.data import assign_split, get_dataset
from ecgtune.data.ptbxl import DUPLICATE_ECG_IDS

pytestmark = pytest.mark.integration

# Measured on the local copy (500 rows of a pre-1.0.2 table). Recordings labelled by the rule,
# duplicates excluded: 71 MI, 286 normal. The 0.9 detector finds fewer than two R-peaks in 4 MI
# and 9 normal recordings, which so give no beat.
LABELLED_MI, LABELLED_NORMAL = 71, 286
WITH_BEATS_MI, WITH_BEATS_NORMAL = 67, 277
BEATS_MI, BEATS_NORMAL = 930, 2112


@pytest.fixture(scope="module")
def prepared(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The default task on every recording of the copy, prepared once for the module in its own home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECGTUNE_HOME", str(tmp_path_factory.mktemp("ecgtune_home")))
        # An unreachable base_url: the real copy must be complete; never fall back to the network.
        yield get_dataset("ptbxl", root=real_data_dir, base_url="http://127.0.0.1:9/").prepare()


def independent_labels(folder: Path) -> dict[int, str]:
    """ecg_id -> "MI" / "normal" for the labelled recordings, by plain csv and ast reading of both files."""
    with open(folder / "scp_statements.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        column = header.index("diagnostic_class")
        diagnostic_class = {row[0]: row[column] for row in reader}
    labels = {}
    with open(folder / "ptbxl_database.csv", newline="") as f:
        for row in csv.DictReader(f):
            ecg_id = int(row["ecg_id"])
            codes = ast.literal_eval(row["scp_codes"])
            classes = {diagnostic_class[code] for code in codes if diagnostic_class[code]}
            if ecg_id in {137, 139, 140, 141, 142, 143, 145, 456, 458, 459, 461, 462}:
                continue  # dropped by PTB-XL 1.0.2 as duplicates
            if "MI" in classes:
                labels[ecg_id] = "MI"
            elif "NORM" in codes and classes == {"NORM"}:
                labels[ecg_id] = "normal"
    return labels


def test_both_classes_and_shapes(prepared):
    assert prepared.label_names == ("normal", "MI")
    assert set(prepared.y.tolist()) == {0, 1}
    assert prepared.x.shape[1:] == (1, 187) and prepared.x.dtype == np.float32
    assert prepared.x.min() >= 0.0 and prepared.x.max() <= 1.0
    assert prepared.positions.min() >= 0 and prepared.positions.max() < 1000  # 10 s at 100 Hz
    assert set(prepared.folds.tolist()) == set(range(1, 11))


def test_no_excluded_duplicate_is_kept(prepared):
    kept = {int(r) for r in prepared.records}
    assert not kept & DUPLICATE_ECG_IDS
    assert len(DUPLICATE_ECG_IDS) == 12


def test_record_counts_match_an_independent_count(prepared, real_data_dir):
    labels = independent_labels(real_data_dir / "ptbxl")
    mi = {i for i, label in labels.items() if label == "MI"}
    normal = {i for i, label in labels.items() if label == "normal"}
    assert (len(mi), len(normal)) == (LABELLED_MI, LABELLED_NORMAL)

    kept_mi = {int(r) for r in np.unique(prepared.records[prepared.y == 1])}
    kept_normal = {int(r) for r in np.unique(prepared.records[prepared.y == 0])}
    # Every prepared recording carries the label the independent count gives it ...
    assert kept_mi <= mi and kept_normal <= normal
    # ... and all but the few without two detectable R-peaks are there.
    assert (len(kept_mi), len(kept_normal)) == (WITH_BEATS_MI, WITH_BEATS_NORMAL)


def test_beat_counts(prepared):
    # Beat counts rest on floating-point peak detection; allow 1 % for another numpy/scipy build.
    assert int(np.sum(prepared.y == 1)) == pytest.approx(BEATS_MI, rel=0.01)
    assert int(np.sum(prepared.y == 0)) == pytest.approx(BEATS_NORMAL, rel=0.01)


def test_folds_keep_patients_apart(prepared):
    split = assign_split("folds", prepared)
    patients = {s: set(prepared.patients[split == s].tolist()) for s in ("train", "val", "test")}

    assert all(patients.values())
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    for s in ("train", "val", "test"):  # both classes in every part
        assert set(prepared.y[split == s].tolist()) == {0, 1}
