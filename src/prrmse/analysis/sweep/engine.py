"""The sweep jobs: a target checkpoint swept with a source checkpoint (`run_sweep`) or
with the controls' sources (`run_control_sweep`) over its validation split, written as CSV.

The replacement itself is `prrmse.analysis.sweep.replacement`; the controls' sources
(`reinit`, `rerandom`) are `prrmse.analysis.sweep.controls`. `run_sweep` and
`run_control_sweep` write the table with a `condition` column (`source`, `reinit`,
`rerandom`) and beside it the Dice per patient (`<csv stem>.patients.csv`) for
confidence intervals over patients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from prrmse.analysis.sweep.controls import (
    CONTROLS,
    RERANDOM_SEED_OFFSET,
    control_seed,
    control_source,
    control_start,
    target_start,
)
from prrmse.analysis.sweep.replacement import (
    SweepSettings,
    replacement_sweep_tables,
    shared_sweep_tables,
)
from prrmse.analysis.sweep.rows import DICE_COLUMNS, present_classes
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, sha256_file
from prrmse.core.provenance import cpu_model, csv_header, stamp
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import load_model
from prrmse.models.start import Start, independent_seed
from prrmse.training.evaluate import write_patients_csv

DEFAULT_SETTINGS = SweepSettings()  # the reference numerics


def patients_csv_path(out_csv: Path) -> Path:
    """Where the Dice per patient of a sweep CSV goes by default: `<stem>.patients.csv` beside it."""
    out_csv = Path(out_csv)
    return out_csv.with_name(f"{out_csv.stem}.patients.csv")


@dataclass(frozen=True)
class _ValidationSet:
    images: torch.Tensor
    labels: np.ndarray
    index: pd.DataFrame
    record: dict[str, Any]  # the data's provenance fields


def _validation_set(data_dir: Path, log: Callable[[str], None]) -> _ValidationSet:
    dataset = load_processed(data_dir)
    rows = dataset.rows("val")
    if len(rows) == 0:
        raise PrrmseError(Path(data_dir) / "index.csv", "the val split is empty: nothing to sweep")
    images = torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None]
    labels = np.ascontiguousarray(dataset.labels[rows])
    if labels.max() >= 4:
        raise PrrmseError(Path(data_dir) / "labels.npy", f"class {int(labels.max())} outside 0..3")
    index = dataset.index.iloc[rows].reset_index(drop=True)
    missing = np.flatnonzero(~present_classes(labels)).tolist()
    if missing:
        classes = ", ".join(str(c) for c in missing)
        log(
            f"warning: {Path(data_dir) / 'labels.npy'}: class {classes} never present in the "
            "validation labels; its Dice is NaN"
        )
    record = {
        "data": str(data_dir),
        "data_sha256": {
            name: sha256_file(Path(data_dir) / name)
            for name in ("images.npy", "labels.npy", "index.csv")
        },
    }
    return _ValidationSet(images, labels, index, record)


def run_sweep(
    target_ckpt: Path,
    source_ckpt: Path,
    data_dir: Path,
    out_csv: Path,
    settings: SweepSettings = DEFAULT_SETTINGS,
    log: Callable[[str], None] = print,
    patients_csv: Path | None = None,
) -> pd.DataFrame:
    """Sweep the target checkpoint's validation split (of `data_dir`) with the source's tensors.

    Writes `out_csv` atomically: a provenance comment line, then the table with a last
    column `condition` = "source" (`pandas.read_csv(out_csv, comment="#")` reads it
    back). Absent kinds have empty Dice cells; a Dice that is undefined (a class never
    present) is written as nan. The Dice per patient goes to `patients_csv` (default
    `patients_csv_path(out_csv)`, see `write_patient_sweep_csv`). Returns the table.
    """
    target, _ = load_model(target_ckpt)
    source, _ = load_model(source_ckpt)
    val = _validation_set(data_dir, log)
    table, patients = replacement_sweep_tables(
        target,
        source,
        val.images,
        val.labels,
        val.index,
        settings,
        source_name=str(source_ckpt),
        log=log,
    )
    record = stamp(
        target=str(target_ckpt),
        source=str(source_ckpt),
        target_sha256=sha256_file(target_ckpt),
        source_sha256=sha256_file(source_ckpt),
        conditions=["source"],
        **val.record,
        settings=asdict(settings),
        device=_describe_device(settings),
    )
    table = with_condition(table, "source")
    write_patient_sweep_csv(
        patients_csv or patients_csv_path(out_csv),
        with_condition(patients, "source", first=True),
        record,
        out_csv,
    )
    write_sweep_csv(out_csv, table, record)
    return table


def run_control_sweep(
    target_ckpt: Path,
    data_dir: Path,
    out_csv: Path,
    settings: SweepSettings = DEFAULT_SETTINGS,
    conditions: Sequence[str] = CONTROLS,
    log: Callable[[str], None] = print,
    patients_csv: Path | None = None,
) -> pd.DataFrame:
    """The control sweeps of the target checkpoint, one CSV with a `condition` column.

    Each condition (`control_source`: "reinit", "rerandom") is a whole sweep: the same
    columns as `run_sweep`'s CSV, its rows (baseline included, so the baseline appears
    once per condition, identical) in the order of `conditions`. The network and seed
    come from the checkpoint's record (arch, options, seed, as train.py writes them);
    the provenance line names the target, the conditions and each one's seed. The Dice
    per patient goes to `patients_csv` (default `patients_csv_path(out_csv)`).
    """
    conditions = _checked_conditions(conditions)
    target, target_record = load_model(target_ckpt)
    start = target_start(target_ckpt, target_record)
    network = {"arch": target_record["arch"], "options": target_record.get("options", {})}
    if (target_record.get("setup") or {}).get("loaded"):
        log(
            f"warning: {target_ckpt}: trained from reused tensors; reinit uses its seed's "
            "fresh initialisation, not the tensors it was loaded with"
        )
    val = _validation_set(data_dir, log)
    table, patients = _control_tables(
        target, target_ckpt, network, start, val, settings, conditions, log
    )
    record = stamp(
        target=str(target_ckpt),
        target_sha256=sha256_file(target_ckpt),
        conditions=conditions,
        network=network,
        seeds={c: independent_seed(control_start(c, start)) for c in conditions},
        starts={c: control_start(c, start) for c in conditions},
        seed_rule=(
            "reinit: the target's start (its independent parts' seed, its shared or file "
            f"encoder); rerandom: every part drawn with that seed + {RERANDOM_SEED_OFFSET}"
        ),
        **val.record,
        settings=asdict(settings),
        device=_describe_device(settings),
    )
    write_patient_sweep_csv(patients_csv or patients_csv_path(out_csv), patients, record, out_csv)
    write_sweep_csv(out_csv, table, record)
    return table


def _checked_conditions(conditions: Sequence[str]) -> list[str]:
    """The conditions once each, in order; none, or an unknown one, refused before any work."""
    conditions = list(dict.fromkeys(conditions))
    if not conditions:
        raise PrrmseError("sweep conditions", "none given")
    for condition in conditions:
        control_seed(condition, 0)  # refuses an unknown condition before any work
    return conditions


def _control_tables(
    target: torch.nn.Module,
    target_ckpt: Path,
    network: dict[str, Any],
    start: Start,
    val: _ValidationSet,
    settings: SweepSettings,
    conditions: list[str],
    log: Callable[[str], None],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep table and the per-patient table of every condition, one after the other,
    from one pass (`shared_sweep_tables`: rows whose tensors are the same bytes in two
    conditions are evaluated once)."""
    sources = [
        (f"{condition} of {target_ckpt}", control_source(condition, network, start))
        for condition in conditions
    ]
    results = shared_sweep_tables(
        target, sources, val.images, val.labels, val.index, settings, log=log
    )
    tables = [with_condition(table, c) for c, (table, _) in zip(conditions, results, strict=True)]
    patient_tables = [
        with_condition(patients, c, first=True)
        for c, (_, patients) in zip(conditions, results, strict=True)
    ]
    return pd.concat(tables, ignore_index=True), pd.concat(patient_tables, ignore_index=True)


