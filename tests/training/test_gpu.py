"""The CUDA path of the trainable: the GPU Ray assigned, fp16 with loss scaling, bf16 autocast, and four
trials sharing one GPU. Skipped, with the reason, where torch sees no GPU (CI); benchmarks/gpu_check.sh
runs them on a GPU machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray import tune

from ecgtune.data import assign_split
from ecgtune.models import create_model
from ecgtune.spaces import TRAIN_DEFAULTS
from ecgtune.training.batches import TensorSplit, select
from ecgtune.training.loop import autocast_dtype, run_epoch
from ecgtune.training.trainable import train_fn
from tests.conftest import synthetic_examples

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason=f"needs CUDA: torch {torch.__version__} finds no GPU on this machine"),
]


def _config(**train):
    return {
        "train": {**TRAIN_DEFAULTS, "epochs": 3, "batch_size": 16, **train},
        "model": {"name": "cnn1d_residual", "hparams": {}},
        "stage": "pretrain", "patient": None, "metric": "val_balanced_accuracy", "mode": "max",
        "data": "synthetic", "init_weights": None,
    }


def _trials(tmp_path, config, resources: dict):
    import ray

    examples = synthetic_examples()
    datasets = {"synthetic": ray.put((examples, assign_split("per_patient", examples)))}
    trainable = tune.with_resources(tune.with_parameters(train_fn, datasets=datasets), resources)
    grid = tune.Tuner(trainable, param_space=config,
                      run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="gpu", verbose=0)).fit()
    assert grid.num_errors == 0, grid.errors
    return list(grid)


def test_a_trial_given_a_gpu_trains_on_the_one_ray_assigned_in_fp16(ray_local, tmp_path):
    [result] = _trials(tmp_path, _config(precision="fp16"), {"cpu": 1, "gpu": 1})
    assigned = result.metrics["gpu_ids"]
    assert assigned != ""  # Ray gave it a GPU ...
    # ... and made it the only one the trial sees: CUDA numbers it 0.
    assert result.metrics["device"] == "cuda:0"
    assert result.metrics_dataframe["val_balanced_accuracy"].max() > 0.9  # fp16 with loss scaling learns


def _one_epoch(precision: str):
    examples = synthetic_examples()
    labels = assign_split("per_patient", examples)
    device = torch.device("cuda")
    train = TensorSplit.of(examples, select(examples, labels, "train", None), device)
    torch.manual_seed(0)
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).to(device)
    dtypes = []
    model.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype(device, precision) == torch.float16 else None
    metrics = run_epoch(model, train, "train", batch_size=16, optimizer=optimizer, scaler=scaler, precision=precision)
    changed = any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    return metrics, set(dtypes), scaler, model, changed


def test_fp16_trains_under_autocast_with_a_grad_scaler():
    metrics, dtypes, scaler, model, changed = _one_epoch("fp16")
    assert dtypes == {torch.float16}  # the forward ran in half precision
    assert scaler is not None and scaler.get_scale() > 0  # losses were scaled
    assert np.isfinite(metrics["train_loss"]) and changed
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay fp32


def test_bf16_autocast_needs_no_scaler_and_is_what_auto_picks_where_native():
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip(f"{torch.cuda.get_device_name()} has no native bf16: auto picks fp16 there")
    assert autocast_dtype(torch.device("cuda"), "auto") == torch.bfloat16
    metrics, dtypes, scaler, model, changed = _one_epoch("bf16")
    assert dtypes == {torch.bfloat16} and scaler is None
    assert np.isfinite(metrics["train_loss"]) and changed
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fp32_turns_mixed_precision_off_on_the_gpu():
    _, dtypes, scaler, _, changed = _one_epoch("fp32")
    assert dtypes == {torch.float32} and scaler is None and changed


def test_four_trials_share_one_gpu_at_a_quarter_each(ray_local, tmp_path):
    # Long enough (about 10 s each on a GPU) that four workers started together overlap for certain.
    config = _config(epochs=150, batch_size=8, seed=tune.grid_search([0, 1, 2, 3]))
    results = _trials(tmp_path, config, {"cpu": 0.5, "gpu": 0.25})
    assert len({r.metrics["gpu_ids"] for r in results}) == 1 and results[0].metrics["gpu_ids"] != ""
    assert {r.metrics["device"] for r in results} == {"cuda:0"}
    # The trials' own spans, from their last report back by their training time: all four at once.
    spans = [(r.metrics["reported_at"] - r.metrics["time_total_s"], r.metrics["reported_at"]) for r in results]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
