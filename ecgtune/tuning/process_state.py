"""What a search changes in its own process, put back when it returns or raises.

`run_search` is also a library call (a notebook, a service that runs several searches): the SIGTERM
handler it installs, the environment variables it sets for Ray Tune and MLflow, MLflow's global tracking
and registry URIs (which its model logging sets) and the log levels it quiets must not outlive it.
Settings meant for the whole process belong to the command line (ecgtune/cli.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

# Loggers a search sets (MLflow's table creation, Optuna's line per study): their levels are put back.
QUIETED_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration", "optuna")


URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # which mlflow.set_*_uri also set, for subprocesses


def mlflow_uris() -> tuple:
    """The URIs set with mlflow.set_tracking_uri/set_registry_uri (None: taken from the environment) and the
    environment variables those set. MLflow keeps the first in module globals and has no public getter
    that tells "set" from "derived"."""
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    return tracking._tracking_uri, registry._registry_uri, {name: os.environ.get(name) for name in URI_VARIABLES}


def restore_mlflow_uris(tracking_uri: str | None, registry_uri: str | None, variables: dict) -> None:
    import mlflow
    from mlflow.tracking._model_registry import utils as registry

    if mlflow_uris()[0] != tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)  # also resets MLflow's tracer, which keeps the URI
    registry._registry_uri = registry_uri
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def restored_process_state() -> Iterator[None]:
    environment = dict(os.environ)
    on_main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if on_main_thread else None
    uris = mlflow_uris()
    levels = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    try:
        yield
    finally:
        restore_mlflow_uris(*uris)  # before the environment: setting a URI sets MLFLOW_TRACKING_URI too
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        for name, value in environment.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        if on_main_thread and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
