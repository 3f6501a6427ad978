"""A folder of WFDB records as a user brings it: which records it holds, their headers, leads by name,
signals and annotations, each read with errors that name the record and the file.

Records are found the way PhysioNet lays databases out: the folder's RECORDS file (one record per line; a
line ending in "/" names a sub-folder with a RECORDS file of its own, as the CinC 2020-2021 collection
does), else every ``.hea`` file below the folder, nested folders too. A record's name is its path relative
to the folder without the extension, with "/" (``g1/A0001``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ecgtune.data import signal_files
from ecgtune.errors import EcgtuneError

RECORDS_FILE = "RECORDS"
_DX_LINE = re.compile(r"^\s*Dx\s*:\s*(.*)$", re.IGNORECASE)  # the challenges' "# Dx: 164889003,59118001"


@dataclass(frozen=True)
class Header:
    """What a record's header says: rate, samples per lead, lead names, and its comment lines."""

    record: str
    fs: float
    length: int
    leads: tuple[str, ...]
    comments: tuple[str, ...]
    raw: object  # the wfdb header itself, for the signal-file check

    def dx_codes(self) -> list[str]:
        """The diagnosis codes of its ``# Dx:`` line (SNOMED-CT in the PhysioNet/CinC 2020-2021 data)."""
        for line in self.comments:
            match = _DX_LINE.match(line)
            if match:
                return [c.strip() for c in match.group(1).split(",") if c.strip()]
        return []


def find_records(folder: Path) -> list[str]:
    """The records of a database folder, sorted: from its RECORDS file(s), else every .hea file below it.

    Raises:
        EcgtuneError: the folder is missing, or holds no record.
    """
    if not folder.is_dir():
        raise EcgtuneError(f"wfdb: {folder} is not a folder; expected a folder of WFDB records (.hea files), "
                           "given as dataset.path (absolute, or relative to the data folder)")
    names = _listed(folder, PurePosixPath()) if (folder / RECORDS_FILE).is_file() else [
        p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.hea")]
    names = sorted(set(names))
    if not names:
        raise EcgtuneError(f"wfdb: {folder} holds no WFDB record (no RECORDS file and no .hea file below it)")
    for name in names:
        if not (folder / f"{name}.hea").is_file():
            raise EcgtuneError(f"wfdb: {folder / RECORDS_FILE} lists record {name!r}, but {folder / name}.hea does not exist")
    return names


def _listed(folder: Path, prefix: PurePosixPath) -> list[str]:
    out = []
    for line in (folder / prefix / RECORDS_FILE).read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = PurePosixPath(line)
        if path.is_absolute() or ".." in path.parts:
            raise EcgtuneError(f"wfdb: {folder / prefix / RECORDS_FILE} lists {line!r}; expected record names inside the folder")
        if line.endswith("/"):  # a sub-folder of its own records
            sub = prefix / path
            out.extend(_listed(folder, sub) if (folder / sub / RECORDS_FILE).is_file() else
                       [p.relative_to(folder).with_suffix("").as_posix() for p in (folder / sub).rglob("*.hea")])
        else:
            out.append(str(prefix / path))
    return out


def read_header(folder: Path, record: str) -> Header:
    """The header of ``record``, checked against its signal file's size.

    Raises:
        EcgtuneError: naming the record and its .hea file.
    """
    import wfdb

    base = folder / record
    try:
        header = wfdb.rdheader(str(base))
    except Exception as err:  # noqa: BLE001 - wfdb raises assorted types on damaged files
        raise EcgtuneError(f"wfdb record {record}: wfdb cannot read header {base}.hea ({err})") from err
    if getattr(header, "n_seg", None) is not None and not hasattr(header, "sig_name"):
        raise EcgtuneError(f"wfdb record {record}: {base}.hea is a multi-segment record, which ecgtune does not read")
    if not header.fs or not header.sig_len:
        raise EcgtuneError(f"wfdb record {record}: {base}.hea gives no sampling rate or no length")
    signal_files.check_signal_files(header, base.parent, f"wfdb record {record}")
    return Header(record, float(header.fs), int(header.sig_len), tuple(header.sig_name or ()),
                  tuple(header.comments or ()), header)


def choose_lead(header: Header, lead: str, fallback: list[str]) -> str | None:
    """The lead read from this record: ``lead``, else the first of ``fallback`` it has (names compared without
    case: ``aVR`` and ``AVR`` are one lead); None where it has none of them."""
    by_name = {name.upper(): name for name in header.leads}
    return next((by_name[w.upper()] for w in [lead, *fallback] if w.upper() in by_name), None)


def choose_leads(headers: list[Header], leads: list[str], fallback: list[str] | None = None) -> dict[str, list[str]]:
    """The leads read from each record, for every record at once.

    Raises:
        EcgtuneError: records lacking a lead, naming them and the leads they have: a model trained on one
            lead is never silently given another.
    """
    chosen, lacking = {}, []
    for header in headers:
        read = [choose_lead(header, lead, fallback or []) for lead in leads]
        if None in read:
            lacking.append((header, leads[read.index(None)]))
        chosen[header.record] = read
    if lacking:
        header, lead = lacking[0]
        tried = f"lead {lead!r}" + (f" nor any of lead_fallback {fallback}" if fallback else "")
        others = f" (and {len(lacking) - 1} more of the {len(headers)} records)" if len(lacking) > 1 else ""
        raise EcgtuneError(f"wfdb record {header.record} has no {tried}; its leads: {', '.join(header.leads) or 'none'}"
                           f"{others}; name one of them (lead: / leads:)"
                           + ("" if fallback is None or fallback else " or list alternatives with lead_fallback: [...]"))
    return chosen


def read_leads(folder: Path, header: Header, leads: list[str]) -> np.ndarray:
    """(samples, leads) in physical units, the leads in the order asked (named as the header names them).

    Raises:
        EcgtuneError: an unreadable signal file or invalid samples, naming the record and the file.
    """
    import wfdb

    base = folder / header.record
    channels = [header.leads.index(lead) for lead in leads]
    try:
        rec = wfdb.rdrecord(str(base), channels=channels, physical=True)
        signal = np.asarray(rec.p_signal, dtype=np.float64)
    except Exception as err:  # noqa: BLE001
        raise EcgtuneError(f"wfdb record {header.record}: wfdb cannot read its signal file(s) next to {base}.hea ({err})") from err
    if signal.shape[0] != header.length or not np.all(np.isfinite(signal)):
        raise EcgtuneError(
            f"wfdb record {header.record}: its signal next to {base}.hea is damaged: expected {header.length} finite "
            f"samples per lead, got {signal.shape[0]}, {int(np.sum(~np.isfinite(signal)))} of them invalid"
        )
    return signal


def read_annotations(folder: Path, record: str, annotator: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(sample of each annotation, its symbol), or None where the record has no ``annotator`` file.

    Raises:
        EcgtuneError: an annotation file wfdb cannot read, naming it.
    """
    import wfdb

    base = folder / record
    if not Path(f"{base}.{annotator}").is_file():
        return None
    try:
        ann = wfdb.rdann(str(base), annotator)
    except Exception as err:  # noqa: BLE001
        raise EcgtuneError(f"wfdb record {record}: wfdb cannot read annotations {base}.{annotator} ({err})") from err
    return np.asarray(ann.sample, dtype=np.int64), np.asarray(ann.symbol, dtype=object)
