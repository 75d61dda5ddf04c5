"""Bootstrap confidence intervals over seeds, and over validation patients within seeds.

One number of the study (a mean Dice drop, a Dice difference) comes from K training seeds
and, where per-patient results exist, from P validation patients per seed. Its 95 %
interval is a percentile bootstrap:

- 1-D input (per-seed values): resample seeds with replacement;
- 2-D input (seeds x patients, NaN = no value for that patient): hierarchical bootstrap,
  resample seeds, then within each drawn seed resample its finite patients (Ren et al.
  2010, "Nonparametric bootstrapping for hierarchical data"); the statistic sees the
  pooled draws of one replicate.

The estimate is the statistic of the data itself (for 2-D: of all finite values pooled).
Seeds with no finite value are dropped. With one seed and no patient level (or one value
in all) there is nothing to resample: the interval is `degenerate`, low = high = the
estimate, and `note` says why; callers must not read it as certainty.

`statistic` must reduce along `axis` and ignore NaN (np.nanmean, np.nanmedian); draws are
made with numpy's PCG64 from `seed`, so the same input gives the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from prrmse.core.errors import PrrmseError

Statistic = Callable[..., np.ndarray]
# Bootstrap replicates are drawn in chunks so a large seeds x patients array stays small.
CHUNK_VALUES = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_seeds: int
    n_patients: int  # patients per seed (the most in any seed); 0 without a patient level
    level: float = 0.95
    degenerate: bool = False  # no resampling possible: low == high == estimate
    note: str = ""

    @property
    def width(self) -> float:
        return self.high - self.low


def _as_array(values: object, where: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim not in (1, 2):
        raise PrrmseError(where, f"expects seeds or seeds x patients, got {array.ndim}-D values")
    return array


def _check_level(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise PrrmseError("bootstrap level", f"{level} is not between 0 and 1")
    if n_boot < 1:
        raise PrrmseError("bootstrap n_boot", f"{n_boot} replicates: need at least one")


def _empty(n_seeds: int, n_patients: int, level: float, note: str) -> Interval:
    return Interval(math.nan, math.nan, math.nan, n_seeds, n_patients, level, True, note)


def _percentiles(replicates: np.ndarray, level: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _seed_replicates(
    values: np.ndarray, n_boot: int, rng: np.random.Generator, statistic: Statistic
) -> np.ndarray:
    draws = rng.integers(0, values.size, size=(n_boot, values.size))
    return np.asarray(statistic(values[draws], axis=1), dtype=float)


def _hierarchical_replicates(
    values: np.ndarray, n_boot: int, rng: np.random.Generator, statistic: Statistic
) -> np.ndarray:
    n_seeds = values.shape[0]
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    # Each row's finite patients first (stable), so draw j of seed s is order[s, j < counts[s]].
    order = np.argsort(~finite, axis=1, kind="stable")
    most = int(counts.max())
    slots = np.arange(most)
    chunk = max(1, CHUNK_VALUES // (n_seeds * most))
    out = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))
        drawn_counts = counts[seeds][..., None]
        positions = np.floor(rng.random((size, n_seeds, most)) * drawn_counts).astype(np.intp)
        patients = order[seeds[..., None], positions]
        sample = values[seeds[..., None], patients]
        # A seed with fewer patients than the widest contributes only its own count of draws.
        sample = np.where(slots < drawn_counts, sample, np.nan)
        out.append(np.asarray(statistic(sample.reshape(size, -1), axis=1), dtype=float))
    return np.concatenate(out)


def bootstrap_ci(
    values: object,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    statistic: Statistic = np.nanmean,
) -> Interval:
    """Percentile bootstrap interval of `statistic` over seeds (1-D) or seeds x patients (2-D)."""
    _check_level(level, n_boot)
    array = _as_array(values, "bootstrap_ci")
    if array.ndim == 1:
        kept = array[np.isfinite(array)]
        n_seeds, n_patients = kept.size, 0
        if n_seeds == 0:
            return _empty(0, 0, level, "no finite values")
        estimate = float(statistic(kept, axis=0))
        if n_seeds == 1:
            return Interval(
                estimate,
                estimate,
                estimate,
                1,
                0,
                level,
                True,
                "one seed, no patients: no interval",
            )
        replicates = _seed_replicates(kept, n_boot, np.random.default_rng(seed), statistic)
    else:
        kept = array[np.isfinite(array).any(axis=1)]
        n_seeds = kept.shape[0]
        n_patients = int(np.isfinite(kept).sum(axis=1).max()) if n_seeds else 0
        if n_seeds == 0:
            return _empty(0, 0, level, "no finite values")
        finite = kept[np.isfinite(kept)]
        estimate = float(statistic(finite, axis=0))
        if finite.size == 1:
            return Interval(
                estimate,
                estimate,
                estimate,
                1,
                1,
                level,
                True,
                "one seed, one patient: no interval",
            )
        replicates = _hierarchical_replicates(kept, n_boot, np.random.default_rng(seed), statistic)
    low, high = _percentiles(replicates, level)
    note = ""
    if n_seeds == 1:
        note = "one seed: the interval covers patient sampling only, not training variability"
    elif n_patients == 0:
        note = f"{n_seeds} seeds, no per-patient values: the interval covers seeds only"
    return Interval(estimate, low, high, n_seeds, n_patients, level, False, note)


def paired_difference_ci(
    a: object,
    b: object,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    statistic: Statistic = np.nanmean,
) -> Interval:
    """Interval of `statistic` of a - b, where a and b are paired (same seeds, same patients).

    A pair with either side NaN drops out; resampling keeps pairs together.
    """
    first = _as_array(a, "paired_difference_ci")
    second = _as_array(b, "paired_difference_ci")
    if first.shape != second.shape:
        raise PrrmseError(
            "paired_difference_ci",
            f"paired samples differ in shape: {first.shape} vs {second.shape}",
        )
    return bootstrap_ci(first - second, n_boot=n_boot, level=level, seed=seed, statistic=statistic)
