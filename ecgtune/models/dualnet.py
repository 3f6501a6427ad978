"""ECG-DualNet and ECG-DualNet++ (Rohr et al., Physiol. Meas. 2022; Reich et al., EMBC 2023; seed
ChristophReich1996/ECG_Classification): one lead seen twice, as overlapping windows of the signal and as
its log spectrogram.

A signal encoder (an LSTM over the windows, or for ++ a transformer with learned positions) makes a latent
vector; it conditions the batch normalisation of every block of a spectrogram encoder (five residual
blocks, the last three with axial attention for ++); the pooled spectrogram features and the latent vector
are added before the last layer. Activations are Padé activation units (Molina et al. 2019) in their
"safe" rational form, as a plain PyTorch module.

Sizes are the seed's configurations (S 1,840,210 and M 4,269,618 parameters for DualNet, asserted in the
tests) plus ``xs``, ours, small enough to train on a laptop CPU. The spans of the axial attention follow
the spectrogram's size at each block (the seed's (140, 8), (70, 4), (35, 2) for 563 x 33 frames).
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import register_model
from ecgtune.models.head import HeadedModel

INPUTS = ("windows", "spectrogram")

# Coefficients of the safe PAU that approximates a leaky ReLU (Molina et al., "Padé Activation Units",
# 2019: their fit "pade_optimized_leakyrelu"), the seed's initialisation: numerator a0..a5, denominator b1..b4.
LEAKY_RELU_NUMERATOR = (3.35583603e-02, 5.05000375e-01, 1.65343934e00, 2.01001052e00, 9.31901999e-01, 1.52424124e-01)
LEAKY_RELU_DENOMINATOR = (3.30847488e-06, 3.98021568e00, 5.12471206e-07, 3.01830109e-01)

# size -> (signal encoder width, its layers, the five blocks' output channels)
DUALNET_SIZES = {
    "xs": (64, 1, (8, 16, 32, 64, 64)),
    "s": (128, 2, (16, 32, 64, 128, 256)),
    "m": (256, 2, (32, 64, 128, 256, 256)),
    "l": (256, 3, (64, 128, 256, 256, 256)),
    "xl": (512, 3, (128, 256, 512, 512, 256)),
}
# size -> (transformer feed-forward width, its layers, the five blocks' output channels); 8 heads
DUALNET_PP_SIZES = {
    "xs": (64, 1, (8, 16, 32, 32, 32)),
    "s": (128, 2, (16, 32, 64, 128, 256)),
    "m": (256, 2, (32, 64, 128, 256, 256)),
    "l": (256, 3, (64, 128, 256, 256, 256)),
    "xl": (512, 3, (128, 256, 512, 512, 256)),
}
ATTENTION_GROUPS = 16


class PAU(nn.Module):
    """Padé activation unit, safe form: P(x) / Q(x) with P(x) = a0 + a1 x + ... + a5 x^5 and
    Q(x) = 1 + |b1||x| + |b2||x|^2 + |b3||x|^3 + |b4||x|^4 (Q >= 1: no poles). Ten learned numbers."""

    def __init__(self, numerator=LEAKY_RELU_NUMERATOR, denominator=LEAKY_RELU_DENOMINATOR):
        super().__init__()
        self.numerator = nn.Parameter(torch.tensor(numerator, dtype=torch.float32))
        self.denominator = nn.Parameter(torch.tensor(denominator, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Horner's rule for P; Q from powers of |x|.
        p = self.numerator[-1]
        for a in reversed(self.numerator[:-1]):
            p = p * x + a
        ax = x.abs()
        q, power = torch.ones_like(x), torch.ones_like(x)
        for b in self.denominator:
            power = power * ax
            q = q + b.abs() * power
        return p / q


def activation(name: str) -> nn.Module:
    if name == "pau":
        return PAU()
    if name == "prelu":
        return nn.PReLU()
    raise ValueError(f"activation={name!r}: expected pau (the seed's) or prelu (faster on a CPU)")


class ConditionalBatchNorm2d(nn.Module):
    """Batch normalisation whose output is scaled and shifted by a linear map of a latent vector (de Vries
    et al. 2017), after its own affine transform."""

    def __init__(self, channels: int, latent: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.condition = nn.Linear(latent, 2 * channels, bias=False)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """(batch, channels, h, w), (batch, latent) -> (batch, channels, h, w)."""
        scale, shift = self.condition(latent).chunk(2, dim=1)
        return scale[:, :, None, None] * self.norm(x) + shift[:, :, None, None]


class ResidualBlock2d(nn.Module):
    """Two 3 x 3 convolutions with conditional batch norm, a skip connection (1 x 1 where channels change),
    then activation, dropout and 2 x 2 average pooling."""

    def __init__(self, c_in: int, c_out: int, latent: int, act: str, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = ConditionalBatchNorm2d(c_out, latent)
        self.act1 = activation(act)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = ConditionalBatchNorm2d(c_out, latent)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.act2 = activation(act)
        self.dropout = nn.Dropout2d(dropout)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.act1(self.norm1(self.conv1(x), latent)))
        out = self.norm2(self.conv2(out), latent) + self.skip(x)
        return self.pool(self.dropout(self.act2(out)))


class AxialAttention(nn.Module):
    """Multi-head self-attention along one axis of a feature map, with learned relative positions for
    queries, keys and values (Wang et al., Axial-DeepLab, 2020): ``groups`` heads, ``span`` positions."""

    def __init__(self, channels: int, span: int, axis: int, groups: int = ATTENTION_GROUPS):
        super().__init__()
        if channels % groups or (channels // groups) % 2:
            raise ValueError(f"axial attention over {channels} channels needs a multiple of 2 x {groups} channels")
        self.axis, self.groups, self.span = axis, groups, span
        self.head = channels // groups  # channels per head: half for query and key, all for the value
        self.qkv = nn.Conv1d(channels, 2 * channels, 1, bias=False)
        self.qkv_norm = nn.BatchNorm1d(2 * channels)
        self.similarity_norm = nn.BatchNorm2d(3 * groups)
        self.output_norm = nn.BatchNorm1d(2 * channels)
        self.relative = nn.Parameter(torch.randn(2 * self.head, 2 * span - 1))
        offsets = torch.arange(span)[:, None] - torch.arange(span)[None, :] + span - 1
        self.register_buffer("offsets", offsets.reshape(-1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, h, w) -> the same shape, attended along h (axis 0) or w (axis 1)."""
        b, c, h, w = x.shape
        seq = x.permute(0, 3, 1, 2) if self.axis == 0 else x.permute(0, 2, 1, 3)  # (b, other, c, length)
        other, length = seq.shape[1], seq.shape[3]
        seq = seq.reshape(b * other, c, length)
        qkv = self.qkv_norm(self.qkv(seq)).reshape(b * other, self.groups, 2 * self.head, length)
        half = self.head // 2
        q, k, v = qkv.split([half, half, self.head], dim=2)
        rel = self.relative.index_select(1, self.offsets).reshape(2 * self.head, self.span, self.span)
        q_rel, k_rel, v_rel = rel.split([half, half, self.head], dim=0)
        qk = torch.einsum("bgci,bgcj->bgij", q, k)
        qr = torch.einsum("bgci,cij->bgij", q, q_rel)
        kr = torch.einsum("bgci,cij->bgij", k, k_rel).transpose(2, 3)
        logits = self.similarity_norm(torch.cat([qk, qr, kr], dim=1))
        weights = logits.reshape(b * other, 3, self.groups, length, length).sum(1).softmax(dim=3)
        attended = torch.einsum("bgij,bgcj->bgci", weights, v)
        positional = torch.einsum("bgij,cij->bgci", weights, v_rel)
        out = torch.cat([attended, positional], dim=-1).reshape(b * other, 2 * c, length)
        out = self.output_norm(out).reshape(b, other, c, 2, length).sum(3)
        return out.permute(0, 2, 3, 1) if self.axis == 0 else out.permute(0, 2, 1, 3)


