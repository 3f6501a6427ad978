"""Fusion of a signal network and an image network (seed 000: Narotamo et al., BSPC 93:106141, 2024).

A fusion model holds two branches, each a whole registered model: ``signal`` (a 1D network of the leads)
and ``image`` (a 2D network of their GAF/MTF/RP images). A search starts them from the champions of their
own spaces (``transfer.branches``), built with the champions' hyperparameters (``branches``: the model
spec of each, filled in by the trainable from the weights it starts from). The seed's three ways:

- ``fusion_early``: the branches' features (the representation entering each branch's head), the image's
  projected to 256, concatenated -> FC 2h -> FC h -> outputs; the seed freezes the branches.
- ``fusion_late``: the branches' outputs (a sigmoid of each logit) concatenated -> FC h -> outputs; frozen.
- ``fusion_joint``: as early, the image's features projected to 768, both branches trained with the fusion.

Frozen or not is the model's ``train_branches`` (false for early and late, true for joint, as the seed
trains them; a space may search it), so that one space holds the three; every fusion layer is in ``head``. The seed takes the image features of early fusion
from AlexNet's fifth convolution (max-pooled, 4,096) and those of joint fusion after its second dense
layer (2,048); here both take what enters the image branch's head, the same for every image model.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import create_model, register_model
from ecgtune.models.head import HeadedModel

INPUTS = ("signal", "image")
# The seed's fusion starts from its best biGRU (2 x 128, dropout 0.5) and AlexNet (16 filters).
DEFAULT_BRANCHES = {
    "signal": {"name": "gru1d", "hparams": {"hidden_size": 128, "num_layers": 2, "bidirectional": True, "dropout": 0.5}},
    "image": {"name": "alexnet2d", "hparams": {"filters": 16}},
}


def build_branches(inputs: dict, num_outputs: int, branches: dict | None) -> nn.ModuleDict:
    """One registered model per input, as ``branches`` specifies it (name, hparams; num_outputs and the
    input shape it was trained on, where given, are checked against this task's)."""
    branches = branches or DEFAULT_BRANCHES
    if set(branches) != set(inputs):
        raise ValueError(f"a fusion model needs one branch per input {list(inputs)}, got {sorted(branches)}")
    built = {}
    for name in inputs:
        spec = branches[name]
        trained_on = spec.get("inputs", {}).get(name)
        if trained_on is not None and tuple(trained_on) != tuple(inputs[name]):
            raise ValueError(f"the {name} branch {spec['name']} was trained on {name} {tuple(trained_on)}; "
                             f"these examples have {tuple(inputs[name])}")
        if spec.get("num_outputs", num_outputs) != num_outputs:
            raise ValueError(f"the {name} branch {spec['name']} makes {spec['num_outputs']} outputs; this task "
                             f"needs {num_outputs} (train the branches on the same labels)")
        built[name] = create_model(spec["name"], inputs={name: inputs[name]}, num_outputs=num_outputs,
                                   **spec.get("hparams", {}))
    return nn.ModuleDict(built)


class _Fusion(HeadedModel):
    """The branches and what the fusion models share: freezing (the branches are the features: everything
    but the fusion's own ``head``) and frozen branches kept in eval mode (dropout off, batch-norm statistics
    as trained)."""

    def __init__(self, inputs, num_outputs, branches, train_branches):
        super().__init__()
        if not isinstance(train_branches, bool):
            raise ValueError(f"train_branches must be true or false, got {train_branches!r}")
        self.branches = build_branches(inputs, num_outputs, branches)
        for parameter in self.branches.parameters():  # the flags survive loading the champions' weights
            parameter.requires_grad_(train_branches)

    def train(self, mode: bool = True):
        super().train(mode)
        for branch in self.branches.values():
            if not any(p.requires_grad for p in branch.parameters()):
                branch.eval()
        return self


def _mlp(widths: list[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(w_in, w_out), nn.ReLU(), nn.Dropout(dropout)]
    return layers + [nn.Linear(widths[-2], widths[-1])]


class FeatureFusion(_Fusion):
    """Early and joint fusion: the branches' features, the image's projected to ``image_width``."""

    def __init__(self, *, inputs, num_outputs, branches=None, hidden_size=256, dropout=0.0, image_width=256,
                 train_branches=False):
        super().__init__(inputs, num_outputs, branches, train_branches)
        signal, image = self.branches["signal"], self.branches["image"]
        for branch in (signal, image):  # their own heads take no part here: out of the optimiser's way
            branch.head.requires_grad_(False)
        self.head = nn.Sequential(
            nn.Linear(image.feature_size, image_width), nn.ReLU(),  # the projection of the image features
            *_mlp([signal.feature_size + image_width, 2 * hidden_size, hidden_size, num_outputs], dropout),
        )
        self.image_width = image_width

    def forward(self, signal: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        projected = self.head[1](self.head[0](self.branches["image"].features(image)))
        joined = torch.cat([self.branches["signal"].features(signal), projected], dim=1)
        return self.head[2:](joined)


@register_model("fusion_early", takes=INPUTS)
def fusion_early(*, inputs, num_outputs, branches=None, hidden_size=256, dropout=0.0, train_branches=False):
    return FeatureFusion(inputs=inputs, num_outputs=num_outputs, branches=branches, hidden_size=hidden_size,
                         dropout=dropout, image_width=256, train_branches=train_branches)


@register_model("fusion_joint", takes=INPUTS)
def fusion_joint(*, inputs, num_outputs, branches=None, hidden_size=256, dropout=0.0, train_branches=True):
    return FeatureFusion(inputs=inputs, num_outputs=num_outputs, branches=branches, hidden_size=hidden_size,
                         dropout=dropout, image_width=768, train_branches=train_branches)


@register_model("fusion_late", takes=INPUTS)
class LateFusion(_Fusion):
    """The branches' outputs (sigmoid of each logit, as the seed's multi-label networks give them)."""

    def __init__(self, *, inputs, num_outputs, branches=None, hidden_size=256, dropout=0.0, train_branches=False):
        super().__init__(inputs, num_outputs, branches, train_branches)
        self.head = nn.Sequential(*_mlp([2 * num_outputs, hidden_size, num_outputs], dropout))

    def forward(self, signal: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        outputs = [torch.sigmoid(self.branches["signal"](signal)), torch.sigmoid(self.branches["image"](image))]
        return self.head(torch.cat(outputs, dim=1))
