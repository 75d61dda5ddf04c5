"""The study's tables of models and plans, written by `prrmse.results.table_format`.

Builders: `baseline_table` (per-class Dice and mean of every model, or MSE for
auto-encoders, from results/models/*/metrics.json) and `plan_table` (non-reusable layers
per kind and the share reused, from plan JSONs). Both put the paper's values beside ours
(`prrmse.results.paper`: v1 Tables 1-2 baselines, the v1/v2 section 3.1 plan). A builder leaves
what else it read in `table.attrs`: "inputs" (files of the run, path -> sha256) and
"resources" (the paper's packaged files, package-relative name -> sha256), for the stamp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd

from prrmse.analysis.plan import load_plan
from prrmse.core import provenance as provenance_lines
from prrmse.core.errors import PrrmseError
from prrmse.core.io import read_json, sha256_file
from prrmse.core.kinds import BN_KINDS, CONV_KINDS
from prrmse.core.naming import ModelSpec, parse_model_name
from prrmse.results import paper
from prrmse.results.table_format import write_table

ABSENT = "absent"
CLASS_COLUMNS = ("BG", "RV", "MYO", "LV")  # classes 0..3 of the shared label space
MEAN4 = "mean (4 classes)"  # the paper's Table 1 mean: background included
MEAN_FG = "mean (RV, MYO, LV)"  # the foreground mean our training selects the best epoch by
PAPER_ROW = "paper row"
PAPER_COLUMNS = tuple(f"paper {column}" for column in (*CLASS_COLUMNS, MEAN4))
KINDS = (*BN_KINDS, *CONV_KINDS)
CHECKPOINT = "model.safetensors"  # beside metrics.json in a model folder


# --- writing ------------------------------------------------------------------------------


# --- builders -----------------------------------------------------------------------------


def _number(value: Any, where: Path, what: str) -> float:
    """A JSON number; null (or NaN) is an undefined value."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, Real):
        raise PrrmseError(where, f"{what} is {value!r}, not a number")
    return float(value)


