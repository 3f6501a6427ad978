"""Prepared data are never served stale: the cache follows the raw files it was built from (another data
folder, a record replaced since), and a header that disagrees with its signal file is refused."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from ecgtune.data import get_dataset
from ecgtune.data.signal_files import expected_bytes
from ecgtune.errors import EcgtuneError

SECONDS = 10 + 200 / 360  # the standard fake record's length


def _claim_samples(header_file, samples: int) -> None:
    """Rewrite the record line of a WFDB header to claim ``samples`` samples."""
    lines = header_file.read_text().splitlines()
    fields = lines[0].split()
    fields[3] = str(samples)
    header_file.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")


def test_a_header_claiming_fewer_samples_than_its_signal_file_is_refused(fake_root):
    """The issue's case: a copy whose 100.hea claims fewer samples used to give a shortened record."""
    _claim_samples(fake_root / "mitdb" / "100.hea", 1000)
    with pytest.raises(EcgtuneError, match=r"mitdb record 100: .*100.hea and .*100.dat disagree: the header says "
                                           r"1000 samples of 2 signal\(s\) in format 212 \(3,000 bytes\), the file has"):
        get_dataset("mitdb", root=fake_root).prepare(mode="beats", records=["100"])


def test_the_cache_follows_the_raw_files_not_only_the_parameters(tmp_path, fake_root, make_record, standard_annotations):
    """Same parameters, same home: another data folder, or a record edited in place, is prepared again."""
    fewer = [a for a in standard_annotations if a[0] not in (400, 600)]  # two beats less
    other = tmp_path / "other"
    shutil.copytree(fake_root, other)
    first = get_dataset("mitdb", root=fake_root).prepare(mode="beats", records=["100"])
    make_record(other / "mitdb", "100", fewer, seconds=SECONDS)  # the other copy's record 100 has two beats less
    second = get_dataset("mitdb", root=other).prepare(mode="beats", records=["100"])
    assert len(second) == len(first) - 2
    again = get_dataset("mitdb", root=fake_root).prepare(mode="beats", records=["100"])
    np.testing.assert_array_equal(again.positions, first.positions)  # back to the first folder: its beats
    # Edited in place (its modification time moves on): prepared again from the new file.
    make_record(fake_root / "mitdb", "100", fewer, seconds=SECONDS)
    stat = os.stat(fake_root / "mitdb" / "100.atr")
    os.utime(fake_root / "mitdb" / "100.atr", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(get_dataset("mitdb", root=fake_root).prepare(mode="beats", records=["100"])) == len(first) - 2


def test_expected_sizes_of_the_wfdb_formats():
    assert expected_bytes(["212", "212"], 650_000) == 1_950_000  # MIT-BIH's 100.dat
    assert expected_bytes(["16"] * 12, 1000) == 24_000  # a PTB-XL record at 100 Hz
    assert expected_bytes(["212"], 3) == 5  # an odd count of 12-bit samples ends on a whole byte
    assert expected_bytes(["999"], 10) is None


def test_the_sources_recorded_follow_the_bytes_read_not_the_folder(tmp_path, fake_root):
    """What a search's data key covers: the same fingerprint from a copy of the folder (and from the cache),
    another once a byte of a read file changed, even with its size and modification time kept."""
    from ecgtune.data import cache

    def fingerprints(root):
        with cache.recording_sources() as read:
            get_dataset("mitdb", root=root).prepare(mode="beats", records=["100"])
        return read

    first = fingerprints(fake_root)
    assert len(first) == 1 and fingerprints(fake_root) == first  # built, then served from the cache
    other = tmp_path / "other"
    shutil.copytree(fake_root, other)
    assert fingerprints(other) == first
    dat = other / "mitdb" / "100.dat"
    stat = os.stat(dat)
    data = bytearray(dat.read_bytes())
    data[100] ^= 1
    dat.write_bytes(bytes(data))
    os.utime(dat, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprints(other) != first
