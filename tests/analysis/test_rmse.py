"""RMSE per layer and kind: known values, absent kinds, pairs, mismatches, the CSV product."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from prrmse.analysis.rmse import pairwise_rmse, run_rmse, tensor_rmse
from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import read_csv_provenance
from prrmse.models.checkpoint import save_tensors
from prrmse.models.registry import build_model


def tiny(seed: int = 0, width: int = 2, bias: bool = False) -> nn.Module:
    """conv 1 (bias per `bias`) -> BN 1 -> ReLU -> conv 2, the 4-channel head."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=bias),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 4, 1),
    )


def filled(value: float) -> nn.Module:
    model = tiny()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(value)
    return model


def save_unet(path: Path, seed: int, width: int = 4) -> Path:
    torch.manual_seed(seed)
    model = build_model("unet", width=width)
    record = {
        "kind": "model",
        "name": path.stem,
        "arch": "unet",
        "options": {"width": width},
        "task": "seg",
        "dataset": "acdc",
        "seed": seed,
    }
    save_tensors(path, model.state_dict(), record)
    return path


def test_model_against_itself_is_zero_and_absent_bias_is_absent() -> None:
    model = tiny()
    table = tensor_rmse(model, model)
    assert list(table.columns) == [
        "family",
        "layer",
        "module",
        "head",
        "kind",
        "status",
        "numel",
        "rmse",
        "rmse_aligned",
        "rms_a",
        "rms_b",
    ]
    compared = table[table["status"] == "compared"]
    assert (compared["rmse"] == 0).all() and len(compared) == 4 + 1 + 2
    absent = table[table["status"] == "absent"]
    assert absent[["family", "layer", "kind"]].values.tolist() == [["conv", 1, "B"]]
    assert absent["rmse"].isna().all() and absent["numel"].isna().all()
    assert absent[["rms_a", "rms_b"]].isna().all().all()  # no tensor, no scale
    assert (compared["rms_a"] == compared["rms_b"]).all()
    # a bare Sequential has no permutation spec: aligned RMSE stays empty, status is kept
    assert table["rmse_aligned"].isna().all()


def test_known_tensors_give_known_rmse_and_head_is_flagged() -> None:
    table = tensor_rmse(filled(0.0), filled(2.0)).set_index(["family", "layer", "kind"])
    assert table.loc[("conv", 1, "W"), "rmse"] == 2.0 and table.loc[("conv", 1, "W"), "numel"] == 18
    assert table["rmse"].dropna().eq(2.0).all()
    assert table.loc[("conv", 2, "W"), "head"] and not table.loc[("conv", 1, "W"), "head"]
    assert table.loc[("bn", 1, "RV"), "module"] == "1"


def test_rms_columns_give_each_tensors_own_scale_in_float64() -> None:
    table = tensor_rmse(filled(-0.5), filled(3.0)).set_index(["family", "layer", "kind"])
    compared = table[table["status"] == "compared"]
    assert compared["rms_a"].eq(0.5).all() and compared["rms_b"].eq(3.0).all()
    a = tiny(1)
    with torch.no_grad():
        a[0].weight.zero_()
        a[0].weight[0, 0, 0, 0] = 3.0  # one of 18 scalars: rms = sqrt(9 / 18)
    row = tensor_rmse(a, tiny(2)).set_index(["family", "layer", "kind"]).loc[("conv", 1, "W")]
    assert row["rms_a"] == pytest.approx((9.0 / 18) ** 0.5, rel=1e-12)
    # two independent draws of a zero-mean initialiser: rmse / rms of either ~ sqrt(2)
    unets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        unets.append(build_model("unet", width=8))
    weights = tensor_rmse(*unets, aligned=False).query("kind == 'W' and not head")
    assert ((weights["rmse"] / weights["rms_a"]) - 2**0.5).abs().max() < 0.15


def test_rmse_of_one_tensor_is_computed_in_float64() -> None:
    a, b = tiny(), tiny()
    with torch.no_grad():
        b[0].weight.copy_(a[0].weight)
        b[0].weight[0, 0, 0, 0] += 3.0
    table = tensor_rmse(a, b).set_index(["family", "layer", "kind"])
    assert table.loc[("conv", 1, "W"), "rmse"] == pytest.approx((9.0 / 18) ** 0.5, rel=1e-6)


