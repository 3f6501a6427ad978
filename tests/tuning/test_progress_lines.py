"""The lines a search prints while its trials train: at most one per unit every few seconds, with the
running trials' epochs and the unit's best validation value so far. Tune's trials are stood in for by
objects holding what the callback reads (a trial id, its config, its last result); the real search prints
them too (test_search_integration)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from ecgtune.tuning.progress import TrialLines

UNIT = "quickstart/pretrain-cnn1d_residual"


def _trial(trial_id: str, epochs: int = 6):
    return SimpleNamespace(trial_id=trial_id, config={"unit": UNIT, "train": {"epochs": epochs}}, last_result={})


def _progress(out: str) -> list[str]:
    """The progress lines, without their time into the search."""
    return [re.sub(r" \(\d+ s into the search\)$", "", line) for line in out.splitlines() if " running (" in line]


def test_a_unit_shows_its_running_trials_epochs_and_best_so_far_at_most_once_per_interval(capsys):
    lines = TrialLines({UNIT: 6}, {UNIT: "val_balanced_accuracy"}, {UNIT: "max"}, every_s=3600)
    a, b = _trial("a"), _trial("b")
    lines.on_trial_result(1, [a, b], a, {"epoch": 1, "best_metric": 0.61})
    lines.on_trial_result(2, [a, b], b, {"epoch": 1, "best_metric": 0.72})  # within the interval: held back
    assert _progress(capsys.readouterr().out) == [
        f"    {UNIT}: 1 trial running (epoch 1/6), 0/6 finished; best val_balanced_accuracy so far 0.6100"]

    lines.every_s = 0  # the interval has passed
    a.last_result = {"epoch": 2, "best_metric": 0.65}
    lines.on_trial_complete(3, [a, b], a)
    lines.on_trial_result(4, [a, b], b, {"epoch": 3, "best_metric": 0.70})
    out = capsys.readouterr().out
    assert f"    {UNIT} trial 1/6 a finished: best val_balanced_accuracy 0.6500 after 2 epochs" in out
    # The finished trial has left the running ones; the best so far is b's earlier 0.72, not its latest.
    assert _progress(out) == [
        f"    {UNIT}: 1 trial running (epoch 3/6), 1/6 finished; best val_balanced_accuracy so far 0.7200"]


def test_a_minimised_metric_keeps_its_lowest_value_and_nan_is_not_a_best(capsys):
    lines = TrialLines({UNIT: 2}, {UNIT: "val_loss"}, {UNIT: "min"}, every_s=0)
    a, b = _trial("a", 2), _trial("b", 2)
    lines.on_trial_result(1, [a, b], a, {"epoch": 1, "best_metric": float("nan")})
    lines.on_trial_result(2, [a, b], b, {"epoch": 1, "best_metric": 0.4})
    lines.on_trial_result(3, [a, b], a, {"epoch": 2, "best_metric": 0.5})
    first, second, third = _progress(capsys.readouterr().out)
    assert first.endswith("best val_loss so far –")
    assert "2 trials running (epoch 1/2, 1/2)" in second and "so far 0.4000" in second
    assert "2 trials running (epoch 2/2, 1/2)" in third and "so far 0.4000" in third
