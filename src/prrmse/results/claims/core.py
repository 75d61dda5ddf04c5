"""What every claim family shares: the inputs, a claim and its fixed text, the verdict
rule, and values per unit (seed, patient) with their bootstrap.

See `prrmse.results.claims.verdicts` for the verdict rule and the units in full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from prrmse.results.stats import Interval, bootstrap_ci, paired_difference_ci

V1, V2 = "v1 (arXiv 2008.03414)", "v2 (arXiv 2008.03411)"
PAPER, OURS = "paper", "not in the paper"
MIN_SEEDS = 3  # seeds of training a decisive verdict needs (config analysis.verdicts)
Entry = tuple[str, int, str]  # (family, layer, kind)


@dataclass
class ClaimInputs:
    """Where the evidence lies; every field optional. Paths are reported as given."""

    sweeps: Sequence[Path] = ()  # sweep CSVs, every comparison, seed and condition
    rmse: Sequence[Path] = ()  # RMSE pair and group tables
    bnstats: Sequence[Path] = ()  # BN scale/shift tables <target>__<source>.csv
    noise_floor: Sequence[Path] = ()  # RMSE tables between two seeds of one model
    plans: Sequence[Path] = ()  # reuse plan JSONs
    table1_csv: Path | None = None  # its provenance names the runs' metrics.json
    reuse_runs: Sequence[Path] = ()  # run folders with metrics.json (reuse/*, models/*-nN-*)
    n_boot: int = 2000
    level: float = 0.95
    seed: int = 0
    min_points: int = 4  # least (source, n) points for a rank correlation
    min_seeds: int = MIN_SEEDS


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str  # the paper's statement (paraphrase) and version
    statement: str  # ours, precise: "statistic > 0"
    statistic: str
    estimate: float
    low: float
    high: float
    level: float
    n_seeds: int
    n_patients: int
    n_units: int  # layers, entries or points the statistic averages over
    units: str  # what n_units counts
    verdict: str
    reason: str
    degenerate: bool = False  # one value, nothing to resample: low == high, no interval
    scope: str = PAPER  # the paper's claim, or ours ("not in the paper")
    paper_evidence: str = ""  # the paper's own numbers (or figure) behind its statement
    interval_says: str = ""  # the verdict of the interval alone, before the seed policy


@dataclass(frozen=True)
class Spec:
    """The fixed text of one claim family."""

    id: str
    paper: str
    statement: str
    statistic: str
    units: str
    scope: str = PAPER
    evidence: str = ""  # the paper's evidence; "{key}"-free, or filled per key by the family


def inconclusive(spec: Spec, key: str, reason: str, n_units: int = 0, evidence: str = "") -> Claim:
    nan = math.nan
    return Claim(
        _claim_id(spec, key),
        spec.paper,
        _statement(spec, key),
        spec.statistic,
        nan,
        nan,
        nan,
        nan,
        0,
        0,
        n_units,
        spec.units,
        "inconclusive",
        reason,
        scope=spec.scope,
        paper_evidence=evidence or spec.evidence,
        interval_says="inconclusive",
    )


def apply_seed_policy(claim: Claim, min_seeds: int) -> Claim:
    """No decisive verdict on fewer than `min_seeds` seeds of training: a patient-level
    interval covers patients, not the variance between training runs."""
    if claim.verdict == "inconclusive" or claim.n_seeds >= min_seeds:
        return claim
    why = (
        f"only {claim.n_seeds} seed{'s' if claim.n_seeds != 1 else ''} of training (a verdict "
        f"needs {min_seeds}); the interval alone would say '{claim.verdict}'"
    )
    return replace(claim, verdict="inconclusive", reason=f"{why}; {claim.reason}")


def _claim_id(spec: Spec, key: str) -> str:
    return f"{spec.id}[{key}]" if key else spec.id


def _statement(spec: Spec, key: str) -> str:
    return spec.statement.format(key=key or "any comparison")


def verdict_of(interval: Interval) -> tuple[str, str]:
    """The verdict rule (module docstring) and one sentence why."""
    if not math.isfinite(interval.estimate):
        return "inconclusive", "no estimate: " + (interval.note or "no finite values")
    if interval.degenerate:
        return "inconclusive", f"{interval.note}; a verdict needs an interval"
    shown = f"{interval.level:.0%} interval [{interval.low:.4g}, {interval.high:.4g}]"
    if interval.low > 0:
        return "holds", f"the {shown} lies above 0"
    if interval.high < 0:
        return "does not hold", f"the {shown} lies below 0"
    return "inconclusive", f"the {shown} contains 0"


def claim_from(
    spec: Spec, key: str, interval: Interval, n_units: int, detail: str, evidence: str = ""
) -> Claim:
    verdict, why = verdict_of(interval)
    notes = [text for text in (detail, why) if text]
    if interval.note and not interval.degenerate:
        notes.append(interval.note)
    return Claim(
        _claim_id(spec, key),
        spec.paper,
        _statement(spec, key),
        spec.statistic,
        interval.estimate,
        interval.low,
        interval.high,
        interval.level,
        interval.n_seeds,
        interval.n_patients,
        n_units,
        spec.units,
        verdict,
        "; ".join(notes),
        interval.degenerate,
        scope=spec.scope,
        paper_evidence=evidence or spec.evidence,
        interval_says=verdict,
    )


# --- unit values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Units:
    """Values per unit: a Series indexed (seed, patient); patient "" at seed level."""

    series: pd.Series
    per_patient: bool

    def seed_level(self) -> Units:
        if not self.per_patient:
            return self
        means = self.series.groupby(level="seed").mean()
        return Units(seed_index(means), False)

    def array(self) -> np.ndarray:
        if self.per_patient:
            return self.series.unstack("patient").sort_index().to_numpy(dtype=float)
        return self.series.droplevel("patient").sort_index().to_numpy(dtype=float)


def seed_index(series: pd.Series) -> pd.Series:
    index = pd.MultiIndex.from_arrays(
        [series.index.to_numpy(), [""] * len(series)], names=["seed", "patient"]
    )
    return pd.Series(series.to_numpy(dtype=float), index=index)


def paired_units(a: Units, b: Units) -> tuple[Units, Units]:
    if a.per_patient != b.per_patient:
        a, b = a.seed_level(), b.seed_level()
    common = a.series.index.intersection(b.series.index).sort_values()
    return Units(a.series.loc[common], a.per_patient), Units(b.series.loc[common], b.per_patient)


@dataclass(frozen=True)
class Bootstrap:
    n_boot: int
    level: float
    seed: int

    def one(self, units: Units) -> Interval:
        return bootstrap_ci(units.array(), n_boot=self.n_boot, level=self.level, seed=self.seed)

    def paired(self, a: Units, b: Units) -> Interval:
        a, b = paired_units(a, b)
        return paired_difference_ci(
            a.array(), b.array(), n_boot=self.n_boot, level=self.level, seed=self.seed
        )
