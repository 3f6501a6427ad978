"""Augmentations of training batches: each changes a recording at random with probability ``augment``.

They are ECG-DualNet's (ChristophReich1996/ECG_Classification, augmentation.py, after Nonaka & Seita
2020), with its parameters, in this order: cutout, drop, random resample, resample, scale, shift, sine,
band-pass. They work on the signal under a batch's inputs (`ecgtune.transforms.layouts`) and make the
inputs again from it, so a spectrogram sees the same augmented recording as the windows do. The trainable
applies them to training batches only; validation and test examples are never augmented.

Unlike the seed, which augments the raw recording (in 1/1000 mV) before standardising it, these act on
the standardised signal: the sine's magnitude of 0.3 is relative to the recording's spread here.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ecgtune.transforms import AUGMENTATIONS

FS = 300  # Hz: the rate the seed's parameters are for (PhysioNet/CinC 2017)
SCALE_RANGE = (0.85, 1.15)
DROP_RATE = 0.03
CUTOUT = 0.05  # of the length
MAX_SHIFT = 4000  # samples
RESAMPLE_FACTORS = (0.8, 1.2)
RANDOM_RESAMPLE_OFFSET, RANDOM_RESAMPLE_KNOTS = 0.075, 12
SINE_MAGNITUDE, SINE_FREQUENCIES = 0.3, (0.2, 1.0)
BAND = (0.2, 45.0)  # Hz


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def cutout(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Zero a random interval of 5 % of each recording."""
    size = int(x.shape[1] * CUTOUT)
    start = (torch.rand(x.shape[0], generator=g, device=x.device) * (x.shape[1] - size)).long()
    idx = torch.arange(x.shape[1], device=x.device)[None, :]
    return x.masked_fill((idx >= start[:, None]) & (idx < start[:, None] + size), 0.0)


def drop(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Zero 3 % of the samples, at random."""
    return x.masked_fill(torch.rand(x.shape, generator=g, device=x.device) < DROP_RATE, 0.0)


def resample(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Stretch or squeeze each recording in time by a factor in [0.8, 1.2] (kept at its length)."""
    factors = _uniform(x.shape[0], *RESAMPLE_FACTORS, g, x.device)
    out = torch.zeros_like(x)
    for i, f in enumerate(factors.tolist()):
        stretched = F.interpolate(x[i][None, None], size=max(2, int(f * x.shape[1])), mode="linear",
                                  align_corners=False)[0, 0]
        out[i, : min(len(stretched), x.shape[1])] = stretched[: x.shape[1]]
    return out


def random_resample(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Warp time smoothly: offsets of up to 7.5 % of the length at 12 knots, interpolated between them."""
    n, length = x.shape
    coordinates = 2.0 * torch.arange(length, device=x.device, dtype=x.dtype) / (length - 1) - 1
    knots = (2 * torch.rand(n, 1, RANDOM_RESAMPLE_KNOTS, generator=g, device=x.device) - 1) * RANDOM_RESAMPLE_OFFSET
    offsets = F.interpolate(knots.to(x.dtype), size=length, mode="linear", align_corners=False)[:, 0]
    # The signal is one row: read it at height 0 (the seed reads at heights -1..1 too, which fades the
    # signal towards both ends through the zero padding).
    grid = torch.stack([(coordinates + offsets).clamp(-1, 1), torch.zeros_like(offsets)], dim=-1)[:, None]
    return F.grid_sample(x[:, None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0, 0]


def scale(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Multiply by a factor in [0.85, 1.15]."""
    return x * _uniform(x.shape[0], *SCALE_RANGE, g, x.device)[:, None]


def shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Delay each recording by up to 4,000 samples (zeros before it, its end cut)."""
    delays = (torch.rand(x.shape[0], generator=g, device=x.device) * MAX_SHIFT).long()
    out = torch.zeros_like(x)
    for i, d in enumerate(delays.tolist()):
        out[i, d:] = x[i, : x.shape[1] - d]
    return out


def sine(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Add a slow sine (0.2-1 Hz) of magnitude up to 0.3, a baseline wander."""
    n, length = x.shape
    magnitude = _uniform(n, 0.0, SINE_MAGNITUDE, g, x.device)[:, None]
    frequency = _uniform(n, *SINE_FREQUENCIES, g, x.device)[:, None]
    phase = torch.rand(n, 1, generator=g, device=x.device)
    t = torch.arange(length, device=x.device, dtype=x.dtype)[None, :] / FS
    return x + magnitude * torch.sin(2 * math.pi * frequency * t + phase)


def band_pass(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Keep 0.2-45 Hz (a brick-wall filter in the frequency domain; the seed uses a 10th-order
    Butterworth filter)."""
    spectrum = torch.fft.rfft(x, dim=1)
    freqs = torch.fft.rfftfreq(x.shape[1], d=1.0 / FS).to(x.device)
    keep = (freqs >= BAND[0]) & (freqs <= BAND[1])
    return torch.fft.irfft(spectrum * keep, n=x.shape[1], dim=1)


FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "cutout": cutout, "drop": drop, "random_resample": random_resample, "resample": resample,
    "scale": scale, "shift": shift, "sine": sine, "band_pass": band_pass,
}


def augment_signal(x: torch.Tensor, p: float, names, g: torch.Generator) -> torch.Tensor:
    """(batch, samples) -> the same, each named augmentation applied to each recording with probability p."""
    for name in AUGMENTATIONS:
        if name not in names:
            continue
        chosen = torch.rand(x.shape[0], generator=g, device=x.device) < p
        if chosen.any():
            x = x.clone()
            x[chosen] = FUNCTIONS[name](x[chosen], g)
    return x


def augmentation(cfg: dict, layout_name: str, generator: torch.Generator):
    """The training-batch transform of a trial's config (None when ``augment`` is 0)."""
    p, names = float(cfg.get("augment") or 0.0), tuple(cfg.get("augmentations") or AUGMENTATIONS)
    if p <= 0:
        return None
    from ecgtune.transforms.layouts import layout

    take_signal, make_inputs = layout(layout_name)

    def transform(inputs: dict) -> dict:
        signal = augment_signal(take_signal(inputs).float(), p, names, generator)
        return make_inputs(signal, inputs)

    return transform
