"""A unit's search read back from its trials: best so far in start order, the parameters it varied, and
which of them decided the validation value (fANOVA over the trials rebuilt as an Optuna study)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from ecgtune.reporting.search_views import (MIN_TRIALS_FOR_IMPORTANCE, best_so_far, param_importance,
                                            searched_params, trials_in_start_order)
from ecgtune.reporting.trials_table import trials_frame


def _trials(n: int, seed: int = 0, decide=lambda lr, batch, weighted: -abs(np.log10(lr) + 2.5)):
    """``n`` trial rows of one unit, started in a shuffled order; the value is ``decide(...)`` of their
    parameters (by default lr alone: best near 10^-2.5, batch size and weighting are noise-free bystanders)."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i, start in enumerate(rng.permutation(n)):
        lr = float(10 ** rng.uniform(-4, -1))
        batch = int(rng.choice([16, 32, 64]))
        weighted = bool(rng.integers(2))
        rows.append({"unit": "s/pretrain-cnn", "run_id": f"r{i}", "selected": False, "metric": "val_f1_macro",
                     "mode": "max", "start": t0 + timedelta(seconds=int(start)), "train.lr": lr,
                     "train.batch_size": batch, "train.weighted_sampling": weighted, "train.epochs": 3,
                     "best_metric": decide(lr, batch, weighted)})
    return trials_frame(rows)


def test_best_so_far_keeps_the_best_of_the_trials_up_to_each_one_in_the_metrics_direction():
    values = [0.5, 0.4, 0.7, np.nan, 0.6, 0.9]
    assert best_so_far(values, "max").tolist() == [0.5, 0.5, 0.7, 0.7, 0.7, 0.9]
    assert best_so_far(values, "min").tolist() == [0.5, 0.4, 0.4, 0.4, 0.4, 0.4]


def test_trials_are_taken_in_start_order_and_a_trial_without_a_value_leaves_its_index():
    frame = _trials(6)
    frame.loc[frame["start"] == frame["start"].min(), "best_metric"] = None  # the first trial failed early
    done = trials_in_start_order(frame)
    assert done["trial"].tolist() == [2, 3, 4, 5, 6] and done["start"].is_monotonic_increasing
    assert done["value"].tolist() == frame.sort_values("start")["best_metric"].iloc[1:].astype(float).tolist()


def test_the_searched_parameters_are_those_the_trials_differ_in():
    assert searched_params(_trials(8)) == ["train.lr", "train.batch_size", "train.weighted_sampling"]


def test_the_parameter_that_decides_the_metric_ranks_first():
    shares = param_importance(_trials(30), "max", {"train.lr"}).shares
    assert list(shares)[0] == "train.lr" and shares["train.lr"] > 0.5
    assert abs(sum(shares.values()) - 1) < 1e-9
    # The other way round: batch size alone decides (lower is better), lr is a bystander.
    by_batch = _trials(30, seed=1, decide=lambda lr, batch, weighted: batch / 64)
    assert list(param_importance(by_batch, "min", {"train.lr"}).shares)[0] == "train.batch_size"


def test_importance_says_why_where_it_is_not_computed():
    few = param_importance(_trials(MIN_TRIALS_FOR_IMPORTANCE - 1), "max")
    assert not few.shares and f"importance needs at least {MIN_TRIALS_FOR_IMPORTANCE}" in few.reason
    one = _trials(8).drop(columns=["train.batch_size", "train.weighted_sampling"])
    assert param_importance(one, "max").reason == "one searched parameter (lr): nothing to rank"
    flat = _trials(8, decide=lambda *_: 0.5)
    assert "same value" in param_importance(flat, "max").reason


def test_a_unit_with_only_the_metrics_last_values_still_has_a_value_per_trial():
    frame = _trials(5).drop(columns=["best_metric"]).assign(val_f1_macro=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert sorted(trials_in_start_order(frame)["value"]) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert pd.api.types.is_float_dtype(trials_in_start_order(frame)["value"])
