"""`ecgtune search`: prepare the data once, then for each stage and patient a Tuner, a selection on
validation, one test evaluation, and a promotion in the registry, all under one MLflow parent run."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import ModelSpec, SearchSpace, StageSpec, max_epochs
from ecgtune.tuning import promotion, tracking
from ecgtune.tuning.state import SearchState


@dataclass
class UnitSummary:
    """The outcome of one unit: the selected configuration, its validation and test figures."""

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


# On a cluster a trial can lose its node (spot reclaim, a workstation rebooted) and is retried from its
# last checkpoint; on the local Ray a failing trial is a bug, reported at once.
CLUSTER_TRIAL_RETRIES = 3


def unit_key(stage: str, model: str, patient: str | None) -> str:
    return "-".join([stage, model] + ([patient] if patient else []))


@dataclass(frozen=True)
class PreparedData:
    examples: object
    split_labels: np.ndarray
    key: str  # identifies dataset, preprocessing and split: a pre-trained model is reused only on the same key


def prepare_data(space: SearchSpace, data_dir: str | None) -> PreparedData:
    """Once per search, on the driver: trials get these arrays through the Ray object store."""
    from ecgtune.data import assign_split, get_dataset

    dataset = get_dataset(space.dataset, root=data_dir)
    try:
        examples = dataset.prepare(**space.preprocessing)
        prepared_key = dataset.prepared_key(**space.preprocessing)
    except EcgtuneError as exc:
        raise EcgtuneError(f"{space.path}: dataset {space.dataset!r}: {exc}") from exc
    labels = assign_split(space.split, examples)
    # The dataset's own key already has defaults filled and records normalised; add the split.
    key = hashlib.sha256(f"{prepared_key}/{space.split}".encode()).hexdigest()[:16]
    prepared_records = set(examples.records.tolist())
    per_patient = any(s.per_patient for s in space.stages)
    missing = [p for p in space.patients if p not in prepared_records] if per_patient else []
    if missing:
        raise EcgtuneError(
            f"{space.path}: patients {missing} are not among the prepared records "
            f"{sorted(set(examples.records))}"
        )
    return PreparedData(examples, labels, key)


def init_ray(address: str | None, tracking_uri: str) -> None:
    import os

    import ray

    # A checkpoint is kept per trial (num_to_keep=1), which makes Tune snapshot its state at every
    # improvement; on local storage that is cheap, so its warning about it is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray's newer console output prints a status box per Tuner even at verbose=0: dozens in a
    # per-patient study. TrialLines reports progress instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return
    # Trials see the driver's tracking server (for code of theirs that logs to MLflow, as a Tune user
    # expects); ecgtune's own trial runs are written by the driver, so no credentials travel with it.
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": tracking_uri}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
    else:
        ray.init(include_dashboard=False, runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=False)


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


def trial_resources(space: SearchSpace) -> dict:
    """The space's per-trial resources; without a GPU in the cluster, trials run on the CPU."""
    import ray

    gpu = space.gpu if ray.cluster_resources().get("GPU", 0) > 0 else 0
    if space.gpu and not gpu:
        print(f"no GPU in the Ray cluster: trials of {space.name} run on the CPU")
    return {"cpu": space.cpu, "gpu": gpu}


def open_parent_run(mlf, exp_id: str, state: SearchState, space: SearchSpace) -> str:
    if state.parent_run_id:
        mlf.update_run(state.parent_run_id, status="RUNNING")
        return state.parent_run_id
    run = mlf.create_run(exp_id, run_name=f"{space.name}-{state.invocation}", tags={"ecgtune.space": space.name})
    params = {
        "space": space.name, "task": space.task, "dataset": space.dataset, "split": space.split,
        "models": ",".join(m.name for m in space.models),
        "metric": space.metric, "smoke_test": space.smoke_test, "patients": ",".join(space.patients),
        **{f"preprocessing.{k}": v for k, v in space.preprocessing.items() if k != "records"},
    }
    for key, value in params.items():
        mlf.log_param(run.info.run_id, key, str(value)[:6000])
    mlf.log_artifact(run.info.run_id, str(space.path), artifact_path="space")
    return run.info.run_id


def registered_name(space: SearchSpace, stage: str, model: str, patient: str | None) -> str:
    return promotion.registered_name(
        task=space.task, dataset=space.dataset, split=space.split, stage=stage, model=model,
        patient=patient, smoke=space.smoke_test,
    )


def source_name(space: SearchSpace, model: str) -> tuple[str, str]:
    """The registered model fine-tuning starts from, and the dataset it was trained on."""
    t = space.transfer
    if t is None:
        return registered_name(space, "pretrain", model, None), space.dataset
    name = promotion.registered_name(
        task=t.task, dataset=t.dataset, split=t.split, stage=t.stage, model=model, smoke=space.smoke_test
    )
    return name, t.dataset


