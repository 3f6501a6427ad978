"""How a dataset's inputs relate to the signal under them (`Examples.layout`).

An augmentation changes the recording, not one view of it: it takes a batch's signal out of its inputs,
changes it, and makes every input from it again, as the dataset did. A layout is that pair of functions.
"""

from __future__ import annotations

from typing import Callable

import torch

from ecgtune.transforms import FIXED
from ecgtune.errors import EcgtuneError

# layout -> (signal of a batch of inputs (batch, samples); inputs of a batch of signals, as the dataset makes them)
Layout = tuple[Callable[[dict], torch.Tensor], Callable[[torch.Tensor, dict], dict]]


def _signal_layout() -> Layout:
    """``signal`` (batch, leads, samples): its first lead is the signal (one-lead datasets); other inputs
    (a beat's R-R features) do not change with the beat's shape and are kept as they are."""

    def take(inputs: dict) -> torch.Tensor:
        if inputs["signal"].shape[1] != 1:
            raise EcgtuneError("augmentations change one-lead signals; these examples have several leads")
        return inputs["signal"][:, 0]

    return take, lambda signal, inputs: {**inputs, "signal": signal[:, None, : inputs["signal"].shape[-1]]}


def _dualnet_layout() -> Layout:
    """``windows`` (batch, 80, 256) and ``spectrogram`` (batch, 1, 563, 33) of a z-scored lead."""
    from ecgtune.transforms import spectrogram as sp

    def make(signal: torch.Tensor, inputs: dict) -> dict:
        # The signal the windows cover (its length gives the same number of windows and frames again).
        length = sp.signal_length(signal)
        return sp.dualnet_inputs(sp.zscore(signal, length), length, frames=inputs["spectrogram"].shape[2])

    return (lambda inputs: sp.signal_of_windows(inputs["windows"])), make


LAYOUTS: dict[str, Callable[[], Layout]] = {"signal": _signal_layout, "dualnet": _dualnet_layout}
# FIXED: inputs computed once at preparation and never made again from a changed signal (images of
# 1,000 x 1,000 per lead before resizing cost a second per record, far too much inside a training batch;
# a beat's neighbours are other examples' beats, which a batch does not hold).


def layout(name: str) -> Layout:
    if name == FIXED:
        raise EcgtuneError("augmentations change the signal under every input, but these examples' inputs (images, "
                           "neighbouring beats) are made once when the data are prepared; leave augment at 0")
    if name not in LAYOUTS:
        raise EcgtuneError(f"unknown input layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]()
