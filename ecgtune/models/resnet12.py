"""The 12-lead residual network of Ribeiro et al., "Automatic diagnosis of the 12-lead ECG using a deep
neural network", Nat. Commun. 11:1760 (2020) (antonior92/automatic-ecg-diagnosis, model.py; seed 004,
yuge97/autoECG, for its transfer to a normal-vs-abnormal task).

A stem convolution, then four pre-activation residual units, each subsampling by 4 with its second
(strided) convolution and a max-pooled, 1 x 1-projected skip connection; flatten and one dense layer
(sigmoid outputs). The defaults are the published configuration: 4,096 samples (10 s at 400 Hz,
zero-padded), 12 leads, filters 64 / 128 / 196 / 256 / 320, kernel 16, dropout 0.2: 6,421,910 parameters
for six outputs. Keras' "same" padding (more on the right for even kernels) is reproduced exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ecgtune.models._registry import register_model, signal_shape
from ecgtune.models.head import HeadedModel

PUBLISHED_FILTERS = (64, 128, 196, 256, 320)
DOWNSAMPLE = 4


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """(left, right) zeros so that a convolution of ``kernel`` and ``stride`` gives ceil(length / stride)
    outputs, as Keras' padding="same" (the extra zero goes right)."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """A bias-free convolution with Keras' "same" padding for any input length and stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, same_padding(x.shape[-1], self.kernel_size[0], self.stride[0])))


class ResidualUnit(nn.Module):
    """conv -> BN -> ReLU -> dropout -> strided conv, plus the skip; the sum goes on as the next unit's
    skip input, and through BN -> ReLU -> dropout as its main input (full pre-activation, He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float, downsample: int = DOWNSAMPLE):
        super().__init__()
        self.downsample = downsample
        self.project = nn.Conv1d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.conv1 = SameConv1d(c_in, c_out, kernel)
        self.norm1 = nn.BatchNorm1d(c_out)
        self.conv2 = SameConv1d(c_out, c_out, kernel, stride=downsample)
        self.norm2 = nn.BatchNorm1d(c_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, c_in, n), (batch, c_in, n) -> (batch, c_out, ceil(n / 4)) twice: main and skip."""
        if self.downsample > 1:  # max-pooling with "same" padding (edge values count once)
            left, right = same_padding(skip.shape[-1], self.downsample, self.downsample)
            skip = F.max_pool1d(F.pad(skip, (left, right), value=float("-inf")), self.downsample)
        skip = self.project(skip)
        out = self.dropout(torch.relu(self.norm1(self.conv1(x))))
        out = self.conv2(out) + skip
        return self.dropout(torch.relu(self.norm2(out))), out


@register_model("ribeiro_resnet")
class RibeiroResNet(HeadedModel):
    """Ribeiro et al.'s network; ``filters`` are the stem's and the four units' widths."""

    def __init__(self, *, inputs, num_outputs, filters=PUBLISHED_FILTERS, kernel_size=16, dropout=0.2):
        super().__init__()
        leads, samples = signal_shape(inputs)
        filters = tuple(int(f) for f in filters)
        if len(filters) != 5:
            raise ValueError(f"filters={list(filters)}: expected five widths (the stem's and four units')")
        self.stem = nn.Sequential(SameConv1d(leads, filters[0], kernel_size), nn.BatchNorm1d(filters[0]), nn.ReLU())
        self.units = nn.ModuleList(
            ResidualUnit(c_in, c_out, kernel_size, dropout) for c_in, c_out in zip(filters[:-1], filters[1:])
        )
        length = samples
        for _ in self.units:
            length = math.ceil(length / DOWNSAMPLE)
        self.head = nn.Linear(filters[-1] * length, num_outputs)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> logits (batch, outputs)."""
        x = self.stem(signal)
        skip = x
        for unit in self.units:
            x, skip = unit(x, skip)
        return self.head(x.flatten(1))

    def feature_blocks(self) -> list[nn.Module]:
        """The stem and the four units, from the input on: transfer freezes the first k of them."""
        return [self.stem, *self.units]

    frozen_blocks = 0  # set by ecgtune.models.transfer.freeze_blocks

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self.feature_blocks()[: self.frozen_blocks]:
            block.eval()  # frozen blocks keep their pre-trained batch-norm statistics
        return self
