"""Reuse fine-tuning: start a target model from a source model's tensors, as a plan says.

`plan_setup(source, plan, mode)` gives train.py's `setup`: on the freshly initialised
target it copies every (layer, kind) the plan marks "reuse" from the source checkpoint
(BN running mean/var included) and leaves the rest at initialisation. Modes:

- "freeze":   loaded parameters get requires_grad=False: no gradient and, since train.py
              builds the optimizer from trainable parameters only, no weight decay or
              momentum; they stay bit-identical. What happens to a loaded BN running
              mean/var is `frozen_bn` (config `reuse.frozen_bn`, recorded in the run):
              - "update" (default, plain PyTorch): it keeps updating in train mode, as
                `requires_grad=False` leaves it, so it follows the retrained layers
                feeding it;
              - "hold": it is restored after every forward pass, even where the same
                layer's weight and bias train (see `_hold_buffers`): bit-identical;
              - "eval": every BN module with a loaded running statistic runs in eval
                mode during training: it normalises with its running statistics (the
                loaded ones) and never updates them: bit-identical.
- "finetune": the same tensors are loaded and everything trains.
- "selffer":  Yosinski et al.'s BnB control: "freeze" with the target task's own fully
              trained model as the source (its tensors per the plan frozen, the rest
              re-initialised and trained); recorded as mode "selffer". Which checkpoint
              is the source is the caller's choice (`prrmse.core.naming` names the run).

The source may be any checkpoint of the target's architecture with the same tensor
shapes; its name is not checked against the plan's, so a plan can be applied to another
seed's source or to the target's own trained model unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prrmse.analysis.plan import load_plan
from prrmse.analysis.plan_models import load_plan_for
from prrmse.analysis.rmse import probe_shape
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.models.checkpoint import check_state_dict, load_model
from prrmse.models.layers import KIND_ATTR, find_layer, index_layers, layer_label
from prrmse.models.registry import arch_record
from prrmse.training.train import ModelSetup

MODES = ("freeze", "finetune", "selffer")
FROZEN_MODES = ("freeze", "selffer")
FROZEN_BN = ("update", "hold", "eval")
RUNNING_STATS = ("running_mean", "running_var")


def plan_setup(
    source_ckpt: Path, plan_path: Path, mode: str, frozen_bn: str = "update"
) -> ModelSetup:
    """The `setup` for train_model: load the plan's reused tensors, freeze them if asked.

    The mode, `frozen_bn`, the plan file and the source checkpoint are checked here,
    before any training data is read; that they fit the target model is checked when
    the model exists.
    """
    if mode not in MODES:
        raise PrrmseError("reuse mode", f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if frozen_bn not in FROZEN_BN:
        raise PrrmseError(
            "config reuse.frozen_bn", f"unknown {frozen_bn!r}; valid: {', '.join(FROZEN_BN)}"
        )
    source_ckpt, plan_path = Path(source_ckpt), Path(plan_path)
    load_plan(plan_path)
    source, source_record = load_model(source_ckpt)
    source_tensors = source.state_dict()
    source_name = str(source_record.get("name") or source_ckpt.parent.name)

    def setup(model: nn.Module) -> dict[str, Any]:
        plan = load_plan_for(plan_path, model)
        _check_source_fits(source_ckpt, source_record, source_tensors, model)
        reused = reused_entries(plan)
        loaded = load_reused(model, source_tensors, reused)
        frozen = freeze(model, loaded, frozen_bn) if mode in FROZEN_MODES else []
        if frozen and not any(p.requires_grad for p in model.parameters()):
            raise PrrmseError(plan_path, "freezes every parameter: nothing is left to train")
        return {
            "mode": mode,
            "frozen_bn": frozen_bn if mode in FROZEN_MODES else None,
            "eval_bn": eval_bn_modules(model, frozen) if frozen_bn == "eval" else [],
            "source": source_name,
            "source_sha256": sha256_file(source_ckpt),
            "plan": str(plan_path),
            "plan_sha256": sha256_file(plan_path),
            "loaded": len(loaded),
            "frozen": len(frozen),
            "frozen_scalars": sum(tensor.numel() for _, _, tensor in frozen),
        }

    return setup


def _check_source_fits(
    path: Path, record: dict[str, Any], tensors: dict[str, torch.Tensor], model: nn.Module
) -> None:
    """Same architecture and the same tensors with the same shapes, else one line naming both."""
    arch = arch_record(model)["name"]
    if record["arch"] != arch:
        raise PrrmseError(
            path, f"source of another architecture: source {record['arch']!r}, target {arch!r}"
        )
    try:
        check_state_dict(path, model, tensors, arch)
    except PrrmseError as err:
        raise PrrmseError(path, f"source does not fit the target model: {err.problem}") from err


def reused_entries(plan: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(family, layer, kind) of every "reuse" decision, once each, in plan order."""
    keys = [
        (entry["family"], int(entry["layer"]), entry["kind"])
        for entry in plan["entries"]
        if entry["decision"] == "reuse"
    ]
    return list(dict.fromkeys(keys))


