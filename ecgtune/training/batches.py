"""Selecting a split's examples and drawing mini-batches from tensors already on the device.

The models are small, so a DataLoader's per-item Python overhead would dominate; batches are index
slices of tensors that sit on the trial's device for the whole trial.
"""

from __future__ import annotations

import numpy as np
import torch

from ecgtune.data import Examples


def select(examples: Examples, split_labels: np.ndarray, split: str, patient: str | None) -> np.ndarray:
    """Indices of ``split`` examples, of one record when ``patient`` is given."""
    mask = split_labels == split
    if patient is not None:
        mask &= examples.records == patient
    return np.flatnonzero(mask)


class TensorSplit:
    """One split of one trial: x (N, leads, samples) and y (N,) on ``device``, and the class names."""

    def __init__(self, x: np.ndarray, y: np.ndarray, label_names, device: torch.device):
        # np.array copies out of the read-only Ray object-store buffer before torch takes it.
        self.x = torch.from_numpy(np.array(x, dtype=np.float32)).to(device)
        self.y = torch.from_numpy(np.array(y, dtype=np.int64)).to(device)
        self.y_numpy = np.asarray(y, dtype=np.int64)
        self.label_names = tuple(label_names)

    @classmethod
    def of(cls, examples: Examples, indices: np.ndarray, device: torch.device) -> "TensorSplit":
        """The examples at ``indices``."""
        return cls(examples.x[indices], examples.y[indices], examples.label_names, device)

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, order: torch.Tensor | None = None):
        """Yield (x, y) batches in ``order`` (default: as stored)."""
        n = len(self)
        order = torch.arange(n, device=self.x.device) if order is None else order
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.y[idx]


def epoch_order(labels: np.ndarray, weighted: bool, generator: torch.Generator) -> torch.Tensor:
    """A permutation for one epoch, or, with weighted sampling, as many draws with replacement
    where every class is equally likely (the seed's balanced oversampling)."""
    n = len(labels)
    if not weighted:
        return torch.randperm(n, generator=generator)
    counts = np.bincount(labels)
    weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=generator)
