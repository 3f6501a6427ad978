"""The one trainable: every stage, model and dataset goes through ``train_fn``.

Large arrays (the prepared examples, their split labels, pre-trained weights) arrive through
``tune.with_parameters``: put in the Ray object store once by the driver, never re-read per trial.
The test split is never touched here; it is evaluated once, after selection on validation.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from ecgtune.data.examples import SIGNAL
from ecgtune.models._registry import model_inputs
from ecgtune.models.transfer import WHOLE_MODEL, freeze_blocks, freeze_features, load_pretrained
from ecgtune.training.batches import TensorSplit, epoch_order, select
from ecgtune.training.checkpoint import build_model, load_state, model_spec, save_state
from ecgtune.training.loop import autocast_dtype, run_epoch
from ecgtune.training.multilabel import thresholds_of
from ecgtune.training.optim import build_optimizer, build_scheduler
from ecgtune.transforms.augment import augmentation
from ecgtune.transforms.resampling import smote


def trial_device(gpu_ids: list, cuda_available: bool, cuda_visible_devices: str | None) -> torch.device:
    """The device Ray assigned the trial: the CPU unless it was given a GPU.

    Ray no longer hides the GPUs from a trial given none, so "CUDA is available" is not "I was given
    one". Given GPUs, Ray sets CUDA_VISIBLE_DEVICES to them, and CUDA numbers the visible ones from 0;
    without that variable the assigned id itself names the device. A logical GPU on a machine without
    CUDA (a test cluster) trains on the CPU.
    """
    if not gpu_ids or not cuda_available:
        return torch.device("cpu")
    visible = [d.strip() for d in cuda_visible_devices.split(",")] if cuda_visible_devices else None
    if visible is None:
        return torch.device("cuda", int(gpu_ids[0]))
    return torch.device("cuda", visible.index(str(gpu_ids[0])) if str(gpu_ids[0]) in visible else 0)


def _device() -> tuple[torch.device, list]:
    import os

    import ray

    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    return trial_device(gpu_ids, torch.cuda.is_available(), os.environ.get("CUDA_VISIBLE_DEVICES")), gpu_ids


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
    # One signal input: the search refuses SMOTE for any other examples before it starts.
    x, y = smote(np.asarray(examples.x[indices]), np.asarray(examples.y[indices]), seed=cfg["seed"])
    return TensorSplit({SIGNAL: x}, y, examples.label_names, device, examples.layout, examples.scores)


def class_weights(cfg: dict, train: TensorSplit) -> torch.Tensor | None:
    """The loss's weight per class: none, inversely proportional to the training counts ("balanced"; for
    multi-label tasks each label's negatives per positive), or the space's own list (label order)."""
    choice = cfg.get("class_weights") or "none"
    if choice == "none":
        return None
    if choice == "balanced" and train.y_numpy.ndim == 2:  # multi-label: each label's negatives per positive
        positives = train.y_numpy.sum(0)
        weights = (len(train) - positives) / np.maximum(positives, 1)
    elif choice == "balanced":
        counts = np.bincount(train.y_numpy, minlength=len(train.label_names)).astype(np.float64)
        weights = len(train) / (len(counts) * np.maximum(counts, 1))
    else:
        weights = np.asarray(choice, dtype=np.float64)
    return torch.as_tensor(weights, dtype=torch.float32, device=train.device)


def best_figures(metrics: dict) -> dict[str, float]:
    """An epoch's validation figures as the trial's best: ``val_x`` -> ``best_val_x``."""
    return {f"best_{k}": v for k, v in metrics.items() if k.startswith("val_")}


def starting_model(spec: dict, init_weights: dict | None, *, replace_head: bool = False):
    """The model a trial starts from, and its spec as the checkpoint keeps it.

    ``init_weights`` (fine-tuning) maps where each starting weight goes to where it lies: WHOLE_MODEL for
    the whole model (with ``replace_head`` its head is left fresh), or a fusion model's branch by its input
    name. A fusion model's branches are built as the champions they start from were (their specs travel
    with their weights), and the spec returned says so, so that the trained model can be rebuilt from it.
    """
    from ecgtune.training.checkpoint import read_weights

    if isinstance(init_weights, str):  # a trial of a search started by an earlier ecgtune, resumed
        init_weights = {WHOLE_MODEL: init_weights}
    starts = {where: read_weights(location) for where, location in (init_weights or {}).items()}
    branches = {where: start["model_spec"] for where, start in starts.items() if where != WHOLE_MODEL}
    if branches:
        spec = {**spec, "hparams": {**spec["hparams"], "branches": branches}}
    model = build_model(spec)
    for where, start in starts.items():
        whole = where == WHOLE_MODEL
        load_pretrained(model if whole else model.branches[where], start["model_state"], replace_head=replace_head and whole)
    return model, spec


def trial_settings(config: dict) -> dict:
    """The trial's training settings, its ``seed`` the trial's own (``trial_seed``, derived from the search's
    seed by the searcher) where it has one; a trial of a search started by an earlier ecgtune has none."""
    cfg = dict(config["train"])
    if config.get("trial_seed") is not None:
        cfg["seed"] = int(config["trial_seed"])
    return cfg


def random_state(generators: dict[str, torch.Generator]) -> dict:
    """What a checkpoint keeps of the trial's random streams: the batch order, the augmentation draws and
    torch's global generator (dropout), so that a resumed trial draws what it would have drawn."""
    return {"random_state": {"torch": torch.get_rng_state(),
                             **{name: g.get_state() for name, g in generators.items()}}}


def restore_random_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    """Put back what `random_state` kept; a checkpoint written by an earlier ecgtune kept none (its trial
    restarts its streams from the seed, as it always did)."""
    saved = state.get("random_state") or {}
    if "torch" in saved:
        torch.set_rng_state(saved["torch"])
    for name, generator in generators.items():
        if name in saved:
            generator.set_state(saved[name])


