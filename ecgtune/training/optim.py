"""Optimizers and learning-rate schedules named in search spaces."""

from __future__ import annotations

import torch


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    if cfg["optimizer"] == "radam":  # ECG-DualNet's
        return torch.optim.RAdam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def build_scheduler(optimizer, cfg: dict, steps_per_epoch: int):
    """Returns (scheduler, steps_per_batch): cyclic schedules step every batch, the others every epoch."""
    name = cfg["lr_scheduler"]
    if name == "reducelr":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg["lr_plateau_factor"], patience=cfg["lr_plateau_patience"]), False
    if name == "step":
        # ECG-DualNet's: a tenth of the rate after a quarter, a half and three quarters of the epochs.
        epochs = max(cfg["epochs"], 1)
        milestones = sorted({max(1, round(epochs * f)) for f in (0.25, 0.5, 0.75)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1), False
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg["epochs"], 1)), False
    if name == "cycliclr":
        # One cycle up and down every four epochs, between a tenth of the learning rate and the rate itself;
        # momentum cycling is off because Adam has no `momentum` group key.
        return (
            torch.optim.lr_scheduler.CyclicLR(
                optimizer,
                base_lr=cfg["lr"] / 10,
                max_lr=cfg["lr"],
                step_size_up=max(2 * steps_per_epoch, 1),
                cycle_momentum=False,
            ),
            True,
        )
    return None, False
