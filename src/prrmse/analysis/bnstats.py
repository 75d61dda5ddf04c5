"""BN scale and shift: how far a source model's BN statistics sit from a target's, per BN layer.

For BN layer l with m channels, target running mean mu, running var sigma^2, weight w,
bias b, source primed, eps from the target's module, all in float64:

    MRM = mean_j w_j |mu_j - mu'_j| / sqrt(sigma_j^2 + eps)    (shift of the output, in w units)
    MRV = mean_j sqrt(sigma_j^2 + eps) / sqrt(sigma'_j^2 + eps) (scale of the output)
    MRW = mean_j w'_j / w_j                                    (undefined if some w_j = 0)
    MRB = mean_j |b_j - b'_j|

A model against itself gives MRM 0, MRV 1, MRW 1, MRB 0. Where a target weight is 0, MRW
is left empty and `mrw_note` says in how many channels: a ratio to 0 is no number.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from prrmse.analysis.rmse import matched_layers, write_table_csv
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.models.checkpoint import load_model
from prrmse.models.layers import Layer, get_tensor, layer_label

BNSTATS_COLUMNS = ["layer", "module", "channels", "MRM", "MRV", "MRW", "MRB", "mrw_note"]


def _bn_tensors(model: nn.Module, layer: Layer) -> dict[str, torch.Tensor]:
    """RM, RV, RW, RB as float64; a BN without affine applies w = 1 and b = 0."""
    if "RM" in layer.absent or "RV" in layer.absent:
        raise PrrmseError(
            layer_label(layer), "has no running statistics (track_running_stats=False)"
        )
    tensors = {kind: get_tensor(model, layer, kind) for kind in layer.kinds}
    tensors = {kind: t.detach().to("cpu", torch.float64) for kind, t in tensors.items()}
    channels = tensors["RM"].shape
    tensors.setdefault("RW", torch.ones(channels, dtype=torch.float64))
    tensors.setdefault("RB", torch.zeros(channels, dtype=torch.float64))
    return tensors


def layer_scale_shift(
    target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], eps: float
) -> dict[str, object]:
    """MRM, MRV, MRW, MRB and the MRW note for one BN layer's float64 tensors."""
    target_std = torch.sqrt(target["RV"] + eps)
    source_std = torch.sqrt(source["RV"] + eps)
    zero_weights = int((target["RW"] == 0).sum())
    return {
        "channels": int(target["RM"].numel()),
        "MRM": float(torch.mean(target["RW"] * (target["RM"] - source["RM"]).abs() / target_std)),
        "MRV": float(torch.mean(target_std / source_std)),
        "MRW": float("nan") if zero_weights else float(torch.mean(source["RW"] / target["RW"])),
        "MRB": float(torch.mean((target["RB"] - source["RB"]).abs())),
        "mrw_note": f"undefined: target weight 0 in {zero_weights} channels"
        if zero_weights
        else "",
    }


def bn_scale_shift(
    target: nn.Module, source: nn.Module, source_where: str | Path = "source model"
) -> pd.DataFrame:
    """One row per BN layer in forward order: layer, module, channels, MRM, MRV, MRW, MRB, mrw_note.

    `source_where` is what a mismatch error names (the source's file, when known).
    """
    layers = matched_layers(target, {source_where: source})
    rows = []
    for layer in layers:
        if layer.family != "bn" or layer.head:
            continue
        eps = float(target.get_submodule(layer.module_name).eps)
        values = layer_scale_shift(_bn_tensors(target, layer), _bn_tensors(source, layer), eps)
        rows.append({"layer": layer.number, "module": layer.module_name, **values})
    return pd.DataFrame(rows, columns=BNSTATS_COLUMNS)


def run_bnstats(target_ckpt: Path, source_ckpt: Path, out_csv: Path) -> pd.DataFrame:
    """Read both checkpoints, write the BN scale-and-shift table with a provenance header."""
    target, target_record = load_model(target_ckpt)
    source, source_record = load_model(source_ckpt)
    table = bn_scale_shift(target, source, Path(source_ckpt))
    stamp = provenance.stamp(
        arch=target_record["arch"],
        target=target_record.get("name") or Path(target_ckpt).parent.name,
        source=source_record.get("name") or Path(source_ckpt).parent.name,
        inputs={str(path): sha256_file(path) for path in (target_ckpt, source_ckpt)},
    )
    write_table_csv(Path(out_csv), table, stamp)
    return table
