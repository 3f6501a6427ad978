"""The MIT-BIH Arrhythmia Database: download, prepare (windows or beats), load a split."""

from __future__ import annotations

import os
import zlib
from importlib import resources
from typing import Any, Iterable, Mapping

import numpy as np

from ecgtune import paths
from ecgtune.data import cache, kachuee, progress, segment, signal_files
from ecgtune.data._registry import register_dataset
from ecgtune.data.examples import FIXED, SIGNAL, Examples
from ecgtune.data.splits import SPLIT_NAMES, assign_split
from ecgtune.errors import EcgtuneError
from ecgtune.transforms import beat_context, rhythm

# Bump when prepare() output changes for the same parameters; it is part of the cache key.
FORMAT_VERSION = 1

# Beat symbols for labels="binary". "!" (ventricular flutter wave) is a non-beat annotation
# in MIT-BIH, but the seed study counts it abnormal: a flutter window is not a normal one.
NORMAL_SYMBOLS = frozenset({"N"})
ABNORMAL_SYMBOLS = frozenset({"L", "R", "A", "a", "J", "S", "V", "F", "e", "j", "E", "/", "f", "!"})
UNCLASSIFIED_SYMBOLS = frozenset({"Q", "?"})  # neither normal nor abnormal: never label a window
BINARY_CLASSES = ("normal", "abnormal")

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

# Beat modes only: the R-R features, the beats around each beat, the patient's amplitude scale.
_BEAT_CONTEXT_DEFAULTS: dict[str, Any] = {"rhythm": False, "neighbours": 0, "patient_normalise": False}
_COMMON_DEFAULTS: dict[str, Any] = {"bandpass": (0.4, 30.0), "lead": "MLII", "max_per_record": None}
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "windows": {"labels": "binary", "window_seconds": 1.0, "target_length": 128},
    "beats": {"labels": "aami", "before_seconds": 0.25, "after_seconds": 0.45, "target_rate": 360, **_BEAT_CONTEXT_DEFAULTS},
    # Kachuee et al. 2018 (ecgtune/data/kachuee.py): unfiltered, 125 Hz, 187-sample beats.
    "kachuee": {
        "labels": "aami", "bandpass": None, "target_rate": kachuee.KACHUEE_RATE,
        "window_seconds": kachuee.KACHUEE_WINDOW_SECONDS, "rr_factor": kachuee.KACHUEE_RR_FACTOR,
        "target_length": kachuee.KACHUEE_LENGTH, "rpeaks": "reference", "threshold": kachuee.KACHUEE_THRESHOLD,
        "match_tolerance": 0.15, **_BEAT_CONTEXT_DEFAULTS,
    },
}
RHYTHM = "rhythm"  # the input of R-R features beside the beat (ecgtune.transforms.rhythm), with rhythm: true
NEIGHBOURS = "neighbours"  # the beat with the N beats before it and the next (ecgtune.transforms.beat_context)
_RPEAK_SOURCES = ("reference", "detector")
_LABEL_SETS = ("binary", "aami")
_UNKEYED_DEFAULTS = {"neighbours": 0, "patient_normalise": False}
_MAX_NEIGHBOURS = 16  # preceding beats an example may show: more is a rhythm strip, not a beat
_CAP_SEED = 0  # max_per_record draws with a fixed seed so the smoke-test subset never changes


