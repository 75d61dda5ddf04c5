"""How a table is written: `write_table` writes <out_base>.csv (a provenance comment line,
then the values at full precision), <out_base>.md (GitHub table) and <out_base>.tex
(booktabs tabular in a table float), all three or none.

Markdown (reading) and LaTeX (paper) text of a DataFrame, floats
with a fixed number of decimals, a missing value (NaN, None) as an en dash, and the text
"absent" (a tensor the model lacks) as "absent": a missing number is never printed as 0.
The two formatters are our own, a few lines each, so the output depends on no optional
package (tabulate, jinja2) and is the same bytes for the same table. Both carry the
provenance as a comment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.core import provenance as provenance_lines
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path

DEFAULT_DECIMALS = 3
MISSING = {"md": "–", "tex": "--"}
LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_cell(value: Any, decimals: int) -> str | None:
    """Display text of one value; None for a missing one (each format prints it its way)."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        return f"{float(value):.{decimals}f}"
    return str(value)


def decimals_of(table: pd.DataFrame, decimals: int | Mapping[str, int] | None) -> dict[str, int]:
    # Builders leave per-column decimals in table.attrs (percentages 1, MSE 5, Dice 3).
    chosen = table.attrs.get("decimals", DEFAULT_DECIMALS) if decimals is None else decimals
    if isinstance(chosen, Mapping):
        return {str(c): int(chosen.get(c, DEFAULT_DECIMALS)) for c in table.columns}
    return {str(c): int(chosen) for c in table.columns}


def _cells(table: pd.DataFrame, decimals: dict[str, int], missing: str) -> list[list[str]]:
    return [
        [
            text if (text := format_cell(value, decimals[str(column)])) is not None else missing
            for column, value in zip(table.columns, row, strict=True)
        ]
        for row in table.itertuples(index=False, name=None)
    ]


def _numeric(table: pd.DataFrame) -> list[bool]:
    return [pd.api.types.is_numeric_dtype(table[c]) and table[c].dtype != bool for c in table]


def markdown_table(
    table: pd.DataFrame, caption: str, record: dict[str, Any], decimals: dict[str, int]
) -> str:
    """A GitHub Markdown table, numbers right-aligned, caption above, provenance comment."""

    def escape(text: str) -> str:
        return text.replace("|", r"\|").replace("\n", " ")

    header = [escape(str(column)) for column in table.columns]
    rule = ["---:" if numeric else ":---" for numeric in _numeric(table)]
    rows = [[escape(cell) for cell in row] for row in _cells(table, decimals, MISSING["md"])]
    lines = [f"<!-- provenance: {json.dumps(record, sort_keys=True, default=str)} -->", ""]
    lines += [f"**{escape(caption)}**", ""] if caption else []
    lines += ["| " + " | ".join(cells) + " |" for cells in (header, rule, *rows)]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(char, char) for char in text).replace("–", "--")


def latex_table(
    table: pd.DataFrame,
    caption: str,
    record: dict[str, Any],
    decimals: dict[str, int],
    label: str,
) -> str:
    """A booktabs tabular in a table float; needs \\usepackage{booktabs}."""
    spec = "".join("r" if numeric else "l" for numeric in _numeric(table))
    header = " & ".join(latex_escape(str(column)) for column in table.columns)
    rows = [
        " & ".join(latex_escape(cell) for cell in row) + r" \\"
        for row in _cells(table, decimals, "–")  # escaped to an en dash "--" below
    ]
    lines = [
        f"% provenance: {json.dumps(record, sort_keys=True, default=str)}",
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[htbp]",
        r"  \centering",
        rf"  \caption{{{latex_escape(caption)}}}",
        rf"  \label{{tab:{latex_escape(label)}}}",
        rf"  \begin{{tabular}}{{{spec}}}",
        r"    \toprule",
        f"    {header} \\\\",
        r"    \midrule",
        *(f"    {row}" for row in rows),
        r"    \bottomrule",
        r"  \end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame,
    out_base: Path,
    caption: str,
    provenance: dict[str, Any],
    decimals: int | Mapping[str, int] | None = None,
) -> tuple[Path, Path, Path]:
    """<out_base>.csv, .md and .tex; renamed into place only once all three are written.

    `decimals` (one number, or per column) sets the decimals shown in .md and .tex;
    default: what the builder left in df.attrs["decimals"], else 3.
    """
    if df.columns.empty:
        raise PrrmseError(out_base, "table has no columns")
    base = Path(out_base)
    paths = tuple(base.with_name(base.name + suffix) for suffix in (".csv", ".md", ".tex"))
    shown = decimals_of(df, decimals)
    texts = (
        provenance_lines.csv_header(provenance) + df.to_csv(index=False),
        markdown_table(df, caption, provenance, shown),
        latex_table(df, caption, provenance, shown, label=base.name),
    )
    with atomic_path(paths[0]) as csv, atomic_path(paths[1]) as md, atomic_path(paths[2]) as tex:
        for temp, text in zip((csv, md, tex), texts, strict=True):
            temp.write_text(text, encoding="utf-8")
    return paths  # type: ignore[return-value]
