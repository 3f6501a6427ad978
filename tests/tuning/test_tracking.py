"""The per-trial MLflow callback against a real SQLite store."""

from types import SimpleNamespace

from ecgtune.tuning import tracking


class FakeTrial(SimpleNamespace):
    """What the callback reads of a Tune trial: its id, config and latest checkpoint."""

    def __str__(self):
        return f"train_fn_{self.trial_id}"


def _setup(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = tracking.client(uri)
    exp = tracking.experiment_id(client, "tracking-test")
    parent = client.create_run(exp).info.run_id
    return uri, client, exp, parent


def _config(**extra):
    return {"train": {"lr": 0.01}, "stage": "scratch", "space": "tracking-test", "unit": "tracking-test/scratch-cnet-100",
            "patient": "100", "model": {"name": "cnet", "hparams": {}}, **extra}


def test_a_resumed_search_finds_the_trials_run_instead_of_opening_another(tmp_path):
    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    trial = FakeTrial(trial_id="abc_00001", config=_config(), checkpoint=None)
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_result(0, [trial], trial, {"epoch": 1, "val_balanced_accuracy": 0.7, "time_this_iter_s": 3.0,
                                                 "node_id": "n1", "gpu_ids": ""})
    callback.on_trial_result(0, [trial], trial, {"epoch": 2, "val_balanced_accuracy": 0.75})
    callback.flush()  # the writes are the writer thread's: the search flushes them before it ends

    # --resume builds the callback anew: it finds the run by the trial's id. The trial goes on from its last
    # checkpoint (epoch 1): epoch 2, already in the run, is not logged a second time.
    restored = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)}, resumed=True)
    restored.on_trial_start(0, [trial], trial)
    restored.on_trial_result(0, [trial], trial, {"epoch": 2, "val_balanced_accuracy": 0.76})
    restored.on_trial_result(0, [trial], trial, {"epoch": 3, "val_balanced_accuracy": 0.8, "node_id": "n2", "gpu_ids": "1"})
    restored.on_trial_complete(0, [trial], trial)
    restored.flush()

    runs = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["train.lr"] == "0.01"
    history = client.get_metric_history(run.info.run_id, "val_balanced_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.7), (2, 0.75), (3, 0.8)]
    assert "time_this_iter_s" not in run.data.metrics  # Ray's bookkeeping stays out of MLflow
    # The unit's tags, and where the trial ran last (a retried trial may move to another node).
    assert run.data.tags["ecgtune.unit"] == "tracking-test/scratch-cnet-100" and run.data.tags["ecgtune.patient"] == "100"
    assert run.data.tags["ray.node_id"] == "n2" and run.data.tags["ray.gpu_ids"] == "1"


def test_close_open_runs_leaves_nothing_running(tmp_path):
    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    trial = FakeTrial(trial_id="t1", config=_config(), checkpoint=None)
    callback.on_trial_start(0, [trial], trial)
    callback.flush()
    tracking.close_open_runs(client, exp, parent, "KILLED")
    statuses = {r.info.status for r in client.search_runs([exp])}
    assert statuses == {"KILLED"}


def test_sqlite_artifacts_go_beside_the_database_not_the_working_directory(tmp_path):
    uri, client, exp, _ = _setup(tmp_path)
    location = client.get_experiment(exp).artifact_location
    assert location.startswith((tmp_path / "mlartifacts").as_uri())


def test_a_failed_trial_run_says_why(tmp_path):
    """A failed trial is FAILED in MLflow with its exception's last line as a tag (out of memory, say)."""
    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory.\n")
    trial = FakeTrial(trial_id="t2", config=_config(), checkpoint=None, error_file=str(error_file),
                      get_error=lambda: None)
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_error(0, [trial], trial)
    callback.flush()
    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert run.info.status == "FAILED"
    assert run.data.tags["ecgtune.error"] == "torch.OutOfMemoryError: CUDA out of memory."


def test_runs_left_running_by_a_search_process_that_is_gone_are_closed_as_failed(tmp_path):
    """A search whose store became unwritable could not close its runs; the next search of the space closes
    those of a process of this machine that is gone, never those of a live one."""
    import subprocess
    import sys

    uri, client, exp, parent = _setup(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = gone.stdout.strip()
    host = tracking.driver_tags()[tracking.DRIVER_HOST_TAG]
    orphan = client.create_run(exp, run_name="orphan", tags={tracking.DRIVER_HOST_TAG: host, tracking.DRIVER_PID_TAG: dead_pid})
    trial = client.create_run(exp, tags={tracking.PARENT_TAG: orphan.info.run_id})
    live = client.create_run(exp, run_name="live", tags=tracking.driver_tags())
    assert tracking.close_orphaned_runs(client, exp) == ["orphan"]
    status = {r.info.run_id: r.info.status for r in client.search_runs([exp])}
    assert status[orphan.info.run_id] == "FAILED" and status[trial.info.run_id] == "FAILED"
    assert status[live.info.run_id] == "RUNNING" and status[parent] == "RUNNING"  # a live process, and no owner tag


def test_a_trial_run_ends_when_the_trial_did(tmp_path):
    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    trial = FakeTrial(trial_id="t3", config=_config(), checkpoint=None, last_result={"timestamp": 2_000_000_000})
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_complete(0, [trial], trial)
    callback.flush()
    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert run.info.end_time == 2_000_000_000_000


def test_a_trial_shorter_than_a_second_does_not_end_before_it_started(tmp_path):
    import time

    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    # Ray's timestamp is whole seconds: truncated, it can fall before the run's start (in ms).
    trial = FakeTrial(trial_id="t4", config=_config(), checkpoint=None, last_result={"timestamp": int(time.time()) - 1})
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_complete(0, [trial], trial)
    callback.flush()
    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert run.info.end_time >= run.info.start_time
    # The trainable's own time, to the millisecond, wins over Ray's.
    precise = FakeTrial(trial_id="t5", config=_config(), checkpoint=None,
                        last_result={"timestamp": 2_000_000_000, "reported_at": 2_000_000_000.25})
    callback.on_trial_start(0, [precise], precise)
    callback.on_trial_complete(0, [precise], precise)
    callback.flush()
    run = client.search_runs([exp], filter_string="tags.`ecgtune.trial_id` = 't5'")[0]
    assert run.info.end_time == 2_000_000_000_250


def test_writes_keep_their_order_off_tunes_thread_and_a_failed_one_fails_the_search(tmp_path):
    import pytest

    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    trial = FakeTrial(trial_id="t6", config=_config(), checkpoint=None, last_result={"reported_at": 2_000_000_000.5})
    callback.on_trial_start(0, [trial], trial)
    for epoch in range(1, 6):
        callback.on_trial_result(0, [trial], trial, {"epoch": epoch, "val_balanced_accuracy": epoch / 10,
                                                     "node_id": "n1", "gpu_ids": ""})
    assert callback.barrier().wait(timeout=60)  # what selection waits for before it reads the runs
    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    # Epochs this fast are held back (one write every WRITE_EVERY_S seconds at most), params with them.
    assert client.get_metric_history(run.info.run_id, "val_balanced_accuracy") == [] and not run.data.params
    callback.on_trial_complete(0, [trial], trial)
    assert callback.barrier().wait(timeout=60)
    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert run.data.params["train.lr"] == "0.01"
    history = client.get_metric_history(run.info.run_id, "val_balanced_accuracy")
    assert [(m.step, m.value) for m in history] == [(e, e / 10) for e in range(1, 6)]
    assert run.info.status == "FINISHED" and run.data.tags["ray.node_id"] == "n1"
    # A space the callback was not told of: its write fails on the writer thread, and Tune's next step raises.
    stray = FakeTrial(trial_id="t7", config=_config(space="unknown"), checkpoint=None)
    callback.on_trial_start(0, [stray], stray)
    with pytest.raises(KeyError, match="unknown"):
        callback.flush()
    callback.on_step_begin(1, [])  # raised once: the search is already failing
    assert callback.barrier().wait(timeout=60)  # a barrier is never left waiting behind the failure


def test_metrics_held_back_beyond_one_batch_are_all_written(tmp_path):
    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    trial = FakeTrial(trial_id="t8", config=_config(), checkpoint=None, last_result={})
    callback.on_trial_start(0, [trial], trial)
    many = {f"val_m{i}": float(i) for i in range(600)}  # two epochs of these are more than one log_batch takes
    for epoch in range(1, 8):
        callback.on_trial_result(0, [trial], trial, {"epoch": epoch, **many})
    callback.on_trial_complete(0, [trial], trial)
    callback.flush()
    (run,) = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_m599")] == list(range(1, 8))
    assert run.data.params["train.lr"] == "0.01"


def test_a_trial_stopped_by_asha_is_tagged_and_its_best_epoch_figures_sit_beside_the_series(tmp_path):
    """ASHA stopping a trial marks its result done before the trial's last epoch: its run ends KILLED, tagged
    ecgtune.stopped_by=asha. Every trial's best epoch's figures are written once as best_val_* (the series'
    last value is the last epoch's); lr and epoch go under system/, out of the model charts."""
    uri, client, exp, parent = _setup(tmp_path)
    callback = tracking.MLflowTrialRuns(uri, {"tracking-test": (exp, parent)})
    config = _config(train={"lr": 0.01, "epochs": 8}, scheduler="asha", init_weights={"model": "/tmp/start.pt"},
                     starts_from={"model": "models:/pretrain-cnet/2"})
    best = {"best_val_balanced_accuracy": 0.8, "best_val_loss": 0.4, "best_epoch": 1}
    epochs = [{"epoch": 1, "lr": 0.01, "val_balanced_accuracy": 0.8, "val_loss": 0.4, "best_metric": 0.8, **best},
              {"epoch": 2, "lr": 0.005, "val_balanced_accuracy": 0.6, "val_loss": 0.5, "best_metric": 0.8, **best,
               "done": True, "reported_at": 2_000_000_000.5}]
    stopped = FakeTrial(trial_id="s1", config=config, checkpoint=None, last_result=epochs[-1])
    ran = FakeTrial(trial_id="s2", config=_config(train={"lr": 0.01, "epochs": 2}), checkpoint=None,
                    last_result=epochs[-1])
    for trial in (stopped, ran):
        callback.on_trial_start(0, [trial], trial)
        for result in epochs:
            callback.on_trial_result(0, [trial], trial, dict(result))
        callback.on_trial_complete(0, [trial], trial)
    callback.flush()
    runs = {r.data.tags["ecgtune.trial_id"]: r for r in client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")}
    asha, full = runs["s1"], runs["s2"]
    assert (asha.info.status, asha.data.tags["ecgtune.stopped_by"]) == ("KILLED", "asha")
    assert "after epoch 2 of 8" in asha.data.tags["mlflow.note.content"]
    assert full.info.status == "FINISHED" and "ecgtune.stopped_by" not in full.data.tags  # its last epoch: not stopped
    for run in (asha, full):
        assert run.data.metrics["val_balanced_accuracy"] == 0.6  # the last epoch's
        assert run.data.metrics["best_val_balanced_accuracy"] == 0.8 and run.data.tags["ecgtune.best_epoch"] == "1"
        (best_point,) = client.get_metric_history(run.info.run_id, "best_val_loss")
        assert (best_point.step, best_point.value) == (1, 0.4)
        assert "lr" not in run.data.metrics and "epoch" not in run.data.metrics
        assert [m.value for m in client.get_metric_history(run.info.run_id, "system/lr")] == [0.01, 0.005]
        assert run.data.metrics["system/epoch"] == 2
    # A fine-tuning trial's run records the registered version it started from, not a path of this machine.
    assert asha.data.params["starts_from.model"] == "models:/pretrain-cnet/2"
    assert not any(k.startswith("init_weights") for k in asha.data.params)


def test_the_printed_link_opens_a_saved_view_of_the_searchs_trials(tmp_path):
    """The link names a view saved on the experiment (MLflow's Share): this search's trial runs, best
    first by best_<metric>, with the columns that say which won; local stores name the port they assume."""
    import json

    uri, client, exp, parent = _setup(tmp_path)
    key = tracking.save_trials_view(client, exp, parent, "val_balanced_accuracy", "max", ["train.lr"])
    view = json.loads(client.get_experiment(exp).tags[f"mlflow.sharedViewState.{key}"])
    assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent}'"
    assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`best_val_balanced_accuracy`", False)
    assert {"params.`train.lr`", "tags.`ecgtune.selected`", "metrics.`test_balanced_accuracy`",
            "metrics.`system/epoch`"} <= set(view["selectedColumns"])
    assert tracking.trials_view(parent, "val_loss", "min", [])["orderByAsc"] is True
    link = tracking.where_to_look(uri, exp, key)
    assert link.startswith(f"mlflow ui --backend-store-uri {uri} --port 5000, then http://127.0.0.1:5000/#/experiments/{exp}/runs?")
    assert f"workflowType=machine_learning&viewStateShareKey={key}" in link and "--mlflow-ui-url" in link
    assert tracking.where_to_look(uri, exp, key, "http://lab:8080/").startswith(f"http://lab:8080/#/experiments/{exp}/runs?")
    assert tracking.where_to_look("http://mlflow:5000", exp).startswith("http://mlflow:5000/#/experiments/")
