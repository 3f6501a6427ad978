"""Checks of a space against its prepared examples, before Ray starts: models that cannot take them,
metrics they do not report, resampling and augmentations they cannot have. Each refusal names the space
file and the key."""

from __future__ import annotations

import numpy as np

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import SearchSpace
from ecgtune.tuning.prepared import PreparedData


def model_variants(hparams: dict) -> list[dict]:
    """Every combination of a model's searched choices (numeric ranges at both bounds): the models a
    search may build."""
    import itertools

    from ecgtune.spaces import domain_values

    options = {key: domain_values(value) for key, value in hparams.items()}
    return [dict(zip(options, combo)) for combo in itertools.product(*options.values())]

def metric_names(examples) -> set[str]:
    """The validation metrics a trial on these examples reports."""
    from ecgtune.models._registry import outputs_for
    from ecgtune.training.metrics import classification_metrics

    # The names depend on the task, not on the values: score one made-up example of every class (of every
    # label alone, for multi-label tasks). The first examples of a record are often one class only, and
    # sklearn warns at every search about a confusion matrix it cannot shape from one label.
    k = len(examples.label_names)
    y = np.eye(k, dtype=np.float32) if examples.multi_label else np.arange(k, dtype=np.int64)
    width = outputs_for(k, examples.multi_label)
    names = classification_metrics(np.zeros((k, width), np.float32), y, "val", examples.label_names, examples.scores)
    return set(names) | {"val_loss"}

def check_augmentable(space: SearchSpace, stage, examples) -> None:
    """The stage's augmentations applied once to two examples as each model takes them, as a trial would
    to every training batch: inputs made once at preparation (images, neighbouring beats) or several leads
    fail here, naming the key, instead of inside every trial after Ray started."""
    import torch

    from ecgtune.models._registry import model_inputs
    from ecgtune.spaces import domain_values
    from ecgtune.training.batches import example_batch
    from ecgtune.transforms.augment import augmentation

    for names in domain_values(stage.params.get("augmentations")) if "augmentations" in stage.params else [None]:
        for model in space.models:
            batch = {k: torch.from_numpy(v) for k, v in example_batch(examples.with_inputs(model_inputs(model.name))).items()}
            try:
                augmentation({"augment": 1.0, "augmentations": names}, examples.layout, torch.Generator().manual_seed(0))(batch)
            except EcgtuneError as exc:
                raise EcgtuneError(f"{space.path}: key 'stages.{stage.stage}.params.augment': {exc}") from None

def check_fit(space: SearchSpace, data: PreparedData) -> None:
    """Refuse, before anything starts, models that cannot take this dataset's examples and SMOTE on
    examples it cannot interpolate, naming the space file and the key."""
    from ecgtune.models._registry import model_inputs
    from ecgtune.models.transfer import freeze_blocks
    from ecgtune.spaces import domain_values
    from ecgtune.training.checkpoint import build_model, model_spec

    examples = data.examples
    frozen = max((v for s in space.stages for v in domain_values(s.params.get("freeze_blocks", 0))), default=0)
    for index, model in enumerate(space.models):
        for hparams in model_variants(model.hparams):
            config = {"model": {"name": model.name, "hparams": hparams}}
            key = f"models[{index}]" if len(space.models) > 1 else "model"
            try:
                built = build_model(model_spec(config, examples.with_inputs(model_inputs(model.name))))
                freeze_blocks(built, frozen)
            except (EcgtuneError, ValueError) as exc:
                raise EcgtuneError(f"{space.path}: key '{key}': {exc}") from None
            except TypeError as exc:  # an unknown hyperparameter, or one of the wrong type
                raise EcgtuneError(f"{space.path}: key '{key}': {model.name} does not take the hyperparameters "
                                   f"{hparams} ({exc})") from None
    known = metric_names(examples)
    if space.metric not in known:
        raise EcgtuneError(
            f"{space.path}: key 'metric': {space.metric!r} is not a validation metric of these examples; "
            f"known: {', '.join(sorted(known))}"
        )
    for stage in space.stages:
        for key in ("weighted_sampling", "smote"):
            value = stage.params.get(key, False)
            if examples.multi_label and True in domain_values(value):
                raise EcgtuneError(f"{space.path}: key 'stages.{stage.stage}.params.{key}': resamples by class, "
                                   "but these examples carry several labels each; leave it false")
        smote = stage.params.get("smote", False)
        if True in domain_values(smote) and len(examples.inputs) > 1:
            raise EcgtuneError(
                f"{space.path}: key 'stages.{stage.stage}.params.smote': SMOTE interpolates single signals; "
                f"these examples have inputs {list(examples.inputs)}; leave smote false"
            )
        if any(float(p or 0) > 0 for p in domain_values(stage.params.get("augment", 0.0))):
            check_augmentable(space, stage, examples)