def pretrained_weights(mlf, space: SearchSpace, model: str, data_key: str, own_version: str | None = None) -> dict:
    """The weights fine-tuning starts from: ``models:/<source model>@champion``.

    A champion trained on this same dataset but with other preprocessing or another split is refused,
    because a patient's test examples could have been among its training examples. When this search
    pre-trained on its own data, that version stands in for such a champion (it lost the alias to a
    model of, say, the quickstart's records). A champion of another dataset (MIT-BIH beats for the
    PTB-XL MI task) shares no patient with this one and is taken as it is.
    """
    name, source_dataset = source_name(space, model)
    champion = promotion.current_champion(mlf, name)
    same_data = source_dataset == space.dataset
    if champion is not None and (not same_data or champion.tags.get("data_key") == data_key):
        version = champion
    elif own_version is not None:
        version = mlf.get_model_version(name, own_version)  # same data by construction
    elif champion is None:
        raise EcgtuneError(
            f"no registered model {name!r} with a champion in the MLflow registry ({mlf.tracking_uri}); "
            "run the search that trains it first"
            + (f" (task {space.transfer.task}, split {space.transfer.split}, stage {space.transfer.stage})"
               if space.transfer else " (this space's pretrain stage)")
        )
    else:
        raise EcgtuneError(
            f"the champion of {name!r} (version {champion.version}) was pre-trained on other data or another "
            f"split (data_key {champion.tags.get('data_key')!r}, this search {data_key!r}); fine-tuning it could "
            "leak test windows. Pre-train with the same dataset, preprocessing and split first."
        )
    return promotion.champion_checkpoint(mlf, version)["model_state"]


def check_transfer_sources(mlf, space: SearchSpace) -> None:
    """Refuse a transfer search whose source champions are missing before anything starts."""
    if space.transfer is None:
        return
    missing = [name for name in (source_name(space, m.name)[0] for m in space.models)
               if promotion.current_champion(mlf, name) is None]
    if missing:
        t = space.transfer
        raise EcgtuneError(
            f"{space.path}: transfer starts from the champions of {missing}, which the MLflow registry "
            f"({mlf.tracking_uri}) does not hold; run the search that trains them first (task {t.task} on "
            f"{t.dataset}, split {t.split}, stage {t.stage}{', --smoke-test' if space.smoke_test else ''})"
        )


def run_unit(trainable, space, stage: StageSpec, model: ModelSpec, patient, data: PreparedData, *, mlf, exp_id, state, resume, max_failures=0) -> UnitSummary:
    from ecgtune.tuning.artifacts import log_confusion_matrix
    from ecgtune.tuning.progress import TrialLines
    from ecgtune.tuning.selection import evaluate_test, select_best
    from ecgtune.tuning.tuner import restore_or_build

    key = unit_key(stage.stage, model.name, patient)
    callback = tracking.MLflowTrialRuns(
        mlf.tracking_uri, exp_id, state.parent_run_id,
        tags={"ecgtune.stage": stage.stage, "ecgtune.model": model.name, "ecgtune.patient": patient or "all"},
    )
    tuner = restore_or_build(
        trainable, resume=resume, storage_path=state.storage_path, name=key,
        space=space, stage=stage, model=model, patient=patient, epochs=max_epochs(stage.params),
        callbacks=[callback, TrialLines(key, space.metric)], max_failures=max_failures,
    )
    best = select_best(tuner.fit(), space.metric, space.mode)
    evaluation = evaluate_test(best.checkpoint, data.examples, data.split_labels, patient)

    run = tracking.find_trial_run(mlf, exp_id, state.parent_run_id, best.metrics["trial_id"])
    if run is None:
        raise EcgtuneError(f"no MLflow run found for the selected trial {best.metrics['trial_id']}")
    run_id = run.info.run_id
    for name, value in evaluation.metrics.items():
        if np.isfinite(value):
            mlf.log_metric(run_id, name, value)
            mlf.log_metric(state.parent_run_id, f"{key}/{name}", value)
    mlf.set_tag(run_id, "ecgtune.selected", "true")
    log_confusion_matrix(mlf, run_id, evaluation.confusion, evaluation.label_names, title=f"{space.name} {key}: test")

    headline = ("test_balanced_accuracy", "test_f1_macro", "test_precision_macro", "test_recall_macro")
    promoted = promotion.promote(
        mlf,
        name=registered_name(space, stage.stage, model.name, patient),
        run_id=run_id, model=evaluation.model, example=data.examples.x[:2].copy(), metric=space.metric,
        value=evaluation.state["best"], mode=space.mode,
        tags={
            "space_file": space.path.name, "task": space.task, "dataset": space.dataset, "split": space.split,
            "data_key": data.key, "git_revision": promotion.git_revision(), "stage": stage.stage,
            "patient": patient or "all", "best_epoch": evaluation.state["epoch"],
            **{k: f"{evaluation.metrics[k]:.6g}" for k in headline if k in evaluation.metrics},
        },
    )
    return UnitSummary(
        stage=stage.stage, model=model.name, patient=patient, config=dict(best.config["train"]),
        val_metric=float(evaluation.state["best"]), test=evaluation.metrics, run_id=run_id,
        registered_model=promoted.name, version=promoted.version, champion=promoted.champion,
    )


