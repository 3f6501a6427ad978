"""Telling MLflow's "there is no such thing" from "MLflow did not answer", and retrying the second.

A registry read that fails for a moment (a server restarting, a SQLite store locked by another writer)
must not read as "no champion yet": the alias would move to the new version unchallenged. Only MLflow's
own answer that a resource does not exist means absent; any other MLflow or connection error is retried
with backoff for ECGTUNE_MLFLOW_RETRY_S seconds (default 600), then fails loudly, nothing changed.
"""

from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

from ecgtune.errors import EcgtuneError

T = TypeVar("T")

RETRY_ENV = "ECGTUNE_MLFLOW_RETRY_S"
DEFAULT_RETRY_S = 600.0
# Answers that retrying cannot change: the request itself is wrong, or what it names is (not) there.
FINAL_CODES = {"RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE", "BAD_REQUEST",
               "PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_STATE"}


class MlflowUnavailable(EcgtuneError):
    """MLflow kept failing for longer than the retry budget."""


def retry_budget_s() -> float:
    raw = os.environ.get(RETRY_ENV)
    if raw is None:
        return DEFAULT_RETRY_S
    try:
        value = float(raw)
    except ValueError:
        raise EcgtuneError(f"{RETRY_ENV}={raw!r}: expected a number of seconds, e.g. 600") from None
    if value < 0:
        raise EcgtuneError(f"{RETRY_ENV}={raw!r}: expected a number of seconds, at least 0")
    return value


def error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def is_absent(exc: BaseException) -> bool:
    """MLflow's own answer that the named resource does not exist."""
    return error_code(exc) == "RESOURCE_DOES_NOT_EXIST"


def is_transient(exc: BaseException) -> bool:
    """An MLflow error that may pass (a server error, a lost connection, a locked store), or a
    connection error of the HTTP client; not a wrong request, and not a bug of ours (those raise at once)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return error_code(exc) not in FINAL_CODES
    return isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.startswith(("requests", "urllib3"))


def retried(call: Callable[[], T], what: str, *, budget_s: float | None = None,
            sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, again with backoff (0.5 s doubling to 30 s) while it fails transiently, for ``budget_s``
    seconds at most (ECGTUNE_MLFLOW_RETRY_S); then MlflowUnavailable naming ``what`` and the last error."""
    budget = retry_budget_s() if budget_s is None else budget_s
    deadline, delay = time.monotonic() + budget, 0.5
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                detail = " ".join(str(exc).split())[:300]
                raise MlflowUnavailable(
                    f"{what}: MLflow kept failing for {budget:.0f} s ({type(exc).__name__}: {detail}); nothing was "
                    f"changed for it; {RETRY_ENV} sets how long to wait, --resume finishes the search") from None
            sleep(min(delay, left))
            delay = min(delay * 2, 30.0)
