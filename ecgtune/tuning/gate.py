"""Scoring the registered champion on a challenger's validation set, for the champion gate
(ecgtune.tuning.promotion.promote).

Two versions of one registered name can come from different preparations (the quickstart's 8 records and
pre-training's 29 share a name): their own validation figures were measured on different examples and
say nothing about which model is better. The champion is scored on the challenger's validation examples
instead, where that is fair: never where it may have trained on them.
"""

from __future__ import annotations

from typing import Callable

import torch

from ecgtune.training.batches import TensorSplit, select
from ecgtune.training.checkpoint import build_model
from ecgtune.training.loop import run_epoch
from ecgtune.tuning.mlflow_retry import is_absent


def champion_scorer(mlf, *, dataset: str, split: str, data, patient: str | None, metric: str) -> Callable:
    """``score(version) -> (value, why_not)``: the champion ``version`` scored with ``metric`` on the validation
    examples of ``data`` (PreparedData of ``dataset`` under ``split``) of ``patient`` (None: all); value None
    and the reason where it cannot be scored fairly or at all."""
    from ecgtune.tuning.promotion import champion_checkpoint
    from ecgtune.data.splits import leak_free

    def score(version) -> tuple[float | None, str | None]:
        tags = version.tags
        if not leak_free(tags.get("dataset", dataset), tags.get("split", split), tags.get("data_key"), dataset, split, data.key):
            return None, (f"it was trained on {tags.get('dataset', dataset)} under split {tags.get('split', split)} "
                          f"prepared differently (data_key {tags.get('data_key')!r}), so it may have trained on this "
                          "search's validation examples and cannot be scored on them fairly")
        try:
            state = champion_checkpoint(mlf, version)
        except Exception as exc:
            if is_absent(exc) or isinstance(exc, FileNotFoundError):  # its run or checkpoint deleted since
                return None, f"its training checkpoint is gone ({type(exc).__name__}: {exc})"[:500]
            raise  # MLflow not answering (after retries) or a bug: the search fails, the alias stays
        spec = state["model_spec"]
        if list(spec.get("label_names", [])) != list(data.examples.label_names):
            return None, (f"it predicts the classes {list(spec.get('label_names', []))}, this search "
                          f"{list(data.examples.label_names)}")
        shapes = {name: list(shape) for name, shape in data.examples.input_shapes.items()}
        if any(shapes.get(name) != list(shape) for name, shape in spec["inputs"].items()):
            return None, f"it takes the inputs {spec['inputs']}, this search's examples are {shapes}"
        # From here on a failure is a bug, not a reason to keep the champion for good: it is raised.
        model = build_model(spec)
        model.load_state_dict(state["model_state"])
        rows = select(data.examples, data.split_labels, "val", patient)
        val = TensorSplit.of(data.examples.with_inputs(list(spec["inputs"])), rows, torch.device("cpu"))
        value = run_epoch(model.eval(), val, "val", batch_size=256)[metric]
        return float(value), None

    return score
