"""The paper's Table 1: ACDC segmentation Dice after reuse fine-tuning, ours beside the paper's.

Runs: 10 and 50 training patients, each from scratch and from T1-seg, T1-auto and RVSC-seg
parameters, frozen or fine-tuned (14 runs a seed), plus optional selffer controls. Each run
gives its metrics.json from train.py: per-class Dice (classes 0..3, background included;
NaN where undefined) and `dice_mean`, the mean over the foreground classes 1..3.

Two means, both labelled: `dice_mean4`, the mean of all four classes, is the paper's
definition (its printed mean includes background: row 1, n10, (0.99+0.62+0.60+0.70)/4 =
0.73) and the one compared with the paper's; `dice_fg`, the mean over RV, MYO and LV,
which background (near 1 everywhere) does not dilute. With several seeds a cell is the mean
over seeds (NaN skipped); `dice_mean4` gets a 95 % bootstrap interval over seeds and, where
every run of the row has per-patient Dice, over validation patients.

The paper's values come from the package resource `paper_table1.csv` (`prrmse.results.paper`),
rows in the paper's order; its misprinted n50 RVSC-seg freeze mean is replaced by the mean
of its classes and flagged in `paper_note`. The statements about Table 1 are evaluated in
`prrmse.results.table1_findings`; its files are written by `prrmse.results.table1_files`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prrmse.core.errors import PrrmseError
from prrmse.core.io import read_json
from prrmse.core.tabular import read_table
from prrmse.results import paper
from prrmse.results.stats import bootstrap_ci
from prrmse.results.summary import DEFAULT_BOOTSTRAP, BootstrapSettings

SOURCES = ("T1-seg", "T1-auto", "RVSC-seg")
N_TRAIN = (10, 50)
MODES = ("scratch", "freeze", "finetune", "selffer")
KEYS = ["n_train", "source", "mode"]
CLASSES = ["dice_0", "dice_1", "dice_2", "dice_3"]
DICE = [*CLASSES, "dice_mean4", "dice_fg"]
CLASS_LABELS = {
    "dice_0": "BG",
    "dice_1": "RV",
    "dice_2": "MYO",
    "dice_3": "LV",
    "dice_mean4": "mean (4 classes)",
    "dice_fg": "mean (RV, MYO, LV)",
}
# Ours first, then the paper's, both on the 4-class mean; the foreground mean after.
COLUMNS = [
    *KEYS,
    "n_seeds",
    *CLASSES,
    "dice_mean4",
    "dice_mean4_low",
    "dice_mean4_high",
    "dice_mean4_sd",
    "n_patients",
    *(f"paper_{c}" for c in CLASSES),
    "paper_dice_mean4",
    "diff_dice_mean4",
    "dice_fg",
    "paper_dice_fg",
    "diff_dice_fg",
    "paper_note",
]
PAPER_CSV = paper.TABLE1_CSV
Key = tuple[int, str | None, str]
_source = paper.source_label


def paper_order() -> list[Key]:
    """The 14 rows: per patient count, scratch, then each source frozen and fine-tuned."""
    return [
        key
        for n in N_TRAIN
        for key in [(n, None, "scratch")]
        + [(n, source, mode) for source in SOURCES for mode in ("freeze", "finetune")]
    ]


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
    """dice_0..dice_3, their mean (dice_mean4) and the foreground mean (dice_fg), NaN kept."""
    metrics = read_json(path)
    dice = metrics.get("dice") if isinstance(metrics, dict) else None
    if not isinstance(dice, list) or len(dice) != 4 or "dice_mean" not in metrics:
        raise PrrmseError(
            path, "not a segmentation metrics.json (needs dice: 4 classes, dice_mean)"
        )
    classes = [math.nan if v is None else float(v) for v in dice]
    finite = [v for v in classes if not math.isnan(v)]
    mean4 = sum(finite) / len(finite) if finite else math.nan
    fg = math.nan if metrics["dice_mean"] is None else float(metrics["dice_mean"])
    return dict(zip(DICE, [*classes, mean4, fg], strict=True))


def read_paper(path: Path = PAPER_CSV) -> pd.DataFrame:
    """The paper's Table 1 (see `prrmse.results.paper.read_table1`)."""
    return paper.read_table1(path)


def table1(
    runs: Sequence[dict[str, Any]],
    paper_csv: Path = PAPER_CSV,
    bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> pd.DataFrame:
    """Our Dice per row (mean over seeds), the paper's and ours minus the paper's, in paper order.

    Each run: {"n_train", "source", "mode", "metrics_json"[, "seed", "patients_csv"]}. Only
    rows with runs appear; two runs of one row with the same seed are an error.
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
    given = paper.table1_rows(paper_csv)
    order = paper_order()
    # selffer controls follow the runs of their patient count
    order = sorted(by_key, key=lambda k: (k[0], order.index(k) if k in order else len(order)))
    rows = []
    for key in order:
        ours = pd.DataFrame(by_key[key])[DICE].to_numpy(dtype=float)
        mean4 = ours[:, DICE.index("dice_mean4")]
        row: dict[str, Any] = dict(zip(KEYS, key, strict=True)) | {"n_seeds": len(ours)}
        row |= dict(zip(DICE, _nanmean(ours), strict=True))
        row["dice_mean4_sd"] = float(np.nanstd(mean4, ddof=1)) if len(ours) > 1 else math.nan
        row["dice_mean4_low"], row["dice_mean4_high"], row["n_patients"] = _interval(
            mean4, patients[key], bootstrap
        )
        reference = given.get(key)
        for column in DICE:
            row[f"paper_{column}"] = float(reference[column]) if reference is not None else math.nan
        for column in ("dice_mean4", "dice_fg"):
            row[f"diff_{column}"] = row[column] - row[f"paper_{column}"]
        row["paper_note"] = reference["note"] if reference is not None else "not in the paper"
        rows.append(row)
    table = pd.DataFrame(rows)[COLUMNS]
    # object dtype, so a scratch row's source stays None (a string column would make it NaN)
    table["source"] = pd.Series([row["source"] for row in rows], dtype=object)
    return table


def _patient_means(path: Any) -> pd.Series | None:
    """Per validation patient, the mean Dice of the four classes (NaN skipped), as dice_mean4."""
    if path is None or not Path(path).exists():
        return None
    table = read_table(Path(path), ["patient", "class", "dice"])
    return table.groupby("patient")["dice"].mean()


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
