"""Plain-text tables of a finished search: per patient, the selected configuration and its figures."""

from __future__ import annotations

import math


def _fmt(value) -> str:
    return "   -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _config(cfg: dict) -> str:
    return f"lr={cfg.get('lr'):g} batch={cfg.get('batch_size')} weighted={cfg.get('weighted_sampling')}"


def _test_ba(summary) -> float:
    return summary.test.get("test_balanced_accuracy", float("nan"))


def _mean(values) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def format_summary(summaries, metric: str) -> str:
    """One table per stage; when scratch and finetune both ran per patient, also the two side by side."""
    lines = []
    stages = list(dict.fromkeys(s.stage for s in summaries))
    for stage in stages:
        rows = [s for s in summaries if s.stage == stage]
        lines += [f"\n{stage}", f"{'patient':>8}  {metric:>24}  {'test bal. acc.':>14}  best config"]
        for s in rows:
            lines.append(f"{s.patient or 'all':>8}  {_fmt(s.val_metric):>24}  {_fmt(_test_ba(s)):>14}  {_config(s.config)}")
        if len(rows) > 1:
            lines.append(f"{'mean':>8}  {_fmt(_mean(r.val_metric for r in rows)):>24}  {_fmt(_mean(_test_ba(r) for r in rows)):>14}")
    scratch = {s.patient: s for s in summaries if s.stage == "scratch"}
    finetune = {s.patient: s for s in summaries if s.stage == "finetune"}
    both = [p for p in scratch if p in finetune]
    if both:
        lines += ["\ntest balanced accuracy, scratch vs fine-tuned", f"{'patient':>8}  {'scratch':>8}  {'finetune':>8}"]
        for p in both:
            lines.append(f"{p:>8}  {_fmt(_test_ba(scratch[p])):>8}  {_fmt(_test_ba(finetune[p])):>8}")
        lines.append(
            f"{'mean':>8}  {_fmt(_mean(_test_ba(scratch[p]) for p in both)):>8}  "
            f"{_fmt(_mean(_test_ba(finetune[p]) for p in both)):>8}"
        )
    return "\n".join(lines)
