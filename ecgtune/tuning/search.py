"""`ecgtune search`: one schedule for one or several spaces.

The driver prepares each dataset once and puts it into the Ray object store once; then one Tune run
carries the trials of every unit whose inputs are ready, while each complete unit is selected on
validation, tested once and promoted beside it (`ecgtune.tuning.finalize`). Each space has its MLflow
experiment and, per invocation, one parent run holding a nested run per trial.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from ecgtune.data import describe_notes
from ecgtune.data.splits import leak_free
from ecgtune.errors import EcgtuneError
from ecgtune.paths import data_root
from ecgtune.spaces import SearchSpace
from ecgtune.tuning import promotion, tracking
from ecgtune.tuning.coverage import skipped_units
from ecgtune.tuning.finalize import (SUMMARY_JSON, SUMMARY_TABLE, Finalizer, Readiness, SpaceRecord, StopOnError, UnitSummary,
                                     model_version_uri, weights_location)
from ecgtune.tuning.plan import Source, Unit, build_plan, external_sources
from ecgtune.tuning.run_labels import dataset_inputs, searched_paths, split_profile
from ecgtune.tuning.state import SearchState, resume_mismatch, splits_of, what_ran

# On a cluster a trial can lose its node (spot reclaim, a workstation rebooted) and is retried from its
# last checkpoint; on the local Ray a failing trial is a bug, reported at once.
CLUSTER_TRIAL_RETRIES = 3
# A stopping search (Ctrl-C, an error) waits this long for MLflow to take its last writes, not an outage's
# whole retry budget; what is left is written by --resume.
STOP_WAIT_S = 30.0


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the search; its state is saved for --resume."""


@dataclass(frozen=True)
class PreparedData:
    examples: object
    split_labels: np.ndarray
    key: str  # identifies dataset, preprocessing and split: a pre-trained model is reused only on the same key
    has_test: bool = True  # the split protocol (with its options) holds a test part
    preparation: dict | None = None  # how a raw recording becomes these inputs (ecgtune.data.recordings)
    source: str = ""  # the folder the raw records are in: an external validation must not overlap its records


def prepare_data(space: SearchSpace, data_dir: str | None) -> PreparedData:
    """Once per search, on the driver: trials get these arrays through the Ray object store."""
    import json

    from ecgtune.data import assign_split, get_dataset, split_has_test

    try:
        dataset = get_dataset(space.dataset, root=data_dir, **space.dataset_args)
        examples = dataset.prepare(**space.preprocessing)
        prepared_key = dataset.prepared_key(**space.preprocessing)
        options = space.resolved_split_options()
        labels = assign_split(space.split, examples, **options)
    except EcgtuneError as exc:
        raise EcgtuneError(f"{space.path}: dataset {space.dataset!r}: {exc}") from exc
    # The dataset's own key already has defaults filled and records normalised; add the split (and the options
    # the space sets: without them the key is the one it always was).
    split = f"{space.split}{json.dumps(space.split_options, sort_keys=True) if space.split_options else ''}"
    key = hashlib.sha256(f"{prepared_key}/{split}".encode()).hexdigest()[:16]
    prepared_records = set(examples.records.tolist())
    per_patient = any(s.per_patient for s in space.stages)
    missing = [p for p in space.patients if p not in prepared_records] if per_patient else []
    if missing:
        raise EcgtuneError(
            f"{space.path}: patients {', '.join(map(str, missing))} are not among the prepared records "
            f"{', '.join(sorted(prepared_records))}"
        )
    try:
        preparation = dataset.preparation(**space.preprocessing)
    except EcgtuneError:  # beats already cut (the Kaggle files): a champion of them takes tensors only
        preparation = None
    source = str(getattr(dataset, "folder", "")) and str(dataset.folder.resolve())
    return PreparedData(examples, labels, key, split_has_test(space.split, options), preparation, source)


def model_variants(hparams: dict) -> list[dict]:
    """Every combination of a model's searched choices (numeric ranges at both bounds): the models a
    search may build."""
    import itertools

    from ecgtune.spaces import domain_values

    options = {key: domain_values(value) for key, value in hparams.items()}
    return [dict(zip(options, combo)) for combo in itertools.product(*options.values())]


