"""Every trial run of an experiment as one row, read back from MLflow: what pandas or DuckDB users query
(`trials.parquet`) and what the report's tables and figures are drawn from."""

from __future__ import annotations

import json
import math
import numbers
from datetime import datetime, timezone

import numpy as np

from ecgtune.tuning.tracking import (ERROR_TAG, LOCATION_TAGS, LOGGED_PREFIXES, MODEL_TAG, PARENT_TAG, SELECTED_TAG,
                                     TRIAL_TAG, UNIT_TAGS)

# Fixed columns first; then every searched or fixed training value (train.*, model.hparams.*), the last
# value of every logged metric (val_*, train_*), and the selected trials' test figures (test_*).
COLUMNS = ("experiment", "space", "unit", "stage", "patient", "model", "trial_id", "run_id", "run_name",
           "parent_run_id", "status", "selected", "metric", "mode", "best_metric", "epochs", "start", "end", "node",
           "gpu_ids", "error", "test_records")
# What trials report (each metric's last epoch), their best epoch's figures (best_val_*: what selection
# compares), and the test figures of selected ones.
METRIC_PREFIXES = LOGGED_PREFIXES + ("best_val_", "test_")


NONE_TEXTS = ("None", "none", "")  # how str() and the trial's location tags write "no value"


def typed_value(text: str | None):
    """A param or tag, which MLflow keeps as text, as the value it was: a bool ('True'), an int, a float,
    None ('None', 'none', ''), else the text."""
    if text is None or text in NONE_TEXTS:
        return None
    if text in ("True", "true", "False", "false"):
        return text in ("True", "true")
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _time(ms: int | None):
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def test_records(run) -> int | None:
    """How many records a selected run was tested on: the size of its test dataset input (its profile),
    what a bootstrap interval resamples. None for a run without one (not selected, no test part)."""
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    for item in inputs:
        if any(t.key == "mlflow.data.context" and t.value == "test" for t in item.tags):
            try:
                return int(json.loads(item.dataset.profile)["records"])
            except (TypeError, ValueError, KeyError):
                return None
    return None


def trial_row(experiment: str, run) -> dict:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    unit = {key: tags.get(tag) for key, tag in UNIT_TAGS.items()}  # space, unit, stage, patient
    row = {
        "experiment": experiment, **unit, "space": unit["space"] or experiment,
        "patient": None if unit["patient"] == "all" else unit["patient"],  # "all": a unit without patients
        "model": tags.get(MODEL_TAG), "trial_id": tags.get(TRIAL_TAG), "run_id": run.info.run_id,
        "run_name": run.info.run_name, "parent_run_id": tags.get(PARENT_TAG), "status": run.info.status,
        "selected": tags.get(SELECTED_TAG) == "true", "metric": params.get("metric"), "mode": params.get("mode"),
        "best_metric": metrics.get("best_metric"),
        # system/epoch: ecgtune's runs keep lr and epoch out of the model charts; "epoch": older runs
        "epochs": next((int(metrics[k]) for k in ("system/epoch", "epoch") if k in metrics), None),
        "start": _time(run.info.start_time), "end": _time(run.info.end_time),
        "node": tags.get(LOCATION_TAGS["hostname"]) or tags.get(LOCATION_TAGS["node_ip"]),
        # A trial on the CPU has its GPU ids written as "none": no value, not a text.
        "gpu_ids": None if tags.get(LOCATION_TAGS["gpu_ids"], "") in NONE_TEXTS else tags[LOCATION_TAGS["gpu_ids"]],
        "error": tags.get(ERROR_TAG), "test_records": test_records(run),
    }
    for key, value in sorted(params.items()):
        if key.startswith(("train.", "model.hparams.")):
            row[key] = typed_value(value)
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


def value_kind(value) -> type:
    """bool, int, float or the value's own type; numpy's scalars (a typed column read back) as Python's."""
    if isinstance(value, (bool, np.bool_)):
        return bool
    if isinstance(value, numbers.Integral):
        return int
    if isinstance(value, numbers.Real):
        return float
    return type(value)


def typed_column(values):
    """One column with one type: bool, int or float (nullable where a run lacks the value), or text where
    runs disagree on the kind (a parameter that is a number in one run and a name in another)."""
    import pandas as pd

    kinds = {value_kind(v) for v in values.dropna()}
    if not kinds:
        return pd.Series([None] * len(values), index=values.index, dtype=object)  # all empty: a null column
    has_gaps = values.isna().any()
    if kinds == {bool}:
        return values.astype("boolean" if has_gaps else bool)
    if kinds == {int}:
        return values.astype("Int64" if has_gaps else "int64")
    if kinds <= {int, float}:
        return values.astype(float)
    if len(kinds) > 1:
        return values.map(lambda v: None if v is None or v != v else str(v))
    return values


def _typed(frame):
    import pandas as pd

    for column in frame.columns:
        if column in ("start", "end"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        else:
            frame[column] = typed_column(frame[column])
    return frame


def trials_frame(rows: list[dict]):
    """The rows as a DataFrame with the fixed columns first (a column missing from a run is empty), each
    column of one type (typed_column)."""
    import pandas as pd

    frame = pd.DataFrame(rows, dtype=object)  # typed below, column by column: no int made a float by a gap
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    rest = [c for c in frame.columns if c not in COLUMNS]
    return _typed(frame[[*COLUMNS, *rest]].copy())


def combined(frames: list):
    """Trials frames of several experiments as one, typed again (a column of ints in one experiment and
    absent from another stays ints, with nulls; concatenating typed frames would make it floats)."""
    import pandas as pd

    return _typed(pd.concat([f.astype(object) for f in frames], ignore_index=True))


def write_parquet(frame, path) -> None:
    frame.to_parquet(path, engine="pyarrow", index=False)
