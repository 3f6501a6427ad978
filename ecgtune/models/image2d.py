"""Seed 000's 2D networks of the GAF/MTF/RP images (Narotamo et al., BSPC 93:106141, 2024).

Input ``image`` (channels, height, width): 9 x 256 x 256 in the seed (three leads, three encodings each).
Every network ends in two fully connected layers (``head``); ``features`` is what enters them (a fusion
model joins it with a signal network's). Defaults are the seed's sizes; ``filters`` and ``fc_sizes`` make
CPU-sized versions. Parameter counts at the defaults for 9 x 256 x 256 and four outputs are asserted in
tests/models/test_image2d.py; the seed's "VGG16" (285 M) and custom CNN (506 M) are GPU sizes.

The seed's VGG applies dropout with ``F.dropout`` and so keeps dropping at evaluation; here dropout is a
module and is off in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import register_model
from ecgtune.models.head import HeadedModel


def _image_shape(inputs) -> tuple[int, int, int]:
    channels, height, width = inputs["image"]
    return channels, height, width


def _fc_pair(fc_sizes) -> tuple[int, int]:
    sizes = tuple(int(s) for s in fc_sizes)
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(f"fc_sizes must be two positive widths, got {list(fc_sizes)}")
    return sizes


def _check(filters: int, dropout: float) -> None:
    if filters < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"filters must be >= 1 and dropout in [0, 1), got {filters}, {dropout}")


class _ImageNet(HeadedModel):
    """Convolutions -> flatten -> ``fc`` (the first dense layer, part of the features) -> ``head``."""

    def __init__(self, convs: nn.Module, inputs, num_outputs: int, fc_sizes, dropout: float):
        super().__init__()
        first, second = _fc_pair(fc_sizes)
        self.convs = convs
        # The flattened size: shapes only on the meta device (where tests build paper sizes), else one
        # example through the convolutions without gradients.
        device = next(convs.parameters()).device
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *_image_shape(inputs), device=device)).flatten(1).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, first), nn.ReLU(), nn.Dropout(dropout))
        self.feature_size = first
        self.head = nn.Sequential(nn.Linear(first, second), nn.ReLU(), nn.Dropout(dropout), nn.Linear(second, num_outputs))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(image).flatten(1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


@register_model("alexnet2d", takes=("image",))
def alexnet2d(*, inputs, num_outputs, filters=16, fc_sizes=(4096, 2048), dropout=0.0):
    """Conv(f, 11, stride 4) - pool - Dropout2d, Conv(2f, 5) - pool, Conv 4f, 8f, 256 (3 x 3) - pool, 6 x 6
    average pooling (9,216), FC 4,096, FC 2,048, outputs. The seed's file sets f = 8, its tuned value is 16."""
    _check(filters, dropout)
    f, channels = int(filters), _image_shape(inputs)[0]
    convs = nn.Sequential(
        nn.Conv2d(channels, f, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Dropout2d(dropout),
        nn.Conv2d(f, 2 * f, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(2 * f, 4 * f, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4 * f, 8 * f, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8 * f, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)),
    )
    return _ImageNet(convs, inputs, num_outputs, fc_sizes, dropout)


@register_model("vgg2d", takes=("image",))
def vgg2d(*, inputs, num_outputs, filters=16, fc_sizes=(4096, 4096), dropout=0.0):
    """Seven 3 x 3 convolutions in three blocks of f, 2f, 4f channels (2, 2, 3 convolutions, each block
    max-pooled by 2): 256 x 256 become 64 x 32 x 32 = 65,536 features; FC 4,096, FC 4,096, outputs."""
    _check(filters, dropout)
    f, channels = int(filters), _image_shape(inputs)[0]
    layers: list[nn.Module] = []
    c_in = channels
    for width, count in ((f, 2), (2 * f, 2), (4 * f, 3)):
        for _ in range(count):
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
            c_in = width
        layers.append(nn.MaxPool2d(2))
    return _ImageNet(nn.Sequential(*layers), inputs, num_outputs, fc_sizes, dropout)


@register_model("cnn2d", takes=("image",))
def cnn2d(*, inputs, num_outputs, filters=16, fc_sizes=(2048, 256), dropout=0.0):
    """The seed's custom CNN: Conv(f, 5) - pool, Conv(2f, 3) - pool, Conv(4f, 3): 256 x 256 become
    64 x 62 x 62 = 246,016 features at f = 16; FC 2,048, then a second dense layer before the outputs."""
    _check(filters, dropout)
    f, channels = int(filters), _image_shape(inputs)[0]
    convs = nn.Sequential(
        nn.Conv2d(channels, f, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(f, 2 * f, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * f, 4 * f, 3, padding=1), nn.ReLU(),
    )
    return _ImageNet(convs, inputs, num_outputs, fc_sizes, dropout)


class Bottleneck(nn.Module):
    """1 x 1 -> 3 x 3 (stride) -> 1 x 1 (x 4 channels), batch norm after each, the skip projected when needed."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out else
                     nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


@register_model("resnet2d", takes=("image",))
def resnet2d(*, inputs, num_outputs, filters=16, blocks=(3, 4, 6, 3), fc_sizes=(256, 128), dropout=0.0):
    """ResNet-50's bottleneck layout ([3, 4, 6, 3] blocks) at widths f, 2f, 4f, 8f (x 4 after each block):
    a 7 x 7 stride-2 stem, max-pooling, the four stages, global average pooling, then FC layers."""
    _check(filters, dropout)
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"blocks must be four positive counts, got {list(blocks)}")
    f, channels = int(filters), _image_shape(inputs)[0]
    layers: list[nn.Module] = [nn.Conv2d(channels, f, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(f), nn.ReLU(),
                               nn.MaxPool2d(3, 2, padding=1)]
    c_in = f
    for stage, count in enumerate(blocks):
        width = f * 2**stage
        for index in range(count):
            layers.append(Bottleneck(c_in, width, stride=2 if index == 0 and stage > 0 else 1))
            c_in = width * Bottleneck.expansion
    layers += [nn.AdaptiveAvgPool2d(1)]
    return _ImageNet(nn.Sequential(*layers), inputs, num_outputs, fc_sizes, dropout)
