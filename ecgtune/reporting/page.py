"""`ecgtune report`: one static HTML page (and its PNG figures, and trials.parquet) from what searches
left in MLflow. It reads only: nothing is retrained or re-scored."""

from __future__ import annotations

import html
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ecgtune.errors import EcgtuneError
from ecgtune.reporting import figures
from ecgtune.reporting.param_scales import LogScales, log_scales, with_inferred
from ecgtune.reporting.search_views import (best_so_far, param_importance, searched_params, short_name,
                                            trials_in_start_order)
from ecgtune.reporting.summary_tables import has_interval, no_interval_note, with_interval
from ecgtune.reporting.trials_table import combined, trial_rows, trials_frame, write_parquet
from ecgtune.spaces import measure_of
from ecgtune.tuning.tracking import runs_page, search_parents


@dataclass
class ExperimentSection:
    name: str
    experiment_id: str
    units: list[dict]  # per unit: its selected trial's figures, or why it has none
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    patients: list[dict] = field(default_factory=list)  # per (model, patient): scratch vs fine-tuned on test
    searches: list[dict] = field(default_factory=list)  # per unit: its search's figures, or why not
    scales: LogScales = field(default_factory=LogScales)


def _missing(value) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _fmt(value) -> str:
    if _missing(value):
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _registered(client, run_id: str) -> str:
    try:
        versions = client.search_model_versions(f"run_id='{run_id}'")
    except Exception:  # a store without a registry
        return ""
    from ecgtune.tuning.promotion import current_champion

    def champion_mark(version) -> str:  # a search of versions does not return their aliases
        champion = current_champion(client, version.name)
        return " (champion)" if champion is not None and champion.version == version.version else ""

    return ", ".join(f"{v.name} v{v.version}{champion_mark(v)}" for v in versions)


def _unit_rows(client, frame, parent_tags: dict[str, str]) -> list[dict]:
    rows = []
    for unit, trials in frame.groupby("unit", sort=True):
        chosen = trials[trials["selected"]]
        row = {"unit": unit, "trials": len(trials), "failed": int((trials["status"] == "FAILED").sum())}
        if len(chosen):
            best = chosen.iloc[-1]  # a resumed or repeated search selects again: the latest counts
            measure = measure_of(best["metric"] or "")
            records = None if _missing(best["test_records"]) else int(best["test_records"])
            row.update(selected=best["run_name"], run_id=best["run_id"], metric=best["metric"],
                       val=best["best_metric"], measure=measure, test=with_interval(best, measure, records),
                       interval=has_interval(best, measure),
                       epochs=None if _missing(best["epochs"]) else int(best["epochs"]),
                       registered=_registered(client, best["run_id"]))
        rows.append(row)
    # Units the search left out (too few examples to select fairly) are shown with the reason.
    for key, reason in sorted(parent_tags.items()):
        if key.endswith("/skipped"):
            rows.append({"unit": key[: -len("/skipped")], "trials": 0, "failed": 0, "skipped": reason})
    return rows


def _records_note(selected, measure: str) -> str:
    """Why some units' test figures have no interval: "no interval: N test records" (N: the most records
    among them, so that "N or fewer" holds for all)."""
    without = selected[[not has_interval(row, measure) for _, row in selected.iterrows()]]
    counts = [int(n) for n in without["test_records"].dropna()]
    return no_interval_note(max(counts) if counts else None)


def patient_rows(selected, measure: str) -> list[dict]:
    """Per model and patient with both a scratch and a fine-tuned unit: the two selected models' test
    figure (with its interval, or why it has none) and the difference, fine-tuned minus scratch."""
    per_patient = selected[selected["patient"].notna() & selected["stage"].isin(["scratch", "finetune"])]
    rows = []
    for (model, patient), group in per_patient.groupby(["model", "patient"], sort=True):
        by_stage = {stage: rows_.iloc[-1] for stage, rows_ in group.groupby("stage")}
        if set(by_stage) != {"scratch", "finetune"}:
            continue
        scratch, finetune = by_stage["scratch"], by_stage["finetune"]
        cells = {}
        for stage, best in by_stage.items():
            records = None if _missing(best["test_records"]) else int(best["test_records"])
            cells[stage] = with_interval(best, measure, records)
            cells[f"{stage}_interval"] = has_interval(best, measure)
        difference = finetune.get(f"test_{measure}", math.nan) - scratch.get(f"test_{measure}", math.nan)
        rows.append({"model": model, "patient": patient, **cells, "difference": difference})
    return rows


