"""PTB-XL: download, prepare Kachuee et al.'s MI-vs-normal beat task, load a fold split."""

from __future__ import annotations

import ast
import csv
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np

from ecgtune import paths
from ecgtune.data import cache, progress, segment, signal_files
from ecgtune.data import ptbxl_records as records
from ecgtune.data._registry import register_dataset
from ecgtune.data.examples import FIXED, SIGNAL, Examples
from ecgtune.data.kachuee import (
    KACHUEE_LENGTH,
    KACHUEE_RATE,
    KACHUEE_RR_FACTOR,
    KACHUEE_THRESHOLD,
    KACHUEE_WINDOW_SECONDS,
    kachuee_beats,
)
from ecgtune.data.physionet import PhysioNetRelease
from ecgtune.data.splits import PATIENT_FRACTIONS, SPLIT_NAMES, assign_split
from ecgtune.errors import EcgtuneError

# Bump when prepare() output changes for the same parameters; it is part of the cache key.
FORMAT_VERSION = 1
# max_records takes each fold's classes in turn (spread_over_folds) since this was added to the key: only
# capped (smoke) preparations changed, so only they get a new key; full preparations keep theirs.
CAPPED_RULE = {"max_records_rule": "classes_in_turn"}

TABLE_FILE = "ptbxl_database.csv"
STATEMENTS_FILE = "scp_statements.csv"
RECORD_RATE = 100  # Hz: the records100/ version of every recording
RECORD_EXTENSIONS = ("hea", "dat")

# PTB-XL 1.0.2 dropped these recordings as duplicates of others (release notes); tables of
# 1.0.1 and before, such as the local copy, still hold them. A duplicate pair could put one
# recording in training and its copy in the test fold (145 and its copy 463 even carry
# different patient ids and folds), so they are left out of every table, whatever its release.
# Only the duplicates among ecg_ids 1-500 (the ids of the verified local copy) are listed.
DUPLICATE_ECG_IDS = frozenset({137, 139, 140, 141, 142, 143, 145, 456, 458, 459, 461, 462})

TASKS = ("mi_beats", "records")  # records: ecgtune.data.ptbxl_records
LABEL_NAMES = ("normal", "MI")
TABLE_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr")
STATEMENT_CLASS_COLUMN = "diagnostic_class"

_DEFAULTS: dict[str, Any] = {
    "lead": "II",
    "target_rate": KACHUEE_RATE,
    "window_seconds": KACHUEE_WINDOW_SECONDS,
    "rr_factor": KACHUEE_RR_FACTOR,
    "target_length": KACHUEE_LENGTH,
    "threshold": KACHUEE_THRESHOLD,
    "bandpass": None,  # Kachuee et al. do not filter
    "max_per_record": None,
    "ecg_ids": None,
}


@dataclass(frozen=True)
class PtbXlRecord:
    """One row of ptbxl_database.csv, parsed and checked."""

    ecg_id: int
    patient: str  # patient_id as an integer string, e.g. "15709"
    codes: tuple[str, ...]  # the SCP statement codes of scp_codes
    fold: int  # strat_fold, 1-10
    path: str  # filename_lr: the WFDB record, relative to the ptbxl folder, without extension
    likelihoods: tuple[float, ...] = ()  # the likelihood (0-100) scp_codes gives each code
    path_hr: str | None = None  # filename_hr: the 500 Hz record, where the table names it

    def record_path(self, rate: int) -> str:
        if rate == RECORD_RATE:
            return self.path
        if not self.path_hr:
            raise EcgtuneError(f"ptbxl ecg_id {self.ecg_id}: the table names no 500 Hz record (filename_hr)")
        return self.path_hr


