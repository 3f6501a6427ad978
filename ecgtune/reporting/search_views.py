"""What a unit's search did, from its rows of the trials table: each trial's best validation value in the
order the trials started, the best so far, the parameters the search varied, and how much each of them
decided the value (hyperparameter importance).

Importance is Optuna's fANOVA (``FanovaImportanceEvaluator``) over the unit's trials rebuilt as an Optuna
study. fANOVA fits a random forest from the parameters to the value and splits the value's variance over
the parameters, using every trial; it takes categorical and log-scaled parameters. Optuna 5's default,
PED-ANOVA, asks what sets the best 10 % of trials apart and needs two trials there (about 20 trials): a
unit here runs 2 to 18 (a smoke search, a per-patient grid). The forest is seeded: the same runs give the
same report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ecgtune.reporting.trials_table import value_kind

SEARCHED_PREFIXES = ("train.", "model.hparams.")  # trial params a search may choose (ecgtune.tuning.tuner)
MIN_TRIALS_FOR_IMPORTANCE = 5  # below this the forest fits a few points and any ranking is noise
IMPORTANCE_SEED = 0


def short_name(column: str) -> str:
    """``train.lr`` -> ``lr``, ``model.hparams.width`` -> ``width``: what the space file calls it."""
    for prefix in SEARCHED_PREFIXES:
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def _plain(value):
    """A cell of a typed column as a Python value (numpy scalars, pandas' NA)."""
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def value_column(trials) -> str | None:
    """The column holding each trial's best validation value: ``best_metric`` (what the trainable
    reports per epoch: the best so far), else ``best_<metric>``, else the metric's last value."""
    metric = next((m for m in trials.get("metric", []) if isinstance(m, str) and m), None)
    for column in ("best_metric", f"best_{metric}", metric):
        if column and column in trials and trials[column].notna().any():
            return column
    return None


def trials_in_start_order(trials):
    """The unit's trials with a finite value, oldest first, as (trial index from 1, value, params...).
    The trial index counts every trial that started, so a failed trial leaves a gap."""
    import pandas as pd

    ordered = trials.sort_values("start", kind="stable") if "start" in trials else trials
    ordered = ordered.assign(trial=np.arange(1, len(ordered) + 1))
    column = value_column(ordered)
    if column is None:
        return ordered.iloc[:0].assign(value=pd.Series(dtype=float))
    values = pd.to_numeric(ordered[column], errors="coerce").astype(float)
    ordered = ordered.assign(value=values)
    return ordered[np.isfinite(ordered["value"])]


def best_so_far(values, mode: str) -> np.ndarray:
    """The best value among the first k trials, for every k (``mode``: max or min)."""
    values = np.asarray(values, float)
    if not len(values):
        return values
    return (np.fmax if mode == "max" else np.fmin).accumulate(values)


def searched_params(trials) -> list[str]:
    """The parameters the unit's trials differ in (a fixed one tells nothing about what decided)."""
    found = []
    for column in trials.columns:
        if column.startswith(SEARCHED_PREFIXES):
            distinct = {_plain(v) for v in trials[column]} - {None}
            if len(distinct) > 1:
                found.append(column)
    return found


def _distribution(values: list, log: bool):
    """The Optuna distribution the observed values of one parameter span: numbers keep their order (and
    their log scale where the space searched on one), anything else is a category."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kinds = {value_kind(v) for v in values}
    numeric = kinds <= {int, float}
    if kinds == {int}:
        low, high = int(min(values)), int(max(values))
        return IntDistribution(low, high, log=log and low >= 1)
    if numeric:
        low, high = float(min(values)), float(max(values))
        return FloatDistribution(low, high, log=log and low > 0)
    return CategoricalDistribution(sorted(set(values), key=repr))


@dataclass
class Importance:
    """Per searched parameter its share of the value's variance (summing to 1), best first; or, where
    none was computed, why (``reason``)."""

    shares: dict[str, float]
    reason: str = ""
    trials: int = 0


def param_importance(trials, mode: str, log_params=frozenset()) -> Importance:
    """fANOVA importance of the searched parameters over a unit's trials (rows of the trials table)."""
    done = trials_in_start_order(trials)
    params = searched_params(done)
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return Importance({}, f"{len(done)} trial(s) with a validation value: importance needs at least "
                              f"{MIN_TRIALS_FOR_IMPORTANCE}", len(done))
    if len(params) < 2:
        which = f"one searched parameter ({short_name(params[0])})" if params else "no parameter varied"
        return Importance({}, f"{which}: nothing to rank", len(done))
    if np.ptp(done["value"].to_numpy(float)) == 0:
        return Importance({}, f"all {len(done)} trials reached the same value: nothing decided it", len(done))
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory" per unit
    columns = {c: [_plain(v) for v in done[c]] for c in params}
    complete = [i for i in range(len(done)) if all(columns[c][i] is not None for c in params)]
    distributions = {c: _distribution([columns[c][i] for i in complete], c in log_params) for c in params}
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    values = done["value"].to_numpy(float)
    for i in complete:
        study.add_trial(optuna.trial.create_trial(params={c: columns[c][i] for c in params},
                                                  distributions=distributions, value=float(values[i])))
    shares = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=IMPORTANCE_SEED))
    return Importance(dict(sorted(shares.items(), key=lambda kv: -kv[1])), trials=len(complete))
