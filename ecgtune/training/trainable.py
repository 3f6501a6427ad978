"""The one trainable: every stage, model and dataset goes through ``train_fn``.

Large arrays (the prepared examples, their split labels, pre-trained weights) arrive through
``tune.with_parameters``: put in the Ray object store once by the driver, never re-read per trial.
The test split is never touched here; it is evaluated once, after selection on validation.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from ecgtune.models.transfer import freeze_features, load_pretrained
from ecgtune.training.batches import TensorSplit, epoch_order, select
from ecgtune.training.checkpoint import build_model, load_state, model_spec, save_state
from ecgtune.training.loop import run_epoch
from ecgtune.training.optim import build_optimizer, build_scheduler
from ecgtune.transforms.resampling import smote


def _device() -> torch.device:
    # Ray hides the GPUs a trial was not given (CUDA_VISIBLE_DEVICES), so this is "was I given one".
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _use_assigned_cpus() -> None:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except Exception:  # outside Ray (unit tests): leave torch's default
        return
    torch.set_num_threads(max(1, int(cpus)))


def _improved(value: float, best: float | None, mode: str) -> bool:
    # The first epoch always counts, so that every trial leaves a checkpoint to select from.
    if best is None or np.isnan(best):
        return True
    return not np.isnan(value) and (value > best if mode == "max" else value < best)


def training_split(examples, split_labels, patient, cfg: dict, device) -> TensorSplit:
    """The trial's training examples, with SMOTE's synthetic ones when ``cfg["smote"]``.

    Only the training indices reach SMOTE: validation and test examples are never interpolated
    into training (tests/training/test_smote.py).
    """
    indices = select(examples, split_labels, "train", patient)
    if not cfg.get("smote"):
        return TensorSplit.of(examples, indices, device)
    x, y = smote(np.asarray(examples.x[indices]), np.asarray(examples.y[indices]), seed=cfg["seed"])
    return TensorSplit(x, y, examples.label_names, device)


def train_fn(config: dict, examples=None, split_labels=None, init_states=None) -> None:
    """Train one configuration; report every epoch; checkpoint whenever validation improves.

    Args:
        config: ``train`` (optimizer, lr, batch_size, epochs, ...), ``model`` (name, hparams),
            ``stage`` (pretrain / scratch / finetune), ``patient`` (a record, None for pretrain),
            ``metric`` and ``mode`` (the validation metric that decides "improved").
        examples: the prepared ``Examples`` of the whole dataset.
        split_labels: (N,) "train" / "val" / "test" / "" for each example.
        init_states: for ``finetune``, the pre-trained weights of each model of the stage, by model name
            (one mapping, so that the stage's trials share one copy of the examples in the object store);
            with ``config["replace_head"]`` their head is dropped and the model's own (sized for this
            task) is trained from scratch.
    """
    from ray import tune

    _use_assigned_cpus()
    # Trained weights drift into denormal floats, which made CPU epochs five times slower by epoch 4
    # of pre-training (benchmarks/bench_training.py); flushing them to zero costs no accuracy here.
    torch.set_flush_denormal(True)
    cfg, stage, patient = config["train"], config["stage"], config.get("patient")
    metric, mode = config["metric"], config["mode"]
    device = _device()
    torch.manual_seed(cfg["seed"])
    generator = torch.Generator().manual_seed(cfg["seed"])

    train = training_split(examples, split_labels, patient, cfg, device)
    val = TensorSplit.of(examples, select(examples, split_labels, "val", patient), device)
    spec = model_spec(config, examples)
    model = build_model(spec)
    if stage == "finetune":
        init_state = (init_states or {}).get(spec["name"])
        if init_state is None:
            raise ValueError(f"stage finetune needs the pre-trained weights of {spec['name']} (init_states)")
        load_pretrained(model, init_state, replace_head=config.get("replace_head", False))
        if cfg["freeze_features"]:
            freeze_features(model)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg)
    steps = -(-len(train) // cfg["batch_size"])
    scheduler, per_batch = build_scheduler(optimizer, cfg, steps)
    # fp16 needs loss scaling; bf16 (what autocast picks on recent GPUs) and the CPU do not.
    use_scaler = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    start_epoch, best, stale = 0, None, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        # Checkpoints are written only when validation improves, so a resumed trial restarts
        # from its best epoch: the best model is never lost, a few later epochs are redone.
        with checkpoint.as_directory() as d:
            state = load_state(d)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state"):
            scheduler.load_state_dict(state["scheduler_state"])
        start_epoch, best, stale = state["epoch"], state["best"], 0

    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        order = epoch_order(train.y_numpy, cfg["weighted_sampling"], generator).to(device)
        metrics = run_epoch(
            model, train, "train", batch_size=cfg["batch_size"], optimizer=optimizer, scaler=scaler,
            order=order, scheduler_per_batch=scheduler if per_batch else None,
        )
        metrics.update(run_epoch(model, val, "val", batch_size=max(cfg["batch_size"], 256)))
        if scheduler is not None and not per_batch:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(metrics["val_loss"])
            else:
                scheduler.step()
        value = metrics[metric]
        improved = _improved(value, best, mode)
        best, stale = (value, 0) if improved else (best, stale + 1)
        metrics.update(epoch=epoch, lr=optimizer.param_groups[0]["lr"], best_metric=best if best is not None else float("nan"))
        patience = cfg["early_stopping_patience"]
        if improved:
            with tempfile.TemporaryDirectory() as d:
                save_state(d, {
                    "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
                    "epoch": epoch, "best": value, "metric": metric, "model_spec": spec,
                    "val_metrics": {k: v for k, v in metrics.items() if k.startswith("val_")},
                })
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
        if patience > 0 and stale >= patience:
            return  # early stopping on validation
