"""BN scale and shift: identities, hand-computed values, zero target weight, the CSV product."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from prrmse.analysis.bnstats import BNSTATS_COLUMNS, bn_scale_shift, run_bnstats
from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import read_csv_provenance
from tests.analysis.test_rmse import save_unet, tiny


def set_bn(model: nn.Module, rm: list, rv: list, rw: list, rb: list, eps: float = 1.0) -> nn.Module:
    bn = model[1]
    bn.eps = eps
    with torch.no_grad():
        for tensor, values in (
            (bn.running_mean, rm),
            (bn.running_var, rv),
            (bn.weight, rw),
            (bn.bias, rb),
        ):
            tensor.copy_(torch.tensor(values))
    return model


def test_model_against_itself_gives_identities() -> None:
    model = set_bn(tiny(), [0.3, -1.2], [0.5, 2.0], [0.7, 1.3], [0.1, -0.4], eps=1e-5)
    row = bn_scale_shift(model, model).iloc[0]
    assert list(bn_scale_shift(model, model).columns) == BNSTATS_COLUMNS
    assert (row["layer"], row["module"], row["channels"]) == (1, "1", 2)
    assert (row["MRM"], row["MRV"], row["MRW"], row["MRB"], row["mrw_note"]) == (0, 1, 1, 0, "")


def test_hand_set_tensors_give_hand_computed_values() -> None:
    # target std = sqrt(3+1), sqrt(0+1) = 2, 1; source std = 1, 2
    target = set_bn(tiny(), rm=[1, 2], rv=[3, 0], rw=[2, 1], rb=[0.5, -1])
    source = set_bn(tiny(), rm=[0, 4], rv=[0, 3], rw=[1, 3], rb=[1.5, 1])
    row = bn_scale_shift(target, source).iloc[0]
    assert row["MRM"] == (2 * 1 / 2 + 1 * 2 / 1) / 2  # 1.5
    assert row["MRV"] == (2 / 1 + 1 / 2) / 2  # 1.25
    assert row["MRW"] == (1 / 2 + 3 / 1) / 2  # 1.75
    assert row["MRB"] == (1 + 2) / 2  # 1.5


def test_zero_target_weight_leaves_mrw_undefined_with_a_note() -> None:
    target = set_bn(tiny(), rm=[0, 0], rv=[1, 1], rw=[0, 1], rb=[0, 0])
    source = set_bn(tiny(), rm=[0, 0], rv=[1, 1], rw=[1, 1], rb=[0, 0])
    row = bn_scale_shift(target, source).iloc[0]
    assert math.isnan(row["MRW"])
    assert row["mrw_note"] == "undefined: target weight 0 in 1 channels"
    assert row["MRV"] == 1 and row["MRB"] == 0


def test_models_that_do_not_correspond_are_refused() -> None:
    with pytest.raises(PrrmseError, match="source model: models do not correspond"):
        bn_scale_shift(tiny(), tiny(width=3))


def test_run_bnstats_writes_one_row_per_bn_layer(tmp_path: Path) -> None:
    a, b = save_unet(tmp_path / "t.safetensors", 1), save_unet(tmp_path / "s.safetensors", 2)
    out = tmp_path / "bnstats.csv"
    run_bnstats(a, b, out)
    assert read_csv_provenance(out)["target"] == "t" and read_csv_provenance(out)["source"] == "s"
    table = pd.read_csv(out, comment="#", keep_default_na=False)
    assert list(table.columns) == BNSTATS_COLUMNS and list(table["layer"]) == list(range(1, 19))
    # fresh BNs: equal statistics and unit weights, so the identities hold
    assert (
        (table["MRV"] == 1).all() and (table["MRW"] == 1).all() and (table["mrw_note"] == "").all()
    )
    wide = save_unet(tmp_path / "wide.safetensors", 1, width=8)
    with pytest.raises(PrrmseError, match="wide.safetensors"):
        run_bnstats(a, wide, tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