def metric_names(examples) -> set[str]:
    """The validation metrics a trial on these examples reports."""
    from ecgtune.models._registry import outputs_for
    from ecgtune.training.metrics import classification_metrics

    # The names depend on the task, not on the values: score one made-up example of every class (of every
    # label alone, for multi-label tasks). The first examples of a record are often one class only, and
    # sklearn warns at every search about a confusion matrix it cannot shape from one label.
    k = len(examples.label_names)
    y = np.eye(k, dtype=np.float32) if examples.multi_label else np.arange(k, dtype=np.int64)
    width = outputs_for(k, examples.multi_label)
    names = classification_metrics(np.zeros((k, width), np.float32), y, "val", examples.label_names, examples.scores)
    return set(names) | {"val_loss"}


def check_augmentable(space: SearchSpace, stage, examples) -> None:
    """The stage's augmentations applied once to two examples as each model takes them, as a trial would
    to every training batch: inputs made once at preparation (images, neighbouring beats) or several leads
    fail here, naming the key, instead of inside every trial after Ray started."""
    import torch

    from ecgtune.models._registry import model_inputs
    from ecgtune.spaces import domain_values
    from ecgtune.training.batches import example_batch
    from ecgtune.transforms.augment import augmentation

    for names in domain_values(stage.params.get("augmentations")) if "augmentations" in stage.params else [None]:
        for model in space.models:
            batch = {k: torch.from_numpy(v) for k, v in example_batch(examples.with_inputs(model_inputs(model.name))).items()}
            try:
                augmentation({"augment": 1.0, "augmentations": names}, examples.layout, torch.Generator().manual_seed(0))(batch)
            except EcgtuneError as exc:
                raise EcgtuneError(f"{space.path}: key 'stages.{stage.stage}.params.augment': {exc}") from None


def check_fit(space: SearchSpace, data: PreparedData) -> None:
    """Refuse, before anything starts, models that cannot take this dataset's examples and SMOTE on
    examples it cannot interpolate, naming the space file and the key."""
    from ecgtune.models._registry import model_inputs
    from ecgtune.models.transfer import freeze_blocks
    from ecgtune.spaces import domain_values
    from ecgtune.training.checkpoint import build_model, model_spec

    examples = data.examples
    frozen = max((v for s in space.stages for v in domain_values(s.params.get("freeze_blocks", 0))), default=0)
    for index, model in enumerate(space.models):
        for hparams in model_variants(model.hparams):
            config = {"model": {"name": model.name, "hparams": hparams}}
            key = f"models[{index}]" if len(space.models) > 1 else "model"
            try:
                built = build_model(model_spec(config, examples.with_inputs(model_inputs(model.name))))
                freeze_blocks(built, frozen)
            except (EcgtuneError, ValueError) as exc:
                raise EcgtuneError(f"{space.path}: key '{key}': {exc}") from None
            except TypeError as exc:  # an unknown hyperparameter, or one of the wrong type
                raise EcgtuneError(f"{space.path}: key '{key}': {model.name} does not take the hyperparameters "
                                   f"{hparams} ({exc})") from None
    known = metric_names(examples)
    if space.metric not in known:
        raise EcgtuneError(
            f"{space.path}: key 'metric': {space.metric!r} is not a validation metric of these examples; "
            f"known: {', '.join(sorted(known))}"
        )
    for stage in space.stages:
        for key in ("weighted_sampling", "smote"):
            value = stage.params.get(key, False)
            if examples.multi_label and True in domain_values(value):
                raise EcgtuneError(f"{space.path}: key 'stages.{stage.stage}.params.{key}': resamples by class, "
                                   "but these examples carry several labels each; leave it false")
        smote = stage.params.get("smote", False)
        if True in domain_values(smote) and len(examples.inputs) > 1:
            raise EcgtuneError(
                f"{space.path}: key 'stages.{stage.stage}.params.smote': SMOTE interpolates single signals; "
                f"these examples have inputs {list(examples.inputs)}; leave smote false"
            )
        if any(float(p or 0) > 0 for p in domain_values(stage.params.get("augment", 0.0))):
            check_augmentable(space, stage, examples)