def with_condition(table: pd.DataFrame, condition: str, first: bool = False) -> pd.DataFrame:
    """A copy with a `condition` column, last (sweep CSVs) or first (per-patient CSVs)."""
    out = table.copy()
    out.insert(0 if first else len(out.columns), "condition", condition)
    return out


def _describe_device(settings: SweepSettings) -> dict[str, Any]:
    device = torch.device(settings.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"device": str(device), "name": name, "threads": torch.get_num_threads()}


def write_patient_sweep_csv(
    path: Path, table: pd.DataFrame, record: dict[str, Any], sweep_csv: Path
) -> None:
    """Provenance line (the sweep's, plus which sweep CSV), then the long per-patient table.

    Columns: condition, family, layer, kind, patient, class, dice; the baseline rows
    have family "baseline", layer 0 and an empty kind; absent kinds have no rows; a
    Dice is nan where the class is absent from a patient's prediction and truth (or
    from the whole validation set). Averaged over patients per (condition, family,
    layer, kind, class), NaN skipped, it gives the sweep CSV's Dice.
    """
    write_patients_csv(
        path, table, {**record, "table": "Dice per patient", "sweep_csv": str(sweep_csv)}
    )


def write_sweep_csv(path: Path, table: pd.DataFrame, record: dict[str, Any]) -> None:
    """Provenance line, then the table; absent rows' Dice cells empty, undefined Dice "nan"."""
    text = table.astype({column: object for column in DICE_COLUMNS})
    text.loc[table["status"] == "absent", list(DICE_COLUMNS)] = ""
    with atomic_path(path) as temp, open(temp, "w") as handle:
        handle.write(csv_header(record))
        text.to_csv(handle, index=False, na_rep="nan")
