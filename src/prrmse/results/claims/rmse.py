"""The claims over conv-weight RMSE between models: the PR-RMSE core (the source whose kernels
are closest to the target's is the one whose reuse helps), and the two RMSE matrices as the
paper reads them (Fig. 11: the large values involve T1-seg; Fig. 12: T1-auto vs ACDC-seg is
the closest pair).

A pair's distance is the mean over the non-head conv layers of the raw RMSE of W (the
paper's Figs. 11-12 show raw RMSE), per seed: model a of seed s against model b of seed s.
Pairs come from any RMSE table given (pair tables and group tables; a pair met twice is
counted once).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from prrmse.results.claims.core import (
    V2,
    Bootstrap,
    Claim,
    ClaimInputs,
    Spec,
    Units,
    claim_from,
    inconclusive,
    paired_units,
    seed_index,
)
from prrmse.results.claims.evidence import Evidence, Run, RunKey, read_rmse, run_units

FIG11_MODELS = ("pspnet-seg-t1", "pspnet-auto-t1", "pspnet-seg-acdc", "pspnet-auto-acdc")
FIG12_MODELS = ("pspnet-seg-t1", "pspnet-seg-rvsc", "pspnet-seg-acdc", "pspnet-auto-t1")
CLOSEST = ("pspnet-auto-t1", "pspnet-seg-acdc")
T1_SEG = "pspnet-seg-t1"
DRAWN = "values not printed in the paper"
Pair = tuple[str, str]

CORE_SPEC = Spec(
    "closest-source-helps-most",
    f'{V2}, conclusion (2) from Figs. 11-12 and Table 1 rows 4, 5 vs 1, 2, 3, 6, 7: "a '
    'sufficiently small difference in convolutional kernels is beneficial": the source '
    "with the smallest RMSE to the target is the one whose reuse beats scratch.",
    "{key}: across the sources, a smaller mean conv W RMSE to the target goes with a larger "
    "gain of reuse over scratch (same n, mode and seed).",
    "-Spearman rho(mean conv W RMSE source-target, Dice(reuse) - Dice(scratch)) over the "
    "sources, per unit and (n, mode), averaged",
    "sources",
    evidence="Fig. 12: T1-auto vs ACDC-seg the smallest RMSE (" + DRAWN + "); Table 1 n10 "
    "fine-tuned: T1-auto 0.85, T1-seg 0.69, RVSC-seg 0.70, scratch 0.73",
)
FIG12_SPEC = Spec(
    "closest-pair-t1-auto-acdc-seg",
    f'{V2}, text under Fig. 12: of T1-seg, RVSC-seg, ACDC-seg and T1-auto, "the T1 '
    'auto-encoder vs ACDC segmentation pair has the smallest RMSE".',
    "{key}: the mean conv W RMSE of T1-auto vs ACDC-seg is below that of every other pair of "
    "the four.",
    "min over the other 5 pairs of mean conv W RMSE - mean conv W RMSE (T1-auto, ACDC-seg)",
    "pairs",
    evidence=f"Fig. 12 ({DRAWN})",
)
FIG11_SPEC = Spec(
    "large-rmse-involve-t1-seg",
    f'{V2}, text under Fig. 11: among seg and auto models of T1 and ACDC, "the large RMSE '
    'values all involve the T1 segmentation model".',
    "{key}: every pair with T1-seg has a larger mean conv W RMSE than every pair without it.",
    "min over pairs with T1-seg - max over pairs without, of mean conv W RMSE",
    "pairs",
    evidence=f"Fig. 11 ({DRAWN})",
)


def pair_distances(inputs: ClaimInputs, evidence: Evidence) -> pd.Series:
    """Mean conv W RMSE per (model a, model b) sorted by name and seed."""
    tables = [t for p in inputs.rmse if (t := read_rmse(Path(p), evidence, "rmse")) is not None]
    if not tables:
        return pd.Series(dtype=float)
    rows = pd.concat(tables, ignore_index=True)
    rows = rows[
        (rows["family"] == "conv") & (rows["kind"] == "W") & (rows["key_a"] != rows["key_b"])
    ]
    if rows.empty:
        return pd.Series(dtype=float)
    pairs = list(zip(rows["key_a"], rows["key_b"], strict=True))
    rows = rows.assign(a=[min(p) for p in pairs], b=[max(p) for p in pairs])
    rows = rows.drop_duplicates(["a", "b", "seed", "layer"])
    return rows.groupby(["a", "b", "seed"])["rmse"].mean()


def _distance(distances: pd.Series, x: str, y: str, seed: int) -> float:
    key = (min(x, y), max(x, y), seed)
    return float(distances[key]) if not distances.empty and key in distances.index else math.nan


def _per_seed(distances: pd.Series, models: tuple[str, ...], statistic) -> pd.Series:
    if distances.empty:
        return pd.Series(dtype=float)
    seeds = sorted({int(s) for s in distances.index.get_level_values("seed")})
    values = {}
    for seed in seeds:
        pairs = {
            (x, y): _distance(distances, x, y, seed) for x, y in itertools.combinations(models, 2)
        }
        if all(math.isfinite(v) for v in pairs.values()):
            values[seed] = statistic(pairs)
    return pd.Series(values, dtype=float)


def _fig12(pairs: dict[Pair, float]) -> float:
    closest = next(v for p, v in pairs.items() if set(p) == set(CLOSEST))
    return min(v for p, v in pairs.items() if set(p) != set(CLOSEST)) - closest


def _fig11(pairs: dict[Pair, float]) -> float:
    with_seg = [v for p, v in pairs.items() if T1_SEG in p]
    without = [v for p, v in pairs.items() if T1_SEG not in p]
    return min(with_seg) - max(without)


def matrix_claims(distances: pd.Series, evidence: Evidence, boot: Bootstrap) -> list[Claim]:
    claims = []
    for spec, models, statistic in (
        (FIG11_SPEC, FIG11_MODELS, _fig11),
        (FIG12_SPEC, FIG12_MODELS, _fig12),
    ):
        per_seed = _per_seed(distances, models, statistic)
        if per_seed.empty:
            why = f"needs the conv W RMSE of every pair of {', '.join(models)} at one seed"
            claims.append(inconclusive(spec, "pspnet", evidence.absent("rmse", why)))
            continue
        interval = boot.one(Units(seed_index(per_seed), False))
        detail = f"{len(per_seed)} seeds; per seed {', '.join(f'{v:.3g}' for v in per_seed)}"
        claims.append(claim_from(spec, "pspnet", interval, 6, detail))
    return claims


def core_claims(
    distances: pd.Series, runs: dict[RunKey, dict[int, Run]], evidence: Evidence, boot: Bootstrap
) -> list[Claim]:
    """Per target: -Spearman(RMSE, gain over scratch) across the sources of its reuse runs."""
    targets = sorted({key[0] for key in runs})
    if not targets:
        return [inconclusive(CORE_SPEC, "", evidence.absent("runs", "no reuse runs"))]
    return [_core_claim(target, distances, runs, boot) for target in targets]


def _core_claim(
    target: str, distances: pd.Series, runs: dict[RunKey, dict[int, Run]], boot: Bootstrap
) -> Claim:
    rhos: list[pd.Series] = []
    used: set[str] = set()
    gains_of: dict[tuple[int, str], dict[str, Units]] = {}
    for (run_target, n, _, mode), by_seed in sorted(runs.items(), key=str):
        scratch = (target, n, None, "scratch")
        if run_target != target or mode not in ("freeze", "finetune") or scratch not in runs:
            continue
        reuse, base = paired_units(run_units(by_seed), run_units(runs[scratch]))
        source = str(next(iter(by_seed.values())).source)
        gains_of.setdefault((n, mode), {})[source] = Units(
            reuse.series - base.series, reuse.per_patient
        )
    # one unit level for all: per patient only where every gain has patients
    per_patient = all(u.per_patient for gains in gains_of.values() for u in gains.values())
    columns = {
        point: {s: (u if per_patient else u.seed_level()) for s, u in gains.items()}
        for point, gains in gains_of.items()
    }
    for (n, mode), gains in sorted(columns.items()):
        if len(gains) < 3:
            continue
        frame = pd.DataFrame({source: units.series for source, units in gains.items()}).dropna()
        values = []
        for (seed, _patient), gain in frame.iterrows():
            rmse = [_distance(distances, target, source, int(seed)) for source in frame.columns]
            values.append(_negative_spearman(np.asarray(rmse), gain.to_numpy(dtype=float)))
        used |= set(frame.columns)
        rhos.append(pd.Series(values, index=frame.index, dtype=float).rename(f"n{n} {mode}"))
    if not rhos:
        why = "needs frozen or fine-tuned runs of 3 sources and scratch at one n, and their RMSE"
        return inconclusive(CORE_SPEC, target, why)
    series = pd.concat(rhos, axis=1).mean(axis=1, skipna=True)
    interval = boot.one(Units(series, per_patient))
    means = {s: _distance_mean(distances, target, s) for s in sorted(used)}
    detail = "mean conv W RMSE to the target: " + ", ".join(
        f"{s} {v:.4g}" for s, v in means.items()
    )
    return claim_from(CORE_SPEC, target, interval, len(used), detail)


def _distance_mean(distances: pd.Series, target: str, source: str) -> float:
    key = (min(target, source), max(target, source))
    if distances.empty or key not in distances.index.droplevel("seed"):
        return math.nan
    return float(distances.xs(key, level=("a", "b")).mean())


def _negative_spearman(rmse: np.ndarray, gain: np.ndarray) -> float:
    if not np.isfinite(rmse).all() or np.ptp(rmse) == 0 or np.ptp(gain) == 0:
        return math.nan
    return -float(spearmanr(rmse, gain).statistic)


def rmse_claims(
    inputs: ClaimInputs, runs: dict[RunKey, dict[int, Run]], evidence: Evidence, boot: Bootstrap
) -> list[Claim]:
    distances = pair_distances(inputs, evidence)
    return core_claims(distances, runs, evidence, boot) + matrix_claims(distances, evidence, boot)
