"""The paper's Table 1: ACDC segmentation Dice after reuse fine-tuning, ours beside the paper's.

Runs: 10 and 50 training patients, each from scratch and from T1-seg, T1-auto and RVSC-seg
parameters, frozen or fine-tuned (14 runs a seed). Each run gives its metrics.json from
train.py: per-class Dice (classes 0..3, background included; NaN where undefined) and
`dice_mean`, the mean over the foreground classes 1..3 (NaN skipped), the same number that
selects the best epoch. The paper's baselines quote RV, MYO and LV only, so its "mean" is
taken to be over those three; the background Dice, near 1 everywhere, would only dilute
differences. With several seeds a cell is the mean over seeds (NaN skipped) and
`dice_mean_sd` their standard deviation.

Row order: for 10, then 50 patients, scratch, then for each source frozen, fine-tuned. The
paper's own row order could not be checked (no copy of its Table 1 in our sources).

The paper's values come from resources/paper_table1.csv, which holds none yet: its cells are
empty until someone transcribes them, and an empty cell shows as "n/a" for the paper and
the difference, never as a guess. `table1_findings` evaluates statements about Table 1
(as the study's brief reads the paper) on our numbers, and on the paper's where filled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prrmse import provenance
from prrmse.errors import PrrmseError
from prrmse.io import atomic_path, read_json, sha256_file
from prrmse.stats import bootstrap_ci
from prrmse.summary import DEFAULT_BOOTSTRAP, BootstrapSettings
from prrmse.tabular import read_table

SOURCES = ("T1-seg", "T1-auto", "RVSC-seg")
N_TRAIN = (10, 50)
MODES = ("scratch", "freeze", "finetune", "selffer")
KEYS = ["n_train", "source", "mode"]
DICE = ["dice_0", "dice_1", "dice_2", "dice_3", "dice_mean"]
CLASS_LABELS = {
    "dice_0": "BG",
    "dice_1": "RV",
    "dice_2": "MYO",
    "dice_3": "LV",
    "dice_mean": "mean",
}
PAPER_CSV = Path(str(resources.files("prrmse") / "resources" / "paper_table1.csv"))
Key = tuple[int, str | None, str]


def paper_order() -> list[Key]:
    """The 14 rows: per patient count, scratch, then each source frozen and fine-tuned."""
    return [
        key
        for n in N_TRAIN
        for key in [(n, None, "scratch")]
        + [(n, source, mode) for source in SOURCES for mode in ("freeze", "finetune")]
    ]


def _source(value: Any) -> str | None:
    # Scratch rows have no source: None in runs, an empty cell (NaN) in CSVs.
    return (
        None
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
        else str(value)
    )


def _run_key(number: int, run: dict[str, Any]) -> Key:
    where = f"table1 run {number}"
    missing = [key for key in ("n_train", "source", "mode", "metrics_json") if key not in run]
    if missing:
        raise PrrmseError(where, f"lacks {', '.join(missing)}")
    n_train, source, mode = run["n_train"], _source(run["source"]), run["mode"]
    if n_train not in N_TRAIN:
        raise PrrmseError(where, f"n_train {n_train!r} is not one of {N_TRAIN}")
    if mode not in MODES:
        raise PrrmseError(where, f"mode {mode!r} is not one of {', '.join(MODES)}")
    if (mode == "scratch") != (source is None):
        raise PrrmseError(
            where, f"mode {mode!r} with source {source!r}: only scratch has no source"
        )
    # a selffer run's "source" is the target itself (e.g. ACDC-seg), any name
    if source is not None and source not in SOURCES and mode != "selffer":
        raise PrrmseError(where, f"source {source!r} is not one of {', '.join(SOURCES)}")
    return int(n_train), source, mode


def read_metrics(path: Path) -> dict[str, float]:
    """dice_0..dice_3 and dice_mean of one run's metrics.json (NaN kept)."""
    metrics = read_json(path)
    dice = metrics.get("dice") if isinstance(metrics, dict) else None
    if not isinstance(dice, list) or len(dice) != 4 or "dice_mean" not in metrics:
        raise PrrmseError(
            path, "not a segmentation metrics.json (needs dice: 4 classes, dice_mean)"
        )
    values = [*dice, metrics["dice_mean"]]
    return {
        name: float("nan") if v is None else float(v) for name, v in zip(DICE, values, strict=True)
    }