def test_pairwise_over_three_models_gives_three_pairs_in_order() -> None:
    table = pairwise_rmse({"a": tiny(0), "b": tiny(1), "c": tiny(2)})
    pairs = list(dict.fromkeys(zip(table["model_a"], table["model_b"], strict=True)))
    assert pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    assert list(table.columns[:2]) == ["model_a", "model_b"]


def test_models_of_another_shape_or_bias_are_refused() -> None:
    with pytest.raises(PrrmseError, match="c: models do not correspond"):
        pairwise_rmse({"a": tiny(), "b": tiny(), "c": tiny(width=3)})
    with pytest.raises(PrrmseError, match="absent"):
        tensor_rmse(tiny(), tiny(bias=True))


def test_run_rmse_writes_stamped_csv_and_names_a_mismatched_file(tmp_path: Path) -> None:
    a, b = save_unet(tmp_path / "a.safetensors", 1), save_unet(tmp_path / "b.safetensors", 2)
    table = run_rmse([a, b], tmp_path / "out" / "rmse.csv")
    stamp = read_csv_provenance(tmp_path / "out" / "rmse.csv")
    assert stamp["arch"] == "unet" and set(stamp["inputs"]) == {str(a), str(b)}
    read = pd.read_csv(tmp_path / "out" / "rmse.csv", comment="#")
    assert len(read) == len(table) == 18 * 4 + 19 * 2 and set(read["model_a"]) == {"a"}
    assert list(read.columns[-3:]) == ["rmse_aligned", "rms_a", "rms_b"]
    # fresh BNs: running var and weight are ones, running mean and bias zeros
    assert (read.loc[read["kind"].isin(["RV", "RW"]), ["rms_a", "rms_b"]] == 1).all().all()
    assert (read.loc[read["kind"] == "RM", "rms_a"] == 0).all()
    # fresh BNs share their initial 0/1 statistics; seeded convs differ
    assert (read.loc[read["kind"] == "W", "rmse"] > 0).all()
    assert (read.loc[read["kind"] == "RM", "rmse"] == 0).all()
    # b is aligned to a: learned tensors never further apart in total, head classes unmoved
    assert stamp["alignment"]["computed"] and stamp["alignment"]["seed"] == 0
    compared = read[(read["status"] == "compared") & read["kind"].isin(["W", "B", "RW", "RB"])]
    squares = compared["numel"] * compared["rmse"] ** 2
    assert (compared["numel"] * compared["rmse_aligned"] ** 2).sum() < squares.sum()
    head_b = compared[compared["head"] & (compared["kind"] == "B")]
    assert (head_b["rmse_aligned"] == head_b["rmse"]).all()

    wide = save_unet(tmp_path / "wide.safetensors", 1, width=8)
    with pytest.raises(PrrmseError, match="wide.safetensors: models do not correspond"):
        run_rmse([a, wide], tmp_path / "bad.csv")
    with pytest.raises(PrrmseError, match="repeated"):
        run_rmse([a, b], tmp_path / "bad.csv", names=["x", "x"])
    assert not (tmp_path / "bad.csv").exists()


def test_alignment_can_be_skipped_and_is_recorded_as_skipped(tmp_path: Path) -> None:
    a, b = save_unet(tmp_path / "a.safetensors", 1), save_unet(tmp_path / "b.safetensors", 2)
    table = run_rmse([a, b], tmp_path / "rmse.csv", aligned=False)
    assert table["rmse_aligned"].isna().all() and table["rmse"].notna().any()
    stamp = read_csv_provenance(tmp_path / "rmse.csv")
    assert stamp["alignment"] == {"computed": False, "reason": "not asked for"}
    assert tensor_rmse(tiny(0), tiny(1), aligned=False)["rmse_aligned"].isna().all()


def test_rmse_does_not_depend_on_torchs_thread_count():
    """torch splits a reduction of more than 32768 values across its threads, so the last
    bits of an RMSE (and a table's bytes) would follow the host's cores."""
    from prrmse.analysis.rmse import _rmse, rms

    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(64, 64, 3, 3, generator=generator) for _ in range(2))
    before = torch.get_num_threads()
    try:
        values = set()
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            values.add((_rmse(a, b), rms(a)))
    finally:
        torch.set_num_threads(before)
    assert len(values) == 1, values
