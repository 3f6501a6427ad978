"""Seed 000's 1D networks of the leads (Narotamo et al., BSPC 93:106141, 2024): a GRU or an LSTM over
the samples, optionally behind a small convolutional front (CNN + GRU).

Input ``signal`` (leads, samples), read as a sequence of ``samples`` steps of ``leads`` features (3 x 1,000
in the seed). The representation is the last step's output; bidirectional, the forward direction's last
step and the backward direction's first (each direction's end of the record). The head is one fully
connected layer after dropout, as the seed's networks end. Defaults are the seed's saved best
configurations: GRU 3 x 128, LSTM 2 x 256 (both one direction), CNN + GRU with 256 units; its best biGRU
is ``gru1d`` with ``bidirectional: true, num_layers: 2, hidden_size: 128, dropout: 0.5``.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import register_model, signal_shape
from ecgtune.models.head import HeadedModel

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
FRONT_CHANNELS = (6, 12, 24)  # the seed's CNN front: 3 -> 6 -> 12 -> 24 channels, kernel 5


def conv_front(leads: int, kernel: int = 5) -> nn.Sequential:
    """Three convolutions, each followed by ReLU and max-pooling by 2: 1,000 samples become 125 steps."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip((leads, *FRONT_CHANNELS[:-1]), FRONT_CHANNELS):
        layers += [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool1d(2)]
    return nn.Sequential(*layers)


class RecurrentNet(HeadedModel):
    def __init__(self, *, inputs, num_outputs, cell: str, hidden_size: int, num_layers: int, bidirectional: bool,
                 dropout: float, front: bool):
        super().__init__()
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, got {bidirectional!r}")
        if hidden_size < 1 or num_layers < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"hidden_size and num_layers must be >= 1 and dropout in [0, 1), got "
                             f"{hidden_size}, {num_layers}, {dropout}")
        leads, _ = signal_shape(inputs)
        self.front = conv_front(leads) if front else nn.Identity()
        self.rnn = CELLS[cell](FRONT_CHANNELS[-1] if front else leads, hidden_size, num_layers=num_layers,
                               batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.hidden_size, self.bidirectional = hidden_size, bidirectional
        self.feature_size = hidden_size * (2 if bidirectional else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_size, num_outputs))

    def features(self, signal: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> (batch, feature_size): each direction's output at its last step."""
        out, _ = self.rnn(self.front(signal).transpose(1, 2))
        if not self.bidirectional:
            return out[:, -1]
        return torch.cat([out[:, -1, : self.hidden_size], out[:, 0, self.hidden_size :]], dim=1)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(signal))


@register_model("gru1d")
def gru1d(*, inputs, num_outputs, hidden_size=128, num_layers=3, bidirectional=False, dropout=0.0):
    return RecurrentNet(inputs=inputs, num_outputs=num_outputs, cell="gru", hidden_size=hidden_size,
                        num_layers=num_layers, bidirectional=bidirectional, dropout=dropout, front=False)


@register_model("lstm1d")
def lstm1d(*, inputs, num_outputs, hidden_size=256, num_layers=2, bidirectional=False, dropout=0.0):
    return RecurrentNet(inputs=inputs, num_outputs=num_outputs, cell="lstm", hidden_size=hidden_size,
                        num_layers=num_layers, bidirectional=bidirectional, dropout=dropout, front=False)


@register_model("cnn_gru1d")
def cnn_gru1d(*, inputs, num_outputs, hidden_size=256, num_layers=1, bidirectional=False, dropout=0.0):
    return RecurrentNet(inputs=inputs, num_outputs=num_outputs, cell="gru", hidden_size=hidden_size,
                        num_layers=num_layers, bidirectional=bidirectional, dropout=dropout, front=True)
