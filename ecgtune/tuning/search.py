"""`ecgtune search`: one schedule for one or several spaces.

The driver prepares each dataset once and puts it into the Ray object store once; then one Tune run
carries the trials of every unit whose inputs are ready, while each complete unit is selected on
validation, tested once and promoted beside it (`ecgtune.tuning.finalize`). Each space has its MLflow
experiment and, per invocation, one parent run holding a nested run per trial.
"""

from __future__ import annotations

from ecgtune.data import describe_notes
from ecgtune.errors import EcgtuneError
from ecgtune.spaces import SearchSpace
from ecgtune.tuning import tracking
from ecgtune.tuning.coverage import skipped_units
from ecgtune.tuning.finalize import Finalizer, Readiness, SpaceRecord, StopOnError, UnitSummary
from ecgtune.tuning.fit_checks import check_fit
from ecgtune.tuning.parent_runs import experiment_note, open_parent_run, run_labels
from ecgtune.tuning.plan import build_plan
from ecgtune.tuning.prepared import data_source, prepare_data, train_examples
from ecgtune.tuning.ray_runtime import cluster_notes, init_ray, stop_on_sigterm
from ecgtune.tuning.run_labels import searched_paths
from ecgtune.tuning.starting_weights import check_external_sources, check_schedule_sources, provide_external_weights
from ecgtune.tuning.state import SearchState, resume_mismatch, splits_of, what_ran

# On a cluster a trial can lose its node (spot reclaim, a workstation rebooted) and is retried from its
# last checkpoint; on the local Ray a failing trial is a bug, reported at once.
CLUSTER_TRIAL_RETRIES = 3
# A stopping search (Ctrl-C, an error) waits this long for MLflow to take its last writes, not an outage's
# whole retry budget; what is left is written by --resume.
STOP_WAIT_S = 30.0


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the search; its state is saved for --resume."""


def schedule_name(spaces: list[SearchSpace], suite: str | None = None) -> str:
    """What names a search's state file and storage folder: the suite, or its spaces."""
    if suite:
        return f"{suite}-smoke" if spaces and spaces[0].smoke_test else suite
    return "+".join(s.experiment_name for s in spaces)


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

