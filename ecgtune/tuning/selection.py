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


def select_best(grid, metric: str, mode: str):
    """The trial whose best validation epoch is best (its latest checkpoint is that epoch)."""
    if grid.num_errors == len(grid):
        raise EcgtuneError(f"every trial of {grid.experiment_path} failed; the first error: {grid.errors[0]}")
    if grid.num_terminated + grid.num_errors < len(grid):
        raise EcgtuneError(
            f"the search in {grid.experiment_path} was interrupted before every trial finished; "
            "continue it with --resume"
        )
    best = grid.get_best_result(metric=metric, mode=mode, scope="all", filter_nan_and_inf=True)
    if best.checkpoint is None:
        raise EcgtuneError(f"the best trial in {best.path} left no checkpoint")
    return best


@dataclass(frozen=True)
class Evaluation:
    """The selected model's one evaluation on test."""

    metrics: dict  # test_* figures, per class included
    confusion: np.ndarray  # (classes, classes): rows true class, columns predicted
    label_names: tuple
    model: object  # the rebuilt model, on the CPU, in eval mode
    state: dict  # its checkpoint (best epoch, validation value, model spec)


def evaluate_test(checkpoint, examples, split_labels, patient: str | None) -> Evaluation:
    """Rebuild the selected model and score it on the test split, once."""
    from sklearn.metrics import confusion_matrix

    with checkpoint.as_directory() as d:
        model, state = model_from_checkpoint_dir(d)
    test = TensorSplit.of(examples, select(examples, split_labels, "test", patient), torch.device("cpu"))
    if len(test) == 0:
        raise EcgtuneError(f"no test examples for {'patient ' + patient if patient else 'this dataset'}")
    logits = predict(model, test)
    metrics = classification_metrics(logits, test.y_numpy, "test", test.label_names)
    confusion = confusion_matrix(test.y_numpy, predictions(logits), labels=np.arange(len(test.label_names)))
    return Evaluation(metrics, confusion, test.label_names, model, state)