def refuse_another_users_cluster(gcs_address: str) -> None:
    """``--address auto`` takes whatever Ray runs on this machine: refuse (and leave) one another user
    started, whose trials and results would then be shared with them."""
    import getpass

    import ray

    from ecgtune.tuning.targets import listener_user

    owner = listener_user(int(gcs_address.rsplit(":", 1)[1]))
    me = getpass.getuser()
    if owner is not None and owner != me:
        ray.shutdown()
        raise EcgtuneError(f"--address auto: the Ray cluster on this machine ({gcs_address}) was started by user "
                           f"{owner!r}, not {me!r}; give --address {gcs_address} to join it on purpose, or leave "
                           "--address out for a Ray of your own")


def init_ray(address: str | None, tracking_uri: str) -> None:
    import ray

    # A checkpoint is kept per trial (num_to_keep=1), which makes Tune snapshot its state at every
    # improvement; on local storage that is cheap, so its warning about it is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints a status box per Tune run; TrialLines reports progress instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    # Trials see the driver's tracking server (for code of theirs that logs to MLflow, as a Tune user
    # expects); ecgtune's own trial runs are written by the driver, so no credentials travel with it.
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": tracking_uri}}
    if address:
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        except ConnectionError as exc:  # --address auto with no cluster on this machine, a head gone since
            raise EcgtuneError(f"--address {address}: no Ray cluster to join ({' '.join(str(exc).split())[:300]}); "
                               "start one (ray up cluster.yaml / ray start --head) or leave --address out "
                               "for a local Ray") from None
        if address == "auto":
            refuse_another_users_cluster(ray.get_runtime_context().gcs_address)
    else:
        ray.init(include_dashboard=False, runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=False)


def stop_on_sigterm() -> None:
    """SIGTERM (what `ray job stop` and most schedulers send) stops a search as Ctrl-C does: Tune saves its
    state, the runs are closed as KILLED, and --resume goes on. Installed after ray.init, whose own handler
    would abort the process with a stack dump."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))


def cluster_notes(address: str | None, tracking_uri: str, storage_path: str) -> list[str]:
    """What a search on a cluster should be told about places only this machine reaches."""
    from ecgtune.paths import is_uri

    if not address:
        return []
    notes = []
    if not is_uri(storage_path):
        notes.append(
            f"Ray results and checkpoints go to {storage_path}: every node of the cluster must reach it "
            "(a shared mount), else use --storage-path s3://... (or ECGTUNE_STORAGE_PATH)"
        )
    if tracking_uri.startswith("sqlite:"):
        notes.append(
            f"MLflow runs go to {tracking_uri} on this machine only; give --mlflow-uri http://<server> "
            "(or MLFLOW_TRACKING_URI) to keep them beyond this cluster"
        )
    return notes


def schedule_name(spaces: list[SearchSpace], suite: str | None = None) -> str:
    """What names a search's state file and storage folder: the suite, or its spaces."""
    if suite:
        return f"{suite}-smoke" if spaces and spaces[0].smoke_test else suite
    return "+".join(s.experiment_name for s in spaces)


def data_source(data: PreparedData, data_dir: str | None) -> str:
    """Where the examples came from: a `wfdb` database's own folder, else the data folder."""
    return str(data.examples.notes.get("database") or data_root(data_dir))


def train_examples(plan: list[Unit], data: dict[str, PreparedData]) -> dict[str, int]:
    """Each unit's training examples (its patient's, or the whole dataset's): the size its trials' expected
    durations scale with, so that a pre-training on 29 records ranks above one patient's trials."""
    out = {}
    for unit in plan:
        prepared = data[unit.space.experiment_name]
        train = prepared.split_labels == "train"
        if unit.patient is not None:
            train &= prepared.examples.records == unit.patient
        out[unit.key] = int(train.sum())
    return out


