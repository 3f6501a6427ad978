"""Image encodings of an ECG lead (seed 000: Narotamo et al., BSPC 93:106141, 2024).

Each lead is min-max scaled to [0, 1], then encoded at full resolution (an n x n image of an n-sample
lead) with pyts: a Gramian angular summation field rescaled to [0, 1] ((GAF + 1) / 2), a Markov
transition field of 10 uniform bins divided by 5 (the seed's scale, values 0-0.2) and a recurrence plot
without threshold (|x_i - x_j|). Each image is then resized bilinearly (align_corners=False, no
antialiasing: what the seed's cv2.resize does) and stored as uint8 (x 255). Asking pyts for the small
size directly would average the lead first (PAA) and give other images.

Memory: an image is n^2 (8 MB in float64 at 1,000 samples); one lead and one kind at a time is held at
full resolution and resized at once.
"""

from __future__ import annotations

import numpy as np

from ecgtune.errors import EcgtuneError

KINDS = ("gaf", "mtf", "rp")
MTF_SCALE = 5.0  # the seed divides its Markov transition field by 5


def _scaled(lead: np.ndarray) -> np.ndarray | None:
    """The lead min-max scaled to [0, 1], as a (1, n) batch for pyts; None for a constant lead."""
    x = np.asarray(lead, dtype=np.float64).reshape(-1)
    low, high = x.min(), x.max()
    if not np.isfinite(low) or not np.isfinite(high):
        raise EcgtuneError("an image encoding needs finite samples; this lead has NaN or infinite values")
    if high - low <= 1e-12:
        return None  # a flat lead: no angle, no transition, no distance to encode
    return ((x - low) / (high - low))[None, :]


def gaf(lead: np.ndarray) -> np.ndarray:
    """Gramian angular summation field in [0, 1]: (cos(phi_i + phi_j) + 1) / 2, phi = arccos of the lead
    scaled to [-1, 1]. A flat lead gives zeros."""
    from pyts.image import GramianAngularField

    x = _scaled(lead)
    if x is None:
        return np.zeros((np.size(lead),) * 2, np.float32)
    field = GramianAngularField(image_size=x.shape[1], method="summation").fit_transform(x)[0]
    return ((field + 1.0) / 2.0).astype(np.float32)


def mtf(lead: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Markov transition field / 5: entry (i, j) is the probability of moving from sample i's bin to sample
    j's (uniform bins over the lead's range). A flat lead gives zeros."""
    from pyts.image import MarkovTransitionField

    x = _scaled(lead)
    if x is None:
        return np.zeros((np.size(lead),) * 2, np.float32)
    field = MarkovTransitionField(image_size=x.shape[1], n_bins=n_bins, strategy="uniform").fit_transform(x)[0]
    return (field / MTF_SCALE).astype(np.float32)


def rp(lead: np.ndarray) -> np.ndarray:
    """Recurrence plot without threshold: |x_i - x_j| of the scaled lead, in [0, 1]. A flat lead gives zeros."""
    from pyts.image import RecurrencePlot

    x = _scaled(lead)
    if x is None:
        return np.zeros((np.size(lead),) * 2, np.float32)
    return RecurrencePlot().fit_transform(x)[0].astype(np.float32)


ENCODERS = {"gaf": gaf, "mtf": mtf, "rp": rp}


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to size x size (align_corners=False, no antialiasing, as cv2.resize INTER_LINEAR)."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=False)[0, 0].numpy()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] -> 0-255, rounded to the nearest step (values outside are clipped)."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def check_kinds(kinds) -> tuple[str, ...]:
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in ENCODERS]
    if unknown or not kinds:
        raise EcgtuneError(f"unknown image kind {unknown[0] if unknown else kinds!r}; known: {', '.join(KINDS)}")
    return kinds


def record_image(signal: np.ndarray, kinds=KINDS, size: int = 256) -> np.ndarray:
    """(leads, n) -> uint8 (leads x kinds, size, size), lead-major: [I-gaf, I-mtf, I-rp, II-gaf, ...]."""
    kinds = check_kinds(kinds)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise EcgtuneError(f"image size must be a positive integer, got {size!r}")
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise EcgtuneError(f"record_image takes (leads, samples), got shape {signal.shape}")
    channels = [to_uint8(resize(ENCODERS[kind](lead), size)) for lead in signal for kind in kinds]
    return np.stack(channels)


def channel_names(leads, kinds=KINDS) -> list[str]:
    """The name of each channel of `record_image`, e.g. ["I-gaf", "I-mtf", "I-rp", "II-gaf", ...]."""
    return [f"{lead}-{kind}" for lead in leads for kind in check_kinds(kinds)]
