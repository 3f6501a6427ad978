"""Small synthetic WFDB databases for tests: MIT-BIH-like beat databases and CinC 2020/2021-like
12-lead databases, written with wfdb.wrsamp/wfdb.wrann so the real readers are exercised, with
label-dependent waveforms so a small model can learn them. numpy only, deterministic from `seed`."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import wfdb

# Beat shapes as (amplitude mV, offset from the R peak s, gaussian sigma s); in seconds so the
# shape is the same at any fs. 'R' (RBBB) and 'j' (no P wave, used for AF) serve the 12-lead data;
# any other symbol is drawn like 'N'.
_QRS = [(-0.15, -0.025, 0.008), (1.2, 0.0, 0.012), (-0.3, 0.03, 0.01)]  # ~80 ms
_P, _T = (0.15, -0.16, 0.025), (0.3, 0.25, 0.04)
_SHAPES = {
    "N": [_P, *_QRS, _T],
    "A": [(-0.1, -0.16, 0.025), *_QRS, _T],  # ectopic atrial focus: inverted P wave
    "V": [(-0.8, -0.03, 0.025), (1.6, 0.04, 0.03), (-0.4, 0.3, 0.06)],  # ~160 ms, no P, discordant T
    "R": [_P, (-0.1, -0.03, 0.008), (0.9, 0.0, 0.012), (-0.35, 0.035, 0.01),
          (0.7, 0.065, 0.015), (-0.2, 0.1, 0.012), _T],  # ~140 ms rSR' with the extra notch
    "j": [*_QRS, _T],
}
_GAIN = {"212": 200.0, "16": 1000.0}  # adc units per mV: +-10 mV fits 212 (12 bit), +-32 mV fits 16
_DIGITAL_MAX = {"212": 2047, "16": 32767}
DX_POOL = {"AF": "164889003", "RBBB": "59118001", "NSR": "426783006", "OTHER": "251146004"}
TABLE_LABELS = ("AF", "RBBB", "NSR")  # OTHER is deliberately a code a label map would not map
# The 12-lead label cycle: AF, RBBB, NSR in many records, AF+RBBB in some, OTHER alone in a few.
_DX_CYCLE = (("AF",), ("RBBB",), ("NSR",), ("AF", "RBBB"), ("NSR",), ("AF",), ("RBBB",), ("OTHER",))


def synthetic_beats(n_samples, fs, peaks, symbols, seed=0) -> np.ndarray:
    """One ECG lead, shape (n_samples,) in mV: baseline wander + noise + a beat per R peak.

    `peaks` are sample indices, `symbols` the WFDB beat symbol of each (see _SHAPES); beats
    whose window runs off either end are cut, not dropped."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / fs
    x = 0.05 * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 2 * np.pi))
    x += rng.normal(0.0, 0.01, n_samples)
    half = int(round(0.5 * fs))
    for peak, symbol in zip(peaks, symbols):
        lo, hi = max(0, int(peak) - half), min(n_samples, int(peak) + half + 1)
        if lo >= hi:
            continue
        dt = (np.arange(lo, hi) - peak) / fs
        for amp, mu, sigma in _SHAPES.get(symbol, _SHAPES["N"]):
            x[lo:hi] += amp * np.exp(-0.5 * ((dt - mu) / sigma) ** 2)
    return x


def _write_signal(name, folder, fs, leads, fmt, signal, comments=None):
    """wrsamp with a fixed gain per format (baseline 0) after checking the values fit it."""
    gain = _GAIN[fmt]
    assert np.abs(signal).max() * gain < _DIGITAL_MAX[fmt], "signal too large for the format"
    k = len(leads)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * k, sig_name=list(leads), p_signal=signal,
                fmt=[fmt] * k, adc_gain=[gain] * k, baseline=[0] * k, comments=comments,
                write_dir=str(folder))


