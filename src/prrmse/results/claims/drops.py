"""Sweep files read into Dice drops per unit (seed, patient) and entry (layer, kind),
grouped into comparisons (target <- source) with the target's control sweeps.

File names `<target>__<source>[.x].csv`; a `condition` column source / reinit / rerandom,
absent means source; per-patient Dice found beside each as `<stem>.patients.csv`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prrmse.analysis.plan import SWEEP_COLUMNS
from prrmse.analysis.plan_rules import FOREGROUND
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import ModelSpec
from prrmse.core.tabular import read_table
from prrmse.results.claims.core import Entry, Units
from prrmse.results.claims.evidence import (
    Evidence,
    as_bool,
    model_key,
    parse_or_none,
    recorded_name,
)

CONDITIONS = ("source", "reinit", "rerandom")
PATIENT_COLUMNS = ["family", "layer", "kind", "patient", "class", "dice"]


@dataclass
class SweepFile:
    path: Path
    target: ModelSpec
    source: ModelSpec | None
    rows: pd.DataFrame  # seed-level rows: condition filled, head bool, layer int
    patients: pd.DataFrame | None  # per-patient rows, head bool


def _sweep_models(path: Path) -> tuple[ModelSpec, ModelSpec | None]:
    """Target and source from `<target>__<source>[.suffix].csv`, else the provenance."""
    target_name, _, source_name = path.name.split(".")[0].partition("__")
    target, source = parse_or_none(target_name), parse_or_none(source_name)
    if target is None:
        recorded = provenance.read_csv_provenance(path) or {}
        if "target" in recorded:
            target = parse_or_none(recorded_name(recorded["target"]))
        if source is None and "source" in recorded:
            source = parse_or_none(recorded_name(recorded["source"]))
    if target is None:
        raise PrrmseError(
            path, "cannot tell the target model: name it <target>__<source>.csv or stamp it"
        )
    return target, source


def _conditions(table: pd.DataFrame, path: Path) -> pd.Series:
    if "condition" not in table:
        return pd.Series("source", index=table.index)
    values = table["condition"].fillna("source").astype(str)
    unknown = sorted(set(values) - set(CONDITIONS))
    if unknown:
        raise PrrmseError(path, f"unknown condition {unknown[0]!r}; valid: {', '.join(CONDITIONS)}")
    return values


def read_sweep(path: Path, evidence: Evidence) -> SweepFile | None:
    if not evidence.present(path, "sweeps"):
        return None
    table = read_table(path, SWEEP_COLUMNS)
    target, source = _sweep_models(path)
    table = table.assign(
        condition=_conditions(table, path),
        head=as_bool(table["head"]),
        layer=pd.to_numeric(table["layer"], errors="raise").astype(int),
    )
    patients_path = path.with_name(path.name.split(".")[0] + ".patients.csv")
    patients = None
    if patients_path.is_file():
        evidence.read.append(patients_path)
        patients = read_table(patients_path, PATIENT_COLUMNS)
        heads = {
            (f, int(n)): bool(h)
            for f, n, h in zip(table["family"], table["layer"], table["head"], strict=True)
        }
        patients = patients.assign(
            condition=_conditions(patients, patients_path),
            patient=patients["patient"].astype(str),
            layer=pd.to_numeric(patients["layer"], errors="coerce").fillna(0).astype(int),
        )
        patients["head"] = [
            heads.get((f, n), False)
            for f, n in zip(patients["family"], patients["layer"], strict=True)
        ]
    return SweepFile(path, target, source, table, patients)


def _seed_drops(rows: pd.DataFrame) -> dict[Entry, float]:
    body = rows[(rows["family"] != "baseline") & (rows["status"] != "absent") & ~rows["head"]]
    body = body[body["class"].astype(int).isin(FOREGROUND)]
    return {
        (family, int(layer), kind): float(group["baseline_dice"].mean() - group["dice"].mean())
        for (family, layer, kind), group in body.groupby(["family", "layer", "kind"])
    }


def _patient_drops(
    patients: pd.DataFrame, condition: str, entries: Iterable[Entry]
) -> pd.DataFrame | None:
    """Drop per patient (rows) and entry (columns); None when the file lacks the condition."""
    foreground = patients[patients["class"].astype(int).isin(FOREGROUND)]
    is_baseline = (foreground["family"] == "baseline") | foreground["kind"].isna()
    baseline = foreground[is_baseline].groupby("patient")["dice"].mean()
    replaced = foreground[
        ~is_baseline & (foreground["condition"] == condition) & ~foreground["head"]
    ]
    if replaced.empty or baseline.empty:
        return None
    dice = (
        replaced.groupby(["patient", "family", "layer", "kind"])["dice"]
        .mean()
        .unstack(["family", "layer", "kind"])
    )
    wanted = [entry for entry in entries if entry in dice.columns]
    return -dice[wanted].sub(baseline, axis=0)


@dataclass(frozen=True)
class Drops:
    """Dice drop per unit (rows, index seed x patient) and entry (columns)."""

    frame: pd.DataFrame
    per_patient: bool

    def entries(self) -> list[Entry]:
        return list(self.frame.columns)

    def units(self, values: pd.Series) -> Units:
        return Units(values.astype(float), self.per_patient)


def drops_of(files: Sequence[SweepFile], condition: str) -> Drops | None:
    """Drops of one condition over the given files (one comparison, several seeds)."""
    by_seed: dict[int, dict[Entry, float]] = {}
    by_patient: dict[int, pd.DataFrame | None] = {}
    for sweep in files:
        seed = sweep.target.seed
        rows = sweep.rows[sweep.rows["condition"] == condition]
        drops = _seed_drops(rows)
        if not drops or seed in by_seed:
            continue
        by_seed[seed] = drops
        by_patient[seed] = (
            _patient_drops(sweep.patients, condition, drops) if sweep.patients is not None else None
        )
    if not by_seed:
        return None
    entries = sorted(set.intersection(*(set(drops) for drops in by_seed.values())))
    columns = pd.MultiIndex.from_tuples(entries, names=["family", "layer", "kind"])
    if all(frame is not None for frame in by_patient.values()):
        frames = {seed: frame.reindex(columns=columns) for seed, frame in by_patient.items()}
        frame = pd.concat(frames, names=["seed", "patient"]).sort_index()
        return Drops(frame, True)
    index = pd.MultiIndex.from_tuples(
        [(seed, "") for seed in sorted(by_seed)], names=["seed", "patient"]
    )
    values = [[by_seed[seed][entry] for entry in entries] for seed in sorted(by_seed)]
    return Drops(pd.DataFrame(values, index=index, columns=columns), False)


@dataclass(frozen=True)
class Comparison:
    target: str  # model keys without seed, e.g. pspnet-seg-acdc
    source: str
    network: str
    files: tuple[SweepFile, ...]
    controls: tuple[SweepFile, ...]  # files of the target holding control rows

    @property
    def key(self) -> str:
        return f"{self.target} <- {self.source}"


def comparisons_of(files: Sequence[SweepFile]) -> list[Comparison]:
    pairs: dict[tuple[str, str], list[SweepFile]] = {}
    for sweep in files:
        if sweep.source is not None and (sweep.rows["condition"] == "source").any():
            pairs.setdefault((model_key(sweep.target), model_key(sweep.source)), []).append(sweep)
    result = []
    for (target, source), members in sorted(pairs.items()):
        # Re-initialisation does not depend on the source: any control sweep of the target
        # serves, one made beside this source first.
        controls = sorted(
            (
                sweep
                for sweep in files
                if model_key(sweep.target) == target and (sweep.rows["condition"] != "source").any()
            ),
            key=lambda sweep: sweep.source is None or model_key(sweep.source) != source,
        )
        network = members[0].target.network
        result.append(Comparison(target, source, network, tuple(members), tuple(controls)))
    return result
