"""What happens to a complete unit, beside the running trials: selection on validation, the one test
evaluation, the MLflow record, the promotion, and (for a unit others start from) the starting weights
that make its dependants ready.

Units are finalised one at a time on a driver thread, so Tune keeps starting trials meanwhile. The
record of what is done (`SearchState`) is written only after a unit's promotion, so a search killed half
way through a unit finalises it again on ``--resume``: selection is deterministic, figures already on the
selected run are not logged again, and the promotion reuses the version an earlier attempt registered, so
nothing is logged or registered twice (tests/tuning/test_resume_finalize.py kills the driver at each step).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from mlflow.entities import Metric
from ray.tune import Callback

from ecgtune.errors import EcgtuneError
from ecgtune.models.transfer import WHOLE_MODEL
from ecgtune.paths import join_storage
from ecgtune.spaces import Domain, measure_of
from ecgtune.training.batches import example_batch
from ecgtune.training.checkpoint import write_weights
from ecgtune.tuning import pause_points, promotion, tracking
from ecgtune.tuning.artifacts import log_confusion_matrix, log_label_counts, log_test_predictions
from ecgtune.tuning.gate import champion_scorer
from ecgtune.tuning.mlflow_writer import on_writer
from ecgtune.tuning.plan import Unit
from ecgtune.tuning.run_labels import dataset_inputs, split_profile
# Imported with the driver, not when the first unit completes: a search that runs for hours finalises its
# units with the code it started with.
from ecgtune.tuning.selection import evaluate_in_search, select_best


@dataclass
class UnitSummary:
    """The outcome of one unit: the selected configuration, its validation and test figures."""

    space: str  # the experiment (the space's name, -smoke for smoke runs)
    stage: str
    model: str
    patient: str | None
    config: dict
    val_metric: float
    test: dict
    run_id: str
    registered_model: str
    version: str
    champion: bool
    failed_trials: int = 0
    skipped: str | None = None  # why the unit was not run (ecgtune.tuning.coverage); no figures then
    champion_kept_because: str | None = None  # the alias stayed without a comparison (promotion's gate)

    @classmethod
    def of_skipped(cls, unit: Unit, reason: str) -> "UnitSummary":
        return cls(space=unit.space.experiment_name, stage=unit.stage.stage, model=unit.model.name, patient=unit.patient,
                   config={}, val_metric=float("nan"), test={}, run_id="", registered_model="", version="",
                   champion=False, skipped=reason)


class Readiness:
    """Which units may start: a unit starts once the weights it starts from are written. Shared by Tune's
    searcher (the main thread) and the finaliser thread."""

    def __init__(self, weights: dict[str, str], versions: dict[str, str] | None = None):
        self._lock = threading.Lock()
        self._weights = dict(weights)  # registered name -> location of its starting weights
        self._versions = dict(versions or {})  # registered name -> models:/<name>/<version> of those weights
        self.error: BaseException | None = None

    def starting_point(self, unit: Unit) -> dict | None:
        """The config a unit's trials add: where each of its starting weights lies (by branch; WHOLE_MODEL
        for the whole model) and which registered version they are (``starts_from``, the run's record of
        its starting point), or None while some are not written yet."""
        if not unit.sources:
            return {"init_weights": None}
        with self._lock:
            locations = {s.branch or WHOLE_MODEL: self._weights.get(s.name) for s in unit.sources}
            versions = {s.branch or WHOLE_MODEL: self._versions.get(s.name, s.name) for s in unit.sources}
        return None if None in locations.values() else {"init_weights": locations, "starts_from": versions}

    def provide(self, name: str, location: str, version: str | None = None) -> None:
        with self._lock:
            self._weights[name] = location
            if version:
                self._versions[name] = version

    def abort(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error

    def aborted(self) -> bool:
        return self.error is not None


class StopOnError(Callback):
    """A Tune callback that ends the run at its next step once a unit's finalisation failed: the search
    fails now instead of training trials whose units could not be selected either."""

    def __init__(self, readiness: Readiness):
        self.readiness = readiness
        self._stopping = False

    def on_step_begin(self, iteration, trials, **info):
        from ecgtune.tuning.mlflow_retry import MlflowUnavailable
        from ecgtune.tuning.mlflow_writer import stop_trials_gracefully

        if self.readiness.error is not None:
            # MLflow gone for good: Tune stops as at Ctrl-C (its state saved for --resume); the search
            # raises the error once Tune returned.
            if not (isinstance(self.readiness.error, MlflowUnavailable) and (self._stopping or stop_trials_gracefully())):
                raise self.readiness.error
            self._stopping = True


def weights_location(storage_path: str, name: str) -> str:
    return join_storage(storage_path, "starting_weights", f"{name}.pt")


@dataclass(frozen=True)
class SpaceRecord:
    """Where one space's runs go, and the data its units were trained on."""

    experiment_id: str
    parent_run_id: str
    data: object  # PreparedData
    source: str = ""  # where the examples came from (the dataset inputs' source)


