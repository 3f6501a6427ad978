"""The plain-text report: per-class figures as the task has them (multi-class or multi-label)."""

from ecgtune.reporting.summary_tables import format_summary
from ecgtune.tuning.finalize import UnitSummary


def _summary(test: dict, stage="pretrain") -> UnitSummary:
    return UnitSummary(space="s", stage=stage, model="ribeiro_resnet", patient=None, config={"lr": 1e-3, "batch_size": 64},
                       val_metric=0.8, test=test, run_id="r", registered_model="m", version="1", champion=True)


def test_multi_label_units_show_auroc_and_the_threshold_figures_per_label():
    test = {"test_auroc_macro": 0.81, "test_f1_macro": 0.6}
    for i, label in enumerate(("NORM", "MI", "STTC")):
        test |= {f"test_auroc_{label}": 0.9 - i / 10, f"test_f1_{label}": 0.5, f"test_sensitivity_{label}": 0.7,
                 f"test_specificity_{label}": 0.65}
    text = format_summary([_summary(test)], "val_auroc_macro")
    assert "AUROC / F1 / sensitivity / specificity" in text
    assert "0.8000/0.5000/0.7000/0.6500" in text  # MI's
    assert "0.8100" in text  # test auroc_macro, the selection measure on test


def test_multi_class_units_show_f1_recall_and_precision_per_class():
    test = {"test_f1_macro": 0.6, "test_balanced_accuracy": 0.7}
    for label in ("N", "S", "V"):
        test |= {f"test_f1_{label}": 0.5, f"test_recall_{label}": 0.4, f"test_precision_{label}": 0.3}
    text = format_summary([_summary(test, "scratch")], "val_balanced_accuracy")
    assert "F1 / sensitivity (recall) / PPV (precision)" in text and "0.5000/0.4000/0.3000" in text


def test_a_bootstrap_interval_is_printed_beside_its_figure_and_is_not_a_class():
    test = {"test_auroc_macro": 0.81, "test_auroc_macro_ci_low": 0.7, "test_auroc_macro_ci_high": 0.9,
            "test_f1_macro": 0.6, "test_f1_macro_ci_low": 0.5, "test_f1_macro_ci_high": 0.7}
    text = format_summary([_summary(test)], "val_auroc_macro")
    assert "0.8100 [0.7000, 0.9000]" in text and "[95% CI]" in text
    assert "per class" not in text  # no labels: the interval keys are not classes


def test_the_best_config_says_how_many_blocks_were_frozen():
    summary = _summary({"test_auroc": 0.8}, "finetune")
    summary.config["freeze_blocks"] = 3
    assert "freeze_blocks=3" in format_summary([summary], "val_auroc")
    assert "freeze_blocks" not in format_summary([_summary({"test_auroc": 0.8}, "scratch")], "val_auroc")
