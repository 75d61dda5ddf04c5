"""The study's tables, each written three ways: CSV (data), Markdown (reading), LaTeX (paper).

`write_table` writes <out_base>.csv (a provenance comment line, then the values at full
precision), <out_base>.md (GitHub table) and <out_base>.tex (booktabs tabular in a table
float). Markdown and LaTeX show floats with a fixed number of decimals, a missing value
(NaN, None) as an en dash, and the text "absent" (a tensor the model lacks) as "absent":
a missing number is never printed as 0. The two formatters are our own, a few lines each,
so the output depends on no optional package (tabulate, jinja2) and is the same bytes for
the same table. Both carry the provenance as a comment.

Builders: `baseline_table` (per-class Dice and mean of every model, or MSE for
auto-encoders, from results/models/*/metrics.json) and `plan_table` (non-reusable layers
per kind and the share reused, from plan JSONs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse import provenance as provenance_lines
from prrmse.errors import PrrmseError
from prrmse.io import atomic_path, read_json
from prrmse.layers import BN_KINDS, CONV_KINDS
from prrmse.plan import load_plan

ABSENT = "absent"
DEFAULT_DECIMALS = 3
MISSING = {"md": "–", "tex": "--"}
CLASS_COLUMNS = ("BG", "RV", "MYO", "LV")  # classes 0..3 of the shared label space
LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


# --- formatting ---------------------------------------------------------------------------


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


def _decimals_of(table: pd.DataFrame, decimals: int | Mapping[str, int] | None) -> dict[str, int]:
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
    table: pd.DataFrame, caption: str, record: dict[str, Any], decimals: dict[str, int],
    label: str,
) -> str:  # fmt: skip
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
    shown = _decimals_of(df, decimals)
    texts = (
        provenance_lines.csv_header(provenance) + df.to_csv(index=False),
        markdown_table(df, caption, provenance, shown),
        latex_table(df, caption, provenance, shown, label=base.name),
    )
    with atomic_path(paths[0]) as csv, atomic_path(paths[1]) as md, atomic_path(paths[2]) as tex:
        for temp, text in zip((csv, md, tex), texts, strict=True):
            temp.write_text(text, encoding="utf-8")
    return paths  # type: ignore[return-value]


# --- builders -----------------------------------------------------------------------------


def _number(value: Any, where: Path, what: str) -> float:
    """A JSON number; null (or NaN) is an undefined value."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, Real):
        raise PrrmseError(where, f"{what} is {value!r}, not a number")
    return float(value)


def _baseline_row(path: Path) -> dict[str, Any]:
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise PrrmseError(path, "not a metrics file: expected a JSON object")
    row: dict[str, Any] = {"model": str(metrics.get("name") or path.parent.name)}
    if "dice" in metrics:
        dice = metrics["dice"]
        if not isinstance(dice, list) or len(dice) != len(CLASS_COLUMNS):
            raise PrrmseError(path, f"dice must list {len(CLASS_COLUMNS)} values (classes 0..3)")
        values = [_number(value, path, f"dice[{i}]") for i, value in enumerate(dice)]
        row.update(zip(CLASS_COLUMNS, values, strict=True))
        foreground = [value for value in values[1:] if not math.isnan(value)]
        fallback = sum(foreground) / len(foreground) if foreground else math.nan
        mean = metrics.get("dice_mean", fallback)
        row["mean"] = _number(mean, path, "dice_mean")
    elif "mse" in metrics:
        row["MSE"] = _number(metrics["mse"], path, "mse")
    else:
        raise PrrmseError(path, "has neither dice (segmentation) nor mse (auto-encoder)")
    return row


def baseline_table(metrics_jsons: Sequence[Path]) -> pd.DataFrame:
    """One row per model, in the given order: Dice of classes 0..3 (BG RV MYO LV), their
    foreground mean, and MSE for auto-encoders (columns only for the kinds present)."""
    if not metrics_jsons:
        raise PrrmseError("baseline table", "no metrics files given")
    rows = [_baseline_row(Path(path)) for path in metrics_jsons]
    names = [row["model"] for row in rows]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PrrmseError("baseline table", f"model named twice: {', '.join(repeated)}")
    columns = ["model"]
    columns += [*CLASS_COLUMNS, "mean"] if any("mean" in row for row in rows) else []
    columns += ["MSE"] if any("MSE" in row for row in rows) else []
    table = pd.DataFrame(rows, columns=columns).astype({c: float for c in columns[1:]})
    table.attrs["decimals"] = {"MSE": 5}
    return table


def _non_reusable(plan: dict[str, Any], kind: str) -> str | None:
    """ "1, 17"; "none" if all are reused; "absent" if the model lacks the kind everywhere;
    None (shown as a dash) if the plan has no such kind at all."""
    entries = [entry for entry in plan["entries"] if entry["kind"] == kind]
    if not entries:
        return None
    decidable = [e for e in entries if e["decision"] != "absent" and not e.get("head", False)]
    if not decidable:
        return ABSENT if any(e["decision"] == "absent" for e in entries) else "head only"
    layers = plan["non_reusable"].get(kind, [])
    return ", ".join(str(layer) for layer in layers) if layers else "none"


def _percent(share: Any) -> float:
    return math.nan if share is None else 100.0 * float(share)


def plan_table(plan_jsons: Sequence[Path]) -> pd.DataFrame:
    """One row per plan: source, target, the non-reusable layers of each kind, and the share
    of entries and of scalars reused, in %."""
    if not plan_jsons:
        raise PrrmseError("plan table", "no plan files given")
    rows = []
    for path in plan_jsons:
        plan = load_plan(Path(path))
        rows.append({
            "source": plan["source"],
            "target": plan["target"],
            **{kind: _non_reusable(plan, kind) for kind in (*BN_KINDS, *CONV_KINDS)},
            "reused entries (%)": _percent(plan["share"].get("entries")),
            "reused scalars (%)": _percent(plan["share"].get("scalars")),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["decimals"] = 1
    return table
