"""How long a trial is expected to take, so that the schedule starts the long ones first.

A schedule's end is set by its last trials: a long trial started late makes the tail while the other
slots idle (longest processing time first is the classic remedy). The expectation is a prior from the
trial's config (epochs, batch size, the unit's training examples) scaled by the durations measured so
far in the same search: the unit's own finished trials, else those of its space's stage and model, else
of its model in its space, else every finished trial. The model's cost and the machine's speed are so
learned from the search itself instead of guessed from the model's name.
"""

from __future__ import annotations

import itertools

from ecgtune.spaces import TRAIN_DEFAULTS, domain_values

# An epoch costs a step per batch plus a part per example that no batch size saves (the arithmetic per
# example, validation in batches of 256). On the per-patient grid measured on the CPU
# (benchmarks/trial_durations.json, runs of the same length) batch 4, 16 and 32 took 13.1, 5.7 and 4.3 s:
# 1/batch + 1/13 per example gives all three within 3 %.
PER_EXAMPLE = 1 / 13


def prior(train: dict, examples: int | None = None) -> float:
    """A trial's cost in steps-per-example units: epochs x examples x (1 / batch size + PER_EXAMPLE).
    ``examples``: the unit's training examples (None: the same for every unit, as in a replay)."""
    epochs = max(int(train.get("epochs", TRAIN_DEFAULTS["epochs"])), 1)
    batch = max(int(train.get("batch_size", TRAIN_DEFAULTS["batch_size"])), 1)
    return epochs * (examples or 1) * (1 / batch + PER_EXAMPLE)


def expected_prior(params: dict, examples: int | None = None) -> float:
    """The mean prior over the values a stage's params may take (a model-based search's next trial is not
    known before it is asked for): every combination of the epochs' and batch sizes' values or bounds."""
    epochs = domain_values(params.get("epochs", TRAIN_DEFAULTS["epochs"]))
    batches = domain_values(params.get("batch_size", TRAIN_DEFAULTS["batch_size"]))
    priors = [prior({"epochs": e, "batch_size": b}, examples) for e, b in itertools.product(epochs, batches)]
    return sum(priors) / len(priors)


class Durations:
    """Measured seconds against priors, summed per group. A trial belongs to a chain of groups, most
    specific first: its unit, (space, stage, model), (space, model), and () for every trial; and to the
    group of trials with the same searched values (``like``: the same grid point of other patients'
    units, say). Its expected seconds: the prior, times the first scale of its chain that has
    measurements, times how much longer than the average its searched values ran where they were
    measured. With no measurement at all every estimate stays in prior units, which ranks as well."""

    def __init__(self):
        self.sums: dict[tuple, list[float]] = {}  # group -> [measured seconds, their priors]

    def observe(self, groups: tuple, like: tuple | None, seconds: float, prior_value: float) -> None:
        if not seconds > 0 or not prior_value > 0:
            return  # a trial that failed before its first result says nothing about its length
        for group in (*groups, (), *([("like", like)] if like is not None else [])):
            total = self.sums.setdefault(group, [0.0, 0.0])
            total[0] += seconds
            total[1] += prior_value

    def ratio(self, group: tuple) -> float | None:
        if group not in self.sums:
            return None
        seconds, priors = self.sums[group]
        return seconds / priors

    def expected(self, groups: tuple, like: tuple | None, prior_value: float) -> float:
        overall = self.ratio(()) or 1.0
        scale = next((r for r in map(self.ratio, groups) if r is not None), overall)
        alike = self.ratio(("like", like)) if like is not None else None
        return prior_value * scale * (alike / overall if alike is not None else 1.0)
