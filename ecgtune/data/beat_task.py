"""Windows and beats of beat-annotated ECG records: the preprocessing MIT-BIH and any beat-annotated WFDB
database share (`mitdb`, `wfdb`).

A dataset module reads one lead of a record and its annotations; `record_examples` does the rest: filter,
scale, cut into windows or beats at the task's own rate, label through a `BeatLabels`, and add the R-R
features, the neighbouring beats and the patient's normalisation. The parameters are checked once by
`check_params`, which every dataset of beats calls, so a 125 Hz beat task means 125 Hz whatever the
database's rate.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgtune.data import kachuee, segment
from ecgtune.data.examples import FIXED, SIGNAL, Examples
from ecgtune.errors import EcgtuneError
from ecgtune.transforms import beat_context, rhythm

# Beat symbols for labels="binary". "!" (ventricular flutter wave) is a non-beat annotation
# in MIT-BIH, but the seed study counts it abnormal: a flutter window is not a normal one.
NORMAL_SYMBOLS = frozenset({"N"})
ABNORMAL_SYMBOLS = frozenset({"L", "R", "A", "a", "J", "S", "V", "F", "e", "j", "E", "/", "f", "!"})
UNCLASSIFIED_SYMBOLS = frozenset({"Q", "?"})  # neither normal nor abnormal: never label a window
BINARY_CLASSES = ("normal", "abnormal")
# The WFDB annotation codes that mark a beat (wfdb.io.annotation's QRS codes): what a label map is about.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

# ANSI/AAMI EC57 beat classes; other annotations (rhythm, noise, "!") are ignored.
AAMI_CLASSES = ("N", "S", "V", "F", "Q")
AAMI_MAP = {
    **dict.fromkeys(("N", "L", "R", "e", "j"), "N"),
    **dict.fromkeys(("A", "a", "J", "S"), "S"),
    **dict.fromkeys(("V", "E"), "V"),
    "F": "F",
    **dict.fromkeys(("/", "f", "Q"), "Q"),
}
# A window with several AAMI classes takes the first of these present: ectopic classes
# outrank fusion, fusion outranks unclassifiable, and N labels only an all-normal window.
AAMI_WINDOW_PRIORITY = ("V", "S", "F", "Q", "N")

MODES = ("windows", "beats", "kachuee")
LABEL_SETS = ("binary", "aami")
RHYTHM = "rhythm"  # the input of R-R features beside the beat (ecgtune.transforms.rhythm), with rhythm: true
NEIGHBOURS = "neighbours"  # the beat with the N beats before it and the next (ecgtune.transforms.beat_context)
RPEAK_SOURCES = ("reference", "detector")

# Beat modes only: the R-R features, the beats around each beat, the patient's amplitude scale.
BEAT_CONTEXT_DEFAULTS: dict[str, Any] = {"rhythm": False, "neighbours": 0, "patient_normalise": False}
COMMON_DEFAULTS: dict[str, Any] = {"bandpass": (0.4, 30.0), "lead": "MLII", "max_per_record": None}
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "windows": {"labels": "binary", "window_seconds": 1.0, "target_length": 128},
    "beats": {"labels": "aami", "before_seconds": 0.25, "after_seconds": 0.45, "target_rate": 360, **BEAT_CONTEXT_DEFAULTS},
    # Kachuee et al. 2018 (ecgtune/data/kachuee.py): unfiltered, 125 Hz, 187-sample beats.
    "kachuee": {
        "labels": "aami", "bandpass": None, "target_rate": kachuee.KACHUEE_RATE,
        "window_seconds": kachuee.KACHUEE_WINDOW_SECONDS, "rr_factor": kachuee.KACHUEE_RR_FACTOR,
        "target_length": kachuee.KACHUEE_LENGTH, "rpeaks": "reference", "threshold": kachuee.KACHUEE_THRESHOLD,
        "match_tolerance": 0.15, **BEAT_CONTEXT_DEFAULTS,
    },
}
# Options added after their defaults' behaviour existed leave the key alone at those defaults: the same
# examples keep the same data key (registered champions are compared and reused by it).
UNKEYED_DEFAULTS = {"neighbours": 0, "patient_normalise": False}
MAX_NEIGHBOURS = 16  # preceding beats an example may show: more is a rhythm strip, not a beat
CAP_SEED = 0  # max_per_record draws with a fixed seed so the smoke-test subset never changes


@dataclass(frozen=True)
class BeatLabels:
    """How annotation symbols become classes: ``binary`` and ``aami`` (MIT-BIH's sets) or a ``symbol_map``
    (class name -> the symbols it takes, in class order) that a database of other conventions brings.

    Codes: an integer per annotation, -1 where it labels nothing. For windows they are ranks (a window takes
    its highest), for beats anything that `classes` maps back.
    """

    labels: str
    symbol_map: dict | None = None

    @property
    def names(self) -> tuple[str, ...]:
        if self.symbol_map is not None:
            return tuple(self.symbol_map)
        return BINARY_CLASSES if self.labels == "binary" else AAMI_CLASSES

    def codes(self, symbols: np.ndarray, mode: str) -> np.ndarray:
        if self.symbol_map is not None:
            table = {s: i for i, symbols_of in enumerate(self.symbol_map.values()) for s in symbols_of}
        elif self.labels == "binary":
            table = {**dict.fromkeys(NORMAL_SYMBOLS, 0), **dict.fromkeys(ABNORMAL_SYMBOLS, 1)}
            if mode != "windows":
                table.pop("!")  # a flutter wave is not a beat: there is no R-peak to centre on
        else:
            rank = {cls: len(AAMI_WINDOW_PRIORITY) - 1 - i for i, cls in enumerate(AAMI_WINDOW_PRIORITY)}
            table = {symbol: rank[cls] for symbol, cls in AAMI_MAP.items()}
        return np.fromiter((table.get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))

    def any_symbol(self) -> str:
        """A symbol that labels a beat: what marks R-peaks given without labels (a champion's predictions)."""
        return next(iter(self.symbol_map.values()))[0] if self.symbol_map is not None else "N"

    def classes(self, codes: np.ndarray) -> np.ndarray:
        """Class index (into `names`) of each code of `codes`."""
        if self.symbol_map is not None or self.labels == "binary":
            return codes.astype(np.int64)
        by_rank = [AAMI_CLASSES.index(cls) for cls in reversed(AAMI_WINDOW_PRIORITY)]
        return np.asarray(by_rank, dtype=np.int64)[codes]


def check_params(name: str, mode: str, params: dict[str, Any], *, nyquist: float,
                 extra_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fill the defaults of ``mode`` and check every parameter; the records are the dataset's business.

    Args:
        name: The dataset, for messages ("mitdb: ...").
        nyquist: The highest band-pass cut-off the records allow (half the lowest sampling rate).
        extra_defaults: The dataset's own parameters beside the task's (the lead fallback of `wfdb`).

    Returns:
        The parameters with defaults, sorted, less the unkeyed ones at their defaults: what a cache key hashes.
    """
    if mode not in MODE_DEFAULTS:
        raise EcgtuneError(f"{name}: unknown mode {mode!r}; expected one of {', '.join(MODE_DEFAULTS)}")
    defaults = {**COMMON_DEFAULTS, **MODE_DEFAULTS[mode], **(extra_defaults or {})}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        accepted = ", ".join(["mode", "records", *sorted(defaults)])
        raise EcgtuneError(f"{name}: unknown prepare() parameter {unknown[0]!r} for mode={mode!r}; accepted: {accepted}")
    p = {**defaults, **params}
    if p["labels"] not in LABEL_SETS:
        raise EcgtuneError(f"{name}: unknown labels {p['labels']!r}; expected one of {', '.join(LABEL_SETS)}")
    if p["bandpass"] is not None:
        try:
            low, high = (float(v) for v in p["bandpass"])
        except (TypeError, ValueError):
            raise EcgtuneError(f"{name}: bandpass must be (low_hz, high_hz) or null, got {p['bandpass']!r}") from None
        if not 0 < low < high < nyquist:
            raise EcgtuneError(f"{name}: bandpass must satisfy 0 < low < high < {nyquist:g} Hz (half the records' "
                               f"rate), got ({low}, {high})")
        p["bandpass"] = [low, high]
    if not isinstance(p["lead"], str) or not p["lead"]:
        raise EcgtuneError(f"{name}: lead must be a signal name such as 'MLII', got {p['lead']!r}")
    positive_int(name, p, "max_per_record", allow_none=True)
    for key in ("rhythm", "patient_normalise"):
        if not isinstance(p.get(key, False), bool):
            raise EcgtuneError(f"{name}: {key} must be true or false, got {p[key]!r}")
    neighbours = p.get("neighbours", 0)
    if not isinstance(neighbours, int) or isinstance(neighbours, bool) or not 0 <= neighbours <= MAX_NEIGHBOURS:
        raise EcgtuneError(f"{name}: neighbours must be a whole number of preceding beats from 0 to "
                           f"{MAX_NEIGHBOURS}, got {neighbours!r}")
    if mode == "windows":
        positive_number(name, p, "window_seconds")
        positive_int(name, p, "target_length")
    elif mode == "kachuee":
        for key in ("window_seconds", "rr_factor", "threshold", "match_tolerance"):
            positive_number(name, p, key)
        positive_int(name, p, "target_length")
        positive_int(name, p, "target_rate")
        if p["rpeaks"] not in RPEAK_SOURCES:
            raise EcgtuneError(f"{name}: rpeaks must be one of {', '.join(RPEAK_SOURCES)}, got {p['rpeaks']!r}")
    else:
        positive_int(name, p, "target_rate")
        for k in ("before_seconds", "after_seconds"):
            if not isinstance(p[k], (int, float)) or isinstance(p[k], bool) or p[k] < 0:
                raise EcgtuneError(f"{name}: {k} must be a number >= 0, got {p[k]!r}")
        if p["before_seconds"] + p["after_seconds"] <= 0:
            raise EcgtuneError(f"{name}: before_seconds + after_seconds must be > 0")
    return {k: v for k, v in sorted(p.items()) if not (k in UNKEYED_DEFAULTS and v == UNKEYED_DEFAULTS[k])}


def record_examples(signal: np.ndarray, fs: float, samples: np.ndarray, symbols: np.ndarray, p: dict[str, Any],
                    labels: BeatLabels, *, record: str, patient: str, what: str) -> Examples:
    """The examples of one record's lead.

    Steps: (1) the optional zero-phase band-pass; (2) min-max scale the whole lead to [0, 1] (Kachuee scales
    each 10 s window instead); (3) cut and label: windows of ``window_seconds`` resampled to
    ``target_length``, or beats around each annotated (or detected) R-peak at ``target_rate`` Hz; (4) the
    patient's normalisation, the neighbouring beats and the R-R features, from every beat of the record
    before a cap draws some.

    Args:
        signal: One lead in physical units at ``fs`` Hz, shape (n,).
        samples: Sample index of each annotation; ``symbols`` its symbol.
        what: How errors name the record ("mitdb record 100 (/data/mitdb/100.dat)").

    Returns:
        Examples in time order; positions are sample indices of the raw record (window start or R-peak).
    """
    if p["bandpass"] is not None:
        signal = segment.bandpass(signal, fs, *p["bandpass"])
    codes = labels.codes(symbols, p["mode"])
    if p["mode"] != "kachuee":  # Kachuee scales each 10 s window, not the record
        try:
            signal = segment.minmax_scale(signal)
        except ValueError as err:
            raise EcgtuneError(f"{what}: {err}") from None
    if p["mode"] == "kachuee":
        x, codes, positions = kachuee_record(signal, fs, samples, codes, p)
    elif p["mode"] == "windows":
        window = int(round(p["window_seconds"] * fs))
        per_window = segment.window_codes(samples, codes, len(signal) // window, window)
        kept = np.flatnonzero(per_window >= 0)  # drops windows with no classified beat
        x = segment.resample_rows(segment.cut_windows(signal, window)[kept], p["target_length"])
        codes, positions = per_window[kept], kept * window
    else:
        is_beat = codes >= 0
        signal = segment.resample_rate(signal, fs, p["target_rate"])
        centers = np.round(samples[is_beat] * (p["target_rate"] / fs)).astype(np.int64)
        before = int(round(p["before_seconds"] * p["target_rate"]))
        after = int(round(p["after_seconds"] * p["target_rate"]))
        x, on_record = segment.cut_beats(signal, centers, before, after)
        codes, positions = codes[is_beat][on_record], samples[is_beat][on_record]
    y = labels.classes(codes)
    if p.get("patient_normalise"):
        x = beat_context.patient_zscore(x)
    inputs = {SIGNAL: x[:, None, :]}
    if p.get("neighbours"):  # from every beat of the record, before any cap draws beats
        inputs[NEIGHBOURS] = beat_context.neighbour_beats(x, positions, p["neighbours"])
    if p.get("rhythm"):  # from the record's whole train of R-peaks, before any cap draws beats from it
        inputs[RHYTHM] = beat_rhythm(positions, fs)
    if p["max_per_record"] is not None:
        rng = np.random.default_rng([CAP_SEED, zlib.crc32(record.encode())])
        chosen = segment.cap_per_class(y, p["max_per_record"], rng)
        inputs, y, positions = {k: v[chosen] for k, v in inputs.items()}, y[chosen], positions[chosen]
    n = len(y)
    return Examples(inputs=inputs, y=y, records=np.full(n, record), patients=np.full(n, patient),
                    positions=positions, label_names=labels.names)


def empty_inputs(p: dict[str, Any]) -> dict[str, tuple]:
    """The per-example shape of each input these parameters make (the shape of no examples)."""
    length = p["target_length"] if p["mode"] in ("windows", "kachuee") else beat_length(p)
    return {SIGNAL: (1, length), **({RHYTHM: (len(rhythm.FEATURES),)} if p.get("rhythm") else {}),
            **({NEIGHBOURS: (p["neighbours"] + 2, length)} if p.get("neighbours") else {})}


def layout(p: dict[str, Any]) -> str:
    # Augmentations remake the inputs from a changed beat; the neighbours come from other beats.
    return FIXED if p.get("neighbours") else SIGNAL


def kachuee_record(signal: np.ndarray, fs: float, samples: np.ndarray, codes: np.ndarray, p: dict[str, Any]):
    """Kachuee beats of one record: (beats, their codes, their R-peaks as sample indices of the raw record).

    With rpeaks="reference" every annotated beat is a beat. With rpeaks="detector" the paper's
    detector finds the peaks and each takes the class of the annotated beat within `match_tolerance`
    seconds; a detected peak no beat annotation explains is dropped (it has no label).
    """
    rate = p["target_rate"]
    signal = segment.resample_rate(signal, fs, rate)
    is_beat = codes >= 0
    beat_samples, beat_codes = samples[is_beat], codes[is_beat]
    reference = np.round(beat_samples * (rate / fs)).astype(np.int64)
    kwargs = dict(window_seconds=p["window_seconds"], rr_factor=p["rr_factor"], length=p["target_length"])
    if p["rpeaks"] == "reference":
        x, peaks = kachuee.kachuee_beats(signal, rate, peaks=reference, **kwargs)
        # Every reference peak becomes a beat unless its window holds a single beat or is flat.
        order = np.argsort(reference, kind="stable")
        which = np.searchsorted(reference[order], peaks)
        # Two annotations can round to one 125 Hz sample; such beats come out one after the other.
        index = np.arange(len(peaks))
        first_of_run = np.maximum.accumulate(np.where(np.r_[True, peaks[1:] != peaks[:-1]], index, 0))
        which += index - first_of_run
        return x, beat_codes[order][which], beat_samples[order][which]
    x, peaks = kachuee.kachuee_beats(signal, rate, threshold=p["threshold"], **kwargs)
    matched = kachuee.match_peaks(peaks, reference, int(round(p["match_tolerance"] * rate)))
    keep = matched >= 0
    return x[keep], beat_codes[matched[keep]], np.round(peaks[keep] * (fs / rate)).astype(np.int64)


def beat_rhythm(positions: np.ndarray, fs: float) -> np.ndarray:
    """The R-R features (ecgtune.transforms.rhythm) of beats at these R-peaks, in their order: computed on
    the distinct peaks in time order (two beats on one sample share their features)."""
    peaks, which = np.unique(positions, return_inverse=True)
    return rhythm.rr_features(peaks, fs)[which]


def beat_length(p: dict[str, Any]) -> int:
    return int(round(p["before_seconds"] * p["target_rate"])) + int(round(p["after_seconds"] * p["target_rate"]))


def positive_int(name: str, p: dict[str, Any], key: str, *, allow_none: bool = False) -> None:
    value = p[key]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise EcgtuneError(f"{name}: {key} must be {expected}, got {value!r}")
    p[key] = int(value)


def positive_number(name: str, p: dict[str, Any], key: str) -> None:
    value = p[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise EcgtuneError(f"{name}: {key} must be a number > 0, got {value!r}")
    p[key] = float(value)