def run_labels(plan: list[Unit], param_spaces: dict[str, dict]) -> dict[str, dict]:
    """What each unit's trial runs are named after."""
    return {unit.key: {"searched": searched_paths(param_spaces[unit.key]), "several_models": len(unit.space.models) > 1}
            for unit in plan}


def open_parent_run(mlf, exp_id: str, state: SearchState, space: SearchSpace, data: PreparedData,
                    data_dir: str | None) -> str:
    known = state.spaces[space.experiment_name].get("parent_run_id")
    if known:
        mlf.update_run(known, status="RUNNING")
        for key, value in tracking.driver_tags().items():  # the resuming process owns it now
            mlf.set_tag(known, key, value)
        return known
    tags = {tracking.UNIT_TAGS["space"]: space.name, tracking.SEARCH_TAG: state.name, **tracking.driver_tags(),
            tracking.NOTE_TAG: parent_note(space, state)}
    run = mlf.create_run(exp_id, run_name=f"{space.name}-{state.invocation}", tags=tags)
    params = {
        "space": space.name, "task": space.task, "dataset": space.dataset, "split": space.split,
        **{f"dataset.{k}": v for k, v in space.dataset_args.items()},
        **{f"split.{k}": v for k, v in space.resolved_split_options().items()},
        "models": ",".join(m.name for m in space.models),
        "metric": space.metric, "smoke_test": space.smoke_test, "patients": ",".join(space.patients),
        "invocation": state.invocation,
        **{f"preprocessing.{k}": v for k, v in space.preprocessing.items() if k != "records"},
    }
    for key, value in params.items():
        mlf.log_param(run.info.run_id, key, str(value)[:6000])
    mlf.log_artifact(run.info.run_id, str(space.path), artifact_path="space")
    if data.examples.notes:  # the lead read from each record, and what preparation left out and why
        mlf.log_dict(run.info.run_id, data.examples.notes, "dataset/notes.json")
        leads = sorted(set(data.examples.notes.get("leads", {}).values()))
        mlf.log_param(run.info.run_id, "dataset.leads_read", "; ".join(leads)[:6000])
    profile = split_profile(data.split_labels, data.examples.records, None)
    mlf.log_inputs(run.info.run_id, datasets=dataset_inputs(
        dataset=space.dataset, task=space.task, data_key=data.key, source=data_source(data, data_dir), profile=profile))
    return run.info.run_id


def experiment_note(space: SearchSpace) -> str:
    """An experiment's description (the UI's About this experiment)."""
    smoke = " Smoke runs (--smoke-test): they never compete with the real search's champions." if space.smoke_test else ""
    return (f"{space.description.strip().rstrip('.')}. Search space {space.path.name}: task {space.task} on {space.dataset}, split "
            f"{space.split}, selection on validation {space.metric} ({space.mode}). One parent run per `ecgtune "
            f"search`, a nested run per trial.{smoke}")


def parent_note(space: SearchSpace, state: SearchState) -> str:
    """A parent run's description (the UI's Description): which search, and where its figures are."""
    return (f"`ecgtune search` {state.name}, invocation {state.invocation}: {space.name} ({space.description.strip()}). "
            f"Its trials are the nested runs below it, each tagged ecgtune.unit; the one selected per unit on "
            f"validation {space.metric} is tagged ecgtune.selected=true and holds the test figures. Every unit's "
            f"selection, test figures and registered version: artifacts {SUMMARY_TABLE} and {SUMMARY_JSON}.")


