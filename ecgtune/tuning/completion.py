"""Noticing that a unit is complete: every one of its planned trials has finished or failed.

A Tune callback on the driver gathers each finished trial's outcome by unit and hands a complete unit to
``on_unit_complete`` (selection, test and promotion run beside Tune, see `ecgtune.tuning.finalize`). On
``--resume`` Tune restores finished trials without calling back for them, so the first step reads them
from the restored trial list (or, where every trial had finished and no step comes, the experiment's end).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from ray.tune import Callback

from ecgtune.tuning.selection import TrialOutcome


def outcome_of(trial) -> TrialOutcome:
    result = trial.last_result or {}
    value = result.get("best_metric", float("nan"))
    error = None
    if trial.status == "ERROR":
        error = error_text(trial)
    return TrialOutcome(
        trial_id=trial.trial_id,
        value=float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float("nan"),
        checkpoint=trial.checkpoint,
        config=trial.config,
        error=error,
    )


def error_text(trial) -> str:
    """The last line of the trial's error (the exception), from the driver's copy of its error file or
    from storage."""
    text = None
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text()
        text = text or trial.get_error()
    except Exception:  # the error file may be gone; the status says enough
        text = None
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1][:500] if lines else "the trial failed (no error text was kept)"


class UnitCompletion(Callback):
    """Args:
        planned: the number of trials of each unit, by unit key.
        done: keys of the units already selected and promoted (a resumed search skips them).
        on_unit_complete: called with (unit key, outcomes in the unit's trial order), once per unit.
    """

    def __init__(self, planned: dict[str, int], done: set[str], on_unit_complete: Callable[[str, list], None]):
        self.planned, self.on_unit_complete = planned, on_unit_complete
        self.handed_on = set(done)
        self.outcomes: dict[str, dict[str, TrialOutcome]] = {}  # unit key -> trial id -> outcome
        self.read_restored = False

    def _record(self, trial) -> None:
        key = trial.config["unit"]
        if key in self.handed_on:
            return
        unit = self.outcomes.setdefault(key, {})
        unit[trial.trial_id] = outcome_of(trial)
        if len(unit) == self.planned[key]:
            outcomes = sorted(unit.values(), key=lambda o: o.config["unit_trial"])
            del self.outcomes[key]  # the driver keeps nothing per trial once its unit is handed on
            self.handed_on.add(key)
            self.on_unit_complete(key, outcomes)

    def _read_restored(self, trials) -> None:
        if not self.read_restored:
            self.read_restored = True
            for trial in trials:
                if trial.status in ("TERMINATED", "ERROR"):
                    self._record(trial)

    def on_step_begin(self, iteration, trials, **info):
        self._read_restored(trials)

    def on_experiment_end(self, trials, **info):
        # A search killed after its last trial (while its last unit was selected, tested or promoted)
        # resumes with every trial finished: Tune then takes no step at all, so the restored trials are read
        # here, or that unit would never be finalised. Only where no step came: after one, Tune's cleanup
        # has marked the trials it stopped (Ctrl-C) TERMINATED, though they did not finish.
        self._read_restored(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial)
