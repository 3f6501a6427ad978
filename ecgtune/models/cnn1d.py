"""The residual 1D CNN of the per-patient study (seed ChryssaNab/ECG-Heartbeat-Classification).

A 1x1 stem lifts the single lead to ``block_channels``; each residual block is two convolutions of
``kernel_size`` with a skip connection, ReLU, and max-pooling (kernel ``kernel_size``, stride 2); the
flattened features go through a dense layer of the same width and a classification head. With the seed's
settings (4 blocks, 32 channels, kernel 5, 128 samples, binary) it has 67,169 parameters, as published.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import register_model, signal_shape
from ecgtune.models.head import HeadedModel


class ResidualBlock(nn.Module):
    """Two same-length convolutions with a skip connection, then ReLU and max-pooling."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        # Replicate padding keeps the length, as the seed's padding of the valid convolution did.
        pad = dict(padding=kernel_size // 2, padding_mode="replicate")
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, **pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, **pad)
        self.pool = nn.MaxPool1d(kernel_size, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, samples) -> (batch, channels, pooled samples)."""
        out = self.conv2(torch.relu(self.conv1(x)))
        return self.pool(torch.relu(out + x))


@register_model("cnn1d_residual")
class ResidualCNN1d(HeadedModel):
    """The seed's residual 1D CNN; the defaults are the published settings."""

    def __init__(self, *, inputs, num_outputs, num_blocks=4, block_channels=32, kernel_size=5):
        super().__init__()
        in_channels, input_length = signal_shape(inputs)
        # No bias in the stem: the seed's count of 67,169 parameters depends on it.
        self.stem = nn.Conv1d(in_channels, block_channels, kernel_size=1, bias=False)
        self.blocks = nn.Sequential(*(ResidualBlock(block_channels, kernel_size) for _ in range(num_blocks)))
        length = input_length
        for _ in range(num_blocks):
            length = (length - kernel_size) // 2 + 1
        if length < 1:
            raise ValueError(
                f"input_length={input_length} is too short for {num_blocks} blocks of max-pooling "
                f"with kernel {kernel_size}"
            )
        features = block_channels * length
        self.dense = nn.Linear(features, features)
        self.head = nn.Linear(features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> logits (batch, 1) for binary, (batch, classes) otherwise."""
        out = self.blocks(torch.relu(self.stem(x))).flatten(1)
        # The seed stacks the two dense layers without a non-linearity; a ReLU costs no parameters
        # and keeps the pair from collapsing into one linear map.
        return self.head(torch.relu(self.dense(out)))
