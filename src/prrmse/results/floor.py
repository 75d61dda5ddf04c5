"""The seed-to-seed noise floor of RMSE: how far apart two models of one task drift by seed alone.

Input: RMSE pair tables of models that differ only in their seed (same network, task,
dataset and training data, e.g. `pspnet-seg-acdc-s1` vs `pspnet-seg-acdc-s2`). Output per
(network, family, layer, kind): the mean over those pairs and the band from the smallest
to the largest pair. The band is drawn behind every RMSE figure, so "small RMSE" reads as
small against what a second training run alone produces. Min-max rather than a
confidence interval: with a handful of pairs it is the honest description of the spread.

Start regimes (`prrmse.models.start`): the floor compares like with like only if its seed pairs
start as the between-task pairs do. Train.py gives them that by construction: with a
shared (or file) encoder start, both seeds of a model load the same encoder file, as
every model of the network does, while the independent parts of every model, seed and
task are their own draws. The RMSE tables' provenance records each model's start;
`table_regimes` reads it, `noise_floor` refuses seed pairs whose two models, or whose
tables, started under different regimes, and the floor CSV's provenance names the regime.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.naming import parse_model_name
from prrmse.core.provenance import read_csv_provenance
from prrmse.core.tabular import read_table, write_table_csv
from prrmse.models.start import regime
from prrmse.results.summary import seedless

FLOOR_KEYS = ["network", "family", "layer", "kind"]


def check_seed_pair(table: pd.DataFrame, where: Path) -> str:
    """The network of a table whose every pair is one model at two seeds."""
    networks = set()
    for a, b in table[["model_a", "model_b"]].drop_duplicates().itertuples(index=False):
        spec_a, spec_b = parse_model_name(str(a)), parse_model_name(str(b))
        if seedless(a) != seedless(b) or spec_a.seed == spec_b.seed:
            raise PrrmseError(where, f"{a} vs {b} is not one model at two seeds")
        networks.add(spec_a.network)
    if len(networks) != 1:
        raise PrrmseError(where, f"pairs of several networks ({', '.join(sorted(networks))})")
    return networks.pop()


def table_regimes(path: Path) -> dict[str, Any]:
    """Model name -> start regime (`prrmse.models.start.regime`) from an RMSE table's provenance;
    None for a model whose checkpoint records no start (trained before start regimes)."""
    record = read_csv_provenance(path) or {}
    starts = record.get("starts") or {}
    return {name: None if start is None else regime(start) for name, start in starts.items()}


def check_regimes(paths: Sequence[Path]) -> Any:
    """The one start regime of every model of the tables (None if none records one)."""
    seen: dict[str, tuple[Any, Path]] = {}
    for path in paths:
        for name, found in table_regimes(path).items():
            key = json.dumps(found, sort_keys=True)
            if seen and key not in seen:
                other, where = next(iter(seen.values()))
                raise PrrmseError(
                    path,
                    f"{name} started under {found}, but a model of {where} under {other}: "
                    "the floor would not compare like with like",
                )
            seen.setdefault(key, (found, path))
    return next(iter(seen.values()))[0] if seen else None


def noise_floor(paths: Sequence[Path]) -> pd.DataFrame:
    """Per (network, family, layer, kind): floor mean, low (min), high (max) over seed pairs,
    for raw RMSE and, where the tables have it, permutation-aligned RMSE."""
    frames = []
    for path in paths:
        table = read_table(path, [])
        missing = {"model_a", "model_b", "family", "layer", "kind", "status", "rmse"} - set(
            table.columns
        )
        if missing:
            raise PrrmseError(path, f"missing column(s) {', '.join(sorted(missing))}")
        network = check_seed_pair(table, path)
        frames.append(table[table["status"] == "compared"].assign(network=network, pair=str(path)))
    if not frames:
        raise PrrmseError("noise floor", "needs RMSE tables of at least one model at two seeds")
    stacked = pd.concat(frames, ignore_index=True)
    values = ["rmse"] + (["rmse_aligned"] if "rmse_aligned" in stacked.columns else [])
    rows = []
    for key, group in stacked.groupby(FLOOR_KEYS, sort=False):
        row = dict(zip(FLOOR_KEYS, key, strict=True))
        row["head"] = bool(group["head"].iloc[0]) if "head" in group else False
        for column in values:
            samples = pd.to_numeric(group[column], errors="coerce").to_numpy(float)
            ok = samples[~np.isnan(samples)]
            prefix = "floor" if column == "rmse" else "floor_aligned"
            row[prefix] = float(ok.mean()) if ok.size else np.nan
            row[f"{prefix}_low"] = float(ok.min()) if ok.size else np.nan
            row[f"{prefix}_high"] = float(ok.max()) if ok.size else np.nan
        row["n_pairs"] = int(group["pair"].nunique())
        row["models"] = " ".join(sorted({seedless(m) for m in group["model_a"]}))
        rows.append(row)
    return pd.DataFrame(rows)


def run_noise_floor(paths: Sequence[Path], out_csv: Path) -> pd.DataFrame:
    paths = [Path(p) for p in paths]
    table = noise_floor(paths)
    by_network: dict[str, list[Path]] = {}
    for path in paths:
        by_network.setdefault(check_seed_pair(read_table(path, []), path), []).append(path)
    regimes = {network: check_regimes(group) for network, group in by_network.items()}
    record = provenance.stamp(
        what="seed-to-seed RMSE noise floor",
        start_regime=regimes,
        inputs={str(p): sha256_file(p) for p in paths},
    )
    write_table_csv(out_csv, table, record)
    return table


def floor_for(
    floor: pd.DataFrame | None, network: str, family: str, kind: str, n_layers: int
) -> pd.DataFrame | None:
    """Floor rows of one network's (family, kind) for layers 1..n_layers, head excluded."""
    if floor is None:
        return None
    rows = floor[
        (floor["network"] == network) & (floor["family"] == family) & (floor["kind"] == kind)
    ]
    if "head" in rows.columns:
        rows = rows[~rows["head"].astype(str).str.lower().eq("true")]
    if rows.empty:
        return None
    return (
        rows.set_index("layer")[["floor", "floor_low", "floor_high"]]
        .astype(float)
        .reindex(range(1, n_layers + 1))
    )
