"""The claims over RMSE tables: the RMSE between two models against the seed-to-seed
noise floor, plain and after permutation alignment."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from prrmse.core.naming import network_of_name
from prrmse.results.claims.core import (
    OURS,
    V2,
    Bootstrap,
    Claim,
    ClaimInputs,
    Spec,
    Units,
    claim_from,
    inconclusive,
    seed_index,
)
from prrmse.results.claims.evidence import Evidence, read_rmse

FLOOR_SPECS = {
    column: Spec(
        f"{'aligned-' if column == 'rmse_aligned' else ''}rmse-exceeds-noise-floor",
        f"{OURS} (the paper, {V2} Figs. 11-12, reads raw RMSE between tasks; the seed-to-seed "
        "floor is ours): a difference between tasks is real only above the RMSE between two "
        "seeds of one model, both under the same start regime.",
        "{key}: "
        + ("after permutation alignment, " if column == "rmse_aligned" else "")
        + "the RMSE between the two models exceeds the RMSE between two seeds of one model, "
        "on average over the entries (geometric mean).",
        f"mean over entries of log({column} between / {column} floor); floor: mean over the "
        "seed pairs of both models (else their network's summarised floor)",
        "entries",
        scope=OURS,
        evidence="no noise floor in the paper",
    )
    for column in ("rmse", "rmse_aligned")
}


def floor_claims(inputs: ClaimInputs, evidence: Evidence, boot: Bootstrap) -> list[Claim]:
    tables = [t for p in inputs.rmse if (t := read_rmse(Path(p), evidence, "rmse")) is not None]
    tables += [
        t for p in inputs.noise_floor if (t := read_rmse(Path(p), evidence, "floor")) is not None
    ]
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    same = rows["key_a"] == rows["key_b"] if not rows.empty else pd.Series(dtype=bool)
    floor, between = (rows[same], rows[~same]) if not rows.empty else (rows, rows)
    if between.empty:
        why = evidence.absent("rmse", "no RMSE between different models")
        return [inconclusive(spec, "", why) for spec in FLOOR_SPECS.values()]
    if floor.empty:
        why = evidence.absent("floor", "no RMSE between two seeds of one model (noise floor)")
        return [inconclusive(spec, "", why) for spec in FLOOR_SPECS.values()]
    claims = []
    for column, spec in FLOOR_SPECS.items():
        if column not in between or column not in floor:
            if column == "rmse_aligned":
                claims.append(
                    inconclusive(spec, "", f"no {column} column in the RMSE or floor tables")
                )
            continue
        claims += _floor_claims_of(column, spec, between, floor, boot)
    return claims


def _floor_claims_of(
    column: str, spec: Spec, between: pd.DataFrame, floor: pd.DataFrame, boot: Bootstrap
) -> list[Claim]:
    entry = ["family", "layer", "kind"]
    floors = floor.groupby(["key_a", *entry])[column].mean()
    pairs = list(zip(between["key_a"], between["key_b"], strict=True))
    ordered = between.assign(
        first=[min(pair) for pair in pairs], second=[max(pair) for pair in pairs]
    ).drop_duplicates(["first", "second", "seed", *entry])
    have = set(floors.index.get_level_values("key_a"))

    def floor_of(model: str) -> pd.Series | None:
        # The model's own seed pairs, else its network's summarised floor.
        for key in (model, f"network:{network_of_name(model)}"):
            if key in have:
                return floors.xs(key, level="key_a")
        return None

    claims = []
    for (first, second), pair in ordered.groupby(["first", "second"]):
        key = f"{first} vs {second}"
        found = [f for model in (first, second) if (f := floor_of(model)) is not None]
        if not found:
            claims.append(inconclusive(spec, key, f"no noise floor for {first} or {second}"))
            continue
        reference = pd.concat(found, axis=1).mean(axis=1)
        pair = pair.join(reference.rename("floor"), on=entry)
        usable = pair[(pair["floor"] > 0) & (pair[column] > 0)]
        if usable.empty:
            claims.append(inconclusive(spec, key, "no entry with a positive RMSE and floor"))
            continue
        ratio = np.log(usable[column] / usable["floor"])
        per_seed = ratio.groupby(usable["seed"]).mean()
        interval = boot.one(Units(seed_index(per_seed), False))
        above = float((usable[column] > usable["floor"]).mean())
        n_entries = usable[entry].drop_duplicates().shape[0]
        detail = f"{above:.0%} of entries above the floor; geometric mean ratio {math.exp(ratio.mean()):.3g}"
        claims.append(claim_from(spec, key, interval, n_entries, detail))
    return claims
