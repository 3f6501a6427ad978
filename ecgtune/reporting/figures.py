"""The report's PNG figures, drawn from the trials table (and, for learning curves, the selected runs'
per-epoch metric histories)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgtune.reporting.trials_table import value_kind


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display where reports are made (CI, a cluster head)
    import matplotlib.pyplot as plt

    return plt


def _values_and_intervals(rows, measure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows' ``measure``, which rows have a bootstrap interval, and, as matplotlib's two-row yerr for
    those rows, the distances to its ends."""
    values = np.asarray(rows.get(measure, np.nan), float) * np.ones(len(rows))
    low = np.asarray(rows.get(f"{measure}_ci_low", np.nan), float) * np.ones(len(rows))
    high = np.asarray(rows.get(f"{measure}_ci_high", np.nan), float) * np.ones(len(rows))
    has = np.isfinite(low) & np.isfinite(high) & np.isfinite(values)
    errors = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])[:, has]
    return values, has, errors


def interval_title(title: str, has, no_interval_note: str) -> str:
    """A test figure's title: "95 % CI" only where an interval is drawn (``has``: per point); why not
    elsewhere."""
    has = np.asarray(has, bool)
    if has.size and has.all():
        return f"{title} (test)\nbars: bootstrap 95 % CI"
    if has.any():
        return f"{title} (test)\nbars: bootstrap 95 % CI where drawn; elsewhere {no_interval_note}"
    return f"{title} (test)\n{no_interval_note}"


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


def unit_bars(selected, measure: str, title: str, path: Path, no_interval_note: str = "no interval") -> bool:
    """One bar per unit: the selected trial's test figure, with its bootstrap 95 % interval as an error
    bar where the test part allowed one (no bar, no cap, where it did not). False when no unit has a
    test figure."""
    if measure not in selected or selected[measure].isna().all():
        return False
    plt = _pyplot()
    rows = selected.sort_values("unit")
    values, has, errors = _values_and_intervals(rows, measure)
    labels = [u.split("/", 1)[-1] for u in rows["unit"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(labels) + 2), 3.6))
    positions = np.arange(len(labels))
    ax.bar(positions, values, color="#4c72b0")
    if has.any():
        ax.errorbar(positions[has], values[has], yerr=errors, fmt="none", ecolor="black", capsize=3)
    ax.set_xticks(positions, labels=labels, rotation=60, ha="right", fontsize=7)
    return _finish(fig, ax, path, title=interval_title(title, has[np.isfinite(values)], no_interval_note),
                   ylabel=measure)


def scratch_vs_finetuned(selected, measure: str, title: str, path: Path, no_interval_note: str = "no interval") -> bool:
    """Per patient, the scratch and the fine-tuned model's test figure, with their intervals where drawn:
    the per-patient study's question in one picture. False unless both stages have patients."""
    per_patient = selected[selected["patient"].notna()]
    stages = [s for s in ("scratch", "finetune") if s in set(per_patient["stage"])]
    if len(stages) < 2 or measure not in per_patient:
        return False
    plt = _pyplot()
    patients = sorted(set(per_patient["patient"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(patients) + 2), 3.6))
    drawn = []
    for offset, stage, colour in ((-0.15, "scratch", "#dd8452"), (0.15, "finetune", "#4c72b0")):
        rows = per_patient[per_patient["stage"] == stage].drop_duplicates("patient", keep="last")
        rows = rows.set_index("patient").reindex(patients)
        values, has, errors = _values_and_intervals(rows, measure)
        positions = np.arange(len(patients)) + offset
        ax.plot(positions, values, "o", color=colour, label=stage)
        if has.any():
            ax.errorbar(positions[has], values[has], yerr=errors, fmt="none", ecolor=colour, capsize=3)
        drawn.extend(has[np.isfinite(values)])
    ax.set_xticks(range(len(patients)), labels=patients, rotation=60, fontsize=7)
    ax.set_xlim(-0.6, len(patients) - 0.4)
    ax.legend(fontsize=8)
    return _finish(fig, ax, path, title=interval_title(title, drawn, no_interval_note), ylabel=measure,
                   xlabel="patient (record)")


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


