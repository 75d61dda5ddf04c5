"""The claims over BN scale and shift (`prrmse.analysis.bnstats`): the paper's hypotheses that in UNet
MRM >> MRB and MRV >> MRW, while in PSPNet MRM ~ MRB and MRV ~ MRW.

The paper gives no number for ">>" or "~". Here ">>" means a geometric mean ratio over the BN
layers above FACTOR (2), and "~" a geometric mean ratio within a factor FACTOR either way;
both are tested on the log ratio, per seed (each seed's target against that seed's source).
A layer whose ratio is not a positive number (MRB 0, a negative MRW) is left out, and the
reason says how many.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from prrmse.core.errors import PrrmseError
from prrmse.core.tabular import read_table
from prrmse.results.claims.core import (
    V2,
    Bootstrap,
    Claim,
    Spec,
    Units,
    claim_from,
    inconclusive,
    seed_index,
)
from prrmse.results.claims.evidence import Evidence, model_key, parse_or_none
from prrmse.results.stats import Interval

FACTOR = 2.0
BNSTATS_COLUMNS = ["layer", "MRM", "MRV", "MRW", "MRB"]
# (network, numerator, denominator, relation)
HYPOTHESES = (
    ("unet", "MRM", "MRB", ">>"),
    ("unet", "MRV", "MRW", ">>"),
    ("pspnet", "MRM", "MRB", "~"),
    ("pspnet", "MRV", "MRW", "~"),
)
EVIDENCE = "BN scale/shift figures (Figs. 5-6, 9-10; values not printed)"


def _spec(network: str, top: str, bottom: str, relation: str) -> Spec:
    far = relation == ">>"
    word = "far above" if far else "near"
    statistic = (
        f"mean over BN layers of log({top}/{bottom}) - log {FACTOR:g}"
        if far
        else f"log {FACTOR:g} - |mean over BN layers of log({top}/{bottom})|"
    )
    return Spec(
        f"{network}-{top.lower()}-{word.replace(' ', '-')}-{bottom.lower()}",
        f"{V2}, BN scale/shift hypotheses: in {'UNet' if network == 'unet' else 'PSPNet'} "
        f"{top} {relation} {bottom}.",
        "{key}: over the BN layers, the geometric mean of "
        + f"{top}/{bottom} is "
        + (f"above {FACTOR:g}" if far else f"within a factor {FACTOR:g} of 1")
        + ".",
        statistic,
        "seeds",
        evidence=EVIDENCE,
    )


def _log_ratios(path: Path, top: str, bottom: str) -> tuple[float, int]:
    table = read_table(path, BNSTATS_COLUMNS)
    ratio = pd.to_numeric(table[top], errors="coerce") / pd.to_numeric(
        table[bottom], errors="coerce"
    )
    usable = ratio[np.isfinite(ratio) & (ratio > 0)]
    if usable.empty:
        return math.nan, len(table)
    return float(np.log(usable).mean()), len(table) - len(usable)


def _files(paths: list[Path], evidence: Evidence) -> dict[str, dict[int, Path]]:
    """network -> seed -> bnstats file of a <target>-sS__<source>-sS comparison."""
    found: dict[str, dict[int, Path]] = {}
    for path in paths:
        if not evidence.present(path, "bnstats"):
            continue
        names = Path(path).stem.split("__")
        specs = [parse_or_none(name) for name in names]
        if len(names) != 2 or any(spec is None for spec in specs):
            raise PrrmseError(path, "a BN statistics table is named <target>__<source>.csv")
        target, source = specs
        if target.seed != source.seed or model_key(target) == model_key(source):  # type: ignore[union-attr]
            continue
        found.setdefault(target.network, {}).setdefault(target.seed, Path(path))  # type: ignore[union-attr]
    return found


def near_interval(interval: Interval) -> Interval:
    """The interval of log FACTOR - |x| from the interval of x (conservative at 0)."""
    low, high = abs(interval.low), abs(interval.high)
    smallest = 0.0 if interval.low <= 0 <= interval.high else min(low, high)
    limit = math.log(FACTOR)
    return replace(
        interval,
        estimate=limit - abs(interval.estimate),
        low=limit - max(low, high),
        high=limit - smallest,
    )


def bn_hypothesis_claims(paths: list[Path], evidence: Evidence, boot: Bootstrap) -> list[Claim]:
    files = _files([Path(p) for p in paths], evidence)
    claims = []
    for network, top, bottom, relation in HYPOTHESES:
        spec = _spec(network, top, bottom, relation)
        by_seed = files.get(network, {})
        values = {seed: _log_ratios(path, top, bottom) for seed, path in sorted(by_seed.items())}
        per_seed = pd.Series(
            {s: v for s, (v, _) in values.items() if math.isfinite(v)}, dtype=float
        )
        if per_seed.empty:
            why = evidence.absent(
                "bnstats", f"no {network} BN statistics with a positive {top}/{bottom}"
            )
            claims.append(inconclusive(spec, network, why))
            continue
        raw = boot.one(Units(seed_index(per_seed), False))
        if relation == ">>":
            shift = math.log(FACTOR)
            interval = replace(
                raw, estimate=raw.estimate - shift, low=raw.low - shift, high=raw.high - shift
            )
        else:
            interval = near_interval(raw)
        left_out = sum(n for _, n in values.values())
        detail = f"geometric mean {top}/{bottom} {math.exp(per_seed.mean()):.3g}"
        if left_out:
            detail += f"; {left_out} layer ratios not positive, left out"
        claims.append(claim_from(spec, network, interval, len(per_seed), detail))
    return claims
