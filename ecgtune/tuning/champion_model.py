"""A champion as the registry holds it: one MLflow model with two flavours.

- ``pytorch``: the exported network (torch.export), for users who want tensors, as before:
  ``mlflow.pytorch.load_model(uri)(x)`` -> logits.
- ``python_function``: a predictor of raw recordings that carries everything between a recording and a
  class name: the dataset's preparation (`ecgtune.data.recordings`), the network's weights and spec, the
  class names and the multi-label thresholds chosen on validation. Its input is a DataFrame, one row per
  recording: ``signal`` (leads x samples, physical units), ``fs`` (Hz), ``leads`` (names), optional ``rpeaks``
  (sample indices, beat tasks) and ``record`` (a name); its output one row per recording (record tasks) or
  per beat (beat tasks: ``record``, ``sample``, ``rpeaks`` given or detected), ``p_<class>`` per class and
  ``label``. It runs on the code bundled with the model (this package, under ``code/``) and the pinned
  requirements: no ecgtune install is needed to load or serve it.

This module is also the flavour's loader (`_load_pyfunc`), so it imports nothing heavy at module level.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

DATA = "champion"  # the folder in the model holding champion.json and weights.pt
SPEC_FILE, WEIGHTS_FILE = "champion.json", "weights.pt"
LOADER = __name__


class ChampionPredictor:
    """Raw recordings in, class probabilities out (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        import torch

        from ecgtune.training.checkpoint import build_model

        folder = Path(folder)
        self.spec = json.loads((folder / SPEC_FILE).read_text())
        self.model = build_model(self.spec["model_spec"])
        self.model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        self.model.eval()
        self.label_names = list(self.spec["label_names"])
        self.thresholds = None if self.spec.get("thresholds") is None else np.asarray(self.spec["thresholds"])

    def predict(self, model_input, params=None):
        """One DataFrame of every recording's rows (see the module docstring)."""
        import pandas as pd

        del params
        frames = [self.predict_recording(r) for r in recordings_from_frame(model_input)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=self.columns())

    def columns(self) -> list[str]:
        beats = self.spec["preparation"]["kind"] in ("beats", "detected_beats")
        return ["record", *(["sample", "rpeaks"] if beats else []), *[f"p_{n}" for n in self.label_names], "label"]

    def predict_recording(self, recording):
        """The rows of one `ecgtune.data.recordings.Recording`."""
        import pandas as pd

        from ecgtune.data.recordings import recording_inputs

        prepared = recording_inputs(self.spec["preparation"], recording)
        proba = self.probabilities(self.logits(prepared.inputs))
        rows = {"record": [recording.name] * len(proba)}
        if self.spec["preparation"]["kind"] in ("beats", "detected_beats"):
            rows.update(sample=prepared.positions.astype(np.int64), rpeaks=[prepared.rpeaks] * len(proba))
        for i, name in enumerate(self.label_names):
            rows[f"p_{name}"] = proba[:, i]
        rows["label"] = self.labels(proba)
        return pd.DataFrame(rows, columns=self.columns())

    def logits(self, inputs: dict[str, np.ndarray], batch_size: int = 512) -> np.ndarray:
        """(n, outputs) logits of the network on the named inputs it takes, in its order."""
        import torch

        names = list(self.spec["model_spec"]["inputs"])
        n = len(inputs[names[0]])
        out = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = [torch.from_numpy(np.ascontiguousarray(inputs[k][start:start + batch_size])) for k in names]
                batch = [t.float().div_(255.0) if t.dtype == torch.uint8 else t.float() for t in batch]
                out.append(self.model(*batch).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.spec["model_spec"]["num_outputs"]), np.float32)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(n, classes): sigmoid per label (multi-label), sigmoid of one logit for two classes, else softmax."""
        z = logits.astype(np.float64)
        if self.thresholds is not None:
            return 1.0 / (1.0 + np.exp(-z))
        if z.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def labels(self, proba: np.ndarray) -> list[str]:
        """The class of each row; for multi-label tasks the labels at or above their thresholds, joined by ";"."""
        if self.thresholds is not None:
            return [";".join(n for n, on in zip(self.label_names, row) if on) for row in proba >= self.thresholds]
        return [self.label_names[i] for i in proba.argmax(axis=1)]


def recordings_from_frame(frame) -> list:
    """The Recordings of a DataFrame (or a list of dicts): columns signal, fs, leads, rpeaks, record."""
    import pandas as pd

    from ecgtune.data.recordings import Recording
    from ecgtune.errors import EcgtuneError

    frame = pd.DataFrame(frame) if not isinstance(frame, pd.DataFrame) else frame
    missing = [c for c in ("signal", "fs") if c not in frame.columns]
    if missing:
        raise EcgtuneError(f"a champion takes rows of signal (leads x samples), fs (Hz) and leads (names); the "
                           f"input has no column {missing[0]!r} (columns: {list(frame.columns)})")
    out = []
    for i, row in enumerate(frame.to_dict("records")):
        name = str(row.get("record") or f"row {i}")
        signal = np.asarray([np.asarray(lead, dtype=np.float64) for lead in row["signal"]]) \
            if not np.isscalar(row["signal"][0]) else np.asarray(row["signal"], dtype=np.float64)
        rpeaks = row.get("rpeaks")
        rpeaks = None if rpeaks is None or (np.isscalar(rpeaks) and pd.isna(rpeaks)) else np.asarray(rpeaks)
        leads = row.get("leads")
        leads = () if leads is None or (np.isscalar(leads) and pd.isna(leads)) else tuple(leads)
        out.append(Recording(signal, float(row["fs"]), leads, rpeaks, name))
    return out


def _load_pyfunc(path: str) -> ChampionPredictor:
    """MLflow's loader_module contract: the python_function flavour's data folder in, a predictor out."""
    return ChampionPredictor(path)


def input_signature():
    """What the predictor takes: a row per recording."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType, Array

    return ModelSignature(inputs=Schema([
        ColSpec(Array(Array(DataType.double)), "signal"),
        ColSpec(AnyType(), "fs"),  # 360 or 128.0: MLflow would refuse an int where a double is declared
        ColSpec(Array(DataType.string), "leads", required=False),
        ColSpec(Array(DataType.long), "rpeaks", required=False),
        ColSpec(DataType.string, "record", required=False),
    ]))


