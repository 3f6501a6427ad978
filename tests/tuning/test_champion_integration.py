"""Champions out, end to end on the real data: a beat champion (heartbeat_interpatient), a 12-lead record
champion (ribeiro_ptbxl_superdiagnostic_100hz) and a two-input champion (dualnet_xs), searched at smoke
size in one schedule, then

- predicted from raw recordings by their pyfunc in a fresh venv holding only the models' requirements
  (no ecgtune), giving the probabilities of the search's own test evaluation (to 1e-5);
- served by `mlflow models serve`, answering the same request with the same rows;
- and the README's champion blocks (loading, serving, `ecgtune predict`, `ecgtune evaluate`) run as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import venv
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from ecgtune.cli import main
from tests.synthetic_wfdb import write_beat_database
from tests.tuning.test_search_integration import free_port, score_when_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"
BEATS = "scratch-cnet_rr-smoke-7471-aami_beats_rr-mitdb-inter_patient"
RECORDS = "pretrain-ribeiro_resnet-smoke-ba16-ptbxl_superdiag_100hz-ptbxl-folds"
DUALNET = "scratch-dualnet-smoke-306a-af_rhythm_30s-cinc2017-stratified_records"
EXCERPT = 300 * 360  # five minutes of a MIT-BIH record: its beats' inputs are causal, so they match the whole record's


def _test_predictions(client, name: str) -> dict:
    from mlflow.artifacts import download_artifacts

    version = client.get_model_version_by_alias(name, "champion")
    path = download_artifacts(run_id=version.run_id, artifact_path="test_predictions/test.npz", tracking_uri=client.tracking_uri)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    z = logits.astype(np.float64)
    if multi_label or z.shape[1] == 1:
        p = 1 / (1 + np.exp(-z))
        return p if multi_label else np.concatenate([1 - p, p], axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _requests(real_data_dir: Path, client) -> dict[str, tuple[list[dict], np.ndarray, pd.DataFrame]]:
    """Per champion: request rows of raw test recordings, and the search's own test probabilities for them
    (keyed by record and sample for beats)."""
    import wfdb

    from ecgtune.data import get_dataset
    from ecgtune.data.beat_task import AAMI_MAP

    out = {}
    beats = _test_predictions(client, BEATS)
    rows, expected = [], []
    for record in sorted(set(beats["records"]))[:2]:
        raw = get_dataset("mitdb", root=real_data_dir).recording(record)
        ann = wfdb.rdann(str(real_data_dir / "mitdb" / record), "atr")
        samples = np.asarray(ann.sample)
        rpeaks = samples[np.isin(ann.symbol, list(AAMI_MAP)) & (samples < EXCERPT)]  # every beat the search cut
        rows.append({"signal": raw.signal[:, :EXCERPT].tolist(), "fs": raw.fs, "leads": list(raw.leads),
                     "rpeaks": rpeaks.tolist(), "record": record})
        mine = (beats["records"] == record) & (beats["positions"] < EXCERPT - 10 * 360)  # away from the cut
        proba = _probabilities(beats["logits"][mine], False)
        expected.append(pd.DataFrame({"record": record, "sample": beats["positions"][mine],
                                      **{f"p_{n}": proba[:, i] for i, n in enumerate(beats["label_names"])}}))
    out[BEATS] = (rows, pd.concat(expected, ignore_index=True))
    assert len(out[BEATS][1]) >= 3, "too few test beats in the excerpts to compare"
    for name, dataset in ((RECORDS, "ptbxl"), (DUALNET, "cinc2017")):
        test = _test_predictions(client, name)
        chosen = sorted(set(test["records"]))[:2]
        rows = []
        for record in chosen:
            raw = get_dataset(dataset, root=real_data_dir).recording(record)
            rows.append({"signal": raw.signal.tolist(), "fs": raw.fs, "leads": list(raw.leads), "record": record})
        index = [int(np.flatnonzero(test["records"] == r)[0]) for r in chosen]
        proba = _probabilities(test["logits"][index], name == RECORDS)
        out[name] = (rows, pd.DataFrame({"record": chosen, **{f"p_{n}": proba[:, i] for i, n in enumerate(test["label_names"])}}))
    return out


def _fresh_venv(folder: Path, requirements: list[Path]) -> Path:
    """A venv holding only the models' requirements (their union: each pins torch, numpy, scipy, pandas,
    mlflow), never ecgtune."""
    venv.EnvBuilder(with_pip=True).create(folder)
    python = folder / "bin" / "python"
    wanted = sorted({line.strip() for r in requirements for line in r.read_text().splitlines() if line.strip()})
    subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True, timeout=1200)
    return python


PREDICT = """
import importlib.util, json, sys
import mlflow.pyfunc, pandas as pd
assert importlib.util.find_spec("ecgtune") is None, "ecgtune must not be installed here"
for model, request, out in json.loads(sys.argv[1]):
    rows = pd.read_json(request, orient="records", dtype={"record": str})
    mlflow.pyfunc.load_model(model).predict(rows).to_json(out, orient="records")