def best_so_far(trial_index, values, best, metric: str, title: str, path: Path) -> bool:
    """Each trial's best validation value (dots) in the order the trials started, and the best of the
    trials so far (the step line): how fast the search found its winner, and whether more trials helped."""
    if len(values) == 0:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    ax.plot(trial_index, values, "o", color="#9a9a9a", markersize=4, label="trial")
    ax.step(trial_index, best, where="post", color="#c44e52", label="best so far")
    ax.legend(fontsize=7)
    return _finish(fig, ax, path, title=title, ylabel=metric, xlabel="trial (start order)")


def importances(shares: dict[str, float], title: str, path: Path) -> bool:
    """Horizontal bars: each searched parameter's share of the validation value's variance, largest on top."""
    if not shares:
        return False
    plt = _pyplot()
    names = list(shares)[::-1]
    fig, ax = plt.subplots(figsize=(4.2, 0.35 * len(names) + 1.4))
    ax.barh(range(len(names)), [shares[n] for n in names], color="#55a868")
    ax.set_yticks(range(len(names)), labels=names, fontsize=8)
    ax.set_xlim(0, 1)
    return _finish(fig, ax, path, title=title, ylabel="", xlabel="share of variance (fANOVA)")


def _axis(values: list, log: bool) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """One parallel-coordinates axis: each value's height in [0, 1] and the (height, label) ticks. Numbers
    keep their order (log10 where ``log``), anything else is a category in sorted order."""
    if not {value_kind(v) for v in values} <= {int, float}:
        categories = sorted(set(values), key=repr)
        step = 1 / max(len(categories) - 1, 1)
        heights = np.array([categories.index(v) * step for v in values])
        return heights, [(i * step, str(c)) for i, c in enumerate(categories)]
    raw = np.asarray(values, float)
    scaled = np.log10(raw) if log else raw
    low, high = float(scaled.min()), float(scaled.max())
    span = high - low or 1.0
    heights = (scaled - low) / span
    distinct = sorted(set(raw.tolist()))
    ticks = distinct if len(distinct) <= 6 else [10 ** t if log else t for t in np.linspace(low, high, 5)]
    return heights, [(((np.log10(t) if log else t) - low) / span, f"{t:.3g}") for t in ticks]


def parallel_coordinates(frame, params: list[str], labels: dict[str, str], log_params, metric: str, mode: str,
                         title: str, path: Path) -> bool:
    """One line per trial through an axis per searched parameter and a last axis for its validation value;
    log-scaled parameters on log axes (marked "log"); the line's colour is its value (brighter: better), the
    best trial's line thick."""
    if not params or len(frame) < 2:
        return False
    plt = _pyplot()
    columns = [*params, "value"]
    heights, ticks = {}, {}
    for c in columns:
        heights[c], ticks[c] = _axis(list(frame[c]), c in log_params)
    values = frame["value"].to_numpy(float)
    goodness = values if mode == "max" else -values
    order = np.argsort(goodness)  # the best drawn last, on top
    span = np.ptp(goodness) or 1.0
    colours = plt.get_cmap("viridis")((goodness - goodness.min()) / span)
    fig, ax = plt.subplots(figsize=(1.25 * len(columns) + 1.0, 3.2))
    xs = np.arange(len(columns))
    for i in order:
        best = i == order[-1]
        ax.plot(xs, [heights[c][i] for c in columns], color="#c44e52" if best else colours[i],
                linewidth=2.4 if best else 1.0, alpha=1.0 if best else 0.75, zorder=3 if best else 2)
    for x, c in zip(xs, columns):
        ax.axvline(x, color="#555555", linewidth=0.8, zorder=1)
        for height, text in ticks[c]:
            ax.text(x - 0.04, height, text, ha="right", va="center", fontsize=7, zorder=4,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.8})
    names = [labels.get(c, c) + (" (log)" if c in log_params else "") for c in params] + [metric]
    ax.set_xticks(xs, labels=names, fontsize=7.5)
    ax.set_yticks([])
    ax.set_xlim(-0.5, len(columns) - 0.6)
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    return _finish(fig, ax, path, title=title, ylabel="")
