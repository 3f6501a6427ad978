"""ECG-DualNet's two views of one lead: overlapping windows of the signal, and its log spectrogram.

The same functions prepare the cached inputs (numpy, on the driver) and rebuild them from an augmented
signal inside a trial (torch, on the trial's device), so that a training batch and a test example are
made alike. Defaults are the seed's (ChristophReich1996/ECG_Classification, dataset.py): 18,000 samples
at 300 Hz, windows of 256 samples every 224, a magnitude spectrogram with a 64-sample FFT and window,
hop 32, normalised, log of the magnitude clamped at 1e-8, zero-padded to 563 frames.
"""

from __future__ import annotations

import torch

SEQUENCE_LENGTH = 18_000  # samples kept of each recording (60 s at 300 Hz)
WINDOW = 256
WINDOW_STEP = 224  # 32 samples of overlap
N_FFT = 64
HOP = 32
FRAMES = 563  # 1 + 18,000 // 32: a recording of the full length needs no padding


def window_count(sequence_length: int = SEQUENCE_LENGTH, window: int = WINDOW, step: int = WINDOW_STEP) -> int:
    return (sequence_length - window) // step + 1


def zscore(signal: torch.Tensor, length: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, samples) standardised per recording over its first ``length`` samples (the padding after
    them stays zero)."""
    if length is None:
        length = torch.full((signal.shape[0],), signal.shape[1], device=signal.device)
    mask = torch.arange(signal.shape[1], device=signal.device)[None, :] < length[:, None]
    n = length.clamp(min=1).to(signal.dtype)[:, None]
    mean = (signal * mask).sum(1, keepdim=True) / n
    centred = (signal - mean) * mask
    # The unbiased std, as torch.std (the seed's), plus its 1e-8.
    std = (centred.pow(2).sum(1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
    return centred / (std + 1e-8)


def windows(signal: torch.Tensor, window: int = WINDOW, step: int = WINDOW_STEP) -> torch.Tensor:
    """(batch, samples) -> (batch, windows, window): the signal cut into overlapping windows."""
    return signal.unfold(-1, window, step)


def log_spectrogram(signal: torch.Tensor, length: torch.Tensor, frames: int = FRAMES, n_fft: int = N_FFT,
                    hop: int = HOP) -> torch.Tensor:
    """(batch, samples) -> (batch, 1, frames, n_fft // 2 + 1): per recording, the log magnitude of its
    normalised short-time Fourier transform over its first ``length`` samples, padded with zeros (as the
    seed: 0 is log 1, not log 1e-8) to ``frames``.

    The transform is torchaudio's Spectrogram(n_fft, win_length=n_fft, hop_length=hop, power=1,
    normalized=True): a centred, reflect-padded STFT with a periodic Hann window, divided by the window's
    L2 norm.
    """
    window = torch.hann_window(n_fft, periodic=True, device=signal.device, dtype=signal.dtype)
    out = torch.zeros(signal.shape[0], 1, frames, n_fft // 2 + 1, device=signal.device, dtype=signal.dtype)
    for i in range(signal.shape[0]):  # recordings differ in length: each its own STFT
        n = int(length[i])
        if n < n_fft // 2 + 1:
            continue  # too short for a reflect-padded frame: nothing to see
        spec = torch.stft(signal[i, :n], n_fft, hop_length=hop, win_length=n_fft, window=window, center=True,
                          pad_mode="reflect", return_complex=True).abs() / window.pow(2).sum().sqrt()
        logs = torch.log(spec.clamp(min=1e-8)).T[:frames]  # (frames, bins)
        out[i, 0, : logs.shape[0]] = logs
    return out


def dualnet_inputs(signal: torch.Tensor, length: torch.Tensor, frames: int = FRAMES) -> dict[str, torch.Tensor]:
    """(batch, samples) z-scored, zero-padded signals -> ECG-DualNet's inputs ``windows`` (batch, windows,
    256) and ``spectrogram`` (batch, 1, frames, 33)."""
    return {"windows": windows(signal), "spectrogram": log_spectrogram(signal, length, frames)}


def signal_of_windows(win: torch.Tensor, step: int = WINDOW_STEP) -> torch.Tensor:
    """(batch, windows, window) -> (batch, samples covered): the signal back from its overlapping windows
    (each window's first ``step`` samples, then the whole last window)."""
    head = win[:, :-1, :step].reshape(win.shape[0], -1)
    return torch.cat([head, win[:, -1]], dim=1)


def signal_length(signal: torch.Tensor) -> torch.Tensor:
    """(batch,) the length before the zero padding: one past the last non-zero sample."""
    nonzero = signal != 0
    last = signal.shape[1] - 1 - nonzero.flip(1).to(torch.int64).argmax(1)
    return torch.where(nonzero.any(1), last + 1, torch.zeros_like(last))
