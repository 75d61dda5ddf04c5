"""The claims over reuse runs: Table 1 as the paper reads it (reuse does not necessarily
help; T1-auto reuse beats scratch and T1-seg reuse), ours beside it (fine-tune vs freeze,
selffer), and whether the sweep's predicted drop orders the gain of frozen reuse (ours).

Every run's Dice is the mean of the four classes, background included: the paper's Table 1
mean, so each claim's paper evidence (from the package's transcription of Table 1) and our
estimate are on one definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from prrmse.results import paper
from prrmse.results.claims.core import (
    OURS,
    V2,
    Bootstrap,
    Claim,
    Spec,
    Units,
    claim_from,
    inconclusive,
    paired_units,
)
from prrmse.results.claims.evidence import Evidence, Run, RunKey, predicted_drops, run_units

DICE = "mean Dice of the 4 classes (background included, the paper's Table 1 mean)"
NOT_BETTER_SPEC = Spec(
    "reuse-not-necessarily-better",
    f'{V2}, Table 1, conclusion (1): "loading pre-training parameters may not necessarily '
    'improve the results" (rows 1 vs 2, 3, 6, 7: T1-seg and RVSC-seg reuse, frozen or not, '
    "is no better than scratch, at 10 and 50 patients).",
    "{key}: from scratch, the ACDC " + DICE + " is higher than with the source's parameters.",
    "Dice(scratch) - Dice(source, mode), paired by seed (and patient)",
    "runs",
)
T1_AUTO_SPEC = Spec(
    "t1-auto-reuse-beats-scratch",
    f"{V2}, Table 1, conclusion (2) (rows 4, 5 vs 1): reusing the T1 auto-encoder's "
    "parameters, frozen or fine-tuned, beats training from scratch.",
    "{key}: with T1-auto's parameters, the ACDC " + DICE + " is higher than from scratch.",
    "Dice(T1-auto, mode) - Dice(scratch), paired by seed (and patient)",
    "runs",
)
T1_SPEC = Spec(
    "t1-auto-transfers-better-than-t1-seg",
    f"{V2}, Table 1, conclusion (2) (rows 4, 5 vs 2, 3): the T1 auto-encoder's parameters, "
    "whose kernels are closest to the target's, transfer better than the T1 segmentation "
    "model's.",
    "{key}: with T1-auto's parameters, the ACDC " + DICE + " is higher than with T1-seg's "
    "(same mode).",
    "Dice(T1-auto, mode) - Dice(T1-seg, mode), paired by seed (and patient)",
    "runs",
)
FINETUNE_SPEC = Spec(
    "finetune-beats-freeze",
    f"{OURS}: Table 1 neither states nor supports it (its own numbers go both ways, e.g. "
    "T1-seg n50: 0.82 frozen vs 0.81 fine-tuned).",
    "{key}: fine-tuned, the ACDC " + DICE + " is higher than frozen.",
    "Dice(finetune) - Dice(freeze), paired by seed (and patient)",
    "runs",
    scope=OURS,
)
SELFFER_SPEC = Spec(
    "selffer-beats-source-freeze",
    f"{OURS} (control after Yosinski et al. 2014): PR-RMSE reuses the source's tensors as "
    "if they were close to the target's own; the selffer run (the target's own trained "
    "tensors frozen per the plan, the rest retrained) is what ideal frozen reuse gives.",
    "{key}: frozen, the target's own tensors give a higher ACDC " + DICE + " than the "
    "source's (so the source's tensors fall short of the target's own).",
    "Dice(selffer) - Dice(source, freeze), paired by seed (and patient)",
    "runs",
    scope=OURS,
    evidence="no selffer run in the paper",
)
PAPER_SOURCES = ("T1-seg", "T1-auto", "RVSC-seg")
PREDICT_SPEC = Spec(
    "sweep-predicts-reuse",
    f"{OURS} (a test of the plan): the replacement sweep is meant to tell which layers can be "
    "reused; reusing them per the plan should keep the Dice.",
    "{key}: across frozen reuse runs (source, n), a larger predicted drop (sum of the sweep's "
    "Dice drops over the entries the plan reuses) goes with a smaller gain of frozen reuse "
    "over scratch at the same n.",
    "-Spearman rho(predicted drop, Dice(freeze) - Dice(scratch)) over the (source, n) "
    "points, per unit, averaged",
    "(source, n) points",
    scope=OURS,
    evidence="not tested in the paper",
)


def paper_says(left: paper.Table1Key, right: paper.Table1Key) -> str:
    """The paper's two Table 1 means behind a comparison, e.g. "n10 scratch 0.73 vs ..."."""
    rows = paper.table1_rows()
    return f"{paper.table1_value_text(left, rows)} vs {paper.table1_value_text(right, rows)}"


def _compare_runs(
    spec: Spec,
    key: str,
    runs: dict[RunKey, dict[int, Run]],
    left: RunKey,
    right: RunKey,
    boot: Bootstrap,
    evidence: Evidence,
) -> Claim:
    said = paper_says(left[1:], right[1:])  # type: ignore[arg-type]
    if spec.scope == OURS and spec.evidence:
        said = spec.evidence
    lacking = [k for k in (left, right) if k not in runs]
    if lacking:
        _, n, source, mode = lacking[0]
        what = f"n{n} scratch" if source is None else f"n{n} {source} {mode}"
        return inconclusive(spec, key, evidence.absent("runs", f"no run {what}"), evidence=said)
    a, b = run_units(runs[left]), run_units(runs[right])
    interval = boot.paired(a, b)
    detail = f"Dice {a.series.mean():.4g} vs {b.series.mean():.4g}"
    return claim_from(spec, key, interval, 2, detail, evidence=said)