class Finalizer:
    """Finalises complete units on one thread, in the order they complete.

    Args:
        plan: the units, by key.
        spaces: per experiment name, its MLflow experiment, parent run and prepared data.
        state: the search's resumable record; a unit is marked done there after its promotion.
        readiness: told of every starting weight written, and of the first error.
        sources: the registered names some unit of the plan starts from.
        echo: where the one line per unit goes.
    """

    def __init__(self, *, mlflow_uri: str, plan: dict[str, Unit], spaces: dict[str, SpaceRecord], state, readiness: Readiness,
                 sources: set[str], echo, writer=None):
        self.mlflow_uri, self.plan, self.spaces, self.state = mlflow_uri, plan, spaces, state
        self.writer = writer  # the search's one MLflow writer: every MLflow call of a unit runs on its thread
        self.readiness, self.sources, self.echo = readiness, sources, echo
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgtune-finalize")
        self._client = None

    @property
    def mlflow(self):
        if self._client is None:
            self._client = self.writer.proxy() if self.writer is not None else tracking.client(self.mlflow_uri)
        return self._client

    def submit(self, key: str, outcomes: list, after=None) -> Future:
        """Finalise unit ``key`` once ``after`` (an event: its trials' MLflow writes are done) is set."""
        future = self.pool.submit(self._finalize, self.plan[key], outcomes, after)
        future.add_done_callback(self._note_error)
        return future

    def _note_error(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.readiness.abort(future.exception())

    def close(self, cancel: bool = False) -> None:
        """Wait for the unit being finalised (and, unless ``cancel``, the queued ones)."""
        self.pool.shutdown(wait=True, cancel_futures=cancel)

    def _finalize(self, unit: Unit, outcomes: list, after=None) -> None:
        if after is not None:
            after.wait()
        if self.readiness.aborted():
            return
        # A unit others start from leaves its selected weights where their trials read them.
        weights = weights_location(self.state.storage_path, unit.registered_name) if unit.registered_name in self.sources else None
        summary = finalize_unit(
            self.mlflow, unit, outcomes, self.spaces[unit.space.experiment_name], self.state.invocation, weights_to=weights
        )
        version_uri = model_version_uri(summary.registered_model, summary.version)
        if weights:
            self.state.weights[unit.registered_name] = weights
            self.state.versions[unit.registered_name] = version_uri
        self.state.mark_unit(unit.key, asdict(summary))
        record = self.spaces[unit.space.experiment_name]
        log_space_summary(self.mlflow, record.parent_run_id, unit.space, self.state.finished)
        if weights:
            self.readiness.provide(unit.registered_name, weights, version_uri)
        self.echo(unit_line(unit, summary))


def model_version_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


SUMMARY_JSON, SUMMARY_TABLE = "summary/units.json", "summary/units.md"


def log_space_summary(mlf, parent_run_id: str, space, finished: dict[str, dict]) -> None:
    """The parent run's record of its units so far: one JSON (every unit's selected configuration, its
    validation and test figures, its registered version) and a small Markdown table of the same. One
    artifact, rewritten as units finish, instead of a metric per unit and figure (the UI drew each as a
    chart of one bar)."""
    rows = [summary for summary in finished.values() if summary["space"] == space.experiment_name]
    measure = measure_of(space.metric)
    mlf.log_dict(parent_run_id, _strict_json({"metric": space.metric, "mode": space.mode, "units": rows}), SUMMARY_JSON)
    lines = [f"| unit | {space.metric} | test {measure} | test macro F1 | registered | champion |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        unit = "-".join([r["stage"], r["model"]] + ([r["patient"]] if r["patient"] else []))
        test = r["test"].get(f"test_{measure}")
        f1 = r["test"].get("test_f1_macro")
        lines.append(f"| {unit} | {r['val_metric']:.4f} | {'-' if test is None else f'{test:.4f}'} | "
                     f"{'-' if f1 is None else f'{f1:.4f}'} | {r['registered_model']} v{r['version']} | "
                     f"{'yes' if r['champion'] else 'no'} |")
    mlf.log_text(parent_run_id, "\n".join(lines) + "\n", SUMMARY_TABLE)


def _strict_json(value):
    """NaN (a unit skipped, a figure without a test part) as null: JSON readers other than Python's refuse NaN."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def searched_hparams(unit: Unit) -> set[str]:
    return {k for k, v in unit.model.hparams.items() if isinstance(v, Domain)}


def unit_line(unit: Unit, s: UnitSummary) -> str:
    failed = f", {s.failed_trials} of {unit.planned_trials} trials failed" if s.failed_trials else ""
    if s.failed_trials * 2 > unit.planned_trials:  # selected among the few that ran: say so loudly
        failed = f", MOST TRIALS FAILED ({s.failed_trials} of {unit.planned_trials}): selected among the rest"
    measure = measure_of(unit.space.metric)
    test = (f"test {measure} {s.test.get('test_' + measure, float('nan')):.4f}, "
            f"test macro F1 {s.test.get('test_f1_macro', float('nan')):.4f}") if s.test else "no test part"
    kept = f" (champion kept: {s.champion_kept_because})" if s.champion_kept_because else ""
    return (
        f"  {unit.key}: {unit.space.metric} {s.val_metric:.4f}, {test}, "
        f"{s.registered_model} v{s.version}{' (champion)' if s.champion else ''}{kept}{failed}"
    )


def finalize_unit(mlf, unit: Unit, outcomes: list, record: SpaceRecord, invocation: str, weights_to: str | None = None) -> UnitSummary:
    """Select on validation, evaluate on test once, log it on the selected run, promote; write the selected
    weights to ``weights_to`` when given."""

    space, data = unit.space, record.data
    failed = [o for o in outcomes if o.error]
    if len(failed) * 2 > len(outcomes):
        # Most trials failing is a finding in itself (out of memory at large batches, say), not noise.
        mlf.set_tag(record.parent_run_id, f"{unit.name}/failed_trials", f"{len(failed)} of {len(outcomes)}")
    best = select_best(outcomes, space.mode, unit.key)
    pause_points.reached(pause_points.SELECTION)
    with_test = data.has_test
    measure = measure_of(space.metric)
    evaluation = evaluate_in_search(space, best.checkpoint, data, unit.patient, with_test)
    run = tracking.find_trial_run(mlf, record.experiment_id, record.parent_run_id, best.trial_id)
    if run is None:
        raise EcgtuneError(f"no MLflow run found for the selected trial {best.trial_id} of {unit.key}")
    run_id = run.info.run_id
    # On the selected run only: the parent holds the units' figures as one artifact (log_space_summary).
    # A unit finalised again after a crash has logged some already: each figure is logged once.
    logged = set(run.data.metrics)
    stamp = int(time.time() * 1000)
    fresh = [Metric(name, float(value), stamp, 0) for name, value in evaluation.metrics.items()
             if np.isfinite(value) and name not in logged]
    if fresh:  # one write (MLflow takes up to 1,000 entities in one batch; a unit has tens of figures)
        mlf.log_batch(run_id, metrics=fresh)
    pause_points.reached(pause_points.TEST_EVALUATION)
    mlf.set_tag(run_id, tracking.SELECTED_TAG, "true")
    # The unit's dataset inputs go on its selected run (and the parent), not on every trial run: the
    # trials of a unit share them, and one write fewer per trial is a tenth of ecgtune's cost per trial.
    mlf.log_inputs(run_id, datasets=dataset_inputs(
        dataset=space.dataset, task=space.task, data_key=data.key, source=record.source, patient=unit.patient,
        profile=split_profile(data.split_labels, data.examples.records, unit.patient)))
    if evaluation.predictions is not None:
        log_test_predictions(mlf, run_id, evaluation.predictions, evaluation.label_names)
    log_training_records(mlf, run_id, data, unit.patient)
    thresholds = evaluation.state.get("thresholds")
    if with_test and thresholds is not None:  # multi-label
        log_label_counts(mlf, run_id, evaluation.confusion, evaluation.label_names, thresholds)
    elif with_test:
        log_confusion_matrix(mlf, run_id, evaluation.confusion, evaluation.label_names, title=f"{space.name} {unit.name}: test")
    else:  # the seed's own protocol for comparison: selected and reported on the same validation split
        mlf.set_tag(run_id, "ecgtune.test", f"none: split {space.split} has no test part")

    headline = [f"test_{m}{ci}" for m in ("balanced_accuracy", "f1_macro", "precision_macro", "recall_macro",
                                             "auroc_macro", measure) for ci in ("", "_ci_low", "_ci_high")]
    model_inputs = list(evaluation.state["model_spec"]["inputs"])  # what the model takes of the examples
    champion = champion_parts(data, evaluation)
    facts = version_facts(space, data, evaluation, champion)
    # On the writer's thread as a whole: its model logging writes through MLflow's fluent API, and a
    # retry finds the version an attempt registered (its INVOCATION_TAG).
    promoted = on_writer(mlf, lambda: promotion.promote(
        mlf,
        name=unit.registered_name, model_name=unit.name,
        run_id=run_id, model=evaluation.model, example=example_batch(data.examples.with_inputs(model_inputs)),
        metric=space.metric,
        value=evaluation.state["best"], mode=space.mode,
        tags={
            **registered_model_tags(space, unit), "space_file": space.path.name, "data_key": data.key,
            "git_revision": promotion.git_revision(), "best_epoch": evaluation.state["epoch"],
            promotion.INVOCATION_TAG: f"{invocation}/{unit.key}",
            # Multi-label: the probability above which each label is predicted (chosen on validation).
            **({"thresholds": json.dumps(dict(zip(evaluation.label_names, map(float, thresholds))))} if thresholds else {}),
            **{k: f"{evaluation.metrics[k]:.6g}" for k in headline if k in evaluation.metrics},
            **facts,
        },
        score_champion=champion_scorer(mlf, dataset=space.dataset, split=space.split, data=data, patient=unit.patient,
                                       metric=space.metric),
        champion=champion,
    ), f"the promotion of {unit.key}")
    pause_points.reached(pause_points.PROMOTION)  # registered, the alias moved or kept; not yet recorded as done
    description = version_description(space, unit, run_id, evaluation, facts, measure)
    mlf.update_model_version(promoted.name, promoted.version, description=description)
    promotion.describe_registered_model(
        mlf, promoted.name, tags=registered_model_tags(space, unit), version=promoted.version,
        description=registered_model_description(space, unit, promoted, description))
    mlf.set_tag(run_id, tracking.NOTE_TAG, selected_run_note(space, unit, outcomes, evaluation, promoted, measure))
    if weights_to:
        write_weights(weights_to, evaluation.state["model_state"], evaluation.state["model_spec"])
    return UnitSummary(
        space=space.experiment_name, stage=unit.stage.stage, model=unit.model.name, patient=unit.patient,
        config={**best.config["train"], **{f"model.{k}": v for k, v in best.config["model"]["hparams"].items()
                                           if k in searched_hparams(unit)}},
        val_metric=float(evaluation.state["best"]), test=evaluation.metrics,
        run_id=run_id, registered_model=promoted.name, version=promoted.version, champion=promoted.champion,
        failed_trials=len(failed), champion_kept_because=promoted.kept_because,
    )


def registered_model_tags(space, unit: Unit) -> dict[str, str]:
    """What the registry's list filters on (``tags.patient = '208'``): the same on the model as on its versions."""
    return {"task": space.task, "dataset": space.dataset, "split": space.split, "stage": unit.stage.stage,
            "model": unit.model.name, "patient": unit.patient or "all", "space": space.name}


def registered_model_description(space, unit: Unit, promoted, version_text: str) -> str:
    """The registered model's description: what its versions are, and its latest version in words."""
    who = f"{unit.stage.stage} of {unit.model.name}" + (f" for patient {unit.patient}" if unit.patient else "")
    champion = (f"version {promoted.version} is the champion" if promoted.champion
                else f"version {promoted.version} did not take the alias `champion`")
    return (f"ecgtune champions: {who}, task {space.task} on {space.dataset} under split {space.split}; every "
            f"version is compared with `@champion` on the same validation data. Latest: {champion}. "
            f"Version {promoted.version}: {version_text}")


def selected_run_note(space, unit: Unit, outcomes: list, evaluation, promoted, measure: str) -> str:
    """The selected run's description (the UI's Description): why this run, and what became of it."""
    test = evaluation.metrics.get(f"test_{measure}")
    return (f"Selected for unit {unit.key} among {len(outcomes)} trials: best validation {space.metric} "
            f"{float(evaluation.state['best']):.4f} (epoch {evaluation.state['epoch']})"
            + ("" if test is None else f"; test {measure} {test:.4f}, scored once after selection")
            + f". Registered as {promoted.name} version {promoted.version}"
            + (" (champion)." if promoted.champion else " (the champion stayed: see the version's gate.decision).")
            + f" Load it: mlflow.pyfunc.load_model('models:/{promoted.name}/{promoted.version}').")


def log_training_records(mlf, run_id: str, data, patient: str | None) -> None:
    """The records the unit trained and was selected on, and their folder (`ecgtune.tuning.apply`'s
    TRAINING_RECORDS): `ecgtune evaluate` refuses a dataset overlapping them."""
    from ecgtune.tuning.apply import TRAINING_RECORDS

    used = np.isin(data.split_labels, ("train", "val"))
    if patient is not None:
        used &= data.examples.records == patient
    records = sorted(set(data.examples.records[used].tolist()))
    mlf.log_dict(run_id, {"source": data.source, "records": records}, TRAINING_RECORDS)


def champion_parts(data, evaluation) -> dict | None:
    """What the registered model needs to predict raw recordings (`ecgtune.tuning.champion_model`): the
    dataset's preparation, the class names, the thresholds chosen on validation, the network's spec and
    weights; None where the data hold no recordings (the Kaggle beats)."""
    if data.preparation is None:
        return None
    spec = evaluation.state["model_spec"]
    thresholds = evaluation.state.get("thresholds")
    samples = next(iter(data.examples.input_shapes.values()))[-1]
    return {"preparation": {**data.preparation, "samples": int(samples)}, "label_names": list(evaluation.label_names),
            "scores": list(data.examples.scores),
            "thresholds": None if thresholds is None else [float(t) for t in thresholds], "model_spec": spec,
            "weights": evaluation.model.state_dict()}


def version_facts(space, data, evaluation, champion: dict | None) -> dict:
    """The tags that say what a version takes and gives: its classes, input rate and leads, the space's digest."""
    import hashlib

    preparation = (champion or {}).get("preparation", {})
    params = preparation.get("params", {})
    rate = params.get("target_rate") or preparation.get("rate")
    leads = preparation.get("leads") or ([params["lead"]] if params.get("lead") else [])
    return {"classes": json.dumps(list(evaluation.label_names)),
            "input": params.get("mode") or params.get("task") or preparation.get("kind", "tensors only"),
            **({"input_rate_hz": f"{rate:g}"} if rate else {}),
            **({"input_leads": ",".join(leads)} if leads else {}),
            "space_digest": hashlib.sha256(space.path.read_bytes()).hexdigest()[:16]}


def version_description(space, unit, run_id: str, evaluation, facts: dict, measure: str) -> str:
    """The version's description in the registry: what it was trained on, what it takes, how it scored."""
    test = evaluation.metrics.get(f"test_{measure}")
    low, high = (evaluation.metrics.get(f"test_{measure}_ci_{e}") for e in ("low", "high"))
    figure = ("no test part" if test is None else f"test {measure} {test:.4f}"
              + (f" [95 % CI {low:.4f}, {high:.4f}]" if low is not None and high is not None else " (no interval)"))
    takes = (f"raw recordings ({facts['input']}" + (f", {facts['input_rate_hz']} Hz" if "input_rate_hz" in facts else "")
             + (f", leads {facts['input_leads']}" if "input_leads" in facts else "") + ")"
             if facts["input"] != "tensors only" else "tensors only")
    return (f"{space.name} ({space.task} on {space.dataset}, split {space.split}), unit {unit.key}; selected run {run_id}"
            f" on validation {space.metric} {float(evaluation.state['best']):.4f}; {figure}. Classes "
            f"{', '.join(evaluation.label_names)}. Takes {takes}: mlflow.pyfunc.load_model(uri).predict(rows of "
            "signal, fs, leads[, rpeaks]); mlflow.pytorch.load_model(uri) gives the network for tensors.")
