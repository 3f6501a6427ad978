"""A search called as a library leaves its process as it found it: SIGTERM handler, environment, MLflow's
URIs, log levels."""

from __future__ import annotations

import logging
import os
import signal

import mlflow
import pytest

from ecgtune.tuning.process_state import restored_process_state


def _state() -> dict:
    return {
        "sigterm": signal.getsignal(signal.SIGTERM),
        "environ": dict(os.environ),
        "tracking": mlflow.get_tracking_uri(),
        "registry": mlflow.get_registry_uri(),
        "levels": {n: logging.getLogger(n).level for n in ("optuna", "mlflow.store.db.utils")},
    }


@pytest.fixture
def caller_state(tmp_path, monkeypatch):
    """A caller with settings of its own (a notebook that already uses MLflow and a SIGTERM handler)."""
    def handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, handler)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'callers.db'}")
    monkeypatch.setenv("CALLERS_OWN", "1")
    logging.getLogger("optuna").setLevel(logging.DEBUG)
    yield
    signal.signal(signal.SIGTERM, previous)
    logging.getLogger("optuna").setLevel(logging.NOTSET)
    mlflow.set_tracking_uri(None)


def test_what_a_search_changes_is_put_back_even_when_it_raises(caller_state, tmp_path):
    before = _state()
    with pytest.raises(RuntimeError, match="the search failed"):
        with restored_process_state():
            signal.signal(signal.SIGTERM, lambda s, f: None)
            os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
            del os.environ["CALLERS_OWN"]
            mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'search.db'}")  # also sets MLFLOW_TRACKING_URI
            mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'search.db'}")
            logging.getLogger("optuna").setLevel(logging.WARNING)
            assert _state() != before
            raise RuntimeError("the search failed")
    assert _state() == before


@pytest.mark.integration
def test_run_search_as_a_library_call_restores_its_callers_settings(caller_state, real_data_dir, ray_local, tmp_path):
    from ecgtune.spaces import load_search, shape_search
    from ecgtune.tuning.search import run_search

    before = _state()
    spaces, _ = load_search(["quickstart"])
    summaries = run_search(shape_search(spaces, smoke_test=True), mlflow_uri=f"sqlite:///{tmp_path / 'search.db'}",
                           data_dir=str(real_data_dir), echo=lambda line: None)
    assert summaries and all(s.version for s in summaries)  # it ran and registered its champion
    assert _state() == before
