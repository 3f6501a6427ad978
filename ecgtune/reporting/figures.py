"""The report's PNG figures, drawn from the trials table (and, for learning curves, the selected runs'
per-epoch metric histories)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display where reports are made (CI, a cluster head)
    import matplotlib.pyplot as plt

    return plt


def _values_and_errors(rows, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows' ``measure`` and, as matplotlib's two-row yerr, the distances to its interval's ends
    (zero where no interval was drawn)."""
    values = np.asarray(rows.get(measure, np.nan), float)
    low = np.asarray(rows.get(f"{measure}_ci_low", values), float)
    high = np.asarray(rows.get(f"{measure}_ci_high", values), float)
    errors = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
    return values, np.nan_to_num(errors)


def _finish(fig, ax, path: Path, *, title: str, ylabel: str, xlabel: str | None = None) -> bool:
    """Label, title and save a figure, then close it: a report of many units keeps none open."""
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return True


def unit_bars(selected, measure: str, title: str, path: Path) -> bool:
    """One bar per unit: the selected trial's test figure, its bootstrap 95 % interval as the error bar
    (none where the test part was too small to draw one). False when no unit has a test figure."""
    if measure not in selected or selected[measure].isna().all():
        return False
    plt = _pyplot()
    rows = selected.sort_values("unit")
    values, errors = _values_and_errors(rows, measure)
    labels = [u.split("/", 1)[-1] for u in rows["unit"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(labels) + 2), 3.6))
    ax.bar(range(len(labels)), values, yerr=errors, capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels=labels, rotation=60, ha="right", fontsize=7)
    return _finish(fig, ax, path, title=title, ylabel=measure)


def scratch_vs_finetuned(selected, measure: str, title: str, path: Path) -> bool:
    """Per patient, the scratch and the fine-tuned model's test figure with their intervals: the
    per-patient study's question in one picture. False unless both stages have patients."""
    per_patient = selected[selected["patient"].notna()]
    stages = [s for s in ("scratch", "finetune") if s in set(per_patient["stage"])]
    if len(stages) < 2 or measure not in per_patient:
        return False
    plt = _pyplot()
    patients = sorted(set(per_patient["patient"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(patients) + 2), 3.6))
    for offset, stage, colour in ((-0.15, "scratch", "#dd8452"), (0.15, "finetune", "#4c72b0")):
        rows = per_patient[per_patient["stage"] == stage].set_index("patient").reindex(patients)
        values, errors = _values_and_errors(rows, measure)
        ax.errorbar(np.arange(len(patients)) + offset, values, yerr=errors, fmt="o", capsize=3, color=colour,
                    label=stage)
    ax.set_xticks(range(len(patients)), labels=patients, rotation=60, fontsize=7)
    ax.legend(fontsize=8)
    return _finish(fig, ax, path, title=title, ylabel=measure, xlabel="patient (record)")


def learning_curves(histories: dict[str, list[tuple[int, float]]], metric: str, title: str, path: Path) -> bool:
    """The selection metric per epoch of each selected trial (label: its unit), side by side."""
    if not any(histories.values()):
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, points in sorted(histories.items()):
        if points:
            steps, values = zip(*sorted(points))
            ax.plot(steps, values, marker=".", label=label.split("/", 1)[-1])
    if len(histories) <= 12:
        ax.legend(fontsize=6)
    return _finish(fig, ax, path, title=title, ylabel=metric, xlabel="epoch")
