"""Prefix reuse: after replacing a tensor of module M, rerun only what M's call can change.

Nothing computed before M's call starts can depend on M's tensors. One baseline pass per
batch records, with hooks, every module call's interval on one clock (enter at the
pre-hook, exit at the forward hook), its output and the version counters of its tensors.
For a replacement at M, each *reusable* call that finished before M's first call started
gets, for one pass, a forward that returns its recorded output; only the outermost such
calls need one, since their children never run. Ancestors of M run normally, so the
functional code in their forward (adds, concats, interpolations) is recomputed on reused
children outputs, and M and everything after it run for real.

A call is reusable only where reuse is provably the same computation:
- its module runs exactly once per forward (a second call would need a second output),
- its output is a tensor or a list/tuple of tensors,
- it leaves its inputs unmodified (an in-place side effect must still happen), and
- its output is not modified in place later in the pass (an in-place ReLU after a BN
  leaves the BN's recorded output holding the ReLU's result).
Every other module simply runs: slower, never wrong. Replayed outputs are the very
objects of the baseline pass, so aliasing between them is as it was.

BN folding (an optional approximation) lives here too, as another kind of forward
override: `fold_pairs` finds convs that provably feed exactly one eval-mode BN.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

_NO_FORWARD = object()


@dataclass
class Call:
    """One module call of the baseline pass; `parent` indexes the enclosing call (-1: none)."""

    module: nn.Module
    enter: int
    parent: int
    input_versions: tuple[tuple[torch.Tensor, int], ...]
    exit: int = -1
    outputs: tuple[torch.Tensor, ...] | None = None
    container: type | None = None  # None: a bare tensor; list or tuple otherwise
    versions: tuple[int, ...] = ()
    mutates_inputs: bool = False
    reusable: bool = False


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _as_outputs(value: Any) -> tuple[type | None, tuple[torch.Tensor, ...]] | None:
    """(container, tensors) for a tensor or a plain list/tuple of tensors; None otherwise."""
    if isinstance(value, torch.Tensor):
        return None, (value,)
    if type(value) in (list, tuple) and all(isinstance(v, torch.Tensor) for v in value):
        return type(value), tuple(value)
    return None


class _Recorder:
    """Hooks that fill a list of `Call`s during one forward pass."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.stack: list[int] = []
        self.clock = 0

    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        inputs = tuple((t, t._version) for t in _tensors((args, kwargs)))
        parent = self.stack[-1] if self.stack else -1
        self.calls.append(Call(module, self.clock, parent, inputs))
        self.stack.append(len(self.calls) - 1)
        self.clock += 1

    def after(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        call = self.calls[self.stack.pop()]
        call.exit = self.clock
        self.clock += 1
        call.mutates_inputs = any(t._version != v for t, v in call.input_versions)
        call.input_versions = ()  # holding inputs would keep dead tensors alive
        parsed = _as_outputs(output)
        if parsed is not None:
            call.container, call.outputs = parsed
            call.versions = tuple(t._version for t in call.outputs)


def record_calls(model: nn.Module, run: Callable[[], Any]) -> tuple[Any, list[Call]]:
    """Run `run()` (a forward of `model`) with hooks on every module; its result and calls."""
    recorder = _Recorder()
    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(recorder.before, with_kwargs=True))
            handles.append(module.register_forward_hook(recorder.after, with_kwargs=True))
        result = run()
    finally:
        for handle in handles:
            handle.remove()
    counts = Counter(id(call.module) for call in recorder.calls)
    for call in recorder.calls:
        clean = all(t._version == v for t, v in zip(call.outputs or (), call.versions, strict=True))
        call.reusable = (
            call.module is not model
            and counts[id(call.module)] == 1
            and call.outputs is not None
            and not call.mutates_inputs
            and clean
        )
    return result, recorder.calls


class _Replay:
    """A stand-in forward that returns a recorded output (a new list/tuple, same tensors)."""

    def __init__(self, call: Call) -> None:
        self.outputs = call.outputs or ()
        self.container = call.container

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.outputs[0] if self.container is None else self.container(self.outputs)


@dataclass
class PrefixCache:
    """The recorded calls of one baseline pass and the stand-ins they allow."""

    calls: list[Call]
    first_enter: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for call in self.calls:
            self.first_enter.setdefault(id(call.module), call.enter)

    def replays_before(self, module: nn.Module) -> dict[nn.Module, Callable[..., Any]] | None:
        """Stand-in forwards for the outermost reusable calls finished before `module` starts.

        None when `module` never ran in the baseline pass: then nothing is known to be
        independent of it, and the caller runs a full pass.
        """
        start = self.first_enter.get(id(module))
        if start is None:
            return None
        replays: dict[nn.Module, Callable[..., Any]] = {}
        # covered[i]: some enclosing call of i is itself replayed, so i never runs.
        covered = [False] * len(self.calls)
        for i, call in enumerate(self.calls):
            parent = call.parent
            if parent >= 0:
                above = self.calls[parent]
                covered[i] = covered[parent] or (above.reusable and above.exit < start)
            if call.reusable and call.exit < start and not covered[i]:
                replays[call.module] = _Replay(call)
        return replays

    def intact(self) -> bool:
        """Whether no reused output was modified in place since it was recorded."""
        return all(
            t._version == v
            for call in self.calls
            if call.reusable
            for t, v in zip(call.outputs or (), call.versions, strict=True)
        )


@contextlib.contextmanager
def forwards_replaced(overrides: Mapping[nn.Module, Callable[..., Any]]) -> Iterator[None]:
    """Give modules another forward for the duration of the block; always restored."""
    saved: list[tuple[nn.Module, Any]] = []
    try:
        for module, forward in overrides.items():
            saved.append((module, module.__dict__.get("forward", _NO_FORWARD)))
            object.__setattr__(module, "forward", forward)
        yield
    finally:
        for module, previous in reversed(saved):
            if previous is _NO_FORWARD:
                object.__delattr__(module, "forward")
            else:
                object.__setattr__(module, "forward", previous)


# --- BN folding: an optional approximation, as forward overrides ------------------------


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
