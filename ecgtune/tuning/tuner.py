"""One Ray Tune run for a whole schedule: every unit's trials go through one trainable, one searcher and
one scheduler, so trials of many units share the cluster's slots."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from ray import tune

from ecgtune.spaces import Domain, SearchSpace, StageSpec, max_epochs, to_param_space
from ecgtune.tuning.plan import Unit
from ecgtune.tuning.searcher import UnitSchedulers, UnitSearcher

TUNE_EXPERIMENT = "trials"  # the Tune experiment's folder under the invocation's storage folder
# Trials Tune asks the searcher for ahead of free slots: an autoscaler sees this much demand at once.
MAX_PENDING_TRIALS = 200


def param_space(unit: Unit, data_key: str, resources: dict) -> dict:
    """What every trial's config holds: searched training params, the model (its searched hyperparameters
    too), its unit, and what it asks of the cluster (``resources``: cpu, gpu, when)."""
    space, stage = unit.space, unit.stage
    replace_head = stage.stage == "finetune" and space.transfer is not None and space.transfer.replace_head
    hparams = {k: v.to_tune() if isinstance(v, Domain) else v for k, v in unit.model.hparams.items()}
    return {
        **to_param_space(space, stage),
        "model": {"name": unit.model.name, "hparams": hparams},
        "space": space.experiment_name,
        "unit": unit.key,
        "stage": stage.stage,
        "patient": unit.patient,
        "metric": space.metric,
        "mode": space.mode,
        "scheduler": stage.search.scheduler,  # what may stop its trials early (ecgtune.stopped_by)
        "replace_head": replace_head,
        "data": data_key,
        "resources": dict(resources),
    }


def unit_scheduler(space: SearchSpace, stage: StageSpec):
    if stage.search.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = max(max_epochs(stage.params), 1)
    return ASHAScheduler(
        time_attr="training_iteration", metric=space.metric, mode=space.mode, max_t=epochs,
        grace_period=min(stage.search.grace_period, epochs), reduction_factor=stage.search.reduction_factor,
    )


def trial_amounts(config: dict) -> dict[str, float]:
    """The CPUs and GPUs of one trial: its space's, or what the space says for its model's hyperparameters
    (``resources.when``: one trial of a large model per GPU, several small ones)."""
    r = config["resources"]
    amounts = {"cpu": r["cpu"], "gpu": r["gpu"]}
    for hparam, table in r.get("when", {}).items():
        amounts.update(table.get(str(config["model"]["hparams"].get(hparam)), {}))
    return amounts


def trial_placement(config: dict):
    """Each trial asks for its own resources (spaces and models of one search may differ)."""
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    amounts = trial_amounts(config)
    return PlacementGroupFactory([{"CPU": amounts["cpu"], "GPU": amounts["gpu"]}])


def trial_dirname(trial) -> str:
    return trial.trial_id


def experiment_path(storage_path: str) -> str:
    from ecgtune.paths import join_storage

    return join_storage(storage_path, TUNE_EXPERIMENT)


class GoneCheckpointFilter(logging.Filter):
    """Tune keeps the last two checkpoints of a trial and deletes older ones as new ones come, but its
    saved state lags behind those deletions. After a crash, a resumed trial's next checkpoint makes Tune
    delete one that is already gone; it logs that as an error with a traceback and carries on (the trial
    trains and checkpoints normally). On a resume that line is noise a user cannot act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, FileNotFoundError) and "Error handling checkpoint" in record.getMessage()
                    and "checkpoint_" in str(exc))


def has_tune_state(path: str) -> bool:
    """Whether Tune saved the state of this experiment (its trials and searcher) to go on from.
    (Tuner.can_restore looks for the Tuner's own file, which tune.run does not write.)"""
    import pyarrow.fs

    from ecgtune.paths import is_uri

    fs, root = pyarrow.fs.FileSystem.from_uri(path) if is_uri(path) else (pyarrow.fs.LocalFileSystem(), path)
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError:
        return False
    return any(e.base_name.startswith("experiment_state-") and e.base_name.endswith(".json") for e in entries)


@contextmanager
def tune_logger_defaults_off():
    """Tune's own result files (result.json, progress.csv) are kept, passed as callbacks; its TensorBoard
    files would be a third copy of every epoch's metrics beside them and MLflow, written on the thread that
    starts trials (12 ms a result on this machine, profiled under benchmarks/bench_overhead.py). Tune adds
    all three unless this variable says not to; it reads it as a run starts."""
    previous = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
        else:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = previous


def run_trials(*, plan: list[Unit], param_spaces: dict[str, dict], datasets: dict, searcher: UnitSearcher,
               callbacks: list, storage_path: str, resume: bool, max_failures: int):
    """Run every trial of the plan; returns when all are done, the search was interrupted (Ctrl-C:
    Tune saves its state and returns), or a callback raised."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from ecgtune.training.trainable import train_fn

    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(MAX_PENDING_TRIALS))
    units = {u.key: u for u in plan}
    trainable = tune.with_resources(tune.with_parameters(train_fn, datasets=datasets), trial_placement)
    can_resume = resume and has_tune_state(experiment_path(storage_path))
    if can_resume:
        controller_log = logging.getLogger("ray.tune.execution.tune_controller")
        if not any(isinstance(f, GoneCheckpointFilter) for f in controller_log.filters):
            controller_log.addFilter(GoneCheckpointFilter())
    with tune_logger_defaults_off():
        return tune.run(
            trainable,
            name=TUNE_EXPERIMENT,
            storage_path=storage_path,
            search_alg=searcher,
            scheduler=UnitSchedulers(lambda key: unit_scheduler(units[key].space, units[key].stage)),
            num_samples=sum(u.planned_trials for u in plan),
            # Trials are seconds long: starting a fresh actor for each would dominate on a small machine.
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
            callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()],
            # Trials checkpoint only when validation improves; the latest is the best.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            # A trial whose node went away (a reclaimed spot instance) restarts from its checkpoint.
            max_failures=max_failures,
            raise_on_failed_trial=False,
            verbose=0,
            # --resume: finished trials stay, unfinished and failed ones go on from their last checkpoint
            # under the same trial id (so each keeps its MLflow run).
            resume_config=tune.ResumeConfig(errored=tune.ResumeConfig.ResumeType.RESUME) if can_resume else None,
        )
