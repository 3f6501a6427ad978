"""ECG-DualNet's inputs against their definitions, computed by hand."""

from __future__ import annotations

import numpy as np
import torch

from ecgtune.transforms import spectrogram as sp


def test_seed_shapes_of_a_full_length_recording():
    signal = torch.randn(2, sp.SEQUENCE_LENGTH)
    inputs = sp.dualnet_inputs(signal, torch.tensor([18_000, 18_000]))
    assert inputs["windows"].shape == (2, 80, 256) and sp.window_count() == 80
    assert inputs["spectrogram"].shape == (2, 1, 563, 33) and sp.FRAMES == 1 + 18_000 // 32


def test_a_spectrogram_frame_is_the_log_magnitude_of_a_normalised_hann_dft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float64)
    spec = sp.log_spectrogram(torch.from_numpy(x)[None], torch.tensor([1000]), frames=40).numpy()[0, 0]
    # Frame 5 by hand: centred (reflect padding of 32), a periodic Hann window of 64, |DFT| / ||window||.
    padded = np.pad(x, 32, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)
    frame = padded[5 * 32 : 5 * 32 + 64] * window
    expected = np.log(np.maximum(np.abs(np.fft.rfft(frame)) / np.sqrt(np.sum(window**2)), 1e-8))
    np.testing.assert_allclose(spec[5], expected, rtol=1e-5, atol=1e-5)
    assert np.all(spec[1 + 1000 // 32 :] == 0)  # padded frames are 0 (log 1), as the seed pads


def test_a_pure_tone_peaks_in_its_bin():
    t = np.arange(3000) / 300.0
    tone = torch.from_numpy(np.sin(2 * np.pi * 37.5 * t))[None]  # 37.5 Hz = bin 8 of a 64-point DFT at 300 Hz
    spec = sp.log_spectrogram(tone, torch.tensor([3000]), frames=94)[0, 0]
    assert int(spec[40].argmax()) == 8


def test_windows_give_the_signal_back():
    signal = torch.arange(2 * 18_000, dtype=torch.float32).reshape(2, 18_000)
    back = sp.signal_of_windows(sp.windows(signal))
    assert torch.equal(back, signal[:, : 224 * 79 + 256])


def test_standardising_ignores_the_padding_and_the_length_is_found_again():
    x = torch.zeros(1, 100)
    x[0, :60] = torch.linspace(1, 7, 60)
    z = sp.zscore(x, torch.tensor([60]))
    assert abs(float(z[0, :60].mean())) < 1e-6 and abs(float(z[0, :60].std()) - 1) < 1e-4
    assert torch.all(z[0, 60:] == 0)
    assert sp.signal_length(z).tolist() == [60]
