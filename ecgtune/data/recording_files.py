"""Recordings from files, for `ecgtune predict`: WFDB records (a record path, its .hea, or a folder of them),
or ``.npy`` / ``.csv`` signals with their rate and lead names given.

- WFDB: every lead in physical units, the header's rate and lead names; with ``annotator`` the R-peaks
  are the beat annotations of that file (else a beat champion detects them).
- ``.npy``: an array (leads, samples), or (samples,) for one lead; ``fs`` and, for several leads, ``leads``.
- ``.csv``: one column per lead, a header row of lead names, one row per sample; ``fs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ecgtune.data.beat_task import BEAT_SYMBOLS
from ecgtune.data.recordings import Recording
from ecgtune.data.wfdb_folder import find_records, read_annotations, read_header, read_leads
from ecgtune.errors import EcgtuneError

SIGNAL_SUFFIXES = (".npy", ".csv")


def recording_paths(items: list[str]) -> list[Path]:
    """Each item as recordings: a folder's WFDB records (RECORDS, else every .hea below it), a WFDB record
    (``folder/100`` or ``folder/100.hea``), or a .npy/.csv file; in the order given.

    Raises:
        EcgtuneError: an item that is none of these, naming it.
    """
    out: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(path / name for name in find_records(path))
        elif path.suffix in SIGNAL_SUFFIXES and path.is_file():
            out.append(path)
        elif path.with_suffix(".hea").is_file() if path.suffix == ".hea" else Path(f"{path}.hea").is_file():
            out.append(path.with_suffix("") if path.suffix == ".hea" else path)
        else:
            raise EcgtuneError(f"{item}: no such WFDB record, folder of records, or .npy/.csv signal")
    return out


def read_recording(path: Path, *, fs: float | None = None, leads: list[str] | None = None,
                   annotator: str | None = None) -> Recording:
    """One recording from ``path`` (see the module docstring).

    Raises:
        EcgtuneError: an unreadable file, or a signal file without ``fs`` (and ``leads`` for several leads).
    """
    if path.suffix in SIGNAL_SUFFIXES:
        return _signal_file(path, fs, leads)
    header = read_header(path.parent, path.name)
    signal = read_leads(path.parent, header, list(header.leads)).T
    rpeaks = None
    if annotator:
        annotations = read_annotations(path.parent, path.name, annotator)
        if annotations is None:
            raise EcgtuneError(f"{path}: no annotation file {path}.{annotator} for its R-peaks")
        samples, symbols = annotations
        rpeaks = samples[np.isin(symbols, list(BEAT_SYMBOLS)) & (samples >= 0) & (samples < header.length)]
    return Recording(signal, header.fs, header.leads, rpeaks, name=str(path))


def _signal_file(path: Path, fs: float | None, leads: list[str] | None) -> Recording:
    if fs is None:
        raise EcgtuneError(f"{path}: a .npy or .csv signal needs its sampling rate (--fs)")
    try:
        if path.suffix == ".npy":
            signal = np.load(path, allow_pickle=False)
            names = tuple(leads or ())
        else:
            import pandas as pd

            table = pd.read_csv(path)
            signal, names = table.to_numpy(dtype=np.float64).T, tuple(leads or table.columns)
    except (OSError, ValueError) as err:
        raise EcgtuneError(f"{path}: not a readable {path.suffix} signal ({err})") from None
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim == 2 and signal.shape[0] > 1 and not names:
        raise EcgtuneError(f"{path}: {signal.shape[0]} leads need their names (--leads I,II,...)")
    return Recording(signal, float(fs), names, name=str(path))


def recordings(items: list[str], **kwargs) -> Iterator[tuple[str, Recording | EcgtuneError]]:
    """(name, the recording or why it cannot be read) of every recording of ``items``: one unreadable file
    does not stop the others."""
    for path in recording_paths(items):
        try:
            yield str(path), read_recording(path, **kwargs)
        except EcgtuneError as err:
            yield str(path), err
