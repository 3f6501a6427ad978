"""What a trial checkpoint holds, and rebuilding a model from one (for test evaluation and promotion)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from ecgtune.paths import read_bytes, write_bytes

STATE_FILE = "state.pt"  # the best weights, the model's spec, the figures: what promotion and by-value read
RESUME_FILE = "resume.pt"  # what only resuming the trial needs: optimizer, scheduler and random states


def model_spec(config: dict, examples) -> dict:
    """Everything create_model needs, stored in the checkpoint so a model can be rebuilt without the space."""
    from ecgtune.models._registry import outputs_for

    return {
        "name": config["model"]["name"],
        "inputs": {name: list(shape) for name, shape in examples.input_shapes.items()},
        "num_outputs": outputs_for(len(examples.label_names), examples.multi_label),
        "hparams": dict(config["model"].get("hparams", {})),
        "label_names": list(examples.label_names),
    }


def build_model(spec: dict):
    from ecgtune.models import create_model

    return create_model(spec["name"], inputs=spec["inputs"], num_outputs=spec["num_outputs"], **spec["hparams"])


def save_state(directory: str | os.PathLike, state: dict, resume: dict | None = None) -> None:
    """``state`` as STATE_FILE, and ``resume`` (what only a resumed trial needs) as RESUME_FILE beside it:
    the run's MLflow copy of a checkpoint is STATE_FILE alone, taken as it is (Adam's state is twice the
    weights' size)."""
    torch.save(state, Path(directory) / STATE_FILE)
    if resume is not None:
        torch.save(resume, Path(directory) / RESUME_FILE)


def load_state(directory: str | os.PathLike) -> dict:
    """STATE_FILE, with RESUME_FILE's entries where the checkpoint has one (a trial's own, in Tune's storage)."""
    # Tensors and plain types only: a checkpoint may come from a shared store others can write to.
    state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)
    resume = Path(directory) / RESUME_FILE
    if resume.is_file():
        state.update(torch.load(resume, map_location="cpu", weights_only=True))
    return state


def write_weights(location: str, model_state: dict, spec: dict) -> None:
    """The weights fine-tuning starts from, with the spec of the model they belong to (a fusion model builds
    its branches from it), where every trial of the cluster reads them (the search's storage path: a shared
    folder or an object store)."""
    buffer = io.BytesIO()
    torch.save({"model_state": {k: v.detach().cpu() for k, v in model_state.items()}, "model_spec": spec}, buffer)
    write_bytes(location, buffer.getvalue())


def read_weights(location: str) -> dict:
    """{"model_state": ..., "model_spec": ...} as `write_weights` left them (tensors and plain types only).
    Weights written by an earlier ecgtune (a search resumed across an upgrade) are the state alone."""
    loaded = torch.load(io.BytesIO(read_bytes(location)), map_location="cpu", weights_only=True)
    return loaded if "model_state" in loaded else {"model_state": loaded, "model_spec": None}


def model_from_checkpoint_dir(directory: str | os.PathLike):
    """The best model of a trial, on the CPU, in eval mode, with the checkpoint's state."""
    state = load_state(directory)
    model = build_model(state["model_spec"])
    model.load_state_dict(state["model_state"])
    return model.eval(), state
