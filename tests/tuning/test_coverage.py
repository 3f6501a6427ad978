"""Units whose validation or test part holds one class are skipped before any trial, with the units that
would start from them; the summary shows them."""

from __future__ import annotations

import numpy as np

from ecgtune.data import Examples
from ecgtune.reporting.summary_tables import format_summary
from ecgtune.spaces import load_space, shape_search
from ecgtune.tuning.coverage import coverage_gap, skipped_units
from ecgtune.tuning.finalize import UnitSummary
from ecgtune.tuning.plan import build_plan
from ecgtune.tuning.prepared import PreparedData


def _examples(y_by_record: dict[str, list[int]]) -> tuple[Examples, np.ndarray]:
    """Each record's examples with the classes given, split train/val/test in turn (one row each)."""
    records = [r for r, ys in y_by_record.items() for _ in ys]
    y = [c for ys in y_by_record.values() for c in ys]
    n = len(y)
    examples = Examples(inputs={"signal": np.zeros((n, 1, 128), np.float32)}, y=np.array(y), records=np.array(records),
                        patients=np.array(records), positions=np.arange(n), label_names=("normal", "abnormal"))
    splits = np.array([["train", "val", "test"][i % 3] for r in y_by_record for i in range(len(y_by_record[r]))])
    return examples, splits


def test_a_part_with_one_class_is_a_gap_naming_the_part_and_the_class():
    # Record 102: validation rows (positions 1, 4) are both abnormal; record 100 is covered.
    examples, splits = _examples({"100": [0, 0, 1, 1, 1, 0], "102": [0, 1, 0, 1, 1, 1]})
    assert coverage_gap(examples, splits, "100", with_test=True) is None
    assert coverage_gap(examples, splits, "102", with_test=True) == (
        "its validation part holds only class abnormal (2 examples): a selection measure on one class is not fair")
    assert coverage_gap(examples, splits, None, with_test=True) is None  # the whole data set is covered
    test_gap = _examples({"217": [0, 0, 1, 1, 1, 1]})
    assert "test part holds only class abnormal" in coverage_gap(*test_gap, "217", with_test=True)
    assert coverage_gap(*test_gap, "217", with_test=False) is None  # no test part to score


def test_the_units_of_a_patient_without_coverage_and_those_starting_from_them_are_skipped():
    (space,) = shape_search([load_space("finetune_patients")], patients=["100", "102"], smoke_test=True)
    plan = build_plan([space])
    # Whole data covered; record 102's validation all abnormal.
    examples, splits = _examples({"100": [0, 0, 1, 1, 1, 0], "102": [0, 1, 0, 1, 1, 1]})
    skipped = skipped_units(plan, {space.experiment_name: PreparedData(examples, splits, "k")})
    assert {k.split("/")[1] for k in skipped} == {"scratch-cnn1d_residual-102", "finetune-cnn1d_residual-102"}
    assert all("validation part holds only class abnormal" in r for r in skipped.values())


def test_a_transfer_unit_starting_from_a_skipped_champion_is_skipped_too():
    aami, transfer = shape_search([load_space("heartbeat_aami"), load_space("mi_transfer")], models=["cnet"], smoke_test=True)
    plan = build_plan([aami, transfer])
    one_class, splits = _examples({"100": [0, 1, 0, 0, 1, 0]})  # every validation row abnormal
    covered, covered_splits = _examples({"100": [0, 0, 1, 1, 1, 0]})
    skipped = skipped_units(plan, {aami.experiment_name: PreparedData(one_class, splits, "a"),
                                   transfer.experiment_name: PreparedData(covered, covered_splits, "b")})
    assert skipped == {
        f"{aami.experiment_name}/scratch-cnet": "its validation part holds only class abnormal (2 examples): a "
                                               "selection measure on one class is not fair",
        f"{transfer.experiment_name}/finetune-cnet": f"it starts from {aami.experiment_name}/scratch-cnet, which is skipped",
    }


def test_the_summary_shows_a_skipped_unit_and_leaves_it_out_of_the_mean():
    (space,) = shape_search([load_space("individuals_patients")], patients=["100", "102"], smoke_test=True)
    unit_100, unit_102 = build_plan([space])
    ran = UnitSummary(space=space.experiment_name, stage="scratch", model="cnn1d_residual", patient="100",
                      config={"lr": 0.001, "batch_size": 32, "weighted_sampling": False}, val_metric=0.9,
                      test={"test_balanced_accuracy": 0.8, "test_f1_macro": 0.7}, run_id="r", registered_model="m",
                      version="1", champion=True)
    text = format_summary([ran, UnitSummary.of_skipped(unit_102, "its validation part holds only class normal")],
                          space.metric)
    assert "102  skipped: its validation part holds only class normal" in text and "mean" not in text
