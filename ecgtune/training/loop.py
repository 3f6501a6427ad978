"""The one step function shared by train, validation and test: forward, loss, and (train) backward."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from ecgtune.training.metrics import classification_metrics


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE on a single logit (binary), cross-entropy otherwise."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    return F.cross_entropy(logits, y)


def autocast(device: torch.device):
    """Mixed precision on a GPU (bf16 where supported), full precision on the CPU."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def run_epoch(model, split, stage: str, *, batch_size: int, optimizer=None, scaler=None, order=None, scheduler_per_batch=None):
    """One pass over ``split``; trains when ``stage == "train"``. Returns the metrics, prefixed by stage."""
    training = stage == "train"
    model.train(training)
    device = split.x.device
    total_loss, seen, outputs = 0.0, 0, []
    grad = torch.enable_grad() if training else torch.no_grad()
    with grad:
        for xb, yb in split.batches(batch_size, order):
            with autocast(device):
                logits = model(xb)
                loss = loss_fn(logits.float(), yb)
            if training:
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
            else:
                outputs.append(logits.float().cpu())
            total_loss += loss.item() * len(yb)
            seen += len(yb)
    metrics = {f"{stage}_loss": total_loss / max(seen, 1)}
    if not training:
        logits = torch.cat(outputs).numpy() if outputs else np.zeros((0, 1), np.float32)
        metrics.update(classification_metrics(logits, split.y_numpy, stage, split.label_names))
    return metrics


@torch.no_grad()
def predict(model, split, *, batch_size: int = 1024) -> np.ndarray:
    """The logits of every example of ``split`` in stored order, shape (N, outputs), float32 on the CPU."""
    model.eval()
    outputs = []
    for xb, _ in split.batches(batch_size):
        with autocast(split.x.device):
            outputs.append(model(xb).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, 1), np.float32)
