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
from ecgtune.reporting.summary_tables import with_interval
from ecgtune.reporting.trials_table import trial_rows, trials_frame, write_parquet
from ecgtune.spaces import measure_of
from ecgtune.tuning.tracking import runs_page, search_parents


@dataclass
class ExperimentSection:
    name: str
    experiment_id: str
    units: list[dict]  # per unit: its selected trial's figures, or why it has none
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
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
            row.update(selected=best["run_name"], run_id=best["run_id"], metric=best["metric"],
                       val=best["best_metric"], measure=measure, test=with_interval(best, measure),
                       epochs=None if math.isnan(best["epochs"]) else int(best["epochs"]),
                       registered=_registered(client, best["run_id"]))
        rows.append(row)
    # Units the search left out (too few examples to select fairly) are shown with the reason.
    for key, reason in sorted(parent_tags.items()):
        if key.endswith("/skipped"):
            rows.append({"unit": key[: -len("/skipped")], "trials": 0, "failed": 0, "skipped": reason})
    return rows


def experiment_section(client, name: str, out: Path) -> tuple[ExperimentSection, object] | None:
    found = client.get_experiment_by_name(name)
    rows = trial_rows(client, name, found.experiment_id) if found is not None else []
    if not rows:
        return None
    frame = trials_frame(rows)
    parent_tags = {}
    for parent in search_parents(client, found.experiment_id):
        parent_tags.update(parent.data.tags)
    section = ExperimentSection(name, found.experiment_id, _unit_rows(client, frame, parent_tags))
    selected = frame[frame["selected"]].drop_duplicates("unit", keep="last")
    metric = next((m for m in selected["metric"] if m), None)
    if metric:
        measure = f"test_{measure_of(metric)}"
        slug = _slug(name)
        if figures.scratch_vs_finetuned(selected, measure, "scratch vs fine-tuned per patient (test, 95 % CI)",
                                        out / f"{slug}-patients.png"):
            section.figures.append((f"{slug}-patients.png", "Scratch vs fine-tuned per patient"))
        if figures.unit_bars(selected, measure, "selected model per unit (test, 95 % CI)",
                             out / f"{slug}-units.png"):
            section.figures.append((f"{slug}-units.png", "Selected model per unit"))
        histories = {u: [(m.step, m.value) for m in client.get_metric_history(r, metric)]
                     for u, r in zip(selected["unit"], selected["run_id"])}
        if figures.learning_curves(histories, metric, f"{metric} of the selected trials",
                                   out / f"{slug}-curves.png"):
            section.figures.append((f"{slug}-curves.png", "Learning curves of the selected trials"))
        for unit, run_id in zip(selected["unit"], selected["run_id"]):
            target = out / f"{slug}-{_slug(unit.split('/', 1)[-1])}-confusion.png"
            copied = _copy_confusion_matrix(client, run_id, target)
            if copied:
                section.figures.append((copied.name, f"Confusion matrix on test: {unit}"))
    return section, frame


def _copy_confusion_matrix(client, run_id: str, target: Path) -> Path | None:
    with tempfile.TemporaryDirectory() as d:
        try:
            local = client.download_artifacts(run_id, "confusion_matrix/test.png", d)
        except Exception:  # multi-label runs keep label counts instead; the seed protocols have no test
            return None
        shutil.copyfile(local, target)
    return target


def render(sections: list[ExperimentSection], ui_url: str | None) -> str:
    def link(section, run_id, text):
        if not ui_url or not run_id:
            return html.escape(text)
        return (f'<a href="{html.escape(ui_url.rstrip("/"))}/#/experiments/{section.experiment_id}/runs/{run_id}'
                f'?workflowType=machine_learning">{html.escape(text)}</a>')

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>ecgtune report</title><style>",
             "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f0f0f0}"
             "img{max-width:560px;margin:8px 0}figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top}"
             "figcaption{font-size:12px;color:#444}",
             "</style></head><body><h1>ecgtune report</h1>",
             "<p>Per experiment: each unit's trial selected on validation and its one test evaluation "
             "(bootstrap 95 % interval over records where the test part allowed one), read from MLflow. "
             "Every trial is a row of <code>trials.parquet</code> beside this page.</p>"]
    for section in sections:
        heading = html.escape(section.name)
        if ui_url:
            heading = f"<a href='{html.escape(runs_page(ui_url, section.experiment_id))}'>{heading}</a>"
        parts.append(f"<h2 id='{_slug(section.name)}'>{heading}</h2><table><tr><th>unit</th>"
                     "<th>trials</th><th>selected trial</th><th>validation</th><th>test [95 % CI]</th><th>epochs</th>"
                     "<th>registered</th></tr>")
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
                f"<td>test {html.escape(row['measure'])} {row['test']}</td>"
                f"<td>{_fmt(row['epochs'])}</td>"
                f"<td>{html.escape(row['registered'])}</td></tr>")
        parts.append("</table>")
        for file_name, caption in section.figures:
            parts.append(f"<figure><img src='{html.escape(file_name)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
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
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    write_parquet(frame, out / "trials.parquet")
    (out / "index.html").write_text(render(sections, ui_url))
    return {"experiments": len(sections), "units": sum(len(s.units) for s in sections), "trials": len(frame)}