def read_paper(path: Path = PAPER_CSV) -> pd.DataFrame:
    """The paper's values by row key; empty cells are NaN, values must be fractions."""
    table = read_table(Path(path), [*KEYS, *DICE])
    table["source"] = pd.Series([_source(value) for value in table["source"]], dtype=object)
    table["n_train"] = table["n_train"].astype(int)
    for column in DICE:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            raise PrrmseError(path, f"{column}: {table.loc[bad, column].iloc[0]!r} is not a number")
        if ((values < 0) | (values > 1)).any():
            raise PrrmseError(
                path, f"{column}: Dice must be a fraction in [0, 1], not a percentage"
            )
        table[column] = values.astype(float)
    duplicated = table.duplicated(KEYS)
    if duplicated.any():
        raise PrrmseError(path, f"duplicate row {tuple(table.loc[duplicated, KEYS].iloc[0])}")
    return table


def table1(
    runs: Sequence[dict[str, Any]],
    paper_csv: Path = PAPER_CSV,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> pd.DataFrame:
    """Our Dice per row (mean over seeds), the paper's and ours minus the paper's, in paper order.

    Each run: {"n_train", "source", "mode", "metrics_json"[, "seed", "patients_csv"]}. Only
    rows with runs appear; two runs of one row with the same seed are an error. The mean
    Dice gets a 95 % bootstrap interval over seeds and, where every run of the row has its
    per-patient Dice (patients.csv), over validation patients.
    """
    if not runs:
        raise PrrmseError("table1", "no runs given")
    by_key: dict[Key, list[dict[str, float]]] = {}
    patients: dict[Key, list[pd.Series | None]] = {}
    seen: set[tuple[Key, Any]] = set()
    for number, run in enumerate(runs, start=1):
        key = _run_key(number, run)
        if (key, run.get("seed")) in seen:
            raise PrrmseError(
                f"table1 run {number}", f"second run of {key} with seed {run.get('seed')}"
            )
        seen.add((key, run.get("seed")))
        by_key.setdefault(key, []).append(read_metrics(Path(run["metrics_json"])))
        patients.setdefault(key, []).append(_patient_means(run.get("patients_csv")))
    paper = {
        (int(row["n_train"]), _source(row["source"]), row["mode"]): row
        for _, row in read_paper(paper_csv).iterrows()
    }
    rows = []
    order = paper_order()
    # selffer controls follow the runs of their patient count
    order = sorted(by_key, key=lambda k: (k[0], order.index(k) if k in order else len(order)))
    for key in order:
        ours = pd.DataFrame(by_key[key])[DICE].to_numpy(dtype=float)
        row: dict[str, Any] = dict(zip(KEYS, key, strict=True)) | {"n_seeds": len(ours)}
        row |= dict(zip(DICE, _nanmean(ours), strict=True))
        row["dice_mean_sd"] = float(np.nanstd(ours[:, -1], ddof=1)) if len(ours) > 1 else math.nan
        row["dice_mean_low"], row["dice_mean_high"], row["n_patients"] = _interval(
            ours[:, -1], patients[key], bootstrap
        )
        given = paper.get(key)
        for column in DICE:
            value = float(given[column]) if given is not None else math.nan
            row[f"paper_{column}"] = value
            row[f"diff_{column}"] = row[column] - value
        rows.append(row)
    table = pd.DataFrame(rows)
    # object dtype, so a scratch row's source stays None (a string column would make it NaN)
    table["source"] = pd.Series([row["source"] for row in rows], dtype=object)
    return table


def _patient_means(path: Any) -> pd.Series | None:
    """Per validation patient, the mean foreground Dice (classes 1..3, NaN skipped)."""
    if path is None or not Path(path).exists():
        return None
    table = read_table(Path(path), ["patient", "class", "dice"])
    foreground = table[table["class"].astype(int) > 0]
    return foreground.groupby("patient")["dice"].mean()


def _interval(
    per_seed: np.ndarray, patients: list[pd.Series | None], settings: BootstrapSettings
) -> tuple[float, float, int]:
    if all(p is not None for p in patients):
        names = sorted(set().union(*(p.index for p in patients)))  # type: ignore[union-attr]
        values = np.stack([p.reindex(names).to_numpy(float) for p in patients])  # type: ignore[union-attr]
    elif len(per_seed) > 1:
        values, names = per_seed, []
    else:
        return math.nan, math.nan, 0
    ci = bootstrap_ci(values, n_boot=settings.n_boot, level=settings.level, seed=settings.seed)
    return float(ci.low), float(ci.high), len(names)


def _nanmean(values: np.ndarray) -> list[float]:
    # A class undefined in every seed stays NaN (np.nanmean would warn and give NaN anyway).
    return [float(np.nanmean(col)) if np.isfinite(col).any() else math.nan for col in values.T]


# --- findings -----------------------------------------------------------------------------

CLAIMS: list[tuple[str, Key, str, Key]] = [
    ("T1-auto (fine-tuned) beats scratch at 10 patients", (10, "T1-auto", "finetune"), ">", (10, None, "scratch")),
    ("T1-seg (fine-tuned) does worse than scratch at 10 patients", (10, "T1-seg", "finetune"), "<", (10, None, "scratch")),
] + [
    (f"freezing loses to fine-tuning: {source}, {n} patients", (n, source, "freeze"), "<", (n, source, "finetune"))
    for n in N_TRAIN
    for source in SOURCES
]  # fmt: skip


def _label(key: Key) -> str:
    n, source, mode = key
    return f"n{n} scratch" if source is None else f"n{n} {source} {mode}"


def _compare(left: float, op: str, right: float) -> bool | None:
    if math.isnan(left) or math.isnan(right):
        return None
    return left > right if op == ">" else left < right


def table1_findings(table: pd.DataFrame, metric: str = "dice_mean") -> list[dict[str, Any]]:
    """Each statement about Table 1 with its two values and whether it holds (None: a value
    is missing or undefined), on our numbers and, where filled, on the paper's."""
    index = {
        (int(row["n_train"]), _source(row["source"]), row["mode"]): row
        for _, row in table.iterrows()
    }
    findings = []
    for statement, left, op, right in CLAIMS:
        found: dict[str, Any] = {
            "finding": statement,
            "metric": metric,
            "left": _label(left),
            "right": _label(right),
        }
        for prefix, label in (("", "ours"), ("paper_", "paper")):
            values = [
                float(index[key][prefix + metric]) if key in index else math.nan
                for key in (left, right)
            ]
            found |= {f"{label}_left": values[0], f"{label}_right": values[1]}
            found[f"holds_{label}"] = _compare(values[0], op, values[1])
        findings.append(found)
    return findings


# --- writing ------------------------------------------------------------------------------


def _header(column: str) -> str:
    for prefix, word in (("paper_", "paper "), ("diff_", "Δ ")):
        if column.startswith(prefix):
            return word + CLASS_LABELS[column[len(prefix) :]]
    names = {"n_train": "n", "n_seeds": "seeds", "n_patients": "patients", "dice_mean_sd": "mean sd",
             "dice_mean_low": "mean 95% low", "dice_mean_high": "mean 95% high"}  # fmt: skip
    return names.get(column, CLASS_LABELS.get(column, column))


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells: 3 decimals; ours undefined "NaN", the paper's (and so the difference) "n/a"."""
    shown = table.copy().astype(object)
    for column in table.columns:
        if column in KEYS or column in ("n_seeds", "n_patients"):
            continue
        missing = "n/a" if column.startswith(("paper_", "diff_")) else "NaN"
        shown[column] = [missing if pd.isna(v) else f"{v:.3f}" for v in table[column]]
    shown["source"] = ["—" if _source(s) is None else s for s in table["source"]]
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
    lines = [r"\begin{table}", r"\centering", rf"\caption{{{cell(caption)}}}", r"\label{tab:table1}",
             r"\resizebox{\textwidth}{!}{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(cell(_header(c)) for c in shown.columns) + r" \\", r"\midrule"]  # fmt: skip
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CAPTION = (
    "Table 1: ACDC segmentation Dice (BG, RV, MYO, LV; mean over RV, MYO, LV) after training "
    "with 10 or 50 patients from scratch or from T1-seg, T1-auto, RVSC-seg parameters, frozen "
    "or fine-tuned; the paper's values (arXiv 2008.03411) and ours minus the paper's."
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


def _recorded(path: Path) -> str:
    """The packaged paper table by its place in the package, so the stamp (and the table's
    bytes) do not depend on where the code is checked out; other inputs as given."""
    if Path(path).resolve() == PAPER_CSV.resolve():
        return "prrmse/resources/paper_table1.csv"
    return str(path)


def make_table1(
    runs: Sequence[dict[str, Any]],
    out_base: Path,
    paper_csv: Path = PAPER_CSV,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Table 1 and its findings from the runs: <out_base>.{csv,md,tex} and <out_base>-findings.csv."""
    table = table1(runs, paper_csv, bootstrap)
    findings = table1_findings(table)
    inputs = [Path(run["metrics_json"]) for run in runs] + [Path(paper_csv)]
    inputs += [Path(run["patients_csv"]) for run in runs if run.get("patients_csv")]
    record = provenance.stamp(
        table="table1",
        runs=[
            {k: (str(v) if k.endswith(("_json", "_csv")) else v) for k, v in run.items()}
            for run in runs
        ],
        bootstrap={"n_boot": bootstrap.n_boot, "level": bootstrap.level, "seed": bootstrap.seed},
        inputs={_recorded(path): sha256_file(path) for path in inputs},
    )
    write_table1(table, out_base, record)
    write_findings(findings, Path(f"{out_base}-findings.csv"), record)
    return table, findings