def tensor_signature(model, example: dict):
    """The model's signature: each named input (batch, ...) in order, and the logits (batch, outputs). A
    single input goes unnamed: MLflow's pyfunc then passes it to the model as the array it is (a named one
    arrives as a dict, which the PyTorch flavour cannot take)."""
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    with torch.no_grad():
        out = model(*(torch.from_numpy(a) for a in example.values()))
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *a.shape[1:]), name if len(example) > 1 else None)
                       for name, a in example.items()]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *out.shape[1:]), "logits")]),
    )


def save_model(path: str, mlflow_model=None, *, network, example: dict, champion: dict, weights: dict,
               requirements: list[str], **kwargs) -> None:
    """The flavour contract of `mlflow.models.Model.log`: the exported network as the pytorch flavour, then
    this package, ``champion.json`` and ``weights.pt`` as the python_function flavour.

    Args:
        network: The selected model (torch.nn.Module, eval mode) to export.
        example: A small batch of each input, by name, in the order the network takes them (the export traces it).
        champion: preparation, label_names, thresholds, model_spec (JSON-able).
        weights: The network's state dict (the python_function flavour rebuilds the module from it).
        requirements: pip requirements of both flavours.
    """
    import torch
    from mlflow.models import Model
    import mlflow.pyfunc
    import mlflow.pytorch

    mlflow_model = mlflow_model or Model()
    arrays = tuple(example.values())
    package = Path(__file__).resolve().parents[1]
    mlflow.pytorch.save_model(
        network, path, mlflow_model=mlflow_model, signature=tensor_signature(network, example),
        input_example=arrays[0] if len(arrays) == 1 else arrays, pip_requirements=requirements, **kwargs)
    # pt2 saved its tensor example for the tensor flavour; the model's example and signature are the raw
    # recordings the python_function flavour takes.
    for stale in ("input_example.json", "serving_input_example.json"):
        Path(path, stale).unlink(missing_ok=True)
    mlflow_model.saved_input_example_info = None
    data = Path(path) / DATA
    data.mkdir()
    (data / SPEC_FILE).write_text(json.dumps(champion, indent=1))  # key order kept: the order of the inputs
    torch.save({k: v.detach().cpu() for k, v in weights.items()}, data / WEIGHTS_FILE)
    code = Path(path) / "code"
    shutil.copytree(package, code / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # The tensor flavour's own python_function entry (single-input networks have one) gives way to this one;
    # the environment files pytorch's save wrote serve both.
    mlflow_model.flavors.pop("python_function", None)
    env = {name: file for name, file in (("conda", "conda.yaml"), ("virtualenv", "python_env.yaml"))
           if Path(path, file).is_file()}
    mlflow.pyfunc.add_to_model(mlflow_model, loader_module=LOADER, data=DATA, code="code", env=env)
    mlflow_model.signature = input_signature()
    mlflow_model.save(str(Path(path) / "MLmodel"))