def _mean(values: Sequence[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return sum(finite) / len(finite) if finite else math.nan


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
        row[MEAN4] = _mean(values)
        row[MEAN_FG] = _number(metrics.get("dice_mean", _mean(values[1:])), path, "dice_mean")
    elif "mse" in metrics:
        row["MSE"] = _number(metrics["mse"], path, "mse")
    else:
        raise PrrmseError(path, "has neither dice (segmentation) nor mse (auto-encoder)")
    return row


def _spec(name: str) -> ModelSpec | None:
    try:
        return parse_model_name(name)
    except PrrmseError:
        return None  # a model outside the study's naming has no paper counterpart


def _conv_bias(checkpoint: Path) -> bool:
    """The conv_bias option a checkpoint records, read from its header (no tensors)."""
    from safetensors import SafetensorError

    from prrmse.repro.lineage import checkpoint_record

    if not checkpoint.is_file():
        raise PrrmseError(
            checkpoint, "checkpoint not found (the paper's PSPNet row is chosen by its conv_bias)"
        )
    try:
        record = checkpoint_record(checkpoint)
    except (SafetensorError, OSError, ValueError) as exc:
        raise PrrmseError(checkpoint, f"not a readable safetensors checkpoint ({exc})") from exc
    options = (record or {}).get("options")
    if not isinstance(options, dict) or not isinstance(options.get("conv_bias"), bool):
        raise PrrmseError(checkpoint, "records no conv_bias option (the paper's rows differ by it)")
    return bool(options["conv_bias"])


def _paper_row(
    metrics_json: Path, model: str, baselines: pd.DataFrame, inputs: dict[str, str]
) -> dict[str, Any]:
    """The paper's baseline for a full-data ACDC segmentation model of a network the paper
    has a row for; the PSPNet's row by the conv_bias its checkpoint records. Else nothing."""
    spec = _spec(model)
    if spec is None or (spec.task, spec.dataset, spec.n_train) != ("seg", "acdc", None):
        return {}
    rows = baselines[baselines["network"] == spec.network]
    if rows.empty:
        return {}
    chosen = ""
    if rows["conv_bias"].notna().any():
        checkpoint = Path(metrics_json).parent / CHECKPOINT
        bias = _conv_bias(checkpoint)
        inputs[str(checkpoint)] = sha256_file(checkpoint)
        rows = rows[rows["conv_bias"] == bias]
        chosen = f" (by conv_bias {str(bias).lower()} in {CHECKPOINT})"
        if rows.empty:
            return {}
    row = rows.iloc[0]
    values = [float(row[column]) for column in paper.CLASSES]
    return {
        PAPER_ROW: f"{row['model']}{chosen}",
        **dict(zip(PAPER_COLUMNS, [*values, _mean(values)], strict=True)),
    }


def _resources(*paths: Path) -> dict[str, str]:
    return {paper.recorded_name(path): sha256_file(path) for path in paths}


def baseline_table(
    metrics_jsons: Sequence[Path], paper_csv: Path = paper.BASELINE_CSV
) -> pd.DataFrame:
    """One row per model, in the given order: Dice of classes 0..3 (BG RV MYO LV), the mean
    of all four (the paper's Table 1 definition) and of the foreground classes (NaN skipped
    in both), MSE for auto-encoders; columns only for the kinds present.

    Beside each full-data ACDC segmentation model of a network the paper has a baseline for
    (v1 Tables 1-2: UNet, PSPNet with and without conv bias): the paper's row, its classes
    and their 4-class mean (the paper prints none for these rows; computed here). The
    PSPNet row is chosen by the conv_bias option recorded in the model's checkpoint
    (model.safetensors beside metrics.json; read from its header); `paper row` says which
    and why. Other models have empty paper cells.
    """
    if not metrics_jsons:
        raise PrrmseError("baseline table", "no metrics files given")
    rows = [_baseline_row(Path(path)) for path in metrics_jsons]
    names = [row["model"] for row in rows]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PrrmseError("baseline table", f"model named twice: {', '.join(repeated)}")
    columns = ["model"]
    inputs: dict[str, str] = {}
    resources: dict[str, str] = {}
    if any(MEAN4 in row for row in rows):
        columns += [*CLASS_COLUMNS, MEAN4, MEAN_FG, PAPER_ROW, *PAPER_COLUMNS]
        baselines = paper.read_baseline(paper_csv)
        resources = _resources(paper_csv)
        for path, row in zip(metrics_jsons, rows, strict=True):
            if MEAN4 in row:
                row.update(_paper_row(Path(path), row["model"], baselines, inputs))
    columns += ["MSE"] if any("MSE" in row for row in rows) else []
    numbers = {column: float for column in columns if column not in ("model", PAPER_ROW)}
    table = pd.DataFrame(rows, columns=columns).astype(numbers)
    if PAPER_ROW in table:
        table[PAPER_ROW] = table[PAPER_ROW].astype(object).where(table[PAPER_ROW].notna(), None)
    table.attrs.update(decimals={"MSE": 5}, inputs=inputs, resources=resources)
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
    return _layers(layers) if layers else "none"


def _layers(layers: Sequence[int]) -> str:
    return ", ".join(str(layer) for layer in sorted(layers)) or "none"


def _percent(share: Any) -> float:
    return math.nan if share is None else 100.0 * float(share)


def _task(name: str) -> str | None:
    """<network>-<task>-<dataset> of a model name (seed and subset dropped)."""
    spec = _spec(name)
    return None if spec is None else f"{spec.network}-{spec.task}-{spec.dataset}"


def _paper_layers(plan: Mapping[str, Any], path: Path) -> dict[str, list[int]]:
    given = plan["non_reusable"]
    if not isinstance(given, dict):
        raise PrrmseError(path, "non_reusable must map each kind to its layers")
    layers: dict[str, list[int]] = {}
    for kind in KINDS:
        values = given.get(kind, [])
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise PrrmseError(path, f"non_reusable {kind} must list layer numbers, got {values!r}")
        layers[kind] = sorted(values)
    return layers


def agreement(ours: dict[str, Any], kind: str, paper_layers: Sequence[int]) -> str | None:
    """Which non-reusable layers of one kind our plan shares with the paper's:
    "agree: 1; ours only: 3; paper only: 17" (empty parts left out, "agree: none" when
    nothing is shared), "absent in ours (paper: 1)" where our model lacks the kind, None
    where our plan has no such kind."""
    shown = _non_reusable(ours, kind)
    if shown is None or shown == "head only":
        return None
    if shown == ABSENT:
        return f"{ABSENT} in ours (paper: {_layers(paper_layers)})"
    mine, theirs = set(ours["non_reusable"].get(kind, [])), set(paper_layers)
    parts = [f"agree: {_layers(mine & theirs)}"]
    parts += [f"ours only: {_layers(mine - theirs)}"] if mine - theirs else []
    parts += [f"paper only: {_layers(theirs - mine)}"] if theirs - mine else []
    return "; ".join(parts)


def plan_table(plan_jsons: Sequence[Path], paper_json: Path = paper.PLAN_JSON) -> pd.DataFrame:
    """The paper's plan (v1/v2 section 3.1), then one row per plan of ours: source, target,
    the non-reusable layers of each kind, and the share of entries and of scalars reused,
    in %. After each plan of ours with the paper's source and target tasks (any seed), a
    row "ours vs paper" says per kind which non-reusable layers agree and which differ.

    The paper states its share as "92 % of the parameters" (shown as entries; it gives no
    share of scalars).
    """
    if not plan_jsons:
        raise PrrmseError("plan table", "no plan files given")
    reference = paper.read_plan(paper_json)
    paper_layers = _paper_layers(reference, Path(paper_json))
    rows: list[dict[str, Any]] = [
        {
            "plan": "paper",
            "source": str(reference["source"]),
            "target": str(reference["target"]),
            **{kind: _layers(paper_layers[kind]) for kind in KINDS},
            "reused entries (%)": _number(
                reference["share_reused_percent"], Path(paper_json), "share_reused_percent"
            ),
            "reused scalars (%)": math.nan,
        }
    ]
    pair = (str(reference["source"]), str(reference["target"]))
    for path in plan_jsons:
        plan = load_plan(Path(path))
        rows.append(
            {
                "plan": "ours",
                "source": plan["source"],
                "target": plan["target"],
                **{kind: _non_reusable(plan, kind) for kind in KINDS},
                "reused entries (%)": _percent(plan["share"].get("entries")),
                "reused scalars (%)": _percent(plan["share"].get("scalars")),
            }
        )
        if (_task(str(plan["source"])), _task(str(plan["target"]))) == pair:
            rows.append(
                {
                    "plan": "ours vs paper",
                    "source": plan["source"],
                    "target": plan["target"],
                    **{kind: agreement(plan, kind, paper_layers[kind]) for kind in KINDS},
                    "reused entries (%)": math.nan,
                    "reused scalars (%)": math.nan,
                }
            )
    table = pd.DataFrame(rows)
    table.attrs.update(decimals=1, inputs={}, resources=_resources(Path(paper_json)))
    return table


def make_table(kind: str, inputs: Sequence[Path], out_base: Path, caption: str) -> pd.DataFrame:
    """`prrmse table`: the `baseline` or `plans` table of `inputs`, written three ways with a
    stamp naming every file it read: `inputs`, the checkpoints a builder opened and the
    paper's packaged files by their package-relative name (never an absolute path)."""
    builders = {"baseline": baseline_table, "plans": plan_table}
    if kind not in builders:
        raise PrrmseError(kind, f"unknown table (valid: {', '.join(builders)})")
    table = builders[kind](inputs)
    read = {**{str(p): sha256_file(p) for p in inputs}, **table.attrs.get("inputs", {})}
    stamp = provenance_lines.stamp(inputs=read, resources=table.attrs.get("resources", {}))
    write_table(table, out_base, caption, stamp)
    return table
