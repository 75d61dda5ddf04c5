"""Reuse plan on hand-made sweep and RMSE tables: decisions, shares, rules, bad input, load_plan."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from prrmse.analysis.plan import load_plan, make_plan
from prrmse.analysis.plan_models import CALIBRATION_SEEDS, calibrate, load_plan_for, run_plan
from prrmse.analysis.rmse import run_rmse, tensor_rmse
from prrmse.core.config import load_config
from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import csv_header
from prrmse.models.checkpoint import load_model
from prrmse.models.registry import ARCH_ATTR, build_model
from tests.analysis.test_rmse import save_unet, tiny

ROOT = Path(__file__).resolve().parents[2]
TINY = load_config(ROOT / "tests" / "workflow" / "tiny.yaml")
# The smallest network the suites build: its tensors (18 scalars) scatter the most.
UNET = {"arch": "unet", "options": {"width": 2}}

# BN 1 (module "1"), conv 1 (module "0", with bias), conv 2 = head (module "3", no bias):
# the layers of tiny(bias=True) with a bias-free head.
RMSE_ROWS = [  # family, layer, module, head, kind, status, numel, rmse, rms_a, rms_b
    ("bn", 1, "1", False, "RM", "compared", 2, 0.1, 0.5, 0.5),
    ("bn", 1, "1", False, "RV", "compared", 2, 0.2, 1.0, 1.0),
    ("bn", 1, "1", False, "RW", "compared", 2, 0.3, 1.0, 1.0),
    ("bn", 1, "1", False, "RB", "compared", 2, 0.4, 0.0, 0.4),
    ("conv", 1, "0", False, "W", "compared", 18, 0.05, 0.1, 0.2),  # relative 0.5 (of b: 0.25)
    ("conv", 1, "0", False, "B", "compared", 2, 0.001, 0.01, 0.01),
    ("conv", 2, "3", True, "W", "compared", 8, 0.5, 0.5, 0.5),
    ("conv", 2, "3", True, "B", "absent", None, None, None, None),
]
RMSE_NAMES = "family layer module head kind status numel rmse rms_a rms_b".split()
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
    "max_rel_rmse_w": 0.3,
}


@functools.cache
def calibration(threshold: float, network: str = "unet") -> dict[str, Any]:
    return calibrate(UNET if network == "unet" else TINY["networks"][network], threshold)


def rmse_table(target: str = "t", source: str = "s") -> pd.DataFrame:
    table = pd.DataFrame(RMSE_ROWS, columns=RMSE_NAMES)
    return table.assign(model_a=target, model_b=source)[["model_a", "model_b", *table.columns]]


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
        "target_rms": None,
        "rel_rmse": None,
        "reason": "absent: 3 has no bias",
    }
    # relative RMSE is evidence for every compared tensor; undefined where the target's is 0
    assert by_key[("bn", 1, "RM")]["evidence"]["rel_rmse"] == pytest.approx(0.2)
    assert by_key[("bn", 1, "RB")]["evidence"]["rel_rmse"] is None
    assert plan["calibration"] is None and plan["thresholds"]["calibration"] is None


def test_rmse_and_both_rules_judge_conv_weights_by_relative_rmse() -> None:
    both = make_plan(sweep_table(), rmse_table(), THRESHOLDS, "both", calibration=calibration(0.3))
    assert decisions(both)[("conv", 1, "W")] == "keep"  # 0.05 / 0.1 = 0.5 > 0.3
    assert both["share"] == {"entries": 4 / 6, "scalars": 8 / 28}
    assert both["non_reusable"]["W"] == [1] and both["non_reusable"]["RV"] == [1]
    w1 = next(e for e in both["entries"] if e["kind"] == "W" and e["layer"] == 1)
    assert w1["evidence"]["rel_rmse"] == pytest.approx(0.5) and w1["evidence"]["target_rms"] == 0.1
    assert w1["evidence"]["reason"] == "dice drop 0.003333 <= 0.02; relative rmse 0.5 > 0.3"
    assert "rms(target's W)" in both["thresholds"]["w_criterion"]
    assert both["calibration"] == both["thresholds"]["calibration"] == calibration(0.3)
    loose = {
        **THRESHOLDS,
        "max_rel_rmse_w": 0.6,
        "max_dice_drop": {**THRESHOLDS["max_dice_drop"], "W": 0.0},
    }
    rmse_rule = make_plan(sweep_table(), rmse_table(), loose, "rmse", calibration=calibration(0.6))
    entry = next(e for e in rmse_rule["entries"] if e["kind"] == "W" and e["layer"] == 1)
    assert entry["decision"] == "reuse"
    assert entry["evidence"]["reason"] == "relative rmse 0.5 <= 0.6"
    loose_both = make_plan(sweep_table(), rmse_table(), loose, "both", calibration=calibration(0.6))
    assert decisions(loose_both)[("conv", 1, "W")] == "keep"
    # with the source as model a, the target's scale is rms_b: 0.05 / 0.2 = 0.25
    swapped = make_plan(
        sweep_table(),
        rmse_table(),
        THRESHOLDS,
        "rmse",
        target_rms="rms_b",
        calibration=calibration(0.3),
    )
    assert decisions(swapped)[("conv", 1, "W")] == "reuse"
    # a target W without scale cannot be judged close: kept, and the reason says why
    zero = rmse_table()
    zero.loc[(zero["kind"] == "W") & ~zero["head"], "rms_a"] = 0.0
    kept = make_plan(sweep_table(), zero, loose, "rmse", calibration=calibration(0.6))
    w1 = next(e for e in kept["entries"] if e["kind"] == "W" and e["layer"] == 1)
    assert w1["decision"] == "keep" and "relative rmse undefined" in w1["evidence"]["reason"]


def test_bad_rule_thresholds_and_layer_sets_are_refused() -> None:
    with pytest.raises(PrrmseError, match="unknown rule"):
        make_plan(sweep_table(), rmse_table(), THRESHOLDS, "vote")
    with pytest.raises(PrrmseError, match="max_rel_rmse_w: rule 'both' needs it"):
        make_plan(
            sweep_table(), rmse_table(), {"max_dice_drop": THRESHOLDS["max_dice_drop"]}, "both"
        )
    old = {"max_dice_drop": THRESHOLDS["max_dice_drop"], "max_rmse_w": 0.05}
    with pytest.raises(PrrmseError, match="max_rmse_w: replaced by max_rel_rmse_w"):
        make_plan(sweep_table(), rmse_table(), old, "sweep")
    with pytest.raises(PrrmseError, match="needs its calibration"):
        make_plan(sweep_table(), rmse_table(), THRESHOLDS, "both")
    with pytest.raises(PrrmseError, match="calibration made for 0.6, the threshold is 0.3"):
        make_plan(sweep_table(), rmse_table(), THRESHOLDS, "both", calibration=calibration(0.6))
    with pytest.raises(PrrmseError, match="rmse table: no rms_a column"):
        make_plan(
            sweep_table(),
            rmse_table().drop(columns=["rms_a", "rms_b"]),
            THRESHOLDS,
            "both",
            calibration=calibration(0.3),
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
    assert math.isclose(load_plan_for(path, plan_model(arch="unet"))["share"]["entries"], 5 / 6)
    with pytest.raises(PrrmseError, match="plan names kind B on conv 1, which has no bias"):
        load_plan_for(path, plan_model(conv_bias=False))
    with pytest.raises(
        PrrmseError, match="plan made for another architecture: plan 'unet', model 'pspnet'"
    ):
        load_plan_for(path, plan_model(arch="pspnet"))
    with pytest.raises(PrrmseError, match="plan made for another architecture"):
        load_plan_for(path, nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)))

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
    assert load_plan_for(tmp_path / "plan.json", load_model(target)[0])["arch"] == "unet"


def flat_sweep(rmse: pd.DataFrame) -> pd.DataFrame:
    """A sweep in which no replacement changes Dice: only the RMSE can keep a conv W."""
    rows = [("baseline", 0, "", False, "", "baseline", c, 0.5) for c in range(4)]
    for row in rmse[rmse["status"] == "compared"].itertuples():
        rows += [
            (row.family, row.layer, row.module, row.head, row.kind, "replaced", c, 0.5)
            for c in range(4)
        ]
    sweep = pd.DataFrame(
        rows, columns=["family", "layer", "module", "head", "kind", "status", "class", "dice"]
    )
    return sweep.assign(baseline_dice=0.5, difference=0.0)


def untrained(network: dict[str, Any], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(network["arch"], **network["options"])


def conv_weights(plan: dict) -> list[dict]:
    return [e for e in plan["entries"] if e["kind"] == "W" and not e["head"]]


@pytest.mark.parametrize("network", ["unet", "pspnet"])
def test_random_pair_is_never_close_and_a_near_copy_is(network: str) -> None:
    """At the tiny workflow's sizes, the default threshold keeps every conv W of an
    unrelated untrained model, and reuses every conv W of the target plus small noise."""
    spec = TINY["networks"][network]
    threshold = TINY["analysis"]["plan"]["max_rel_rmse_w"]
    thresholds = {**THRESHOLDS, "max_rel_rmse_w": threshold}
    target, unrelated = untrained(spec, 7), untrained(spec, 8)
    rmse = tensor_rmse(target, unrelated, aligned=False)
    plan = make_plan(
        flat_sweep(rmse), rmse, thresholds, "both", calibration=calibration(threshold, network)
    )
    weights = conv_weights(plan)
    assert weights and all(e["decision"] == "keep" for e in weights)
    assert min(e["evidence"]["rel_rmse"] for e in weights) > 2 * threshold
    assert plan["non_reusable"]["W"] == [e["layer"] for e in weights]

    near = untrained(spec, 7)  # the target's own draw, every tensor moved by 10 % of its RMS
    with torch.no_grad():
        for tensor in near.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.1 * tensor.pow(2).mean().sqrt() * torch.randn_like(tensor))
    rmse = tensor_rmse(target, near, aligned=False)
    plan = make_plan(
        flat_sweep(rmse), rmse, thresholds, "both", calibration=calibration(threshold, network)
    )
    assert all(e["decision"] == "reuse" for e in conv_weights(plan))
    assert max(e["evidence"]["rel_rmse"] for e in conv_weights(plan)) < 0.15


def test_calibration_measures_an_independent_pair_and_leaves_the_random_state() -> None:
    state = torch.get_rng_state()
    record = calibrate(UNET, 0.5)
    assert torch.equal(torch.get_rng_state(), state)
    assert record == calibrate(UNET, 0.5)  # fixed seeds: the same numbers twice
    pair = record["random_pair"]
    assert pair["seeds"] == list(CALIBRATION_SEEDS) and pair["conv_w_layers"] == 18
    assert 1.0 < pair["min"] <= pair["median"] <= pair["max"]
    assert abs(pair["median"] - 2**0.5) < 0.1
    assert record["key"] == "analysis.plan.max_rel_rmse_w" and record["threshold"] == 0.5
    assert not record["passes_random_layer"] and record["random_layers_passed"] == []
    # a local encoder weights file would make the pair share tensors: it is left out
    shared = calibrate({"arch": "unet", "options": {"width": 2, "encoder_weights": "x"}}, 0.5)
    assert shared["random_pair"]["left_out"] == ["encoder_weights"]
    assert shared["random_pair"]["options"] == {"width": 2}


def test_run_plan_records_the_calibration_and_refuses_a_threshold_random_weights_pass(
    tmp_path: Path,
) -> None:
    target = save_unet(tmp_path / "t.safetensors", 1, width=2)
    source = save_unet(tmp_path / "s.safetensors", 2, width=2)
    rmse = run_rmse([target, source], tmp_path / "rmse.csv")
    sweep_csv = tmp_path / "sweep.csv"
    flat_sweep(rmse).to_csv(sweep_csv, index=False)
    thresholds = {**THRESHOLDS, "max_rel_rmse_w": 0.5}
    out = tmp_path / "plan.json"
    plan = run_plan(
        sweep_csv, tmp_path / "rmse.csv", out, thresholds, "both", "t", "s", network=UNET
    )
    written = json.loads(out.read_text())
    assert written["calibration"] == written["thresholds"]["calibration"] == plan["calibration"]
    calibrated = written["calibration"]
    assert calibrated["random_pair"]["arch"] == "unet" and calibrated["threshold"] == 0.5
    assert calibrated["passes_random_layer"] is False
    assert written["provenance"]["config"]["network"] == UNET
    # two differently seeded untrained UNets: no conv W is reusable
    assert all(e["decision"] == "keep" for e in conv_weights(written))
    assert all(e["evidence"]["rel_rmse"] > 1 for e in conv_weights(written))
    assert written["entries"][0]["evidence"]["target_rms"] is not None

    too_large = {**THRESHOLDS, "max_rel_rmse_w": 2.0}
    with pytest.raises(PrrmseError) as error:
        run_plan(
            sweep_csv,
            tmp_path / "rmse.csv",
            tmp_path / "bad.json",
            too_large,
            "both",
            "t",
            "s",
            network=UNET,
        )
    message = str(error.value)
    assert message.startswith("analysis.plan.max_rel_rmse_w: 2 would judge 18 of 18 conv W")
    assert "choose a value well below" in message and "\n" not in message
    with pytest.raises(PrrmseError, match="needs its calibration"):
        run_plan(
            sweep_csv, tmp_path / "rmse.csv", tmp_path / "bad.json", thresholds, "both", "t", "s"
        )
    with pytest.raises(PrrmseError, match="rmse.csv: made for architecture 'unet'"):
        run_plan(
            sweep_csv,
            tmp_path / "rmse.csv",
            tmp_path / "bad.json",
            thresholds,
            "both",
            "t",
            "s",
            network=TINY["networks"]["pspnet"],
        )
    old = pd.read_csv(tmp_path / "rmse.csv", comment="#").drop(columns=["rms_a", "rms_b"])
    old.to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(PrrmseError, match=r"old\.csv: no rms_a column .* rerun it"):
        run_plan(
            sweep_csv,
            tmp_path / "old.csv",
            tmp_path / "bad.json",
            thresholds,
            "both",
            "t",
            "s",
            network=UNET,
        )
    assert not (tmp_path / "bad.json").exists()


def test_run_plan_takes_the_targets_scale_when_the_target_is_model_b(tmp_path: Path) -> None:
    sweep_csv, rmse_csv = tmp_path / "sweep.csv", tmp_path / "rmse.csv"
    sweep_csv.write_text(
        csv_header({"target": "t", "source": "s"}) + sweep_table().to_csv(index=False)
    )
    rmse_csv.write_text(rmse_table(target="s", source="t").to_csv(index=False))  # t is model b
    plan = run_plan(
        sweep_csv, rmse_csv, tmp_path / "plan.json", THRESHOLDS, "rmse", "t", "s", network=UNET
    )
    w1 = next(e for e in plan["entries"] if e["kind"] == "W" and e["layer"] == 1)
    assert w1["evidence"]["target_rms"] == 0.2 and w1["decision"] == "reuse"  # 0.25 <= 0.3
