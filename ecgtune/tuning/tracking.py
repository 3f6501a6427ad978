"""MLflow tracking: one experiment per space, a parent run per invocation, a nested run per trial.

The trial runs are written by a Tune callback on the driver, so trials on remote nodes need no route to
the tracking server, and the best checkpoint of every trial is uploaded by us (MLflowLoggerCallback makes
flat runs and uploads no checkpoints).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from ray.tune import Callback

from ecgtune.paths import ecgtune_home

TRIAL_TAG = "ecgtune.trial_id"
SELECTED_TAG = "ecgtune.selected"
SEARCH_TAG = "ecgtune.search"  # on a parent run: the search (invocation name) it records
MODEL_TAG = "ecgtune.model"
ERROR_TAG = "ecgtune.error"  # on a failed trial run: why it failed
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # a run's or an experiment's description in the MLflow UI
BEST_EPOCH_TAG = "ecgtune.best_epoch"  # on a trial run: the epoch its best_val_* figures are of
STOPPED_TAG = "ecgtune.stopped_by"  # on a trial run its unit's scheduler stopped early: the scheduler ("asha")
# What the trainable reports that belongs in MLflow; Ray's own bookkeeping fields stay out.
LOGGED_PREFIXES = ("train_", "val_")
LOGGED_KEYS = ("best_metric",)  # the best-so-far validation value: each trial's own curve
# Bookkeeping, not figures: MLflow's UI keeps metrics under "system/" out of the model charts (its System
# metrics section). lr: the schedule's value each epoch; epoch: how far a trial got (ASHA, early stopping),
# a column in the runs table.
SYSTEM_KEYS = {"lr": "system/lr", "epoch": "system/epoch"}
# The trainable reports the validation figures of the trial's best epoch so far as best_val_*: written once,
# when the trial ends, beside the per-epoch series (whose last value is the last epoch's, not the best).
BEST_PREFIX = "best_val_"
# Where a trial ran: Tune adds the node's IP and host name to every result, the trainable its node id and
# the GPU ids Ray assigned it ("" on the CPU). On a cluster, which node and which GPU trained it.
LOCATION_TAGS = {"node_ip": "ray.node_ip", "hostname": "ray.hostname", "node_id": "ray.node_id", "gpu_ids": "ray.gpu_ids"}
# What a trial's config says of its unit, as tags every run of the unit carries.
UNIT_TAGS = {"space": "ecgtune.space", "unit": "ecgtune.unit", "stage": "ecgtune.stage", "patient": "ecgtune.patient"}


def tracking_uri(explicit: str | None = None) -> str:
    """`--mlflow-uri`, else MLFLOW_TRACKING_URI, else a SQLite file in the ecgtune home.

    MLflow refuses its file store now, so the embedded default is SQLite, not ./mlruns.
    """
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = ecgtune_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def client(uri: str):
    from mlflow.tracking import MlflowClient

    from ecgtune.tuning.store_tables import ensure_tables

    ensure_tables(uri)  # two searches on a new SQLite store: one makes its tables, the other waits
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_location(uri: str, name: str) -> str | None:
    """Beside a SQLite store, artifacts go next to the database file; MLflow's own default is
    ./mlruns in whatever folder the user happened to run from. A server decides for itself."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):])
    return (database.parent / "mlartifacts" / name).resolve().as_uri()


EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(mlflow_client, name: str, description: str | None = None) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        exp_id = found.experiment_id
        if found.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(exp_id)
    else:
        exp_id = mlflow_client.create_experiment(name, artifact_location=artifact_location(mlflow_client.tracking_uri, name))
    # MLflow's UI reads this kind to open an experiment on its training runs rather than its GenAI overview
    # (traces, all empty), where it has no GenAI / Model training switch; 3.17 has one (see runs_page).
    # Set on older experiments too.
    if found is None or found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow_client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    if description and (found is None or found.tags.get(NOTE_TAG) != description):
        mlflow_client.set_experiment_tag(exp_id, NOTE_TAG, description)
    return exp_id


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default (its --port 5000)
# MLflow's UI opens an experiment in a view saved as an experiment tag when the URL names its key
# (`viewStateShareKey`, the UI's own Share button): the search filter, the order and the table's columns,
# which its plain URL parameters cannot set (searchFilter, orderByKey and orderByAsc only; the columns live
# in the browser's storage). Read from MLflow 3.17's UI bundle (mlflow/server/js).
SHARED_VIEW_TAG, SHARED_VIEW_PARAM = "mlflow.sharedViewState.", "viewStateShareKey"


