"""One line per finished trial, instead of Ray's status tables (which a study of many units would print
by the dozen): the user sees every unit advance."""

from __future__ import annotations

import time

from ray.tune import Callback


class TrialLines(Callback):
    """Args:
        planned: the number of trials of each unit, by unit key.
        metrics: each unit's selection metric, by unit key.
    """

    def __init__(self, planned: dict[str, int], metrics: dict[str, str]):
        self.planned, self.metrics = planned, metrics
        self.done: dict[str, int] = {}
        self.started = time.monotonic()
        self.read_restored = False

    def on_step_begin(self, iteration, trials, **info):
        if not self.read_restored:  # --resume: count the trials finished before
            self.read_restored = True
            for trial in trials:
                if trial.status in ("TERMINATED", "ERROR"):
                    self.done[trial.config["unit"]] = self.done.get(trial.config["unit"], 0) + 1

    def _line(self, trial, what: str) -> None:
        unit = trial.config["unit"]
        self.done[unit] = self.done.get(unit, 0) + 1
        result = trial.last_result or {}
        # print is looked up at each call: Ray replaces builtins.print when a driver joins a cluster.
        print(
            f"    {unit} trial {self.done[unit]}/{self.planned[unit]} {trial.trial_id} {what}: best "
            f"{self.metrics[unit]} {result.get('best_metric', float('nan')):.4f} after {result.get('epoch', 0)} "
            f"epochs ({time.monotonic() - self.started:.0f} s into the search)"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAILED")
