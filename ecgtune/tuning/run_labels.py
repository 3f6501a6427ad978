"""What a trial's MLflow run says about itself in the UI's run list: a name that tells which unit,
patient and searched values it is (``scratch 208 lr=0.01 b=16 w``), and the data it was trained on as
MLflow dataset inputs (the Dataset column)."""

from __future__ import annotations

import json

import numpy as np

# Short forms of the training parameters users search most; others appear as key=value.
_SHORT = {"lr": "lr", "batch_size": "b", "focal_gamma": "focal", "augment": "aug", "weight_decay": "wd",
          "class_weights": "cw", "optimizer": "opt", "freeze_blocks": "frozen"}
# Switches: their name when on, nothing when off.
_FLAGS = {"weighted_sampling": "w", "smote": "smote", "freeze_features": "frozen-features"}
SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


def _is_searched(value) -> bool:
    from ray.tune.search.sample import Domain

    return isinstance(value, Domain) or (isinstance(value, dict) and set(value) == {"grid_search"})


def searched_paths(param_space: dict, prefix: tuple = ()) -> list[tuple[str, ...]]:
    """The paths in a trial config (("train", "lr"), ("model", "hparams", "width")) the search chooses."""
    out = []
    for key, value in param_space.items():
        if _is_searched(value):
            out.append((*prefix, key))
        elif isinstance(value, dict):
            out.extend(searched_paths(value, (*prefix, key)))
    return out


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def trial_run_name(config: dict, searched: list[tuple[str, ...]], *, several_models: bool) -> str:
    """``<stage> [<patient>] [<model>] <searched values>``: the model only where a space holds several."""
    parts = [str(config.get("stage") or "trial")]
    if config.get("patient"):
        parts.append(str(config["patient"]))
    if several_models:
        parts.append(config["model"]["name"])
    for path in searched:
        value = config
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        name = path[-1]
        if name in _FLAGS:
            if value:
                parts.append(_FLAGS[name])
        else:
            parts.append(f"{_SHORT.get(name, name)}={_value_text(value)}")
    return " ".join(parts)


def split_profile(split_labels: np.ndarray, records: np.ndarray, patient: str | None) -> dict[str, dict]:
    """Examples and records per split, of one patient's records where the unit is per patient."""
    mask = np.ones(len(split_labels), bool) if patient is None else records == patient
    out = {}
    for label, name in SPLITS:
        chosen = mask & (split_labels == label)
        out[name] = {"examples": int(chosen.sum()), "records": int(len(set(records[chosen].tolist())))}
    return out


def dataset_inputs(*, dataset: str, task: str, data_key: str, source: str, profile: dict[str, dict],
                   patient: str | None = None) -> list:
    """One MLflow dataset input per split used: name ``<dataset>/<task>[ <patient>]:<split>``, digest the
    data key (the prepared examples and their split), context the split, sizes in the profile. (MLflow
    keeps one entry per name and digest in an experiment, so the split and patient are in the name.)"""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = []
    for split, sizes in profile.items():
        if not sizes["examples"]:
            continue
        name = f"{dataset}/{task}{f' {patient}' if patient else ''}:{split}"
        entity = Dataset(name=name, digest=data_key, source_type="ecgtune",
                         source=json.dumps({"dataset": dataset, "data_dir": source}),
                         profile=json.dumps(sizes))
        inputs.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", split)]))
    return inputs
