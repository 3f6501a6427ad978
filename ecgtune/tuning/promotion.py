"""Champions in the MLflow model registry: a registered model per (task, dataset, split, stage, model[, patient]).

Every search registers its selected model as a new version, tagged with what produced it; the alias
``champion`` (aliases, not the deprecated stages) moves to it only when it beats the current champion
on the search's validation metric, measured on the same validation data (the gate, below).
"""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ecgtune.tuning.mlflow_retry import retried

CHAMPION = "champion"
# "<invocation>/<unit key>": the search and unit that registered a version. A unit finalised again after
# a crash finds its version by it instead of registering a second one.
INVOCATION_TAG = "ecgtune.registered_by"


def registered_name(
    *, task: str, dataset: str, split: str, stage: str, model: str, patient: str | None = None, smoke: bool = False
) -> str:
    """``<stage>-<model>[-<patient>][-smoke]-<line>-<task>-<dataset>-<split>``.

    What tells two units apart comes first, so that the registry's list (which shows about 40 characters)
    reads at a glance: the stage, the model, the patient. The champion alias compares validation metrics,
    so a name must only ever hold versions whose validation sets are alike: the task, the dataset and the
    split protocol are part of it too, after ``<line>``, four hex digits of them. Tasks that differ only
    at their ends (``ptbxl_superdiag`` and ``ptbxl_superdiag_100hz``) and splits of one task would
    otherwise look the same in those 40 characters; the line keeps every name unique within them
    (tests/tuning/test_promotion.py checks every shipped space), and the tags ``task``, ``dataset`` and
    ``split`` say the same in words.
    """
    unit = [stage, model] + ([patient] if patient else []) + (["smoke"] if smoke else [])
    return "-".join([*unit, champion_line(task, dataset, split), task, dataset, split])


def champion_line(task: str, dataset: str, split: str) -> str:
    """Four hex digits naming (task, dataset, split): the validation data a name's versions compete on."""
    import hashlib

    return hashlib.sha256(f"{task}/{dataset}/{split}".encode()).hexdigest()[:4]


def git_revision() -> str:
    """The commit of the ecgtune checkout that ran the search; in the node image, which has no .git, the
    one it was built from (ECGTUNE_GIT_REVISION); "unknown" for any other installed wheel."""
    built_from = os.environ.get("ECGTUNE_GIT_REVISION")
    if built_from and built_from != "unknown":
        return built_from
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def beats(new: float, old: float, mode: str) -> bool:
    if math.isnan(old):
        return not math.isnan(new)
    return new > old if mode == "max" else new < old


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    champion: bool  # did the alias move to this version?
    previous: float | None  # the champion's validation figure it was compared with (None: no comparison)
    kept_because: str | None = None  # why the alias stayed without a comparison (the champion could not be scored)


# The figures a gate compares. A champion of the same data key was selected on this same validation set,
# as the challenger was: both values are best-of-search, neither profits more from selection.
SAME_DATA = "both best-of-search validation values, on the same validation data (data_key)"
# A champion of other data is scored once on the challenger's validation set: it was not selected on it,
# the challenger was, so any selection noise favours the challenger.
RESCORED = ("champion scored once on this search's validation set; the challenger's value is its best-of-search "
            "value there (selection noise, if any, favours the challenger)")


