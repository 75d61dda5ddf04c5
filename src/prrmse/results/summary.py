"""Results over seeds: the mean and a 95 % bootstrap interval of every number a figure draws.

Every model of the study is trained once per seed, so each sweep, BN-statistics and RMSE
table exists once per seed. A summary table has the per-seed table's columns, with the
value columns holding the mean over seeds, plus `<value>_low` / `<value>_high` (the
interval) and `n_seeds`. Model names lose their `-s<seed>` suffix.

A sweep summary adds rows of class -1: the mean over the foreground classes 1..3 (per
patient, then as any class), the number claims and the control figure compare.

Sweeps are bootstrapped over seeds *and* validation patients (the per-patient Dice files
written beside each sweep): the sampling unit of a Dice score is the patient, and with
few seeds an interval over seeds alone would be mostly noise. Tables of tensors (RMSE,
BN statistics) have no patients: their interval is over seeds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.tabular import read_table, require_columns, write_table_csv
from prrmse.results.stats import bootstrap_ci

_SEED_SUFFIX = re.compile(r"-s\d+$")
_RUN_SEED = re.compile(r"-s\d+(-(?:freeze|finetune|selffer)-from-)")
_LABEL_SEED = re.compile(r" s\d+$")

SWEEP_KEYS = ["condition", "family", "layer", "kind", "class"]
FOREGROUND = -1  # the `class` of a summary row averaging the foreground classes 1..3
SEED_TABLES: dict[str, tuple[list[str], list[str]]] = {
    # kind of table -> (keys identifying a row across seeds, value columns)
    "bnstats": (["layer"], ["MRM", "MRV", "MRW", "MRB"]),
    "rmse": (["model_a", "model_b", "family", "layer", "kind"], ["rmse", "rmse_aligned"]),
    "rmse_to_ideal": (["run", "family", "layer", "kind"], ["rmse"]),
}


@dataclass(frozen=True)
class BootstrapSettings:
    n_boot: int = 2000
    level: float = 0.95
    seed: int = 0


DEFAULT_BOOTSTRAP = BootstrapSettings()


def seedless(name: str) -> str:
    """`pspnet-seg-acdc-s2` -> `pspnet-seg-acdc`; a reuse run keeps its `-<mode>-from-<source>`
    (`...-n10-s1-freeze-from-x` -> `...-n10-freeze-from-x`); a run label loses its " s1"."""
    name = _LABEL_SEED.sub("", str(name))
    return _RUN_SEED.sub(r"\1", _SEED_SUFFIX.sub("", name))


def _interval(values: np.ndarray, settings: BootstrapSettings) -> tuple[float, float]:
    if np.all(np.isnan(values)):
        return float("nan"), float("nan")
    ci = bootstrap_ci(values, n_boot=settings.n_boot, level=settings.level, seed=settings.seed)
    return float(ci.low), float(ci.high)


# --- tables of tensors: RMSE, BN statistics, RMSE to the ideal run ------------------------


def summarise_seed_tables(
    paths: Sequence[Path], kind: str, settings: BootstrapSettings = DEFAULT_BOOTSTRAP
) -> pd.DataFrame:
    """Mean over seeds of each value column, with its interval over seeds."""
    if kind not in SEED_TABLES:
        raise PrrmseError(
            f"summary {kind}", f"unknown table kind (valid: {', '.join(SEED_TABLES)})"
        )
    keys, values = SEED_TABLES[kind]
    frames = []
    for path in paths:
        table = read_table(path, [])
        require_columns(table, [*keys, values[0]], path)
        for column in ("model_a", "model_b", "run"):
            if column in table.columns:
                table[column] = table[column].map(seedless)
        if table.duplicated(keys).any():
            raise PrrmseError(path, f"rows are not unique by {', '.join(keys)}")
        frames.append(table.assign(_seed_table=len(frames)))
    if not frames:
        raise PrrmseError(f"summary {kind}", "no input tables")
    values = [column for column in values if all(column in f.columns for f in frames)]
    first = frames[0]
    rows = []
    stacked = pd.concat(frames, ignore_index=True)
    for key, group in stacked.groupby(keys, sort=False, dropna=False):
        if len(group) != len(frames):
            raise PrrmseError(paths[0], f"row {key} is not in every seed's table")
        row = {}
        for column in values:
            samples = pd.to_numeric(group[column], errors="coerce").to_numpy(float)
            row[column] = float(np.nanmean(samples)) if not np.all(np.isnan(samples)) else np.nan
            row[f"{column}_low"], row[f"{column}_high"] = _interval(samples, settings)
        rows.append(row)
    descriptive = first.drop(columns=[*values, "_seed_table"], errors="ignore")
    summary = pd.concat([descriptive.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    summary["n_seeds"] = len(frames)
    return summary


# --- sweeps: over seeds and validation patients --------------------------------------------


def _with_condition(table: pd.DataFrame) -> pd.DataFrame:
    return table if "condition" in table.columns else table.assign(condition="source")


def _patient_matrix(patients: pd.DataFrame) -> dict[tuple, pd.Series]:
    """Per-patient Dice of one seed, keyed like the sweep's rows."""
    patients = _with_condition(patients).copy()
    patients["kind"] = patients["kind"].fillna("")
    return {
        (str(c), str(f), int(layer), str(k), int(cls)): rows.set_index("patient")["dice"].astype(
            float
        )
        for (c, f, layer, k, cls), rows in patients.groupby(SWEEP_KEYS, sort=False)
    }


