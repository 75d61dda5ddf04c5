"""Bootstrap intervals: coverage on synthetic data, determinism, NaN handling, degenerate cases."""

from __future__ import annotations

import time

import numpy as np
import pytest

from prrmse.core.errors import PrrmseError
from prrmse.results.stats import bootstrap_ci, paired_difference_ci


def test_seed_interval_covers_the_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for trial in range(200):
        sample = rng.normal(loc=2.0, scale=1.0, size=30)
        interval = bootstrap_ci(sample, n_boot=500, seed=trial)
        hits += interval.low <= 2.0 <= interval.high
    # percentile bootstrap at n = 30 covers a little under nominal; loose bounds
    assert 0.85 <= hits / 200 <= 0.99


def test_hierarchical_interval_covers_the_true_mean() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    for trial in range(200):
        seed_effects = rng.normal(scale=0.5, size=(8, 1))
        sample = 1.0 + seed_effects + rng.normal(scale=1.0, size=(8, 20))
        interval = bootstrap_ci(sample, n_boot=500, seed=trial)
        hits += interval.low <= 1.0 <= interval.high
    # few seeds: a hierarchical bootstrap under-covers somewhat; loose bounds
    assert 0.8 <= hits / 200 <= 0.99


def test_hierarchical_interval_is_wider_than_ignoring_the_seed_level() -> None:
    rng = np.random.default_rng(3)
    sample = rng.normal(scale=1.0, size=(5, 1)) + rng.normal(scale=0.1, size=(5, 40))
    nested = bootstrap_ci(sample)
    flat = bootstrap_ci(sample.ravel())  # pretends the 200 values are independent
    assert nested.width > 3 * flat.width


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    sample = np.random.default_rng(0).normal(size=(3, 50))
    first, again = bootstrap_ci(sample, seed=5), bootstrap_ci(sample, seed=5)
    assert first == again
    assert bootstrap_ci(sample, seed=6) != first


def test_nan_values_are_skipped() -> None:
    interval = bootstrap_ci([1.0, np.nan, 3.0])
    assert interval.n_seeds == 2
    assert interval.estimate == 2.0
    assert 1.0 <= interval.low <= interval.high <= 3.0
    assert not interval.degenerate


def test_nan_patients_and_empty_seeds_in_two_d() -> None:
    sample = np.array(
        [[0.5, 0.7, np.nan, np.nan], [np.nan, np.nan, np.nan, np.nan], [0.4, 0.6, 0.8, 0.2]]
    )
    interval = bootstrap_ci(sample)
    assert interval.n_seeds == 2  # the all-NaN seed drops out
    assert interval.n_patients == 4
    assert interval.estimate == pytest.approx(np.nanmean(sample))
    assert 0.2 <= interval.low <= interval.high <= 0.8


def test_one_seed_no_patients_is_degenerate_never_fake_width() -> None:
    interval = bootstrap_ci([0.3])
    assert interval.degenerate
    assert interval.low == interval.high == interval.estimate == 0.3
    assert "one seed" in interval.note
    single = bootstrap_ci([[0.3, np.nan]])
    assert single.degenerate and single.low == single.high == 0.3


def test_no_finite_value_gives_nan() -> None:
    interval = bootstrap_ci([np.nan, np.nan])
    assert interval.degenerate and np.isnan(interval.estimate) and interval.n_seeds == 0


def test_one_seed_with_patients_has_width_and_says_what_it_covers() -> None:
    interval = bootstrap_ci(np.random.default_rng(1).normal(size=(1, 30)))
    assert not interval.degenerate
    assert interval.width > 0
    assert "patient sampling only" in interval.note


def test_other_statistic_and_level() -> None:
    sample = np.random.default_rng(2).normal(size=40)
    median = bootstrap_ci(sample, statistic=np.nanmedian)
    assert median.estimate == pytest.approx(np.median(sample))
    narrow = bootstrap_ci(sample, level=0.5)
    assert narrow.width < bootstrap_ci(sample).width
    with pytest.raises(PrrmseError, match="level"):
        bootstrap_ci(sample, level=95)


def test_paired_difference_keeps_pairs_together() -> None:
    rng = np.random.default_rng(4)
    shared = rng.normal(scale=5.0, size=(3, 50))  # large patient effect, cancels in pairs
    a, b = shared + 0.1, shared
    paired = paired_difference_ci(a, b)
    assert paired.estimate == pytest.approx(0.1)
    assert paired.low == pytest.approx(0.1) and paired.high == pytest.approx(0.1)
    unpaired = bootstrap_ci(a).width + bootstrap_ci(b).width
    assert unpaired > 1.0


def test_paired_difference_drops_half_missing_pairs_and_checks_shapes() -> None:
    interval = paired_difference_ci([1.0, 2.0, np.nan], [0.0, np.nan, 1.0])
    assert interval.degenerate and interval.estimate == 1.0
    with pytest.raises(PrrmseError, match="shape"):
        paired_difference_ci([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(PrrmseError, match="3-D"):
        bootstrap_ci(np.zeros((2, 2, 2)))


def test_fast_for_three_seeds_by_fifty_patients() -> None:
    sample = np.random.default_rng(5).normal(size=(3, 50))
    bootstrap_ci(sample)
    start = time.perf_counter()
    for _ in range(5):
        bootstrap_ci(sample)
    elapsed = (time.perf_counter() - start) / 5
    assert elapsed < 0.5  # target < 50 ms; loose here, the test machine is shared