@register_dataset("mitdb")
class MitBih:
    """MIT-BIH Arrhythmia Database 1.0.0: 48 half-hour two-lead ambulatory ECGs at 360 Hz.

    Files are `<root>/mitdb/NNN.{hea,dat,atr}` (WFDB format 212, reference beat annotations).

    Citation: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng
    Med Biol 20(3):45-50 (2001); and Goldberger AL et al. PhysioBank, PhysioToolkit, and
    PhysioNet. Circulation 101(23):e215-e220 (2000). doi:10.13026/C2F305.
    Licence: Open Data Commons Attribution License v1.0 (ODC-By 1.0).

    Args:
        root: Folder that contains `mitdb/`; None means `paths.data_root()`.
        base_url: Where missing files are downloaded from (a local server in tests).
        checksums: {file name: hex SHA-256} to verify downloads against; None means the
            table packaged with ecgtune (PhysioNet mitdb 1.0.0).
    """

    name = "mitdb"
    RECORDS = (
        "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112",
        "113", "114", "115", "116", "117", "118", "119", "121", "122", "123", "124", "200",
        "201", "202", "203", "205", "207", "208", "209", "210", "212", "213", "214", "215",
        "217", "219", "220", "221", "222", "223", "228", "230", "231", "232", "233", "234",
    )  # fmt: skip
    PACED_RECORDS = ("102", "104", "107", "217")
    # The 29 records of the per-patient study (seed: ChryssaNab/ECG-Heartbeat-Classification).
    SEED_PATIENT_RECORDS = (
        "100", "102", "104", "105", "106", "108", "114", "116", "119", "200", "201", "202",
        "203", "205", "208", "209", "210", "212", "213", "215", "217", "219", "220", "221",
        "222", "223", "228", "231", "233",
    )  # fmt: skip
    DEFAULT_BASE_URL = "https://physionet.org/files/mitdb/1.0.0/"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        checksums: Mapping[str, str] | None = None,
    ) -> None:
        self.root = paths.data_root(root)
        self.folder = self.root / "mitdb"
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._checksums = dict(checksums) if checksums is not None else _packaged_checksums()

    def __repr__(self) -> str:
        return f"MitBih(root={str(self.root)!r})"

    @staticmethod
    def patient_of(record: str | int) -> str:
        """Patient id of a record: its name, except 202, recorded from the patient of 201."""
        record = str(record)
        return "201" if record == "202" else record

    # ---------------------------------------------------------------- download

    def download(self, records: Iterable[str | int] | str | int | None = None) -> None:
        """Fetch the files of `records` (default all 48) that are not in the folder yet.

        Files already present are left alone (not even re-hashed). Each missing file is
        fetched from `base_url`, verified against its SHA-256 and renamed into place.

        Raises:
            EcgtuneError: A file cannot be fetched or written (the message says which record,
                folder and URL, and how to point ecgtune at a local copy), or its checksum
                does not match (the message names the file and both hashes).
        """
        names = self._normalise_records(records) if records is not None else list(self.RECORDS)
        if not self._missing_files(names):
            return
        with cache.file_lock(f"{self.name}-download"):
            for file_name in self._missing_files(names):  # again: another process may have fetched some
                self._fetch(file_name)

    def _missing_files(self, records: list[str]) -> list[str]:
        wanted = (f"{r}.{ext}" for r in records for ext in ("hea", "dat", "atr"))
        return [f for f in wanted if not (self.folder / f).is_file()]

    def _fetch(self, file_name: str) -> None:
        record = file_name.split(".")[0]
        url = self.base_url + file_name
        expected = self._checksums.get(file_name)
        if expected is None:
            raise EcgtuneError(
                f"MIT-BIH record {record}: {file_name} is missing from {self.folder} and no SHA-256 "
                f"is known for it, so it will not be downloaded unverified"
            )
        try:
            cache.download_verified(url, self.folder / file_name, expected)
        except cache.DownloadError as err:
            raise EcgtuneError(
                f"MIT-BIH record {record}: {file_name} is not in {self.folder} and downloading it "
                f"from {url} failed ({err.reason}). To use a local copy, set ECGTUNE_DATA_DIR "
                f"(or pass --data-dir) to the folder that contains mitdb/; otherwise check the "
                f"network connection and that the folder is writable."
            ) from err

    # ---------------------------------------------------------------- prepare

    def prepare(self, mode: str = "windows", records: Iterable[str | int] | None = None, **params: Any) -> Examples:
        """Segment and label the records, once; later calls with the same parameters read the cache.

        Steps per record: (1) take the `lead` (MLII) or, where the record lacks it, its first
        channel; (2) zero-phase Butterworth band-pass (order 3); (3) min-max scale the whole
        lead to [0, 1]; (4) cut and label as below.

        mode="windows" (the seed's per-patient study): non-overlapping `window_seconds`
        windows (the partial tail dropped), each resampled to `target_length` samples
        (Fourier resampling rings a little, so values may leave [0, 1] by a few percent).
        labels="binary": 1 if the window holds an abnormal beat, else 0 if it holds a normal
        one; windows with only unclassified beats (Q, ?) or none are dropped.
        labels="aami": the highest of V > S > F > Q > N present.

        mode="beats": one example per beat, `before_seconds` + `after_seconds` around its
        R-peak, cut after resampling the lead to `target_rate` Hz; beats too close to an end
        are dropped. labels="aami" (AAMI EC57 classes) or "binary".

        Args:
            mode: "windows" or "beats".
            records: Record names (str or int); None means all 48, less the paced records
                for labels="aami" (AAMI practice).
            **params: All modes: `labels` ("binary", default for windows; "aami", default
                for beats), `bandpass` ((0.4, 30.0) Hz), `lead` ("MLII"), `max_per_record`
                (None; an int keeps at most that many examples per record, drawn with a
                fixed seed in rough class proportion: a smoke-test cap).
                Windows: `window_seconds` (1.0), `target_length` (128).
                Beats: `before_seconds` (0.25), `after_seconds` (0.45), `target_rate` (360 Hz).
                All of them, `mode` and the record list form the cache key.

        Returns:
            Examples in record order, each record's in time order; `positions` are sample
            indices of the raw 360 Hz record (window start or R-peak).

        Raises:
            EcgtuneError: Unknown mode, parameter, value or record; a record wfdb cannot read;
                a missing file that cannot be downloaded.
        """
        resolved = self._resolve(mode, records, params)
        arrays = cache.get_or_build(
            f"{self.name}-{mode}", self._cache_params(resolved), lambda: self._build(resolved).to_arrays(),
            sources=lambda: [self.folder / f"{r}.{ext}" for r in resolved["records"] for ext in ("hea", "dat", "atr")],
        )
        return Examples.from_arrays(arrays)

    def prepared_key(self, mode: str = "windows", records: Iterable[str | int] | None = None, **params: Any) -> str:
        """The identity of what `prepare()` returns for these arguments (defaults filled, records
        normalised): equal keys mean identical examples."""
        return cache.params_key(self._cache_params(self._resolve(mode, records, params)))

    def _cache_params(self, resolved: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": self.name, "format_version": FORMAT_VERSION, **resolved}

    def _resolve(self, mode: str, records: Any, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults, check every parameter, and return the JSON-able dict the cache key hashes."""
        if mode not in _MODE_DEFAULTS:
            raise EcgtuneError(f"{self.name}: unknown mode {mode!r}; expected one of {', '.join(_MODE_DEFAULTS)}")
        defaults = {**_COMMON_DEFAULTS, **_MODE_DEFAULTS[mode]}
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            accepted = ", ".join(["mode", "records", *sorted(defaults)])
            raise EcgtuneError(
                f"{self.name}: unknown prepare() parameter {unknown[0]!r} for mode={mode!r}; accepted: {accepted}"
            )
        p = {**defaults, **params}
        if p["labels"] not in _LABEL_SETS:
            raise EcgtuneError(f"{self.name}: unknown labels {p['labels']!r}; expected one of {', '.join(_LABEL_SETS)}")
        if p["bandpass"] is not None:
            try:
                low, high = (float(v) for v in p["bandpass"])
            except (TypeError, ValueError):
                raise EcgtuneError(
                    f"{self.name}: bandpass must be (low_hz, high_hz) or null, got {p['bandpass']!r}"
                ) from None
            if not 0 < low < high < 180:  # 180 Hz: Nyquist of the 360 Hz records
                raise EcgtuneError(f"{self.name}: bandpass must satisfy 0 < low < high < 180 Hz, got ({low}, {high})")
            p["bandpass"] = [low, high]
        if not isinstance(p["lead"], str) or not p["lead"]:
            raise EcgtuneError(f"{self.name}: lead must be a signal name such as 'MLII', got {p['lead']!r}")
        _check_positive_int(p, "max_per_record", allow_none=True)
        for key in ("rhythm", "patient_normalise"):
            if not isinstance(p.get(key, False), bool):
                raise EcgtuneError(f"{self.name}: {key} must be true or false, got {p[key]!r}")
        neighbours = p.get("neighbours", 0)
        if not isinstance(neighbours, int) or isinstance(neighbours, bool) or not 0 <= neighbours <= _MAX_NEIGHBOURS:
            raise EcgtuneError(f"{self.name}: neighbours must be a whole number of preceding beats from 0 to "
                               f"{_MAX_NEIGHBOURS}, got {neighbours!r}")
        if mode == "windows":
            _check_positive_number(p, "window_seconds")
            _check_positive_int(p, "target_length")
        elif mode == "kachuee":
            for key in ("window_seconds", "rr_factor", "threshold", "match_tolerance"):
                _check_positive_number(p, key)
            _check_positive_int(p, "target_length")
            _check_positive_int(p, "target_rate")
            if p["rpeaks"] not in _RPEAK_SOURCES:
                raise EcgtuneError(
                    f"{self.name}: rpeaks must be one of {', '.join(_RPEAK_SOURCES)}, got {p['rpeaks']!r}"
                )
        else:
            _check_positive_int(p, "target_rate")
            for k in ("before_seconds", "after_seconds"):
                if not isinstance(p[k], (int, float)) or isinstance(p[k], bool) or p[k] < 0:
                    raise EcgtuneError(f"{self.name}: {k} must be a number >= 0, got {p[k]!r}")
            if p["before_seconds"] + p["after_seconds"] <= 0:
                raise EcgtuneError(f"{self.name}: before_seconds + after_seconds must be > 0")
        if records is None:
            # AAMI practice leaves the paced records out; Kachuee's set keeps them (paced beats are Q).
            paced = self.PACED_RECORDS if p["labels"] == "aami" and mode != "kachuee" else ()
            names = [r for r in self.RECORDS if r not in paced]
        else:
            names = self._normalise_records(records)
        # Options added after their defaults' behaviour existed leave the key alone at those defaults: the
        # same examples keep the same data key (registered champions are compared and reused by it).
        p = {k: v for k, v in p.items() if not (k in _UNKEYED_DEFAULTS and v == _UNKEYED_DEFAULTS[k])}
        return {"mode": mode, "records": names, **dict(sorted(p.items()))}

    def _normalise_records(self, records: Iterable[str | int] | str | int) -> list[str]:
        """Record names as sorted unique str; a single name is accepted too."""
        if isinstance(records, (str, int)):
            records = [records]
        names = sorted({str(r).strip() for r in records})
        unknown = [r for r in names if r not in self.RECORDS]
        if unknown:
            raise EcgtuneError(
                f"{self.name}: unknown record(s) {', '.join(unknown)}; valid records: {', '.join(self.RECORDS)}"
            )
        if not names:
            raise EcgtuneError(f"{self.name}: records is empty; pass record names or None for the default set")
        return names

    def _build(self, p: dict[str, Any]) -> Examples:
        self.download(p["records"])
        label_names = BINARY_CLASSES if p["labels"] == "binary" else AAMI_CLASSES
        parts = [self._prepare_record(record, p)
                 for record in progress.steps(p["records"], what=f"{self.name}: preparing")]
        length = p["target_length"] if p["mode"] in ("windows", "kachuee") else _beat_length(p)
        empty = {SIGNAL: (1, length), **({RHYTHM: (len(rhythm.FEATURES),)} if p.get("rhythm") else {}),
                 **({NEIGHBOURS: (p["neighbours"] + 2, length)} if p.get("neighbours") else {})}
        # Augmentations remake the inputs from a changed beat; the neighbours come from other beats.
        layout = FIXED if p.get("neighbours") else SIGNAL
        return Examples.concatenate(parts, label_names=label_names, empty_inputs=empty, layout=layout)

    def _prepare_record(self, record: str, p: dict[str, Any]) -> Examples:
        signal, fs, samples, symbols = self._read(record, p["lead"])
        if p["bandpass"] is not None:
            signal = segment.bandpass(signal, fs, *p["bandpass"])
        codes = _label_codes(symbols, p["labels"], p["mode"])
        if p["mode"] != "kachuee":  # Kachuee scales each 10 s window, not the record
            try:
                signal = segment.minmax_scale(signal)
            except ValueError as err:
                raise EcgtuneError(f"{self.name} record {record} ({self.folder / record}.dat): {err}") from None
        if p["mode"] == "kachuee":
            x, codes, positions = _kachuee_record(signal, fs, samples, codes, p)
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
        y = _codes_to_classes(codes, p["labels"])
        if p.get("patient_normalise"):
            x = beat_context.patient_zscore(x)
        inputs = {SIGNAL: x[:, None, :]}
        if p.get("neighbours"):  # from every beat of the record, before any cap draws beats
            inputs[NEIGHBOURS] = beat_context.neighbour_beats(x, positions, p["neighbours"])
        if p.get("rhythm"):  # from the record's whole train of R-peaks, before any cap draws beats from it
            inputs[RHYTHM] = beat_rhythm(positions, fs)
        if p["max_per_record"] is not None:
            rng = np.random.default_rng([_CAP_SEED, zlib.crc32(record.encode())])
            chosen = segment.cap_per_class(y, p["max_per_record"], rng)
            inputs, y, positions = {k: v[chosen] for k, v in inputs.items()}, y[chosen], positions[chosen]
        n = len(y)
        return Examples(
            inputs=inputs,
            y=y,
            records=np.full(n, record),
            patients=np.full(n, self.patient_of(record)),
            positions=positions,
            label_names=BINARY_CLASSES if p["labels"] == "binary" else AAMI_CLASSES,
        )

    def _read(self, record: str, lead: str) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """One lead (physical units), the sampling rate, and the annotation samples and symbols.

        wfdb raises assorted exception types on damaged files, hence the broad excepts: each
        turns into an error naming the record and the file.
        """
        import wfdb

        base = str(self.folder / record)
        try:
            header = wfdb.rdheader(base)
        except Exception as err:  # noqa: BLE001
            raise EcgtuneError(f"{self.name} record {record}: wfdb cannot read header {base}.hea ({err})") from err
        # Records 102 and 104 have no MLII lead (surgical dressings; their upper lead is V5),
        # so a missing lead falls back to the record's first channel.
        signal_files.check_signal_files(header, self.folder, f"{self.name} record {record}")
        names = list(header.sig_name or [])
        channel = names.index(lead) if lead in names else 0
        try:
            rec = wfdb.rdrecord(base, channels=[channel], physical=True)
            signal = np.asarray(rec.p_signal[:, 0], dtype=np.float64)
        except Exception as err:  # noqa: BLE001
            raise EcgtuneError(f"{self.name} record {record}: wfdb cannot read signal file {base}.dat ({err})") from err
        expected_len = header.sig_len if header.sig_len is not None else len(signal)
        if len(signal) != expected_len or not np.all(np.isfinite(signal)):
            raise EcgtuneError(
                f"{self.name} record {record}: {base}.dat is damaged: expected {expected_len} finite "
                f"samples per channel (per {base}.hea), got {len(signal)} samples, "
                f"{int(np.sum(~np.isfinite(signal)))} of them invalid"
            )
        try:
            ann = wfdb.rdann(base, "atr")
        except Exception as err:  # noqa: BLE001
            raise EcgtuneError(f"{self.name} record {record}: wfdb cannot read annotations {base}.atr ({err})") from err
        return signal, int(header.fs), np.asarray(ann.sample, dtype=np.int64), np.asarray(ann.symbol, dtype=object)

    # ---------------------------------------------------------------- load

    def load(
        self,
        split: str,
        patient: str | int | None = None,
        *,
        protocol: str = "per_patient",
        seed: int = 42,
        **prepare_params: Any,
    ) -> Examples:
        """The examples of one split (and optionally one record), prepared or read from the cache.

        Args:
            split: "train", "val" or "test".
            patient: A record name to keep only that record's examples (the per-patient
                study treats each record as one patient); it must be among the prepared records.
            protocol: A split protocol of `ecgtune.data.list_splits()`.
            seed: Seed of the random split protocols.
            **prepare_params: Passed to `prepare()` (mode, records, labels, ...).
        """
        if split not in SPLIT_NAMES:
            raise EcgtuneError(f"{self.name}: unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        examples = self.prepare(**prepare_params)
        mask = assign_split(protocol, examples, seed=seed) == split
        if patient is not None:
            record = self._normalise_records(patient)[0]
            if record not in set(examples.records.tolist()):
                raise EcgtuneError(
                    f"{self.name}: record {record} is not among the prepared records "
                    f"({', '.join(np.unique(examples.records))}); pass records=[...] including it"
                )
            mask &= examples.records == record
        return examples.subset(mask)


def _packaged_checksums() -> dict[str, str]:
    resource = resources.files("ecgtune.data").joinpath("checksums", "mitdb.sha256")
    return cache.parse_checksums(resource.read_text(), source=str(resource))


def _label_codes(symbols: np.ndarray, labels: str, mode: str) -> np.ndarray:
    """Integer code per annotation; -1 for annotations that label nothing.

    In windows mode the codes are ranks (the window keeps its highest); in beats mode a
    code only has to say "kept, and which class". `_codes_to_classes` maps back.
    """
    if labels == "binary":
        table = {**dict.fromkeys(NORMAL_SYMBOLS, 0), **dict.fromkeys(ABNORMAL_SYMBOLS, 1)}
        if mode != "windows":
            table.pop("!")  # a flutter wave is not a beat: there is no R-peak to centre on
    else:
        rank = {cls: len(AAMI_WINDOW_PRIORITY) - 1 - i for i, cls in enumerate(AAMI_WINDOW_PRIORITY)}
        table = {symbol: rank[cls] for symbol, cls in AAMI_MAP.items()}
    return np.fromiter((table.get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))


def _codes_to_classes(codes: np.ndarray, labels: str) -> np.ndarray:
    """Class index (into label_names) of each code from `_label_codes`."""
    if labels == "binary":
        return codes.astype(np.int64)
    by_rank = [AAMI_CLASSES.index(cls) for cls in reversed(AAMI_WINDOW_PRIORITY)]
    return np.asarray(by_rank, dtype=np.int64)[codes]


def _kachuee_record(signal: np.ndarray, fs: int, samples: np.ndarray, codes: np.ndarray, p: dict[str, Any]):
    """Kachuee beats of one record: (beats, their codes, their R-peaks as 360 Hz sample indices).

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


def beat_rhythm(positions: np.ndarray, fs: int) -> np.ndarray:
    """The R-R features (ecgtune.transforms.rhythm) of beats at these R-peaks, in their order: computed on
    the distinct peaks in time order (two beats on one sample share their features)."""
    peaks, which = np.unique(positions, return_inverse=True)
    return rhythm.rr_features(peaks, fs)[which]


def _beat_length(p: dict[str, Any]) -> int:
    return int(round(p["before_seconds"] * p["target_rate"])) + int(round(p["after_seconds"] * p["target_rate"]))


def _check_positive_int(p: dict[str, Any], key: str, *, allow_none: bool = False) -> None:
    value = p[key]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise EcgtuneError(f"mitdb: {key} must be {expected}, got {value!r}")
    p[key] = int(value)


def _check_positive_number(p: dict[str, Any], key: str) -> None:
    value = p[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise EcgtuneError(f"mitdb: {key} must be a number > 0, got {value!r}")
    p[key] = float(value)