def unit_search(trials, scales: LogScales, out: Path, prefix: str) -> dict:
    """A unit's search at a glance: best-so-far vs trial index, parameter importance, parallel coordinates;
    where one cannot be drawn, why."""
    unit = trials["unit"].iloc[0]
    metric = next((m for m in trials["metric"] if isinstance(m, str) and m), "value")
    mode = next((m for m in trials["mode"] if isinstance(m, str) and m), "max")
    done = trials_in_start_order(trials)
    params = searched_params(done)
    scales = with_inferred(scales, done, params)
    view = {"unit": unit, "figures": [], "notes": [], "log": [short_name(c) for c in params if c in scales]}
    if figures.best_so_far(done["trial"], done["value"], best_so_far(done["value"], mode), metric,
                           f"best {metric} so far ({mode})", out / f"{prefix}-best.png"):
        view["figures"].append((f"{prefix}-best.png", f"Best so far vs trial index ({unit})"))
    else:
        view["notes"].append("best so far: no trial reported a validation value")
    importance = param_importance(trials, mode, set(scales.columns))
    if figures.importances({short_name(c): v for c, v in importance.shares.items()},
                           f"parameter importance ({importance.trials} trials)", out / f"{prefix}-importance.png"):
        view["figures"].append((f"{prefix}-importance.png", f"Parameter importance, fANOVA ({unit})"))
        view["importance"] = importance.shares
    else:
        view["notes"].append(f"importance: {importance.reason}")
    complete = done.dropna(subset=params) if params else done
    if figures.parallel_coordinates(complete, params, {c: short_name(c) for c in params}, set(scales.columns),
                                    metric, mode, "trials by parameter (red: the best)", out / f"{prefix}-parallel.png"):
        view["figures"].append((f"{prefix}-parallel.png", f"Parallel coordinates ({unit})"))
    else:
        why = "no parameter varied" if not params else f"{len(complete)} trial(s) with a validation value"
        view["notes"].append(f"parallel coordinates: {why}")
    return view


def experiment_section(client, name: str, out: Path) -> tuple[ExperimentSection, object] | None:
    found = client.get_experiment_by_name(name)
    rows = trial_rows(client, name, found.experiment_id) if found is not None else []
    if not rows:
        return None
    frame = trials_frame(rows)
    parents = search_parents(client, found.experiment_id)
    parent_tags = {}
    for parent in parents:
        parent_tags.update(parent.data.tags)
    section = ExperimentSection(name, found.experiment_id, _unit_rows(client, frame, parent_tags))
    latest_first = [p.info.run_id for p in sorted(parents, key=lambda p: -p.info.start_time)]
    space = next((s for s in frame["space"] if isinstance(s, str) and s), name)
    section.scales = log_scales(client, latest_first, space)
    slug = _slug(name)
    for unit, trials in frame.groupby("unit", sort=True):
        section.searches.append(unit_search(trials, section.scales, out, f"{slug}-{_slug(unit.split('/', 1)[-1])}"))
    selected = frame[frame["selected"]].drop_duplicates("unit", keep="last")
    metric = next((m for m in selected["metric"] if m), None)
    if metric:
        measure = f"test_{measure_of(metric)}"
        section.patients = patient_rows(selected, measure_of(metric))
        note = _records_note(selected, measure_of(metric))
        if figures.scratch_vs_finetuned(selected, measure, "scratch vs fine-tuned per patient",
                                        out / f"{slug}-patients.png", note):
            section.figures.append((f"{slug}-patients.png", "Scratch vs fine-tuned per patient"))
        if figures.unit_bars(selected, measure, "selected model per unit", out / f"{slug}-units.png", note):
            section.figures.append((f"{slug}-units.png", "Selected model per unit"))
        histories = {u: [(m.step, m.value) for m in client.get_metric_history(r, metric)]
                     for u, r in zip(selected["unit"], selected["run_id"])}
        if figures.learning_curves(histories, metric, f"{metric} of the selected trials",
                                   out / f"{slug}-curves.png"):
            section.figures.append((f"{slug}-curves.png", "Learning curves of the selected trials"))
        views = {view["unit"]: view for view in section.searches}
        for unit, run_id in zip(selected["unit"], selected["run_id"]):  # beside the unit's search
            target = out / f"{slug}-{_slug(unit.split('/', 1)[-1])}-confusion.png"
            copied = _copy_confusion_matrix(client, run_id, target)
            if copied:
                views[unit]["figures"].append((copied.name, f"Confusion matrix on test ({unit})"))
    return section, frame


