"""PhysioNet/Computing in Cardiology Challenge 2017: AF classification from one short lead, prepared as
ECG-DualNet's two inputs (seed ChristophReich1996/ECG_Classification)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ecgtune import paths
from ecgtune.data import cache, progress
from ecgtune.data._registry import register_dataset
from ecgtune.data.examples import Examples
from ecgtune.data.physionet import PhysioNetRelease
from ecgtune.errors import EcgtuneError

# Bump when prepare() output changes for the same parameters; it is part of the cache key.
FORMAT_VERSION = 1

FS = 300  # Hz, every recording
GAIN = 1000.0  # digital units per mV
REFERENCE_FILE = "REFERENCE.csv"  # "record,label" rows, the final (v3) labels
RECORDS_FILE = "RECORDS"
REMOTE_REFERENCE = "REFERENCE-v3.csv"  # the final labels of the release
REMOTE_ARCHIVE = "training2017.zip"  # training2017/AXXXXX.{mat,hea}, RECORDS, and the first labels
SYMBOLS = ("N", "O", "A", "~")  # REFERENCE.csv's labels, in the seed's class order: normal, other rhythm, AF, too noisy
LABELS = ("N", "O", "A", "noise")  # the class names (metric names cannot hold "~")
MODES = ("dualnet",)

_DEFAULTS: dict[str, Any] = {
    "sequence_length": 18_000,  # samples kept: 60 s, the longest recordings' length
    "frames": None,  # spectrogram frames: None = 1 + sequence_length // 32 (563 for 18,000)
    "records": None,  # None = every record of REFERENCE.csv
    "max_records": None,  # at most this many, the class proportions kept roughly (smoke runs)
}
_SAMPLE_SEED = 2017

_LOCAL_COPY_HINT = (
    "To use a local copy, set ECGTUNE_DATA_DIR (or pass --data-dir) to the folder that contains cinc2017/ "
    "(AXXXXX.mat files and REFERENCE.csv); otherwise check the network connection and that the folder is writable."
)


@register_dataset("cinc2017")
class Cinc2017:
    """The PhysioNet/CinC Challenge 2017 training set: 8,528 single-lead ECGs (AliveCor) of 9-61 s at 300 Hz,
    each labelled normal sinus rhythm (N), atrial fibrillation (A), other rhythm (O) or too noisy (~).

    Files are `<root>/cinc2017/AXXXXX.mat` (MATLAB v4, one int16 variable `val` of shape (1, n), 1000 units
    per mV), `REFERENCE.csv` ("record,label" rows, the final v3 labels) and optionally `RECORDS`. There are
    no patient ids: each recording stands for its own patient in the splits.

    Citation: Clifford GD, Liu C, Moody B, Lehman LH, Silva I, Li Q, Johnson AEW, Mark RG. AF classification
    from a short single lead ECG recording: the PhysioNet/Computing in Cardiology Challenge 2017. Computing
    in Cardiology 44 (2017); and Goldberger AL et al., Circulation 101(23):e215-e220 (2000).
    Licence: Open Data Commons Attribution License v1.0 (ODC-By 1.0).

    Args:
        root: Folder that contains `cinc2017/`; None means `paths.data_root()`.
        base_url: Where missing files are downloaded from (PhysioNet's release folder; a local server in
            tests). Its `SHA256SUMS.txt` is the list every download is verified against.
    """

    name = "cinc2017"
    space_keys: tuple[str, ...] = ()  # a space names this dataset by name alone
    DEFAULT_BASE_URL = "https://physionet.org/files/challenge-2017/1.0.0/"

    def __init__(self, root: str | os.PathLike | None = None, *, base_url: str = DEFAULT_BASE_URL) -> None:
        self.root = paths.data_root(root)
        self.folder = self.root / "cinc2017"
        self.release = PhysioNetRelease("PhysioNet/CinC 2017", self.folder, base_url, _LOCAL_COPY_HINT)

    def __repr__(self) -> str:
        return f"Cinc2017(root={str(self.root)!r})"

    @staticmethod
    def protocols(preprocessing: dict) -> dict[str, dict]:
        """The split protocols that fit: recordings stratified by class, or ECG-DualNet's own random_records
        (no options: 82 % / 18 % and no test part)."""
        del preprocessing
        return {"stratified_records": {}, "random_records": {}}

    # ---------------------------------------------------------------- download

    def download(self) -> None:
        """Fetch the release's final labels and its training archive (each verified against the
        release's SHA256SUMS.txt), unpack the recordings, and write REFERENCE.csv and RECORDS; nothing
        when REFERENCE.csv and every recording it names are here."""
        reference = self.folder / REFERENCE_FILE
        if reference.is_file() and not self._missing_recordings():
            return
        with cache.file_lock(f"{self.name}-unpack"):
            if reference.is_file() and not self._missing_recordings():
                return  # another process unpacked it meanwhile
            missing = self._missing_recordings() if reference.is_file() else []
            try:
                self.release.download_missing([REMOTE_REFERENCE, REMOTE_ARCHIVE], lock=f"{self.name}-download")
            except EcgtuneError as exc:
                if not missing:
                    raise
                # A local copy with recordings gone: the recordings are what the user must hear about.
                named = ", ".join(f"{r}.mat" for r in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise EcgtuneError(f"{self.name}: {reference} lists recordings that are not in {self.folder}: {named}; "
                                   f"fetching the release to restore them failed too ({exc})") from None
            labels = read_reference(self.folder / REMOTE_REFERENCE)
            unpack_recordings(self.folder / REMOTE_ARCHIVE, self.folder, set(labels))
            (self.folder / RECORDS_FILE).write_text("".join(f"{r}\n" for r in labels))
            shutil.copyfile(self.folder / REMOTE_REFERENCE, reference)
            (self.folder / REMOTE_ARCHIVE).unlink()  # 100 MB, unpacked

    def _missing_recordings(self) -> list[str]:
        return [r for r in read_reference(self.folder / REFERENCE_FILE) if not (self.folder / f"{r}.mat").is_file()]

    # ---------------------------------------------------------------- prepare

    def prepare(self, mode: str = "dualnet", **params: Any) -> Examples:
        """The recordings as ECG-DualNet's inputs, once; later calls read the cache.

        Each recording's first ``sequence_length`` samples, standardised (zero mean, unit standard
        deviation) and zero-padded, become ``windows`` (80 x 256, every 224 samples) and ``spectrogram``
        (1 x 563 x 33: the log magnitude of a 64-point STFT, hop 32), as the seed's dataset makes them.
        Labels in the seed's order N, O, A, ~ (named N, O, A, noise: `LABELS`).

        Args:
            mode: "dualnet".
            sequence_length: Samples kept of each recording (default 18,000: 60 s).
            frames: Spectrogram frames (default 1 + sequence_length // 32).
            records: Record names, or None for all of REFERENCE.csv.
            max_records: At most this many recordings, drawn with a fixed seed, the class proportions kept
                roughly and every class at least once (smoke runs).

        Raises:
            EcgtuneError: Missing or unreadable files (naming the file), an unknown parameter or label.
        """
        resolved = self._resolve(mode, params)
        arrays = cache.get_or_build(
            f"{self.name}-{mode}", self._cache_params(resolved), lambda: self._build(resolved).to_arrays(),
            sources=lambda: cache.folder_files(self.folder),
        )
        return Examples.from_arrays(arrays)

    def prepared_key(self, mode: str = "dualnet", **params: Any) -> str:
        """The cache key of `prepare(mode, **params)`, without preparing anything."""
        return cache.params_key(self._cache_params(self._resolve(mode, params)))

    def _cache_params(self, resolved: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": self.name, "format": FORMAT_VERSION, **resolved}

    def recording(self, record: str):
        """The raw recording (one lead in mV at 300 Hz) of ``record``."""
        from ecgtune.data.recordings import Recording

        if record not in read_reference(self.folder / REFERENCE_FILE):
            raise EcgtuneError(f"{self.name}: record {record!r} is not in {self.folder / REFERENCE_FILE}")
        return Recording(read_recording(self.folder / f"{record}.mat")[None].astype(np.float64), FS, name=record)

    def load(self, split: str, *, protocol: str = "stratified_records", seed: int = 42, **params: Any) -> Examples:
        """The examples of one part ("train", "val" or "test") under ``protocol`` with its default options."""
        from ecgtune.data.splits import load_part

        return load_part(self, split, protocol, seed, params)

    def preparation(self, mode: str = "dualnet", **params: Any) -> dict:
        """How a raw recording becomes the inputs of these examples (`ecgtune.data.recordings`)."""
        resolved = self._resolve(mode, params)
        return {"kind": "dualnet", "params": {k: resolved[k] for k in ("sequence_length", "frames")}, "rate": FS}

    def _resolve(self, mode: str, params: dict[str, Any]) -> dict[str, Any]:
        if mode not in MODES:
            raise EcgtuneError(f"{self.name}: unknown mode {mode!r}; known modes: {', '.join(MODES)}")
        unknown = sorted(set(params) - set(_DEFAULTS))
        if unknown:
            raise EcgtuneError(f"{self.name}: unknown preprocessing parameter(s) {unknown}; known: {sorted(_DEFAULTS)}")
        p = {"mode": mode, **_DEFAULTS, **params}
        for key in ("sequence_length", "frames", "max_records"):
            value = p[key]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise EcgtuneError(f"{self.name}: {key} must be a positive integer or null, got {value!r}")
        if p["sequence_length"] < 256:
            raise EcgtuneError(f"{self.name}: sequence_length must hold at least one window of 256 samples")
        if p["frames"] is None:
            p["frames"] = 1 + p["sequence_length"] // 32
        self.download()
        labels = read_reference(self.folder / REFERENCE_FILE)
        if p["records"] is not None:
            wanted = [str(r) for r in p["records"]]
            missing = [r for r in wanted if r not in labels]
            if missing:
                raise EcgtuneError(f"{self.name}: records {missing[:5]} are not in {self.folder / REFERENCE_FILE}")
            p["records"] = sorted(set(wanted))
        return p

    def _build(self, p: dict[str, Any]) -> Examples:
        import torch

        from ecgtune.transforms import spectrogram as sp

        labels = read_reference(self.folder / REFERENCE_FILE)
        names = p["records"] or sorted(labels)
        y = np.array([SYMBOLS.index(labels[r]) for r in names], dtype=np.int64)
        if p["max_records"] is not None and p["max_records"] < len(names):
            from ecgtune.data import segment

            keep = segment.cap_per_class(y, p["max_records"], np.random.default_rng(_SAMPLE_SEED))
            names, y = [names[i] for i in keep], y[keep]
        n, full = len(names), p["sequence_length"]
        signal = np.zeros((n, full), np.float32)
        lengths = np.zeros(n, np.int64)
        for i, record in enumerate(progress.steps(names, what=f"{self.name}: reading")):
            lead = read_recording(self.folder / f"{record}.mat")[:full]
            signal[i, : len(lead)], lengths[i] = lead, len(lead)
        with torch.no_grad():
            x = sp.zscore(torch.from_numpy(signal), torch.from_numpy(lengths))
            inputs = sp.dualnet_inputs(x, torch.from_numpy(lengths), frames=p["frames"])
        return Examples(
            inputs={name: t.numpy() for name, t in inputs.items()},
            y=y, records=np.array(names), patients=np.array(names), positions=np.zeros(n, np.int64),
            label_names=LABELS, layout="dualnet", scores=("cinc_f1",),
        )


RECORD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")


def read_reference(path: Path) -> dict[str, str]:
    """{record: label} of a REFERENCE csv ("A00001,N" rows, no header)."""
    if not path.is_file():
        raise EcgtuneError(f"PhysioNet/CinC 2017: {path} does not exist. {_LOCAL_COPY_HINT}")
    out: dict[str, str] = {}
    with open(path, newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 2 or not row[0].strip() or row[1].strip() not in SYMBOLS:
                raise EcgtuneError(f"{path}: line {line_number}: expected 'record,label' with a label in "
                                   f"{list(SYMBOLS)}, got {','.join(row)!r}")
            record = row[0].strip()
            if not RECORD_NAME.fullmatch(record):
                # A path (../cinc2017/A00173, /elsewhere/A00001) would read a file outside the data folder, or
                # one recording under two names: in training and in validation at once.
                raise EcgtuneError(f"{path}: line {line_number}: record {record!r} is not a recording name such as "
                                   f"A00001 (letters, digits, _ and -; no folders: recordings are read from {path.parent})")
            if record in out:
                raise EcgtuneError(f"{path}: line {line_number}: record {record!r} is listed twice")
            out[record] = row[1].strip()
    if not out:
        raise EcgtuneError(f"{path}: no recordings listed")
    return out


def read_recording(path: Path) -> np.ndarray:
    """The lead of one .mat file in mV, shape (samples,)."""
    from scipy.io import loadmat

    if not path.is_file():
        raise EcgtuneError(f"PhysioNet/CinC 2017: recording {path} does not exist. {_LOCAL_COPY_HINT}")
    try:
        val = loadmat(path)["val"]
    except Exception as exc:  # scipy raises assorted types on damaged files
        raise EcgtuneError(f"{path}: not a readable MATLAB recording with a 'val' array ({type(exc).__name__}: {exc})") from None
    if val.ndim != 2 or val.shape[0] != 1 or val.shape[1] < 2 or not np.issubdtype(val.dtype, np.integer):
        raise EcgtuneError(f"{path}: expected 'val' as integers of shape (1, samples), got {val.dtype} {val.shape}")
    return val[0].astype(np.float32) / GAIN


def unpack_recordings(archive: Path, folder: Path, wanted: set[str]) -> None:
    """Extract the .mat files of ``wanted`` records from the release's archive into ``folder`` (flat);
    members outside the archive's own folder, or not plain recordings, are never written."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                path = PurePosixPath(member.filename)
                if member.is_dir() or path.suffix != ".mat" or path.stem not in wanted or ".." in path.parts:
                    continue
                with zf.open(member) as src, open(folder / f"{path.stem}.mat.part", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(folder / f"{path.stem}.mat.part", folder / f"{path.stem}.mat")
    except zipfile.BadZipFile as exc:
        raise EcgtuneError(f"{archive}: not a readable zip archive ({exc})") from None
    missing = sorted(r for r in wanted if not (folder / f"{r}.mat").is_file())
    if missing:
        raise EcgtuneError(f"{archive}: holds no recording for {missing[:5]}{' ...' if len(missing) > 5 else ''}")