def promote(mlflow_client, *, name: str, run_id: str, model, example, metric: str, value: float, mode: str, tags: dict,
            score_champion=None, champion: dict | None = None, model_name: str = "model") -> Promotion:
    """Log ``model`` in ``run_id`` (as ``model_name``: the unit's name), register it as a version of ``name``,
    move the alias if it wins. The run keeps its own end time and status: it ended when its trial did.

    ``example`` is a small batch of each input, by name, in the order the model takes them: MLflow traces
    the model with it (torch.export), so the registered model loads without ecgtune's classes and takes
    the same positional inputs. With ``champion`` (its preparation, class names, thresholds, model spec and
    weights: `ecgtune.tuning.champion_model`) the registered model also predicts raw recordings through
    pyfunc and serves them. A version already registered
    under the same ``INVOCATION_TAG`` is reused (the same unit, finalised again after a crash).

    The gate compares like with like. A champion prepared the same way (its ``data_key`` tag equals the
    challenger's) is compared on the validation value it was registered with. Otherwise
    ``score_champion(champion_version) -> (value, why_not)`` scores it on the challenger's validation set;
    where it cannot (``value`` None: it may have trained on those examples, or takes other inputs), the
    alias stays and ``why_not`` says why. The comparison is kept on the new version: ``gate.*`` tags.
    """
    version = registered_by(mlflow_client, name, tags.get(INVOCATION_TAG))
    if version is None:
        version = _register(mlflow_client, name=name, run_id=run_id, model=model, example=example, champion=champion,
                            model_name=model_name, tags={**{k: str(v) for k, v in tags.items()}, "metric": metric,
                                  "val_metric": repr(float(value)), "mode": mode})
    champion = current_champion(mlflow_client, name)
    if champion is not None and str(champion.version) == str(version.version):
        return Promotion(name=name, version=str(version.version), champion=True, previous=None)
    data_key = str(tags.get("data_key", ""))
    gate = {"gate.challenger_value": repr(float(value)), "gate.data_key": data_key}
    previous, kept_because = None, None
    if champion is None:
        gate["gate.decision"] = "champion: the first version"
    else:
        gate["gate.champion_version"] = str(champion.version)
        if champion.tags.get("data_key", "") == data_key:
            previous, basis = float(champion.tags.get("val_metric", "nan")), SAME_DATA
        elif score_champion is None:
            previous, basis = None, None
            kept_because = f"it was prepared differently (data_key {champion.tags.get('data_key')!r}) and is not scored here"
        else:
            previous, kept_because = score_champion(champion)
            basis = RESCORED
        if previous is not None:
            gate.update({"gate.champion_value": repr(previous), "gate.basis": basis})
    wins = champion is None or (previous is not None and beats(float(value), previous, mode))
    if champion is not None:
        gate["gate.decision"] = (
            f"champion: beats version {champion.version}" if wins else
            f"kept version {champion.version}: " + (kept_because or "it scores at least as well on this validation data"))
    for key, text in gate.items():
        retried(lambda: mlflow_client.set_model_version_tag(name, version.version, key, text[:5000]),
                f"tag {key} of {name} version {version.version}")
    if wins:
        retried(lambda: mlflow_client.set_registered_model_alias(name, CHAMPION, version.version),
                f"the {CHAMPION} alias of {name}")
    return Promotion(name=name, version=str(version.version), champion=wins, previous=previous,
                     kept_because=None if wins else kept_because)


def saved_with_torch() -> str:
    """``torch==<version>`` of this process, without a local build tag (+cpu, +cu126): pip resolves the
    build for the serving machine."""
    import torch

    return f"torch=={torch.__version__.split('+')[0]}"


def _register(mlflow_client, *, name: str, run_id: str, model, example: dict, tags: dict, champion: dict | None = None,
              model_name: str = "model"):
    import mlflow
    import mlflow.pytorch

    from ecgtune.tuning import champion_model
    from ecgtune.tuning.champion_model import tensor_signature

    use_uri(mlflow_client.tracking_uri)
    arrays = tuple(example.values())
    # MLflow's fluent log_model needs the run active, and start_run on a finished run reopens it; ending it
    # again would stamp it with this moment (minutes after its trial ended, behind other units' trials)
    # and FINISHED (an ASHA-stopped trial is KILLED). Its own end and status are put back below.
    ended = mlflow_client.get_run(run_id).info
    # Naming the requirements skips MLflow's slow import-tracing inference. The network is saved as an
    # exported program (pt2): loading it needs the torch it was saved with; the raw-recording predictor runs on
    # the ecgtune code bundled with it (ecgtune is not on PyPI, so `mlflow models serve` could not build an
    # environment naming it) and the packages that code imports.
    with mlflow.start_run(run_id=run_id):
        if champion is None:
            info = mlflow.pytorch.log_model(
                # torch.export traces the model on the example, so every model needs one. MLflow's pyfunc
                # serves one array only: the example of a model of several inputs is not tried as a serving
                # input (it would fail and warn), though the model loads and runs with mlflow.pytorch.
                model, name=model_name, input_example=arrays[0] if len(arrays) == 1 else arrays,
                validate_serving_input=len(arrays) == 1, signature=tensor_signature(model, example),
                pip_requirements=[saved_with_torch()],
            )
        else:
            from mlflow.models import Model

            info = Model.log(artifact_path=None, name=model_name, flavor=champion_model, network=model, example=example,
                             champion={k: v for k, v in champion.items() if k != "weights"},
                             weights=champion["weights"], requirements=champion_requirements(champion))
    mlflow_client.set_terminated(run_id, ended.status, end_time=ended.end_time)
    if _absent_as_none(lambda: mlflow_client.get_registered_model(name), f"the registered model {name}") is None:
        mlflow_client.create_registered_model(name, description=f"ecgtune champions for {name}")
    return mlflow_client.create_model_version(name, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id)


