"""One line per finished trial, instead of Ray's status tables (which a per-patient study prints
by the dozen): the user sees a long unit advance."""

from __future__ import annotations

import time

from ray.tune import Callback


class TrialLines(Callback):
    def __init__(self, unit: str, metric: str, echo=print):
        self.unit, self.metric, self.echo = unit, metric, echo
        self.done = 0
        self.started = time.monotonic()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        result = trial.last_result or {}
        self.echo(
            f"    {self.unit} trial {self.done}/{len(trials)} {trial.trial_id}: best {self.metric} "
            f"{result.get('best_metric', float('nan')):.4f} after {result.get('epoch', 0)} epochs "
            f"({time.monotonic() - self.started:.0f} s into this unit)"
        )