def runs_page(ui_url: str, experiment_id: str, view: str | None = None) -> str:
    """The experiment's table of training runs in the MLflow UI, in the saved ``view`` if given. MLflow
    3.17's UI picks its GenAI or model training view from a switch the browser remembers (GenAI at first),
    not from the experiment's kind tag: the URL names the view."""
    query = "workflowType=machine_learning" + (f"&{SHARED_VIEW_PARAM}={view}" if view else "")
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def trials_view(parent_run_id: str, metric: str, mode: str, params: list[str]) -> dict:
    """The runs table a search's link opens: its trial runs (flat, not folded under the parent), best
    first by their best validation figure, with the columns that say which won and why (``params``: the
    searched parameters' names, ``train.lr``)."""
    from ecgtune.spaces import measure_of

    best = f"metrics.`best_{metric}`"
    # The run name already says the unit (stage, patient, model) and the values chosen, readably.
    columns = [f"tags.`{SELECTED_TAG}`", best, f"metrics.`test_{measure_of(metric)}`",
               *(f"params.`{p}`" for p in params), "metrics.`system/epoch`", f"tags.`{STOPPED_TAG}`",
               "attributes.`Duration`", "attributes.`Models`"]
    return {"searchFilter": f"tags.`{PARENT_TAG}` = '{parent_run_id}'", "orderByKey": best,
            "orderByAsc": mode == "min", "selectedColumns": columns,
            "runsHiddenMode": "SHOW_ALL"}  # the charts show every trial, not the UI's first ten


def save_trials_view(mlflow_client, exp_id: str, parent_run_id: str, metric: str, mode: str, params: list[str]) -> str:
    """Save a search's view of its trials on its experiment; returns the key its URL names."""
    import json

    key = f"ecgtune-{parent_run_id}"
    view = trials_view(parent_run_id, metric, mode, params)
    mlflow_client.set_experiment_tag(exp_id, SHARED_VIEW_TAG + key, json.dumps(view))
    return key


def where_to_look(uri: str, experiment_id: str, view: str | None = None, ui_url: str | None = None) -> str:
    """How a user opens a search's runs: the server's page, or the command that serves a local store and
    the page at the address that command serves (``ui_url``: another address, --mlflow-ui-url)."""
    if ui_url:
        return runs_page(ui_url, experiment_id, view)
    if uri.startswith(("http://", "https://")):
        return runs_page(uri, experiment_id, view)
    return (f"mlflow ui --backend-store-uri {uri} --port 5000, then {runs_page(LOCAL_UI, experiment_id, view)} "
            "(the UI elsewhere: --mlflow-ui-url)")


def numeric_metrics(result: dict) -> dict[str, float]:
    """The trainable's metrics in a Tune result (finite numbers only: MLflow refuses NaN in some stores)."""
    out = {}
    for key, value in result.items():
        if (key.startswith(LOGGED_PREFIXES) or key in LOGGED_KEYS or key in SYSTEM_KEYS) and _finite(value):
            out[SYSTEM_KEYS.get(key, key)] = float(value)
    return out


def best_metrics(result: dict) -> dict[str, float]:
    """The best epoch's validation figures in a trial's last result (``best_val_*``)."""
    return {key: float(value) for key, value in result.items() if key.startswith(BEST_PREFIX) and _finite(value)}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def stopped_early(result: dict, config: dict) -> bool:
    """Whether Tune's scheduler stopped the trial with this result: it marks the result done (the trainable's
    own end, early stopping included, comes as a result of its own that no callback sees) before the
    trial's last epoch."""
    epochs = config.get("train", {}).get("epochs")
    return bool(result.get("done")) and isinstance(epochs, int) and int(result.get("epoch", epochs)) < epochs


