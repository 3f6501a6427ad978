"""What a search prints while it runs, instead of Ray's status tables (which a study of many units would
print by the dozen): one line per finished trial, and while a unit's trials train, a line at most every
``every_s`` seconds per unit with its running trials' epochs and its best validation value so far."""

from __future__ import annotations

import math
import time

from ray.tune import Callback

UNIT_LINE_EVERY_S = 15.0  # a 29-patient study has dozens of units in flight: more often drowns the output


class TrialLines(Callback):
    """Args:
        planned: the number of trials of each unit, by unit key.
        metrics: each unit's selection metric, by unit key.
        modes: each unit's mode (max or min), by unit key: which best value is the best.
        every_s: the shortest time between two progress lines of one unit.
    """

    def __init__(self, planned: dict[str, int], metrics: dict[str, str], modes: dict[str, str] | None = None,
                 every_s: float = UNIT_LINE_EVERY_S):
        self.planned, self.metrics, self.modes, self.every_s = planned, metrics, modes or {}, every_s
        self.done: dict[str, int] = {}
        self.started = time.monotonic()
        self.read_restored = False
        self.epochs: dict[str, dict[str, tuple[int, int | None]]] = {}  # unit -> trial id -> (epoch, of epochs)
        self.best: dict[str, float] = {}  # unit -> its best validation value so far
        self.last_line: dict[str, float] = {}  # unit -> when its last progress line was printed

    def on_step_begin(self, iteration, trials, **info):
        if not self.read_restored:  # --resume: count the trials finished before
            self.read_restored = True
            for trial in trials:
                if trial.status in ("TERMINATED", "ERROR"):
                    self.done[trial.config["unit"]] = self.done.get(trial.config["unit"], 0) + 1

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f} s into the search"

    def _line(self, trial, what: str) -> None:
        unit = trial.config["unit"]
        self.done[unit] = self.done.get(unit, 0) + 1
        self.epochs.get(unit, {}).pop(trial.trial_id, None)
        result = trial.last_result or {}
        # print is looked up at each call: Ray replaces builtins.print when a driver joins a cluster.
        print(
            f"    {unit} trial {self.done[unit]}/{self.planned[unit]} {trial.trial_id} {what}: best "
            f"{self.metrics[unit]} {result.get('best_metric', float('nan')):.4f} after {result.get('epoch', 0)} "
            f"epochs ({self._elapsed()})"
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # Called before Tune stores ``result`` as the trial's last result: it is read from the argument.
        unit = trial.config["unit"]
        self.epochs.setdefault(unit, {})[trial.trial_id] = (int(result.get("epoch", 0)),
                                                          trial.config.get("train", {}).get("epochs"))
        value = result.get("best_metric", float("nan"))
        if isinstance(value, (int, float)) and not math.isnan(value):
            better = max if self.modes.get(unit, "max") == "max" else min
            self.best[unit] = better(self.best.get(unit, value), value)
        now = time.monotonic()
        if now - self.last_line.get(unit, -math.inf) < self.every_s:
            return
        self.last_line[unit] = now
        running = sorted(self.epochs[unit].values(), key=lambda e: -e[0])
        epochs = ", ".join(f"{epoch}/{total}" if total else str(epoch) for epoch, total in running)
        best = self.best.get(unit)
        print(
            f"    {unit}: {len(running)} trial{'' if len(running) == 1 else 's'} running (epoch {epochs}), "
            f"{self.done.get(unit, 0)}/{self.planned[unit]} finished; best {self.metrics[unit]} so far "
            f"{'–' if best is None else f'{best:.4f}'} ({self._elapsed()})"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAILED")
