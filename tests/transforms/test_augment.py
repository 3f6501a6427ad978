"""Augmentations: what each does to a recording, and that they reach training batches only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ecgtune.transforms import AUGMENTATIONS
from ecgtune.transforms import augment as aug


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_cutout_zeroes_one_interval_of_five_percent():
    x = torch.ones(3, 1000)
    out = aug.cutout(x, gen())
    for row in out:
        zeros = torch.nonzero(row == 0).flatten()
        assert len(zeros) == 50 and int(zeros[-1] - zeros[0]) == 49  # contiguous


def test_drop_zeroes_about_three_percent_and_scale_multiplies():
    x = torch.ones(4, 10_000)
    dropped = (aug.drop(x, gen()) == 0).float().mean().item()
    assert 0.02 < dropped < 0.04
    factors = aug.scale(x, gen())[:, 0]
    assert torch.all((factors >= 0.85) & (factors <= 1.15)) and len(set(factors.tolist())) == 4


def test_shift_delays_each_recording_by_up_to_4000_samples():
    x = torch.arange(1, 10_001, dtype=torch.float32).repeat(3, 1)
    out = aug.shift(x, gen(1))
    for row in out:
        delay = int((row == 0).sum())
        assert 0 <= delay < 4000 and torch.equal(row[delay:], x[0, : 10_000 - delay])


def test_resampling_stretches_time_and_keeps_the_length():
    t = torch.arange(3000, dtype=torch.float32)
    x = torch.sin(2 * math.pi * t / 300.0)[None].repeat(2, 1)  # 1 Hz at 300 Hz
    out = aug.resample(x, gen())
    assert out.shape == x.shape and not torch.allclose(out, x)
    # Random resampling moves each sample by at most 7.5 % of the half-length (grid coordinates run -1..1):
    # on a ramp, the value read at i lies within 113 samples of i.
    ramp = t[None].repeat(2, 1)
    warped = aug.random_resample(ramp, gen())
    assert warped.shape == ramp.shape and 0 < (warped - ramp).abs().max() <= 0.0375 * 3000 + 1


def test_sine_adds_a_slow_wave_and_band_pass_removes_what_lies_outside_0_2_to_45_hz():
    x = torch.zeros(2, 3000)
    wave = aug.sine(x, gen())
    assert wave.abs().max() <= 0.3 and wave.abs().max() > 0
    spectrum = np.abs(np.fft.rfft(wave[0].numpy()))
    assert np.fft.rfftfreq(3000, 1 / 300)[spectrum.argmax()] <= 1.0
    t = torch.arange(3000) / 300.0
    mixed = (2.0 + torch.sin(2 * math.pi * 10 * t) + torch.sin(2 * math.pi * 100 * t))[None]
    filtered = aug.band_pass(mixed, gen())[0]
    torch.testing.assert_close(filtered, torch.sin(2 * math.pi * 10 * t), atol=1e-3, rtol=0)  # float32 FFT


def test_probability_zero_changes_nothing_and_one_applies_the_named_ones():
    x = torch.randn(5, 2000)
    assert torch.equal(aug.augment_signal(x, 0.0, AUGMENTATIONS, gen()), x)
    only_cutout = aug.augment_signal(x, 1.0, ("cutout",), gen())
    assert torch.all((only_cutout == 0).sum(1) >= 100)
    assert aug.augmentation({"augment": 0.0}, "signal", gen()) is None


@pytest.mark.parametrize("layout,length", [("signal", 400), ("dualnet", 18_000), ("dualnet", 9_000)])
def test_training_batches_are_augmented_and_validation_never(layout, length):
    """run_epoch hands the transform training batches only; predict (validation and test) never; the
    augmented inputs keep their shapes (windows and frames of the recordings' own length)."""
    from ecgtune.training.batches import TensorSplit
    from ecgtune.training.loop import run_epoch
    from ecgtune.transforms import spectrogram as sp

    signal = torch.randn(6, length)
    if layout == "dualnet":
        frames = 1 + length // 32
        inputs = {k: v.numpy() for k, v in sp.dualnet_inputs(sp.zscore(signal), torch.full((6,), length), frames).items()}
    else:
        inputs = {"signal": signal[:, None].numpy()}
    split = TensorSplit(inputs, np.array([0, 1, 0, 1, 0, 1]), ("a", "b"), torch.device("cpu"), layout)
    seen = []
    transform = aug.augmentation({"augment": 1.0, "augmentations": ["cutout"]}, layout, gen())

    def spy(batch):
        seen.append(batch)
        return transform(batch)

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, *xs):
            return xs[0].flatten(1)[:, :1] * self.w

    model = Probe()
    run_epoch(model, split, "val", batch_size=2)
    assert seen == []
    run_epoch(model, split, "train", batch_size=3, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), transform=spy)
    assert len(seen) == 2
    changed = transform({k: v[:3] for k, v in split.inputs.items()})
    assert set(changed) == set(split.inputs) and all(changed[k].shape == split.inputs[k][:3].shape for k in changed)
    assert not torch.equal(changed[next(iter(changed))], split.inputs[next(iter(changed))][:3])
