"""The per-value table picks, for each value, the finished trial best on validation: never by test, never
a failed trial, in the metric's own direction."""

from types import SimpleNamespace

from ecgtune.reporting.summary_tables import format_by_value
from ecgtune.tuning.by_value import best_run_per_value, ValueRow


def run(run_id, k, best, status="FINISHED", tags=None):
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=status),
                           data=SimpleNamespace(params={"train.freeze_blocks": k}, tags=tags or {},
                                                metrics={"best_metric": best, "test_auroc": 1 - best}))


def test_a_trial_asha_stopped_counts_as_selection_counted_it_an_interrupted_one_does_not():
    runs = [run("s", "2", 0.70, status="KILLED", tags={"ecgtune.stopped_by": "asha"}),
            run("i", "3", 0.95, status="KILLED")]  # Ctrl-C: it never finished
    assert [(k, r.info.run_id) for k, (r, _) in best_run_per_value(runs, "train.freeze_blocks", "max").items()] == [("2", "s")]


def test_the_best_finished_trial_on_validation_per_value():
    runs = [run("f", "10", 0.65), run("e", "10", float("nan")), run("d", "1", 0.60),
            run("c", "1", 0.90, status="FAILED"), run("b", "0", 0.80), run("a", "0", 0.70)]  # the latest first
    best = best_run_per_value(runs, "train.freeze_blocks", "max")
    assert [(k, r.info.run_id, n) for k, (r, n) in best.items()] == [("0", "b", 2), ("1", "d", 1), ("10", "f", 1)]
    lowest = best_run_per_value(runs, "train.freeze_blocks", "min")
    assert lowest["0"][0].info.run_id == "a"
    assert best_run_per_value(runs, "train.lr", "max") == {}


def test_rows_show_the_interval_where_one_was_drawn():
    rows = [ValueRow("0", 2, "r0", 0.8, True, {"test_auroc": 0.75, "test_auroc_ci_low": 0.6, "test_auroc_ci_high": 0.9,
                                                  "test_f1_macro": 0.7}),
            ValueRow("1", 2, "r1", 0.7, False, {"test_auroc": 0.65, "test_f1_macro": float("nan")})]
    lines = format_by_value(rows, "freeze_blocks", "val_auroc").splitlines()
    assert "0.7500 [0.6000, 0.9000]" in lines[1] and lines[1].endswith("r0 (champion)")
    assert "0.6500" in lines[2] and "[" not in lines[2] and " -  " in lines[2] and lines[2].endswith("r1")


def test_multi_label_rows_get_a_table_of_each_labels_auroc():
    rows = [ValueRow("0.1", 1, "r0", 0.9, True, {"test_auroc_macro": 0.8, "test_auroc_NORM": 0.85,
                                                    "test_auroc_NORM_ci_low": 0.7, "test_auroc_NORM_ci_high": 0.95,
                                                    "test_auroc_MI": 0.6})]
    text = format_by_value(rows, "dropout", "val_auroc_macro", ("NORM", "MI", "HYP"))
    block = text.split("test AUROC per label [95% CI]\n")[1].splitlines()
    assert block[0].split() == ["dropout", "NORM", "MI"]  # HYP: no figure for any row
    assert block[1].split() == ["0.1", "0.8500", "[0.7000,", "0.9500]", "0.6000"]
    assert "per label" not in format_by_value(rows, "dropout", "val_auroc_macro")
