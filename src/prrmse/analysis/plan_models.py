"""The reuse plan beside real models: the W rule calibrated on two untrained models, the
`prrmse plan` verb (which calibrates), and a plan checked against the model it will load.

Apart from `prrmse.analysis.plan` because these need torch and the networks (~5 s to import per
job on 2 cores); the tables and claims that only read plans do not.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prrmse.analysis.plan import (
    KIND_WORDS,
    SWEEP_COLUMNS,
    check_pair,
    load_plan,
    make_plan,
    pair_rows,
)
from prrmse.analysis.plan_rules import W_CONFIG_KEY, W_CRITERION, W_KEY, check_rms
from prrmse.analysis.rmse import probe_shape, tensor_rmse
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file, write_json_atomic
from prrmse.core.tabular import RMSE_COLUMNS, read_table
from prrmse.models.layers import KINDS_OF_FAMILY, index_layers, layer_label
from prrmse.models.registry import ARCH_ATTR, build_model

# The random pair's seeds: fixed, distinct, and apart from the study's seeds (1, 2, ...).
CALIBRATION_SEEDS = (101, 202)
# Options that would make the pair share tensors (a local encoder weights file).
SHARED_START_OPTIONS = ("encoder_weights",)


def calibrate(
    network: Mapping[str, Any], threshold: float, seeds: Sequence[int] = CALIBRATION_SEEDS
) -> dict[str, Any]:
    """Relative RMSE of every non-head conv W between two independently initialised,
    untrained models of `network` (a config networks entry: arch, options), and whether
    `threshold` would judge any of them close.

    Each model is built under its own seed inside `torch.random.fork_rng`, so the caller's
    random state is left as it was. Options that load shared tensors (a local encoder
    weights file) are left out: the pair must share nothing.
    """
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise PrrmseError("plan calibration", f"needs two distinct seeds, got {list(seeds)}")
    arch = str(network["arch"])
    given = dict(network.get("options") or {})
    options = {k: v for k, v in given.items() if k not in SHARED_START_OPTIONS}
    models = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            models.append(build_model(arch, **options))
    table = tensor_rmse(models[0], models[1], aligned=False)
    weights = table[
        (table["family"] == "conv")
        & (table["kind"] == "W")
        & ~table["head"].astype(bool)
        & (table["status"] == "compared")
    ]
    if weights.empty:
        raise PrrmseError(f"networks arch {arch}", "has no conv W to calibrate the plan's rule on")
    relative = dict(
        zip(weights["layer"].astype(int), weights["rmse"] / weights["rms_a"], strict=True)
    )
    passed = sorted(layer for layer, value in relative.items() if value <= threshold)
    values = list(relative.values())
    return {
        "rule": W_CRITERION,
        "scale": "rms(target's W) = sqrt(mean(w^2)); two independent draws of a zero-mean "
        "initialiser differ by sqrt(2) ~ 1.414 relative to it",
        "key": W_CONFIG_KEY,
        "threshold": float(threshold),
        "random_pair": {
            "arch": arch,
            "options": options,
            "left_out": sorted(set(given) - set(options)),
            "seeds": [int(seed) for seed in seeds],
            "conv_w_layers": len(values),
            "min": float(min(values)),
            "min_layer": min(relative, key=relative.__getitem__),
            "median": float(statistics.median(values)),
            "max": float(max(values)),
        },
        "passes_random_layer": bool(passed),
        "random_layers_passed": passed,
    }


def run_plan(
    sweep_csv: Path,
    rmse_csv: Path,
    out_json: Path,
    thresholds: Mapping[str, Any],
    rule: str,
    target_name: str,
    source_name: str,
    network: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read a sweep CSV and an RMSE CSV of one target/source pair; write the plan JSON.

    `network` is the target's config networks entry (arch, options): the relative-RMSE
    rule is calibrated on two untrained models of it (`calibrate`); it is required when
    the rule judges conv W by RMSE.
    """
    sweep_csv, rmse_csv = Path(sweep_csv), Path(rmse_csv)
    sweep = read_table(sweep_csv, SWEEP_COLUMNS)
    rmse = read_table(rmse_csv, RMSE_COLUMNS)
    check_pair(sweep_csv, sweep, target_name, source_name)
    rmse, target_rms = pair_rows(rmse_csv, rmse, target_name, source_name)
    stamps = [provenance.read_csv_provenance(path) or {} for path in (rmse_csv, sweep_csv)]
    arch = next((stamp["arch"] for stamp in stamps if "arch" in stamp), None)
    calibration = None
    if network is not None:
        if arch is not None and str(network["arch"]) != str(arch):
            raise PrrmseError(
                rmse_csv,
                f"made for architecture {arch!r}, the target's network entry is "
                f"{network['arch']!r}",
            )
        if thresholds.get(W_KEY) is not None:
            calibration = calibrate(network, float(thresholds[W_KEY]))
    if rule != "sweep":
        check_rms(rmse, target_rms, rmse_csv)
    plan = make_plan(
        sweep,
        rmse,
        thresholds,
        rule,
        where=f"{sweep_csv} vs {rmse_csv}",
        target_rms=target_rms,
        calibration=calibration,
    )
    result = {
        "target": target_name,
        "source": source_name,
        "arch": arch,
        **plan,
        "provenance": provenance.stamp(
            config={
                "thresholds": dict(thresholds),
                "rule": rule,
                "network": dict(network) if network is not None else None,
            },
            inputs={str(path): sha256_file(path) for path in (sweep_csv, rmse_csv)},
        ),
    }
    write_json_atomic(out_json, result)
    return result


def check_plan_fits(path: Path, plan: Mapping[str, Any], model: nn.Module) -> None:
    """Architecture, layer counts, modules and every named kind must exist on the model."""
    arch = (getattr(model, ARCH_ATTR, None) or {}).get("name")
    if plan["arch"] and arch and plan["arch"] != arch:
        raise PrrmseError(
            path, f"plan made for another architecture: plan {plan['arch']!r}, model {arch!r}"
        )
    layers = {
        (layer.family, layer.number): layer for layer in index_layers(model, probe_shape(model))
    }
    counts = {family: sum(1 for f, _ in layers if f == family) for family in KINDS_OF_FAMILY}
    if counts != plan["layer_counts"]:
        raise PrrmseError(
            path,
            f"plan made for another architecture: plan has layer counts "
            f"{plan['layer_counts']}, the model {counts}",
        )
    for entry in plan["entries"]:
        layer = layers.get((entry["family"], int(entry["layer"])))
        if layer is None:
            raise PrrmseError(
                path, f"plan names {entry['family']} {entry['layer']}, which the model lacks"
            )
        if entry["module"] != layer.module_name:
            raise PrrmseError(
                path,
                f"plan made for another architecture: {layer_label(layer)} is "
                f"{entry['module']} in the plan, {layer.module_name} in the model",
            )
        if entry["decision"] != "absent" and entry["kind"] not in layer.kinds:
            raise PrrmseError(
                path,
                f"plan names kind {entry['kind']} on {layer_label(layer)}, "
                f"which has no {KIND_WORDS[entry['kind']]}",
            )


def load_plan_for(path: Path, model: nn.Module) -> dict[str, Any]:
    """A validated plan that was made for `model`'s architecture and layers."""
    plan = load_plan(path)
    check_plan_fits(path, plan, model)
    return plan