def _copy_confusion_matrix(client, run_id: str, target: Path) -> Path | None:
    with tempfile.TemporaryDirectory() as d:
        try:
            local = client.download_artifacts(run_id, "confusion_matrix/test.png", d)
        except Exception:  # multi-label runs keep label counts instead; the seed protocols have no test
            return None
        shutil.copyfile(local, target)
    return target


def _figure(file_name: str, caption: str) -> str:
    return (f"<figure><img src='{html.escape(file_name)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _ci(any_interval: bool) -> str:
    """A test column's header promises an interval only where one of its cells has one."""
    return " [95 % CI]" if any_interval else ""


def _patients_table(section: ExperimentSection, measure: str) -> list[str]:
    rows = section.patients
    several = len({r["model"] for r in rows}) > 1
    parts = ["<h3>Scratch vs fine-tuned per patient</h3><table class='patients'><tr>"
             + ("<th>model</th>" if several else "")
             + f"<th>patient</th><th>scratch: test {html.escape(measure)}{_ci(any(r['scratch_interval'] for r in rows))}</th>"
             f"<th>fine-tuned: test {html.escape(measure)}{_ci(any(r['finetune_interval'] for r in rows))}</th>"
             "<th>difference (fine-tuned − scratch)</th></tr>"]
    for r in rows:
        difference = "–" if _missing(r["difference"]) else f"{r['difference']:+.4f}"
        parts.append("<tr>" + (f"<td>{html.escape(r['model'])}</td>" if several else "")
                     + f"<td>{html.escape(r['patient'])}</td><td>{html.escape(r['scratch'])}</td>"
                     f"<td>{html.escape(r['finetune'])}</td><td>{difference}</td></tr>")
    parts.append("</table>")
    return parts


def _searches(section: ExperimentSection) -> list[str]:
    logged = sorted({name for view in section.searches for name in view["log"]})
    parts = ["<h3>The search per unit</h3>",
             "<p class='note'>Per unit: each trial's best validation value in the order the trials started and "
             "the best so far; how much each searched parameter decided that value (Optuna's fANOVA over the "
             "unit's trials rebuilt as a study: a random forest splits the value's variance over the parameters "
             "using every trial, where Optuna's default PED-ANOVA needs about 20; seeded); the trials as parallel "
             f"coordinates; the selected model's confusion matrix on test. Log axes: "
             f"{html.escape(', '.join(logged) or 'none')}, as read from {html.escape(section.scales.source)}.</p>"]
    for view in section.searches:
        parts.append(f"<section class='unit'><h4>{html.escape(view['unit'])}</h4>")
        parts.extend(_figure(f, c) for f, c in view["figures"])
        if view.get("importance"):
            shares = ", ".join(f"{short_name(c)} {v:.2f}" for c, v in view["importance"].items())
            parts.append(f"<p class='note'>importance (fANOVA, share of the value's variance): {html.escape(shares)}</p>")
        for note in view["notes"]:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        parts.append("</section>")
    return parts


def render(sections: list[ExperimentSection], ui_url: str | None) -> str:
    def link(section, run_id, text):
        if not ui_url or not run_id:
            return html.escape(text)
        return (f'<a href="{html.escape(ui_url.rstrip("/"))}/#/experiments/{section.experiment_id}/runs/{run_id}'
                f'?workflowType=machine_learning">{html.escape(text)}</a>')

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>ecgtune report</title><style>",
             "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f0f0f0}"
             "img{max-width:640px;margin:8px 0}figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top}"
             "figcaption{font-size:12px;color:#444}.note{font-size:13px;color:#444}"
             "section.unit{border-top:1px solid #ddd;margin-top:6px}h4{margin:6px 0}",
             "</style></head><body><h1>ecgtune report</h1>",
             "<p>Per experiment: each unit's trial selected on validation and its one test evaluation, read "
             "from MLflow, with a bootstrap 95 % interval over test records where the test part has enough "
             "records to draw one (\"no interval: N test records\" where it has not); then each unit's search. "
             "Every trial is a row of <code>trials.parquet</code> beside this page.</p>"]
    for section in sections:
        heading = html.escape(section.name)
        if ui_url:
            heading = f"<a href='{html.escape(runs_page(ui_url, section.experiment_id))}'>{heading}</a>"
        any_interval = any(row.get("interval") for row in section.units)
        parts.append(f"<h2 id='{_slug(section.name)}'>{heading}</h2><table class='units'><tr><th>unit</th>"
                     f"<th>trials</th><th>selected trial</th><th>validation</th><th>test{_ci(any_interval)}</th>"
                     "<th>epochs</th><th>registered</th></tr>")
        for row in section.units:
            if "skipped" in row:
                parts.append(f"<tr><td>{html.escape(row['unit'])}</td><td>0</td><td colspan='5'>skipped: "
                             f"{html.escape(row['skipped'])}</td></tr>")
                continue
            if "selected" not in row:
                parts.append(f"<tr><td>{html.escape(row['unit'])}</td><td>{row['trials']}</td>"
                             "<td colspan='5'>none selected (unfinished or failed)</td></tr>")
                continue
            failed = f" ({row['failed']} failed)" if row["failed"] else ""
            parts.append(
                f"<tr><td>{html.escape(row['unit'])}</td><td>{row['trials']}{failed}</td>"
                f"<td>{link(section, row['run_id'], row['selected'])}</td>"
                f"<td>{html.escape(row['metric'] or '')} {_fmt(row['val'])}</td>"
                f"<td>test {html.escape(row['measure'])} {html.escape(row['test'])}</td>"
                f"<td>{_fmt(row['epochs'])}</td>"
                f"<td>{html.escape(row['registered'])}</td></tr>")
        parts.append("</table>")
        if section.patients:
            measure = next(r["measure"] for r in section.units if "measure" in r)
            parts.extend(_patients_table(section, measure))
        parts.extend(_figure(f, c) for f, c in section.figures)
        if section.searches:
            parts.extend(_searches(section))
    parts.append("</body></html>")
    return "\n".join(parts)


