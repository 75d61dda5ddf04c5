"""RMSE of corresponding tensors of two models, per layer and kind, for one pair or a group.

RMSE(a, b) = sqrt(mean((a - b)^2)) in float64, for every (layer, kind) of the layer index,
the prediction head included (flagged `head`; the paper's figures leave it out). A kind
that is absent on the layer (a conv without bias) is reported with status "absent" and an
empty rmse: an absent tensor is not a zero difference. Models must share architecture,
layer index and tensor shapes; the first difference is reported, naming the model.

Beside it, `rmse_aligned`: the same RMSE after model b's hidden channels are reordered to
match model a's by weight matching (`prrmse.analysis.align`), so a difference that is only a
permutation of channels counts as none. Architectures without a permutation spec (smp)
leave it empty; the stamp's `alignment` says whether it was computed.

After those, `rms_a` and `rms_b`: each tensor's own root mean square sqrt(mean(x^2)) in
float64 (model a's, model b's), the scale a relative RMSE divides by: the reuse plan judges
conv W by rmse / rms of the target's tensor (`prrmse.analysis.plan_rules`). An absent kind
leaves both empty. `rmse_to_ideal`: the RMSE of each reuse run against the ideal model
(Figs. 13-14).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.analysis.align import align_models
from prrmse.analysis.permutation_spec import arch_name, supports_alignment
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.tabular import IDEAL_COLUMNS, RMS_COLUMNS
from prrmse.core.tabular import RMSE_COLUMNS as RMSE_COLUMNS
from prrmse.core.tabular import write_table_csv as write_table_csv
from prrmse.models.checkpoint import load_model
from prrmse.models.layers import KIND_ATTR, KINDS_OF_FAMILY, Layer, get_tensor, index_layers
from prrmse.models.registry import ARCH_ATTR, PROBE_SIZE, model_signature, signature_mismatch

# What readers require (plan, figures); tables also carry ALIGNED_COLUMN and the two
# tensors' RMS after these, so readers of the required columns keep working.
ALIGNED_COLUMN = "rmse_aligned"
TABLE_COLUMNS = [*RMSE_COLUMNS, ALIGNED_COLUMN, *RMS_COLUMNS]
ALIGN_SEED = 0  # the order weight matching visits permutations in; fixed for same answers
NAN = float("nan")


def probe_shape(model: nn.Module) -> tuple[int, int, int, int]:
    """The dummy input the layer index runs: the model's own input channel count, 64 x 64."""
    record = getattr(model, ARCH_ATTR, None) or {"options": {}}
    return (1, int(record["options"].get("in_channels", 1)), PROBE_SIZE, PROBE_SIZE)


def matched_layers(reference: nn.Module, others: Mapping[str | Path, nn.Module]) -> list[Layer]:
    """The reference's layer index, once every other model (keyed by where it came from, for
    the error) is shown to have the same architecture, layers and tensor shapes."""
    expected = model_signature(reference, probe_shape(reference))
    for where, other in others.items():
        problem = signature_mismatch(expected, model_signature(other, probe_shape(other)))
        if problem is not None:
            raise PrrmseError(where, f"models do not correspond: {problem}")
    return index_layers(reference, probe_shape(reference))


def _float64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy().ravel()


def _root_mean_square(values: np.ndarray) -> float:
    # numpy's pairwise sum, not torch's: torch splits a large reduction across its threads,
    # so the last bits (and the bytes of every table) would depend on the host's cores
    return float(np.sqrt(np.mean(values * values)))


def _rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return _root_mean_square(_float64(a) - _float64(b))


def rms(tensor: torch.Tensor) -> float:
    """sqrt(mean(x^2)) in float64: the scale of one tensor."""
    return _root_mean_square(_float64(tensor))


def aligned_state(a_model: nn.Module, b_model: nn.Module) -> dict[str, torch.Tensor] | None:
    """b's state_dict with its channels aligned to a's; None if the architecture has no spec."""
    if not supports_alignment(a_model):
        return None
    return align_models(a_model, b_model, seed=ALIGN_SEED)[0]


def alignment_record(model: nn.Module, aligned: bool = True) -> dict:
    """What the stamp says about rmse_aligned: how it was computed, or why it is empty."""
    if not aligned:
        return {"computed": False, "reason": "not asked for"}
    if not supports_alignment(model):
        return {"computed": False, "reason": f"no permutation spec for {arch_name(model)}"}
    return {
        "computed": True,
        "method": "weight matching (Git Re-Basin), model_b aligned to model_a",
        "seed": ALIGN_SEED,
    }


def _rows(
    a_model: nn.Module,
    b_model: nn.Module,
    layers: Sequence[Layer],
    b_aligned: Mapping[str, torch.Tensor] | None = None,
) -> list[dict]:
    rows = []
    for layer in layers:
        for kind in KINDS_OF_FAMILY[layer.family]:
            row = {
                "family": layer.family,
                "layer": layer.number,
                "module": layer.module_name,
                "head": layer.head,
                "kind": kind,
            }
            if kind in layer.absent:
                empty = dict.fromkeys(["rmse", ALIGNED_COLUMN, *RMS_COLUMNS], NAN)
                rows.append({**row, "status": "absent", "numel": pd.NA, **empty})
                continue
            a, b = get_tensor(a_model, layer, kind), get_tensor(b_model, layer, kind)
            aligned = NAN
            if b_aligned is not None:
                aligned = _rmse(a, b_aligned[f"{layer.module_name}.{KIND_ATTR[kind]}"])
            rows.append(
                {
                    **row,
                    "status": "compared",
                    "numel": a.numel(),
                    "rmse": _rmse(a, b),
                    ALIGNED_COLUMN: aligned,
                    RMS_COLUMNS[0]: rms(a),
                    RMS_COLUMNS[1]: rms(b),
                }
            )
    return rows


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    # Nullable integers, so an absent kind's numel stays empty instead of turning into 0.0.
    frame["numel"] = frame["numel"].astype("Int64")
    return frame


