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


def model_input(t: torch.Tensor) -> torch.Tensor:
    """uint8 inputs (images cached compactly) stand for [0, 1] in steps of 1/255."""
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t


class TensorSplit:
    """One split of one trial: the named inputs (N, ...) and y on ``device``, and the class names.

    A batch is (inputs by name, y); a model takes the inputs positionally, in their order.
    """

    def __init__(self, inputs: dict[str, np.ndarray], y: np.ndarray, label_names, device: torch.device,
                 layout: str = "signal", scores: tuple[str, ...] = ()):
        # np.array copies out of the read-only Ray object-store buffer before torch takes it.
        self.inputs = {name: torch.from_numpy(np.array(a)).to(device) for name, a in inputs.items()}
        multi_label = np.asarray(y).ndim == 2
        self.y = torch.from_numpy(np.array(y, dtype=np.float32 if multi_label else np.int64)).to(device)
        self.y_numpy = np.asarray(y, dtype=np.float32 if multi_label else np.int64)
        self.label_names = tuple(label_names)
        self.layout, self.scores = layout, tuple(scores)

    @classmethod
    def of(cls, examples: Examples, indices: np.ndarray, device: torch.device) -> "TensorSplit":
        """The examples at ``indices``."""
        return cls({k: v[indices] for k, v in examples.inputs.items()}, examples.y[indices], examples.label_names,
                   device, examples.layout, examples.scores)

    @property
    def device(self) -> torch.device:
        return self.y.device

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, order: torch.Tensor | None = None):
        """Yield (inputs by name, y) batches in ``order`` (default: as stored)."""
        n = len(self)
        order = torch.arange(n, device=self.device) if order is None else order
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield {k: model_input(v[idx]) for k, v in self.inputs.items()}, self.y[idx]


def example_batch(examples: Examples, n: int = 2) -> dict[str, np.ndarray]:
    """The first ``n`` examples as a model takes them (each input by name, in order, float32): what the
    registry traces an exported model with."""
    return {name: model_input(torch.from_numpy(np.array(a[:n]))).float().numpy() for name, a in examples.inputs.items()}


def epoch_order(labels: np.ndarray, weighted: bool, generator: torch.Generator) -> torch.Tensor:
    """A permutation for one epoch, or, with weighted sampling, as many draws with replacement
    where every class is equally likely (the seed's balanced oversampling)."""
    n = len(labels)
    if not weighted:
        return torch.randperm(n, generator=generator)
    counts = np.bincount(labels)
    weights = torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=generator)