def table1_claims(
    runs: dict[RunKey, dict[int, Run]], evidence: Evidence, boot: Bootstrap
) -> list[Claim]:
    targets = sorted({key[0] for key in runs}) or ["pspnet-seg-acdc"]
    counts = sorted({key[1] for key in runs}) or [10, 50]
    many = len(targets) > 1
    modes = ("freeze", "finetune")
    claims = []
    for target in targets:
        prefix = f"{target} " if many else ""

        def compare(
            spec: Spec, key: str, left: RunKey, right: RunKey, prefix: str = prefix
        ) -> Claim:
            return _compare_runs(spec, prefix + key, runs, left, right, boot, evidence)

        for n in counts:
            scratch = (target, n, None, "scratch")
            for label in ("T1-seg", "RVSC-seg"):
                for mode in modes:
                    reuse = (target, n, label, mode)
                    claims.append(compare(NOT_BETTER_SPEC, f"n{n} {label} {mode}", scratch, reuse))
            for mode in modes:
                auto = (target, n, "T1-auto", mode)
                claims.append(compare(T1_AUTO_SPEC, f"n{n} {mode}", auto, scratch))
            for mode in modes:
                left, right = (target, n, "T1-auto", mode), (target, n, "T1-seg", mode)
                claims.append(compare(T1_SPEC, f"n{n} {mode}", left, right))
        for n in counts:
            for label in PAPER_SOURCES:
                left, right = (target, n, label, "finetune"), (target, n, label, "freeze")
                claims.append(compare(FINETUNE_SPEC, f"n{n} {label}", left, right))
        for n in counts:
            own = [key for key in runs if key[:2] == (target, n) and key[3] == "selffer"]
            if not own:
                reason = f"no selffer run (the target's own tensors frozen) at n{n}"
                claims.append(inconclusive(SELFFER_SPEC, f"{prefix}n{n}", reason))
                continue
            for label in PAPER_SOURCES:
                right = (target, n, label, "freeze")
                claims.append(compare(SELFFER_SPEC, f"n{n} {label}", own[0], right))
    return claims


# --- sweep predicts reuse ------------------------------------------------------------------


def predict_claims(
    runs: dict[RunKey, dict[int, Run]],
    plan_paths: Sequence[Path],
    evidence: Evidence,
    boot: Bootstrap,
    min_points: int,
) -> list[Claim]:
    predicted = predicted_drops(plan_paths, evidence)
    if not predicted:
        return [inconclusive(PREDICT_SPEC, "", evidence.absent("plans", "no reuse plans"))]
    targets = sorted({target for target, _, _ in predicted})
    return [_predict_claim(t, runs, predicted, evidence, boot, min_points) for t in targets]


def _predict_claim(
    target: str,
    runs: dict[RunKey, dict[int, Run]],
    predicted: dict[tuple[str, str, int], float],
    evidence: Evidence,
    boot: Bootstrap,
    min_points: int,
) -> Claim:
    # One point per (source, n): gain = frozen - scratch (same n, seed, patient).
    gains: dict[tuple[str, int], Units] = {}
    for (run_target, n, _, mode), by_seed in sorted(runs.items(), key=str):
        if run_target != target or mode != "freeze" or (target, n, None, "scratch") not in runs:
            continue
        source = next(iter(by_seed.values())).source
        frozen, scratch = paired_units(
            run_units(by_seed), run_units(runs[(target, n, None, "scratch")])
        )
        gain = Units(frozen.series - scratch.series, frozen.per_patient)
        seeds = gain.series.index.get_level_values("seed")
        keep = [(target, str(source), int(seed)) in predicted for seed in seeds]
        gains[(str(source), n)] = Units(gain.series[keep], gain.per_patient)
    points = {point: units for point, units in gains.items() if not units.series.empty}
    if len(points) < min_points:
        why = f"{len(points)} (source, n) points with a plan, frozen and scratch runs; needs {min_points}"
        return inconclusive(PREDICT_SPEC, target, evidence.absent("runs", why), len(points))
    if len({units.per_patient for units in points.values()}) > 1:
        points = {point: units.seed_level() for point, units in points.items()}
    frame = pd.DataFrame({point: units.series for point, units in points.items()}).dropna()
    per_patient = next(iter(points.values())).per_patient
    rhos = []
    for (seed, _), gain in frame.iterrows():
        x = [predicted[(target, source, int(seed))] for source, _ in frame.columns]
        rhos.append(_negative_spearman(np.asarray(x), gain.to_numpy(dtype=float)))
    series = pd.Series(rhos, index=frame.index, dtype=float)
    interval = boot.one(Units(series, per_patient))
    detail = f"{len(points)} points: " + ", ".join(f"{s} n{n}" for s, n in sorted(points))
    return claim_from(PREDICT_SPEC, target, interval, len(points), detail)


def _negative_spearman(predicted: np.ndarray, gain: np.ndarray) -> float:
    if np.ptp(predicted) == 0 or np.ptp(gain) == 0:
        return math.nan  # no order to predict
    return -float(spearmanr(predicted, gain).statistic)
