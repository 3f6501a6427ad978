"""A raw recording made into a model's inputs exactly as its dataset prepared the training examples.

A champion carries its dataset's *preparation* (``Dataset.preparation(**preprocessing)``: a JSON-able dict,
``kind`` and the resolved parameters) and applies it here to any recording: its signal in physical units,
its rate, its lead names and, for beat tasks, optional R-peaks. The steps are the datasets' own functions
(`beat_task.record_examples`, `ptbxl_records.prepare_record`, the DualNet views), so a recording of the
training database gives the very inputs its examples had.

Kinds:
- ``beats``: MIT-BIH's and `wfdb`'s beat and window tasks (one lead by name; R-peaks given or detected);
- ``detected_beats``: PTB-XL's MI task (Kachuee beats of one lead, the paper's detector);
- ``records``: whole records (leads by name, the task's rate and length);
- ``dualnet``: ECG-DualNet's windows and spectrogram of one lead at 300 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecgtune.data import beat_task, kachuee, ptbxl_records, segment
from ecgtune.data.beat_task import BeatLabels
from ecgtune.errors import EcgtuneError

GIVEN, DETECTED = "given", "detected"


@dataclass(frozen=True)
class Recording:
    """One raw recording: ``signal`` (leads, samples) in physical units (mV), ``fs`` in Hz, the lead names,
    and optional R-peaks (sample indices) for beat tasks."""

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...] = ()
    rpeaks: np.ndarray | None = None
    name: str = "recording"

    def __post_init__(self) -> None:
        signal = np.asarray(self.signal, dtype=np.float64)
        signal = signal[None, :] if signal.ndim == 1 else signal
        if signal.ndim != 2 or signal.shape[1] < 2 or not np.all(np.isfinite(signal)):
            raise EcgtuneError(f"{self.name}: signal must be finite samples of shape (leads, samples), got shape "
                               f"{np.asarray(self.signal).shape}")
        if not isinstance(self.fs, (int, float, np.number)) or not float(self.fs) > 0:
            raise EcgtuneError(f"{self.name}: fs must be the sampling rate in Hz, got {self.fs!r}")
        leads = tuple(str(x) for x in (self.leads if self.leads is not None else ()))
        if leads and len(leads) != signal.shape[0]:
            raise EcgtuneError(f"{self.name}: {len(leads)} lead names for {signal.shape[0]} leads of signal")
        object.__setattr__(self, "signal", signal)
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "leads", leads)
        if self.rpeaks is not None:
            object.__setattr__(self, "rpeaks", np.sort(np.asarray(self.rpeaks, dtype=np.int64).reshape(-1)))


@dataclass(frozen=True)
class RecordingInputs:
    """The model inputs of one recording (n examples), where each starts (a beat's R-peak, a window's first
    sample, 0 for a whole record, in samples of the recording), and where the R-peaks came from."""

    inputs: dict[str, np.ndarray]
    positions: np.ndarray
    rpeaks: str = ""  # "given" or "detected" for beat tasks
    notes: dict = field(default_factory=dict)


def lead_of(recording: Recording, lead: str, fallback: list[str] | tuple = ()) -> np.ndarray:
    """One lead by name (case aside), else the first of ``fallback``; a recording of one lead is that lead."""
    return leads_of(recording, [lead], fallback)[:, 0]


def leads_of(recording: Recording, leads: list[str], fallback: list[str] | tuple = ()) -> np.ndarray:
    """(samples, leads) of the named leads, in their order.

    Raises:
        EcgtuneError: a lead the recording lacks, naming the leads it has.
    """
    if len(leads) == 1 and recording.signal.shape[0] == 1 and not recording.leads:
        return recording.signal.T  # a one-lead model takes any one-lead recording
    by_name = {name.upper(): i for i, name in enumerate(recording.leads)}
    channels = []
    for lead in leads:
        found = next((by_name[w.upper()] for w in [lead, *fallback] if w.upper() in by_name), None)
        if found is None and len(leads) == 1 and recording.signal.shape[0] == 1:
            found = 0
        if found is None:
            raise EcgtuneError(f"{recording.name}: the model reads lead {lead!r}"
                               + (f" (or {list(fallback)})" if fallback else "")
                               + f"; the recording has {list(recording.leads) or 'unnamed leads'}")
        channels.append(found)
    return recording.signal[channels].T


def at_rate(signal: np.ndarray, fs: float, rate: float) -> np.ndarray:
    """The signal (samples, ...) at ``rate`` Hz (polyphase; unchanged at its own rate)."""
    if float(fs) == float(rate):
        return signal
    if float(fs) != int(fs) or float(rate) != int(rate):
        raise EcgtuneError(f"cannot convert a recording at {fs:g} Hz to {rate:g} Hz: whole rates only")
    return segment.resample_rate(signal, int(fs), int(rate), padtype="line") if signal.ndim == 1 else np.stack(
        [segment.resample_rate(signal[:, i], int(fs), int(rate), padtype="line") for i in range(signal.shape[1])], axis=1)


def detect_rpeaks(lead: np.ndarray, fs: float) -> np.ndarray:
    """R-peaks (samples of the lead) found by Kachuee's detector on the lead at 125 Hz, as ecgtune's
    detector-based tasks find them."""
    rate = kachuee.KACHUEE_RATE
    resampled = segment.resample_rate(lead, int(fs), rate) if fs != rate else lead
    _, peaks = kachuee.kachuee_beats(resampled, rate, peaks=None)
    return np.unique(np.round(peaks * (fs / rate)).astype(np.int64))


def recording_inputs(preparation: dict, recording: Recording) -> RecordingInputs:
    """The model inputs of ``recording`` under a dataset's ``preparation``.

    Raises:
        EcgtuneError: a recording the model cannot take (a lead it lacks, a rate it cannot convert, too
            short), naming it.
    """
    kind = preparation.get("kind")
    if kind == "beats":
        return _beats(preparation, recording)
    if kind == "detected_beats":
        return _detected_beats(preparation, recording)
    if kind == "records":
        return _records(preparation, recording)
    if kind == "dualnet":
        return _dualnet(preparation, recording)
    raise EcgtuneError(f"a champion prepared as {kind!r} cannot take raw recordings")


def _beats(preparation: dict, recording: Recording) -> RecordingInputs:
    p = dict(preparation["params"], max_per_record=None)  # every beat of the recording, none drawn
    labels = BeatLabels(p["labels"] if p["labels"] != "symbol_map" else "aami", p.get("symbol_map"))
    signal = lead_of(recording, p["lead"], p.get("lead_fallback") or ())
    fs = recording.fs
    if p["mode"] == "windows":  # windows need no R-peak: one mapped annotation per window keeps every window
        window = int(round(p["window_seconds"] * fs))
        samples, source = np.arange(len(signal) // window) * window + window // 2, ""
    elif recording.rpeaks is not None:
        samples, source = recording.rpeaks, GIVEN
    else:
        samples, source = detect_rpeaks(signal, fs), DETECTED
    samples = samples[(samples >= 0) & (samples < len(signal))]
    symbols = np.full(len(samples), labels.any_symbol(), dtype=object)
    if p["mode"] == "kachuee":
        p["rpeaks"] = "reference"  # the R-peaks are these, given or detected just now
    examples = beat_task.record_examples(signal, fs, samples, symbols, p, labels, record=recording.name,
                                         patient=recording.name, what=recording.name)
    return RecordingInputs(examples.inputs, examples.positions, source)


def _detected_beats(preparation: dict, recording: Recording) -> RecordingInputs:
    p = preparation["params"]
    rate = preparation["rate"]
    signal = at_rate(lead_of(recording, p["lead"]), recording.fs, rate)
    if p["bandpass"] is not None:
        signal = segment.bandpass(signal, rate, *p["bandpass"])
    signal = segment.resample_rate(signal, rate, p["target_rate"])
    beats, peaks = kachuee.kachuee_beats(signal, p["target_rate"], peaks=None, window_seconds=p["window_seconds"],
                                         rr_factor=p["rr_factor"], length=p["target_length"], threshold=p["threshold"])
    positions = np.round(peaks * (recording.fs / p["target_rate"])).astype(np.int64)
    return RecordingInputs({"signal": beats[:, None, :]}, positions, DETECTED)


def _records(preparation: dict, recording: Recording) -> RecordingInputs:
    p = preparation["params"]
    signal = leads_of(recording, preparation["leads"])
    fs = recording.fs
    if p.get("target_rate") is None and fs != preparation["rate"]:
        signal, fs = at_rate(signal, fs, preparation["rate"]), preparation["rate"]  # the rate it was trained at
    inputs = ptbxl_records.prepare_record(signal, fs, p)
    if p.get("length") is None and inputs["signal"].shape[1] != preparation["samples"]:
        raise EcgtuneError(f"{recording.name}: {inputs['signal'].shape[1]} samples after preparation; the model takes "
                           f"{preparation['samples']}")
    return RecordingInputs({k: v[None] for k, v in inputs.items()}, np.zeros(1, np.int64))


def _dualnet(preparation: dict, recording: Recording) -> RecordingInputs:
    import torch

    from ecgtune.transforms import spectrogram as sp

    p = preparation["params"]
    if recording.signal.shape[0] != 1:
        raise EcgtuneError(f"{recording.name}: ECG-DualNet reads one lead; the recording has {recording.signal.shape[0]}")
    lead = at_rate(recording.signal[0], recording.fs, preparation["rate"])[: p["sequence_length"]]
    signal = np.zeros((1, p["sequence_length"]), np.float32)
    signal[0, : len(lead)] = lead
    length = torch.tensor([len(lead)])
    with torch.no_grad():
        x = sp.zscore(torch.from_numpy(signal), length)
        inputs = sp.dualnet_inputs(x, length, frames=p["frames"])
    return RecordingInputs({k: v.numpy() for k, v in inputs.items()}, np.zeros(1, np.int64))
