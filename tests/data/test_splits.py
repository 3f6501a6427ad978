"""Split protocols on synthetic Examples (no WFDB needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgtune.data import Examples, assign_split, list_splits
from ecgtune.data.splits import DS1, DS2, INTER_PATIENT_VAL
from ecgtune.errors import EcgtuneError


def _examples(per_record: dict[str, list[int]], *, shuffle_seed: int | None = None) -> Examples:
    """Examples whose labels per record are given in time order (positions 0, 360, ...)."""
    records, labels, positions = [], [], []
    for record, ys in per_record.items():
        records += [record] * len(ys)
        labels += ys
        positions += [360 * i for i in range(len(ys))]
    order = np.arange(len(labels))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(order)
    n = len(labels)
    return Examples(
        inputs={"signal": np.zeros((n, 1, 4), np.float32)},
        y=np.asarray(labels)[order],
        records=np.asarray(records)[order],
        patients=np.asarray(["201" if r == "202" else r for r in records])[order],
        positions=np.asarray(positions)[order],
        label_names=("normal", "abnormal"),
    )


def _keyed(ex: Examples, split: np.ndarray) -> dict[tuple[str, int], str]:
    return dict(zip(zip(ex.records.tolist(), ex.positions.tolist()), split.tolist()))


STUDY = {"100": [0] * 90 + [1] * 10, "208": [0] * 50 + [1] * 50, "231": [0] * 20 + [1] * 79 + [2]}


def test_list_splits():
    assert list_splits() == ["chronological", "folds", "given", "inter_patient", "per_patient", "random_beats",
                             "random_records", "stratified_records"]


def test_unknown_protocol_lists_known_ones():
    with pytest.raises(EcgtuneError, match=r"'random'.*chronological, folds, given, inter_patient, per_patient, random_beats"):
        assign_split("random", _examples(STUDY))


def test_per_patient_is_stratified_per_record_and_class():
    ex = _examples(STUDY)
    split = assign_split("per_patient", ex)

    assert split.shape == (len(ex),) and set(split.tolist()) == {"train", "val", "test"}
    for record in STUDY:
        for label in (0, 1):
            members = split[(ex.records == record) & (ex.y == label)]
            n = len(members)
            n_test = int(np.floor(0.2 * n + 0.5))
            assert (members == "test").sum() == n_test
            assert (members == "val").sum() == int(np.floor(0.2 * (n - n_test) + 0.5))
    # A class with one example goes to train.
    assert split[(ex.records == "231") & (ex.y == 2)].tolist() == ["train"]


def test_per_patient_is_deterministic_and_seeded():
    ex = _examples(STUDY)
    a, b = assign_split("per_patient", ex), assign_split("per_patient", ex)
    other = assign_split("per_patient", ex, seed=7)

    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, other)


def test_per_patient_record_split_does_not_depend_on_other_records_or_row_order():
    together = _examples(STUDY)
    split = _keyed(together, assign_split("per_patient", together))
    for record in STUDY:
        alone = _examples({record: STUDY[record]}, shuffle_seed=3)
        alone_split = _keyed(alone, assign_split("per_patient", alone))
        assert alone_split == {k: v for k, v in split.items() if k[0] == record}


def test_per_patient_pretraining_pool_never_holds_a_test_example():
    # Pre-training uses train+val of every record; fine-tuning tests each record's test part.
    ex = _examples(STUDY)
    split = assign_split("per_patient", ex)
    pretrain = set(zip(ex.records[split != "test"].tolist(), ex.positions[split != "test"].tolist()))
    for record in STUDY:
        alone = _examples({record: STUDY[record]})
        alone_split = assign_split("per_patient", alone)
        test = set(zip(alone.records[alone_split == "test"].tolist(), alone.positions[alone_split == "test"].tolist()))
        assert test and pretrain.isdisjoint(test)


def test_chronological_respects_time_order():
    ex = _examples(STUDY, shuffle_seed=1)
    split = assign_split("chronological", ex)

    for record in STUDY:
        in_record = ex.records == record
        pos = {s: ex.positions[in_record & (split == s)] for s in ("train", "val", "test")}
        assert pos["train"].max() < pos["val"].min() and pos["val"].max() < pos["test"].min()
        n = in_record.sum()
        assert len(pos["train"]) == round(0.64 * n) and len(pos["test"]) == n - round(0.8 * n)


def test_inter_patient_lists_and_the_201_202_patient():
    assert set(DS1).isdisjoint(DS2) and len(DS1) == len(DS2) == 22
    assert set(INTER_PATIENT_VAL) <= set(DS1) and len(INTER_PATIENT_VAL) == 4
    everyone = {r: [0, 1] for r in DS1 + DS2 + ("102", "104", "107", "217")}
    ex = _examples(everyone)
    split = assign_split("inter_patient", ex)
    by_record = {r: set(split[ex.records == r].tolist()) for r in everyone}

    assert by_record["201"] == {"train"} and by_record["202"] == {""}
    for paced in ("102", "104", "107", "217"):
        assert by_record[paced] == {""}
    assert {r for r, s in by_record.items() if s == {"val"}} == set(INTER_PATIENT_VAL)
    assert {r for r, s in by_record.items() if s == {"test"}} == set(DS2) - {"202"}
    # No patient on two sides.
    sides = {}
    for patient, s in zip(ex.patients.tolist(), split.tolist()):
        if s:
            sides.setdefault(patient, set()).add(s)
    assert all(len(s) == 1 for s in sides.values())


def test_random_beats_is_stratified_20_percent_test_and_ignores_row_order():
    ex = _examples(STUDY)
    split = assign_split("random_beats", ex)
    for label in (0, 1):
        members = split[ex.y == label]
        n = len(members)
        assert abs((members == "test").sum() - 0.2 * n) <= 1
        assert abs((members == "val").sum() - 0.1 * 0.8 * n) <= 1
    # Beats of one record land in train and in test: the seed's protocol, not a patient-wise one.
    assert {"train", "test"} <= set(split[ex.records == "208"])
    shuffled = _examples(STUDY, shuffle_seed=3)
    assert _keyed(ex, split) == _keyed(shuffled, assign_split("random_beats", shuffled))
    assert (split != assign_split("random_beats", ex, seed=7)).any()


def test_folds_protocol_uses_the_datasets_folds_and_refuses_examples_without_them():
    n = 20
    folds = np.arange(n) % 11  # 0 = no fold, 1-10
    ex = Examples(
        inputs={"signal": np.zeros((n, 1, 4))}, y=np.zeros(n), records=[str(i) for i in range(n)],
        patients=[str(i) for i in range(n)], positions=np.zeros(n), label_names=("a", "b"), folds=folds,
    )
    split = assign_split("folds", ex)
    assert set(split[(folds >= 1) & (folds <= 8)]) == {"train"}
    assert set(split[folds == 9]) == {"val"} and set(split[folds == 10]) == {"test"}
    assert set(split[folds == 0]) == {""}
    with pytest.raises(EcgtuneError, match="folds"):
        assign_split("folds", _examples(STUDY))


def _records_of_patients(n_patients: int, per_patient: int, *, multi_label: bool = False) -> Examples:
    """One example per record, ``per_patient`` records per patient (as PTB-XL's repeat recordings), labels
    varying within a patient: a split by record would put some patients in two parts."""
    n = n_patients * per_patient
    records = np.array([f"r{i:03d}" for i in range(n)])
    patients = np.repeat([f"p{i:02d}" for i in range(n_patients)], per_patient)
    y = (np.arange(n) % 3 == 0).astype(np.int64)
    if multi_label:
        y = np.stack([y, (np.arange(n) % 2 == 0)], axis=1).astype(np.float32)
    return Examples(inputs={"signal": np.zeros((n, 1, 4), np.float32)}, y=y, records=records, patients=patients,
                    positions=np.zeros(n, np.int64), label_names=("a", "b") if multi_label else ("normal", "abnormal"))


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("protocol,options", [
    ("stratified_records", {}), ("random_records", {"test": 0.2, "val": 0.2}), ("random_records", {}),
])
def test_record_protocols_deal_whole_patients(protocol, options, multi_label):
    ex = _records_of_patients(30, 3, multi_label=multi_label)
    parts = assign_split(protocol, ex, **options)
    assert set(parts) == ({"train", "val", "test"} if protocol == "stratified_records" or options else {"train", "val"})
    for patient in set(ex.patients):
        assert len(set(parts[ex.patients == patient])) == 1, patient
    np.testing.assert_array_equal(parts, assign_split(protocol, ex, **options))  # deterministic


def test_fractions_that_leave_a_part_empty_are_refused():
    with pytest.raises(EcgtuneError, match=r"split random_records: 2 patient\(s\) leave the val part empty"):
        assign_split("random_records", _records_of_patients(2, 2), test=0.4, val=0.2)