def units_in_order(space: SearchSpace) -> list[tuple[StageSpec, ModelSpec, str | None]]:
    """Whole-dataset stages first (fine-tuning needs the pre-training champion), model by model, then
    patient by patient every per-patient stage, so that an interrupted study already holds paired
    scratch/fine-tuned results."""
    whole = [(s, m, None) for s in space.stages if not s.per_patient for m in space.models]
    per_patient = [(s, m, p) for p in space.patients for m in space.models for s in space.stages if s.per_patient]
    return whole + per_patient


def run_search(space: SearchSpace, *, address=None, mlflow_uri=None, data_dir=None, storage_path=None, resume=False, echo=print) -> list[UnitSummary]:
    """Run every unit of ``space``; return the summaries of all its units (in the order they ran)."""
    from ray import tune

    from ecgtune.training.trainable import train_fn

    data = prepare_data(space, data_dir)
    mlf = tracking.client(tracking.tracking_uri(mlflow_uri))
    check_transfer_sources(mlf, space)
    exp_id = tracking.experiment_id(mlf, space.experiment_name)
    if resume:
        state = SearchState.resume(space.experiment_name)
        if list(state.patients) != list(space.patients):
            raise EcgtuneError(
                f"--resume: the interrupted search ran patients {state.patients}, not {list(space.patients)}"
            )
    else:
        state = SearchState.new(space.experiment_name, str(space.path), list(space.patients), storage_path)
    state.parent_run_id = open_parent_run(mlf, exp_id, state, space)
    state.save()
    echo(f"search {space.experiment_name} ({state.invocation}): MLflow {mlf.tracking_uri}, parent run {state.parent_run_id}")
    for note in cluster_notes(address, mlf.tracking_uri, state.storage_path):
        echo(f"note: {note}")
    try:
        init_ray(address, mlf.tracking_uri)
        resources = trial_resources(space)
        trainables: dict[str, object] = {}
        for stage, model, patient in units_in_order(space):
            key = unit_key(stage.stage, model.name, patient)
            if key in state.finished:
                continue
            if stage.stage not in trainables:
                # One trainable per stage: the examples go into the object store once, whatever the number
                # of models; fine-tuning gets every model's starting weights (whole-dataset stages, the
                # pre-training included, have all finished by the time a per-patient stage starts).
                init_states = {
                    m.name: pretrained_weights(
                        mlf, space, m.name, data.key,
                        state.finished.get(unit_key("pretrain", m.name, None), {}).get("version"),
                    )
                    for m in space.models
                } if stage.stage == "finetune" else None
                trainables[stage.stage] = tune.with_resources(
                    tune.with_parameters(
                        train_fn, examples=data.examples, split_labels=data.split_labels, init_states=init_states
                    ),
                    resources,
                )
            summary = run_unit(
                trainables[stage.stage], space, stage, model, patient, data,
                mlf=mlf, exp_id=exp_id, state=state, resume=resume,
                max_failures=CLUSTER_TRIAL_RETRIES if address else 0,
            )
            state.mark_unit(key, dataclasses.asdict(summary))
            echo(
                f"  {key}: {space.metric} {summary.val_metric:.4f}, "
                f"test balanced accuracy {summary.test.get('test_balanced_accuracy', float('nan')):.4f}, "
                f"test macro F1 {summary.test.get('test_f1_macro', float('nan')):.4f}, "
                f"{summary.registered_model} v{summary.version}{' (champion)' if summary.champion else ''}"
            )
    except KeyboardInterrupt:
        tracking.close_open_runs(mlf, exp_id, state.parent_run_id, "KILLED")
        raise
    except BaseException:
        tracking.close_open_runs(mlf, exp_id, state.parent_run_id, "FAILED")
        raise
    mlf.set_terminated(state.parent_run_id, "FINISHED")
    state.status = "finished"
    state.save()
    return [UnitSummary(**d) for d in state.finished.values()]
