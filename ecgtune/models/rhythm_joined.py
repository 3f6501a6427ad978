"""Beat networks that also read the beat's R-R rhythm features (ecgtune.transforms.rhythm): the timing
that tells a premature supraventricular beat from a normal one of the same shape.

``cnet_rr`` and ``bigru_rr`` take two inputs, the beat ``signal`` and its ``rhythm`` (pre-R-R, post-R-R,
local and global mean R-R, and the two prematurity ratios). The beat network is Kachuee's CNet or the
bidirectional GRU of ecgtune.models.heartbeat without its head; the rhythm goes through a small dense
layer; the two are joined before the same two-layer head (``head``), so transfer and freezing work as for
the beat-only models. Their beat-only counterparts on the same prepared examples are the ablation.

``cnet_neighbours_rr`` is CNet over ``neighbours`` (the beat with the beats before it and the next one as
channels, ecgtune.transforms.beat_context) joined with the same rhythm features: it can compare a beat's
shape with the patient's own beats around it, as a cardiologist reading a strip does.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import register_model
from ecgtune.models.head import HeadedModel
from ecgtune.models.heartbeat import BiGRUClassifier, CNet

INPUTS = ("signal", "rhythm")
RHYTHM_WIDTH = 16  # units of the dense layer the R-R features go through


class RhythmJoined(HeadedModel):
    def __init__(self, beat: HeadedModel, rhythm_features: int, fc_units: int, num_outputs: int):
        super().__init__()
        beat.head = nn.Identity()  # the beat network ends in its dense features (fc_units)
        self.beat = beat
        self.rhythm = nn.Sequential(nn.Linear(rhythm_features, RHYTHM_WIDTH), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(fc_units + RHYTHM_WIDTH, fc_units), nn.ReLU(), nn.Linear(fc_units, num_outputs))

    def forward(self, signal: torch.Tensor, rhythm: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.beat(signal), self.rhythm(rhythm)], dim=1))


def _rhythm_width(inputs) -> int:
    (width,) = inputs["rhythm"]
    return width


@register_model("cnet_rr", takes=INPUTS)
def cnet_rr(*, inputs, num_outputs, filters=32, kernel_size=5, num_blocks=5, fc_units=32, dropout=0.0):
    beat = CNet(inputs={"signal": inputs["signal"]}, num_outputs=num_outputs, filters=filters, kernel_size=kernel_size,
                num_blocks=num_blocks, fc_units=fc_units, dropout=dropout)
    return RhythmJoined(beat, _rhythm_width(inputs), fc_units, num_outputs)


@register_model("cnet_neighbours_rr", takes=("neighbours", "rhythm"))
def cnet_neighbours_rr(*, inputs, num_outputs, filters=32, kernel_size=5, num_blocks=5, fc_units=32, dropout=0.0):
    beats = CNet(inputs={"signal": inputs["neighbours"]}, num_outputs=num_outputs, filters=filters,
                 kernel_size=kernel_size, num_blocks=num_blocks, fc_units=fc_units, dropout=dropout)
    return RhythmJoined(beats, _rhythm_width(inputs), fc_units, num_outputs)


@register_model("bigru_rr", takes=INPUTS)
def bigru_rr(*, inputs, num_outputs, hidden=64, num_layers=1, frame_size=1, fc_units=32, dropout=0.0):
    beat = BiGRUClassifier(inputs={"signal": inputs["signal"]}, num_outputs=num_outputs, hidden=hidden,
                           num_layers=num_layers, frame_size=frame_size, fc_units=fc_units, dropout=dropout)
    return RhythmJoined(beat, _rhythm_width(inputs), fc_units, num_outputs)
