"""The one trainable, run by a real local Ray Tune on tiny separable data."""

import numpy as np
import pytest
import torch
from ray import tune

from ecgtune.data import assign_split
from ecgtune.spaces import TRAIN_DEFAULTS
from ecgtune.training.checkpoint import load_state
from ecgtune.training.trainable import train_fn
from tests.conftest import synthetic_examples


def _config(stage="pretrain", patient=None, init_weights=None, **train):
    return {
        "train": {**TRAIN_DEFAULTS, "epochs": 3, "batch_size": 16, **train},
        "model": {"name": "cnn1d_residual", "hparams": {}},
        "stage": stage, "patient": patient,
        "metric": "val_balanced_accuracy", "mode": "max",
        "data": "synthetic", "init_weights": init_weights,
    }


def _fit(tmp_path, config):
    import ray

    examples = synthetic_examples()
    labels = assign_split("per_patient", examples)
    # As the search hands them over: one object-store reference per dataset, fetched by the trials using it.
    datasets = {"synthetic": ray.put((examples, labels)), "unused": ray.put(None)}
    trainable = tune.with_parameters(train_fn, datasets=datasets)
    tuner = tune.Tuner(
        trainable, param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="t", verbose=0),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0, grid.errors
    return grid[0]


def test_pretrain_learns_reports_every_epoch_and_checkpoints_the_best(ray_local, tmp_path):
    result = _fit(tmp_path, _config())
    history = result.metrics_dataframe
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_balanced_accuracy", "val_f1_macro", "val_auroc",
            "val_precision_macro", "val_recall_macro"} <= set(history.columns)
    assert history["val_balanced_accuracy"].max() > 0.9
    with result.checkpoint.as_directory() as d:
        state = load_state(d)
    assert state["best"] == pytest.approx(history["val_balanced_accuracy"].max())
    assert not any(k.startswith("test_") for k in history.columns)  # test is never touched in a trial


def test_finetune_starts_from_the_given_weights_and_can_freeze_features(ray_local, tmp_path):
    from ecgtune.models import create_model

    from ecgtune.training.checkpoint import write_weights

    pretrained = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1).state_dict()
    weights = str(tmp_path / "starting_weights" / "source.pt")
    write_weights(weights, pretrained, {"name": "cnn1d_residual"})
    result = _fit(tmp_path, _config("finetune", "100", init_weights={"model": weights}, freeze_features=True, epochs=2))
    with result.checkpoint.as_directory() as d:
        state = load_state(d)["model_state"]
    features = [k for k in pretrained if not k.startswith("head.")]
    assert all(torch.equal(state[k], pretrained[k]) for k in features)
    assert not torch.equal(state["head.weight"], pretrained["head.weight"])


def test_early_stopping_and_schedulers(ray_local, tmp_path):
    result = _fit(tmp_path, _config(epochs=8, early_stopping_patience=1, lr_scheduler="cosine", lr=1e-6))
    assert result.metrics["epoch"] < 8  # a learning rate this small stops improving at once


def test_a_trial_reports_where_it_ran_and_trains_on_the_cpu_without_a_gpu(ray_local, tmp_path):
    result = _fit(tmp_path, _config(epochs=1))
    assert result.metrics["node_id"] == ray_local.get_runtime_context().get_node_id()
    assert result.metrics["gpu_ids"] == ""  # given no GPU


@pytest.mark.parametrize(
    "gpu_ids,cuda,visible,expected",
    [
        ([], True, None, "cpu"),  # Ray no longer hides GPUs from a trial given none: never take one
        (["1"], False, "1", "cpu"),  # a logical GPU on a machine without CUDA (the fake cluster)
        (["1"], True, "1", "cuda:0"),  # Ray made the assigned GPU the only visible one
        (["2"], True, "0,1,2,3", "cuda:2"),  # all visible: the assigned one by its position
        (["3"], True, None, "cuda:3"),  # no CUDA_VISIBLE_DEVICES: the id names the device
    ],
)
def test_a_trial_uses_exactly_the_gpu_ray_assigned(gpu_ids, cuda, visible, expected):
    from ecgtune.training.trainable import trial_device

    assert str(trial_device(gpu_ids, cuda, visible)) == expected


def _fails_once_after_epoch(epoch: int, marker: str):
    """train_fn whose trial dies right after reporting ``epoch`` the first time it runs (a node lost mid-trial):
    Tune restarts it from its last checkpoint (fault injection into the real Tune loop)."""
    import os

    from ray import tune as ray_tune

    def trainable(config, datasets=None):
        report = ray_tune.report
        if not os.path.exists(marker):
            def dies_after(metrics, checkpoint=None):
                report(metrics, checkpoint=checkpoint)
                if metrics["epoch"] == epoch:
                    open(marker, "w").close()
                    raise RuntimeError("the trial's node went away")
            ray_tune.report = dies_after
        try:
            train_fn(config, datasets=datasets)
        finally:
            ray_tune.report = report

    return trainable


def test_a_trial_resumed_from_its_checkpoint_draws_the_batches_it_would_have_drawn(ray_local, tmp_path):
    import ray

    # Weighted sampling draws the batch order, augmentation its own generator: both are kept in the checkpoint.
    config = _config(epochs=4, weighted_sampling=True, augment=0.5, augmentations=["drop", "scale"])
    straight = _fit(tmp_path / "straight", config).metrics_dataframe.groupby("epoch")["train_loss"].last()
    examples = synthetic_examples()
    datasets = {"synthetic": ray.put((examples, assign_split("per_patient", examples)))}
    tuner = tune.Tuner(
        tune.with_parameters(_fails_once_after_epoch(2, str(tmp_path / "died")), datasets=datasets), param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="r", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)))
    result = tuner.fit()[0]
    assert (tmp_path / "died").exists() and result.error is None
    resumed = result.metrics_dataframe.groupby("epoch")["train_loss"].last()
    # The epochs after its last checkpoint (one written at an improved epoch, at most the second) ran again
    # after the restart: the same batches, augmentation and weights as without it.
    assert list(resumed.index) == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.to_numpy(), straight.to_numpy(), rtol=1e-5)
