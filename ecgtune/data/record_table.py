"""A table about the records of a database: their labels, patients and given split, from a CSV file.

Columns: ``record`` (required); ``labels`` (label names joined by ";") or one 0/1 column per label;
optional ``patient``; optional ``split`` (train, val or test: the `given` protocol). Records the table does
not name keep their own name as patient and have no label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ecgtune.errors import EcgtuneError

RECORD, LABELS, PATIENT, SPLIT = "record", "labels", "patient", "split"
SPLIT_VALUES = ("train", "val", "test")


@dataclass(frozen=True)
class RecordTable:
    """The table's rows, by record."""

    path: Path
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # record -> its label names
    label_names: tuple[str, ...] = ()  # every label the table names, in column or sorted order
    patients: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)


def read_table(path: Path, records: list[str]) -> RecordTable:
    """Read and check a record table against the database's records.

    Raises:
        EcgtuneError: an unreadable file, no ``record`` column, a record the database lacks or one named
            twice, a label cell that is not 0/1, a split other than train/val/test, or a patient under two
            splits: each naming the file and the line.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise EcgtuneError(f"wfdb: label table {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EcgtuneError(f"wfdb: cannot read {path} as a UTF-8 CSV file ({err})") from None
    if RECORD not in columns:
        raise EcgtuneError(f"{path}: no column 'record'; expected a header such as record,labels,patient,split "
                           f"(got {', '.join(columns) or 'an empty file'})")
    label_columns = [c for c in columns if c not in (RECORD, LABELS, PATIENT, SPLIT)]
    known = set(records)
    labels, patients, splits, names = {}, {}, {}, set()
    for line, row in enumerate(rows, start=2):
        record = row[RECORD]
        where = f"{path}, line {line}"
        if record not in known:
            raise EcgtuneError(f"{where}: record {record!r} is not a record of the database "
                               f"(e.g. {', '.join(records[:3])})")
        if record in labels:
            raise EcgtuneError(f"{where}: record {record!r} is named twice")
        if LABELS in columns:
            labels[record] = tuple(n.strip() for n in row[LABELS].split(";") if n.strip())
        else:
            bad = [c for c in label_columns if row[c] not in ("0", "1", "0.0", "1.0")]
            if bad:
                raise EcgtuneError(f"{where}: column {bad[0]!r} holds {row[bad[0]]!r}; expected 0 or 1")
            labels[record] = tuple(c for c in label_columns if float(row[c]) == 1)
        names.update(labels[record])
        if row.get(PATIENT):
            patients[record] = row[PATIENT]
        if SPLIT in columns:
            if row[SPLIT] not in SPLIT_VALUES:
                raise EcgtuneError(f"{where}: split {row[SPLIT]!r}; expected one of {', '.join(SPLIT_VALUES)}")
            splits[record] = row[SPLIT]
    _check_patient_splits(path, patients, splits)
    label_names = tuple(label_columns) if LABELS not in columns else tuple(sorted(names))
    return RecordTable(path, labels, label_names, patients, splits)


def _check_patient_splits(path: Path, patients: dict[str, str], splits: dict[str, str]) -> None:
    """A patient's records must share one split: else the given split tests on a patient it trained on."""
    seen: dict[str, tuple[str, str]] = {}
    for record, split in splits.items():
        patient = patients.get(record, record)
        if patient in seen and seen[patient][0] != split:
            other_split, other = seen[patient]
            raise EcgtuneError(f"{path}: patient {patient!r} is under two splits: record {other} in {other_split}, "
                               f"record {record} in {split}; a patient's records must share one split")
        seen.setdefault(patient, (split, record))
