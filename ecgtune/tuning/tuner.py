"""A Ray Tune Tuner for one unit of a search: a stage, or a stage for one patient."""

from __future__ import annotations

from ray import tune

from ecgtune.paths import join_storage
from ecgtune.spaces import ModelSpec, SearchSpace, StageSpec, to_param_space


def param_space(space: SearchSpace, stage: StageSpec, model: ModelSpec, patient: str | None) -> dict:
    """What every trial's config holds: searched training params, the fixed model, and the unit."""
    replace_head = stage.stage == "finetune" and space.transfer is not None and space.transfer.replace_head
    return {
        **to_param_space(space, stage),
        "model": {"name": model.name, "hparams": dict(model.hparams)},
        "stage": stage.stage,
        "patient": patient,
        "metric": space.metric,
        "mode": space.mode,
        "replace_head": replace_head,
    }


def search_algorithm(stage: StageSpec):
    if stage.search.algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=0)  # TPE, Optuna's default sampler
    return None  # grid and random: Tune's variant generator


def scheduler(space: SearchSpace, stage: StageSpec, epochs: int):
    if stage.search.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(epochs, 1),
            grace_period=min(stage.search.grace_period, max(epochs, 1)),
            reduction_factor=stage.search.reduction_factor,
        )
    return None


def build_tuner(trainable, space: SearchSpace, stage: StageSpec, model: ModelSpec, patient: str | None, *, storage_path: str, name: str, callbacks: list, epochs: int, max_failures: int = 0) -> tune.Tuner:
    return tune.Tuner(
        trainable,
        param_space=param_space(space, stage, model, patient),
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=search_algorithm(stage),
            scheduler=scheduler(space, stage, epochs),
            num_samples=stage.search.num_samples,
            # Trials are seconds long: starting a fresh actor for each would dominate on a small machine.
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=callbacks,
            # Trials checkpoint only when validation improves; the latest is the best.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            # A trial whose node went away (a reclaimed spot instance) restarts from its checkpoint.
            failure_config=tune.FailureConfig(max_failures=max_failures),
            verbose=0,
        ),
    )


def restore_or_build(trainable, *, resume: bool, storage_path: str, name: str, **kw) -> tune.Tuner:
    """Continue an interrupted unit where Ray left it (finished trials are not rerun), else start it."""
    path = join_storage(storage_path, name)
    if resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, restart_errored=True)
    return build_tuner(trainable, storage_path=storage_path, name=name, **kw)
