"""The paper's conclusions as testable statements over our results, each with a verdict.

Papers: v1 = arXiv 2008.03414 (Wang, "Using UNet and PSPNet to explore the reusability
principle of CNN parameters"), v2 = arXiv 2008.03411 (Wang et al., "Exploring the parameter
reusability of CNN", PR-RMSE). The claim set follows the paper's conclusions as worded (the
package's `prrmse.results.paper` holds its numbers); each claim carries the paper's own evidence
beside our statistic. Claims of our own (controls, selffer, noise floor, fine-tune vs
freeze, the plan's prediction) are labelled "not in the paper".

Every claim is phrased so that it says "statistic > 0". The statistic is computed per
unit, a (seed, patient) pair where per-patient Dice files exist, else a seed, and its
95 % interval is a bootstrap over seeds and patients within seeds (`prrmse.results.stats`).

Verdict rule: `holds` if the interval lies entirely above 0, `does not hold` if entirely
below 0, else `inconclusive`. Also `inconclusive`: missing evidence, too few points, a
degenerate interval (one seed and no per-patient values), and — the seed policy — any claim
resting on fewer than `min_seeds` (default 3) seeds of training, whatever its interval over
patients says: that interval covers patients, not the variance between training runs.
`interval_says` keeps what the interval alone would say. Verdicts are computed, never
written by hand.

Dice drop of an entry (layer, kind) = baseline minus replaced mean foreground Dice
(classes 1..3, NaN skipped), as the reuse plan uses it; the head is left out (the paper's
figures leave it out) and absent tensors (a conv without bias) are no entries. Reuse runs
are compared on the mean Dice of the four classes, the paper's Table 1 mean.

Inputs (`ClaimInputs`, all optional): sweep CSVs (file names `<target>__<source>[.x].csv`;
a `condition` column source / reinit / rerandom, absent means source; per-patient Dice
found beside each as `<stem>.patients.csv`), RMSE tables (pairs and groups; rows of two
seeds of one model are the noise floor, wherever they come from), noise-floor tables, BN
scale/shift tables, reuse plans, Table 1 (its provenance lists the runs' metrics.json) and
reuse run folders (metrics.json, optional patients.csv). A missing file makes the claims
needing it inconclusive, naming it; a present but malformed file raises PrrmseError naming it.

Modules of `prrmse.results.claims`: `core` (inputs, claim, verdict rule, seed policy, units
and bootstrap), `evidence` (files read and missing, runs, plans, RMSE tables), `drops` (sweep
files, drops, comparisons), and the claim families `sweep`, `reuse`, `rmse`, `bn` and
`floor`; this module evaluates them all and writes
claims.md and claims.csv.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.core import provenance
from prrmse.core.io import atomic_path, sha256_file, write_text_atomic
from prrmse.results.claims.bn import bn_hypothesis_claims
from prrmse.results.claims.core import (
    OURS,
    PAPER,
    V1,
    V2,
    Bootstrap,
    Claim,
    ClaimInputs,
    Entry,
    Spec,
    Units,
    apply_seed_policy,
    verdict_of,
)
from prrmse.results.claims.drops import (
    CONDITIONS,
    PATIENT_COLUMNS,
    Comparison,
    Drops,
    SweepFile,
    comparisons_of,
    drops_of,
)
from prrmse.results.claims.evidence import (
    RUN_PATIENT_COLUMNS,
    Evidence,
    Run,
    RunKey,
    read_runs,
    run_units,
)
from prrmse.results.claims.floor import FLOOR_SPECS, floor_claims
from prrmse.results.claims.reuse import (
    FINETUNE_SPEC,
    NOT_BETTER_SPEC,
    PAPER_SOURCES,
    PREDICT_SPEC,
    SELFFER_SPEC,
    T1_AUTO_SPEC,
    T1_SPEC,
    predict_claims,
    table1_claims,
)
from prrmse.results.claims.rmse import CORE_SPEC, FIG11_SPEC, FIG12_SPEC, rmse_claims
from prrmse.results.claims.sweep import (
    BN_SPEC,
    CONTROL_SPECS,
    CONV_SPEC,
    NETWORK_SPEC,
    RM1_SPEC,
    bn_claim,
    control_claim,
    conv_claim,
    network_claims,
    rm1_claim,
    sweep_claims,
)

__all__ = [
    "BN_SPEC",
    "CONDITIONS",
    "CONTROL_SPECS",
    "CONV_SPEC",
    "CORE_SPEC",
    "CSV_COLUMNS",
    "FIG11_SPEC",
    "FIG12_SPEC",
    "FINETUNE_SPEC",
    "FLOOR_SPECS",
    "NETWORK_SPEC",
    "NOT_BETTER_SPEC",
    "OURS",
    "PAPER",
    "PAPER_SOURCES",
    "PATIENT_COLUMNS",
    "PREDICT_SPEC",
    "RM1_SPEC",
    "RUN_PATIENT_COLUMNS",
    "SELFFER_SPEC",
    "T1_AUTO_SPEC",
    "T1_SPEC",
    "V1",
    "V2",
    "VERDICTS",
    "Bootstrap",
    "Claim",
    "ClaimInputs",
    "Comparison",
    "Drops",
    "Entry",
    "Evidence",
    "Run",
    "RunKey",
    "Spec",
    "SweepFile",
    "Units",
    "bn_claim",
    "bn_hypothesis_claims",
    "claims_frame",
    "claims_markdown",
    "comparisons_of",
    "control_claim",
    "conv_claim",
    "drops_of",
    "evaluate_claims",
    "floor_claims",
    "network_claims",
    "predict_claims",
    "read_runs",
    "rm1_claim",
    "rmse_claims",
    "run_claims",
    "run_units",
    "sweep_claims",
    "table1_claims",
    "verdict_of",
    "write_claims",
]

VERDICTS = ("holds", "does not hold", "inconclusive")
CSV_COLUMNS = [
    "id",
    "scope",
    "verdict",
    "interval_says",
    "estimate",
    "ci_low",
    "ci_high",
    "level",
    "n_seeds",
    "n_patients",
    "n_units",
    "units",
    "degenerate",
    "statistic",
    "statement",
    "paper",
    "paper_evidence",
    "reason",
]


# --- all claims and writing ----------------------------------------------------------------


def evaluate_claims(inputs: ClaimInputs) -> list[Claim]:
    """Every claim with its statistic, interval and verdict, in a fixed order."""
    claims, _ = _evaluate(inputs)
    return claims


def _evaluate(inputs: ClaimInputs) -> tuple[list[Claim], Evidence]:
    evidence = Evidence()
    boot = Bootstrap(inputs.n_boot, inputs.level, inputs.seed)
    runs = read_runs(inputs, evidence)
    claims = table1_claims(runs, evidence, boot)
    claims += rmse_claims(inputs, runs, evidence, boot)
    claims += sweep_claims(inputs.sweeps, evidence, boot)
    claims += bn_hypothesis_claims(list(inputs.bnstats), evidence, boot)
    claims += predict_claims(runs, inputs.plans, evidence, boot, inputs.min_points)
    claims += floor_claims(inputs, evidence, boot)
    # the paper's claims first, ours after, each group in its family order
    claims = [c for c in claims if c.scope == PAPER] + [c for c in claims if c.scope != PAPER]
    return [apply_seed_policy(claim, inputs.min_seeds) for claim in claims], evidence


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    rows = [asdict(claim) for claim in claims]
    frame = pd.DataFrame(rows, columns=[f.name for f in Claim.__dataclass_fields__.values()])
    return frame.rename(columns={"low": "ci_low", "high": "ci_high"})[CSV_COLUMNS]


def _number(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.4g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _interval_text(claim: Claim) -> str:
    if claim.degenerate:
        return "none (one value)"
    if math.isfinite(claim.low):
        return f"[{_number(claim.low)}, {_number(claim.high)}]"
    return "–"


def _verdict_text(claim: Claim) -> str:
    if claim.verdict == "inconclusive" and claim.interval_says not in ("", "inconclusive"):
        return f"inconclusive ({claim.n_seeds} seed{'s' if claim.n_seeds != 1 else ''})"
    return claim.verdict


def claims_markdown(claims: Sequence[Claim], record: dict[str, Any], min_seeds: int = 3) -> str:
    counts = {verdict: sum(claim.verdict == verdict for claim in claims) for verdict in VERDICTS}
    lines = [
        f"<!-- provenance: {json.dumps(record, sort_keys=True, default=str)} -->",
        "# The paper's claims, tested on our results",
        "",
        ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + f" of {len(claims)} claims "
        f"({sum(c.scope == PAPER for c in claims)} the paper's, "
        f"{sum(c.scope != PAPER for c in claims)} ours, not in the paper).",
        "",
        "| claim | whose | the paper's evidence | our estimate | interval | seeds | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim in claims:
        whose = "paper" if claim.scope == PAPER else "ours"
        lines.append(
            f"| {_cell(claim.id)} | {whose} | {_cell(claim.paper_evidence) or '–'} | "
            f"{_number(claim.estimate)} | {_interval_text(claim)} | {claim.n_seeds} | "
            f"{_verdict_text(claim)} |"
        )
    lines += [
        "",
        "## How to read it",
        "",
        "Each claim says *statistic > 0*. Its interval is a percentile bootstrap over seeds "
        "and, where per-patient Dice exists, over validation patients within seeds. Verdict: "
        "**holds** if the interval lies entirely above 0, **does not hold** if entirely "
        "below, else **inconclusive** (also for missing evidence, too few points, or one seed "
        "without per-patient values, where there is no interval).",
        "",
        f"**Seed policy.** Every claim here is about trained models, so it gets *holds* or "
        f"*does not hold* only when it rests on at least {min_seeds} seeds of training. With "
        "fewer it reads *inconclusive (n seeds)*, whatever the interval over patients says: "
        "that interval covers patients, not the variance between training runs. The column "
        "`interval_says` of claims.csv keeps what the interval alone would say.",
        "",
        "The paper's statements are quoted or closely paraphrased from its conclusions; its "
        "evidence column gives its own numbers where it prints them (Table 1: the mean of the "
        "four classes, background included, which is also what we compare runs on). Claims "
        "marked *ours* are not in the paper. Computed by `prrmse claims`, never by hand; "
        "v1 = arXiv 2008.03414, v2 = arXiv 2008.03411.",
    ]
    for claim in claims:
        interval = (
            f"{claim.level:.0%} interval {_interval_text(claim)}"
            if math.isfinite(claim.low) and not claim.degenerate
            else "no interval"
        )
        lines += [
            "",
            f"### {claim.id}: {_verdict_text(claim)}",
            "",
            f"*Paper:* {claim.paper} *Paper's evidence:* {claim.paper_evidence or '–'}. "
            f"*Ours:* {claim.statement} *Statistic:* {claim.statistic}; estimate "
            f"{_number(claim.estimate)}, {interval}; {claim.n_seeds} seeds, "
            f"{claim.n_patients} patients, {claim.n_units} {claim.units}. *Verdict:* "
            f"**{claim.verdict}**, {claim.reason}.",
        ]
    return "\n".join(lines) + "\n"


def write_claims(
    claims: Sequence[Claim],
    md_path: Path,
    csv_path: Path,
    record: dict[str, Any] | None = None,
    min_seeds: int = 3,
) -> None:
    """claims.md (provenance as an HTML comment first) and claims.csv (provenance line first)."""
    stamp = record if record is not None else provenance.stamp(product="claims")
    frame = claims_frame(claims)
    with atomic_path(Path(csv_path)) as temp:
        temp.write_text(provenance.csv_header(stamp) + frame.to_csv(index=False))
    write_text_atomic(Path(md_path), claims_markdown(claims, stamp, min_seeds))


def run_claims(inputs: ClaimInputs, md_path: Path, csv_path: Path) -> list[Claim]:
    """Evaluate every claim and write claims.md and claims.csv, stamped with every input's hash."""
    claims, evidence = _evaluate(inputs)
    read = sorted({str(path) for path in evidence.read})
    record = provenance.stamp(
        product="claims",
        settings={
            "n_boot": inputs.n_boot,
            "level": inputs.level,
            "seed": inputs.seed,
            "min_points": inputs.min_points,
            "min_seeds": inputs.min_seeds,
        },
        inputs={path: sha256_file(path) for path in read},
        missing={what: sorted(paths) for what, paths in sorted(evidence.missing.items())} or None,
    )
    write_claims(claims, md_path, csv_path, record, inputs.min_seeds)
    return claims
