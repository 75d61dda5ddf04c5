"""BN folding for the sweep's fast settings: eval BN merged into the conv that feeds it.

An approximation (float rounding moves, predictions change only at near-tie pixels), so
it is off by default. Only pairs where the conv's output provably feeds exactly one
eval-mode BN are folded, and the sweep keeps the replaced layer's pair unfolded. The
folded forwards are forward overrides (`prrmse.analysis.sweep.prefix.forwards_replaced`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prrmse.analysis.sweep.prefix import Call


@dataclass(frozen=True)
class FoldedPair:
    """A conv whose output feeds only `bn`, and the conv forward with `bn` folded in."""

    conv: nn.Conv2d
    bn: nn.BatchNorm2d
    folded_forward: Callable[..., Any]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _pair_candidates(model: nn.Module) -> Iterator[tuple[nn.Module | None, nn.Module | None]]:
    """(conv, bn) wherever code we know passes a conv's output to a BN and nowhere else.

    That is provable from a forward's source only: adjacent children of a plain
    nn.Sequential, and the conv/bn attribute pairs of ResNet blocks and smp's ResNet
    stem, recognised by their forward function itself (a subclass overriding it is not).
    """
    from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
    from torchvision.models.resnet import BasicBlock, Bottleneck

    two = (("conv1", "bn1"), ("conv2", "bn2"))
    known = {
        BasicBlock.forward: two,
        Bottleneck.forward: (*two, ("conv3", "bn3")),
        ResNetEncoder.forward: (("conv1", "bn1"),),
    }
    for module in model.modules():
        forward = type(module).forward
        if forward is nn.Sequential.forward:
            children = list(module)
            yield from zip(children, children[1:], strict=False)
        for conv_name, bn_name in known.get(forward, ()):
            yield getattr(module, conv_name, None), getattr(module, bn_name, None)


def _folded_forward(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Callable[..., Any]:
    """conv with weight * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps)."""
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        # float64 arithmetic keeps folding's own rounding far below float32's.
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        if conv.bias is not None:
            shift = shift + conv.bias.double() * scale
        weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
        layout = torch.contiguous_format if conv.weight.is_contiguous() else torch.channels_last
        weight = weight.to(conv.weight.dtype).contiguous(memory_format=layout)
        bias = shift.to(conv.weight.dtype)
    return functools.partial(conv._conv_forward, weight=weight, bias=bias)


def fold_pairs(model: nn.Module, calls: list[Call]) -> list[FoldedPair]:
    """Conv/BN pairs that can be folded, with the folded forward computed from current tensors.

    Beyond the source pattern, the recorded calls must agree: each module runs once, the
    BN's call starts right after the conv's ends, in the same enclosing call, and the BN
    is in eval mode with running statistics (otherwise it normalises by batch statistics).
    """
    counts = Counter(id(call.module) for call in calls)
    call_of = {id(call.module): call for call in calls}
    pairs: list[FoldedPair] = []
    for conv, bn in _pair_candidates(model):
        if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
            continue
        if bn.training or bn.running_mean is None or bn.running_var is None:
            continue
        if conv.out_channels != bn.num_features or counts[id(conv)] != 1 or counts[id(bn)] != 1:
            continue
        conv_call, bn_call = call_of[id(conv)], call_of[id(bn)]
        if bn_call.enter == conv_call.exit + 1 and bn_call.parent == conv_call.parent:
            pairs.append(FoldedPair(conv, bn, _folded_forward(conv, bn)))
    return pairs


def fold_overrides(
    pairs: Iterable[FoldedPair], keep: Collection[nn.Module]
) -> dict[nn.Module, Callable[..., Any]]:
    """Folded conv and identity BN for every pair with neither module in `keep`.

    `keep` holds the replaced module (it and its partner run as they are) and every
    replayed module (a replayed conv gives the unfolded output its real BN must see).
    """
    overrides: dict[nn.Module, Callable[..., Any]] = {}
    for pair in pairs:
        if pair.conv not in keep and pair.bn not in keep:
            overrides[pair.conv] = pair.folded_forward
            overrides[pair.bn] = _identity
    return overrides