def ecgtune_experiments(client) -> list[str]:
    """Experiments holding an ecgtune search (a parent run tagged by it)."""
    names = []
    for experiment in client.search_experiments(max_results=1000):
        if search_parents(client, experiment.experiment_id, max_results=1):
            names.append(experiment.name)
    return sorted(names)


def write_report(client, experiments: list[str] | None, out: Path, ui_url: str | None = None) -> dict:
    """Write ``index.html``, its figures and ``trials.parquet`` into ``out``; returns counts."""
    names = experiments or ecgtune_experiments(client)
    if not names:
        raise EcgtuneError(f"no ecgtune search in the MLflow store {client.tracking_uri}: run `ecgtune search` first")
    out.mkdir(parents=True, exist_ok=True)
    sections, frames = [], []
    for name in names:
        made = experiment_section(client, name, out)
        if made is None:
            known = ", ".join(ecgtune_experiments(client)) or "none"
            raise EcgtuneError(f"experiment {name!r}: no trial runs in {client.tracking_uri} (experiments with "
                               f"searches: {known})")
        sections.append(made[0])
        frames.append(made[1])
    frame = combined(frames)
    write_parquet(frame, out / "trials.parquet")
    (out / "index.html").write_text(render(sections, ui_url))
    return {"experiments": len(sections), "units": sum(len(s.units) for s in sections), "trials": len(frame)}
