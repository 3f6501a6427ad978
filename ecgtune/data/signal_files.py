"""A WFDB header checked against the signal file it describes.

wfdb reads as many samples as the header says, whatever the file holds: a header that claims fewer
samples than its .dat file gives a silently shortened record, one that claims more a read error deep
inside wfdb. Comparing the file's size with what the header implies catches both, naming the files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ecgtune.errors import EcgtuneError

# Bits a sample of each WFDB storage format takes (the formats PhysioNet's ECG databases use).
FORMAT_BITS = {"8": 8, "16": 16, "61": 16, "80": 8, "160": 16, "212": 12, "24": 24, "32": 32, "310": 10, "311": 10}


def expected_bytes(formats: list[str], samples: int, byte_offset: int = 0) -> int | None:
    """The size of one signal file holding ``samples`` samples of each of its signals (interleaved, in the
    formats ``formats``); None for a format not listed here (then nothing is checked)."""
    bits = [FORMAT_BITS.get(str(f)) for f in formats]
    if None in bits:
        return None
    return byte_offset + math.ceil(samples * sum(bits) / 8)


def check_signal_files(header, folder: Path, what: str) -> None:
    """Refuse a record whose header and signal file(s) disagree on the number of samples.

    Args:
        header: A ``wfdb.Record`` (or header) with file_name, fmt, sig_len and byte_offset per signal.
        folder: Where the header and its signal files are.
        what: How errors name the record ("mitdb record 100").

    Raises:
        EcgtuneError: a signal file whose size is not what its header implies.
    """
    by_file: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name or []):
        by_file.setdefault(name, []).append(i)
    for name, signals in by_file.items():
        path = Path(folder) / name
        if path.suffix != ".dat":
            continue  # .mat (PhysioNet 2017) and others carry their own lengths
        offsets = header.byte_offset or [None] * len(header.file_name)
        size = expected_bytes([header.fmt[i] for i in signals], int(header.sig_len), int(offsets[signals[0]] or 0))
        if size is None:
            continue
        try:
            actual = os.path.getsize(path)
        except OSError as err:
            raise EcgtuneError(f"{what}: cannot read signal file {path} ({err.strerror})") from None
        if actual != size:
            stem = path.with_suffix("")
            raise EcgtuneError(
                f"{what}: {stem}.hea and {path} disagree: the header says {header.sig_len} samples of "
                f"{len(signals)} signal(s) in format {header.fmt[signals[0]]} ({size:,} bytes), the file has "
                f"{actual:,} bytes; expected a header and signal file of the same record"
            )