class AxialBlock2d(nn.Module):
    """1 x 1 convolution, axial attention along height then width, 2 x 2 average pooling and a 1 x 1
    convolution, with conditional batch norms and a pooled skip connection."""

    def __init__(self, c_in: int, c_out: int, spans: tuple[int, int], latent: int, act: str, dropout: float):
        super().__init__()
        self.conv_in = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.norm_in = ConditionalBatchNorm2d(c_out, latent)
        self.act_in = activation(act)
        self.attention = nn.Sequential(AxialAttention(c_out, spans[0], axis=0), AxialAttention(c_out, spans[1], axis=1))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_out = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.norm_out = ConditionalBatchNorm2d(c_out, latent)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.act_out = activation(act)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.attention(self.act_in(self.norm_in(self.conv_in(x), latent))))
        out = self.norm_out(self.conv_out(self.pool(out)), latent) + self.pool(self.skip(x))
        return self.act_out(out)


class DualNetHead(nn.Module):
    """The last two layers: pooled spectrogram features -> latent width (+ activation), plus the latent
    vector, -> logits."""

    def __init__(self, features: int, latent: int, num_outputs: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(features, latent)
        self.act = activation(act)
        self.fc2 = nn.Linear(latent, num_outputs)

    def forward(self, pooled: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(pooled)) + latent)


