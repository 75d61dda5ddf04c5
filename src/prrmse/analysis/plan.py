"""Reuse plan: for every (layer, kind) of one target/source pair, reuse the source's tensor or not.

This module builds the plan document from the replacement sweep and the RMSE table of the
pair (`make_plan`), selects and checks the pair's rows of those tables, and reads a plan
back (`load_plan`); which evidence judges an entry, by which threshold, is
`prrmse.analysis.plan_rules`. The head is never reused (decision "keep"); absent kinds are
"absent". The share reused counts only decidable entries (neither head nor absent), as
entries and as scalars: the paper's PSPNet-b, T1-auto -> ACDC-seg, keeps RM 1,17;
W 1,6,11,12,16,17,19,20; B 1, which is 120 of 131 entries, its "92 % reused".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.analysis.plan_rules import (
    W_CRITERION,
    W_KEY,
    check_calibration,
    check_rms,
    check_rule,
    dice_drops,
    judge,
    relative_rmse,
)
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import read_json
from prrmse.core.kinds import BN_KINDS, CONV_KINDS, KINDS_OF_FAMILY
from prrmse.core.tabular import RMS_COLUMNS, RMSE_COLUMNS, require_columns

DECISIONS = ("reuse", "keep", "absent")
SWEEP_COLUMNS = "family layer module head kind status class dice baseline_dice".split()
PLAN_KEYS = (
    "target source arch layer_counts thresholds rule entries share non_reusable provenance".split()
)
ENTRY_KEYS = ("family", "layer", "module", "kind", "decision", "evidence")
# How an error names the tensor a kind stands for.
KIND_WORDS = dict(RM="running mean", RV="running var", RW="weight", RB="bias", W="weight", B="bias")


def _as_bool(column: pd.Series) -> pd.Series:
    # A CSV round trip may leave "True"/"False" strings where a bool column was written.
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("true", "1"))


def _number(value: Any) -> float | None:
    """JSON has no NaN: an undefined number is null."""
    if value is None or pd.isna(value):
        return None
    return float(value)


def _layer_keys(table: pd.DataFrame) -> set[tuple[str, int, str]]:
    body = table[~_as_bool(table["head"]) & (table["family"] != "baseline")]
    return set(zip(body["family"], body["layer"].astype(int), body["module"], strict=True))


def _check_same_layers(sweep: pd.DataFrame, rmse: pd.DataFrame, where: str) -> None:
    sweep_keys, rmse_keys = _layer_keys(sweep), _layer_keys(rmse)
    if sweep_keys != rmse_keys:
        only_sweep = sorted(sweep_keys - rmse_keys)[:3]
        only_rmse = sorted(rmse_keys - sweep_keys)[:3]
        raise PrrmseError(
            where,
            f"sweep and rmse cover different layers: only in sweep {only_sweep}, "
            f"only in rmse {only_rmse}",
        )


def _entry(
    row: Any, drops: Mapping, thresholds: Mapping[str, Any], rule: str, target_rms: str | None
) -> dict[str, Any]:
    key = (row.family, int(row.layer), row.kind)
    label = f"{'BN' if row.family == 'bn' else 'conv'} {key[1]} {row.kind}"
    drop, rmse = drops.get(key), _number(row.rmse)
    scale = _number(getattr(row, target_rms)) if target_rms else None
    relative = relative_rmse(rmse, scale)
    if row.status == "absent":
        decision, reason = "absent", f"absent: {row.module} has no {KIND_WORDS[row.kind]}"
    elif row.head:
        decision, reason = "keep", "head: never reused"
    else:
        needs_sweep = rule != "rmse" or row.kind != "W"
        if needs_sweep and key not in drops:
            raise PrrmseError("sweep table", f"no replaced rows for {label}")
        if rmse is None and rule != "sweep" and row.kind == "W":
            raise PrrmseError("rmse table", f"no rmse for {label}")
        reusable, reason = judge(row.kind, drop, relative, thresholds, rule)
        decision = "reuse" if reusable else "keep"
    return {
        "family": row.family,
        "layer": key[1],
        "module": row.module,
        "head": bool(row.head),
        "kind": row.kind,
        "decision": decision,
        "numel": None if pd.isna(row.numel) else int(row.numel),
        "evidence": {
            "dice_drop": _number(drop),
            "rmse": rmse,
            "target_rms": scale,
            "rel_rmse": relative,
            "reason": reason,
        },
    }


def make_plan(
    sweep_df: pd.DataFrame,
    rmse_df: pd.DataFrame,
    thresholds: Mapping[str, Any],
    rule: str,
    where: str = "sweep vs rmse",
    target_rms: str = "rms_a",
    calibration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Decisions for every (layer, kind) of the RMSE table, shares and non-reusable layers.

    `rmse_df` holds one pair (tensor_rmse, or one pair of pairwise_rmse); `target_rms`
    names its column with the target's tensor RMS (rms_a: the target is model a).
    `calibration` (from `calibrate`) is required when the rule judges conv W by relative
    RMSE, and recorded in the plan either way.
    """
    rmse = _checked_rmse(sweep_df, rmse_df, thresholds, rule, where, target_rms, calibration)
    scale = target_rms if target_rms in rmse else None
    order = {kind: i for i, kind in enumerate((*BN_KINDS, *CONV_KINDS))}
    rmse = rmse.sort_values(
        ["family", "layer", "kind"], key=lambda c: c.map(order) if c.name == "kind" else c
    )
    drops = dice_drops(sweep_df)
    entries = [_entry(row, drops, thresholds, rule, scale) for row in rmse.itertuples(index=False)]
    recorded = dict(calibration) if calibration is not None else None
    return {
        "layer_counts": {
            family: int(rmse.loc[rmse["family"] == family, "layer"].nunique())
            for family in KINDS_OF_FAMILY
        },
        "thresholds": {
            **dict(thresholds),
            "w_criterion": W_CRITERION if rule != "sweep" else "by the sweep (rule 'sweep')",
            "calibration": recorded,
        },
        "rule": rule,
        "calibration": recorded,
        "entries": entries,
        **_shares(entries),
    }