def load_reused(
    model: nn.Module,
    source_tensors: dict[str, torch.Tensor],
    reused: Iterable[tuple[str, int, str]],
) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """Copy each reused (layer, kind) from the source into the model, in place.

    Returns (module, attribute, live tensor) of what was loaded, for `freeze`.
    """
    layers = index_layers(model, probe_shape(model))
    loaded = []
    with torch.no_grad():
        for family, number, kind in reused:
            layer = find_layer(layers, family, number)
            module = model.get_submodule(layer.module_name)
            attribute = KIND_ATTR[kind]
            tensor = getattr(module, attribute, None)
            if tensor is None:  # load_plan refuses this; kept so a bad plan can never load None
                raise PrrmseError(layer_label(layer), f"{kind} is absent; the plan cannot reuse it")
            tensor.copy_(source_tensors[f"{layer.module_name}.{attribute}"])
            loaded.append((module, attribute, tensor))
    return loaded


def freeze(
    model: nn.Module,
    loaded: list[tuple[nn.Module, str, torch.Tensor]],
    frozen_bn: str = "update",
) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """Freeze every loaded tensor as `frozen_bn` says (module docstring); returns what was frozen.

    Parameters always get requires_grad=False. Loaded BN running statistics: "update"
    leaves them to train mode's running average, "hold" restores them after every
    forward pass, "eval" runs their BN modules in eval mode whenever the model trains.
    """
    if frozen_bn not in FROZEN_BN:
        raise PrrmseError(
            "reuse frozen_bn", f"unknown {frozen_bn!r}; valid: {', '.join(FROZEN_BN)}"
        )
    buffers: dict[int, tuple[nn.Module, list[str]]] = {}
    for module, attribute, tensor in loaded:
        if isinstance(tensor, nn.Parameter):
            tensor.requires_grad_(False)
        else:
            buffers.setdefault(id(module), (module, []))[1].append(attribute)
    for module, names in buffers.values():
        if frozen_bn == "hold":
            _hold_buffers(module, tuple(names))
        elif frozen_bn == "eval" and any(name in RUNNING_STATS for name in names):
            _run_in_eval_mode(module)
    return loaded


def eval_bn_modules(
    model: nn.Module, frozen: list[tuple[nn.Module, str, torch.Tensor]]
) -> list[str]:
    """Names of the modules `frozen_bn: eval` runs in eval mode, in model order."""
    chosen = {id(module) for module, attribute, _ in frozen if attribute in RUNNING_STATS}
    return [name for name, module in model.named_modules() if id(module) in chosen]


def _run_in_eval_mode(module: nn.Module) -> None:
    """Make every forward pass of `module` run as in eval mode, whatever the model's mode.

    A pre-hook clears the module's `training` flag for the pass and a forward hook
    restores it, so `model.train()` / `model.eval()` and anything reading the flag see
    the model's own mode; BatchNorm then normalises with its running statistics and
    leaves them untouched (and its weight and bias still get gradients, if they train).
    """
    mode: list[bool] = []

    def enter(layer: nn.Module, _inputs: object) -> None:
        mode.append(layer.training)
        layer.training = False

    def leave(layer: nn.Module, _inputs: object, _output: object) -> None:
        layer.training = mode.pop()

    module.register_forward_pre_hook(enter)
    module.register_forward_hook(leave)


def _hold_buffers(module: nn.Module, names: tuple[str, ...]) -> None:
    """Keep a train-mode forward pass from writing into the named buffers of `module`.

    BatchNorm updates running_mean and running_var together, in place, whenever it runs
    in train mode. Setting momentum to 0 would also freeze the layer's other buffer and
    is not exact for NaN (NaN * 0 is NaN); copying saved values back in place after the
    pass breaks backward (autograd saved the buffers and sees them modified). So a
    pre-hook hands the layer scratch copies to update and a forward hook puts the
    untouched originals back. The buffers are looked up by name on every call because
    `model.to(...)` replaces buffer tensors; the hooks live on the module, so they
    survive `.to()` and train()/eval() switching.
    """
    held: dict[str, torch.Tensor] = {}

    def lend_copies(layer: nn.Module, _inputs: object) -> None:
        if layer.training:
            for name in names:
                held[name] = getattr(layer, name)
                setattr(layer, name, held[name].detach().clone())

    def put_back(layer: nn.Module, _inputs: object, _output: object) -> None:
        for name, original in held.items():
            setattr(layer, name, original)
        held.clear()

    module.register_forward_pre_hook(lend_copies)
    module.register_forward_hook(put_back)
