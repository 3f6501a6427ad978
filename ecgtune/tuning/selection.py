"""Selection on validation, then the one evaluation on test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.spaces import measure_of
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
    metrics: dict  # test_* figures, per class included, and test_<measure>_ci_low/high; empty without a test part
    # (classes, classes): rows true class, columns predicted; multi-label: (labels, 4) TP, FN, FP, TN
    confusion: np.ndarray | None
    label_names: tuple
    predictions: dict | None = None  # the test logits, targets and records (kept with the run, for re-scoring)


# Smoke runs check that intervals are drawn and logged, not what they are: a few draws keep CI short
# (a thousand draws over a few thousand beats take about 20 s per unit).
SMOKE_RESAMPLES = 50


def interval_measures(measure: str, label_names) -> tuple[str, ...]:
    """The test measures a selected model gets bootstrap intervals for: the selection measure, macro F1 and
    AUROC, each class's AUROC, and the pooled sensitivity and specificity (multi-label: seed 000's
    headline), where the task reports them. Every draw computes every measure anyway, so the intervals of
    the others cost nothing more."""
    return tuple(dict.fromkeys((measure, "f1_macro", "auroc_macro", "auroc", *(f"auroc_{n}" for n in label_names),
                                "sensitivity_pooled", "specificity_pooled")))


def evaluate_in_search(space, checkpoint, data, patient: str | None, with_test: bool = True) -> Evaluation:
    """evaluate_test as a search scores a unit's model on ``data`` (PreparedData): intervals of the
    space's selection measure and of interval_measures, from fewer draws in smoke runs."""
    measure = measure_of(space.metric)
    return evaluate_test(checkpoint, data.examples, data.split_labels, patient, with_test,
                         intervals_for=interval_measures(measure, data.examples.label_names),
                         resamples=SMOKE_RESAMPLES if space.smoke_test else None)


def evaluate_test(checkpoint, examples, split_labels, patient: str | None, with_test: bool = True,
                  intervals_for: tuple[str, ...] = (), resamples: int | None = None) -> Evaluation:
    """Rebuild the selected model and score it on the test split, once; bootstrap 95 % intervals (over test
    records) for the measures ``intervals_for`` (names without the test_ prefix), from ``resamples``
    draws (default: as many as the test set's size gets, ecgtune.training.bootstrap)."""
    from sklearn.metrics import confusion_matrix

    from ecgtune.training.bootstrap import record_bootstrap

    with checkpoint.as_directory() as d:
        model, state = model_from_checkpoint_dir(d)
    if not with_test:
        return Evaluation(model, state, {}, None, examples.label_names)
    indices = select(examples, split_labels, "test", patient)
    test = TensorSplit.of(examples.with_inputs(list(state["model_spec"]["inputs"])), indices, torch.device("cpu"))
    if len(test) == 0:
        raise EcgtuneError(f"no test examples for {'patient ' + patient if patient else 'this dataset'}")
    logits = predict(model, test)
    # Multi-label: the thresholds chosen on validation, never re-chosen on test.
    thresholds = None if state.get("thresholds") is None else np.asarray(state["thresholds"])
    if test.y_numpy.ndim == 2 and thresholds is None:
        raise EcgtuneError("a multi-label checkpoint without the thresholds chosen on validation (state 'thresholds')")

    def score(rows: np.ndarray) -> dict[str, float]:
        return classification_metrics(logits[rows], test.y_numpy[rows], "test", test.label_names, test.scores,
                                      thresholds=thresholds)

    metrics = score(np.arange(len(test)))
    wanted = [f"test_{m}" for m in intervals_for if f"test_{m}" in metrics]

    def wanted_scores(rows: np.ndarray) -> dict[str, float]:
        figures = score(rows)  # once per draw: every measure comes from the same scoring
        return {k: figures[k] for k in wanted}

    if wanted:
        spread = record_bootstrap(wanted_scores, examples.records[indices], resamples=resamples)
        for name, (low, high) in spread.items():
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
    if thresholds is not None:  # per label TP/FN/FP/TN
        from ecgtune.training.multilabel import label_counts, sigmoid

        confusion = label_counts(sigmoid(logits), test.y_numpy, thresholds)
    else:
        confusion = confusion_matrix(test.y_numpy, predictions(logits), labels=np.arange(len(test.label_names)))
    kept = {"logits": logits, "y": test.y_numpy, "records": np.asarray(examples.records[indices]).astype(str),
            "positions": np.asarray(examples.positions[indices])}
    return Evaluation(model, state, metrics, confusion, test.label_names, kept)
