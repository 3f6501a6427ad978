"""PTB-XL as whole 10-second records (the `records` task of the ptbxl dataset): the leads, filtered,
resampled and padded to a model's input length, and the diagnostic labels derived from scp_codes.

Labels (through scp_statements.csv's diagnostic_class of each code):
- ``superdiagnostic``: multi-label over NORM, MI, STTC, CD, HYP (PTB-XL's benchmark task; Strodthoff et al.
  2021), records without a diagnostic statement left out;
- ``superdiagnostic4``: multi-label over MI, STTC, CD, HYP, a normal record all zero (Narotamo et al. 2024,
  seed 000), records without a diagnostic class left out;
- ``normal_abnormal``: NORM alone (class 0) against any other diagnostic class (class 1), records without a
  diagnostic statement left out (autoECG's binary task, seed 004).
Codes whose likelihood is below ``min_likelihood`` do not count (default 0: all, as the benchmark).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecgtune.errors import EcgtuneError

SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
LABEL_SETS = {
    "superdiagnostic": SUPERCLASSES,
    "superdiagnostic4": ("MI", "STTC", "CD", "HYP"),
    "normal_abnormal": ("normal", "abnormal"),
}
MULTI_LABEL = {"superdiagnostic", "superdiagnostic4"}
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")  # the table's order

DEFAULTS: dict[str, Any] = {
    "labels": "superdiagnostic",
    "leads": None,  # None: all twelve, in the records' order
    "rate": 100,  # the records read: 100 (records100/) or 500 Hz (records500/, where present)
    "bandpass": None,  # None, or [low_hz, high_hz]
    "bandpass_causal": False,  # one forward pass (seed 000's sosfilt) instead of zero-phase
    "bandpass_order": 3,
    "target_rate": None,  # resample to this rate; None keeps the records' rate
    "length": None,  # zero-pad (centred) or crop to this many samples; None keeps them
    "standardize": True,  # per record and lead: zero mean, unit standard deviation
    "min_likelihood": 0.0,
    "ecg_ids": None,
    "max_records": None,  # at most this many, spread over the ten folds (smoke runs)
    "images": None,  # None, or image kinds per lead (seed 000: [gaf, mtf, rp]): a second input, "image"
    "image_size": 256,  # each full-resolution image resized to image_size x image_size
}
IMAGE = "image"  # the input name of the images, beside "signal"


def diagnostic_classes(codes, likelihoods, statement_classes: dict[str, str], min_likelihood: float) -> set[str]:
    """The diagnostic classes of a record's codes that reach ``min_likelihood``."""
    return {statement_classes[c] for c, p in zip(codes, likelihoods) if p >= min_likelihood} - {""}


def record_label(classes: set[str], labels: str):
    """The target of a record with these diagnostic classes: a 0/1 vector (multi-label), a class index
    (normal_abnormal), or None when the task leaves the record out."""
    if not classes:
        return None  # no diagnostic statement: every task leaves it out
    if labels in MULTI_LABEL:
        names = LABEL_SETS[labels]
        if labels == "superdiagnostic4" and not classes - {"NORM"}:
            return np.zeros(len(names), np.float32)  # normal: all zero
        return np.array([name in classes for name in names], np.float32)
    return 0 if classes == {"NORM"} else 1