@register_dataset("ptbxl")
class PtbXl:
    """PTB-XL: 21,799 ten-second 12-lead clinical ECGs (release 1.0.3) of 18,869 patients.

    Files are `<root>/ptbxl/ptbxl_database.csv` (one row per recording: ecg_id, patient_id,
    scp_codes, strat_fold, filename_lr, ...), `scp_statements.csv` (the SCP-ECG statements and
    their diagnostic classes) and `records100/NNNNN/NNNNN_lr.{hea,dat}` (WFDB, 100 Hz).

    `strat_fold` (1-10) is patient-wise: all recordings of one patient share a fold, so the
    "folds" split protocol (folds 1-8 train, 9 val, 10 test) keeps training, validation and
    test patients disjoint.

    Citation: Wagner P, Strodthoff N, Bousseljot RD, Kreiseler D, Lunze FI, Samek W,
    Schaeffter T. PTB-XL, a large publicly available electrocardiography dataset. Scientific
    Data 7:154 (2020); and Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet.
    Circulation 101(23):e215-e220 (2000).
    Licence: Creative Commons Attribution 4.0 International (CC BY 4.0).

    Args:
        root: Folder that contains `ptbxl/`; None means `paths.data_root()`.
        base_url: Where missing files are downloaded from (PhysioNet's release folder; a local
            server in tests). Its `SHA256SUMS.txt` is the list every download is verified against.
    """

    name = "ptbxl"
    space_keys: tuple[str, ...] = ()  # a space names this dataset by name alone
    DEFAULT_BASE_URL = "https://physionet.org/files/ptb-xl/1.0.3/"

    def __init__(self, root: str | os.PathLike | None = None, *, base_url: str = DEFAULT_BASE_URL) -> None:
        self.root = paths.data_root(root)
        self.folder = self.root / "ptbxl"
        self.release = PhysioNetRelease("PTB-XL", self.folder, base_url, _LOCAL_COPY_HINT)

    def __repr__(self) -> str:
        return f"PtbXl(root={str(self.root)!r})"

    @staticmethod
    def protocols(preprocessing: dict) -> dict[str, dict]:
        """The split protocols that fit: strat_fold (patient-wise), or whole patients dealt by us."""
        del preprocessing
        return {"folds": {}, "stratified_records": {}, "random_records": dict(PATIENT_FRACTIONS)}

    # ---------------------------------------------------------------- download

    def download(self, ecg_ids: Iterable[int | str] | int | str | None = None) -> None:
        """Fetch the table, the statements and the records of `ecg_ids` that are not in the folder yet.

        Files already present are left alone (not even re-hashed). Missing ones are fetched
        from `base_url` after its `SHA256SUMS.txt`, each verified against that list and renamed
        into place; a file the list does not name is refused rather than fetched unverified.

        Args:
            ecg_ids: The recordings to fetch; None means every row of the table. The duplicates
                of `DUPLICATE_ECG_IDS` are never fetched: prepare() leaves them out.

        Raises:
            EcgtuneError: A file cannot be fetched or written, its checksum differs, the list
                does not name it, or an ecg_id is not in the table.
        """
        wanted = None if ecg_ids is None else _normalise_ecg_ids(ecg_ids)
        self._download_metadata()
        self._download_records(self._select(self._read_table(), wanted))

    def _download_metadata(self) -> None:
        self._download_missing([TABLE_FILE, STATEMENTS_FILE])

    def _download_records(self, records: Iterable[PtbXlRecord]) -> None:
        self._download_missing([f"{r.path}.{ext}" for r in records for ext in RECORD_EXTENSIONS])

    def _download_missing(self, relative_paths: list[str]) -> None:
        self.release.download_missing(relative_paths, lock=f"{self.name}-download")

    # ---------------------------------------------------------------- prepare

    def prepare(self, task: str = "mi_beats", **params: Any) -> Examples:
        """Cut the MI and normal recordings into Kachuee beats, once; later calls read the cache.

        Labels (task "mi_beats", Kachuee et al.'s MI task on PTB-XL instead of the Kaggle PTB
        files): a recording is MI (class 1) if any of its scp_codes has diagnostic_class "MI" in
        scp_statements.csv; normal (class 0) if it has NORM and no code of another diagnostic
        class (non-diagnostic codes such as SR do not count); every other recording is left
        out. The likelihood attached to a code is not looked at. The duplicates of
        `DUPLICATE_ECG_IDS` are always left out.

        Steps per recording: take `lead`; an optional zero-phase band-pass at 100 Hz; resample
        to `target_rate`; `kachuee_beats` with its own R-peak detector (PTB-XL has no beat
        annotations). Every beat takes its recording's label.

        Args:
            task: "mi_beats".
            **params: `lead` ("II"), `target_rate` (125 Hz), `window_seconds` (10.0),
                `rr_factor` (1.2), `target_length` (187), `threshold` (0.9, on the window scaled
                to [0, 1]), `bandpass` (None, or (low_hz, high_hz) below 50 Hz), `max_per_record`
                (None; an int keeps the first n beats of each recording in time order),
                `ecg_ids` (None for every recording of the table; a list restricts them).
                With the task and the contents of both CSV files they form the cache key.

        Returns:
            Examples in ecg_id order, each recording's beats in time order: x (N, 1,
            target_length); records the ecg_id ("42"); patients the patient_id ("15709");
            positions the R-peak as a sample of the 100 Hz recording; folds the strat_fold.

        Raises:
            EcgtuneError: Unknown task, parameter, value or ecg_id; a missing or malformed CSV
                file; a recording wfdb cannot read or without `lead`; a failed download.
        """
        resolved = self._resolve(task, params)
        self._download_metadata()
        build = self._build_records if task == "records" else self._build
        arrays = cache.get_or_build(
            f"{self.name}-{task}", self._cache_params(resolved), lambda: build(resolved).to_arrays(),
            sources=lambda: cache.folder_files(self.folder),
        )
        return Examples.from_arrays(arrays)

    def prepared_key(self, task: str = "mi_beats", **params: Any) -> str:
        """The identity of what `prepare()` returns for these arguments: equal keys mean identical examples.

        Unlike MIT-BIH's fixed record set, the recordings and labels come from the table, so the
        key covers the SHA-256 of both CSV files (fetched first if missing): a 500-row table
        and the full one give different keys for ecg_ids=None.
        """
        resolved = self._resolve(task, params)
        self._download_metadata()
        return cache.params_key(self._cache_params(resolved))

    def preparation(self, task: str = "mi_beats", **params: Any) -> dict:
        """How a raw recording becomes the inputs of these examples (`ecgtune.data.recordings`)."""
        resolved = self._resolve(task, params)
        if task == "records":
            return {"kind": "records", "params": resolved, "leads": resolved["leads"] or list(records.LEADS),
                    "rate": resolved["rate"]}
        return {"kind": "detected_beats", "params": resolved, "rate": RECORD_RATE}

    def _cache_params(self, resolved: dict[str, Any]) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "format_version": FORMAT_VERSION,
            **resolved,
            **(CAPPED_RULE if resolved.get("max_records") is not None else {}),
            "table_sha256": cache.sha256_file(self.folder / TABLE_FILE),
            "statements_sha256": cache.sha256_file(self.folder / STATEMENTS_FILE),
        }

    def _resolve(self, task: str, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults, check every parameter, and return the JSON-able dict the cache key hashes."""
        if task not in TASKS:
            raise EcgtuneError(f"{self.name}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if task == "records":
            p = records.resolve(params)
            p["ecg_ids"] = None if p["ecg_ids"] is None else _normalise_ecg_ids(p["ecg_ids"])
            return {"task": task, **dict(sorted(p.items()))}
        unknown = sorted(set(params) - set(_DEFAULTS))
        if unknown:
            accepted = ", ".join(["task", *sorted(_DEFAULTS)])
            raise EcgtuneError(f"{self.name}: unknown prepare() parameter {unknown[0]!r}; accepted: {accepted}")
        p = {**_DEFAULTS, **params}
        if not isinstance(p["lead"], str) or not p["lead"]:
            raise EcgtuneError(f"{self.name}: lead must be a signal name such as 'II', got {p['lead']!r}")
        for key in ("target_rate", "target_length"):
            p[key] = _positive_int(p[key], key)
        p["max_per_record"] = _positive_int(p["max_per_record"], "max_per_record", allow_none=True)
        for key in ("window_seconds", "rr_factor"):
            p[key] = _positive_number(p[key], key)
        p["threshold"] = _threshold(p["threshold"])
        p["bandpass"] = _bandpass(p["bandpass"])
        p["ecg_ids"] = None if p["ecg_ids"] is None else _normalise_ecg_ids(p["ecg_ids"])
        return {"task": task, **dict(sorted(p.items()))}

    def _build(self, p: dict[str, Any]) -> Examples:
        classes = self._read_statements()
        records = self._select(self._read_table(), p["ecg_ids"])
        labelled = [(r, label) for r in records if (label := self._label(r, classes)) is not None]
        self._download_records(r for r, _ in labelled)
        parts = [self._record_beats(record, label, p) for record, label in labelled]
        return Examples.concatenate(parts, label_names=LABEL_NAMES, empty_inputs={SIGNAL: (1, p["target_length"])})

    def _build_records(self, p: dict[str, Any]) -> Examples:
        """Whole records (`ecgtune.data.ptbxl_records`): leads (N, leads, length), labels of ``p["labels"]``."""
        classes = self._read_statements()
        rows = self._select(self._read_table(), p["ecg_ids"])
        for record in rows:
            self._check_codes(record, classes)
        labelled = [(r, y) for r in rows if (y := records.record_label(
            records.diagnostic_classes(r.codes, r.likelihoods, classes, p["min_likelihood"]), p["labels"])) is not None]
        if p["max_records"] is not None:
            single = all(np.ndim(y) == 0 for _, y in labelled)  # one class per record: keep classes in every fold
            keep = records.spread_over_folds(np.array([r.fold for r, _ in labelled]), p["max_records"],
                                             np.array([int(y) for _, y in labelled]) if single and labelled else None)
            labelled = [labelled[i] for i in keep]
        self._download_missing([f"{r.record_path(p['rate'])}.{ext}" for r, _ in labelled for ext in RECORD_EXTENSIONS])
        prepared = [records.prepare_record(*self._read_leads(r, p["rate"], p["leads"]), p)
                    for r, _ in progress.steps(labelled, what=f"{self.name}: preparing")]
        n = len(labelled)
        if prepared:
            inputs = {name: np.stack([inputs[name] for inputs in prepared]) for name in prepared[0]}
        else:
            inputs = {SIGNAL: np.zeros((0, len(p["leads"] or records.LEADS), 1), np.float32)}
        return Examples(
            inputs=inputs, layout=FIXED if records.IMAGE in inputs else SIGNAL,
            y=np.array([y for _, y in labelled]) if n else np.zeros(0, np.int64),
            records=[str(r.ecg_id) for r, _ in labelled], patients=[r.patient for r, _ in labelled],
            positions=np.zeros(n, np.int64), folds=[r.fold for r, _ in labelled],
            label_names=records.LABEL_SETS[p["labels"]],
        )

    def recording(self, record: str, rate: int = RECORD_RATE):
        """The raw recording (twelve leads in mV at ``rate`` Hz, their names) of ecg_id ``record``."""
        from ecgtune.data.recordings import Recording

        (row,) = self._select(self._read_table(), _normalise_ecg_ids(record))
        signal, fs = self._read_leads(row, rate, None)
        import wfdb

        names = [n.upper() for n in wfdb.rdheader(str(self.folder / row.record_path(rate))).sig_name]
        return Recording(signal.T, fs, tuple(names), name=str(row.ecg_id))

    def _read_leads(self, record: PtbXlRecord, rate: int, leads: list[str] | None) -> tuple[np.ndarray, int]:
        """(samples, leads) in mV of the record at ``rate``, the leads in the order asked (default: the
        record's own), and the rate."""
        import wfdb

        base = self.folder / record.record_path(rate)
        try:
            rec = wfdb.rdrecord(str(base), physical=True)
        except Exception as err:  # noqa: BLE001 - wfdb raises assorted types on damaged files
            raise EcgtuneError(f"{self.name} ecg_id {record.ecg_id}: wfdb cannot read record {base} (.hea/.dat) ({err})") from err
        signal_files.check_signal_files(rec, base.parent, f"{self.name} ecg_id {record.ecg_id}")
        names = [n.upper() for n in (rec.sig_name or [])]
        wanted = leads or names
        missing = [lead for lead in wanted if lead not in names]
        if missing or rec.fs != rate:
            raise EcgtuneError(
                f"{self.name} ecg_id {record.ecg_id}: {base}.hea has leads {names} at {rec.fs} Hz; expected "
                f"{wanted} at {rate} Hz"
            )
        signal = np.asarray(rec.p_signal, dtype=np.float64)[:, [names.index(lead) for lead in wanted]]
        if not np.all(np.isfinite(signal)):
            raise EcgtuneError(f"{self.name} ecg_id {record.ecg_id}: {base}.dat holds invalid samples")
        return signal, rate

    def _check_codes(self, record: PtbXlRecord, classes: dict[str, str]) -> None:
        unknown = [c for c in record.codes if c not in classes]
        if unknown:
            raise EcgtuneError(
                f"{self.folder / TABLE_FILE}: ecg_id {record.ecg_id} has SCP code {unknown[0]!r}, which "
                f"{self.folder / STATEMENTS_FILE} does not define; expected the statements file of the same release"
            )

    def _label(self, record: PtbXlRecord, classes: dict[str, str]) -> int | None:
        """1 for MI, 0 for normal, None for a recording the task leaves out (see prepare())."""
        self._check_codes(record, classes)
        diagnostic = {classes[c] for c in record.codes} - {""}
        if "MI" in diagnostic:
            return 1
        if "NORM" in record.codes and diagnostic == {"NORM"}:
            return 0
        return None

    def _record_beats(self, record: PtbXlRecord, label: int, p: dict[str, Any]) -> Examples:
        signal = self._read_lead(record, p["lead"])
        if p["bandpass"] is not None:
            signal = segment.bandpass(signal, RECORD_RATE, *p["bandpass"])
        signal = segment.resample_rate(signal, RECORD_RATE, p["target_rate"])
        beats, peaks = kachuee_beats(
            signal,
            p["target_rate"],
            peaks=None,  # no beat annotations in PTB-XL: the paper's own detector finds the R-peaks
            window_seconds=p["window_seconds"],
            rr_factor=p["rr_factor"],
            length=p["target_length"],
            threshold=p["threshold"],
        )
        if p["max_per_record"] is not None:
            # kachuee_beats returns a recording's beats in time order: this keeps the first n.
            beats, peaks = beats[: p["max_per_record"]], peaks[: p["max_per_record"]]
        n = len(beats)
        return Examples(
            inputs={SIGNAL: beats[:, None, :]},
            y=np.full(n, label),
            records=np.full(n, str(record.ecg_id)),
            patients=np.full(n, record.patient),
            positions=np.round(peaks * (RECORD_RATE / p["target_rate"])).astype(np.int64),
            folds=np.full(n, record.fold),
            label_names=LABEL_NAMES,
        )

    def _read_lead(self, record: PtbXlRecord, lead: str) -> np.ndarray:
        """One lead of a recording in physical units (mV), checked for rate, length and finite values.

        wfdb raises assorted exception types on damaged files, hence the broad except: each
        turns into an error naming the recording and its path.
        """
        import wfdb

        base = self.folder / record.path
        try:
            rec = wfdb.rdrecord(str(base), physical=True)
        except Exception as err:  # noqa: BLE001
            raise EcgtuneError(
                f"{self.name} ecg_id {record.ecg_id}: wfdb cannot read record {base} (.hea/.dat) ({err})"
            ) from err
        signal_files.check_signal_files(rec, base.parent, f"{self.name} ecg_id {record.ecg_id}")
        names = list(rec.sig_name or [])
        if lead not in names:
            raise EcgtuneError(
                f"{self.name} ecg_id {record.ecg_id} ({base}.hea) has no lead {lead!r}; its leads: {', '.join(names)}"
            )
        if rec.fs != RECORD_RATE:
            raise EcgtuneError(
                f"{self.name} ecg_id {record.ecg_id}: {base}.hea says {rec.fs} Hz; expected the "
                f"{RECORD_RATE} Hz records (filename_lr, records100/)"
            )
        signal = np.asarray(rec.p_signal[:, names.index(lead)], dtype=np.float64)
        if len(signal) != rec.sig_len or not np.all(np.isfinite(signal)):
            raise EcgtuneError(
                f"{self.name} ecg_id {record.ecg_id}: {base}.dat is damaged: expected {rec.sig_len} finite "
                f"samples of lead {lead} (per {base}.hea), got {len(signal)}, "
                f"{int(np.sum(~np.isfinite(signal)))} of them invalid"
            )
        return signal

    # ---------------------------------------------------------------- the CSV files

    def _read_table(self) -> list[PtbXlRecord]:
        path = self.folder / TABLE_FILE
        return [_parse_table_row(row, path) for row in _read_csv(path, TABLE_COLUMNS)]

    def _read_statements(self) -> dict[str, str]:
        """{SCP code: its diagnostic_class}, "" for the non-diagnostic statements (SR, ...)."""
        path = self.folder / STATEMENTS_FILE
        rows = _read_csv(path, (STATEMENT_CLASS_COLUMN,))
        # The first column holds the codes; pandas wrote it as the unnamed index column.
        code_column = next(iter(rows[0])) if rows else ""
        return {row[code_column].strip(): (row[STATEMENT_CLASS_COLUMN] or "").strip() for row in rows}

    def _select(self, records: list[PtbXlRecord], wanted: list[int] | None) -> list[PtbXlRecord]:
        """The recordings of `wanted` (None: all), in ecg_id order, less the duplicates."""
        by_id: dict[int, PtbXlRecord] = {}
        for record in records:
            if record.ecg_id in by_id:
                raise EcgtuneError(f"{self.folder / TABLE_FILE}: ecg_id {record.ecg_id} appears in two rows")
            by_id[record.ecg_id] = record
        if wanted is not None:
            unknown = [i for i in wanted if i not in by_id]
            if unknown:
                shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
                raise EcgtuneError(
                    f"{self.name}: {len(unknown)} ecg_id(s) not in {self.folder / TABLE_FILE}: {shown}"
                )
        chosen = sorted(by_id) if wanted is None else wanted
        return [by_id[i] for i in chosen if i not in DUPLICATE_ECG_IDS]

    # ---------------------------------------------------------------- load

    def load(self, split: str, *, protocol: str = "folds", seed: int = 42, **prepare_params: Any) -> Examples:
        """The examples of one split, prepared or read from the cache.

        Args:
            split: "train", "val" or "test".
            protocol: A split protocol of `ecgtune.data.list_splits()`; "folds" follows strat_fold.
            seed: Seed of the random split protocols.
            **prepare_params: Passed to `prepare()` (task, ecg_ids, lead, ...).
        """
        if split not in SPLIT_NAMES:
            raise EcgtuneError(f"{self.name}: unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        examples = self.prepare(**prepare_params)
        return examples.subset(assign_split(protocol, examples, seed=seed) == split)


_LOCAL_COPY_HINT = (
    "To use a local copy, set ECGTUNE_DATA_DIR (or pass --data-dir) to the folder that contains "
    "ptbxl/; otherwise check the network connection and that the folder is writable."
)


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line, after checking the header names `required`."""
    required = tuple(required)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise EcgtuneError(
                    f"{path}: column {missing[0]!r} is missing; expected a header with the columns "
                    f"{', '.join(required)} (got {', '.join(header) or 'an empty file'})"
                )
            return list(reader)
    except FileNotFoundError:
        raise EcgtuneError(f"{path} does not exist; expected PTB-XL's {path.name} there") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EcgtuneError(f"cannot read {path} as a UTF-8 CSV file ({err})") from err


def _parse_table_row(row: dict[str, str], path: Path) -> PtbXlRecord:
    """One table row as a PtbXlRecord; each malformed cell is an error naming the file and the ecg_id."""
    ecg_id = _integral(row["ecg_id"])
    if ecg_id is None or ecg_id < 1:
        raise EcgtuneError(f"{path}: ecg_id {row['ecg_id']!r} is not a positive integer")
    where = f"{path}, ecg_id {ecg_id}"
    patient = _integral(row["patient_id"])
    if patient is None:
        raise EcgtuneError(f"{where}: patient_id {row['patient_id']!r} is not a whole number such as 15709.0")
    fold = _integral(row["strat_fold"])
    if fold is None or not 1 <= fold <= 10:
        raise EcgtuneError(f"{where}: strat_fold {row['strat_fold']!r} is not an integer from 1 to 10")
    codes = _parse_scp_codes(row["scp_codes"], where)
    hr = row.get("filename_hr")
    return PtbXlRecord(ecg_id, str(patient), tuple(codes), fold, _record_path(row["filename_lr"], where),
                       likelihoods=tuple(codes.values()), path_hr=_record_path(hr, where) if hr else None)


def _parse_scp_codes(text: str | None, where: str) -> dict[str, float]:
    """{code: likelihood} of a scp_codes cell, a Python dict literal such as "{'NORM': 100.0, 'SR': 0.0}"."""
    try:
        codes = ast.literal_eval(text or "")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        codes = None
    if (not isinstance(codes, dict) or not all(isinstance(c, str) for c in codes)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in codes.values())):
        raise EcgtuneError(
            f"{where}: scp_codes {text!r} is not a dict literal of SCP codes and likelihoods such as "
            "\"{'NORM': 100.0, 'SR': 0.0}\""
        )
    return {c.strip(): float(v) for c, v in codes.items()}


def _record_path(text: str | None, where: str) -> str:
    """filename_lr, refused unless it stays inside the ptbxl folder (it also names the file to download)."""
    path = PurePosixPath((text or "").strip())
    if not path.parts or path.is_absolute() or ".." in path.parts or "\\" in str(path):
        raise EcgtuneError(
            f"{where}: filename_lr {text!r} is not a relative record path such as records100/00000/00001_lr"
        )
    return str(path)


def _integral(text: str | None) -> int | None:
    """The integer a cell holds ("42", "15709.0"), or None if it holds anything else."""
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return int(value) if np.isfinite(value) and value == int(value) else None


def _normalise_ecg_ids(ecg_ids: Iterable[int | str] | int | str) -> list[int]:
    """ecg_ids as sorted unique ints; a single id is accepted too."""
    if isinstance(ecg_ids, (int, str, np.integer)):
        ecg_ids = [ecg_ids]
    ids = set()
    for value in ecg_ids:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise EcgtuneError(f"ptbxl: ecg_ids must be positive integers such as 42, got {value!r}")
        ids.add(int(value))
    if not ids:
        raise EcgtuneError("ptbxl: ecg_ids is empty; pass ecg_ids or None for every recording of the table")
    return sorted(ids)


def _positive_int(value: Any, key: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise EcgtuneError(f"ptbxl: {key} must be {expected}, got {value!r}")
    return int(value)


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
        raise EcgtuneError(f"ptbxl: {key} must be a number > 0, got {value!r}")
    return float(value)


def _threshold(value: Any) -> float:
    # On a window scaled to [0, 1], a threshold of 1 or more would find no peak at all.
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < 1:
        raise EcgtuneError(f"ptbxl: threshold must be a number with 0 <= threshold < 1, got {value!r}")
    return float(value)


def _bandpass(value: Any) -> list[float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise EcgtuneError(f"ptbxl: bandpass must be None or (low_hz, high_hz), got {value!r}") from None
    nyquist = RECORD_RATE / 2  # the filter runs on the 100 Hz records, before resampling
    if not 0 < low < high < nyquist:
        raise EcgtuneError(f"ptbxl: bandpass must satisfy 0 < low < high < {nyquist:g} Hz, got ({low}, {high})")
    return [low, high]
