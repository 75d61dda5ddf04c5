"""Reading a figure's input tables: the table with its provenance line, the columns and
layers a figure draws from it, and the default title its provenance gives."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.tabular import read_table


def read_input(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table (PrrmseError naming the file if missing, unreadable, lacking columns or
    empty) and its provenance line ({} if it has none)."""
    table = read_table(Path(path), list(required))
    if "head" in table:
        table["head"] = as_bool(table["head"])
    return table, provenance.read_csv_provenance(path) or {}


def as_bool(column: pd.Series) -> pd.Series:
    # A CSV round trip leaves "True"/"False" text where a bool was written.
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("true", "1"))


def model_name(recorded: Any) -> str:
    """A model as products record it, by name or by results/models/<name>/model.safetensors."""
    path = Path(str(recorded))
    return path.parent.name if path.suffix in (".safetensors", ".pt", ".pth") else path.name


def layer_count(table: pd.DataFrame, family: str) -> int:
    """Highest layer number of the family, the head excluded."""
    body = table[(table["family"] == family) & ~table["head"]]
    return int(body["layer"].max()) if not body.empty else 0


def check_unique(table: pd.DataFrame, keys: list[str], where: Path) -> None:
    duplicated = table.duplicated(keys)
    if duplicated.any():
        first = table.loc[duplicated, keys].iloc[0].to_dict()
        raise PrrmseError(where, f"duplicate rows for {first}")


def absent_layers(table: pd.DataFrame, family: str, kind: str) -> list[int]:
    rows = table[(table["family"] == family) & ~table["head"] & (table["kind"] == kind)]
    return sorted(int(layer) for layer in rows.loc[rows["status"] == "absent", "layer"].unique())


def default_title(record: dict[str, Any], what: str, fallback: Path) -> str:
    if "target" in record and "source" in record:
        target, source = model_name(record["target"]), model_name(record["source"])
        return f"{what}: target {target}, source {source}"
    target, sep, source = Path(fallback).stem.partition("__")
    if sep and "summary" in record:
        # a summary over seeds is named <target>__<source> without seeds
        return f"{what}: target {target}, source {source} (mean over seeds)"
    return f"{what}: {Path(fallback).stem}"