"""


def _compare(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    got = got.astype({"record": str}).set_index(keys)
    expected = expected.astype({"record": str}).set_index(keys)
    columns = [c for c in expected.columns if c.startswith("p_")]
    assert set(expected.index) <= set(got.index), "the pyfunc lost test examples"
    np.testing.assert_allclose(got.loc[expected.index, columns].to_numpy(float), expected[columns].to_numpy(float),
                               rtol=0, atol=1e-5)


def test_champions_predict_raw_recordings_serve_and_validate_externally(tmp_path, real_data_dir, ray_local, capsys):
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{os.environ['ECGTUNE_HOME']}/mlflow.db"  # the default store: the README's blocks find it
    assert main(["search", "--space", "heartbeat_interpatient", "--space", "ribeiro_ptbxl_superdiagnostic_100hz",
                 "--space", "dualnet_xs", "--models", "cnet_rr,ribeiro_resnet,dualnet", "--smoke-test",
                 "--data-dir", str(real_data_dir)]) == 0
    capsys.readouterr()
    # models:/ URIs below resolve through MLflow's registry URI, which the search leaves as it found it.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    for name in (BEATS, RECORDS, DUALNET):  # what a version says
        version = client.get_model_version_by_alias(name, "champion")
        assert {"classes", "input", "space_digest", "data_key", "split", "git_revision"} <= set(version.tags)
        assert "Takes raw recordings" in version.description and version.run_id in version.description
    requests = _requests(real_data_dir, client)

    # 1. In a fresh venv holding only the models' requirements: the search's own test probabilities.
    jobs, local = [], {}
    for name, (rows, _) in requests.items():
        local[name] = Path(download_artifacts(artifact_uri=f"models:/{name}@champion", dst_path=str(tmp_path / name),
                                              tracking_uri=uri))
        request = tmp_path / f"{name}.json"
        pd.DataFrame(rows).to_json(request, orient="records")
        jobs.append((str(local[name]), str(request), str(tmp_path / f"{name}.out.json")))
    python = _fresh_venv(tmp_path / "venv", [local[n] / "requirements.txt" for n in local])
    subprocess.run([str(python), "-c", PREDICT, json.dumps(jobs)], check=True, timeout=900, cwd=tmp_path)
    predicted = {name: pd.read_json(out, orient="records", dtype={"record": str}) for name, (_, _, out) in zip(requests, jobs)}
    for name, (_, expected) in requests.items():
        _compare(predicted[name], expected, ["record", "sample"] if name == BEATS else ["record"])
    assert set(predicted[BEATS]["rpeaks"]) == {"given"}
    assert set(predicted[RECORDS].columns) == {"record", "label", "p_NORM", "p_MI", "p_STTC", "p_CD", "p_HYP"}

    # 2. `mlflow models serve` answers the same request with the same rows.
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    for name, (rows, _) in requests.items():
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
                                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            answer = score_when_up(f"http://127.0.0.1:{port}", {"dataframe_records": rows}, server, timeout=180)
        finally:
            _stop(server)
        served = pd.DataFrame(answer["predictions"])
        columns = [c for c in predicted[name].columns if c.startswith("p_")]
        np.testing.assert_allclose(served[columns].to_numpy(float), predicted[name][columns].to_numpy(float), atol=1e-6)
        assert list(served["label"]) == list(predicted[name]["label"])

    # 3. The README's champion blocks, as written, against the beat champion (a smoke search's name).
    _readme_blocks(tmp_path, real_data_dir, env, capsys)


def _stop(server) -> None:
    try:  # the server and the uvicorn it started share their own process group
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    server.wait(timeout=30)


def _readme_blocks(tmp_path: Path, real_data_dir: Path, env: dict, capsys) -> None:
    from mlflow.tracking import MlflowClient

    section = README.read_text().split("## Champions out", 1)[1].split("\n## ", 1)[0]
    port = free_port()
    section = section.replace("5001", str(port))  # the README names the smoke run's champion itself
    blocks = re.findall(r"```(python|bash|yaml)\n(.*?)```", section, re.S)
    namespace: dict = {}
    server = None
    os.environ.setdefault("ECGTUNE_DATA_DIR", str(real_data_dir))
    # 20 records: enough for the record-bootstrap intervals of the external figures
    write_beat_database(tmp_path / "svdb", fs=128, records=tuple(str(r) for r in range(800, 820)), seconds=60)
    try:
        for kind, text in blocks:
            if kind == "python":
                exec(compile(text, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
            elif kind == "yaml":
                name = re.match(r"# (\S+\.yaml)", text).group(1)
                (tmp_path / name).write_text(text.replace("/data/svdb", str(tmp_path / "svdb")))
            else:
                for line in text.strip().splitlines():
                    line = line.split("   #", 1)[0].strip().rstrip("&").strip()
                    if line.startswith("mlflow models serve"):
                        server = subprocess.Popen([sys.executable, "-m", *shlex.split(line)], env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
                        score_when_up(f"http://127.0.0.1:{port}", {"dataframe_records": namespace["rows"]}, server, 180)
                    elif line.startswith("ecgtune "):
                        argv = shlex.split(os.path.expandvars(line))[1:]
                        argv = [str(tmp_path / a) if a.endswith((".yaml", ".parquet")) else a for a in argv]
                        assert main(argv) == 0, line
    finally:
        if server is not None:
            _stop(server)
    beats = namespace["beats"]
    assert {"sample", "rpeaks", "p_N", "label"} <= set(beats.columns) and set(beats["rpeaks"]) == {"detected"}
    assert tuple(namespace["logits"].shape) == (2, 5)
    assert len(namespace["served"]) == len(beats)
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(predictions) > 2000 and set(predictions["rpeaks"]) == {"given"}
    out = capsys.readouterr().out
    assert "external validation:" in out and "20 records" in out and "no intervals" not in out, out
    assert re.search(r"\n\s+S\s+\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", out), out  # S sensitivity with its interval
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version_by_alias(BEATS, "champion")
    assert "[" in version.tags["external.wfdb_svdb.f1_macro"]  # the figure and its interval on the version
