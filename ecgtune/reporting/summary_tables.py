"""Plain-text tables of a finished search: per unit the selected configuration and its test figures."""

from __future__ import annotations

import math

from ecgtune.spaces import measure_of


def _fmt(value) -> str:
    return "   -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _config(cfg: dict) -> str:
    text = f"lr={cfg.get('lr'):g} batch={cfg.get('batch_size')} weighted={cfg.get('weighted_sampling')}"
    if cfg.get("smote"):
        text += " smote"
    if cfg.get("freeze_features"):
        text += " frozen-features"
    if cfg.get("freeze_blocks"):
        text += f" freeze_blocks={cfg['freeze_blocks']}"
    if cfg.get("augment"):
        text += f" augment={cfg['augment']:g}"
    if cfg.get("class_weights") not in (None, "none"):
        text += f" class_weights={cfg['class_weights']}"
    # The model's own hyperparameters, where the search chose them (a size, say).
    text += "".join(f" {k[len('model.'):]}={v}" for k, v in cfg.items() if k.startswith("model."))
    return text


def _test(summary, name: str) -> float:
    return summary.test.get(f"test_{name}", float("nan"))


def has_interval(test, name: str) -> bool:
    low, high = test.get(f"test_{name}_ci_low"), test.get(f"test_{name}_ci_high")
    return low is not None and high is not None and not (math.isnan(low) or math.isnan(high))


def no_interval_note(n_records: int | None) -> str:
    """Why a test figure has no bootstrap interval: its test part has too few records to resample."""
    if n_records is None:
        return "no interval"
    return f"no interval: {n_records} test record{'' if n_records == 1 else 's'}"


def with_interval(test, name: str, n_records: int | None = None) -> str:
    """The test figure ``test_<name>`` of a test-metrics dict (or row) and, where one was drawn, its
    bootstrap 95 % interval: "0.8123 [0.7100, 0.9000]"; where none was and ``n_records`` (the test part's
    records) is known, why: "0.8123 (no interval: 1 test record)"."""
    value = test.get(f"test_{name}", float("nan"))
    if has_interval(test, name):
        return f"{_fmt(value)} [{test[f'test_{name}_ci_low']:.4f}, {test[f'test_{name}_ci_high']:.4f}]"
    if n_records is None or value is None or math.isnan(value):
        return _fmt(value)
    return f"{_fmt(value)} ({no_interval_note(n_records)})"


def _ci_header(tests, name: str) -> str:
    """The " [95% CI]" of a column header of test figures, where at least one has an interval."""
    return " [95% CI]" if any(has_interval(t, name) for t in tests) else ""


def _mean(values) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def class_names(summary) -> list[str]:
    """The classes of a unit's per-class test figures, in label order."""
    return [k[len("test_f1_"):] for k in summary.test
            if k.startswith("test_f1_") and not k.startswith("test_f1_macro")]


