"""Every trial run of an experiment as one row, read back from MLflow: what pandas or DuckDB users query
(`trials.parquet`) and what the report's tables and figures are drawn from."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from ecgtune.tuning.tracking import (ERROR_TAG, LOCATION_TAGS, LOGGED_PREFIXES, MODEL_TAG, PARENT_TAG, SELECTED_TAG,
                                     TRIAL_TAG, UNIT_TAGS)

# Fixed columns first; then every searched or fixed training value (train.*, model.hparams.*), the last
# value of every logged metric (val_*, train_*), and the selected trials' test figures (test_*).
COLUMNS = ("experiment", "space", "unit", "stage", "patient", "model", "trial_id", "run_id", "run_name",
           "parent_run_id", "status", "selected", "metric", "best_metric", "epochs", "start", "end", "node",
           "gpu_ids", "error")
METRIC_PREFIXES = LOGGED_PREFIXES + ("test_",)  # what trials report, and the test figures of selected ones


def _number_or_text(text: str):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _time(ms: int | None):
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def trial_row(experiment: str, run) -> dict:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    unit = {key: tags.get(tag) for key, tag in UNIT_TAGS.items()}  # space, unit, stage, patient
    row = {
        "experiment": experiment, **unit, "space": unit["space"] or experiment,
        "patient": None if unit["patient"] == "all" else unit["patient"],  # "all": a unit without patients
        "model": tags.get(MODEL_TAG), "trial_id": tags.get(TRIAL_TAG), "run_id": run.info.run_id,
        "run_name": run.info.run_name, "parent_run_id": tags.get(PARENT_TAG), "status": run.info.status,
        "selected": tags.get(SELECTED_TAG) == "true", "metric": params.get("metric"),
        "best_metric": metrics.get("best_metric"),
        # system/epoch: ecgtune's runs keep lr and epoch out of the model charts; "epoch": older runs
        "epochs": next((int(metrics[k]) for k in ("system/epoch", "epoch") if k in metrics), None),
        "start": _time(run.info.start_time), "end": _time(run.info.end_time),
        "node": tags.get(LOCATION_TAGS["hostname"]) or tags.get(LOCATION_TAGS["node_ip"]),
        "gpu_ids": tags.get(LOCATION_TAGS["gpu_ids"]), "error": tags.get(ERROR_TAG),
    }
    for key, value in sorted(params.items()):
        if key.startswith(("train.", "model.hparams.")):
            row[key] = _number_or_text(value)
    for key, value in sorted(metrics.items()):
        if key.startswith(METRIC_PREFIXES) and math.isfinite(value):
            row[key] = value
    return row


def trial_rows(client, experiment: str, experiment_id: str) -> list[dict]:
    """One row per trial run of ``experiment`` (parent runs left out), oldest first."""
    rows, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        rows.extend(trial_row(experiment, r) for r in page if TRIAL_TAG in r.data.tags)
        token = page.token
        if not token:
            return rows


def trials_frame(rows: list[dict]):
    """The rows as a DataFrame with the fixed columns first (a column missing from a run is empty)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    rest = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *rest]]


def write_parquet(frame, path) -> None:
    # Parameters hold numbers in one run and text ("none") in another: a column of mixed kinds is
    # written as text so pyarrow takes it, numbers stay numbers elsewhere.
    frame = frame.copy()
    for column in frame.columns:
        kinds = {type(v) for v in frame[column].dropna()}
        if len(kinds - {int, float}) and len(kinds) > 1:
            frame[column] = frame[column].map(lambda v: None if v is None or v != v else str(v))
    frame.to_parquet(path, engine="pyarrow", index=False)
