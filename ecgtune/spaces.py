"""Search-space files: YAML -> validated frozen dataclasses -> ray.tune domains.

A file is rejected before Ray starts, with the file, the key and what was expected. Domains take a short
form (bounds of ``int`` and ``float`` are both inclusive)::

    lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    epochs: {type: int, low: 5, high: 30}
    optimizer: {type: categorical, choices: [adam, sgd]}
    batch_size: {grid: [4, 16, 32]}
    weight_decay: 1.0e-4            # a fixed value

See search_spaces/*.yaml for complete files and README.md ("Search-space files") for every key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ecgtune.errors import EcgtuneError
from ecgtune.transforms import AUGMENTATIONS

STAGES = ("pretrain", "scratch", "finetune")
ALGORITHMS = ("grid", "random", "optuna")
SCHEDULERS = ("none", "asha")
OPTIMIZERS = ("adam", "sgd", "radam")
LR_SCHEDULERS = ("none", "reducelr", "cycliclr", "cosine", "step")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # on a GPU; the CPU always trains in fp32

# Training parameters a stage may set or search; anything else in `params` is a typo.
TRAIN_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "momentum": 0.9,  # SGD only
    "batch_size": 32,
    "epochs": 30,
    "weighted_sampling": False,
    "lr_scheduler": "none",
    "lr_plateau_factor": 0.5,  # reducelr: the rate times this ...
    "lr_plateau_patience": 3,  # ... after this many epochs without a lower validation loss (Ribeiro: 0.1, 7)
    "early_stopping_patience": 0,  # 0 = train all epochs
    "freeze_features": False,  # finetune only: train the head alone
    "freeze_blocks": 0,  # finetune only: keep the model's first k feature blocks (Ribeiro: stem, units) as they are
    "smote": False,  # oversample the training split's minority classes with SMOTE (never val or test)
    "class_weights": "none",  # none | balanced (inverse training frequency) | [a weight per class, label order]
    "focal_gamma": 0.0,  # 0 = the plain loss; > 0 the focal loss (Lin et al. 2017; 2 is theirs)
    "augment": 0.0,  # probability of each augmentation on a training batch; 0 = none (ECG-DualNet: 0.2)
    "augmentations": list(AUGMENTATIONS),  # which ones (ecgtune.transforms.augment)
    "seed": 0,
    # Mixed precision on a GPU: auto = bf16 where the GPU has it natively, else fp16 with loss scaling;
    # fp32 turns it off (benchmarks/gpu_check.sh measures both).
    "precision": "auto",
}


VALIDATION_PREFIX = "val_"  # every selection metric is a validation one (parse_space checks it)


def measure_of(metric: str) -> str:
    """The measure a selection metric names, to find it among the test figures (``test_<measure>``):
    val_f1_macro -> f1_macro."""
    return metric[len(VALIDATION_PREFIX):] if metric.startswith(VALIDATION_PREFIX) else metric


def _fail(where: str, key: str, expected: str, got: Any) -> EcgtuneError:
    shown = repr(got)
    shown = shown if len(shown) <= MAX_MESSAGE else shown[:MAX_MESSAGE] + "... (cut)"
    return EcgtuneError(f"{where}: key {key!r}: expected {expected}, got {shown}")


@dataclass(frozen=True)
class Domain:
    """One searched parameter: ``kind`` is float, int, categorical or grid."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple = ()

    def to_tune(self):
        """The ray.tune domain for this parameter."""
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "categorical":
            return tune.choice(list(self.values))
        if self.kind == "float":
            return (tune.loguniform if self.log else tune.uniform)(self.low, self.high)
        # tune.randint excludes its upper bound; ours is inclusive, as documented above.
        return (tune.lograndint if self.log else tune.randint)(int(self.low), int(self.high) + 1)


def parse_value(raw: Any, where: str, key: str) -> Any:
    """A fixed value stays as it is; a mapping becomes a validated Domain."""
    if not isinstance(raw, dict):
        return raw
    if set(raw) == {"grid"}:
        values = raw["grid"]
        if not isinstance(values, list) or not values:
            raise _fail(where, f"{key}.grid", "a non-empty list", values)
        return Domain("grid", values=tuple(values))
    kind = raw.get("type")
    if kind == "categorical":
        extra = set(raw) - {"type", "choices"}
        choices = raw.get("choices")
        if extra or not isinstance(choices, list) or not choices:
            raise _fail(where, key, "{type: categorical, choices: [a non-empty list]}", raw)
        return Domain("categorical", values=tuple(choices))
    if kind in ("float", "int"):
        extra = set(raw) - {"type", "low", "high", "log"}
        if extra:
            raise _fail(where, key, f"only type, low, high, log for a {kind} domain", sorted(extra))
        low, high, log = raw.get("low"), raw.get("high"), raw.get("log", False)
        number = (int,) if kind == "int" else (int, float)
        for name, bound in (("low", low), ("high", high)):
            if not isinstance(bound, number) or isinstance(bound, bool):
                raise _fail(where, f"{key}.{name}", f"a number ({kind})", bound)
        if not low <= high:
            raise EcgtuneError(f"{where}: key {key!r}: low <= high must hold, got ({low=}, {high=})")
        if not isinstance(log, bool):
            raise _fail(where, f"{key}.log", "true or false", log)
        if log and low <= 0:
            raise EcgtuneError(f"{where}: key {key!r}: a log domain needs low > 0, got {low=}")
        return Domain(kind, low=low, high=high, log=log)
    raise _fail(
        where,
        key,
        "a fixed value, {grid: [...]}, {type: float|int, low, high[, log]} or {type: categorical, choices}",
        raw,
    )


