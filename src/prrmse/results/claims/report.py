"""The claims written out: claims.csv (one row per claim) and claims.md (a table, how to
read it, and a paragraph per claim), each stamped with its provenance.

The markdown states the verdict rule and the seed policy (`prrmse.results.claims.core`)
for its readers; a claim resting on fewer seeds than the policy asks reads "inconclusive
(n seeds)", and claims.csv keeps what its interval alone would say (`interval_says`).
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
from prrmse.core.io import atomic_path, write_text_atomic
from prrmse.results.claims.core import PAPER, Claim

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
    lines = [
        f"<!-- provenance: {json.dumps(record, sort_keys=True, default=str)} -->",
        *_claims_table(claims),
        *_how_to_read(min_seeds),
        *_claim_sections(claims),
    ]
    return "\n".join(lines) + "\n"


def _claims_table(claims: Sequence[Claim]) -> list[str]:
    """The heading, the count of each verdict and one table row per claim."""
    counts = {verdict: sum(claim.verdict == verdict for claim in claims) for verdict in VERDICTS}
    lines = [
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
    return lines


def _how_to_read(min_seeds: int) -> list[str]:
    return [
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


def _claim_sections(claims: Sequence[Claim]) -> list[str]:
    """A paragraph per claim: the paper's statement and evidence, ours, the verdict."""
    lines: list[str] = []
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
    return lines


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