def prepared_data(datasets: dict, key: str):
    """The (examples, split labels) of ``key``: an object-store reference is fetched only by the trials that
    need it, so a node never pulls the datasets of other units."""
    import ray

    data = datasets[key]
    return ray.get(data) if isinstance(data, ray.ObjectRef) else data


def train_fn(config: dict, datasets=None) -> None:
    """Train one configuration; report every epoch; checkpoint whenever validation improves.

    Args:
        config: ``train`` (optimizer, lr, batch_size, epochs, ...), ``model`` (name, hparams),
            ``stage`` (pretrain / scratch / finetune), ``patient`` (a record, None for whole-dataset stages),
            ``metric`` and ``mode`` (the validation metric that decides "improved"), ``data`` (the key of
            its dataset in ``datasets``), ``init_weights`` (for ``finetune``: where the weights it starts
            from lie; with ``replace_head`` their head is dropped and the model's own, sized for this task,
            is trained from scratch).
        datasets: data key -> (``Examples`` of the whole dataset, (N,) split labels "train" / "val" /
            "test" / ""), each an object-store reference put there once by the driver.
    """
    import ray
    from ray import tune

    _use_assigned_cpus()
    # Trained weights drift into denormal floats, which made CPU epochs five times slower by epoch 4
    # of pre-training (benchmarks/bench_training.py); flushing them to zero costs no accuracy here.
    torch.set_flush_denormal(True)
    cfg, stage, patient = trial_settings(config), config["stage"], config.get("patient")
    metric, mode = config["metric"], config["mode"]
    examples, split_labels = prepared_data(datasets, config["data"])
    examples = examples.with_inputs(model_inputs(config["model"]["name"]))  # only what the model takes reaches the device
    device, gpu_ids = _device()
    # Where the trial ran, for its MLflow run (Tune adds the node's IP and host name itself).
    placement = {"node_id": ray.get_runtime_context().get_node_id(), "gpu_ids": ",".join(gpu_ids), "device": str(device)}
    torch.manual_seed(cfg["seed"])
    generator = torch.Generator().manual_seed(cfg["seed"])  # the batch order

    train = training_split(examples, split_labels, patient, cfg, device)
    val = TensorSplit.of(examples, select(examples, split_labels, "val", patient), device)
    spec = model_spec(config, examples)
    if stage == "finetune" and not config.get("init_weights"):
        raise ValueError(f"stage finetune needs the weights it starts from (config init_weights) for {spec['name']}")
    model, spec = starting_model(spec, config.get("init_weights") if stage == "finetune" else None,
                                 replace_head=config.get("replace_head", False))
    if stage == "finetune":
        if cfg["freeze_features"]:
            freeze_features(model)
        freeze_blocks(model, cfg["freeze_blocks"])
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg)
    steps = -(-len(train) // cfg["batch_size"])
    scheduler, per_batch = build_scheduler(optimizer, cfg, steps)
    # fp16 needs loss scaling; bf16 (what autocast picks where the GPU has it natively) and the CPU do not.
    precision = cfg.get("precision", "auto")  # a trial of a search started before there was a choice: auto
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype(device, precision) == torch.float16 else None
    weights = class_weights(cfg, train)
    augment_generator = torch.Generator(device=device).manual_seed(cfg["seed"])
    augment = augmentation(cfg, train.layout, generator=augment_generator)
    generators = {"batch_order": generator, "augmentation": augment_generator}

    start_epoch, best, stale = 0, None, 0
    best_epoch, best_values = 0, {}  # the best epoch so far and its validation figures (best_val_*)
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
        restore_random_state(state, generators)
        best_epoch, best_values = state["epoch"], best_figures(state.get("val_metrics", {}))

    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        order = epoch_order(train.y_numpy, cfg["weighted_sampling"], generator).to(device)
        metrics = run_epoch(
            model, train, "train", batch_size=cfg["batch_size"], optimizer=optimizer, scaler=scaler,
            order=order, scheduler_per_batch=scheduler if per_batch else None, class_weights=weights, transform=augment,
            focal_gamma=cfg["focal_gamma"], precision=precision,
        )
        metrics.update(run_epoch(model, val, "val", batch_size=max(cfg["batch_size"], 256), precision=precision))
        if scheduler is not None and not per_batch:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(metrics["val_loss"])
            else:
                scheduler.step()
        value = metrics[metric]
        improved = _improved(value, best, mode)
        best, stale = (value, 0) if improved else (best, stale + 1)
        if improved:
            best_epoch, best_values = epoch, best_figures(metrics)
        # reported_at: when this epoch ended, to the millisecond (Ray's own timestamp is whole seconds, which
        # made a short trial's MLflow run end before it started).
        metrics.update(epoch=epoch, lr=optimizer.param_groups[0]["lr"], best_metric=best if best is not None else float("nan"),
                       best_epoch=best_epoch, reported_at=time.time(), **best_values, **placement)
        patience = cfg["early_stopping_patience"]
        if improved:
            with tempfile.TemporaryDirectory() as d:
                save_state(d, {
                    "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "epoch": epoch, "best": value, "metric": metric, "model_spec": spec,
                    "val_metrics": {k: v for k, v in metrics.items() if k.startswith("val_")},
                    # Multi-label: the thresholds chosen on validation at this epoch, for test.
                    "thresholds": thresholds_of(metrics, "val", val.label_names) if val.y_numpy.ndim == 2 else None,
                }, resume={
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
                    **random_state(generators),
                })
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
        if patience > 0 and stale >= patience:
            return  # early stopping on validation