def format_summary(summaries, metric: str) -> str:
    """One table per stage (the selection metric on validation and on test, test macro F1); per-class
    figures for multi-class tasks; scratch vs fine-tuned per patient."""
    lines = []
    measure = measure_of(metric)
    for stage in dict.fromkeys(s.stage for s in summaries):
        rows = [s for s in summaries if s.stage == stage and not s.skipped]
        skipped = [s for s in summaries if s.stage == stage and s.skipped]
        lines += [
            f"\n{stage}",
            f"{'model':>14}  {'patient':>8}  {metric:>22}  "
            f"{'test ' + measure + _ci_header([s.test for s in rows], measure):>30}  {'test macro F1':>13}  "
            "best config",
        ]
        for s in rows:
            lines.append(
                f"{s.model:>14}  {s.patient or 'all':>8}  {_fmt(s.val_metric):>22}  "
                f"{with_interval(s.test, measure):>30}  {_fmt(_test(s, 'f1_macro')):>13}  {_config(s.config)}"
            )
        for s in skipped:
            lines.append(f"{s.model:>14}  {s.patient or 'all':>8}  skipped: {s.skipped}")
        if len(rows) > 1:
            lines.append(
                f"{'mean':>14}  {'':>8}  {_fmt(_mean(r.val_metric for r in rows)):>22}  "
                f"{_fmt(_mean(_test(r, measure) for r in rows)):>30}  "
                f"{_fmt(_mean(_test(r, 'f1_macro') for r in rows)):>13}"
            )
        if rows and not rows[0].test:
            lines.append("(no test part in this split protocol: the figures above are on validation only)")
    multi_class = [s for s in summaries if len(class_names(s)) > 2]
    if multi_class:
        names = class_names(multi_class[0])
        # Multi-label units report each label's AUROC and its figures at the validation threshold.
        multi_label = f"test_auroc_{names[0]}" in multi_class[0].test
        measures = ("auroc", "f1", "sensitivity", "specificity") if multi_label else ("f1", "recall", "precision")
        heading = ("AUROC / F1 / sensitivity / specificity (at the thresholds chosen on validation)" if multi_label
                   else "F1 / sensitivity (recall) / PPV (precision)")
        width = 7 * len(measures) - 1
        lines += [f"\nper class on test: {heading}",
                  f"{'unit':>24}  " + "  ".join(f"{n:^{width}}" for n in names)]
        for s in multi_class:
            cells = ["/".join(_fmt(_test(s, f"{m}_{n}")) for m in measures) for n in names]
            lines.append(f"{s.stage + '-' + s.model:>24}  " + "  ".join(f"{c:^{width}}" for c in cells))
    scratch = {(s.model, s.patient): s for s in summaries if s.stage == "scratch" and s.patient}
    finetune = {(s.model, s.patient): s for s in summaries if s.stage == "finetune" and s.patient}
    both = [k for k in scratch if k in finetune]
    if both:
        lines += ["\ntest balanced accuracy, scratch vs fine-tuned",
                  f"{'model':>14}  {'patient':>8}  {'scratch':>8}  {'finetune':>8}"]
        for k in both:
            lines.append(f"{k[0]:>14}  {k[1]:>8}  {_fmt(_test(scratch[k], 'balanced_accuracy')):>8}  "
                         f"{_fmt(_test(finetune[k], 'balanced_accuracy')):>8}")
        lines.append(
            f"{'mean':>14}  {'':>8}  {_fmt(_mean(_test(scratch[k], 'balanced_accuracy') for k in both)):>8}  "
            f"{_fmt(_mean(_test(finetune[k], 'balanced_accuracy') for k in both)):>8}"
        )
    return "\n".join(lines)


def format_by_value(rows: list, param: str, metric: str, label_names=()) -> str:
    """`ecgtune by-value`'s table (rows of ecgtune.tuning.by_value.ValueRow); for tasks that report a per-label AUROC (multi-label), a second one of those."""
    measure = measure_of(metric)
    tests = [row.test for row in rows]
    head = (f"{param:>14}  {'trials':>6}  {metric:>16}  {'test ' + measure + _ci_header(tests, measure):>32}  "
            f"{'test macro F1' + _ci_header(tests, 'f1_macro'):>32}  run")
    lines = [head]
    for row in rows:
        lines.append(f"{row.value:>14}  {row.trials:>6}  {row.val_metric:>16.4f}  "
                     f"{with_interval(row.test, measure):>32}  {with_interval(row.test, 'f1_macro'):>32}  "
                     f"{row.run_id}{' (champion)' if row.selected else ''}")
    labels = [n for n in label_names if any(f"test_auroc_{n}" in row.test for row in rows)]
    if labels:
        header = "test AUROC per label" + (" [95% CI]" if any(_ci_header(tests, f"auroc_{n}") for n in labels) else "")
        lines += ["", header, f"{param:>14}  " + "  ".join(f"{n:>24}" for n in labels)]
        for row in rows:
            lines.append(f"{row.value:>14}  " + "  ".join(f"{with_interval(row.test, f'auroc_{n}'):>24}" for n in labels))
    return "\n".join(lines)