def pretrained_start(mlf, space: SearchSpace, source: Source, data_key: str) -> dict:
    """The weights (and the spec of their model) a fine-tuning unit starts from when this search does not
    train them itself: ``models:/<source>@champion``.

    A champion trained on this same dataset but with other preprocessing or another split is refused,
    because a patient's test examples could have been among its training examples. A champion of another
    dataset (MIT-BIH beats for the PTB-XL MI task) shares no patient with this one and is taken as it is.
    """
    champion = promotion.current_champion(mlf, source.name)
    if champion is None:
        t = space.transfer
        raise EcgtuneError(
            f"{space.path}: fine-tuning starts from the champion of {source.name!r}, which the MLflow registry "
            f"({mlf.tracking_uri}) does not hold; run the search that trains it first"
            + (f" (task {t.task} on {t.dataset}, split {t.split}, stage {t.stage}"
               f"{', --smoke-test' if space.smoke_test else ''})" if t else " (this space's pretrain stage)")
        )
    source_key = champion.tags.get("data_key")
    if not leak_free(source.dataset, source.split, source_key, space.dataset, space.split, data_key):
        raise EcgtuneError(
            f"the champion of {source.name!r} (version {champion.version}) was pre-trained on other data or another "
            f"split (data_key {source_key!r}, this search {data_key!r}); fine-tuning it could "
            "leak test windows. Pre-train with the same dataset, preprocessing and split first."
        )
    state = promotion.champion_checkpoint(mlf, champion)
    return {"model_state": state["model_state"], "model_spec": state["model_spec"],
            "version": model_version_uri(source.name, str(champion.version))}


def check_schedule_sources(plan: list[Unit], data: dict[str, PreparedData]) -> None:
    """The same rule for fine-tuning that starts from units of this very search."""
    trained_by = {u.registered_name: u for u in plan}
    for unit in plan:
        for s in unit.sources:
            if s.name not in trained_by:
                continue
            source = trained_by[s.name].space
            if not leak_free(source.dataset, source.split, data[source.experiment_name].key,
                             unit.space.dataset, unit.space.split, data[unit.space.experiment_name].key):
                raise EcgtuneError(
                    f"{unit.space.path}: fine-tuning starts from {s.name!r}, which {source.name} trains on "
                    f"{source.dataset} under split {source.split} with another preparation; it could have trained on "
                    f"this search's test examples. Use the same preprocessing and split, or a split by record (folds)."
                )


def check_external_sources(mlf, plan: list[Unit], data: dict[str, PreparedData]) -> None:
    """Refuse, before anything starts, a search whose fine-tuning starts from champions that are missing."""
    for unit, source in external_sources(plan).values():
        if promotion.current_champion(mlf, source.name) is None:
            pretrained_start(mlf, unit.space, source, data[unit.space.experiment_name].key)  # raises


def provide_external_weights(mlf, plan: list[Unit], data: dict[str, PreparedData], state: SearchState) -> None:
    """Write the champions this search starts from (but does not train) where its trials read them."""
    from ecgtune.training.checkpoint import write_weights

    for name, (unit, source) in external_sources(plan).items():
        if name in state.weights:
            continue  # --resume: written by the interrupted run
        location = weights_location(state.storage_path, name)
        start = pretrained_start(mlf, unit.space, source, data[unit.space.experiment_name].key)
        write_weights(location, start["model_state"], start["model_spec"])
        state.weights[name] = location
        state.versions[name] = start["version"]
    state.save()


def close_runs(mlf, records: dict[str, SpaceRecord], status: str, echo) -> None:
    """Close a stopping search's runs as ``status``; with MLflow unreachable (what may have stopped it)
    they stay RUNNING, which --resume reopens and a later search closes (close_orphaned_runs): the error
    that stopped the search is the one the user sees."""
    from ecgtune.tuning.mlflow_retry import MlflowUnavailable, is_transient

    for record in records.values():
        try:
            tracking.close_open_runs(mlf, record.experiment_id, record.parent_run_id, status)
        except Exception as exc:
            if not (isinstance(exc, MlflowUnavailable) or is_transient(exc)):
                raise
            echo("note: MLflow did not answer; the runs of this search stay RUNNING until --resume")
            return


def run_search(spaces: list[SearchSpace], **options) -> list[UnitSummary]:
    """Run every unit of ``spaces`` as one schedule; return the summaries of all units (plan order).

    Options: suite, address, mlflow_uri, data_dir, storage_path, shared_storage, resources, resume, ui_url,
    echo (see `_run_search`). What the search changes in this process (its SIGTERM handler, environment
    variables, MLflow's URIs, log levels) is put back when it returns or raises; Ray stays initialised,
    as after `tune.run`."""
    from ecgtune.tuning.process_state import restored_process_state

    with restored_process_state():
        return _run_search(spaces, **options)


