"""The paper's own numbers, transcribed into package resources, read in one place.

Sources: v1 = W. Wang, "Using UNet and PSPNet to explore the reusability principle of CNN
parameters", arXiv 2008.03414; v2 = W. Wang, L. Cheng, Y. Zhu, D. Liang, "Exploring the
parameter reusability of CNN", arXiv 2008.03411. Each resource file names its source in its
comment lines:

- `paper_table1.csv`: v2 Table 1 (= v1 Table 3), 14 rows, classes 0..3 and the printed mean
  (all four classes, background included); the misprinted n50 RVSC-seg freeze mean is
  flagged in its `note`.
- `paper_baseline.csv`: v1 Tables 1-2, baseline Dice of UNet and PSPNet (with and without
  conv bias).
- `paper_plan.json`: the reuse plan of v1/v2 section 3.1 (PSPNet, T1-auto -> ACDC-seg).

Products record a resource by its place in the package (`recorded_name`) and its sha256,
so a product's bytes do not depend on where the code is checked out.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.core.errors import PrrmseError
from prrmse.core.io import read_json
from prrmse.core.tabular import read_table

RESOURCES = Path(str(resources.files("prrmse") / "resources"))
TABLE1_CSV = RESOURCES / "paper_table1.csv"
BASELINE_CSV = RESOURCES / "paper_baseline.csv"
PLAN_JSON = RESOURCES / "paper_plan.json"
CLASSES = ("dice_0", "dice_1", "dice_2", "dice_3")
TABLE1_KEYS = ("n_train", "source", "mode")
V1, V2 = "v1 (arXiv 2008.03414)", "v2 (arXiv 2008.03411)"
Table1Key = tuple[int, str | None, str]


def recorded_name(path: Path) -> str:
    """A packaged resource by its place in the package; any other file as given."""
    path = Path(path)
    if path.resolve().parent == RESOURCES.resolve():
        return f"prrmse/resources/{path.name}"
    return str(path)


def source_label(value: Any) -> str | None:
    """A Table 1 row's source; scratch rows have none (None, NaN or an empty cell)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)


def _fractions(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            raise PrrmseError(path, f"{column}: {table.loc[bad, column].iloc[0]!r} is not a number")
        if ((values < 0) | (values > 1)).any():
            raise PrrmseError(
                path, f"{column}: Dice must be a fraction in [0, 1], not a percentage"
            )
        table[column] = values.astype(float)


def read_table1(path: Path = TABLE1_CSV) -> pd.DataFrame:
    """The paper's Table 1: n_train, source, mode, dice_0..3, dice_mean (printed), note.

    `dice_mean4` is the mean of all four classes as the paper defines it: the printed mean,
    except where the note flags a misprint, where it is the mean of the printed classes.
    """
    table = read_table(Path(path), [*TABLE1_KEYS, *CLASSES, "dice_mean"])
    table["source"] = pd.Series([source_label(v) for v in table["source"]], dtype=object)
    table["n_train"] = table["n_train"].astype(int)
    _fractions(table, [*CLASSES, "dice_mean"], Path(path))
    if table.duplicated(list(TABLE1_KEYS)).any():
        row = table.loc[table.duplicated(list(TABLE1_KEYS)), list(TABLE1_KEYS)].iloc[0]
        raise PrrmseError(path, f"duplicate row {tuple(row)}")
    note = table["note"].fillna("").astype(str) if "note" in table else pd.Series([""] * len(table))
    table["note"] = note
    misprint = note.str.startswith("misprint")
    table["dice_mean4"] = table["dice_mean"].where(~misprint, table[list(CLASSES)].mean(axis=1))
    table["dice_fg"] = table[["dice_1", "dice_2", "dice_3"]].mean(axis=1)
    return table


def table1_rows(path: Path = TABLE1_CSV) -> dict[Table1Key, pd.Series]:
    return {
        (int(row["n_train"]), source_label(row["source"]), str(row["mode"])): row
        for _, row in read_table1(path).iterrows()
    }


def table1_label(key: Table1Key) -> str:
    n, source, mode = key
    return f"n{n} scratch" if source is None else f"n{n} {source} {mode}"


def table1_value_text(key: Table1Key, rows: dict[Table1Key, pd.Series]) -> str:
    """ "n10 T1-seg freeze 0.67" from the paper's 4-class mean; a misprint says so."""
    row = rows.get(key)
    if row is None:
        return f"{table1_label(key)}: not in the paper"
    text = f"{table1_label(key)} {row['dice_mean4']:.2f}"
    if row["note"].startswith("misprint"):
        text += f" (printed {row['dice_mean']:.2f}, a misprint)"
    return text


def read_baseline(path: Path = BASELINE_CSV) -> pd.DataFrame:
    """network, conv_bias (True/False/None), model, dice_0..3 of the paper's baselines."""
    table = read_table(Path(path), ["network", "conv_bias", "model", *CLASSES])
    _fractions(table, list(CLASSES), Path(path))
    table["conv_bias"] = [
        None if pd.isna(v) or str(v) == "" else str(v).strip().lower() == "true"
        for v in table["conv_bias"]
    ]
    return table


def read_plan(path: Path = PLAN_JSON) -> dict[str, Any]:
    """The paper's reuse plan: source, target, non_reusable per kind, share_reused_percent."""
    plan = read_json(Path(path))
    needed = ("source", "target", "non_reusable", "share_reused_percent")
    missing = [key for key in needed if not isinstance(plan, dict) or key not in plan]
    if missing:
        raise PrrmseError(path, f"not the paper's plan: missing {', '.join(missing)}")
    return plan