# Where a fine-tuning trial read its starting weights on this cluster's storage: a path that means nothing
# later; its run records the registered versions instead (``starts_from.<branch>``: models:/<name>/<version>).
UNLOGGED_CONFIG = ("init_weights",)


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in config.items():
        if not prefix and key in UNLOGGED_CONFIG:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def find_trial_run(mlflow_client, exp_id: str, parent_run_id: str, trial_id: str):
    runs = mlflow_client.search_runs(
        [exp_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'",
        max_results=1,
    )
    return runs[0] if runs else None


def search_parents(mlflow_client, exp_id: str, max_results: int = 1000) -> list:
    """The parent runs ecgtune searches opened in ``exp_id`` (one per invocation)."""
    return mlflow_client.search_runs([exp_id], filter_string=f"tags.`{SEARCH_TAG}` != ''", max_results=max_results)


def close_open_runs(mlflow_client, exp_id: str, parent_run_id: str, status: str = "FAILED") -> None:
    """Mark every run of this invocation still RUNNING as ``status``: a crash leaves none RUNNING."""
    runs = mlflow_client.search_runs(
        [exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    )
    for run in runs:
        mlflow_client.set_terminated(run.info.run_id, status)
    mlflow_client.set_terminated(parent_run_id, status)


DRIVER_HOST_TAG, DRIVER_PID_TAG = "ecgtune.driver_host", "ecgtune.driver_pid"  # the process a parent run belongs to


def driver_tags() -> dict[str, str]:
    """Tags naming this search process, so that a later search can tell its runs were orphaned."""
    import socket

    return {DRIVER_HOST_TAG: socket.gethostname(), DRIVER_PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def close_orphaned_runs(mlflow_client, exp_id: str) -> list[str]:
    """Close as FAILED the parent runs of ``exp_id`` left RUNNING by a search process of this machine that
    is gone (killed, or its MLflow store unwritable when it tried to close them), with their trial runs.
    Runs of live processes and of other machines are left alone. Returns the closed parent runs' names."""
    import socket

    host = socket.gethostname()
    parents = mlflow_client.search_runs(
        [exp_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{DRIVER_HOST_TAG}` = '{host}'")
    closed = []
    for run in parents:
        pid = run.data.tags.get(DRIVER_PID_TAG, "")
        if pid.isdigit() and not _alive(int(pid)):
            close_open_runs(mlflow_client, exp_id, run.info.run_id, "FAILED")
            closed.append(run.info.run_name or run.info.run_id)
    return closed


def unit_tags(config: dict) -> dict[str, str]:
    tags = {tag: str(config.get(key) or "all") for key, tag in UNIT_TAGS.items()}
    tags[MODEL_TAG] = config["model"]["name"]
    return tags


def trial_end_ms(trial, started_ms: int | None = None) -> int | None:
    """When the trial reported its last result, in ms (the trainable's own time, else Ray's timestamp in
    whole seconds), never before the run started; None if unknown."""
    return result_end_ms(getattr(trial, "last_result", None) or {}, started_ms)


def result_end_ms(result: dict, started_ms: int | None = None) -> int | None:
    """``trial_end_ms`` of a trial whose last result is ``result``."""
    stamp = next((result[k] for k in ("reported_at", "timestamp")
                  if isinstance(result.get(k), (int, float)) and result[k] > 0), None)
    if stamp is None:
        return None
    return max(int(stamp * 1000), started_ms or 0)


WRITE_EVERY_S = 2.0  # a trial's metrics reach MLflow this often at most (its last ones when it ends)
MAX_ENTITIES = 1000  # what MLflow takes in one log_batch: metrics, params and tags together
HOLD_AT_MOST = 800  # metrics held back for a trial before they are sent anyway


class MLflowTrialRuns(Callback):
    """A nested MLflow run per Tune trial: params, per-epoch metrics, best checkpoint as an artifact.

    One callback serves every space of a search: a trial's run goes to its space's experiment, under that
    space's parent run (``parents``: experiment name -> (experiment id, parent run id)). A trial restored
    by --resume (``resumed``) finds its run again by the trial-id tag instead of opening a duplicate; a
    trial retried after its node failed keeps its run.

    The writes go to the store from one thread of their own, in the order Tune reported the events: Tune
    calls its callbacks on the thread that also starts trials and takes their results, where every
    write to a SQLite store (a commit, tens of ms) held up the whole cluster's trials
    (benchmarks/bench_overhead.py). The first write that fails stops the writing and fails the search at
    Tune's next step, as it did when it ran there; ``flush`` waits for the writes asked for so far.

    A trial's metrics are written at most every WRITE_EVERY_S seconds (each epoch's with its own step and
    time): epochs of a fraction of a second (small models on a GPU) would otherwise make MLflow, not
    training, set the pace. Its params go with its first metrics, its last metrics with its end.
    """

    def __init__(self, uri: str, parents: dict[str, tuple[str, str]], resumed: bool = False,
                 labels: dict[str, dict] | None = None, writer=None):
        self.uri, self.parents, self.resumed = uri, parents, resumed
        self._writer = writer  # the search's one MlflowWriter (ecgtune.tuning.mlflow_writer); else its own
        # Per unit key: "searched" (config paths the search chooses), "several_models" (whether its space
        # holds several, so the run name says which).
        self.labels = labels or {}
        self._runs: dict[str, str] = {}
        self._started: dict[str, int] = {}  # per trial id, its run's start time (ms)
        self._tags: dict[str, list] = {}  # per trial id, the location tags last written
        self._params_due: set[str] = set()  # trial ids whose new run has no params yet
        self._pending: dict[str, tuple] = {}  # Tune's thread: per trial id, (trial, metrics, tags) not sent yet
        self._sent_at: dict[str, float] = {}  # Tune's thread: per trial id, when its metrics were last sent
        self._stopped: dict[str, str] = {}  # Tune's thread: per trial id its scheduler stopped early, the scheduler
        self._artifact_uris: dict[str, str] = {}  # per trial id, its run's artifact location
        # Per trial id restored by --resume, the last epoch its run holds: the trial goes on from its last
        # checkpoint, so the epochs after it that were logged before the interruption come again.
        self._logged_through: dict[str, int] = {}
        self._stopping = False  # Tune was asked to stop: MLflow stayed away beyond the retry budget
        self._caught_up = not resumed  # a resumed search checks once that every ended trial's run was closed

    def __getstate__(self):
        return dict(self.__dict__, _writer=None, _runs={}, _started={}, _tags={}, _artifact_uris={},
                    _params_due=set(), _pending={}, _sent_at={}, _stopped={}, _stopping=False,
                    _caught_up=not self.resumed, _logged_through={})

    @property
    def writer(self):
        if self._writer is None:
            from ecgtune.tuning.mlflow_writer import MlflowWriter

            self._writer = MlflowWriter(self.uri)
        return self._writer

    @property
    def mlflow(self):
        """The writer's client, each call retried (the writes run on the writer's thread)."""
        return self.writer.proxy()

    # -- the writer thread (the search's one MLflow writer)
    def _submit(self, write, what: str = "a trial run's write") -> None:
        """Queue ``write()``: it runs on the writer's thread, its MLflow calls retried one by one."""
        self._stop_on_error()
        self.writer.submit(write, what)

    def raise_error(self) -> None:
        """Raise the write that failed, once (the writes after it are dropped: the search is failing)."""
        self.writer.raise_error()

    def flush(self, raise_error: bool = True, timeout_s: float | None = None) -> None:
        """Send the metrics held back, wait until every write asked for so far is in the store (for
        ``timeout_s`` at most: then they are given up); raise the first that failed."""
        for trial_id in list(self._pending):
            if self.writer.error is None:
                self._send(trial_id)
        if timeout_s is None:
            self.writer.join()
        else:
            self.writer.drain(timeout_s)
        if raise_error:
            self.raise_error()

    def barrier(self):
        """An event set once the writes asked for so far are done (failed or not)."""
        return self.writer.barrier()

    # -- what is written, on the writer thread
    def run_id(self, trial) -> str:
        if trial.trial_id not in self._runs:
            exp_id, parent_run_id = self.parents[trial.config["space"]]
            # Only a resumed search has trials whose runs exist already (a query per trial otherwise).
            existing = find_trial_run(self.mlflow, exp_id, parent_run_id, trial.trial_id) if self.resumed else None
            if existing is not None:
                run_id = existing.info.run_id
                self._started[trial.trial_id] = existing.info.start_time
                self._artifact_uris[trial.trial_id] = existing.info.artifact_uri
                if not existing.data.params:  # the search stopped before its first metrics were written
                    self._params_due.add(trial.trial_id)
                if SYSTEM_KEYS["epoch"] in existing.data.metrics:  # its latest value: the last epoch logged
                    self._logged_through[trial.trial_id] = int(existing.data.metrics[SYSTEM_KEYS["epoch"]])
                self.mlflow.update_run(run_id, status="RUNNING")
            else:
                from ecgtune.tuning.run_labels import trial_run_name

                # "false" until selection marks one run of the unit "true": a column that sorts in the UI.
                tags = dict(unit_tags(trial.config), **{PARENT_TAG: parent_run_id, TRIAL_TAG: trial.trial_id,
                                                        SELECTED_TAG: "false"})
                unit = trial.config["unit"]
                label = self.labels.get(unit)
                name = (trial_run_name(trial.config, label["searched"], several_models=label["several_models"])
                        if label else str(trial))
                # A create_run whose answer was lost (MLflow went down after committing it) made the run:
                # an attempt after the first looks for it by the trial's id, so a trial never gets two.
                run = self.writer.find_or_create(
                    lambda: find_trial_run(self.writer.client, exp_id, parent_run_id, trial.trial_id),
                    lambda: self.writer.client.create_run(exp_id, run_name=name, tags=tags),
                    f"the run of trial {trial.trial_id}")
                run_id = run.info.run_id
                self._started[trial.trial_id] = run.info.start_time
                self._artifact_uris[trial.trial_id] = run.info.artifact_uri
                self._params_due.add(trial.trial_id)  # written with its first metrics: one write fewer
            self._runs[trial.trial_id] = run_id
        return self._runs[trial.trial_id]

    def _log_result(self, trial, metrics: list, tags: list, extra: tuple[list, list] | None = None) -> None:
        """Write the metrics held back (each epoch once), the params with the first of them, the location
        tags where they changed, and ``extra`` (metrics, tags: the best epoch's, at a trial's end): one write."""
        from mlflow.entities import Param

        run_id = self.run_id(trial)
        through = self._logged_through.get(trial.trial_id)
        if through is not None:  # epochs repeated after --resume: each epoch is logged once
            metrics = [m for m in metrics if m.step > through]
        params = []
        if trial.trial_id in self._params_due:
            self._params_due.discard(trial.trial_id)
            params = [Param(k, v[:6000]) for k, v in flat_params(trial.config).items()]
        # Where the trial runs changes only when Tune retries it elsewhere: tags written when they change.
        if tags is None or tags == self._tags.get(trial.trial_id):
            tags = []
        else:
            self._tags[trial.trial_id] = tags
        if extra:
            metrics, tags = [*metrics, *extra[0]], [*tags, *extra[1]]
        if metrics or params or tags:
            first = MAX_ENTITIES - len(params) - len(tags)
            self.mlflow.log_batch(run_id, metrics=metrics[:first], params=params, tags=tags)
            for start in range(first, len(metrics), MAX_ENTITIES):
                self.mlflow.log_batch(run_id, metrics=metrics[start:start + MAX_ENTITIES])

    def _complete(self, trial, checkpoint, last_result: dict, metrics: list, tags, stopped_by: str | None = None) -> None:
        from mlflow.entities import RunTag

        # The best epoch's figures (and who stopped the trial) go with the last metrics: one write, not three.
        best, extra_tags = self._best_entities(last_result)
        if stopped_by:
            epochs = trial.config.get("train", {}).get("epochs")
            extra_tags += [RunTag(STOPPED_TAG, stopped_by),
                           RunTag(NOTE_TAG, f"Stopped by the {stopped_by.upper()} scheduler after epoch "
                                            f"{last_result.get('epoch')} of {epochs}: its validation figure at that "
                                            "point was below its rung's cut.")]
        self._log_result(trial, metrics, tags, (best, extra_tags))
        run_id = self.run_id(trial)
        if checkpoint is not None:
            # The trainable checkpoints only on improvement, so the latest checkpoint is the best one.
            self._upload_checkpoint(trial.trial_id, run_id, checkpoint)
        # Ended when the trial's last epoch did, not when the driver got round to it (after the upload
        # above, and behind other trials' events): the UI's duration is the trial's own. KILLED is the one
        # status MLflow has for a run ended from outside; the tag says who ended it.
        end = result_end_ms(last_result, self._started.pop(trial.trial_id, None))
        self.mlflow.set_terminated(run_id, "KILLED" if stopped_by else "FINISHED", end_time=end)
        self._forget(trial.trial_id)  # the driver keeps nothing per finished trial

    @staticmethod
    def _best_entities(last_result: dict) -> tuple[list, list]:
        """``best_val_*`` once, at the best epoch's step, and that epoch as a tag (nothing before an epoch)."""
        from mlflow.entities import Metric, RunTag

        best = best_metrics(last_result)
        if not best:
            return [], []
        step = int(last_result.get("best_epoch") or last_result.get("epoch") or 0)
        stamp = int(time.time() * 1000)
        return [Metric(k, v, stamp, step) for k, v in best.items()], [RunTag(BEST_EPOCH_TAG, str(step))]

    def _failed_run(self, trial, error: str, metrics: list, tags, last_result: dict | None = None) -> None:
        self._log_result(trial, metrics, tags, self._best_entities(last_result or {}))
        # The exception's line on the run itself: the UI's FAILED run says why (out of memory at batch 512).
        self.mlflow.set_tag(self.run_id(trial), ERROR_TAG, error)
        self.mlflow.set_terminated(self.run_id(trial), "FAILED")
        self._forget(trial.trial_id)

    def _upload_checkpoint(self, trial_id: str, run_id: str, checkpoint) -> None:
        """The trial's best weights and model spec (its checkpoint's STATE_FILE) as the run's ``checkpoint``
        artifact, copied as it is; what only resuming the trial needs stays in Tune's storage
        (`ecgtune.training.checkpoint`). Promotion, fine-tuning, the gate and by-value read it."""
        import os

        from ecgtune.training.checkpoint import STATE_FILE

        with checkpoint.as_directory() as source:
            repository = self._artifacts(trial_id, run_id)
            self.writer.retried(lambda: repository.log_artifact(os.path.join(source, STATE_FILE), "checkpoint"),
                                f"the checkpoint of run {run_id}")

    def _artifacts(self, trial_id: str, run_id: str):
        """The run's artifact repository, from the location its creation returned: the client's own
        log_artifacts reads the run back from the store first (a third of the upload's cost)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        uri = self._artifact_uris.get(trial_id) or self.mlflow.get_run(run_id).info.artifact_uri
        # The search's tracking URI, not the process's: an mlflow-artifacts: location (a server that proxies
        # artifacts) is resolved against it, and the process's may be another store or none.
        return get_artifact_repository(uri, tracking_uri=self.uri)

    def _forget(self, trial_id: str) -> None:
        for per_trial in (self._runs, self._started, self._tags, self._artifact_uris, self._logged_through):
            per_trial.pop(trial_id, None)
        self._params_due.discard(trial_id)

    # -- Tune's events, on its thread: what to write is taken from the trial now (it changes later)
    def on_step_begin(self, iteration, trials, **info):
        self._stop_on_error()
        if not self._caught_up:
            self._caught_up = True
            ended = [(t, t.checkpoint, dict(getattr(t, "last_result", None) or {}))
                     for t in trials if getattr(t, "status", None) == "TERMINATED"]
            if ended:
                self._submit(lambda: self._close_ended(ended), "closing the runs of trials that ended")

    def _close_ended(self, ended: list) -> None:
        """Trials that ended before the search stopped but whose run's last writes never happened (MLflow
        was away for good, or the driver died first): Tune will not report them again, so their runs are
        closed now, with their checkpoint and best figures (the epochs' series may lack the epochs whose
        writes were dropped). One query per experiment, not per trial."""
        closed = set()
        for exp_id, parent_run_id in set(self.parents.values()):
            runs = self.mlflow.search_runs([exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                                           max_results=50000)
            # Ended by its own writes: FINISHED, or stopped by the scheduler, or failed with its reason. A run
            # closed from outside (a stopping search: KILLED; a later search: FAILED) is not.
            closed |= {r.data.tags.get(TRIAL_TAG) for r in runs
                       if r.info.status == "FINISHED" or STOPPED_TAG in r.data.tags or ERROR_TAG in r.data.tags}
        for trial, checkpoint, last_result in ended:
            if trial.trial_id in closed or trial.config.get("space") not in self.parents:
                continue
            stopped_by = (trial.config.get("scheduler") or "asha") if stopped_early(last_result, trial.config) else None
            self._complete(trial, checkpoint, last_result, [], None, stopped_by)

    def _stop_on_error(self) -> None:
        """On Tune's thread: end the run if a write failed for good."""
        from ecgtune.tuning.mlflow_retry import MlflowUnavailable
        from ecgtune.tuning.mlflow_writer import stop_trials_gracefully

        # MLflow away beyond the retry budget is no bug: Tune stops as at Ctrl-C, its state saved, and the
        # search raises the writer's error once Tune returned (flush); --resume finishes it. An exception
        # raised here would end Tune's run without saving its state.
        if isinstance(self.writer.error, MlflowUnavailable):
            if self._stopping or stop_trials_gracefully():
                self._stopping = True
                return
        self.raise_error()

    def on_trial_start(self, iteration, trials, trial, **info):
        self._sent_at[trial.trial_id] = time.monotonic()
        self._submit(lambda: self.run_id(trial))

    def _take(self, trial_id: str) -> tuple[list, list | None]:
        """The metrics and latest tags held back for a trial (Tune's thread)."""
        _, metrics, tags = self._pending.pop(trial_id, (None, [], None))
        return metrics, tags

    def _send(self, trial_id: str) -> None:
        trial = self._pending[trial_id][0]
        metrics, tags = self._take(trial_id)
        self._sent_at[trial_id] = time.monotonic()
        self._submit(lambda: self._log_result(trial, metrics, tags))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric, RunTag

        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in numeric_metrics(result).items()]
        tags = [RunTag(tag, str(result[key]) or "none") for key, tag in LOCATION_TAGS.items() if key in result]
        _, held, _ = self._pending.get(trial.trial_id, (None, [], None))
        self._pending[trial.trial_id] = (trial, held + metrics, tags)
        if stopped_early(result, trial.config):
            self._stopped[trial.trial_id] = trial.config.get("scheduler") or "asha"
        if (time.monotonic() - self._sent_at.get(trial.trial_id, 0.0) >= WRITE_EVERY_S
                or len(held) + len(metrics) >= HOLD_AT_MOST):
            self._send(trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        # Its node went away; Tune restarts it from its last checkpoint, in the same run.
        failures = str(trial.num_failures)
        self._submit(lambda: self.mlflow.set_tag(self.run_id(trial), "ray.failures", failures))

    def on_trial_complete(self, iteration, trials, trial, **info):
        checkpoint, last_result = trial.checkpoint, dict(getattr(trial, "last_result", None) or {})
        metrics, tags = self._take(trial.trial_id)
        self._sent_at.pop(trial.trial_id, None)
        stopped_by = self._stopped.pop(trial.trial_id, None)
        self._submit(lambda: self._complete(trial, checkpoint, last_result, metrics, tags, stopped_by))

    def on_trial_error(self, iteration, trials, trial, **info):
        from ecgtune.tuning.completion import error_text

        error = error_text(trial)
        last_result = dict(getattr(trial, "last_result", None) or {})
        metrics, tags = self._take(trial.trial_id)
        self._sent_at.pop(trial.trial_id, None)
        self._stopped.pop(trial.trial_id, None)
        self._submit(lambda: self._failed_run(trial, error, metrics, tags, last_result))

    def on_experiment_end(self, trials, **info):
        self.flush()