def _check_keys(raw: Any, where: str, section: str, allowed: set[str], required: set[str] = frozenset()):
    if not isinstance(raw, dict):
        raise _fail(where, section, "a mapping", raw)
    unknown = set(raw) - allowed
    if unknown:
        raise _fail(where, f"{section}.{sorted(unknown)[0]}", f"one of {sorted(allowed)}", "an unknown key")
    missing = required - set(raw)
    if missing:
        raise EcgtuneError(f"{where}: key {section!r}: missing required key(s) {sorted(missing)}")


@dataclass(frozen=True)
class SearchSpec:
    algorithm: str = "grid"
    num_samples: int = 1
    scheduler: str = "none"
    grace_period: int = 1  # ASHA: epochs before a trial may be stopped
    reduction_factor: int = 2  # ASHA
    n_startup_trials: int | None = None  # Optuna: random trials before TPE models the finished ones
    max_concurrent: int | None = None  # trials of one unit in flight at once

    @property
    def startup_trials(self) -> int:
        """Optuna's random start: a third of the trials, at least 2 (Optuna's own default of 10 would
        leave every trial of a small search random)."""
        return self.n_startup_trials or max(2, self.num_samples // 3)

    @property
    def concurrency(self) -> int | None:
        """At most this many trials of the unit at once: TPE's startup trials run together, later ones
        wait for results to learn from (other units fill the cluster meanwhile); grids are unlimited."""
        if self.max_concurrent:
            return self.max_concurrent
        return self.startup_trials if self.algorithm == "optuna" else None


@dataclass(frozen=True)
class StageSpec:
    """One phase of a study: what to train, and over which parameters."""

    stage: str
    params: dict  # training parameter -> fixed value or Domain
    per_patient: bool
    search: SearchSpec

    def domains(self) -> dict[str, Domain]:
        return {k: v for k, v in self.params.items() if isinstance(v, Domain)}


@dataclass(frozen=True)
class SmokeSpec:
    """How --smoke-test shrinks the space: the grid stays, everything else gets small."""

    epochs: int = 1
    patients: int = 2
    max_per_record: int | None = 300  # examples per record (windows, beats); null for datasets of one per record
    max_records: int | None = None  # recordings (datasets of one example per recording)
    num_samples: int = 2
    model: dict = field(default_factory=dict)  # model hyperparameters for smoke runs, e.g. {size: xs}
    models: dict = field(default_factory=dict)  # per model name, its own: {alexnet2d: {fc_sizes: [64, 32]}}
    preprocessing: dict = field(default_factory=dict)  # preprocessing for smoke runs, e.g. {max_records: 40}
    params: dict = field(default_factory=dict)  # training parameters of every stage: a large grid made small


@dataclass(frozen=True)
class ModelSpec:
    """A registered model and its fixed hyperparameters."""

    name: str
    hparams: dict


@dataclass(frozen=True)
class TransferSpec:
    """Where a finetune stage takes its starting weights: the champion of another registered model.

    Without a ``transfer`` section, fine-tuning starts from this space's own task, dataset, split
    and ``pretrain`` stage. With one, it starts from the champion of ``task`` on ``dataset`` and
    ``split`` trained in ``stage`` (the same model architecture); ``replace_head`` swaps its last two fully connected
    layers for fresh ones sized for this task (Kachuee et al.'s transfer). With ``branches`` (input name ->
    model name), the space's fusion models start from one champion per branch instead: the champion of that
    model for ``task``, loaded whole into the branch that takes that input (seed 000's fusion of the best
    signal and image networks).
    """

    task: str
    dataset: str
    split: str
    stage: str = "pretrain"
    replace_head: bool = False
    branches: dict | None = None


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: Path
    description: str
    task: str
    dataset: str
    preprocessing: dict
    split: str
    models: tuple[ModelSpec, ...]  # several: one unit (Tuner, selection, champion) per model
    metric: str
    mode: str
    cpu: float
    gpu: float
    patients: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    smoke: SmokeSpec = field(default_factory=SmokeSpec)
    smoke_test: bool = False
    transfer: TransferSpec | None = None
    resources_when: dict = field(default_factory=dict)  # model hyperparameter -> value -> {cpu, gpu}
    dataset_args: dict = field(default_factory=dict)  # the dataset's own keys (wfdb's path)
    split_options: dict = field(default_factory=dict)  # the protocol's options the space sets (fractions, seed)

    def stage(self, name: str) -> StageSpec | None:
        return next((s for s in self.stages if s.stage == name), None)

    @property
    def experiment_name(self) -> str:
        # Smoke runs get their own experiment and registered models so that they never
        # become the champion a real search is compared with.
        return f"{self.name}-smoke" if self.smoke_test else self.name

    def with_patients(self, patients: list[str]) -> "SearchSpace":
        """The same space over other patients (the --patients option)."""
        if not any(s.per_patient for s in self.stages):
            raise EcgtuneError(f"{self.path}: --patients given, but no stage of space {self.name!r} is per patient")
        return dataclasses.replace(self, patients=tuple(str(p) for p in patients))

    def with_models(self, names: list[str]) -> "SearchSpace":
        """The same space over some of its models (the --models option)."""
        known = {m.name: m for m in self.models}
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise EcgtuneError(
                f"--models: {unknown or names} not among the models of space {self.name!r}: {', '.join(known)}"
            )
        return dataclasses.replace(self, models=tuple(known[n] for n in names))

    @property
    def samples_configurations(self) -> bool:
        """Whether a stage samples its configurations (random or Optuna) rather than running a grid."""
        return any(s.search.algorithm != "grid" for s in self.stages)

    def with_budget(self, *, epochs: int | None = None, num_samples: int | None = None) -> "SearchSpace":
        """The same space with every stage capped at ``epochs`` and every sampled (random, Optuna) stage
        trying ``num_samples`` configurations (the --epochs / --num-samples options: a smaller budget on a
        small machine). A grid is kept whole and run once: repeats of it would be identical copies."""
        for flag, value in (("--epochs", epochs), ("--num-samples", num_samples)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise EcgtuneError(f"{flag}: expected a positive integer, got {value!r}")
        if num_samples is not None and not self.samples_configurations:
            raise EcgtuneError(f"--num-samples: every stage of {self.name} is a grid, which runs each combination "
                               f"once (more samples would repeat it with the same seed); leave --num-samples out")
        stages = []
        for s in self.stages:
            params = dict(s.params, epochs=min(max_epochs(s.params), epochs)) if epochs is not None else s.params
            sampled = num_samples is not None and s.search.algorithm != "grid"
            search = dataclasses.replace(s.search, num_samples=num_samples) if sampled else s.search
            if epochs is not None:
                search = dataclasses.replace(search, grace_period=min(search.grace_period, epochs))
            stages.append(dataclasses.replace(s, params=params, search=search))
        return dataclasses.replace(self, stages=tuple(stages))

    def with_split(self, split: str) -> "SearchSpace":
        """The same space under another split protocol (the --split option), with that protocol's defaults on
        this dataset (the space's options were for its own protocol)."""
        from ecgtune.data import protocol_options

        protocol_options(self.dataset, self.preprocessing, split, where=f"--split on {self.path}")
        return dataclasses.replace(self, split=split, split_options={})

    def resolved_split_options(self) -> dict:
        """The options the split protocol runs with: the dataset's defaults for it, then the space's."""
        from ecgtune.data import protocol_options

        return protocol_options(self.dataset, self.preprocessing, self.split, self.split_options, where=str(self.path))

    def shrunk(self, patients_given: bool) -> "SearchSpace":
        """The --smoke-test version: few epochs, few patients, capped examples, the grid kept."""
        smoke = self.smoke
        stages = []
        for s in self.stages:
            params = dict(s.params, **smoke.params)
            params["epochs"] = min(max_epochs(params), smoke.epochs)
            search = dataclasses.replace(
                s.search, num_samples=min(s.search.num_samples, smoke.num_samples), grace_period=1
            )
            stages.append(dataclasses.replace(s, params=params, search=search))
        patients = self.patients if patients_given else self.patients[: smoke.patients]
        caps = {"max_per_record": smoke.max_per_record, "max_records": smoke.max_records}
        preprocessing = dict(self.preprocessing, **{k: v for k, v in caps.items() if v is not None}, **smoke.preprocessing)
        models = tuple(dataclasses.replace(m, hparams={**m.hparams, **smoke.model, **smoke.models.get(m.name, {})})
                       for m in self.models)
        if any(s.per_patient for s in stages) and "records" in preprocessing:
            # Pre-training sees the train portions of the study's patients only, so keep it small too.
            preprocessing["records"] = list(patients)
        return dataclasses.replace(
            self, stages=tuple(stages), patients=patients, preprocessing=preprocessing, models=models, smoke_test=True
        )


def max_epochs(params: dict) -> int:
    epochs = params.get("epochs", TRAIN_DEFAULTS["epochs"])
    if isinstance(epochs, Domain):
        return int(epochs.high if epochs.kind == "int" else max(epochs.values))
    return int(epochs)


def _parse_search(raw: Any, where: str, section: str, base: SearchSpec) -> SearchSpec:
    if raw is None:
        return base
    allowed = {f.name for f in dataclasses.fields(SearchSpec)}
    _check_keys(raw, where, section, allowed)
    spec = dataclasses.replace(base, **raw)
    if spec.algorithm not in ALGORITHMS:
        raise _fail(where, f"{section}.algorithm", f"one of {list(ALGORITHMS)}", spec.algorithm)
    if spec.scheduler not in SCHEDULERS:
        raise _fail(where, f"{section}.scheduler", f"one of {list(SCHEDULERS)}", spec.scheduler)
    for key in ("num_samples", "grace_period", "reduction_factor", "n_startup_trials", "max_concurrent"):
        value = getattr(spec, key)
        if value is None and key in ("n_startup_trials", "max_concurrent"):
            continue  # derived from num_samples and the algorithm
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _fail(where, f"{section}.{key}", "a positive integer", value)
    if spec.algorithm == "grid" and spec.num_samples != 1:
        # Tune would run every combination num_samples times with the same seed: identical copies.
        raise _fail(where, f"{section}.num_samples", "1 for a grid (it runs each combination once; use algorithm "
                    "random or optuna to sample configurations)", spec.num_samples)
    return spec


def _parse_stage(raw: Any, where: str, index: int, base_search: SearchSpec) -> StageSpec:
    section = f"stages[{index}]"
    _check_keys(raw, where, section, {"stage", "params", "per_patient", "search"}, {"stage"})
    stage = raw["stage"]
    if stage not in STAGES:
        raise _fail(where, f"{section}.stage", f"one of {list(STAGES)}", stage)
    params_raw = raw.get("params") or {}
    _check_keys(params_raw, where, f"{section}.params", set(TRAIN_DEFAULTS))
    params = {k: parse_value(v, where, f"{section}.params.{k}") for k, v in params_raw.items()}
    _check_training_values(params, where, f"{section}.params")
    per_patient = raw.get("per_patient", stage != "pretrain")
    if not isinstance(per_patient, bool):
        raise _fail(where, f"{section}.per_patient", "true or false", per_patient)
    if stage == "pretrain" and per_patient:
        raise _fail(where, f"{section}.per_patient", "false for stage pretrain (it uses all patients)", True)
    search = _parse_search(raw.get("search"), where, f"{section}.search", base_search)
    domains = {k: v for k, v in params.items() if isinstance(v, Domain)}
    if search.algorithm == "optuna":
        grids = [k for k, d in domains.items() if d.kind == "grid"]
        if grids:
            raise _fail(
                where,
                f"{section}.params.{grids[0]}",
                "{type: categorical, choices: [...]} (Optuna cannot take a grid); or search.algorithm: grid",
                params_raw[grids[0]],
            )
    if search.algorithm == "grid" and any(d.kind != "grid" for d in domains.values()):
        name = next(k for k, d in domains.items() if d.kind != "grid")
        raise _fail(where, f"{section}.params.{name}", "{grid: [...]} or a fixed value with algorithm grid", params_raw[name])
    return StageSpec(stage=stage, params=params, per_patient=per_patient, search=search)


def domain_values(value) -> tuple:
    """Every value a parameter can take: a domain's choices or bounds, or the fixed value."""
    if isinstance(value, Domain):
        return value.values if value.kind in ("grid", "categorical") else (value.low, value.high)
    return (value,)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What each plain training parameter accepts: refused when the space is read, not inside every trial.
_VALUE_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "lr": ("a positive number (the learning rate, e.g. 1.0e-3)", lambda v: _number(v) and v > 0),
    "weight_decay": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "momentum": ("a number from 0 to 1", lambda v: _number(v) and 0 <= v < 1),
    "batch_size": ("a whole number >= 1", lambda v: _whole(v) and v >= 1),
    "epochs": ("a whole number >= 1", lambda v: _whole(v) and v >= 1),
    "lr_plateau_factor": ("a number between 0 and 1", lambda v: _number(v) and 0 < v < 1),
    "lr_plateau_patience": ("a whole number >= 0", lambda v: _whole(v) and v >= 0),
    "early_stopping_patience": ("a whole number >= 0 (0: train every epoch)", lambda v: _whole(v) and v >= 0),
    "freeze_blocks": ("a whole number >= 0", lambda v: _whole(v) and v >= 0),
    "seed": ("a whole number >= 0", lambda v: _whole(v) and v >= 0),
    **{key: ("true or false", lambda v: isinstance(v, bool)) for key in ("weighted_sampling", "freeze_features", "smote")},
}


def _check_training_values(params: dict, where: str, section: str) -> None:
    """The values of every training parameter, each value of a grid or domain included."""
    for key, (expected, ok) in _VALUE_RULES.items():
        if key in params:
            bad = [v for v in domain_values(params[key]) if not ok(v)]
            if bad:
                raise _fail(where, f"{section}.{key}", expected, bad[0])
    for key, allowed in (("optimizer", OPTIMIZERS), ("lr_scheduler", LR_SCHEDULERS), ("precision", PRECISIONS)):
        bad = [v for v in domain_values(params.get(key, allowed[0])) if v not in allowed]
        if bad:
            raise _fail(where, f"{section}.{key}", f"one of {list(allowed)}", bad[0])
    for value in domain_values(params.get("class_weights", "none")):
        ok = value in ("none", "balanced") or (
            isinstance(value, list) and value
            and all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in value))
        if not ok:
            raise _fail(where, f"{section}.class_weights", "none, balanced, or a list of positive weights (one per class)", value)
    for value in domain_values(params.get("augment", 0.0)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise _fail(where, f"{section}.augment", "a probability between 0 and 1", value)
    for value in domain_values(params.get("augmentations", list(AUGMENTATIONS))):
        if not isinstance(value, list) or not set(value) <= set(AUGMENTATIONS):
            raise _fail(where, f"{section}.augmentations", f"a list of some of {list(AUGMENTATIONS)}", value)
    for value in domain_values(params.get("focal_gamma", 0.0)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 10:
            raise _fail(where, f"{section}.focal_gamma", "a number from 0 (plain loss) to 10", value)


TOP_KEYS = {
    "description", "task", "dataset", "model", "models", "metric", "mode", "resources", "patients", "search",
    "stages", "smoke_test", "transfer",
}
_NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")  # task names go into registered model names


def parse_space(raw: Any, path: Path) -> SearchSpace:
    """Validate a loaded YAML document; every error names ``path`` and the key."""
    where = str(path)
    if len(path.stem) > MAX_NAME:  # the name goes into folder, state file and MLflow run names
        raise EcgtuneError(f"{where}: the file name makes the search's name; expected at most {MAX_NAME} characters "
                           f"before .yaml, got {len(path.stem)}")
    _check_keys(raw, where, "(top level)", TOP_KEYS, {"description", "task", "dataset", "metric", "mode", "stages"})
    if not isinstance(raw["description"], str) or not raw["description"].strip():
        raise _fail(where, "description", "a one-line description", raw["description"])
    if not isinstance(raw["task"], str) or not _NAME_PATTERN.match(raw["task"]):
        raise _fail(where, "task", "a short name of lower-case letters, digits and _ (e.g. aami_beats)", raw["task"])

    dataset = raw["dataset"]
    _check_keys(dataset, where, "dataset", {"name", "split", "preprocessing", "path"}, {"name"})
    from ecgtune.data import dataset_class, list_datasets, list_splits, protocol_options

    if dataset["name"] not in list_datasets():
        raise _fail(where, "dataset.name", f"one of {list_datasets()}", dataset["name"])
    own_keys = getattr(dataset_class(dataset["name"]), "space_keys", ())
    dataset_args = {k: dataset[k] for k in own_keys if k in dataset}
    foreign = sorted(set(dataset) - {"name", "split", "preprocessing"} - set(own_keys))
    if foreign:
        raise _fail(where, f"dataset.{foreign[0]}", f"no such key for dataset {dataset['name']!r} (only wfdb takes a "
                    "path)", dataset[foreign[0]])
    for key in own_keys:
        if key not in dataset_args:
            raise _fail(where, f"dataset.{key}", f"the {key} of the {dataset['name']} dataset", None)
        if not isinstance(dataset_args[key], str) or not dataset_args[key].strip():
            raise _fail(where, f"dataset.{key}", "a folder path", dataset_args[key])
    split_raw = dataset.get("split", "per_patient")
    split_options = {}
    if isinstance(split_raw, dict):
        _check_keys(split_raw, where, "dataset.split", set(split_raw), {"protocol"})
        split_options = {k: v for k, v in split_raw.items() if k != "protocol"}
        split_raw = split_raw["protocol"]
    split = split_raw
    if split not in list_splits():
        raise _fail(where, "dataset.split", f"one of {list_splits()}", split)
    preprocessing = dataset.get("preprocessing") or {}
    _check_keys(preprocessing, where, "dataset.preprocessing", set(preprocessing))
    protocol_options(dataset["name"], preprocessing, split, split_options, where=f"{where}: key 'dataset.split'")

    models = _parse_models(raw, where)

    if raw["mode"] not in ("max", "min"):
        raise _fail(where, "mode", "max or min", raw["mode"])
    if not isinstance(raw["metric"], str) or not raw["metric"].startswith(VALIDATION_PREFIX):
        raise _fail(where, "metric", "a validation metric such as val_balanced_accuracy (selection is on validation)", raw["metric"])

    resources = raw.get("resources") or {}
    _check_keys(resources, where, "resources", {"cpu", "gpu", "when"})
    cpu, gpu = resources.get("cpu", 1), resources.get("gpu", 0)
    _check_amounts({"cpu": cpu, "gpu": gpu}, where, "resources")
    resources_when = _parse_resources_when(resources.get("when") or {}, where, models)

    patients = raw.get("patients", [])
    if not isinstance(patients, list):
        raise _fail(where, "patients", "a list of record names", patients)

    base_search = _parse_search(raw.get("search"), where, "search", SearchSpec())
    stages_raw = raw["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise _fail(where, "stages", "a non-empty list of {stage, params, ...}", stages_raw)
    stages = tuple(_parse_stage(s, where, i, base_search) for i, s in enumerate(stages_raw))
    names = [s.stage for s in stages]
    if len(set(names)) != len(names):
        raise _fail(where, "stages", "each stage at most once", names)
    if any(s.per_patient for s in stages) and not patients:
        raise _fail(where, "patients", "a non-empty list (a stage is per patient)", patients)

    transfer = _parse_transfer(raw.get("transfer"), where, stages, models)

    smoke_raw = raw.get("smoke_test") or {}
    _check_keys(smoke_raw, where, "smoke_test", {f.name for f in dataclasses.fields(SmokeSpec)})
    smoke = SmokeSpec(**smoke_raw)
    for key in ("model", "models", "preprocessing", "params"):
        if not isinstance(getattr(smoke, key), dict):
            raise _fail(where, f"smoke_test.{key}", f"a mapping of {key} parameters", getattr(smoke, key))
    for key in ("epochs", "patients", "num_samples", "max_per_record", "max_records"):
        value = getattr(smoke, key)
        if not (value is None and key.startswith("max_")) and not (_whole(value) and value >= 1):
            raise _fail(where, f"smoke_test.{key}", "a whole number >= 1" + (" or null" if key.startswith("max_") else ""),
                        value)
    for name, hparams in smoke.models.items():
        if name not in {m.name for m in models}:
            raise _fail(where, f"smoke_test.models.{name}", f"one of the space's models {[m.name for m in models]}", name)
        if not isinstance(hparams, dict):
            raise _fail(where, f"smoke_test.models.{name}", "a mapping of model hyperparameters", hparams)
    if smoke.params:
        _check_keys(smoke.params, where, "smoke_test.params", set(TRAIN_DEFAULTS))
        smoke_params = {k: parse_value(v, where, f"smoke_test.params.{k}") for k, v in smoke.params.items()}
        _check_training_values(smoke_params, where, "smoke_test.params")
        smoke = dataclasses.replace(smoke, params=smoke_params)

    return SearchSpace(
        name=path.stem,
        path=path,
        description=raw["description"].strip(),
        task=raw["task"],
        dataset=dataset["name"],
        preprocessing=dict(preprocessing),
        split=split,
        models=models,
        metric=raw["metric"],
        mode=raw["mode"],
        cpu=float(cpu),
        gpu=float(gpu),
        resources_when=resources_when,
        dataset_args=dataset_args,
        split_options=split_options,
        patients=tuple(str(p) for p in patients),
        stages=stages,
        smoke=smoke,
        transfer=transfer,
    )


def _check_amounts(amounts: dict, where: str, section: str) -> None:
    for key, value in amounts.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise _fail(where, f"{section}.{key}", "a number >= 0 (fractions share a GPU)", value)


def _parse_resources_when(raw: Any, where: str, models: tuple[ModelSpec, ...]) -> dict:
    """``when: {<model hyperparameter>: {<value>: {cpu, gpu}}}``: what a trial asks for when its model has
    that value (a searched size, say: one XL trial per GPU, four XS)."""
    _check_keys(raw, where, "resources.when", set(raw) if isinstance(raw, dict) else set())
    known = {k for m in models for k in m.hparams}
    for hparam, table in raw.items():
        if hparam not in known:
            raise _fail(where, f"resources.when.{hparam}", f"a hyperparameter of the space's models {sorted(known)}", hparam)
        _check_keys(table, where, f"resources.when.{hparam}", set(table) if isinstance(table, dict) else set())
        for value, amounts in table.items():
            _check_keys(amounts, where, f"resources.when.{hparam}.{value}", {"cpu", "gpu"})
            _check_amounts(amounts, where, f"resources.when.{hparam}.{value}")
    return {h: {str(v): dict(a) for v, a in t.items()} for h, t in raw.items()}


def _parse_models(raw: dict, where: str) -> tuple[ModelSpec, ...]:
    """``model: {name, hparams...}`` or ``models: [{name, ...}, ...]`` (a fan-out: a unit per model)."""
    from ecgtune.models._registry import list_models

    if ("model" in raw) == ("models" in raw):
        raise _fail(where, "model", "exactly one of model (a mapping) or models (a list of mappings)", sorted(set(raw) & {"model", "models"}))
    entries = [("model", raw["model"])] if "model" in raw else None
    if entries is None:
        if not isinstance(raw["models"], list) or not raw["models"]:
            raise _fail(where, "models", "a non-empty list of {name, hyperparameters...}", raw["models"])
        entries = [(f"models[{i}]", m) for i, m in enumerate(raw["models"])]
    _import_model_families()
    specs = []
    for section, model in entries:
        _check_keys(model, where, section, set(model) if isinstance(model, dict) else set(), {"name"})
        if model["name"] not in list_models():
            raise _fail(where, f"{section}.name", f"one of {list_models()}", model["name"])
        # A hyperparameter may be searched like a training parameter (a size, say).
        specs.append(ModelSpec(model["name"], {k: parse_value(v, where, f"{section}.{k}") for k, v in model.items()
                                               if k != "name"}))
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise _fail(where, "models", "each model name at most once", names)
    return tuple(specs)


def _parse_transfer(raw: Any, where: str, stages: tuple[StageSpec, ...], models: tuple[ModelSpec, ...]) -> TransferSpec | None:
    if raw is None:
        return None
    from ecgtune.data import list_splits

    allowed = {f.name for f in dataclasses.fields(TransferSpec)}
    _check_keys(raw, where, "transfer", allowed, {"task", "dataset", "split"})
    spec = TransferSpec(**raw)
    if not isinstance(spec.task, str) or not _NAME_PATTERN.match(spec.task):
        raise _fail(where, "transfer.task", "the task name of the source space (e.g. aami_beats)", spec.task)
    from ecgtune.data import list_datasets

    if spec.dataset not in list_datasets():
        raise _fail(where, "transfer.dataset", f"one of {list_datasets()}", spec.dataset)
    if spec.split not in list_splits():
        raise _fail(where, "transfer.split", f"one of {list_splits()}", spec.split)
    if spec.stage not in STAGES:
        raise _fail(where, "transfer.stage", f"one of {list(STAGES)}", spec.stage)
    if not isinstance(spec.replace_head, bool):
        raise _fail(where, "transfer.replace_head", "true or false", spec.replace_head)
    if not any(s.stage == "finetune" for s in stages):
        raise _fail(where, "transfer", "a space with a finetune stage (transfer says where it starts)", raw)
    if spec.branches is not None:
        _check_branches(spec, where, models)
    return spec


def _check_branches(spec: TransferSpec, where: str, models: tuple[ModelSpec, ...]) -> None:
    """Each branch an input name the model takes, each source a registered model that takes that input."""
    from ecgtune.models._registry import list_models, model_inputs

    _import_model_families()
    if not isinstance(spec.branches, dict) or not spec.branches:
        raise _fail(where, "transfer.branches", "a mapping of input name -> model name (e.g. {signal: gru1d})", spec.branches)
    if spec.replace_head:
        raise _fail(where, "transfer.replace_head", "false with branches (each branch keeps its whole network)", True)
    for branch, model in spec.branches.items():
        if model not in list_models():
            raise _fail(where, f"transfer.branches.{branch}", f"one of {list_models()}", model)
        if model_inputs(model) != (branch,):
            raise _fail(where, f"transfer.branches.{branch}", f"a model taking the one input {branch!r}", model)
    for index, model in enumerate(models):  # each model a fusion of exactly these branches
        if set(model_inputs(model.name)) != set(spec.branches):
            raise _fail(where, f"models[{index}].name", f"a fusion model taking the branches' inputs {sorted(spec.branches)}",
                        model.name)


def _import_model_families() -> None:
    import ecgtune.models  # noqa: F401  (registers the families; imports torch)


def spaces_dir() -> Path:
    """ECGTUNE_SPACES_DIR, else the search_spaces/ folder of a source checkout (beside the package: the
    files a developer edits), else the copy installed with the package (a wheel, `pip install git+...`)."""
    env = os.environ.get("ECGTUNE_SPACES_DIR")
    if env:
        found = Path(env).resolve()
        if not found.is_dir():
            raise EcgtuneError(f"ECGTUNE_SPACES_DIR={env}: no such folder (it names the folder of the search-space "
                               f"YAML files; leave it unset for the spaces shipped with ecgtune)")
        return found
    checkout = Path(__file__).resolve().parent.parent / "search_spaces"
    if (checkout / "__init__.py").is_file():
        return checkout
    from importlib.resources import files

    return Path(os.fspath(files("ecgtune.search_spaces")))


def list_spaces() -> dict[str, str]:
    """Space name -> its one-line description."""
    out = {}
    for path in sorted(spaces_dir().glob("*.yaml")):
        try:
            raw = _read_yaml(path) or {}
        except EcgtuneError as exc:  # one broken file must not hide the others: it is listed as broken
            out[path.stem] = f"(cannot be used: {str(exc)[:200]})"
            continue
        out[path.stem] = " ".join(str(raw.get("description", "")).split())[:300] if isinstance(raw, dict) else ""
    return out


def resolve_space_path(name_or_path: str) -> Path:
    """A name in search_spaces/ or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        raise EcgtuneError(f"--space {name_or_path}: a folder, not a search-space file (a .yaml file or a name "
                           f"of `ecgtune spaces`)")
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate.resolve()
    if candidate.suffix or os.sep in name_or_path:  # a path, not a name: say which file is missing
        expected = "" if candidate.suffix in (".yaml", ".yml") else " (a search-space file ends in .yaml)"
        raise EcgtuneError(f"--space {name_or_path}: no such search-space file{expected}; known spaces: "
                           f"{', '.join(list_spaces())}")
    named = spaces_dir() / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    raise EcgtuneError(
        f"unknown search space {name_or_path!r}: no file {named}; known spaces: {', '.join(list_spaces())}"
    )


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        with open(path) as f:
            text = f.read(MAX_SPACE_BYTES + 1)
    except OSError as exc:
        raise EcgtuneError(f"{path}: cannot read the search-space file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise EcgtuneError(f"{path}: not a text file (byte {exc.start} is not UTF-8); a search-space file is "
                           "YAML text") from None
    if len(text) > MAX_SPACE_BYTES:
        raise EcgtuneError(f"{path}: larger than {MAX_SPACE_BYTES // 1000} kB; a search-space file is a page of YAML")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EcgtuneError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:MAX_MESSAGE]}") from None
    if _expanded_size(raw) > MAX_SPACE_BYTES * 4:
        # YAML aliases can expand a small file into a huge document (the "billion laughs"): refused whole.
        raise EcgtuneError(f"{path}: its YAML aliases expand to a document far larger than the file; write the "
                           "values out instead of aliasing them")
    return raw


MAX_SPACE_BYTES = 200_000
MAX_NAME = 100  # characters of a space's name (its file name without .yaml)
MAX_MESSAGE = 500  # characters of a quoted parser message or value in an error line


def _expanded_size(value, budget: int = MAX_SPACE_BYTES * 4 + 1) -> int:
    """Roughly the characters ``value`` would take written out (stops counting past ``budget``); aliases
    count every time they are used, which is what an alias bomb multiplies."""
    size, stack = 0, [value]
    while stack and size < budget:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        else:
            size += len(str(item)) + 1
    return size


def load_space(name_or_path: str) -> SearchSpace:
    """Read, parse and validate a search-space file."""
    path = resolve_space_path(name_or_path)
    raw = _read_yaml(path)
    if isinstance(raw, dict) and "suite" in raw:
        raise EcgtuneError(f"{path}: a suite of spaces, not a space; run it with `ecgtune search --space {path.stem}`")
    return parse_space(raw, path)


def load_search(names: list[str]) -> tuple[list[SearchSpace], str | None]:
    """The spaces of one search: each name a space, or a suite (a file listing spaces, such as
    all_pairs.yaml). Returns the spaces and, when a single suite was named, its name (the search's name).

    A suite file::

        description: one line
        suite: [finetune_patients, heartbeat_aami, mi_scratch, mi_transfer]
    """
    spaces: list[SearchSpace] = []
    suite = None
    for name in names:
        path = resolve_space_path(name)
        raw = _read_yaml(path)
        if isinstance(raw, dict) and "suite" in raw:
            _check_keys(raw, str(path), "(top level)", {"description", "suite"}, {"description", "suite"})
            members = raw["suite"]
            if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
                raise _fail(str(path), "suite", "a non-empty list of space names", members)
            suite = path.stem if len(names) == 1 else None
            spaces += [load_space(m) for m in members]
        else:
            spaces.append(parse_space(raw, path))
    return spaces, suite


def to_param_space(space: SearchSpace, stage: StageSpec) -> dict:
    """The Tuner's param_space: fixed training defaults, the stage's values and the searched domains."""
    train = dict(TRAIN_DEFAULTS)
    for key, value in stage.params.items():
        train[key] = value.to_tune() if isinstance(value, Domain) else value
    return {"train": train}


def shape_search(spaces: list[SearchSpace], *, patients: list[str] | None = None, split: str | None = None,
                 models: list[str] | None = None, epochs: int | None = None, num_samples: int | None = None,
                 smoke_test: bool = False) -> list[SearchSpace]:
    """The command line's options applied to every space of a search.

    ``patients`` go to the spaces with a per-patient stage; ``models`` keep, in each space, the listed
    models it has (a space with none of them leaves the search).
    """
    if patients is not None:
        if len(set(patients)) != len(patients):
            raise EcgtuneError(f"--patients: each record at most once, got {','.join(patients)}")
        per_patient = [any(st.per_patient for st in s.stages) for s in spaces]
        if not any(per_patient):
            return [spaces[0].with_patients(patients)]  # raises: no stage is per patient
        spaces = [s.with_patients(patients) if pp else s for s, pp in zip(spaces, per_patient)]
    if split:
        spaces = [s.with_split(split) for s in spaces]
    if models is not None:
        if len(spaces) == 1:
            spaces = [spaces[0].with_models(models)]
        else:
            known = {m.name for s in spaces for m in s.models}
            unknown = [m for m in models if m not in known]
            if unknown:
                raise EcgtuneError(f"--models: {unknown} not among the models of these spaces: {', '.join(sorted(known))}")
            spaces = [s.with_models([m for m in models if m in {x.name for x in s.models}])
                      for s in spaces if any(x.name in models for x in s.models)]
    if epochs is not None or num_samples is not None:
        if num_samples is not None and len(spaces) > 1 and any(s.samples_configurations for s in spaces):
            # Several spaces: the samples go to the sampled ones; the grids run once, as written.
            spaces = [s.with_budget(epochs=epochs, num_samples=num_samples if s.samples_configurations else None)
                      for s in spaces]
        else:
            spaces = [s.with_budget(epochs=epochs, num_samples=num_samples) for s in spaces]
    if smoke_test:
        spaces = [s.shrunk(patients_given=patients is not None) for s in spaces]
    return spaces
