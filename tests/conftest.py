"""Shared fixtures: every test gets its own ecgtune home, RNG state is restored, and the real data root
(ECGTUNE_DATA_DIR, set by CI to ../shared/data) is required by integration tests, never silently skipped."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def ecgtune_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "ecgtune_home"
    monkeypatch.setenv("ECGTUNE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture(autouse=True)
def restore_mlflow_uris():
    """MLflow's global tracking and registry URIs as before each test: code that registers models outside a
    search (promotion in unit tests, `ecgtune evaluate`) sets them, and a later test's registry lookups
    would otherwise read another test's store."""
    from ecgtune.tuning.process_state import mlflow_uris, restore_mlflow_uris

    before = mlflow_uris()
    yield
    restore_mlflow_uris(*before)


@pytest.fixture(autouse=True)
def restore_rng_state():
    import torch

    py, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(py)
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The verified dataset copies. Integration tests fail (not skip) without them: CI must run them."""
    value = os.environ.get("ECGTUNE_DATA_DIR")
    if not value or not (Path(value) / "mitdb" / "RECORDS").exists():
        pytest.fail(
            "integration tests need ECGTUNE_DATA_DIR pointing at the verified data copies "
            f"(a folder holding mitdb/); got {value!r}. CI sets it to ../shared/data."
        )
    return Path(value).resolve()


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole test session (starting Ray costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def synthetic_examples(n_per_record: int = 120, records=("100", "208"), length: int = 128, seed: int = 0):
    """Separable windows: class 1 carries a wide spike. Split labels follow the per-patient protocol."""
    from ecgtune.data import Examples

    rng = np.random.default_rng(seed)
    n = n_per_record * len(records)
    y = (rng.random(n) < 0.3).astype(np.int64)
    x = rng.normal(0, 0.1, size=(n, 1, length)).astype(np.float32)
    x[y == 1, 0, length // 2 - 8 : length // 2 + 8] += 2.0
    recs = np.repeat(np.array(records), n_per_record)
    return Examples(inputs={"signal": x}, y=y, records=recs, patients=recs, positions=np.tile(np.arange(n_per_record) * 360, len(records)),
                    label_names=("normal", "abnormal"))
