"""A search's MLflow parent run per space: opened (or taken over on --resume) with the space, its data and
descriptions; and what its trial runs are named after."""

from __future__ import annotations

from ecgtune.spaces import SearchSpace
from ecgtune.tuning import tracking
from ecgtune.tuning.finalize import SUMMARY_JSON, SUMMARY_TABLE
from ecgtune.tuning.plan import Unit
from ecgtune.tuning.prepared import PreparedData, data_source
from ecgtune.tuning.run_labels import dataset_inputs, searched_paths, split_profile
from ecgtune.tuning.state import SearchState


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
