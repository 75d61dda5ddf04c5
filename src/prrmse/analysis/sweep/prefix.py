"""Prefix reuse: after replacing a tensor of module M, rerun only what M's call can change.

Nothing computed before M's call starts can depend on M's tensors. One baseline pass per
batch records, with hooks, every module call's interval on one clock (enter at the
pre-hook, exit at the forward hook), its inputs, its output and the version counters of
their tensors. A replacement pass at M then overrides, for that pass only:
- replays: each *reusable* call that finished before M's first call started returns its
  recorded output (only the outermost such calls need one: their children never run);
- shortcuts: an ancestor of M that can be proven to only prepare its child on M's path
  calls that child with the child's recorded inputs, skipping the functional code (pads,
  concats) it would otherwise recompute. Two forms: a plain nn.Sequential runs its
  children from that child on; any other module whose last child call is that child and
  whose output is exactly the child's output just makes that call.
Other ancestors of M run normally on replayed children outputs, and M and everything
after it run for real.

Reuse is allowed only where it is provably the same computation:
- the module runs exactly once per forward (a second call would need a second output),
- outputs are tensors or plain lists/tuples of tensors, and shortcut inputs are tensors
  or plain constants,
- a replayed call leaves its inputs unmodified (its side effect must still happen),
- a replayed output is not modified in place later in the pass (an in-place ReLU after a
  BN leaves the BN's recorded output holding the ReLU's result), and a shortcut's
  recorded inputs are not modified from the child's start to the end of the pass.
Every other module simply runs: slower, never wrong. Recorded tensors are the very
objects of the baseline pass, so aliasing between them is as it was.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

_NO_FORWARD = object()
_CONSTANTS = (int, float, bool, str, type(None))

Overrides = dict[nn.Module, Callable[..., Any]]


@dataclass
class Call:
    """One module call of the baseline pass; `parent` indexes the enclosing call (-1: none)."""

    module: nn.Module
    enter: int
    parent: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    input_versions: tuple[tuple[torch.Tensor, int], ...]
    exit: int = -1
    outputs: tuple[torch.Tensor, ...] | None = None
    container: type | None = None  # None: a bare tensor; list or tuple otherwise
    versions: tuple[int, ...] = ()
    mutates_inputs: bool = False
    once: bool = False  # the module's only call in the pass
    inputs_clean: bool = False  # inputs unmodified from this call's start to the pass's end
    last_child: int = -1  # index of the last call made directly from this one
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


def _flat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether every input is a tensor or a constant (no container that could change)."""
    return all(isinstance(v, (torch.Tensor, *_CONSTANTS)) for v in (*args, *kwargs.values()))


class _Recorder:
    """Hooks that fill a list of `Call`s during one forward pass."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.stack: list[int] = []
        self.clock = 0

    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        inputs = tuple((t, t._version) for t in _tensors((args, kwargs)))
        parent = self.stack[-1] if self.stack else -1
        self.calls.append(Call(module, self.clock, parent, args, dict(kwargs), inputs))
        self.stack.append(len(self.calls) - 1)
        self.clock += 1

    def after(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        call = self.calls[self.stack.pop()]
        call.exit = self.clock
        self.clock += 1
        call.mutates_inputs = any(t._version != v for t, v in call.input_versions)
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
    calls = recorder.calls
    counts = Counter(id(call.module) for call in calls)
    for index, call in enumerate(calls):
        if call.parent >= 0:
            calls[call.parent].last_child = index  # calls are in order of entry
        call.once = counts[id(call.module)] == 1
        call.inputs_clean = all(t._version == v for t, v in call.input_versions)
        clean = all(t._version == v for t, v in zip(call.outputs or (), call.versions, strict=True))
        call.reusable = (
            call.module is not model
            and call.once
            and call.outputs is not None
            and not call.mutates_inputs
            and clean
        )
    return result, calls


class _Replay:
    """A stand-in forward that returns a recorded output (a new list/tuple, same tensors)."""

    def __init__(self, call: Call) -> None:
        self.outputs = call.outputs or ()
        self.container = call.container

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.outputs[0] if self.container is None else self.container(self.outputs)


class _Shortcut:
    """A stand-in forward that runs `modules` in a chain from a child's recorded inputs."""

    def __init__(self, modules: list[nn.Module], child: Call) -> None:
        self.modules, self.args, self.kwargs = modules, child.args, child.kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        value = self.modules[0](*self.args, **self.kwargs)
        for module in self.modules[1:]:
            value = module(value)
        return value


@dataclass
class PrefixCache:
    """The recorded calls of one baseline pass and the stand-ins they allow."""

    calls: list[Call]
    first_call: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, call in enumerate(self.calls):
            self.first_call.setdefault(id(call.module), index)

    def overrides_for(self, module: nn.Module) -> Overrides | None:
        """Replays and shortcuts for one pass with `module`'s tensors replaced.

        None when `module` never ran in the baseline pass: then nothing is known to be
        independent of it, and the caller runs a full pass.
        """
        first = self.first_call.get(id(module))
        if first is None:
            return None
        start = self.calls[first].enter
        overrides: Overrides = {}
        # covered[i]: some enclosing call of i is itself replayed, so i never runs.
        covered = [False] * len(self.calls)
        for i, call in enumerate(self.calls):
            parent = call.parent
            if parent >= 0:
                above = self.calls[parent]
                covered[i] = covered[parent] or (above.reusable and above.exit < start)
            if call.reusable and call.exit < start and not covered[i]:
                overrides[call.module] = _Replay(call)
        child = first
        while self.calls[child].parent >= 0:
            parent = self.calls[child].parent
            shortcut = self._shortcut(self.calls[parent], self.calls[child])
            if shortcut is not None:
                overrides[self.calls[parent].module] = shortcut
            child = parent
        return overrides

    def _shortcut(self, call: Call, child: Call) -> _Shortcut | None:
        """A stand-in for `call` starting at `child` (on the replaced module's path), if safe."""
        if not (call.once and child.once and child.inputs_clean and not call.mutates_inputs):
            return None
        if not _flat(child.args, child.kwargs):
            return None
        if type(call.module).forward is nn.Sequential.forward:
            # Sequential.forward passes each child's output to the next and nothing else.
            children = list(call.module)
            positions = [i for i, module in enumerate(children) if module is child.module]
            return _Shortcut(children[positions[0] :], child) if positions else None
        last = self.calls[call.last_child] is child
        passes_through = (
            call.container is None
            and child.container is None
            and call.outputs is not None
            and child.outputs is not None
            and call.outputs[0] is child.outputs[0]
            and call.versions == child.versions
        )
        return _Shortcut([child.module], child) if last and passes_through else None

    def intact(self) -> bool:
        """Whether nothing the stand-ins hand out was modified in place since recording."""
        for call in self.calls:
            if call.reusable and any(
                t._version != v for t, v in zip(call.outputs or (), call.versions, strict=True)
            ):
                return False
            if call.inputs_clean and any(t._version != v for t, v in call.input_versions):
                return False
        return True


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
