"""Downloads from a real HTTP server on 127.0.0.1 serving generated WFDB files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecgtune import paths
from ecgtune.data import cache
from ecgtune.data.mitdb import MitBih
from ecgtune.errors import EcgtuneError
from tests.data.conftest import serving


@pytest.fixture
def served(tmp_path, make_record, standard_annotations):
    """(base_url, folder served, list of requested paths): records 100 and 202 are on the server."""
    folder = tmp_path / "server"
    for name in ("100", "202"):
        make_record(folder, name, standard_annotations, seconds=11)
    with serving(folder) as (url, requested):
        yield url, folder, requested


def _table(folder: Path) -> dict[str, str]:
    return {p.name: cache.sha256_file(p) for p in folder.iterdir()}


def test_missing_files_are_fetched_and_verified(served, tmp_path):
    base_url, server_dir, requested = served
    ds = MitBih(root=tmp_path / "data", base_url=base_url, checksums=_table(server_dir))

    ds.download(["100"])

    got = tmp_path / "data" / "mitdb"
    assert sorted(p.name for p in got.iterdir()) == ["100.atr", "100.dat", "100.hea"]  # no temp files left
    for p in got.iterdir():
        assert p.read_bytes() == (server_dir / p.name).read_bytes()
    assert sorted(requested) == ["100.atr", "100.dat", "100.hea"]
    # The lock lives in the lock folder, not beside the data.
    assert (paths.lock_dir() / "mitdb-download.lock").exists()


def test_present_files_are_not_fetched_again(served, tmp_path):
    base_url, server_dir, requested = served
    folder = tmp_path / "data" / "mitdb"
    folder.mkdir(parents=True)
    shutil.copy(server_dir / "100.hea", folder / "100.hea")
    ds = MitBih(root=tmp_path / "data", base_url=base_url, checksums=_table(server_dir))

    ds.download(["100"])
    assert sorted(requested) == ["100.atr", "100.dat"]
    ds.download(["100"])
    assert sorted(requested) == ["100.atr", "100.dat"]


def test_prepare_downloads_missing_records_first(served, tmp_path):
    base_url, server_dir, requested = served
    ds = MitBih(root=tmp_path / "data", base_url=base_url, checksums=_table(server_dir))

    ex = ds.prepare(records=["100", "202"])

    assert set(ex.records.tolist()) == {"100", "202"}
    assert len(requested) == 6


def test_checksum_mismatch_names_file_and_hashes_and_keeps_nothing(served, tmp_path):
    base_url, server_dir, _ = served
    table = _table(server_dir)
    real = table["100.dat"]
    table["100.dat"] = "0" * 64
    ds = MitBih(root=tmp_path / "data", base_url=base_url, checksums=table)

    with pytest.raises(EcgtuneError) as info:
        ds.download(["100"])

    message = str(info.value)
    assert "100.dat" in message and "0" * 64 in message and real in message
    assert not (tmp_path / "data" / "mitdb" / "100.dat").exists()
    assert not [p for p in (tmp_path / "data" / "mitdb").iterdir() if p.name.startswith(".")]


def test_http_404_gives_a_clear_error(served, tmp_path):
    base_url, server_dir, _ = served
    table = {**_table(server_dir), "201.hea": "1" * 64, "201.dat": "2" * 64, "201.atr": "3" * 64}
    ds = MitBih(root=tmp_path / "data", base_url=base_url, checksums=table)

    with pytest.raises(EcgtuneError) as info:
        ds.download(["201"])

    message = str(info.value)
    folder = str(tmp_path / "data" / "mitdb")
    for fragment in ("record 201", "201.", folder, base_url, "404", "ECGTUNE_DATA_DIR", "--data-dir"):
        assert fragment in message
    assert not [p for p in (tmp_path / "data" / "mitdb").iterdir()]


def test_unreachable_server_gives_a_clear_error(tmp_path):
    ds = MitBih(root=tmp_path / "data", base_url="http://127.0.0.1:9/", checksums={"100.hea": "1" * 64})

    with pytest.raises(EcgtuneError, match=r"record 100.*http://127\.0\.0\.1:9/100\.hea.*ECGTUNE_DATA_DIR"):
        ds.download(["100"])


def test_file_without_known_checksum_is_never_downloaded(served, tmp_path):
    base_url, _, requested = served
    ds = MitBih(root=tmp_path / "data", base_url=base_url, checksums={})

    with pytest.raises(EcgtuneError, match=r"100\.hea.*no SHA-256 is known"):
        ds.download(["100"])
    assert requested == []


def test_packaged_checksum_table_covers_every_record_file():
    table = MitBih(root="/nonexistent")._checksums

    expected = {f"{r}.{ext}" for r in MitBih.RECORDS for ext in ("hea", "dat", "atr")}
    assert set(table) == expected and len(table) == 144
    assert all(len(h) == 64 for h in table.values())


def test_parse_checksums_rejects_malformed_lines():
    assert cache.parse_checksums("a" * 64 + "  100.hea\n\n" + "B" * 64 + " *100.dat\n") == {
        "100.hea": "a" * 64,
        "100.dat": "b" * 64,
    }
    with pytest.raises(EcgtuneError, match=r"mine\.sha256, line 1"):
        cache.parse_checksums("not-a-hash  100.hea\n", source="mine.sha256")