def describe_registered_model(mlflow_client, name: str, *, tags: dict[str, str], version: str, description: str) -> None:
    """Tag the registered model (task, dataset, split, stage, model, patient, space) and describe it by its
    latest version. Spaces meant to compete share a name (the same task, dataset and split): ``space``
    lists every space that registered a version of it."""
    current = mlflow_client.get_registered_model(name).tags
    spaces = sorted({*filter(None, current.get("space", "").split(",")), tags["space"]})
    for key, value in {**tags, "space": ",".join(spaces), "latest_version": str(version)}.items():
        if current.get(key) != value:
            mlflow_client.set_registered_model_tag(name, key, value)
    mlflow_client.update_registered_model(name, description=description[:5000])


def champion_requirements(champion: dict) -> list[str]:
    """What the bundled code imports to predict: the pinned torch, numpy, scipy (filters, resampling), pandas
    (the rows in and out), and pyts where the model reads images."""
    import importlib.metadata as md

    names = ["numpy", "scipy", "pandas"] + (["pyts"] if champion["preparation"].get("params", {}).get("images") else [])
    return [saved_with_torch(), *(f"{n}=={md.version(n)}" for n in names)]


def registered_by(mlflow_client, name: str, tag: str | None):
    """The version of ``name`` whose INVOCATION_TAG is ``tag``, or None. Only MLflow's answer that ``name``
    does not exist means none; any other error is retried, then raised (a duplicate version otherwise)."""
    if not tag:
        return None
    versions = _absent_as_none(lambda: mlflow_client.search_model_versions(f"name='{name}'"),
                               f"the versions of {name}") or []
    return next((v for v in versions if v.tags.get(INVOCATION_TAG) == tag), None)


def current_champion(mlflow_client, name: str):
    """The version the alias points at, or None where ``name`` or its alias does not exist. A registry that
    does not answer is retried, then raised: read as "no champion", it would move the alias unchallenged."""
    model = _absent_as_none(lambda: mlflow_client.get_registered_model(name), f"the registered model {name}")
    version = None if model is None else dict(model.aliases or {}).get(CHAMPION)
    if version is None:
        return None
    return retried(lambda: mlflow_client.get_model_version(name, str(version)), f"{name} version {version}")


def _absent_as_none(call, what: str):
    from ecgtune.tuning.mlflow_retry import is_absent

    try:
        return retried(call, what)
    except Exception as exc:
        if is_absent(exc):
            return None
        raise


def use_uri(uri: str) -> None:
    """Point MLflow's fluent API (log_model, load_model) at the store the client uses."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def load_champion(name: str, uri: str):
    """The champion model of ``name`` (``models:/<name>@champion``), on the CPU."""
    import mlflow.pytorch

    use_uri(uri)
    # The registered model is a torch.export program traced in eval mode; it has no .eval() of its own.
    return mlflow.pytorch.load_model(f"models:/{name}@{CHAMPION}", map_location="cpu")


def champion_checkpoint(mlflow_client, version) -> dict:
    """The training checkpoint (weights, model spec) behind a registered version, for fine-tuning:
    the exported program is for inference, the checkpoint keeps the module's parameter names."""
    import tempfile

    from mlflow.artifacts import download_artifacts

    from ecgtune.training.checkpoint import load_state

    with tempfile.TemporaryDirectory() as d:
        retried(lambda: download_artifacts(run_id=version.run_id, artifact_path="checkpoint", dst_path=d,
                                           tracking_uri=mlflow_client.tracking_uri),
                f"the checkpoint of {version.name} version {version.version}")
        return load_state(f"{d}/checkpoint")
