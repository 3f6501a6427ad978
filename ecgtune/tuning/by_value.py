"""Test figures per value of one hyperparameter, after a search: for each value, the trial best on
validation among those that had it, scored once on test with bootstrap intervals.

A paper's "per k" column (how many blocks a transferred network keeps frozen, say) is such a table. It
describes; it does not choose: the unit's champion is still the trial selection on validation picked,
and a value is never preferred here for its test figure.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass

from ecgtune.errors import EcgtuneError
from ecgtune.tuning import tracking


@dataclass
class ValueRow:
    value: str
    trials: int  # finished trials that had this value
    run_id: str  # the best of them on validation
    val_metric: float
    selected: bool  # the unit's champion
    test: dict  # test_* figures, with _ci_low/_ci_high where drawn


def best_run_per_value(runs, param: str, mode: str) -> dict[str, tuple[object, int]]:
    """Per value of the run parameter ``param``: (the finished run with the best ``best_metric``, how many
    finished runs had the value), numbers in increasing order, then the other values by name."""
    groups: dict[str, list] = {}
    for run in runs:
        if ran_its_course(run) and param in run.data.params:
            value = run.data.metrics.get("best_metric", float("nan"))
            if not math.isnan(value):
                groups.setdefault(run.data.params[param], []).append(run)
    pick = max if mode == "max" else min
    return {value: (pick(groups[value], key=lambda r: r.data.metrics["best_metric"]), len(groups[value]))
            for value in sorted(groups, key=_value_order)}


def ran_its_course(run) -> bool:
    """Finished, or stopped by its unit's scheduler (KILLED, tagged ecgtune.stopped_by): a trial selection
    weighed as well."""
    return run.info.status == "FINISHED" or (run.info.status == "KILLED" and bool(run.data.tags.get(tracking.STOPPED_TAG)))


def _value_order(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def searched_space(space, smoke_test: bool, mlflow_uri: str | None = None):
    """``space`` as its searches ran (its smoke-test version where ``smoke_test`` asks for it, or where only
    smoke-test searches of it exist), and a note to print in that second case."""
    from ecgtune.spaces import shape_search
    from ecgtune.tuning.space_experiment import SMOKE_SUFFIX, experiment_of

    experiment, note = experiment_of(tracking.client(tracking.tracking_uri(mlflow_uri)), space.name, smoke_test)
    (shaped,) = shape_search([space], smoke_test=experiment.endswith(SMOKE_SUFFIX))
    return shaped, note


def last_search(mlf, experiment_name: str):
    """The latest finished parent run (one search invocation) of a space's experiment."""
    experiment = mlf.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise EcgtuneError(f"no MLflow experiment {experiment_name!r}: run `ecgtune search` for this space first")
    parents = mlf.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    parents = [r for r in parents if tracking.PARENT_TAG not in r.data.tags]
    if not parents:
        raise EcgtuneError(f"experiment {experiment_name!r} has no finished search")
    return experiment.experiment_id, parents[0]


def trial_runs_of(mlf, experiment_id: str, parent_run_id: str, stage: str):
    return mlf.search_runs(
        [experiment_id],
        filter_string=(f"tags.`{tracking.PARENT_TAG}` = '{parent_run_id}' "
                       f"and tags.`{tracking.UNIT_TAGS['stage']}` = '{stage}'"),
        max_results=5000,
    )


def evaluate_by_value(space, stage: str, param: str, *, mlflow_uri: str | None = None,
                      data_dir: str | None = None) -> tuple[list[ValueRow], tuple[str, ...]]:
    """The rows of the table for ``param`` (a trial parameter as MLflow shows it; ``train.`` or
    ``model.hparams.`` may be left out) in ``stage`` of the last finished search of ``space``, and the
    task's label names. Only units without patients: a per-patient stage has one table per patient,
    which the search summary already gives."""
    from ray.tune import Checkpoint

    from ecgtune.tuning.prepared import prepare_data
    from ecgtune.tuning.selection import evaluate_in_search

    if stage not in [s.stage for s in space.stages]:
        raise EcgtuneError(f"{space.path}: no stage {stage!r} (stages: {[s.stage for s in space.stages]})")
    mlf = tracking.client(tracking.tracking_uri(mlflow_uri))
    experiment_id, parent = last_search(mlf, space.experiment_name)
    runs = trial_runs_of(mlf, experiment_id, parent.info.run_id, stage)
    # A training parameter (lr) or a model hyperparameter (dropout), as MLflow names them.
    candidates = [param] if "." in param else [f"train.{param}", f"model.hparams.{param}"]
    key = next((c for c in candidates if any(c in r.data.params for r in runs)), candidates[0])
    best = best_run_per_value(runs, key, space.mode)
    if not best:
        known = sorted({p for r in runs for p in r.data.params})
        raise EcgtuneError(f"no finished trial of stage {stage!r} in the last search of {space.experiment_name} "
                           f"has the parameter {key!r} (parameters: {known})")
    data = prepare_data(space, data_dir)
    trained_on = {run.data.params.get("data") for run, _ in best.values()}
    if trained_on != {data.key}:
        # The space file, the data folder or the split changed since the search: today's "test" part may
        # hold the examples these checkpoints trained on.
        raise EcgtuneError(
            f"by-value: the last search of {space.experiment_name} trained on data key "
            f"{', '.join(sorted(map(str, trained_on)))}; the space as it reads today prepares {data.key} (its file, "
            "the data folder or the split changed since), so scoring those checkpoints on today's test part could "
            "score them on their own training examples. Run the search again, or restore the space as it ran")
    rows = []
    for value, (run, count) in best.items():
        with tempfile.TemporaryDirectory() as folder:
            try:
                local = mlf.download_artifacts(run.info.run_id, "checkpoint", folder)
            except Exception as exc:
                raise EcgtuneError(f"run {run.info.run_id} ({key}={value}) has no checkpoint artifact: {exc}") from exc
            evaluation = evaluate_in_search(space, Checkpoint.from_directory(local), data, None)
        rows.append(ValueRow(value=value, trials=count, run_id=run.info.run_id,
                             val_metric=run.data.metrics["best_metric"],
                             selected=run.data.tags.get(tracking.SELECTED_TAG) == "true", test=evaluation.metrics))
    return rows, tuple(data.examples.label_names)
