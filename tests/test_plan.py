"""Reuse plan on hand-made sweep and RMSE tables: decisions, shares, rules, bad input, load_plan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

from prrmse.checkpoint import load_model
from prrmse.errors import PrrmseError
from prrmse.models.registry import ARCH_ATTR
from prrmse.plan import load_plan, make_plan, run_plan
from prrmse.provenance import csv_header
from prrmse.rmse import run_rmse
from tests.test_rmse import save_unet, tiny

# BN 1 (module "1"), conv 1 (module "0", with bias), conv 2 = head (module "3", no bias):
# the layers of tiny(bias=True) with a bias-free head.
RMSE_ROWS = [  # family, layer, module, head, kind, status, numel, rmse
    ("bn", 1, "1", False, "RM", "compared", 2, 0.1),
    ("bn", 1, "1", False, "RV", "compared", 2, 0.2),
    ("bn", 1, "1", False, "RW", "compared", 2, 0.3),
    ("bn", 1, "1", False, "RB", "compared", 2, 0.4),
    ("conv", 1, "0", False, "W", "compared", 18, 0.05),
    ("conv", 1, "0", False, "B", "compared", 2, 0.001),
    ("conv", 2, "3", True, "W", "compared", 8, 0.5),
    ("conv", 2, "3", True, "B", "absent", None, None),
]
BASELINE = [0.99, 0.8, 0.9, 0.7]  # foreground mean 0.8
NAN = float("nan")
REPLACED = {  # class 0 is deliberately wrecked: background must not count
    ("bn", 1, "1", "RM"): [0.0, 0.8, 0.9, 0.7],  # drop 0
    ("bn", 1, "1", "RV"): [0.0, 0.5, 0.6, 0.4],  # drop 0.3
    ("bn", 1, "1", "RW"): [0.0, NAN, 0.9, 0.68],  # nanmean 0.79: drop 0.01 (NaN as 0: 0.27)
    ("bn", 1, "1", "RB"): [0.0, 0.8, 0.9, 0.7],
    ("conv", 1, "0", "W"): [0.0, 0.79, 0.9, 0.7],  # drop 0.0033
    ("conv", 1, "0", "B"): [0.0, 0.8, 0.9, 0.7],
    ("conv", 2, "3", "W"): [0.0, 0.8, 0.9, 0.7],  # the head: kept however small the drop
}
THRESHOLDS = {
    "max_dice_drop": dict.fromkeys(["RM", "RV", "RW", "RB", "W", "B"], 0.02),
    "max_rmse_w": 0.01,
}


def rmse_table() -> pd.DataFrame:
    table = pd.DataFrame(
        RMSE_ROWS, columns=["family", "layer", "module", "head", "kind", "status", "numel", "rmse"]
    )
    return table.assign(model_a="t", model_b="s")[["model_a", "model_b", *table.columns]]


def sweep_table() -> pd.DataFrame:
    rows = []
    for cls, dice in enumerate(BASELINE):
        rows.append(("baseline", 0, "", False, "", "baseline", cls, dice))
    for (family, layer, module, kind), dices in REPLACED.items():
        for cls, dice in enumerate(dices):
            rows.append((family, layer, module, module == "3", kind, "replaced", cls, dice))
    for cls in range(4):
        rows.append(("conv", 2, "3", True, "B", "absent", cls, NAN))
    table = pd.DataFrame(
        rows, columns=["family", "layer", "module", "head", "kind", "status", "class", "dice"]
    )
    table["baseline_dice"] = [BASELINE[cls] for cls in table["class"]]
    return table.assign(difference=table["dice"] - table["baseline_dice"])


def decisions(plan: dict) -> dict[tuple[str, int, str], str]:
    return {(e["family"], e["layer"], e["kind"]): e["decision"] for e in plan["entries"]}


def test_sweep_rule_decides_by_foreground_dice_drop() -> None:
    plan = make_plan(sweep_table(), rmse_table(), THRESHOLDS, "sweep")
    assert decisions(plan) == {
        ("bn", 1, "RM"): "reuse",
        ("bn", 1, "RV"): "keep",
        ("bn", 1, "RW"): "reuse",
        ("bn", 1, "RB"): "reuse",
        ("conv", 1, "W"): "reuse",
        ("conv", 1, "B"): "reuse",
        ("conv", 2, "W"): "keep",
        ("conv", 2, "B"): "absent",
    }
    # decidable: 6 entries (not head, not absent) with 2+2+2+2+18+2 = 28 scalars; RV kept
    assert plan["share"] == {"entries": 5 / 6, "scalars": 26 / 28}
    assert plan["non_reusable"] == {"RM": [], "RV": [1], "RW": [], "RB": [], "W": [], "B": []}
    assert plan["layer_counts"] == {"bn": 1, "conv": 2}
    by_key = {(e["family"], e["layer"], e["kind"]): e for e in plan["entries"]}
    assert by_key[("bn", 1, "RV")]["evidence"]["dice_drop"] == pytest.approx(0.3)
    assert by_key[("bn", 1, "RW")]["evidence"]["dice_drop"] == pytest.approx(0.01)
    assert by_key[("conv", 2, "W")]["evidence"]["reason"] == "head: never reused"
    assert by_key[("conv", 2, "B")]["evidence"] == {
        "dice_drop": None,
        "rmse": None,
        "reason": "absent: 3 has no bias",
    }


def test_rmse_and_both_rules_judge_conv_weights_by_rmse() -> None:
    both = make_plan(sweep_table(), rmse_table(), THRESHOLDS, "both")
    assert decisions(both)[("conv", 1, "W")] == "keep"
    assert both["share"] == {"entries": 4 / 6, "scalars": 8 / 28}
    assert both["non_reusable"]["W"] == [1] and both["non_reusable"]["RV"] == [1]
    loose = {
        **THRESHOLDS,
        "max_rmse_w": 0.1,
        "max_dice_drop": {**THRESHOLDS["max_dice_drop"], "W": 0.0},
    }
    rmse_rule = make_plan(sweep_table(), rmse_table(), loose, "rmse")
    entry = next(e for e in rmse_rule["entries"] if e["kind"] == "W" and e["layer"] == 1)
    assert entry["decision"] == "reuse" and entry["evidence"]["reason"] == "rmse 0.05 <= 0.1"
    assert (
        decisions(make_plan(sweep_table(), rmse_table(), loose, "both"))[("conv", 1, "W")] == "keep"
    )


def test_bad_rule_thresholds_and_layer_sets_are_refused() -> None:
    with pytest.raises(PrrmseError, match="unknown rule"):
        make_plan(sweep_table(), rmse_table(), THRESHOLDS, "vote")
    with pytest.raises(PrrmseError, match="max_rmse_w"):
        make_plan(
            sweep_table(), rmse_table(), {"max_dice_drop": THRESHOLDS["max_dice_drop"]}, "both"
        )
    other = sweep_table().replace({"module": {"0": "conv_a"}})
    with pytest.raises(PrrmseError, match="different layers"):
        make_plan(other, rmse_table(), THRESHOLDS, "sweep")


def write_inputs(
    folder: Path, sweep: pd.DataFrame | None = None, target: str = "t", source: str = "s"
) -> tuple[Path, Path]:
    sweep_csv, rmse_csv = folder / "sweep.csv", folder / "rmse.csv"
    sweep = sweep_table() if sweep is None else sweep
    sweep_csv.write_text(
        csv_header({"target": target, "source": source}) + sweep.to_csv(index=False)
    )
    rmse_csv.write_text(csv_header({"arch": "unet"}) + rmse_table().to_csv(index=False))
    return sweep_csv, rmse_csv


def test_run_plan_writes_stamped_json_and_checks_its_inputs(tmp_path: Path) -> None:
    sweep_csv, rmse_csv = write_inputs(tmp_path)
    out = tmp_path / "plans" / "plan.json"
    plan = run_plan(sweep_csv, rmse_csv, out, THRESHOLDS, "sweep", "t", "s")
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(plan)) and written["arch"] == "unet"
    assert (written["target"], written["source"], written["rule"]) == ("t", "s", "sweep")
    assert set(written["provenance"]["inputs"]) == {str(sweep_csv), str(rmse_csv)}

    with pytest.raises(
        PrrmseError, match="sweep.csv: made for source 's', the plan's source is 'x'"
    ):
        run_plan(sweep_csv, rmse_csv, tmp_path / "bad.json", THRESHOLDS, "sweep", "t", "x")
    write_inputs(tmp_path, source="x")
    with pytest.raises(PrrmseError, match="rmse.csv: no rows for the pair t / x"):
        run_plan(sweep_csv, rmse_csv, tmp_path / "bad.json", THRESHOLDS, "sweep", "t", "x")
    write_inputs(tmp_path, target="other")
    with pytest.raises(PrrmseError, match="sweep.csv: made for target 'other'"):
        run_plan(sweep_csv, rmse_csv, tmp_path / "bad.json", THRESHOLDS, "sweep", "t", "s")
    write_inputs(tmp_path, sweep=sweep_table().drop(columns=["dice", "class"]))
    with pytest.raises(PrrmseError, match="sweep.csv: missing columns: class, dice"):
        run_plan(sweep_csv, rmse_csv, tmp_path / "bad.json", THRESHOLDS, "sweep", "t", "s")
    assert not (tmp_path / "bad.json").exists()


def plan_model(conv_bias: bool = True, arch: str | None = None) -> nn.Module:
    model = tiny(bias=conv_bias)
    model[3] = nn.Conv2d(2, 4, 1, bias=False)
    if arch:
        setattr(model, ARCH_ATTR, {"name": arch, "options": {}})
    return model


def test_load_plan_validates_and_checks_the_model(tmp_path: Path) -> None:
    sweep_csv, rmse_csv = write_inputs(tmp_path)
    path = tmp_path / "plan.json"
    run_plan(sweep_csv, rmse_csv, path, THRESHOLDS, "sweep", "t", "s")
    assert math.isclose(load_plan(path, plan_model(arch="unet"))["share"]["entries"], 5 / 6)
    with pytest.raises(PrrmseError, match="plan names kind B on conv 1, which has no bias"):
        load_plan(path, plan_model(conv_bias=False))
    with pytest.raises(
        PrrmseError, match="plan made for another architecture: plan 'unet', model 'pspnet'"
    ):
        load_plan(path, plan_model(arch="pspnet"))
    with pytest.raises(PrrmseError, match="plan made for another architecture"):
        load_plan(path, nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)))

    plan = json.loads(path.read_text())
    plan["entries"][0]["decision"] = "maybe"
    path.write_text(json.dumps(plan))
    with pytest.raises(PrrmseError, match="entry 1: decision 'maybe'"):
        load_plan(path)
    del plan["share"]
    path.write_text(json.dumps(plan))
    with pytest.raises(PrrmseError, match="missing keys share"):
        load_plan(path)


def test_plan_from_run_rmse_output_fits_the_model(tmp_path: Path) -> None:
    target, source = (
        save_unet(tmp_path / "t.safetensors", 1),
        save_unet(tmp_path / "s.safetensors", 2),
    )
    rmse = run_rmse([target, source], tmp_path / "rmse.csv")
    layers = rmse[rmse["status"] == "compared"]
    rows = [("baseline", 0, "", False, "", "baseline", c, 0.5) for c in range(4)]
    for row in layers.itertuples():
        rows += [
            (row.family, row.layer, row.module, row.head, row.kind, "replaced", c, 0.5)
            for c in range(4)
        ]
    sweep = pd.DataFrame(
        rows, columns=["family", "layer", "module", "head", "kind", "status", "class", "dice"]
    )
    sweep_csv = tmp_path / "sweep.csv"
    sweep.assign(baseline_dice=0.5, difference=0.0).to_csv(sweep_csv, index=False)
    plan = run_plan(
        sweep_csv, tmp_path / "rmse.csv", tmp_path / "plan.json", THRESHOLDS, "sweep", "t", "s"
    )
    assert plan["share"] == {"entries": 1.0, "scalars": 1.0} and plan["layer_counts"] == {
        "bn": 18,
        "conv": 19,
    }
    assert load_plan(tmp_path / "plan.json", load_model(target)[0])["arch"] == "unet"
