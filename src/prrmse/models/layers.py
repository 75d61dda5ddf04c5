"""The layer index: every BN and conv of a model, numbered in forward execution order.

Registration order (`named_modules`) is not the order data flows through a network, and
the paper numbers layers as data meets them, so the index runs one dummy forward pass
with hooks. BatchNorm2d and Conv2d are numbered separately from 1; a module called twice
counts at its first call. The prediction head (the last conv executed whose out_channels
equals the output's channel count, or one named explicitly) is numbered last among the
convs and flagged `head`; the paper's figures leave it out.

Kinds: BN running mean RM, running var RV, weight RW, bias RB; conv weight W, bias B.
A kind whose tensor is None (a conv without bias, a BN without affine or running
stats) is *absent*: listed in `Layer.absent`, never reported as a value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from prrmse.core.errors import PrrmseError

# re-exported (the `as` form): model-side modules take the kinds from here
from prrmse.core.kinds import BN_KINDS as BN_KINDS
from prrmse.core.kinds import CONV_KINDS as CONV_KINDS
from prrmse.core.kinds import KINDS_OF_FAMILY, Family

# Which attribute of the module holds each kind's tensor.
KIND_ATTR: dict[str, str] = {
    "RM": "running_mean",
    "RV": "running_var",
    "RW": "weight",
    "RB": "bias",
    "W": "weight",
    "B": "bias",
}
DEFAULT_INPUT_SHAPE: tuple[int, int, int, int] = (1, 1, 64, 64)


@dataclass(frozen=True)
class Layer:
    """One BN or conv layer of a model, as the index numbers it."""

    family: Family
    number: int
    module_name: str
    kinds: tuple[str, ...]
    absent: tuple[str, ...]
    head: bool = False


def layer_label(layer: Layer) -> str:
    """How reports name a layer: "BN 3", "conv 17", "conv head"."""
    family = "BN" if layer.family == "bn" else "conv"
    return f"{family} head" if layer.head else f"{family} {layer.number}"


def family_of(module: nn.Module) -> Family | None:
    """The family of a module: "bn" for BatchNorm2d, "conv" for Conv2d, else None."""
    if isinstance(module, nn.BatchNorm2d):
        return "bn"
    if isinstance(module, nn.Conv2d):
        return "conv"
    return None


def _present_kinds(module: nn.Module, family: Family) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kinds = KINDS_OF_FAMILY[family]
    present = tuple(k for k in kinds if getattr(module, KIND_ATTR[k], None) is not None)
    return present, tuple(k for k in kinds if k not in present)


def _probe_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def execution_order(
    model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE
) -> tuple[list[str], tuple[int, ...]]:
    """Names of all modules in order of first call on a dummy input, and the output's shape.

    The model runs in eval mode without grad (so no BN statistics change), and every
    module's own train/eval flag is restored afterwards.
    """
    names = {id(module): name for name, module in model.named_modules()}
    called: list[str] = []
    seen: set[int] = set()

    def record(module: nn.Module, _args: object) -> None:
        if id(module) not in seen:
            seen.add(id(module))
            called.append(names[id(module)])

    modes = [(module, module.training) for module in model.modules()]
    # Pre-hooks fire when a call starts: for the BN/conv leaves that is the same order as
    # forward hooks, and a container is listed before what it runs.
    hooks = [module.register_forward_pre_hook(record) for module in model.modules()]
    device, dtype = _probe_device_dtype(model)
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(tuple(input_shape), device=device, dtype=dtype))
    except RuntimeError as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PrrmseError(
            type(model).__name__, f"forward fails on a {list(input_shape)} input: {problem}"
        ) from err
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes:
            module.training = training
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        raise PrrmseError(type(model).__name__, "forward must return an N x C x ... tensor")
    return called, tuple(output.shape)


def index_layers(
    model: nn.Module,
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    head: str | None = None,
    allow_unused: bool = False,
) -> list[Layer]:
    """BN layers numbered 1..n, then conv layers numbered 1..m with the head as conv m.

    `head` names the head module explicitly; by default it is the last conv executed
    whose out_channels equals the output's channel count (no such conv: no head flag).
    A BN or conv that exists but never runs raises, unless `allow_unused`: every
    analysis compares all layers, so one silently left out would be a wrong answer.
    """
    called, output_shape = execution_order(model, input_shape)
    out_channels = output_shape[1]
    modules = dict(model.named_modules())
    order = [(name, family_of(modules[name])) for name in called]
    bns = [name for name, family in order if family == "bn"]
    convs = [name for name, family in order if family == "conv"]

    if not allow_unused:
        used = set(called)
        never = [n for n, m in modules.items() if family_of(m) is not None and n not in used]
        if never:
            raise PrrmseError(
                type(model).__name__,
                f"{len(never)} BN/conv layers never run in forward (first: {', '.join(never[:3])})",
            )

    if head is not None:
        if head not in convs:
            raise PrrmseError(head, "is not a Conv2d run by the model's forward")
        head_name: str | None = head
    else:
        matching = [n for n in convs if modules[n].out_channels == out_channels]
        head_name = matching[-1] if matching else None
    if head_name is not None:
        convs = [n for n in convs if n != head_name] + [head_name]

    layers = []
    for family, names in (("bn", bns), ("conv", convs)):
        for number, name in enumerate(names, start=1):
            kinds, absent = _present_kinds(modules[name], family)
            layers.append(Layer(family, number, name, kinds, absent, head=name == head_name))
    return layers


def get_tensor(model: nn.Module, layer: Layer, kind: str) -> torch.Tensor:
    """The live parameter or buffer of (layer, kind): in-place edits change the model."""
    if kind not in KINDS_OF_FAMILY[layer.family]:
        valid = ", ".join(KINDS_OF_FAMILY[layer.family])
        raise PrrmseError(
            layer_label(layer), f"has no kind {kind!r}; {layer.family} kinds are {valid}"
        )
    if kind in layer.absent:
        raise PrrmseError(
            layer_label(layer), f"{kind} is absent ({layer.module_name}.{KIND_ATTR[kind]} is None)"
        )
    try:
        module = model.get_submodule(layer.module_name)
    except AttributeError as err:
        raise PrrmseError(layer.module_name, "no such module in this model") from err
    tensor = getattr(module, KIND_ATTR[kind], None)
    if tensor is None:
        raise PrrmseError(
            layer_label(layer), f"{kind} is absent ({layer.module_name}.{KIND_ATTR[kind]} is None)"
        )
    return tensor


def iter_tensors(
    model: nn.Module, layers: Sequence[Layer], include_head: bool = False
) -> Iterator[tuple[Layer, str, torch.Tensor]]:
    """(layer, kind, live tensor) for every present kind, in index order; head only if asked."""
    for layer in layers:
        if layer.head and not include_head:
            continue
        for kind in layer.kinds:
            yield layer, kind, get_tensor(model, layer, kind)


def find_layer(layers: Sequence[Layer], family: str, number: int | str) -> Layer:
    """The layer "BN 3" is find_layer(layers, "bn", 3); the head is number "head"."""
    for layer in layers:
        if layer.family == family and (layer.number == number or (number == "head" and layer.head)):
            return layer
    count = sum(1 for layer in layers if layer.family == family)
    raise PrrmseError(
        f"{family} {number}", f"no such layer; this model has {count} {family} layers"
    )
