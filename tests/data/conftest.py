"""Fixtures for dataset tests: fake WFDB records in tmp_path, and an isolated ECGTUNE_HOME."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

FS = 360


@pytest.fixture(autouse=True)
def data_test_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cache and locks go to a fresh folder per test, never to ~/.ecgtune."""
    home = tmp_path / "ecgtune_home"  # the same folder as the top-level conftest, set even without it
    monkeypatch.setenv("ECGTUNE_HOME", str(home))
    return home


def synthetic_ecg(n_samples: int, beat_samples: Sequence[int], seed: int = 0) -> np.ndarray:
    """One lead in mV: a slow baseline wander plus a narrow spike at each beat, shape (n_samples,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / FS
    signal = 0.1 * np.sin(2 * np.pi * 0.3 * t) + 0.01 * rng.standard_normal(n_samples)
    for s in beat_samples:
        signal += 1.2 * np.exp(-0.5 * ((np.arange(n_samples) - s) / 4.0) ** 2)
    return signal


@pytest.fixture
def make_record() -> Callable[..., Path]:
    """A factory writing `<folder>/<name>.{hea,dat,atr}` with wfdb (format 212, 360 Hz).

    Call as make_record(folder, name, annotations=[(sample, symbol), ...], seconds=10,
    sig_names=("MLII", "V1"), leads=None); `leads` (n, 2) overrides the synthetic signal.
    """
    import wfdb

    def make(
        folder: Path,
        name: str,
        annotations: Sequence[tuple[int, str]],
        *,
        seconds: float = 10.0,
        sig_names: Sequence[str] = ("MLII", "V1"),
        leads: np.ndarray | None = None,
    ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        n = int(seconds * FS)
        beats = [s for s, sym in annotations if sym not in "+~|"]
        if leads is None:
            first = synthetic_ecg(n, beats, seed=int(name))
            leads = np.stack([first, -0.5 * first + 0.05 * np.cos(np.arange(n) / 50.0)], axis=1)
        wfdb.wrsamp(
            name,
            fs=FS,
            units=["mV", "mV"],
            sig_name=list(sig_names),
            p_signal=leads,
            fmt=["212", "212"],
            write_dir=str(folder),
        )
        samples = np.array([s for s, _ in annotations], dtype=np.int64)
        symbols = [sym for _, sym in annotations]
        order = np.argsort(samples, kind="stable")
        wfdb.wrann(
            name,
            "atr",
            samples[order],
            symbol=[symbols[i] for i in order],
            aux_note=["(N" if symbols[i] == "+" else "" for i in order],
            write_dir=str(folder),
        )
        return folder / name

    return make


# Annotation layout of the standard fake record (10 s + 200 samples = 10 one-second windows
# and a partial tail). Window k spans samples [360k, 360k + 360).
STANDARD_ANNOTATIONS = [
    (50, "N"),  # w0  (also: too close to the start for a beat segment)
    (180, "N"),  # w0 -> normal
    (400, "N"),  # w1
    (600, "V"),  # w1 -> abnormal (any abnormal beat wins)
    (900, "Q"),  # w2 -> only unclassified: dropped
    # w3: no annotation: dropped
    (1600, "N"),  # w4 -> normal
    (1900, "!"),  # w5 -> flutter wave: abnormal (binary); ignored by AAMI
    (2200, "+"),  # w6 -> rhythm change only: dropped
    (2600, "A"),  # w7
    (2700, "N"),  # w7 -> abnormal; AAMI S
    (3000, "N"),  # w8 -> normal
    (3300, "N"),  # w9 -> normal
    (3700, "N"),  # partial tail window: dropped (and too close to the end for a beat)
]
STANDARD_SECONDS = 10 + 200 / FS


@pytest.fixture
def standard_annotations() -> list[tuple[int, str]]:
    """The annotations every record of `fake_root` carries (see the layout above)."""
    return list(STANDARD_ANNOTATIONS)


@pytest.fixture
def fake_root(tmp_path: Path, make_record: Callable[..., Path]) -> Path:
    """A data root with mitdb/ records 100, 201 and 202 sharing the standard annotations."""
    root = tmp_path / "data"
    for name in ("100", "201", "202"):
        make_record(root / "mitdb", name, STANDARD_ANNOTATIONS, seconds=STANDARD_SECONDS)
    return root


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        self.requested.append(self.path.lstrip("/"))
        super().do_GET()


@contextlib.contextmanager
def serving(folder: Path):
    """A real HTTP server on 127.0.0.1 serving ``folder``: yields (base_url, the paths requested so far)."""
    requested: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