def _beat_symbols(rng, n, classes):
    """n symbols, ~70 % N and the rest shared by the other classes; the first beat normal and every
    class forced into the first half (which always fits the record)."""
    weights = np.array([0.7 if c == "N" else 0.3 / max(1, sum(c != "N" for c in classes)) for c in classes])
    symbols = list(rng.choice(list(classes), size=n, p=weights / weights.sum()))
    assert n // 2 - 1 >= len(classes), "record too short to hold every class"
    for c, i in zip(classes, rng.choice(np.arange(1, n // 2), size=len(classes), replace=False)):
        symbols[i] = str(c)
    symbols[0] = "N" if "N" in classes else symbols[0]
    return [str(s) for s in symbols]


def write_beat_database(folder, *, records=("800", "801", "802", "803", "804", "805"), fs=128,
                        leads=("ECG1", "ECG2"), fmt="212", seconds=120.0, annotator="atr",
                        write_records_file=True, classes=("N", "A", "V"), seed=0,
                        quirks=()) -> dict[str, dict]:
    """MIT-BIH-like database: per record `len(leads)` channels and a beat annotation file.

    Beats every ~0.8 s with jitter; non-N beats are premature (R-R ~0.6 of normal). A '+' (aux
    '(N') at sample 0 and one '~' are added. Quirks: "past_end" (records[0]: 2 beats after the
    last sample), "unknown_symbol" (records[0]: 3 beats labelled 'r'), "missing_annotator"
    (records[-1]: no annotation file). Returns {name: {samples (int64), symbols, fs, n_samples}}."""
    unknown = set(quirks) - {"past_end", "unknown_symbol", "missing_annotator"}
    assert not unknown, f"unknown quirks {unknown}"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_samples = int(round(seconds * fs))
    out = {}
    for index, name in enumerate(records):
        rng = np.random.default_rng([seed, index])
        symbols = _beat_symbols(rng, int(seconds / 0.8) + 2, classes)
        times = [0.4]  # the R-R interval before a non-N beat is premature: 0.6 of normal
        for symbol in symbols[1:]:
            t = times[-1] + 0.8 * rng.uniform(0.95, 1.05) * (1.0 if symbol == "N" else 0.6)
            if t > seconds - 0.6:
                break
            times.append(t)
        symbols = symbols[:len(times)]
        if "unknown_symbol" in quirks and index == 0:
            for i in [i for i, s in enumerate(symbols) if s == "N"][1:4]:
                symbols[i] = "r"
        peaks = np.round(np.array(times) * fs).astype(np.int64)
        assert len(peaks) >= 5, "record too short for the '~' annotation"
        first = synthetic_beats(n_samples, fs, peaks, symbols, seed=int(rng.integers(2**31)))
        shift = max(1, int(round(0.01 * fs)))
        signal = np.stack([first] + [(0.6 / j) * np.roll(first, j * shift) for j in range(1, len(leads))], axis=1)
        _write_signal(name, folder, fs, leads, fmt, signal)
        samples, symbols_all = list(peaks), list(symbols)
        if "past_end" in quirks and index == 0:
            samples += [n_samples + fs // 2, n_samples + fs]
            symbols_all += ["N", "N"]
        # '+' first; '~' halfway between the 4th and 5th beats
        samples = [0, *samples[:4], (samples[3] + samples[4]) // 2, *samples[4:]]
        symbols_all = ["+", *symbols_all[:4], "~", *symbols_all[4:]]
        samples = np.asarray(samples, dtype=np.int64)
        if "missing_annotator" in quirks and index == len(records) - 1:
            samples, symbols_all = np.zeros(0, dtype=np.int64), []
        else:
            aux = ["(N"] + [""] * (len(samples) - 1)
            wfdb.wrann(name, annotator, samples, symbol=symbols_all, aux_note=aux, fs=fs,
                       write_dir=str(folder))
        out[name] = {"samples": samples, "symbols": symbols_all, "fs": fs, "n_samples": n_samples}
    if write_records_file:
        (folder / "RECORDS").write_text("".join(f"{name}\n" for name in records))
    return out


_LEAD_SCALE = (1.0, 1.3, 0.4, -0.9, 0.5, 0.8, -0.7, 0.6, 1.0, 1.4, 1.2, 0.9)


def write_12lead_database(folder, *, n_records=24, fs=500, seconds=10.0, nested=True, fmt="16",
                          dx_pool=None, seed=0,
                          lead_names=("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3",
                                      "V4", "V5", "V6")) -> dict[str, dict]:
    """CinC 2020/2021-like database: records A0001... (in g1/, g2/... of 8 when `nested`), no
    RECORDS file, headers carrying '# Dx: code,code'. dx_pool maps AF, RBBB, NSR, OTHER to codes.

    AF: irregular R-R, no P waves, small f waves; RBBB: wide notched QRS; NSR: regular narrow beats.
    Returns {"g1/A0001": {codes, labels, fs, n_samples}} (paths relative to folder, posix)."""
    pool = dict(DX_POOL if dx_pool is None else dx_pool)
    folder = Path(folder)
    n_samples = int(round(seconds * fs))
    out = {}
    for i, labels in zip(range(n_records), itertools.cycle(_DX_CYCLE)):
        rng = np.random.default_rng([seed, i])
        name = f"A{i + 1:04d}"
        rel = f"g{i // 8 + 1}/{name}" if nested else name
        af, rbbb = "AF" in labels, "RBBB" in labels
        rr = rng.uniform(0.75, 1.0)
        times, t = [], rng.uniform(0.2, 0.5)
        while t < seconds - 0.3:
            times.append(t)
            t += rr * (rng.uniform(0.6, 1.4) if af else rng.uniform(0.98, 1.02))
        peaks = np.round(np.array(times) * fs).astype(np.int64)
        symbols = ["R" if rbbb else "j" if af else "N"] * len(peaks)
        f_waves = 0.04 * np.sin(2 * np.pi * rng.uniform(5, 7) * np.arange(n_samples) / fs) if af else 0.0
        signal = np.stack([_LEAD_SCALE[j % len(_LEAD_SCALE)]
                           * (synthetic_beats(n_samples, fs, peaks, symbols, seed=int(rng.integers(2**31))) + f_waves)
                           for j in range(len(lead_names))], axis=1)
        codes = [pool[label] for label in labels]
        comments = [f"Age: {int(rng.integers(20, 90))}", f"Sex: {rng.choice(['Male', 'Female'])}",
                    f"Dx: {','.join(codes)}", "Rx: Unknown", "Hx: Unknown", "Sx: Unknown"]
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        _write_signal(name, (folder / rel).parent, fs, lead_names, fmt, signal, comments)
        out[rel] = {"codes": codes, "labels": list(labels), "fs": fs, "n_samples": n_samples}
    return out


def write_label_table(path, records: dict[str, dict], *, patients: dict[str, str] | None = None,
                      style="names", splits: dict[str, str] | None = None) -> None:
    """CSV label table for `records` (as write_12lead_database returns). style "names":
    record,labels[,patient][,split] with labels ';'-joined; style "columns": record[,patient][,split]
    then a 0/1 column per label. Only AF, RBBB, NSR are labels (OTHER gives an empty/zero row)."""
    assert style in ("names", "columns"), style
    extra = (["patient"] if patients is not None else []) + (["split"] if splits is not None else [])
    header = ["record"] + (["labels"] if style == "names" else []) + extra
    header += list(TABLE_LABELS) if style == "columns" else []
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for record, info in records.items():
            labels = [label for label in info["labels"] if label in TABLE_LABELS]
            row = [record] + ([";".join(labels)] if style == "names" else [])
            row += ([patients[record]] if patients is not None else []) + ([splits[record]] if splits is not None else [])
            row += [int(label in labels) for label in TABLE_LABELS] if style == "columns" else []
            writer.writerow(row)


def patients_owning_several(records: list[str], per_patient=3) -> dict[str, str]:
    """record -> patient id, "P01" owning the first `per_patient` records, "P02" the next, ..."""
    return {record: f"P{i // per_patient + 1:02d}" for i, record in enumerate(records)}
