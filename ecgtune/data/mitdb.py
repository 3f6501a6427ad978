"""The MIT-BIH Arrhythmia Database: download, prepare (windows or beats), load a split."""

from __future__ import annotations

import os
from importlib import resources
from typing import Any, Iterable, Mapping

import numpy as np

from ecgtune import paths
from ecgtune.data import beat_task, cache, progress, signal_files
from ecgtune.data._registry import register_dataset
from ecgtune.data.beat_task import BeatLabels
from ecgtune.data.examples import Examples
from ecgtune.data.splits import PATIENT_FRACTIONS, SPLIT_NAMES, assign_split
from ecgtune.errors import EcgtuneError

# Bump when prepare() output changes for the same parameters; it is part of the cache key.
FORMAT_VERSION = 1
NYQUIST = 180  # Hz: half the 360 Hz of every record, the highest band-pass cut-off


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
    space_keys: tuple[str, ...] = ()  # a space names this dataset by name alone
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
    def protocols(preprocessing: dict) -> dict[str, dict]:
        """The split protocols that fit: the seeds' within-record ones and de Chazal's, and whole patients."""
        del preprocessing
        return {"per_patient": {}, "chronological": {}, "random_beats": {}, "inter_patient": {},
                "random_records": dict(PATIENT_FRACTIONS), "stratified_records": {}}

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

    def preparation(self, mode: str = "windows", records: Iterable[str | int] | None = None, **params: Any) -> dict:
        """How a raw recording becomes the inputs of these examples (`ecgtune.data.recordings`)."""
        resolved = self._resolve(mode, records, params)
        return {"kind": "beats", "params": {k: v for k, v in resolved.items() if k != "records"}}

    def _resolve(self, mode: str, records: Any, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults, check every parameter, and return the JSON-able dict the cache key hashes."""
        p = beat_task.check_params(self.name, mode, params, nyquist=NYQUIST)
        if records is None:
            # AAMI practice leaves the paced records out; Kachuee's set keeps them (paced beats are Q).
            paced = self.PACED_RECORDS if p["labels"] == "aami" and mode != "kachuee" else ()
            names = [r for r in self.RECORDS if r not in paced]
        else:
            names = self._normalise_records(records)
        return {"mode": mode, "records": names, **p}

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
        labels = BeatLabels(p["labels"])
        parts = []
        for record in progress.steps(p["records"], what=f"{self.name}: preparing"):
            signal, fs, samples, symbols = self._read(record, p["lead"])
            parts.append(beat_task.record_examples(
                signal, fs, samples, symbols, p, labels, record=record, patient=self.patient_of(record),
                what=f"{self.name} record {record} ({self.folder / record}.dat)"))
        return Examples.concatenate(parts, label_names=labels.names, empty_inputs=beat_task.empty_inputs(p),
                                    layout=beat_task.layout(p))

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

    def recording(self, record: str):
        """The raw recording (both leads, mV, 360 Hz, lead names) of ``record``: what a champion is given."""
        from ecgtune.data.recordings import Recording
        from ecgtune.data.wfdb_folder import read_header, read_leads

        header = read_header(self.folder, self._normalise_records(record)[0])
        return Recording(read_leads(self.folder, header, list(header.leads)).T, header.fs, header.leads, name=header.record)

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