def _checked_rmse(
    sweep_df: pd.DataFrame,
    rmse_df: pd.DataFrame,
    thresholds: Mapping[str, Any],
    rule: str,
    where: str,
    target_rms: str,
    calibration: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """The pair's RMSE rows (head as bool, layer as int), once the tables, the rule and its
    thresholds fit each other."""
    require_columns(sweep_df, SWEEP_COLUMNS, "sweep table")
    require_columns(rmse_df, RMSE_COLUMNS, "rmse table")
    if "model_a" in rmse_df and len(rmse_df.groupby(["model_a", "model_b"])) > 1:
        raise PrrmseError("rmse table", "holds several pairs; pass the target/source pair's rows")
    rmse = rmse_df.assign(head=_as_bool(rmse_df["head"]), layer=rmse_df["layer"].astype(int))
    _check_same_layers(sweep_df, rmse, where)
    compared = set(rmse.loc[rmse["status"] == "compared", "kind"])
    check_rule(thresholds, rule, compared)
    judges_w = rule != "sweep" and "W" in compared
    if judges_w:
        check_rms(rmse, target_rms, "rmse table")
        check_calibration(calibration, float(thresholds[W_KEY]))
    return rmse


def _shares(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of decidable entries reused (of entries and of scalars), and per kind the
    layers kept."""
    decidable = [e for e in entries if e["decision"] != "absent" and not e["head"]]
    reused = [e for e in decidable if e["decision"] == "reuse"]
    scalars = sum(e["numel"] for e in decidable)
    return {
        "share": {
            "entries": len(reused) / len(decidable) if decidable else None,
            "scalars": sum(e["numel"] for e in reused) / scalars if scalars else None,
        },
        "non_reusable": {
            kind: [e["layer"] for e in decidable if e["kind"] == kind and e["decision"] == "keep"]
            for kind in (*BN_KINDS, *CONV_KINDS)
        },
    }


def _names_match(recorded: Any, name: str) -> bool:
    # Products may record a model by name or by its checkpoint path results/models/<name>/...
    return str(recorded) == name or name in Path(str(recorded)).parts


def check_pair(path: Path, table: pd.DataFrame, target: str, source: str) -> None:
    """Where the sweep records its target/source (columns or provenance), they must match."""
    recorded = provenance.read_csv_provenance(path) or {}
    for role, name in (("target", target), ("source", source)):
        values = set(table[role].astype(str)) if role in table else set()
        values |= {str(recorded[role])} if role in recorded else set()
        wrong = sorted(value for value in values if not _names_match(value, name))
        if wrong:
            raise PrrmseError(path, f"made for {role} {wrong[0]!r}, the plan's {role} is {name!r}")


def pair_rows(
    path: Path, table: pd.DataFrame, target: str, source: str
) -> tuple[pd.DataFrame, str]:
    """The pair's rows and the column holding the target's RMS (rms_a unless the target is
    model b; a table without model columns is taken to have the target as model a)."""
    if "model_a" not in table:
        return table, RMS_COLUMNS[0]
    pairs = {(target, source), (source, target)}
    rows = table[[pair in pairs for pair in zip(table["model_a"], table["model_b"], strict=True)]]
    if rows.empty:
        found = sorted(set(zip(table["model_a"], table["model_b"], strict=True)))[:3]
        raise PrrmseError(path, f"no rows for the pair {target} / {source} (pairs: {found})")
    target_is_a = str(rows["model_a"].iloc[0]) == target
    return rows, RMS_COLUMNS[0] if target_is_a else RMS_COLUMNS[1]


def load_plan(path: Path) -> dict[str, Any]:
    """A validated plan (`prrmse.analysis.plan_models.check_plan_fits` checks it against a model)."""
    plan = read_json(path)
    missing = [key for key in PLAN_KEYS if not isinstance(plan, dict) or key not in plan]
    if missing:
        raise PrrmseError(path, f"not a reuse plan: missing keys {', '.join(missing)}")
    for number, entry in enumerate(plan["entries"], start=1):
        lacking = [key for key in ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if lacking:
            raise PrrmseError(path, f"entry {number} lacks {', '.join(lacking)}")
        if entry["kind"] not in KINDS_OF_FAMILY.get(entry["family"], ()):
            raise PrrmseError(
                path, f"entry {number}: no kind {entry['kind']!r} in family {entry['family']!r}"
            )
        if entry["decision"] not in DECISIONS:
            raise PrrmseError(
                path,
                f"entry {number}: decision {entry['decision']!r} is not one of {', '.join(DECISIONS)}",
            )
    return plan
