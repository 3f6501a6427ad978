"""MLflow failing under promotion and the gate, on a real SQLite registry with faults injected into the
client: only "does not exist" means absent; anything else is retried, then fails loudly with the alias
where it was."""

from __future__ import annotations

import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2 as codes

from ecgtune.models import create_model
from ecgtune.tuning import promotion, tracking
from ecgtune.tuning.mlflow_retry import MlflowUnavailable, is_absent, is_transient, retried, retry_budget_s

NAME = "ecgtune-fault-model"


class Faulty:
    """A real MlflowClient whose ``method`` fails ``times`` times (forever: None) with ``code`` first."""

    def __init__(self, client, method: str, times: int | None, code: int = codes.TEMPORARILY_UNAVAILABLE):
        self._client, self._method, self._left, self._code = client, method, times, code
        self.failures = 0

    def __getattr__(self, attr):
        real = getattr(self._client, attr)
        if attr != self._method:
            return real

        def failing(*args, **kwargs):
            if self._left is None or self._left > 0:
                self._left = None if self._left is None else self._left - 1
                self.failures += 1
                raise MlflowException("database is locked", error_code=self._code)
            return real(*args, **kwargs)

        return failing


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGTUNE_MLFLOW_RETRY_S", "3")
    client = tracking.client(f"sqlite:///{tmp_path / 'registry.db'}")
    return client, tracking.experiment_id(client, "faults")


def _promote(client, exp, value: float, unit: str):
    run = client.create_run(exp)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).eval()
    try:
        return promotion.promote(
            client, name=NAME, run_id=run.info.run_id, model=model, example={"signal": torch.zeros(2, 1, 128).numpy()},
            metric="val_balanced_accuracy", value=value, mode="max",
            tags={"split": "per_patient", "data_key": "k", promotion.INVOCATION_TAG: f"search/{unit}"})
    finally:
        client.set_terminated(run.info.run_id)


def _champion(client) -> str:
    return str(client.get_model_version_by_alias(NAME, "champion").version)


def test_a_transient_error_reading_the_champion_is_retried_and_the_gate_still_compares(registry):
    client, exp = registry
    first = _promote(client, exp, 0.80, "a")
    faulty = Faulty(client, "get_registered_model", times=2)
    worse = _promote(faulty, exp, 0.70, "b")
    assert faulty.failures == 2
    assert not worse.champion and worse.previous == pytest.approx(0.80)
    assert _champion(client) == first.version
    assert client.get_model_version(NAME, worse.version).tags["gate.decision"].startswith("kept version")


def test_a_persistent_error_fails_loudly_and_never_moves_the_alias(registry):
    client, exp = registry
    first = _promote(client, exp, 0.80, "a")
    faulty = Faulty(client, "get_registered_model", times=None)
    with pytest.raises(MlflowUnavailable, match=f"registered model {NAME}.*ECGTUNE_MLFLOW_RETRY_S"):
        _promote(faulty, exp, 0.99, "b")  # it would win: the alias must still not move unchallenged
    assert faulty.failures >= 2 and _champion(client) == first.version
    # The unit finalised again (--resume) reuses the version it registered and compares it properly.
    again = _promote(client, exp, 0.99, "b")
    assert again.champion and again.previous == pytest.approx(0.80)
    assert len(client.search_model_versions(f"name='{NAME}'")) == 2


def test_a_failing_alias_write_is_retried(registry):
    client, exp = registry
    _promote(client, exp, 0.80, "a")
    faulty = Faulty(client, "set_registered_model_alias", times=1)
    better = _promote(faulty, exp, 0.90, "b")
    assert faulty.failures == 1 and better.champion and _champion(client) == better.version