def spectrogram_blocks(spec_shape: tuple[int, ...], channels: tuple[int, ...], latent: int, act: str, dropout: float,
                       attention_from: int | None) -> nn.ModuleList:
    """The five blocks of the spectrogram encoder; from block ``attention_from`` on, axial attention."""
    c_in, (h, w) = spec_shape[0], spec_shape[1:]
    blocks = nn.ModuleList()
    for i, c_out in enumerate(channels):
        if attention_from is not None and i >= attention_from:
            if h < 2 or w < 2:
                raise ValueError(f"the spectrogram ({spec_shape}) is too small for axial attention in block {i + 1}")
            blocks.append(AxialBlock2d(c_in, c_out, (h, w), latent, act, dropout))
        else:
            blocks.append(ResidualBlock2d(c_in, c_out, latent, act, dropout))
        c_in, h, w = c_out, h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"the spectrogram ({spec_shape}) is too small for {len(channels)} blocks of 2 x 2 pooling")
    return blocks


class _DualNetBase(HeadedModel):
    def encode_spectrogram(self, spectrogram: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        out = spectrogram
        for block in self.blocks:
            out = block(out, latent)
        return self.head(out.mean(dim=(2, 3)), latent)


def _size(size: str, sizes: dict, name: str) -> tuple:
    if size not in sizes:
        raise ValueError(f"{name} size={size!r}: expected one of {list(sizes)}")
    return sizes[size]


@register_model("dualnet", takes=INPUTS)
class DualNet(_DualNetBase):
    """ECG-DualNet: an LSTM over the signal's windows, a CNN over its spectrogram."""

    def __init__(self, *, inputs, num_outputs, size="s", activation="pau", dropout=0.05):
        super().__init__()
        hidden, layers, channels = _size(size, DUALNET_SIZES, "dualnet")
        windows, window = inputs["windows"]
        self.signal_encoder = nn.LSTM(window, hidden, num_layers=layers, batch_first=True,
                                      dropout=dropout if layers > 1 else 0.0)
        self.blocks = spectrogram_blocks(inputs["spectrogram"], channels, hidden, activation, dropout, None)
        self.head = DualNetHead(channels[-1], hidden, num_outputs, activation)

    def forward(self, windows: torch.Tensor, spectrogram: torch.Tensor) -> torch.Tensor:
        """(batch, windows, window), (batch, 1, frames, bins) -> logits (batch, classes)."""
        latent = self.signal_encoder(windows)[0][:, -1]
        return self.encode_spectrogram(spectrogram, latent)


@register_model("dualnet_pp", takes=INPUTS)
class DualNetPlusPlus(_DualNetBase):
    """ECG-DualNet++: a transformer over the signal's windows (learned positions, mean-pooled), axial
    attention in the spectrogram encoder's last three blocks."""

    def __init__(self, *, inputs, num_outputs, size="s", activation="pau", dropout=0.05, heads=8):
        super().__init__()
        ff, layers, channels = _size(size, DUALNET_PP_SIZES, "dualnet_pp")
        windows, window = inputs["windows"]
        layer = nn.TransformerEncoderLayer(window, heads, dim_feedforward=ff, dropout=dropout, activation="gelu",
                                           batch_first=True)
        self.signal_encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(window), enable_nested_tensor=False)
        self.positions = nn.Parameter(0.1 * torch.randn(1, windows, window))
        self.blocks = spectrogram_blocks(inputs["spectrogram"], channels, window, activation, dropout, attention_from=2)
        self.head = DualNetHead(channels[-1], window, num_outputs, activation)

    def forward(self, windows: torch.Tensor, spectrogram: torch.Tensor) -> torch.Tensor:
        """(batch, windows, window), (batch, 1, frames, bins) -> logits (batch, classes)."""
        latent = self.signal_encoder(windows + self.positions).mean(dim=1)
        return self.encode_spectrogram(spectrogram, latent)
