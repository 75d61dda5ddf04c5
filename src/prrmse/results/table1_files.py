"""Table 1's files: <out_base>.csv (provenance line first), .md and .tex, the findings CSV
and the metrics JSON `dvc metrics` reads, all from the reuse runs' metrics
(`prrmse.results.table1` computes the table). `make_table1` is what `prrmse table1` runs;
`reuse_runs_from_metrics` reads each run's name from its folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.core import provenance
from prrmse.core.io import atomic_path, sha256_file, write_json_atomic
from prrmse.core.naming import parse_run_name
from prrmse.results import paper
from prrmse.results.summary import DEFAULT_BOOTSTRAP, BootstrapSettings
from prrmse.results.table1 import CLASS_LABELS, KEYS, PAPER_CSV, table1
from prrmse.results.table1_findings import MIN_SEEDS, table1_findings

_source = paper.source_label


def reuse_runs_from_metrics(metrics_jsons: Sequence[Path]) -> list[dict[str, Any]]:
    """The runs Table 1 is made from, one per `<run name>/metrics.json` (with the folder's
    patients.csv where there is one): subset, source, mode, seed and the files."""
    runs = []
    for path in metrics_jsons:
        run = parse_run_name(Path(path).parent.name)
        patients = Path(path).parent / "patients.csv"
        runs.append(
            {
                "n_train": run.model.n_train,
                "source": run.source_label,
                "mode": run.mode,
                "seed": run.model.seed,
                "metrics_json": Path(path),
                "patients_csv": patients if patients.exists() else None,
            }
        )
    return runs


def _header(column: str) -> str:
    names = {
        "n_train": "n",
        "n_seeds": "seeds",
        "n_patients": "patients",
        "paper_note": "paper note",
        "dice_mean4_sd": "mean (4) sd over seeds",
        "dice_mean4_low": "mean (4) 95% low",
        "dice_mean4_high": "mean (4) 95% high",
        "paper_dice_fg": "paper mean (RV, MYO, LV), computed",
    }
    if column in names:
        return names[column]
    for prefix, word in (("paper_", "paper "), ("diff_", "Δ ")):
        if column.startswith(prefix):
            return word + CLASS_LABELS[column[len(prefix) :]]
    return CLASS_LABELS.get(column, column)


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells: 3 decimals; ours undefined "NaN", the paper's (and so the difference) "n/a"."""
    shown = table.copy().astype(object)
    for column in table.columns:
        if column in KEYS or column in ("n_seeds", "n_patients", "paper_note"):
            continue
        missing = "n/a" if column.startswith(("paper_", "diff_")) else "NaN"
        shown[column] = [missing if pd.isna(v) else f"{v:.3f}" for v in table[column]]
    shown["source"] = ["—" if _source(s) is None else s for s in table["source"]]
    shown["paper_note"] = ["" if pd.isna(v) else str(v) for v in table["paper_note"]]
    return shown


def _markdown(shown: pd.DataFrame, caption: str) -> str:
    headers = [_header(c) for c in shown.columns]
    lines = [f"**{caption}**", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def _latex(shown: pd.DataFrame, caption: str) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("_", r"\_").replace("—", "--").replace("Δ", r"$\Delta$")

    spec = "lll" + "r" * (len(shown.columns) - 3)
    lines = [
        r"\begin{table}",
        r"\centering",
        rf"\caption{{{cell(caption)}}}",
        r"\label{tab:table1}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(cell(_header(c)) for c in shown.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CAPTION = (
    "Table 1: ACDC segmentation Dice (BG, RV, MYO, LV) after training PSPNet-ResNet18 with 10 "
    "or 50 patients from scratch or from T1-seg, T1-auto, RVSC-seg parameters, frozen or "
    "fine-tuned. Mean (4 classes), background included, is the paper's definition and is "
    "compared with the paper's (arXiv 2008.03411, Table 1); mean (RV, MYO, LV) is the "
    "foreground mean, computed for the paper from its classes. Intervals: 95 % bootstrap "
    "over seeds and validation patients."
)


def write_table1(
    table: pd.DataFrame, out_base: Path, record: dict[str, Any] | None = None
) -> list[Path]:
    """<out_base>.csv (provenance line first), .md and .tex, renamed into place only once all
    three are written (a full disk at the .tex leaves no .csv that looks complete)."""
    stamp = record if record is not None else provenance.stamp(table="table1")
    shown = display(table)
    paths = [Path(f"{out_base}.{suffix}") for suffix in ("csv", "md", "tex")]
    csv = shown.assign(source=[_source(s) or "" for s in table["source"]])
    texts = (
        provenance.csv_header(stamp) + csv.to_csv(index=False),
        _markdown(shown, CAPTION),
        _latex(shown, CAPTION),
    )
    with (
        atomic_path(paths[0]) as csv_temp,
        atomic_path(paths[1]) as md,
        atomic_path(paths[2]) as tex,
    ):
        for temp, text in zip((csv_temp, md, tex), texts, strict=True):
            temp.write_text(text)
    return paths


def write_findings(findings: list[dict[str, Any]], path: Path, record: dict[str, Any]) -> None:
    frame = pd.DataFrame(findings)
    with atomic_path(path) as temp:
        temp.write_text(provenance.csv_header(record) + frame.to_csv(index=False))


def make_table1(
    runs: Sequence[dict[str, Any]],
    out_base: Path,
    paper_csv: Path = PAPER_CSV,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
    min_seeds: int = MIN_SEEDS,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Table 1 and its findings from the runs: <out_base>.{csv,md,tex} and <out_base>-findings.csv."""
    table = table1(runs, paper_csv, bootstrap)
    findings = table1_findings(table, min_seeds)
    inputs = [Path(run["metrics_json"]) for run in runs] + [Path(paper_csv)]
    inputs += [Path(run["patients_csv"]) for run in runs if run.get("patients_csv")]
    record = provenance.stamp(
        table="table1",
        runs=[
            {k: (str(v) if k.endswith(("_json", "_csv")) else v) for k, v in run.items()}
            for run in runs
        ],
        bootstrap={"n_boot": bootstrap.n_boot, "level": bootstrap.level, "seed": bootstrap.seed},
        min_seeds=min_seeds,
        inputs={paper.recorded_name(path): sha256_file(path) for path in inputs},
    )
    write_table1(table, out_base, record)
    write_findings(findings, Path(f"{out_base}-findings.csv"), record)
    write_table1_metrics(table, Path(f"{out_base}-metrics.json"), record)
    return table, findings


def write_table1_metrics(table: pd.DataFrame, path: Path, record: dict[str, Any]) -> None:
    """<out_base>-metrics.json for `dvc metrics show`/`diff`: per row ("n10 T1-seg freeze"),
    our mean Dice over the four classes and over the foreground, and the paper's 4-class
    mean; NaN is written as null (DVC skips it). Only the stamp's code version is kept:
    DVC shows every value of a metrics file as a column."""

    def number(value: Any) -> float | None:
        return None if value is None or pd.isna(value) else round(float(value), 6)

    rows: dict[str, dict[str, float | int | None]] = {}
    for _, row in table.iterrows():
        key = (int(row["n_train"]), _source(row["source"]), str(row["mode"]))
        rows[paper.table1_label(key)] = {
            "dice_mean4": number(row["dice_mean4"]),
            "dice_fg": number(row["dice_fg"]),
            "paper_dice_mean4": number(row["paper_dice_mean4"]),
            "n_seeds": int(row["n_seeds"]),
        }
    payload = {"table1": rows, "provenance": {"table": "table1", "code": record.get("code")}}
    write_json_atomic(path, payload)
