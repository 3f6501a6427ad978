"""Helpers for reading back what a search left in a real MLflow store."""

from __future__ import annotations

import pytest


@pytest.fixture
def mlflow_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs_of(uri: str, experiment: str):
    """(parent runs, child runs) of an experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children