def _run_search(spaces: list[SearchSpace], *, suite: str | None = None, address=None, mlflow_uri=None, data_dir=None,
                storage_path=None, shared_storage: bool = False, resources: dict | None = None, resume=False,
                ui_url: str | None = None, echo=print) -> list[UnitSummary]:
    import ray

    from ecgtune.tuning.completion import UnitCompletion
    from ecgtune.tuning.mlflow_writer import MlflowWriter, fail_fast_http
    from ecgtune.tuning.progress import TrialLines
    from ecgtune.tuning.resources import check_storage, cluster_view, local_view, trial_resources
    from ecgtune.tuning.searcher import UnitSearcher
    from ecgtune.tuning.targets import check_targets
    from ecgtune.tuning.tuner import param_space, run_trials

    check_targets(address=address, mlflow_uri=mlflow_uri, storage_path=storage_path)
    fail_fast_http()  # the search's writer retries MLflow itself (put back by run_search)
    plan = build_plan(spaces)
    data = {s.experiment_name: prepare_data(s, data_dir) for s in spaces}
    for space in spaces:
        for line in describe_notes(data[space.experiment_name].examples.notes):
            echo(line)
    for space in spaces:
        check_fit(space, data[space.experiment_name])
    if not address:  # the local Ray's size is known before it starts: an impossible request starts nothing
        per_trial = trial_resources(spaces, on_cluster=False, cluster=local_view(), override=resources or {}, echo=echo)
    # Every MLflow call of the search (the driver's, the trial runs', the finaliser's) goes through one
    # writer: one client, one thread, each call retried while MLflow fails transiently.
    writer = MlflowWriter(tracking.tracking_uri(mlflow_uri))
    mlf = writer.proxy()
    check_schedule_sources(plan, data)
    check_external_sources(mlf, plan, data)
    whole_plan, skipped = plan, skipped_units(plan, data)
    plan = [u for u in plan if u.key not in skipped]
    name = schedule_name(spaces, suite)
    described = {s.experiment_name: what_ran(s, data[s.experiment_name].key) for s in spaces}
    if resume:
        state = SearchState.resume(name, splits_of(described))
        differs = resume_mismatch(state.spaces, described)
        if differs:
            raise EcgtuneError(
                f"--resume: the interrupted search {name!r} ({state.invocation}) is another search: {differs}. "
                "Resume it with its own options and space file, or start a new search without --resume"
            )
    else:
        state = SearchState.new(name, described, storage_path)

    init_ray(address, mlf.tracking_uri)
    stop_on_sigterm()
    cluster = cluster_view(on_cluster=bool(address))
    if address:
        per_trial = trial_resources(spaces, on_cluster=True, cluster=cluster, override=resources or {}, echo=echo)
    check_storage(state.storage_path, on_cluster=bool(address), cluster=cluster, declared_shared=shared_storage)

    records = {}
    for space in spaces:
        exp_id = tracking.experiment_id(mlf, space.experiment_name, description=experiment_note(space))
        closed = tracking.close_orphaned_runs(mlf, exp_id)
        if closed:
            echo(f"note: closed {len(closed)} run(s) of {space.experiment_name} left RUNNING by a search process "
                 f"that is gone, as FAILED: {', '.join(closed)}")
        parent = open_parent_run(mlf, exp_id, state, space, data[space.experiment_name], data_dir)
        state.spaces[space.experiment_name]["parent_run_id"] = parent
        records[space.experiment_name] = SpaceRecord(exp_id, parent, data[space.experiment_name],
                                                     data_source(data[space.experiment_name], data_dir))
    state.save()
    echo(f"search {name} ({state.invocation}): {len(plan)} unit{'' if len(plan) == 1 else 's'}, MLflow {mlf.tracking_uri}")
    for note in cluster_notes(address, mlf.tracking_uri, state.storage_path):
        echo(f"note: {note}")

    finalizer = trial_runs = None
    try:
        for unit in whole_plan:
            if unit.key in skipped:
                echo(f"  skipped {unit.key}: {skipped[unit.key]}")
                mlf.set_tag(records[unit.space.experiment_name].parent_run_id, f"{unit.name}/skipped", skipped[unit.key])
        provide_external_weights(mlf, plan, data, state)
        # Each dataset goes into the object store once, whatever the number of units and spaces using it.
        refs = {}
        for prepared in data.values():
            if prepared.key not in refs:
                refs[prepared.key] = ray.put((prepared.examples, prepared.split_labels))
        readiness = Readiness(state.weights, state.versions)
        finalizer = Finalizer(
            mlflow_uri=mlf.tracking_uri, plan={u.key: u for u in plan}, spaces=records, state=state,
            readiness=readiness, sources={s.name for u in plan for s in u.sources}, echo=echo, writer=writer,
        )
        spaces_ = {u.key: param_space(u, data[u.space.experiment_name].key, per_trial[u.space.experiment_name]) for u in plan}
        done = set(state.finished)
        searcher = UnitSearcher(plan, spaces_, readiness.starting_point, readiness.aborted, done=done,
                                train_examples=train_examples(plan, data))
        planned = {u.key: u.planned_trials for u in plan}
        trial_runs = tracking.MLflowTrialRuns(mlf.tracking_uri, {k: (r.experiment_id, r.parent_run_id) for k, r in records.items()},
                                              resumed=resume, labels=run_labels(plan, spaces_), writer=writer)
        callbacks = [
            trial_runs,
            TrialLines(planned, {u.key: u.space.metric for u in plan}, {u.key: u.space.mode for u in plan}),
            # Selection reads the unit's trial runs: it starts once the writes asked for so far are done.
            UnitCompletion(planned, done, lambda key, outcomes: finalizer.submit(key, outcomes, after=trial_runs.barrier())),
            StopOnError(readiness),
        ]
        if plan:  # every unit may have been skipped
            run_trials(plan=plan, param_spaces=spaces_, datasets=refs, searcher=searcher, callbacks=callbacks,
                       storage_path=state.storage_path, resume=resume,
                       max_failures=CLUSTER_TRIAL_RETRIES if address else 0)
        trial_runs.flush()
        finalizer.close()
        if readiness.error is not None:
            raise readiness.error
        unfinished = [u.key for u in plan if u.key not in state.finished]
        if unfinished:
            raise SearchInterrupted(
                f"the search stopped before {len(unfinished)} of {len(plan)} units finished (first: {unfinished[0]})"
            )
    except KeyboardInterrupt:
        if trial_runs is not None:
            trial_runs.flush(raise_error=False, timeout_s=STOP_WAIT_S)  # then no write of its comes after the runs are closed
        if finalizer is not None:
            finalizer.close(cancel=True)
        close_runs(mlf, records, "KILLED", echo)
        raise
    except BaseException:
        if trial_runs is not None:
            trial_runs.flush(raise_error=False, timeout_s=STOP_WAIT_S)
        if finalizer is not None:
            finalizer.close(cancel=True)
        close_runs(mlf, records, "FAILED", echo)
        raise
    for space in spaces:
        record = records[space.experiment_name]
        mlf.set_terminated(record.parent_run_id, "FINISHED")
        searched = sorted({".".join(path) for u in plan if u.space.experiment_name == space.experiment_name
                           for path in searched_paths(spaces_[u.key])})  # the params' names: train.lr
        view = tracking.save_trials_view(mlf, record.experiment_id, record.parent_run_id, space.metric, space.mode, searched)
        echo(f"runs of {space.experiment_name}: {tracking.where_to_look(mlf.tracking_uri, record.experiment_id, view, ui_url)}")
    state.status = "finished"
    state.save()
    return [UnitSummary(**state.finished[u.key]) if u.key not in skipped else UnitSummary.of_skipped(u, skipped[u.key])
            for u in whole_plan]