def resolve(params: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults and check every parameter of the records task."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise EcgtuneError(f"ptbxl: unknown records parameter {unknown[0]!r}; accepted: task, {', '.join(sorted(DEFAULTS))}")
    p = {**DEFAULTS, **params}
    if p["labels"] not in LABEL_SETS:
        raise EcgtuneError(f"ptbxl: labels must be one of {list(LABEL_SETS)}, got {p['labels']!r}")
    if p["leads"] is not None:
        leads = [str(lead).upper() for lead in (p["leads"] if isinstance(p["leads"], list) else [p["leads"]])]
        bad = [lead for lead in leads if lead not in LEADS]
        if bad or not leads or len(set(leads)) != len(leads):
            raise EcgtuneError(f"ptbxl: leads must be distinct names of {list(LEADS)}, got {p['leads']!r}")
        p["leads"] = leads
    if p["rate"] not in (100, 500):
        raise EcgtuneError(f"ptbxl: rate must be 100 or 500 (the two record sets), got {p['rate']!r}")
    check_signal_params("ptbxl", p, nyquist=p["rate"] / 2)
    if isinstance(p["min_likelihood"], bool) or not isinstance(p["min_likelihood"], (int, float)) or not 0 <= p["min_likelihood"] <= 100:
        raise EcgtuneError(f"ptbxl: min_likelihood must be a number from 0 to 100, got {p['min_likelihood']!r}")
    p["min_likelihood"] = float(p["min_likelihood"])
    return p


def check_signal_params(name: str, p: dict[str, Any], *, nyquist: float) -> None:
    """Check (in place) the whole-record preparation any dataset of records shares: band-pass below
    ``nyquist`` (half the records' rate), its order and causality, target rate, length, a cap on the records,
    standardisation, and the images."""
    for key in ("target_rate", "length", "max_records"):
        if p[key] is not None and (isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 1):
            raise EcgtuneError(f"{name}: {key} must be a positive integer or null, got {p[key]!r}")
    if p["bandpass"] is not None:
        try:
            low, high = (float(v) for v in p["bandpass"])
        except (TypeError, ValueError):
            raise EcgtuneError(f"{name}: bandpass must be null or [low_hz, high_hz], got {p['bandpass']!r}") from None
        if not 0 < low < high < nyquist:
            raise EcgtuneError(f"{name}: bandpass must satisfy 0 < low < high < {nyquist:g} Hz, got {p['bandpass']!r}")
        p["bandpass"] = [low, high]
    if not isinstance(p["bandpass_order"], int) or not 1 <= p["bandpass_order"] <= 10:
        raise EcgtuneError(f"{name}: bandpass_order must be an integer from 1 to 10, got {p['bandpass_order']!r}")
    if p["images"] is not None:
        from ecgtune.transforms.images import KINDS

        kinds = p["images"] if isinstance(p["images"], list) else [p["images"]]
        if not kinds or any(k not in KINDS for k in kinds) or len(set(kinds)) != len(kinds):
            raise EcgtuneError(f"{name}: images must be null or distinct kinds of {list(KINDS)}, got {p['images']!r}")
        p["images"] = list(kinds)
    if isinstance(p["image_size"], bool) or not isinstance(p["image_size"], int) or not 8 <= p["image_size"] <= 1024:
        raise EcgtuneError(f"{name}: image_size must be an integer from 8 to 1024, got {p['image_size']!r}")
    for key in ("bandpass_causal", "standardize"):
        if not isinstance(p[key], bool):
            raise EcgtuneError(f"{name}: {key} must be true or false, got {p[key]!r}")


def prepare_record(signal: np.ndarray, fs: int, p: dict[str, Any]) -> dict[str, np.ndarray]:
    """The inputs of one record: ``signal`` (leads, length) from `prepare_signal`, and with ``p["images"]``
    ``image`` (leads x kinds, size, size) uint8, made from the signal before its zero padding (padding would
    become part of every lead's min-max scale and of its image)."""
    x = prepare_signal(signal, fs, p, pad=False)
    inputs = {"signal": centred_pad(x, p["length"])}
    if p["images"] is not None:
        from ecgtune.transforms.images import record_image

        inputs[IMAGE] = record_image(x, kinds=tuple(p["images"]), size=p["image_size"])
    return inputs


def centred_pad(x: np.ndarray, length: int | None) -> np.ndarray:
    """Zeros on both sides (the extra one on the right) up to ``length`` samples, as Ribeiro et al. pad
    4,000 samples to 4,096."""
    if length is None or x.shape[1] >= length:
        return x
    before = (length - x.shape[1]) // 2
    return np.pad(x, ((0, 0), (before, length - x.shape[1] - before)))


def prepare_signal(signal: np.ndarray, fs: int, p: dict[str, Any], *, pad: bool = True) -> np.ndarray:
    """(samples, leads) in mV -> (leads, length): band-passed, resampled, cropped (centred), standardised
    per lead and (with ``pad``) zero-padded (centred), as ``p`` says."""
    from scipy.signal import butter, sosfilt, sosfiltfilt

    from ecgtune.data import segment

    x = np.asarray(signal, np.float64).T
    if p["bandpass"] is not None:
        sos = butter(p["bandpass_order"], p["bandpass"], btype="bandpass", fs=fs, output="sos")
        x = (sosfilt if p["bandpass_causal"] else sosfiltfilt)(sos, x, axis=1)
    if p["target_rate"] is not None and p["target_rate"] != fs:
        # The trend extended beyond the ends: zeros there would ring at a 10 s record's first and last
        # samples wherever the lead sits off zero.
        x = np.stack([segment.resample_rate(lead, fs, p["target_rate"], padtype="line") for lead in x])
    if p["length"] is not None and x.shape[1] > p["length"]:
        start = (x.shape[1] - p["length"]) // 2
        x = x[:, start : start + p["length"]]
    if p["standardize"]:  # over the samples, before the padding: the zeros stay zeros (the mean)
        mean = x.mean(axis=1, keepdims=True)
        std = x.std(axis=1, keepdims=True)
        x = np.divide(x - mean, std, out=np.zeros_like(x), where=std > 1e-8)
    return (centred_pad(x, p["length"]) if pad else x).astype(np.float32)


def spread_over_folds(folds: np.ndarray, cap: int, classes: np.ndarray | None = None) -> np.ndarray:
    """Indices of at most ``cap`` records, the first ones of each fold in turn: a smoke run still has
    training, validation and test records. With ``classes`` (one class per record), each fold's records
    are taken from its classes in turn, so that a small fold still holds every class it can (a validation
    or test part of one class cannot be scored fairly)."""
    per_fold = max(1, -(-cap // 10))

    def in_turn(rows: np.ndarray) -> np.ndarray:
        if classes is None:
            return rows
        by_class = [rows[classes[rows] == c] for c in np.unique(classes[rows])]
        rank = np.concatenate([np.arange(len(b)) for b in by_class])  # the k-th record of each class together
        return np.concatenate(by_class)[np.argsort(rank, kind="stable")]

    keep = np.concatenate([in_turn(np.flatnonzero(folds == f))[:per_fold] for f in np.unique(folds)])
    return np.sort(keep)[:cap] if len(keep) > cap else np.sort(keep)
