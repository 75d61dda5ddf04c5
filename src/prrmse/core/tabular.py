"""Reading the pipeline's tidy CSV tables (provenance comment line skipped).

Kept free of torch and smp: figure, summary and table jobs read tables and nothing else,
and importing the model code would cost each such job seconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """A tidy CSV (provenance comment skipped) with at least the `required` columns."""
    path = Path(path)
    if not path.is_file():
        raise PrrmseError(path, "file not found")
    try:
        # Module names stay text even where a Sequential numbers them "0", "1", ...
        table = pd.read_csv(path, comment="#", dtype={"module": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PrrmseError(path, f"not a readable CSV ({exc})") from exc
    require_columns(table, required, path)
    if table.empty:
        raise PrrmseError(path, "has no rows")
    return table


def require_columns(table: pd.DataFrame, required: list[str], where: str | Path) -> None:
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise PrrmseError(where, f"missing columns: {', '.join(missing)}")


# The columns of an RMSE table (prrmse.analysis.rmse writes them; readers here need no torch).
RMSE_COLUMNS = ["family", "layer", "module", "head", "kind", "status", "numel", "rmse"]
# Written after RMSE_COLUMNS (and rmse_aligned): each tensor's RMS, model a's and model b's.
# Not required by every reader; the plan needs them to judge conv W by relative RMSE.
RMS_COLUMNS = ["rms_a", "rms_b"]
# An RMSE-to-ideal table (Figs. 13-14): RMSE_COLUMNS of each reuse run against the ideal model.
IDEAL_COLUMNS = ["run", *RMSE_COLUMNS]
# The columns of a CKA table (prrmse.analysis.cka writes them, its figure reads them without torch).
CKA_COLUMNS = ["model_a", "model_b", "layer_a", "module_a", "layer_b", "module_b", "cka"]


def write_table_csv(path: Path, table: pd.DataFrame, stamp: dict) -> None:
    """Provenance comment line, then the table; written under a temp name and renamed."""
    with atomic_path(path) as temp:
        temp.write_text(provenance.csv_header(stamp) + table.to_csv(index=False))
