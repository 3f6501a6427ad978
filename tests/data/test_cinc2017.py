"""The PhysioNet/CinC 2017 dataset on generated .mat recordings: ECG-DualNet's inputs, the labels, clear
errors for damaged files, the split protocols, and a verified download from a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from ecgtune.data import assign_split, get_dataset, split_has_test
from ecgtune.data.cinc2017 import LABELS
from ecgtune.errors import EcgtuneError
from tests.data.conftest import serving

FS = 300


def recording(seconds: float, seed: int) -> np.ndarray:
    """A synthetic lead in 1/1000 mV (int16), beats every 0.8 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    lead = 100 * np.sin(2 * np.pi * 0.5 * t) + 5 * rng.standard_normal(n)
    for beat in np.arange(0.3, seconds, 0.8):
        lead += 900 * np.exp(-0.5 * ((t - beat) * FS / 5) ** 2)
    return lead.astype(np.int16)[None, :]


def write_set(folder: Path, labels: dict[str, str], seconds=None) -> Path:
    """``folder``/AXXXXX.mat and REFERENCE.csv, as the local copy holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, record in enumerate(labels):
        savemat(folder / f"{record}.mat", {"val": recording((seconds or {}).get(record, 30 + 5 * (i % 7)), i)},
                format="4")
    (folder / "REFERENCE.csv").write_text("".join(f"{r},{label}\n" for r, label in labels.items()))
    return folder


LABELS_20 = {f"A{i:05d}": "NNNNNNNNOOOOOAAA~~NO"[i - 1] for i in range(1, 21)}


@pytest.fixture
def cinc_root(tmp_path) -> Path:
    write_set(tmp_path / "data" / "cinc2017", LABELS_20, seconds={"A00001": 61, "A00002": 9.5})
    return tmp_path / "data"


def test_recordings_become_dualnets_windows_and_spectrogram(cinc_root):
    examples = get_dataset("cinc2017", root=cinc_root).prepare()
    # The seed's shapes: 80 windows of 256 samples (every 224) of the first 18,000, and 563 x 33 frames.
    assert examples.input_shapes == {"windows": (80, 256), "spectrogram": (1, 563, 33)}
    assert list(examples.records) == sorted(LABELS_20) and examples.label_names == LABELS
    assert [examples.label_names[k] for k in examples.y[:3]] == ["N", "N", "N"]
    assert examples.label_names[examples.y[list(examples.records).index("A00017")]] == "noise"  # "~"
    assert examples.layout == "dualnet" and examples.scores == ("cinc_f1",)
    windows = examples.inputs["windows"]
    # Standardised over the recording: A00003 (40 s, 12,000 samples) has mean 0 and std 1 before its
    # zero padding, and the windows overlap by 32 samples.
    first = examples.records.tolist().index("A00003")
    signal = np.concatenate([windows[first, :-1, :224].ravel(), windows[first, -1]])
    assert abs(signal[:12_000].mean()) < 1e-3 and abs(signal[:12_000].std(ddof=1) - 1) < 1e-3
    np.testing.assert_array_equal(windows[first, 0, 224:], windows[first, 1, :32])
    assert np.all(signal[12_000:] == 0)  # padding
    # A 61 s recording is cut at 60 s and fills every frame; a 9.5 s one fills 1 + 2,850 // 32 frames.
    spec = examples.inputs["spectrogram"]
    assert np.all(spec[0, 0, -1] != 0)
    short = examples.records.tolist().index("A00002")
    assert np.all(spec[short, 0, 89] != 0) and np.all(spec[short, 0, 90:] == 0)


def test_smoke_sizes_keep_every_class_and_parameters_are_checked(cinc_root):
    ds = get_dataset("cinc2017", root=cinc_root)
    few = ds.prepare(max_records=8, sequence_length=4500)
    assert len(few) == 8 and set(few.y.tolist()) == {0, 1, 2, 3}
    assert few.input_shapes == {"windows": (19, 256), "spectrogram": (1, 141, 33)}
    for bad, key in (({"mode": "beats"}, "unknown mode"), ({"window": 3}, "unknown preprocessing"),
                     ({"max_records": 0}, "max_records"), ({"records": ["A99999"]}, "A99999")):
        with pytest.raises(EcgtuneError, match=key):
            ds.prepare(**bad)


def test_a_damaged_recording_or_reference_is_named(cinc_root):
    folder = cinc_root / "cinc2017"
    (folder / "A00005.mat").write_bytes((folder / "A00005.mat").read_bytes()[:100])  # truncated
    with pytest.raises(EcgtuneError, match="A00005.mat"):
        get_dataset("cinc2017", root=cinc_root).prepare()
    (folder / "REFERENCE.csv").write_text("A00001,N\nA00002,X\n")
    with pytest.raises(EcgtuneError, match=r"REFERENCE.csv: line 2.*'N', 'O', 'A', '~'"):
        get_dataset("cinc2017", root=cinc_root).prepare()
    write_set(folder, LABELS_20)
    (folder / "A00005.mat").unlink()
    with pytest.raises(EcgtuneError, match=r"REFERENCE\.csv lists recordings that are not in .*cinc2017: A00005\.mat; "):
        # where the release cannot be fetched (a port where nothing listens stands for no network)
        get_dataset("cinc2017", root=cinc_root, base_url="http://127.0.0.1:9/").prepare(records=["A00005"])


@pytest.mark.parametrize("listed, expected", [
    ("A00001,N\n../cinc2017/A00002,N\n", r"line 2: record '\.\./cinc2017/A00002' is not a recording name"),
    ("A00001,N\n/elsewhere/A00003,O\n", r"line 2: record '/elsewhere/A00003' is not a recording name"),
    ("A00001,N\nA00002,N\nA00001,O\n", r"line 3: record 'A00001' is listed twice"),
])
def test_a_reference_naming_a_file_outside_the_folder_or_a_recording_twice_is_refused(cinc_root, listed, expected):
    """Before: a path was read from wherever it pointed, and one recording under two names could sit in
    training and validation at once."""
    (cinc_root / "cinc2017" / "REFERENCE.csv").write_text(listed)
    with pytest.raises(EcgtuneError, match=expected):
        get_dataset("cinc2017", root=cinc_root).prepare()


def test_the_seeds_split_has_no_test_part_and_the_stratified_one_holds_records_out(cinc_root):
    examples = get_dataset("cinc2017", root=cinc_root).prepare()
    seed = assign_split("random_records", examples)
    assert set(seed) == {"train", "val"} and (seed == "val").sum() == 4  # 18 % of 20 recordings
    assert not split_has_test("random_records") and split_has_test("stratified_records")
    held_out = assign_split("stratified_records", examples)
    # Per class, 20 % test then 20 % of the rest val (rounded): N 9 -> 2 / 1, O 6 -> 1 / 1, A 3 -> 1 / 0, ~ 2 -> 0 / 0.
    assert {k: int((held_out == k).sum()) for k in ("train", "val", "test")} == {"train": 14, "val": 2, "test": 4}
    for k, name in enumerate(LABELS):
        in_test = (held_out == "test") & (examples.y == k)
        assert in_test.sum() >= (1 if (examples.y == k).sum() >= 3 else 0), name
    np.testing.assert_array_equal(held_out, assign_split("stratified_records", examples))  # deterministic
    # load(): one part of the protocol, as every dataset gives it (the Dataset protocol).
    dataset = get_dataset("cinc2017", root=cinc_root)
    assert sorted(dataset.load("test").records) == sorted(examples.records[held_out == "test"])
    assert len(dataset.load("val", protocol="random_records")) == 4


def _release(folder: Path, labels: dict[str, str]) -> Path:
    """A PhysioNet release folder: REFERENCE-v3.csv, training2017.zip and SHA256SUMS.txt."""
    recordings = write_set(folder / "build", labels)
    with zipfile.ZipFile(folder / "training2017.zip", "w") as zf:
        for record in labels:
            zf.write(recordings / f"{record}.mat", f"training2017/{record}.mat")
        zf.writestr("training2017/REFERENCE.csv", "outdated,labels\n")
        zf.writestr("../escape.mat", b"never written")
    (folder / "REFERENCE-v3.csv").write_text("".join(f"{r},{label}\n" for r, label in labels.items()))
    sums = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in ("training2017.zip", "REFERENCE-v3.csv")}
    (folder / "SHA256SUMS.txt").write_text("".join(f"{h} {name}\n" for name, h in sums.items()))
    return folder


def test_download_fetches_the_verified_archive_and_final_labels(tmp_path):
    labels = {"A00001": "N", "A00002": "A", "A00003": "~"}
    server = _release(tmp_path / "server", labels)
    with serving(server) as (url, requested):
        ds = get_dataset("cinc2017", root=tmp_path / "data", base_url=url)
        examples = ds.prepare()
        assert sorted(requested) == ["REFERENCE-v3.csv", "SHA256SUMS.txt", "training2017.zip"]
        ds.prepare()
        assert len(requested) == 3  # nothing fetched again
    folder = tmp_path / "data" / "cinc2017"
    assert sorted(p.name for p in folder.iterdir()) == ["A00001.mat", "A00002.mat", "A00003.mat", "RECORDS",
                                                       "REFERENCE-v3.csv", "REFERENCE.csv"]
    assert (folder / "REFERENCE.csv").read_text() == (server / "REFERENCE-v3.csv").read_text()  # the final labels
    assert not (tmp_path / "data" / "escape.mat").exists()
    assert [LABELS[k] for k in examples.y] == ["N", "A", "noise"]


def test_a_download_that_does_not_match_its_checksum_is_refused(tmp_path):
    server = _release(tmp_path / "server", {"A00001": "N"})
    (server / "training2017.zip").write_bytes(b"tampered")
    with serving(server) as (url, _):
        with pytest.raises(EcgtuneError, match="training2017.zip"):
            get_dataset("cinc2017", root=tmp_path / "data", base_url=url).prepare()
    assert not (tmp_path / "data" / "cinc2017" / "training2017.zip").exists()
