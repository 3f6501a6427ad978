"""Selection on validation, then the one evaluation on test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.training.batches import TensorSplit, select
from ecgtune.training.checkpoint import model_from_checkpoint_dir
from ecgtune.training.loop import predict
from ecgtune.training.metrics import classification_metrics, predictions


@dataclass(frozen=True)
class TrialOutcome:
    """What selection needs of a finished trial: its best validation value and the checkpoint of that epoch
    (trials checkpoint only when validation improves, so the latest checkpoint is the best one)."""

    trial_id: str
    value: float  # NaN when the trial failed or never produced a finite value
    checkpoint: object  # a ray.tune.Checkpoint, or None
    config: dict
    error: str | None = None


def select_best(outcomes: list[TrialOutcome], mode: str, unit: str) -> TrialOutcome:
    """The trial whose best validation epoch is best; ties go to the earliest trial, so a resumed search
    selects the same trial again."""
    candidates = [o for o in outcomes if o.error is None and o.checkpoint is not None and np.isfinite(o.value)]
    if not candidates:
        failed = [o for o in outcomes if o.error]
        first = f"; the first error: {failed[0].error}" if failed else ""
        raise EcgtuneError(f"no trial of {unit} produced a model to select ({len(failed)} of {len(outcomes)} failed{first})")
    sign = 1.0 if mode == "max" else -1.0
    return max(candidates, key=lambda o: sign * o.value)  # max keeps the first of equal values


@dataclass(frozen=True)
class Evaluation:
    """The selected model and its one evaluation on test (none for a split protocol without a test part)."""

    model: object  # the rebuilt model, on the CPU, in eval mode
    state: dict  # its checkpoint (best epoch, validation value, model spec)
    metrics: dict  # test_* figures, per class included; empty without a test part
    confusion: np.ndarray | None  # (classes, classes): rows true class, columns predicted
    label_names: tuple


def evaluate_test(checkpoint, examples, split_labels, patient: str | None, with_test: bool = True) -> Evaluation:
    """Rebuild the selected model and score it on the test split, once."""
    from sklearn.metrics import confusion_matrix

    with checkpoint.as_directory() as d:
        model, state = model_from_checkpoint_dir(d)
    if not with_test:
        return Evaluation(model, state, {}, None, examples.label_names)
    test = TensorSplit.of(examples, select(examples, split_labels, "test", patient), torch.device("cpu"))
    if len(test) == 0:
        raise EcgtuneError(f"no test examples for {'patient ' + patient if patient else 'this dataset'}")
    logits = predict(model, test)
    metrics = classification_metrics(logits, test.y_numpy, "test", test.label_names, test.scores)
    confusion = confusion_matrix(test.y_numpy, predictions(logits), labels=np.arange(len(test.label_names)))
    return Evaluation(model, state, metrics, confusion, test.label_names)
