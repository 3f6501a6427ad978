"""The Kaggle "ECG Heartbeat Categorization Dataset": beats already cut and scaled, in CSV files."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgtune import paths
from ecgtune.data import cache, segment
from ecgtune.data._registry import register_dataset
from ecgtune.data.examples import SIGNAL, Examples
from ecgtune.data.splits import FOLD_TEST, SPLIT_NAMES, assign_split
from ecgtune.errors import EcgtuneError

DATASET_NAME = "kaggle_heartbeat"
KAGGLE_URL = "https://www.kaggle.com/datasets/shayanfazeli/heartbeat"

# Bump when prepare() output changes for the same files and parameters; it is part of the cache key.
FORMAT_VERSION = 1

SAMPLES_PER_BEAT = 187  # 125 Hz, zero-padded after the beat
COLUMNS_PER_ROW = SAMPLES_PER_BEAT + 1  # the samples, then the label
SAMPLING_RATE_HZ = 125
_ROW_FORMAT = f"{COLUMNS_PER_ROW} comma-separated numbers ({SAMPLES_PER_BEAT} samples, then the label)"

# Fixed seeds, so that the smoke-test subset and the folds never change between runs.
# Two different seeds: the cap and the folds shuffle the same classes, and sharing a random
# stream would tie which rows are kept to which fold they land in.
_CAP_SEED = 0
_FOLD_SEED = 1

# The folds each file's rows are dealt into (the "folds" protocol: 1-8 train, 9 val, 10 test).
# The Kaggle MIT-BIH files come split into train and test: the test file is fold 10 and the
# training file is dealt over 1-9, so one ninth of it becomes validation. The PTB files have
# no given split, so their rows are dealt over all ten folds.
_TRAIN_FOLDS = tuple(range(1, FOLD_TEST))
_ALL_FOLDS = tuple(range(1, FOLD_TEST + 1))
_FOLDS_OF_FILE = {
    "mitbih_train.csv": _TRAIN_FOLDS,
    "mitbih_test.csv": (FOLD_TEST,),
    "ptbdb_normal.csv": _ALL_FOLDS,
    "ptbdb_abnormal.csv": _ALL_FOLDS,
}


@dataclass(frozen=True)
class _Task:
    files: tuple[str, ...]
    label_names: tuple[str, ...]


TASKS = {
    # The labels 0-4 of the MIT-BIH files are the AAMI EC57 classes in this order.
    "aami": _Task(files=("mitbih_train.csv", "mitbih_test.csv"), label_names=("N", "S", "V", "F", "Q")),
    # ptbdb_normal.csv is labelled 0 throughout, ptbdb_abnormal.csv 1 (myocardial infarction).
    "mi": _Task(files=("ptbdb_normal.csv", "ptbdb_abnormal.csv"), label_names=("normal", "MI")),
}
_PARAM_DEFAULTS: dict[str, Any] = {"max_per_record": None}


@register_dataset(DATASET_NAME)
class KaggleHeartbeat:
    """Kachuee et al.'s preprocessed heartbeats, as uploaded to Kaggle by S. Fazeli.

    Four CSV files in `<root>/kaggle_heartbeat/`, each line one beat: 187 samples at 125 Hz,
    scaled to [0, 1] and zero-padded after the beat, then the class written as a float
    (e.g. `1.000000000000000000e+00`); no header row.

    - `mitbih_train.csv` (87,554 beats) and `mitbih_test.csv` (21,892): MIT-BIH Arrhythmia
      Database beats, labels 0-4 = AAMI N, S, V, F, Q (task "aami").
    - `ptbdb_normal.csv` (label 0) and `ptbdb_abnormal.csv` (label 1, myocardial
      infarction): PTB Diagnostic ECG Database beats (task "mi").

    The files carry no record or patient ids, only beats. `records` and `patients` of the
    examples are therefore the file a beat came from ("mitbih_train", ...), and `positions`
    its 0-based row in that file (line number - 1). Patient-wise splits are impossible:
    only the protocols that ignore patients make sense, "random_beats" (the seed's) and
    "folds" (the files' own split, below). A patient's beats sit on both sides of either.

    `folds` encode the files' own split for the "folds" protocol (1-8 train, 9 val, 10 test):
    rows of mitbih_test.csv are fold 10; rows of mitbih_train.csv are dealt over folds 1-9,
    stratified by class, with a fixed seed (so about a ninth of it is validation). The PTB
    files come with no split, so their rows are dealt over folds 1-10 the same way (about
    80 % train, 10 % val, 10 % test).

    Where to get them: https://www.kaggle.com/datasets/shayanfazeli/heartbeat (needs a Kaggle
    account, so `download()` cannot fetch them; it says what is missing and where to put it).

    Citation: Kachuee M, Fazeli S, Sarrafzadeh M. ECG Heartbeat Classification: A Deep
    Transferable Representation. IEEE International Conference on Healthcare Informatics
    (ICHI) 2018. Underlying data: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia
    Database. IEEE Eng Med Biol 20(3):45-50 (2001); Bousseljot R, Kreiseler D, Schnabel A.
    Nutzung der EKG-Signaldatenbank CARDIODAT der PTB über das Internet. Biomedizinische
    Technik 40(S1):317 (1995); Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet.
    Circulation 101(23):e215-e220 (2000).
    Licence: the Kaggle upload is under the licence stated on its Kaggle page (check it
    before redistributing the files); the recordings it derives from are PhysioNet's
    MIT-BIH Arrhythmia and PTB Diagnostic ECG databases, Open Data Commons Attribution
    License v1.0 (ODC-By 1.0).

    Args:
        root: Folder that contains `kaggle_heartbeat/`; None means `paths.data_root()`.
    """

    name = DATASET_NAME
    space_keys: tuple[str, ...] = ()  # a space names this dataset by name alone

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = paths.data_root(root)
        self.folder = self.root / DATASET_NAME

    def __repr__(self) -> str:
        return f"KaggleHeartbeat(root={str(self.root)!r})"

    def preparation(self, task: str = "aami", **params: Any) -> dict:
        """The Kaggle files hold beats already cut, not recordings: a champion of them takes beats only."""
        raise EcgtuneError(f"{self.name}: the CSV files hold beats already cut and resampled, not raw recordings; "
                           "a champion trained on them takes those 187-sample beats as tensors only")

    @staticmethod
    def protocols(preprocessing: dict) -> dict[str, dict]:
        """The split protocols that fit: the files' own split (folds) or the seed's random_beats; the files
        name no record or patient, so no patient-wise protocol can be honest on them."""
        del preprocessing
        return {"folds": {}, "random_beats": {}}

    # ---------------------------------------------------------------- download

    def download(self, task: str | None = None) -> None:
        """Check that the files of `task` (default: of every task) are in the folder.

        Nothing is fetched: Kaggle serves the files to logged-in accounts only.

        Raises:
            EcgtuneError: A file is missing; the message names it, the folder, the Kaggle
                page and how to point ecgtune at a local copy.
        """
        files = _task(task).files if task is not None else tuple(f for t in TASKS.values() for f in t.files)
        missing = [f for f in files if not (self.folder / f).is_file()]
        if missing:
            raise EcgtuneError(
                f"{self.name}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing from "
                f"{self.folder}. The Kaggle 'ECG Heartbeat Categorization Dataset' needs a Kaggle account, "
                f"so ecgtune cannot download it: get it from {KAGGLE_URL}, unzip the CSV files into a "
                f"folder named {DATASET_NAME}/, and set ECGTUNE_DATA_DIR (or pass --data-dir) to the "
                f"folder that contains {DATASET_NAME}/."
            )

    # ---------------------------------------------------------------- prepare

    def prepare(self, task: str = "aami", **params: Any) -> Examples:
        """Read and check the task's CSV files, once; later calls read the prepared-array cache.

        Args:
            task: "aami" (mitbih_train.csv + mitbih_test.csv; classes N, S, V, F, Q) or
                "mi" (ptbdb_normal.csv + ptbdb_abnormal.csv; classes normal, MI).
            **params: `max_per_record` (None; an int keeps at most that many rows per file,
                drawn with a fixed seed in rough class proportion, every class kept while
                the cap allows: a smoke-test cap, applied before the folds are dealt).

        The cache key holds the task, the parameters and each file's size and modification
        time, so a replaced file is read again rather than served stale.

        Returns:
            Examples with x of shape (N, 1, 187), in file order (the task's files in the
            order above), each file's rows in line order.

        Raises:
            EcgtuneError: Unknown task or parameter; a missing file; a file that is empty,
                has a row without 188 values, a value that is not a finite number, or a
                label outside the task's classes (the message names file, line and column).
        """
        resolved = self._resolve(task, params)
        arrays = cache.get_or_build(
            f"{self.name}-{resolved['task']}", self._cache_params(resolved), lambda: self._build(resolved).to_arrays(),
            sources=lambda: [self.folder / name for name in resolved["files"]],  # what a search's data key follows
        )
        return Examples.from_arrays(arrays)

    def prepared_key(self, task: str = "aami", **params: Any) -> str:
        """The identity of what `prepare()` returns for these arguments and the files as they
        are now (defaults filled): equal keys mean identical examples."""
        return cache.params_key(self._cache_params(self._resolve(task, params)))

    def _cache_params(self, resolved: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": self.name, "format_version": FORMAT_VERSION, **resolved}

    def _resolve(self, task: str, params: dict[str, Any]) -> dict[str, Any]:
        """Check the arguments, fill defaults, and add what identifies the input files."""
        spec = _task(task)
        unknown = sorted(set(params) - set(_PARAM_DEFAULTS))
        if unknown:
            accepted = ", ".join(["task", *sorted(_PARAM_DEFAULTS)])
            raise EcgtuneError(f"{self.name}: unknown prepare() parameter {unknown[0]!r}; accepted: {accepted}")
        p = {**_PARAM_DEFAULTS, **params}
        cap = p["max_per_record"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise EcgtuneError(f"{self.name}: max_per_record must be a positive integer or None, got {cap!r}")
        self.download(task)
        return {
            "task": task,
            "max_per_record": None if cap is None else int(cap),
            "files": {name: _file_identity(self.folder / name) for name in spec.files},
        }

    def _build(self, resolved: dict[str, Any]) -> Examples:
        spec = TASKS[resolved["task"]]
        parts = [self._prepare_file(name, spec.label_names, resolved["max_per_record"]) for name in spec.files]
        return Examples.concatenate(parts, label_names=spec.label_names, empty_inputs={SIGNAL: (1, SAMPLES_PER_BEAT)})

    def _prepare_file(self, file_name: str, label_names: tuple[str, ...], cap: int | None) -> Examples:
        path = self.folder / file_name
        table = read_beats_csv(path)
        labels = _checked_labels(table[:, -1], path, label_names)
        rows = np.arange(len(table))
        if cap is not None:
            rng = np.random.default_rng([_CAP_SEED, zlib.crc32(file_name.encode())])
            rows = segment.cap_per_class(labels, cap, rng)
        fold_rng = np.random.default_rng([_FOLD_SEED, zlib.crc32(file_name.encode())])
        folds = deal_stratified_folds(labels[rows], _FOLDS_OF_FILE[file_name], fold_rng)
        source = Path(file_name).stem
        return Examples(
            inputs={SIGNAL: table[rows, None, :SAMPLES_PER_BEAT]},
            y=labels[rows],
            records=np.full(len(rows), source),
            patients=np.full(len(rows), source),  # no patient ids in the files: the file stands in
            positions=rows,
            folds=folds,
            label_names=label_names,
        )

    # ---------------------------------------------------------------- load

    def load(self, split: str, *, protocol: str = "folds", seed: int = 42, **prepare_params: Any) -> Examples:
        """The examples of one split, prepared or read from the cache.

        Args:
            split: "train", "val" or "test".
            protocol: A split protocol of `ecgtune.data.list_splits()`; "folds" (the files'
                own split) or "random_beats" (the seed's) are the meaningful ones here.
            seed: Seed of the random split protocols.
            **prepare_params: Passed to `prepare()` (task, max_per_record).
        """
        if split not in SPLIT_NAMES:
            raise EcgtuneError(f"{self.name}: unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        examples = self.prepare(**prepare_params)
        return examples.subset(assign_split(protocol, examples, seed=seed) == split)


def _task(task: Any) -> _Task:
    try:
        return TASKS[task]
    except (KeyError, TypeError):  # TypeError: an unhashable value such as a list
        raise EcgtuneError(f"{DATASET_NAME}: unknown task {task!r}; expected one of {', '.join(TASKS)}") from None


def _file_identity(path: Path) -> dict[str, int]:
    """Size and modification time: a replaced or edited file changes the cache key."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def deal_stratified_folds(labels: np.ndarray, folds: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A fold for each row: each class's rows, shuffled, are dealt over `folds` like cards.

    Classes are dealt one after another without restarting at the first fold, so each
    class's count per fold differs by at most one, and so do the fold totals.

    Returns:
        Shape (len(labels),) int64, each value one of `folds`.
    """
    if len(labels) == 0:
        return np.zeros(0, np.int64)
    dealing_order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    out = np.empty(len(labels), np.int64)
    out[dealing_order] = np.asarray(folds, np.int64)[np.arange(len(labels)) % len(folds)]
    return out


# ---------------------------------------------------------------- reading the CSV files


def read_beats_csv(path: Path) -> np.ndarray:
    """Every row of one file, shape (rows, 188) float64, every value a finite number.

    pandas reads the file fast; if it fails, or what it read is not 188 finite numbers per
    row, a line-by-line reader finds the first bad line to report (pandas' own messages
    name neither the file nor, for a short row, the line).

    Raises:
        EcgtuneError: The file cannot be read or is empty, or a line holds the wrong number
            of values, a value that is not a number, or a non-finite one.
    """
    try:
        table = _read_with_pandas(path)
        if table is None or not _is_well_formed(table):
            table = _read_line_by_line(path)
    except OSError as err:
        raise EcgtuneError(f"{DATASET_NAME}: cannot read {path} ({err.strerror or err})") from err
    return table


def _read_with_pandas(path: Path) -> np.ndarray | None:
    """The file as a float64 table, or None where pandas is missing or gives up."""
    try:
        import pandas as pd  # imported here: importing ecgtune.data stays light
    except ImportError:
        return None
    try:
        # skip_blank_lines=False: a blank line becomes a row of NaN, which the checks catch,
        # instead of vanishing and shifting the line numbers of every row after it.
        frame = pd.read_csv(path, header=None, dtype=np.float64, skip_blank_lines=False, engine="c")
    except ValueError:  # too many values on a line, text, bad bytes, an empty file: all ValueErrors
        return None
    return frame.to_numpy(dtype=np.float64)


def _is_well_formed(table: np.ndarray) -> bool:
    # A short line comes back padded with NaN, hence the finiteness check covers it too.
    has_rows_of_188 = table.ndim == 2 and table.shape[0] > 0 and table.shape[1] == COLUMNS_PER_ROW
    return has_rows_of_188 and bool(np.isfinite(table).all())


def _read_line_by_line(path: Path) -> np.ndarray:
    """Parse each line; raise at the first bad one. Blank lines are allowed only at the end."""
    rows = []
    first_blank_line = None
    # errors="replace": stray bytes become U+FFFD and are reported as a value that is not a number.
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                first_blank_line = first_blank_line or number
                continue
            if first_blank_line is not None:
                raise _line_error(path, first_blank_line, f"the line is blank; expected {_ROW_FORMAT}")
            rows.append(_parse_row(text, path, number))
    if not rows:
        raise EcgtuneError(
            f"{DATASET_NAME}: {path} is empty; expected one beat per line, {_ROW_FORMAT}. "
            f"Download the file again from {KAGGLE_URL}"
        )
    return np.stack(rows)


def _parse_row(text: str, path: Path, number: int) -> np.ndarray:
    fields = text.split(",")
    if len(fields) != COLUMNS_PER_ROW:
        raise _line_error(path, number, f"expected {_ROW_FORMAT}, got {len(fields)} values")
    try:
        values = np.array(fields, dtype=np.float64)
    except ValueError:
        column = next(c for c, field in enumerate(fields, start=1) if not _is_number(field))
        raise _line_error(path, number, f"{_column_name(column)}: {fields[column - 1]!r} is not a number") from None
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        column = int(not_finite[0]) + 1
        raise _line_error(path, number, f"{_column_name(column)}: {fields[column - 1]!r} is not a finite number")
    return values


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _column_name(column: int) -> str:
    return f"column {column}" + (" (the label)" if column == COLUMNS_PER_ROW else "")


def _line_error(path: Path, number: int, problem: str) -> EcgtuneError:
    return EcgtuneError(f"{DATASET_NAME}: {path}, line {number}: {problem}")


def _checked_labels(labels: np.ndarray, path: Path, label_names: tuple[str, ...]) -> np.ndarray:
    """The label column as class indices; raises at the first label that is not one of the classes."""
    is_class = (labels == np.round(labels)) & (labels >= 0) & (labels < len(label_names))
    bad = np.flatnonzero(~is_class)
    if bad.size:
        row = int(bad[0])
        allowed = ", ".join(f"{i} ({name})" for i, name in enumerate(label_names))
        raise _line_error(
            path,
            row + 1,  # a well-formed file has no blank lines before its last row: row i is line i + 1
            f"{_column_name(COLUMNS_PER_ROW)}: label {float(labels[row]):g} is not one of this task's classes; "
            f"expected an integer among {allowed}",
        )
    return labels.astype(np.int64)
