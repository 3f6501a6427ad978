"""Expected trial durations: the prior from a config, scaled by what the search measured."""

from __future__ import annotations

import pytest

from ecgtune.spaces import Domain
from ecgtune.tuning.durations import PER_EXAMPLE, Durations, expected_prior, prior


def test_the_prior_grows_with_epochs_and_examples_and_shrinks_with_the_batch():
    assert prior({"epochs": 10, "batch_size": 4}, 100) == pytest.approx(10 * 100 * (1 / 4 + PER_EXAMPLE))
    assert prior({"epochs": 20, "batch_size": 4}) == 2 * prior({"epochs": 10, "batch_size": 4})
    # The measured per-patient grid: batch 4 about three times batch 32 (13.1 s against 4.3 s).
    assert prior({"epochs": 1, "batch_size": 4}) / prior({"epochs": 1, "batch_size": 32}) == pytest.approx(3.05, abs=0.1)
    searched = {"batch_size": Domain(kind="grid", values=(4, 32)), "epochs": 10}
    assert expected_prior(searched) == pytest.approx((prior({"epochs": 10, "batch_size": 4})
                                                      + prior({"epochs": 10, "batch_size": 32})) / 2)


def test_measurements_scale_the_most_specific_group_that_has_some():
    d = Durations()
    unit, other = ("u", ("space", "scratch", "m"), ("space", "m")), ("v", ("space", "finetune", "m"), ("space", "m"))
    assert d.expected(unit, None, 3.0) == 3.0  # nothing measured: prior units
    d.observe(unit, ("x",), 20.0, 2.0)  # 10 s per prior unit
    d.observe(unit, ("y",), 4.0, 2.0)  # 2 s per prior unit
    assert d.expected(unit, None, 1.0) == pytest.approx(6.0)  # the unit's own: 24 s over 4
    assert d.expected(other, None, 1.0) == pytest.approx(6.0)  # (space, model): the same trials
    # A configuration alike one measured long is expected longer than the average, one measured short shorter.
    assert d.expected(other, ("x",), 1.0) == pytest.approx(10.0)
    assert d.expected(other, ("y",), 1.0) == pytest.approx(2.0)
    d.observe(other, ("x",), 0.0, 1.0)  # failed before its first result: ignored
    assert d.expected(other, ("x",), 1.0) == pytest.approx(10.0)
