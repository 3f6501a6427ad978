"""The search's one MLflow writer against a real SQLite store, with faults injected into its client."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from ecgtune.tuning import tracking
from ecgtune.tuning.mlflow_retry import MlflowUnavailable
from ecgtune.tuning.mlflow_writer import MlflowWriter, find_or_create
from tests.tuning.test_tracking import FakeTrial, _setup


class FaultyClient:
    """A real MlflowClient whose named methods fail first: ``failures`` per method, how many calls fail
    (a 503 as MLflow's HTTP client raises it); ``lost`` per method, how many calls succeed in the store
    but lose their answer (a server that went down after committing)."""

    def __init__(self, uri: str, failures: dict[str, int] | None = None, lost: dict[str, int] | None = None):
        self.real = tracking.client(uri)
        self.failures, self.lost = dict(failures or {}), dict(lost or {})
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self.real, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                raise MlflowException("API request failed with error code 503 != 200", error_code="TEMPORARILY_UNAVAILABLE")
            result = method(*args, **kwargs)
            if self.lost.get(name, 0) > 0:
                self.lost[name] -= 1
                raise MlflowException("API request failed with exception: Read timed out", error_code="INTERNAL_ERROR")
            return result

        return call


def _trial(trial_id: str) -> FakeTrial:
    config = {"train": {"lr": 0.01}, "stage": "scratch", "space": "writer-test", "unit": "writer-test/scratch-cnet-100",
              "patient": "100", "model": {"name": "cnet", "hparams": {}}}
    return FakeTrial(trial_id=trial_id, config=config, checkpoint=None, last_result={"reported_at": 2_000_000_000.5})


def test_transient_failures_are_retried_and_a_lost_create_never_makes_two_runs(tmp_path):
    uri, client, exp, parent = _setup(tmp_path)
    slept = []
    faulty = FaultyClient(uri, failures={"log_batch": 3, "set_terminated": 1}, lost={"create_run": 1})
    writer = MlflowWriter(uri, budget_s=60, sleep=slept.append, make_client=lambda _: faulty)
    callback = tracking.MLflowTrialRuns(uri, {"writer-test": (exp, parent)}, writer=writer)
    trial = _trial("t1")
    callback.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        callback.on_trial_result(0, [trial], trial, {"epoch": epoch, "val_balanced_accuracy": epoch / 10})
    callback.on_trial_complete(0, [trial], trial)
    callback.flush()

    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")  # one run, not two
    assert faulty.calls["create_run"] == 1  # the second attempt found the first's run by the trial's id
    assert run.info.status == "FINISHED" and run.data.params["train.lr"] == "0.01"
    history = client.get_metric_history(run.info.run_id, "val_balanced_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2)]  # each epoch once, retries or not
    # Each call backs off on its own, doubling while it keeps failing: the lost create, log_batch thrice,
    # set_terminated once.
    assert slept == [0.5, 0.5, 1.0, 2.0, 0.5]
    assert writer.error is None


def test_find_or_create_looks_before_creating_again():
    made, answers = [], iter([MlflowException("timed out", error_code="INTERNAL_ERROR"), None])

    def create():
        made.append(len(made))
        answer = next(answers)
        if answer is not None:
            raise answer
        return "created"

    # The first attempt made it and lost the answer: the second finds it and creates nothing.
    assert find_or_create(lambda: "found" if made else None, create, "a run", budget_s=5, sleep=lambda s: None) == "found"
    assert made == [0]


def test_mlflow_away_beyond_the_budget_stops_tune_gracefully_and_the_search_fails_with_one_line(tmp_path):
    uri, client, exp, parent = _setup(tmp_path)
    faulty = FaultyClient(uri, failures={"create_run": 10**9})  # down for good
    writer = MlflowWriter(uri, budget_s=0.3, sleep=lambda s: None, make_client=lambda _: faulty)
    callback = tracking.MLflowTrialRuns(uri, {"writer-test": (exp, parent)}, writer=writer)
    first, second = _trial("t1"), _trial("t2")
    callback.on_trial_start(0, [first], first)
    assert callback.barrier().wait(timeout=30)  # a barrier is never left waiting behind the failure
    assert isinstance(writer.error, MlflowUnavailable)
    calls = dict(faulty.calls)

    # Tune's SIGUSR1 handler stands for Tune's own (it sets the run's "interrupted" event, as Ctrl-C does).
    stops = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: stops.append(True))
    try:
        callback.on_step_begin(1, [])  # no exception in Tune's loop: it would end Tune without saving its state
        callback.on_trial_start(1, [second], second)  # nor in any other callback
        callback.on_step_begin(2, [])
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert stops == [True]  # asked once
    writer.join()
    assert faulty.calls == calls  # the writes after the failure were dropped, not retried for another budget
    with pytest.raises(MlflowUnavailable, match=r"the run of trial t1: MLflow kept failing .*--resume finishes the search"):
        callback.flush()  # what the search raises once Tune returned
    with pytest.raises(MlflowUnavailable):  # the finaliser's calls fail at once too
        writer.proxy().get_run(parent)
    assert client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'") == []


def test_a_resumed_search_closes_the_runs_of_trials_that_ended_while_mlflow_was_away(tmp_path):
    import torch

    from ecgtune.training.checkpoint import save_state

    uri, client, exp, parent = _setup(tmp_path)
    # Before the stop: t1's run was opened, then MLflow went away as t1 ended (its last writes dropped) and
    # the stopping search could not close it; t2 ended and was written in full.
    before = tracking.MLflowTrialRuns(uri, {"writer-test": (exp, parent)})
    ended, written = _trial("t1"), _trial("t2")
    for trial in (ended, written):
        before.on_trial_start(0, [trial], trial)
    before.on_trial_complete(0, [written], written)
    before.flush()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_state(folder, {"model_state": {"w": torch.ones(2)}, "model_spec": {"name": "cnet"}, "epoch": 3},
               resume={"optimizer_state": {"state": {}}})
    ended.checkpoint = SimpleNamespace(as_directory=lambda: _Folder(folder))
    ended.last_result = {"epoch": 3, "best_val_balanced_accuracy": 0.9, "best_epoch": 3, "reported_at": 2_000_000_000.5}

    # --resume: Tune restores both as TERMINATED and reports neither again.
    resumed = tracking.MLflowTrialRuns(uri, {"writer-test": (exp, parent)}, resumed=True)
    ended.status = written.status = "TERMINATED"
    resumed.on_step_begin(0, [ended, written])
    resumed.on_step_begin(1, [ended, written])  # checked once
    resumed.flush()
    runs = {r.data.tags["ecgtune.trial_id"]: r for r in client.search_runs([exp])
            if r.data.tags.get("mlflow.parentRunId") == parent}
    assert sorted(runs) == ["t1", "t2"] and {r.info.status for r in runs.values()} == {"FINISHED"}
    assert runs["t1"].data.metrics["best_val_balanced_accuracy"] == 0.9
    local = client.download_artifacts(runs["t1"].info.run_id, "checkpoint/state.pt", str(tmp_path))
    assert set(torch.load(local, weights_only=True)) == {"model_state", "model_spec", "epoch"}  # no optimizer state


class _Folder:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return str(self.path)

    def __exit__(self, *exc):
        return False


def test_a_stopping_search_waits_for_mlflow_only_so_long(tmp_path):
    """Ctrl-C during an outage: the queued writes are given up after the wait, not after the retry budget."""
    import time

    uri, client, exp, parent = _setup(tmp_path)
    faulty = FaultyClient(uri, failures={"set_tag": 10**9})
    writer = MlflowWriter(uri, budget_s=600, make_client=lambda _: faulty)  # real backoff, ten minutes of it
    writer.submit(lambda: writer.retried(lambda: writer.client.set_tag(parent, "k", "v"), "a tag"), "a tag")
    started = time.monotonic()
    assert not writer.drain(1.0)
    writer.join()  # the write being retried stops at its next pause
    assert time.monotonic() - started < 30
    assert isinstance(writer.error, MlflowUnavailable)
    with pytest.raises(MlflowUnavailable):  # closing the runs then fails at once, and the search says so
        writer.proxy().set_terminated(parent, "KILLED")