def tensor_rmse(a_model: nn.Module, b_model: nn.Module, aligned: bool = True) -> pd.DataFrame:
    """One row per (layer, kind) in index order: family, layer, module, head, kind, status,
    numel, rmse, rmse_aligned (b aligned to a; empty if not `aligned` or no spec), rms_a,
    rms_b (each tensor's RMS)."""
    layers = matched_layers(a_model, {"second model": b_model})
    b_aligned = aligned_state(a_model, b_model) if aligned else None
    return _frame(_rows(a_model, b_model, layers, b_aligned), TABLE_COLUMNS)


def pairwise_rmse(
    models: Mapping[str, nn.Module],
    sources: Mapping[str, str | Path] | None = None,
    aligned: bool = True,
) -> pd.DataFrame:
    """tensor_rmse for every unordered pair, in the given order of names, with model_a/model_b.

    `sources` (name -> file) lets a mismatch name the file rather than the model.
    In each pair model_b is aligned to model_a for rmse_aligned.
    """
    names = list(models)
    if len(names) < 2:
        raise PrrmseError("rmse", f"needs at least two models, got {len(names)}")
    where = sources or {}
    layers = matched_layers(
        models[names[0]], {where.get(name, name): models[name] for name in names[1:]}
    )
    rows = []
    for name_a, name_b in itertools.combinations(names, 2):
        pair = {"model_a": name_a, "model_b": name_b}
        a_model, b_model = models[name_a], models[name_b]
        b_aligned = aligned_state(a_model, b_model) if aligned else None
        rows += [{**pair, **row} for row in _rows(a_model, b_model, layers, b_aligned)]
    return _frame(rows, ["model_a", "model_b", *TABLE_COLUMNS])


def _model_names(checkpoints: Sequence[Path], records: Sequence[dict]) -> list[str]:
    # A training run stores its model as <name>/model.safetensors: the record's name says it.
    return [
        str(record.get("name") or path.parent.name)
        for path, record in zip(checkpoints, records, strict=True)
    ]


def run_rmse(
    checkpoints: Sequence[Path],
    out_csv: Path,
    names: Sequence[str] | None = None,
    aligned: bool = True,
) -> pd.DataFrame:
    """Read checkpoints, write every pair's RMSE table as a CSV with a provenance header.

    Two checkpoints give one pair; more give every pair (paper Fig. 11: seg and auto on T1
    and ACDC; Fig. 12: T1, RVSC, ACDC seg plus T1 auto).
    """
    checkpoints = [Path(path) for path in checkpoints]
    if len(checkpoints) < 2:
        raise PrrmseError("rmse", f"needs at least two checkpoints, got {len(checkpoints)}")
    if names is not None and len(names) != len(checkpoints):
        raise PrrmseError("rmse", f"{len(names)} names for {len(checkpoints)} checkpoints")
    loaded = [load_model(path) for path in checkpoints]
    models = [model for model, _ in loaded]
    records = [record for _, record in loaded]
    names = list(names) if names is not None else _model_names(checkpoints, records)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PrrmseError("rmse", f"model names must differ; repeated: {', '.join(duplicates)}")
    sources = dict(zip(names, checkpoints, strict=True))
    table = pairwise_rmse(dict(zip(names, models, strict=True)), sources, aligned)
    stamp = provenance.stamp(
        arch=records[0]["arch"],
        options=records[0].get("options", {}),
        alignment=alignment_record(models[0], aligned),
        models={name: str(path) for name, path in sources.items()},
        # how each model started (prrmse.models.start); null for checkpoints that record none
        starts={name: record.get("start") for name, record in zip(names, records, strict=True)},
        inputs={str(path): sha256_file(path) for path in checkpoints},
    )
    write_table_csv(out_csv, table, stamp)
    return table


def rmse_to_ideal(
    ideal_ckpt: Path, run_ckpts: Mapping[str, Path], out_csv: Path | None = None
) -> pd.DataFrame:
    """RMSE per layer and kind of every run against the ideal model; the CSV (with a
    provenance line naming every checkpoint and its sha256) if `out_csv` is given."""
    if not run_ckpts:
        raise PrrmseError("rmse to ideal", "no runs given")
    ideal_ckpt = Path(ideal_ckpt)
    ideal, record = load_model(ideal_ckpt)
    runs = {label: load_model(Path(path))[0] for label, path in run_ckpts.items()}
    # Names the offending file, where tensor_rmse alone could only say "second model".
    matched_layers(ideal, {Path(run_ckpts[label]): model for label, model in runs.items()})
    table = pd.concat(
        [tensor_rmse(ideal, model).assign(run=label) for label, model in runs.items()],
        ignore_index=True,
    )[IDEAL_COLUMNS]
    if out_csv is not None:
        paths = [ideal_ckpt, *(Path(path) for path in run_ckpts.values())]
        stamp = provenance.stamp(
            arch=record["arch"],
            options=record.get("options", {}),
            ideal={str(record.get("name") or ideal_ckpt.parent.name): str(ideal_ckpt)},
            runs={label: str(path) for label, path in run_ckpts.items()},
            inputs={str(path): sha256_file(path) for path in paths},
        )
        write_table_csv(Path(out_csv), table, stamp)
    return table
