"""The reuse rules: which evidence judges a (layer, kind) of the plan, by which threshold.

The thresholds (config analysis.plan) are checked against the rule, an entry is judged by
its Dice drop in the replacement sweep (the drop of the mean foreground Dice, classes 1..3,
NaN-skipping, when the source's tensor replaces the target's) and, for conv W, by its
relative RMSE, and the W threshold is checked against its calibration on a random pair.
Rules:

- "sweep": reuse when dice_drop <= max_dice_drop[kind];
- "rmse":  conv W by its relative RMSE alone (the paper's second version judges W by
           RMSE); the other kinds by the sweep, since RMSE has no threshold for them;
- "both":  the sweep for every kind AND, for conv W, the relative RMSE.

Relative RMSE, the W criterion: rmse(target W, source W) / rms(target W), with
rms(x) = sqrt(mean(x^2)); reuse when it is at most `max_rel_rmse_w`. An absolute RMSE
cannot be judged by one number: a conv's initial scale falls with its fan-in, so two
unrelated, randomly initialised PSPNets differ by only ~0.01-0.04 in absolute RMSE (below
the former absolute threshold 0.05). Relative to the target's own scale, two independent
draws of a zero-mean initialiser differ by sqrt(2) ~ 1.41 in every layer, whatever its
fan-in.

Calibration: at plan time two independently initialised, untrained models of the
target's network (config networks entry; local encoder weights left out, so the pair
shares nothing) are built with fixed seeds (`prrmse.analysis.plan_models.calibrate`), and
the relative RMSE of every non-head conv W is measured. A threshold that would judge any
of those layers close is refused; the plan JSON records the rule, the random pair's
min/median/max and the seeds (`calibration`, also under `thresholds`). Measured minima:
1.38-1.41 for the demo's and the paper's UNet and PSPNet, 1.31-1.32 for the tiny test
networks (UNet width 4 with 36-scalar tensors, PSPNet encoder width 8), 1.23 for a UNet of
width 2. The default 0.5 lies far below all of them: a reusable W must differ from the
target's by at most half the target's own scale (a quarter of its energy), about a third
of what an unrelated random kernel differs by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.core.errors import PrrmseError
from prrmse.core.tabular import RMS_COLUMNS

RULES = ("sweep", "rmse", "both")
FOREGROUND = (1, 2, 3)
W_KEY = "max_rel_rmse_w"
W_CONFIG_KEY = f"analysis.plan.{W_KEY}"
OLD_W_KEY = "max_rmse_w"
W_CRITERION = f"conv W reusable only if rmse / rms(target's W) <= {W_KEY}, rms(x) = sqrt(mean(x^2))"


def check_rule(thresholds: Mapping[str, Any], rule: str, kinds: set[str]) -> None:
    if rule not in RULES:
        raise PrrmseError("plan rule", f"unknown rule {rule!r}; valid: {', '.join(RULES)}")
    by_sweep = kinds if rule != "rmse" else kinds - {"W"}
    drops = thresholds.get("max_dice_drop") or {}
    for kind in sorted(by_sweep):
        if drops.get(kind) is None:
            raise PrrmseError(
                "thresholds.max_dice_drop", f"no threshold for kind {kind} (rule {rule!r})"
            )
    if OLD_W_KEY in thresholds:
        raise PrrmseError(
            f"thresholds.{OLD_W_KEY}",
            f"replaced by {W_KEY} (conv W RMSE relative to the target tensor's RMS)",
        )
    if rule != "sweep" and "W" in kinds and thresholds.get(W_KEY) is None:
        raise PrrmseError(f"thresholds.{W_KEY}", f"rule {rule!r} needs it")


def dice_drops(sweep: pd.DataFrame) -> dict[tuple[str, int, str], float]:
    """Baseline minus replaced mean foreground Dice (classes 1..3, NaN skipped) per entry."""
    replaced = sweep[sweep["status"] == "replaced"]
    replaced = replaced[replaced["class"].astype(int).isin(FOREGROUND)]
    return {
        (family, int(layer), kind): float(rows["baseline_dice"].mean() - rows["dice"].mean())
        for (family, layer, kind), rows in replaced.groupby(["family", "layer", "kind"])
    }


def judge(
    kind: str,
    drop: float | None,
    relative: float | None,
    thresholds: Mapping[str, Any],
    rule: str,
) -> tuple[bool, str]:
    """Whether a decidable entry is reusable, and why, in one sentence."""
    checks: list[tuple[bool, str]] = []
    if rule != "rmse" or kind != "W":
        limit = float(thresholds["max_dice_drop"][kind])
        if drop is None or math.isnan(drop):
            checks.append((False, "dice drop undefined"))
        else:
            checks.append(
                (drop <= limit, f"dice drop {drop:.4g} {'<=' if drop <= limit else '>'} {limit:g}")
            )
    if rule != "sweep" and kind == "W":
        limit = float(thresholds[W_KEY])
        if relative is None:
            checks.append((False, "relative rmse undefined (no RMS of the target's W, or it is 0)"))
        else:
            ok = relative <= limit
            checks.append((ok, f"relative rmse {relative:.4g} {'<=' if ok else '>'} {limit:g}"))
    return all(ok for ok, _ in checks), "; ".join(text for _, text in checks)


def relative_rmse(rmse: float | None, scale: float | None) -> float | None:
    """rmse / rms of the target's tensor; None where either is missing or the scale is 0."""
    if rmse is None or scale is None or not scale > 0:
        return None
    return rmse / scale


def check_rms(table: pd.DataFrame, column: str, where: str | Path) -> None:
    """The RMSE table holds the target tensor's RMS, which the relative-RMSE rule divides by."""
    if column not in RMS_COLUMNS:
        raise PrrmseError(where, f"target scale column {column!r} is not one of {RMS_COLUMNS}")
    if column not in table:
        raise PrrmseError(
            where,
            f"no {column} column (the target tensor's RMS, which the relative-RMSE rule "
            "divides by): written by an older prrmse rmse, rerun it",
        )


def check_calibration(calibration: Mapping[str, Any] | None, threshold: float) -> None:
    """The threshold must be the calibrated one and pass no layer of the random pair."""
    if calibration is None:
        raise PrrmseError(
            W_CONFIG_KEY, "the relative-RMSE rule needs its calibration on the target's network"
        )
    if not math.isclose(float(calibration["threshold"]), float(threshold)):
        raise PrrmseError(
            W_CONFIG_KEY,
            f"calibration made for {calibration['threshold']:g}, the threshold is {threshold:g}",
        )
    if calibration["passes_random_layer"]:
        pair = calibration["random_pair"]
        raise PrrmseError(
            W_CONFIG_KEY,
            f"{threshold:g} would judge {len(calibration['random_layers_passed'])} of "
            f"{pair['conv_w_layers']} conv W layers of two independently initialised "
            f"{pair['arch']} models close (relative RMSE min {pair['min']:.3g}, median "
            f"{pair['median']:.3g}); choose a value well below {pair['min']:.3g}",
        )
