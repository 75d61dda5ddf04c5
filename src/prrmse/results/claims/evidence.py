"""Reading the claims' evidence other than sweeps: the record of files read and missing,
model names, reuse runs (Table 1), reuse plans and RMSE / noise-floor tables.

A missing file is recorded in `Evidence` (its claims become inconclusive, naming it); a
present but malformed file raises PrrmseError naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.analysis.plan import load_plan
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import read_json
from prrmse.core.naming import ModelSpec, RunSpec, parse_model_name, parse_run_name
from prrmse.core.tabular import RMSE_COLUMNS, read_table, require_columns
from prrmse.results.claims.core import ClaimInputs, Units, seed_index

RUN_PATIENT_COLUMNS = ["patient", "class", "dice"]


# --- reading: files ------------------------------------------------------------------------


@dataclass
class Evidence:
    """Every file read (for the provenance) and every named file that was missing."""

    read: list[Path] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)

    def present(self, path: Path, what: str) -> bool:
        if Path(path).is_file():
            self.read.append(Path(path))
            return True
        self.missing.setdefault(what, []).append(str(path))
        return False

    def absent(self, what: str, nothing: str) -> str:
        """Why evidence of a kind is lacking: the missing files, or that none was given."""
        missing = self.missing.get(what)
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            return f"{nothing} (missing: {shown})"
        return nothing


def as_bool(column: pd.Series) -> pd.Series:
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("true", "1"))


def model_key(spec: ModelSpec) -> str:
    subset = f"-n{spec.n_train}" if spec.n_train is not None else ""
    return f"{spec.network}-{spec.task}-{spec.dataset}{subset}"


def parse_or_none(name: str) -> ModelSpec | None:
    try:
        return parse_model_name(name)
    except PrrmseError:
        return None


def recorded_name(value: Any) -> str:
    # Products record a model by name or as results/models/<name>/model.safetensors.
    path = Path(str(value))
    return path.parent.name if path.suffix == ".safetensors" else path.name


# --- reading: runs (Table 1) ---------------------------------------------------------------

RunKey = tuple[str, int, str | None, str]  # (target model key, n_train, source label, mode)


@dataclass(frozen=True)
class Run:
    key: RunKey
    seed: int
    source: str | None  # source model key without seed, e.g. pspnet-auto-t1
    dice_mean: float  # mean Dice of the four classes, background included (the paper's)
    patients: pd.Series | None  # the same mean per validation patient


def _mean4(values: dict[str, Any], metrics: Path) -> float:
    dice = values.get("dice")
    if not isinstance(dice, list) or len(dice) != 4:
        raise PrrmseError(metrics, "not a segmentation metrics.json (needs dice: 4 classes)")
    finite = [float(v) for v in dice if v is not None and not math.isnan(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def _run_from(folder: Path, metrics: Path, evidence: Evidence) -> Run | None:
    if not evidence.present(metrics, "runs"):
        return None
    spec: RunSpec = parse_run_name(folder.name)
    if spec.model.n_train is None:
        raise PrrmseError(folder, "a Table 1 run is named <model>-n<N>-s<seed>[...]")
    values = read_json(metrics)
    if not isinstance(values, dict):
        raise PrrmseError(metrics, "not a segmentation metrics.json (needs dice: 4 classes)")
    dice_mean = _mean4(values, metrics)
    patients = None
    patients_csv = folder / "patients.csv"
    if patients_csv.is_file():
        evidence.read.append(patients_csv)
        table = read_table(patients_csv, RUN_PATIENT_COLUMNS)
        patients = table.groupby(table["patient"].astype(str))["dice"].mean()
    model = spec.model
    key = (
        f"{model.network}-{model.task}-{model.dataset}",
        model.n_train,
        spec.source_label,
        spec.mode,
    )
    return Run(key, model.seed, spec.source, dice_mean, patients)


def _table1_folders(table1_csv: Path, evidence: Evidence) -> list[tuple[Path, Path]]:
    if not evidence.present(table1_csv, "runs"):
        return []
    recorded = provenance.read_csv_provenance(table1_csv)
    runs = (recorded or {}).get("runs")
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and "metrics_json" in r for r in runs
    ):
        raise PrrmseError(table1_csv, "its provenance line lists no runs (metrics_json)")
    root = (
        Path(table1_csv).resolve().parents[2]
        if len(Path(table1_csv).resolve().parents) > 2
        else Path()
    )
    found = []
    for run in runs:
        metrics = Path(run["metrics_json"])
        if not metrics.is_absolute() and not metrics.is_file() and (root / metrics).is_file():
            metrics = root / metrics
        found.append((metrics.parent, metrics))
    return found


def read_runs(inputs: ClaimInputs, evidence: Evidence) -> dict[RunKey, dict[int, Run]]:
    folders = [(Path(folder), Path(folder) / "metrics.json") for folder in inputs.reuse_runs]
    if inputs.table1_csv is not None:
        folders += _table1_folders(Path(inputs.table1_csv), evidence)
    runs: dict[RunKey, dict[int, Run]] = {}
    seen: set[Path] = set()
    for folder, metrics in folders:
        if metrics.resolve() in seen:
            continue
        seen.add(metrics.resolve())
        run = _run_from(folder, metrics, evidence)
        if run is not None:
            runs.setdefault(run.key, {}).setdefault(run.seed, run)
    return runs


def run_units(runs: dict[int, Run]) -> Units:
    """Per patient where every seed has patients.csv, else per seed (metrics.json)."""
    ordered = [runs[seed] for seed in sorted(runs)]
    if all(run.patients is not None for run in ordered):
        series = pd.concat({run.seed: run.patients for run in ordered}, names=["seed", "patient"])
        return Units(series.astype(float), True)
    seeds = pd.Series([run.dice_mean for run in ordered], index=[run.seed for run in ordered])
    return Units(seed_index(seeds), False)


# --- reading: reuse plans ----------------------------------------------------------------


def predicted_drops(
    plan_paths: Sequence[Path], evidence: Evidence
) -> dict[tuple[str, str, int], float]:
    """(target key, source key, seed) -> sum of dice drops over the entries the plan reuses."""
    predicted = {}
    for path in plan_paths:
        if not evidence.present(Path(path), "plans"):
            continue
        plan = load_plan(Path(path))
        target, source = (
            parse_model_name(str(plan["target"])),
            parse_model_name(str(plan["source"])),
        )
        drops = [
            float(entry["evidence"]["dice_drop"])
            for entry in plan["entries"]
            if entry["decision"] == "reuse"
            and isinstance(entry.get("evidence"), dict)
            and entry["evidence"].get("dice_drop") is not None
        ]
        predicted[(model_key(target), model_key(source), target.seed)] = float(sum(drops))
    return predicted


# --- reading: RMSE and noise-floor tables -------------------------------------------------


def read_rmse(path: Path, evidence: Evidence, what: str) -> pd.DataFrame | None:
    """Rows (key_a, key_b, seed, family, layer, kind, rmse[, rmse_aligned]), head left out.

    Takes RMSE pair or group tables, and the summarised floor table of `prrmse.results.floor`
    (network, family, layer, kind, floor[, floor_aligned]), whose rows become a floor of
    every model of the network, keyed "network:<network>".
    """
    if not evidence.present(path, what):
        return None
    table = read_table(path, ["family", "layer", "kind"])
    if "model_a" not in table and {"network", "floor"} <= set(table.columns):
        return _network_floor(path, table)
    require_columns(table, ["model_a", "model_b", *RMSE_COLUMNS], path)
    table = table[(table["status"] == "compared") & ~as_bool(table["head"])]
    specs = {}
    for name in set(table["model_a"].astype(str)) | set(table["model_b"].astype(str)):
        spec = parse_or_none(recorded_name(name))
        if spec is None:
            raise PrrmseError(
                path, f"model {name!r} is not named <network>-<task>-<dataset>[-nN]-s<seed>"
            )
        specs[name] = spec
    a = table["model_a"].astype(str).map(specs)
    b = table["model_b"].astype(str).map(specs)
    columns = ["family", "layer", "kind", "rmse"] + (
        ["rmse_aligned"] if "rmse_aligned" in table else []
    )
    out = table[columns].copy()
    out["layer"] = out["layer"].astype(int)
    out["key_a"] = [model_key(spec) for spec in a]
    out["key_b"] = [model_key(spec) for spec in b]
    out["seed"] = [spec.seed for spec in a]
    return out


def _network_floor(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    if "head" in table:
        table = table[~as_bool(table["head"])]
    out = pd.DataFrame(
        {
            "family": table["family"],
            "layer": pd.to_numeric(table["layer"], errors="raise").astype(int),
            "kind": table["kind"],
            "rmse": pd.to_numeric(table["floor"], errors="coerce"),
        }
    )
    if "floor_aligned" in table:
        out["rmse_aligned"] = pd.to_numeric(table["floor_aligned"], errors="coerce")
    out["key_a"] = out["key_b"] = [f"network:{network}" for network in table["network"]]
    out["seed"] = -1
    return out