def test_only_does_not_exist_means_absent():
    absent = MlflowException("no such model", error_code=codes.RESOURCE_DOES_NOT_EXIST)
    locked = MlflowException("database is locked", error_code=codes.TEMPORARILY_UNAVAILABLE)
    server = MlflowException("API request failed: 503", error_code=codes.INTERNAL_ERROR)
    wrong = MlflowException("bad name", error_code=codes.INVALID_PARAMETER_VALUE)
    assert is_absent(absent) and not is_absent(locked) and not is_absent(server)
    assert is_transient(locked) and is_transient(server) and is_transient(ConnectionRefusedError())
    assert not is_transient(absent) and not is_transient(wrong) and not is_transient(KeyError("bug"))


def test_retried_backs_off_then_answers_or_names_what_failed():
    waits, failures = [], iter([True, True, True, False])

    def flaky():
        if next(failures):
            raise ConnectionRefusedError("connection refused")
        return "answer"

    assert retried(flaky, "x", budget_s=60, sleep=waits.append) == "answer"
    assert waits == [0.5, 1.0, 2.0]
    def refused():
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(MlflowUnavailable, match="the alias of m: MLflow kept failing for 0 s .*connection refused"):
        retried(refused, "the alias of m", budget_s=0, sleep=waits.append)
    with pytest.raises(KeyError):  # a bug of ours is not retried
        retried(lambda: {}["x"], "x", budget_s=60, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]


def test_the_retry_budget_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ECGTUNE_MLFLOW_RETRY_S", "12.5")
    assert retry_budget_s() == 12.5
    monkeypatch.setenv("ECGTUNE_MLFLOW_RETRY_S", "ten")
    with pytest.raises(Exception, match="ECGTUNE_MLFLOW_RETRY_S='ten': expected a number of seconds"):
        retry_budget_s()


def _scored_version(client, exp, tmp_path, spec: dict):
    """A registered version whose run holds a training checkpoint of ``spec``, as a search leaves it."""
    from ecgtune.training.checkpoint import build_model, save_state

    run = client.create_run(exp)
    folder = tmp_path / "checkpoint"
    folder.mkdir(exist_ok=True)
    save_state(folder, {"model_state": build_model(spec).state_dict(), "model_spec": spec})
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="checkpoint")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("ecgtune-gate-faults")
    source = f"{client.get_run(run.info.run_id).info.artifact_uri}/checkpoint"
    return client.create_model_version("ecgtune-gate-faults", source=source, run_id=run.info.run_id,
                                       tags={"dataset": "mitdb", "split": "per_patient", "data_key": "k"}), run


def test_the_gate_keeps_the_champion_only_for_a_reason_and_raises_a_bug(registry, tmp_path):
    """Not comparable (other classes, other inputs, its checkpoint deleted): kept, with the reason. Anything
    else (here a metric the scorer does not compute) is a bug: raised, not "champion kept" for good."""
    from types import SimpleNamespace

    import numpy as np

    from ecgtune.training.checkpoint import model_spec
    from ecgtune.tuning.gate import champion_scorer
    from tests.conftest import synthetic_examples

    client, exp = registry
    examples = synthetic_examples(n_per_record=20)
    data = SimpleNamespace(examples=examples, split_labels=np.where(np.arange(40) % 4 == 0, "val", "train"), key="k")
    spec = model_spec({"model": {"name": "cnn1d_residual"}}, examples)
    version, run = _scored_version(client, exp, tmp_path, spec)

    def scorer(metric="val_balanced_accuracy", data=data):
        return champion_scorer(client, dataset="mitdb", split="per_patient", data=data, patient=None, metric=metric)

    value, why_not = scorer()(version)
    assert why_not is None and 0.0 <= value <= 1.0
    with pytest.raises(KeyError):
        scorer(metric="val_no_such_metric")(version)
    longer = SimpleNamespace(examples=synthetic_examples(n_per_record=20, length=256), split_labels=data.split_labels, key="k")
    value, why_not = scorer(data=longer)(version)
    assert value is None and "it takes the inputs {'signal': [1, 128]}" in why_not
    client.delete_run(run.info.run_id)
    import shutil

    shutil.rmtree(client.get_run(run.info.run_id).info.artifact_uri.removeprefix("file://"))
    value, why_not = scorer()(version)
    assert value is None and why_not.startswith("its training checkpoint is gone")
