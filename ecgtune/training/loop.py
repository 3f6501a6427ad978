"""The one step function shared by train, validation and test: forward, loss, and (train) backward."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from ecgtune.training.metrics import classification_metrics


def loss_fn(logits: torch.Tensor, y: torch.Tensor, class_weights: torch.Tensor | None = None,
            focal_gamma: float = 0.0) -> torch.Tensor:
    """BCE on a single logit (binary) or on every label (multi-label, y (batch, labels)), cross-entropy
    otherwise. ``class_weights``: one per class, weighing each example's loss by its true class (for a
    single logit: class 0 and class 1); multi-label: the weight of each label's positives. ``focal_gamma``
    > 0: the focal loss of Lin et al. (2017), each example's loss times (1 - p_true)^gamma, so that the
    many easy examples of a majority class weigh less than the few hard ones."""
    if focal_gamma > 0:
        return focal_loss(logits, y, class_weights, focal_gamma)
    if y.ndim == 2:
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=class_weights)
    if logits.shape[1] == 1:
        weight = None if class_weights is None else class_weights[y.long()]
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), weight=weight)
    return F.cross_entropy(logits, y, weight=class_weights)


def focal_loss(logits: torch.Tensor, y: torch.Tensor, class_weights: torch.Tensor | None, gamma: float) -> torch.Tensor:
    """The focal loss in the three settings of `loss_fn`, weighted means as theirs."""
    if y.ndim == 2 or logits.shape[1] == 1:
        target = y.float() if y.ndim == 2 else y.float()[:, None]
        plain = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if y.ndim == 2:
            weighted = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=class_weights)
            return ((1 - torch.exp(-plain)) ** gamma * weighted).mean()
        weight = torch.ones_like(target) if class_weights is None else class_weights[y.long()][:, None]
        return ((1 - torch.exp(-plain)) ** gamma * plain * weight).sum() / weight.sum()
    log_p = F.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0]
    weight = torch.ones_like(log_p) if class_weights is None else class_weights[y]
    return -(weight * (1 - log_p.exp()) ** gamma * log_p).sum() / weight.sum()


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of a trial's ``precision`` (spaces.PRECISIONS) on ``device``: None (fp32) on the
    CPU and for "fp32"; for "auto" bf16 where the GPU computes it natively (Ampere and later), else fp16
    (which needs loss scaling). Emulated bf16 (older GPUs) would be slower than fp16."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision in ("fp16", "bf16"):
        return torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def autocast(device: torch.device, precision: str = "auto"):
    """Mixed precision on a GPU (unless ``precision`` is fp32), full precision on the CPU."""
    dtype = autocast_dtype(device, precision)
    return nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def run_epoch(model, split, stage: str, *, batch_size: int, optimizer=None, scaler=None, order=None,
              scheduler_per_batch=None, class_weights=None, transform=None, thresholds=None, focal_gamma=0.0,
              precision: str = "auto"):
    """One pass over ``split``: trains when ``stage == "train"``, else scores it (val and test alike, through
    ``predict``). ``transform(inputs) -> inputs`` changes training batches only (augmentation).
    Returns the metrics, prefixed by stage."""
    if stage != "train":
        logits = predict(model, split, batch_size=batch_size, precision=precision)
        loss = loss_fn(torch.from_numpy(logits), split.y.cpu()).item() if len(split) else 0.0
        return {f"{stage}_loss": loss, **classification_metrics(
            logits, split.y_numpy, stage, split.label_names, split.scores, thresholds=thresholds)}
    model.train(True)
    total_loss, seen = 0.0, 0
    for xb, yb in split.batches(batch_size, order):
        if transform is not None:
            xb = transform(xb)
        with autocast(split.device, precision):
            loss = loss_fn(model(*xb.values()).float(), yb, class_weights, focal_gamma)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler_per_batch is not None:
            scheduler_per_batch.step()
        total_loss += loss.item() * len(yb)
        seen += len(yb)
    return {f"{stage}_loss": total_loss / max(seen, 1)}


@torch.no_grad()
def predict(model, split, *, batch_size: int = 1024, precision: str = "auto") -> np.ndarray:
    """The logits of every example of ``split`` in stored order, shape (N, outputs), float32 on the CPU."""
    model.eval()
    outputs = []
    for xb, _ in split.batches(batch_size):
        with autocast(split.device, precision):
            outputs.append(model(*xb.values()).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, 1), np.float32)
