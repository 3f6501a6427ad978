"""Bootstrap intervals over test records: whole records are drawn, the interval covers the figure, and
too few records give none."""

import numpy as np
import pytest

from ecgtune.training.bootstrap import record_bootstrap


def test_the_interval_of_a_mean_covers_it_and_narrows_with_more_records():
    rng = np.random.default_rng(0)
    small = rng.random(30) < 0.7
    large = rng.random(3000) < 0.7
    low_s, high_s = record_bootstrap(lambda rows: {"acc": small[rows].mean()}, np.arange(30))["acc"]
    low_l, high_l = record_bootstrap(lambda rows: {"acc": large[rows].mean()}, np.arange(3000))["acc"]
    assert low_s <= small.mean() <= high_s and low_l <= large.mean() <= high_l
    assert (high_l - low_l) < (high_s - low_s) / 5  # ~ 1 / sqrt(100)
    assert (high_l - low_l) == pytest.approx(2 * 1.96 * np.sqrt(0.7 * 0.3 / 3000), rel=0.15)


def test_records_are_drawn_whole():
    """Two records, ten examples each, one all correct and one all wrong: every draw holds whole records,
    so accuracy takes only the values 0, 0.5 and 1."""
    correct = np.r_[np.ones(10), np.zeros(10)]
    records = np.repeat(["a", "b"], 10)
    seen = set()

    def score(rows):
        assert len(rows) == 20 and len(set(rows)) in (10, 20)
        seen.add(float(correct[rows].mean()))
        return {"acc": correct[rows].mean()}

    record_bootstrap(score, records, resamples=200, min_records=2)
    assert seen <= {0.0, 0.5, 1.0} and len(seen) == 3


def test_too_few_records_give_no_interval_and_undefined_draws_are_left_out():
    assert record_bootstrap(lambda rows: {"x": 1.0}, np.arange(10)) == {}
    calls = iter(range(10_000))
    out = record_bootstrap(lambda rows: {"x": float("nan") if next(calls) % 10 == 0 else 0.5}, np.arange(25))
    assert out == {"x": (0.5, 0.5)}


def test_large_test_sets_get_fewer_draws_never_below_the_floor():
    from ecgtune.training.bootstrap import MIN_RESAMPLES, RESAMPLES, resamples_for

    assert resamples_for(500) == resamples_for(10_000) == RESAMPLES
    assert resamples_for(20_000) == RESAMPLES // 2
    assert resamples_for(50_000) == resamples_for(10**7) == MIN_RESAMPLES
    draws = []
    record_bootstrap(lambda rows: draws.append(1) or {"x": 0.5}, np.repeat(np.arange(40), 500))  # 20,000 examples
    assert len(draws) == RESAMPLES // 2
