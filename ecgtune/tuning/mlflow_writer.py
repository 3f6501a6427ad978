"""The one MLflow writer of a search: a queue and a thread on the driver, one client, every write retried.

Trial runs (Tune's callback), selection, test evaluation and promotion (the finaliser's thread) all write
through it: two clients writing one SQLite store from two threads fail with "database is locked", and a
write on Tune's own thread holds up every trial. Each write is retried with backoff while MLflow fails
transiently (`ecgtune.tuning.mlflow_retry`), so a search whose MLflow server is down for a while keeps
training, its writes queue up, and they reach the store once it answers again. A write that keeps failing
beyond ECGTUNE_MLFLOW_RETRY_S stops the writer: the writes after it are dropped and the search stops the
way Ctrl-C stops it (Tune saves its state), so that ``--resume`` finishes it.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

from ecgtune.tuning.mlflow_retry import MlflowUnavailable, retried, retry_budget_s

T = TypeVar("T")

# MLflow's HTTP client retries a refused connection 7 times with a backoff factor of 2 (about 4 minutes
# per call, the user's Ctrl-C unheard meanwhile) and waits 120 s for an answer. The writer retries
# with its own budget, so each call gives up fast and the writer's backoff decides how long to wait.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def fail_fast_http() -> None:
    """MLflow's HTTP retries short, unless the user set them (`run_search` puts the environment back)."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def find_or_create(find: Callable[[], T | None], create: Callable[[], T], what: str, **retry) -> T:
    """``create()`` retried without making two: a create whose answer was lost (a timeout, a server that
    went down after committing) may have made the thing, so every attempt after the first looks for it
    with ``find()`` first."""
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            found = find()
            if found is not None:
                return found
        return create()

    return retried(attempt, what, **retry)


class MlflowWriter:
    """Runs MLflow writes in order on one thread, with one client of ``uri``.

    ``submit`` queues a write and returns at once (Tune's callbacks); ``call`` queues one and waits for its
    answer (the finaliser); a call made on the writer's own thread runs at once. The first write that
    fails for good is kept in ``error``; the writes queued after it are dropped, except barriers and calls
    (unless MLflow itself is gone).
    """

    def __init__(self, uri: str, *, budget_s: float | None = None, sleep: Callable[[float], None] | None = None,
                 make_client: Callable[[str], object] | None = None):
        self.uri = uri
        self.budget_s = retry_budget_s() if budget_s is None else budget_s
        self._sleep, self._make_client = sleep, make_client
        self._client = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.error: BaseException | None = None
        self._raised = False
        self._cancelled = threading.Event()  # a stopping search gave up on the writes still queued

    @property
    def client(self):
        """The writer's own MlflowClient (use it on the writer's thread, or through ``proxy``)."""
        if self._client is None:
            if self._make_client is not None:
                self._client = self._make_client(self.uri)
            else:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def on_writer_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _pause(self, seconds: float) -> None:
        """The backoff between attempts; cut short when the search gives up on its writes (``drain``)."""
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._cancelled.wait(seconds)
        if self._cancelled.is_set():
            raise MlflowUnavailable("the search stopped while MLflow did not answer; --resume finishes it")

    def retried(self, call: Callable[[], T], what: str) -> T:
        return retried(call, what, budget_s=self.budget_s, sleep=self._pause)

    def find_or_create(self, find, create, what: str):
        return find_or_create(find, create, what, budget_s=self.budget_s, sleep=self._pause)

    def submit(self, write: Callable[[], object], what: str, always: bool = False, waited: bool = False) -> Future:
        """Queue ``write()`` (it retries its own steps: ``retried``, ``find_or_create``, ``proxy``); ``always``:
        run it even after a write failed (a barrier someone waits on); ``waited``: someone waits for its
        answer (its failure is theirs to handle)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="ecgtune-mlflow", daemon=True)
                self._thread.start()
        future: Future = Future()
        self._queue.put((write, what, always, waited, future))
        return future

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` on the writer's thread, retried; its answer or its error."""
        if self.on_writer_thread():
            return self.retried(fn, what)
        if isinstance(self.error, MlflowUnavailable):
            raise self.error  # at once, not after another budget of retries
        return self.submit(lambda: self.retried(fn, what), what, waited=True).result()

    def _work(self) -> None:
        while True:
            write, what, always, waited, future = self._queue.get()
            try:
                # After a failure the trials' writes are dropped (the search is stopping); a caller waiting
                # (closing the runs) is still answered, unless MLflow itself is gone.
                if self.error is not None and not always and (not waited or isinstance(self.error, MlflowUnavailable)):
                    future.set_exception(self.error)
                    continue
                result = write()
                future.set_result(result)
            except BaseException as exc:
                future.set_exception(exc)
                # MLflow gone for good fails every write after it too; a queued write that failed (a bug,
                # a wrong request) stops the writing: the search fails at Tune's next step. A caller
                # waiting on ``call`` gets its own error and decides.
                if isinstance(exc, MlflowUnavailable) or not waited:
                    if self.error is None:
                        self.error = exc
            finally:
                self._queue.task_done()

    def raise_error(self) -> None:
        """Raise the write that failed, once."""
        if self.error is not None and not self._raised:
            self._raised = True
            raise self.error

    def join(self) -> None:
        """Wait until every write queued so far is done (or dropped)."""
        if self._thread is not None:
            self._queue.join()

    def drain(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the writes queued so far (a stopping search: Ctrl-C must not wait
        out an MLflow outage); past it, give up on them (MlflowUnavailable from then on). Whether all
        were done."""
        if self.barrier().wait(timeout_s):
            return True
        if self.error is None:
            self.error = MlflowUnavailable(f"MLflow did not take this search's last writes within {timeout_s:.0f} s "
                                           "of its stop; --resume finishes it")
        self._cancelled.set()
        return False

    def barrier(self) -> threading.Event:
        """An event set once the writes queued so far are done (failed or not)."""
        done = threading.Event()
        if self._thread is None:
            done.set()
        else:
            self.submit(done.set, "a barrier", always=True)
        return done

    def proxy(self) -> "WriterClient":
        return WriterClient(self)


class WriterClient:
    """An MlflowClient whose every method runs on the writer's thread, retried (the finaliser's view)."""

    def __init__(self, writer: MlflowWriter):
        self._writer = writer

    @property
    def tracking_uri(self) -> str:
        return self._writer.uri

    def run(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` (several MLflow steps) on the writer's thread, retried as a whole."""
        return self._writer.call(fn, what)

    def __getattr__(self, name: str):
        method = getattr(self._writer.client, name)
        if not callable(method):
            return method

        def on_writer(*args, **kwargs):
            return self._writer.call(lambda: method(*args, **kwargs), name)

        return on_writer


def on_writer(mlf, fn: Callable[[], T], what: str) -> T:
    """``fn()`` on the writer's thread when ``mlf`` writes through one (several steps that must not
    interleave with other writes, or write with MLflow's fluent API), else here."""
    return mlf.run(fn, what) if isinstance(mlf, WriterClient) else fn()


def stop_trials_gracefully() -> bool:
    """Stop the Tune run on this process the way Ctrl-C does: Tune saves its state (unfinished trials stay
    unfinished, for --resume) instead of ending at an exception. False where Tune has no handler for it
    (Tune run off the main thread): the caller raises instead."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        return False
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
        return False
    signal.raise_signal(signal.SIGUSR1)  # Tune's handler: it sets the run's "interrupted" event
    return True
