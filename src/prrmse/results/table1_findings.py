"""Statements about Table 1, on our numbers and on the paper's, each labelled by whose it is.

The paper's (v2, from Table 1, as worded in `paper-facts`):
- conclusion (1), "loading pre-training parameters may not necessarily improve the
  results": rows 1 vs 2, 3, 6, 7 — T1-seg and RVSC-seg, frozen or fine-tuned, are no
  better than scratch, at 10 and at 50 patients;
- conclusion (2), rows 4, 5 vs 1: T1-auto reuse, frozen and fine-tuned, beats scratch.

Ours, "not in the paper": fine-tuned vs frozen for each source (the paper's own numbers
go both ways: T1-seg n50, 0.82 frozen vs 0.81 fine-tuned), and the selffer control (the
target's own tensors frozen) at least as good as scratch.

A finding compares two rows' mean Dice of the four classes (the paper's definition), as
point estimates. Ours gets "holds" / "does not hold" only where both rows rest on at least
`min_seeds` seeds of training (default 3); with fewer it is "inconclusive (n seeds)",
whatever the point estimates say. `prrmse claims` tests the same statements with paired
bootstrap intervals.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from prrmse.results.paper import V2, Table1Key, source_label, table1_label

MIN_SEEDS = 3
METRIC = "dice_mean4"
PAPER_SCOPE = f"paper, {V2} Table 1"
OURS_SCOPE = "not in the paper"
Finding = tuple[str, str, Table1Key, str, Table1Key]  # (statement, scope, left, op, right)


def _findings_of(keys: list[Table1Key]) -> list[Finding]:
    found: list[Finding] = []
    for n in (10, 50):
        scratch: Table1Key = (n, None, "scratch")
        for source in ("T1-seg", "RVSC-seg"):
            for mode in ("freeze", "finetune"):
                found.append(
                    (
                        f"reuse does not necessarily help: {source} {mode} is no better than "
                        f"scratch at {n} patients",
                        f"{PAPER_SCOPE}, conclusion (1)",
                        scratch,
                        ">=",
                        (n, source, mode),
                    )
                )
        for mode in ("freeze", "finetune"):
            found.append(
                (
                    f"T1-auto {mode} beats scratch at {n} patients",
                    f"{PAPER_SCOPE}, conclusion (2)",
                    (n, "T1-auto", mode),
                    ">",
                    scratch,
                )
            )
    for n in (10, 50):
        for source in ("T1-seg", "T1-auto", "RVSC-seg"):
            found.append(
                (
                    f"fine-tuned beats frozen: {source}, {n} patients",
                    OURS_SCOPE,
                    (n, source, "finetune"),
                    ">",
                    (n, source, "freeze"),
                )
            )
    for key in keys:
        if key[2] == "selffer":
            found.append(
                (
                    f"the selffer control is at least as good as scratch at {key[0]} patients",
                    OURS_SCOPE,
                    key,
                    ">=",
                    (key[0], None, "scratch"),
                )
            )
    return found


def compare(left: float, op: str, right: float) -> bool | None:
    if math.isnan(left) or math.isnan(right):
        return None
    return left >= right if op == ">=" else left > right


def _verdict(holds: bool | None, n_seeds: int, min_seeds: int) -> str:
    if holds is None:
        return "inconclusive (a value is missing)"
    if n_seeds < min_seeds:
        return f"inconclusive ({n_seeds} seed{'s' if n_seeds != 1 else ''})"
    return "holds" if holds else "does not hold"


def table1_findings(table: pd.DataFrame, min_seeds: int = MIN_SEEDS) -> list[dict[str, Any]]:
    """Each statement with both rows' values, on our numbers and the paper's (Table 1's
    columns dice_mean4, paper_dice_mean4 and n_seeds)."""
    index: dict[Table1Key, Any] = {
        (int(row["n_train"]), source_label(row["source"]), str(row["mode"])): row
        for _, row in table.iterrows()
    }
    rows = []
    for statement, scope, left, op, right in _findings_of(list(index)):
        values = {
            who: [
                float(index[key][prefix + METRIC]) if key in index else math.nan
                for key in (left, right)
            ]
            for who, prefix in (("ours", ""), ("paper", "paper_"))
        }
        seeds = [int(index[key]["n_seeds"]) if key in index else 0 for key in (left, right)]
        holds_ours = compare(values["ours"][0], op, values["ours"][1])
        holds_paper = compare(values["paper"][0], op, values["paper"][1])
        rows.append(
            {
                "finding": statement,
                "scope": scope,
                "metric": f"{METRIC} (mean of the 4 classes, background included)",
                "left": table1_label(left),
                "op": op,
                "right": table1_label(right),
                "paper_left": values["paper"][0],
                "paper_right": values["paper"][1],
                "holds_paper": "n/a" if holds_paper is None else ("yes" if holds_paper else "no"),
                "ours_left": values["ours"][0],
                "ours_right": values["ours"][1],
                "n_seeds": min(seeds),
                "point_estimate_holds": "n/a"
                if holds_ours is None
                else ("yes" if holds_ours else "no"),
                "ours": _verdict(holds_ours, min(seeds), min_seeds),
            }
        )
    return rows