def summarise_sweeps(
    sweep_paths: Sequence[Path],
    patient_paths: Sequence[Path] | None = None,
    settings: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> pd.DataFrame:
    """Mean Dice and Dice difference over seeds per (condition, layer, kind, class), with
    intervals from a bootstrap over seeds and, where per-patient files are given, patients."""
    if not sweep_paths:
        raise PrrmseError("summary sweep", "no sweep tables")
    if patient_paths and len(patient_paths) != len(sweep_paths):
        raise PrrmseError(
            "summary sweep", f"{len(patient_paths)} patient files for {len(sweep_paths)} sweeps"
        )
    tables = []
    for path in sweep_paths:
        table = _with_condition(read_table(path, []))
        require_columns(
            table, ["family", "layer", "kind", "class", "status", "dice", "difference"], path
        )
        table["kind"] = table["kind"].fillna("")
        tables.append(with_foreground_rows(table))
    per_patient = (
        [_foreground_patients(_patient_matrix(read_table(p, []))) for p in patient_paths]
        if patient_paths
        else None
    )
    reference = tables[0]
    rows = []
    for _, row in reference.iterrows():
        key = tuple(row[k] for k in SWEEP_KEYS)
        key = (str(key[0]), str(key[1]), int(key[2]), str(key[3]), int(key[4]))
        base_key = (key[0], "baseline", 0, "", key[4])
        dice, difference = _seed_samples(tables, key, sweep_paths)
        out = {"dice": _nanmean(dice), "difference": _nanmean(difference)}
        if row["status"] == "absent":
            out |= dict.fromkeys(
                ["dice_low", "dice_high", "difference_low", "difference_high"], np.nan
            )
        elif per_patient is not None:
            out["dice_low"], out["dice_high"] = _interval(_stack(per_patient, key), settings)
            paired = _stack(per_patient, key) - _stack(per_patient, base_key)
            out["difference_low"], out["difference_high"] = _interval(paired, settings)
        else:
            out["dice_low"], out["dice_high"] = _interval(dice, settings)
            out["difference_low"], out["difference_high"] = _interval(difference, settings)
        rows.append(out)
    summary = reference.drop(columns=["dice", "difference"]).reset_index(drop=True)
    summary["baseline_dice"] = (
        _seed_mean(tables, "baseline_dice") if "baseline_dice" in reference else np.nan
    )
    summary = pd.concat([summary, pd.DataFrame(rows)], axis=1)
    summary["n_seeds"] = len(tables)
    summary["n_patients"] = _patient_count(per_patient)
    return summary


def with_foreground_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Add, per (condition, layer, kind), a row of class FOREGROUND: the mean over classes
    1..3 (NaN skipped) of dice, baseline_dice and difference."""
    foreground = table[table["class"].astype(int) > 0]
    keys = ["condition", "family", "layer", "module", "head", "kind", "status"]
    means = foreground.groupby(keys, sort=False, dropna=False)[
        [c for c in ("dice", "baseline_dice", "difference") if c in table.columns]
    ].mean()
    extra = means.reset_index().assign(**{"class": FOREGROUND})
    return pd.concat([table, extra[table.columns]], ignore_index=True)


def _foreground_patients(matrix: dict[tuple, pd.Series]) -> dict[tuple, pd.Series]:
    groups: dict[tuple, list[pd.Series]] = {}
    for key, series in matrix.items():
        if key[4] > 0:
            groups.setdefault(key[:4], []).append(series)
    for key, series in groups.items():
        matrix[(*key, FOREGROUND)] = pd.concat(series, axis=1).mean(axis=1, skipna=True)
    return matrix


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")


def _seed_samples(
    tables: list[pd.DataFrame], key: tuple, paths: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray]:
    dice, difference = [], []
    for table, path in zip(tables, paths, strict=True):
        match = table[
            (table["condition"].astype(str) == key[0])
            & (table["family"].astype(str) == key[1])
            & (table["layer"].astype(int) == key[2])
            & (table["kind"].astype(str) == key[3])
            & (table["class"].astype(int) == key[4])
        ]
        if len(match) != 1:
            raise PrrmseError(
                path, f"has {len(match)} rows for {key} (expected 1, as in {paths[0]})"
            )
        dice.append(float(match["dice"].iloc[0]))
        difference.append(float(match["difference"].iloc[0]))
    return np.array(dice), np.array(difference)


def _seed_mean(tables: list[pd.DataFrame], column: str) -> np.ndarray:
    return np.nanmean(np.stack([t[column].to_numpy(float) for t in tables]), axis=0)


def _stack(per_patient: list[dict[tuple, pd.Series]], key: tuple) -> np.ndarray:
    """seeds x patients; every seed evaluates the same validation patients."""
    series = [matrix.get(key) for matrix in per_patient]
    if any(s is None for s in series):
        return np.full((len(series), 1), np.nan)
    patients = sorted(set().union(*(s.index for s in series)))
    return np.stack([s.reindex(patients).to_numpy(float) for s in series])


def _patient_count(per_patient: list[dict[tuple, pd.Series]] | None) -> int:
    if not per_patient:
        return 0
    return max((len(s) for s in per_patient[0].values()), default=0)


# --- writing ---------------------------------------------------------------------------------


def run_summary(
    kind: str,
    inputs: Sequence[Path],
    out_csv: Path,
    *,
    patients: Sequence[Path] | None = None,
    settings: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> pd.DataFrame:
    """Summarise one product over seeds (`sweep`, `bnstats`, `rmse`, `rmse_to_ideal`) into a CSV."""
    inputs = [Path(p) for p in inputs]
    if kind == "sweep":
        table = summarise_sweeps(inputs, [Path(p) for p in patients or []] or None, settings)
    else:
        table = summarise_seed_tables(inputs, kind, settings)
    record = provenance.stamp(
        summary=kind,
        bootstrap={"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed},
        inputs={str(p): sha256_file(p) for p in [*inputs, *(patients or [])]},
        seed_provenance={str(p): provenance.read_csv_provenance(p) for p in inputs},
    )
    write_table_csv(out_csv, table, record)
    return table
