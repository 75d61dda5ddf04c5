"""Permutation alignment of two models of one architecture: weight matching (Git Re-Basin).

Hidden channels of a CNN can be reordered without changing its function, as long as every
tensor that reads or writes those channels is reordered the same way. Two independently
trained models may therefore differ by a permutation rather than in substance, and raw
RMSE would count that as difference. Ainsworth, Hayase & Srinivasa (ICLR 2023) align model
B to model A by finding, per permutation P, the order of B's channels that maximises the
summed inner product with A over every tensor P touches; coordinate descent over the
permutations, one `scipy.optimize.linear_sum_assignment` per step, until none changes.

A *permutation spec* says, for every state_dict key, what permutes each axis: None (an
axis that stays put: kernel taps, the input image's channel, the 4-class head) or the
names of the permutations of consecutive blocks along it (a concatenation's input is
block-structured: [skip, upsampled] in the UNet decoder, [features, bin 1, ...] in the
pyramid pooling). Every BN tensor (RM, RV, RW, RB) and a conv's bias follow the conv's
output permutation. A residual addition forces one permutation on everything that writes
into the stream, so a ResNet stage shares one. Each permutation is named after the first
conv whose output it orders. Specs are built by walking the modules, so they follow any
width; architectures without a spec (`smp:...`) are refused.

Convention: a permutation `p` maps aligned channel i to the other model's channel p[i],
`aligned = other.index_select(axis, p)`. The objective sums over the learned tensors
(conv W and B, BN RW and RB); BN running statistics are permuted with their conv but do
not vote, since their data-set scale would otherwise outweigh every weight. A step is
accepted only if it strictly raises the objective, so the total squared distance of the
learned tensors after alignment never exceeds the unaligned one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.models.resnet import BasicBlock

from prrmse.core.errors import PrrmseError
from prrmse.models.pspnet import PSPNet
from prrmse.models.registry import ARCH_ATTR
from prrmse.models.unet import UNet

# None: the axis is not permuted; otherwise the permutations of consecutive channel blocks.
Axis = tuple[str, ...] | None
Permutations = dict[str, torch.Tensor]

UNET_ENCODER = ("inc", "down1", "down2", "down3", "down4")  # x1..x5 in UNet.forward
UNET_DECODER = ("up1", "up2", "up3", "up4")  # up_k takes the skip x(5-k) and the path so far
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# A step must raise the objective by more than this share of its size: float64 sums of
# equal scores can differ in the last bits, and accepting those could cycle forever.
RELATIVE_GAIN = 1e-10


@dataclass(frozen=True)
class PermutationSpec:
    """Channel count of every permutation, what permutes each axis of every tensor, and
    which tensors vote in the matching (the learned ones; BN running statistics follow)."""

    sizes: dict[str, int]
    axes: dict[str, tuple[Axis, ...]]
    matched: frozenset[str]

    def usage(self) -> dict[str, list[tuple[str, int, int]]]:
        """Per permutation, every (matched key, axis, offset of its block) it orders."""
        used: dict[str, list[tuple[str, int, int]]] = {name: [] for name in self.sizes}
        for key, axes in self.axes.items():
            if key not in self.matched:
                continue
            for axis, blocks in enumerate(axes):
                offset = 0
                for name in blocks or ():
                    used[name].append((key, axis, offset))
                    offset += self.sizes[name]
        return used


@dataclass
class _SpecBuilder:
    """Collects permutations and tensor axes while the architecture's walker runs."""

    sizes: dict[str, int] = field(default_factory=dict)
    axes: dict[str, tuple[Axis, ...]] = field(default_factory=dict)

    def permutation(self, name: str, size: int) -> str:
        self.sizes[name] = size
        return name

    def conv(self, name: str, conv: nn.Conv2d, inputs: Axis, output: str | None) -> None:
        if conv.groups != 1:
            raise PrrmseError(name, "grouped convs have no permutation spec")
        out_axis = None if output is None else (output,)
        self.axes[f"{name}.weight"] = (out_axis, inputs, None, None)
        if conv.bias is not None:
            self.axes[f"{name}.bias"] = (out_axis,)

    def batchnorm(self, name: str, bn: nn.BatchNorm2d, channels: Axis) -> None:
        if channels is None or len(channels) != 1:
            raise PrrmseError(name, f"a BN must follow one conv's permutation, got {channels}")
        for attr in BN_TENSORS:
            if getattr(bn, attr, None) is not None:
                self.axes[f"{name}.{attr}"] = (channels,)
        if getattr(bn, "num_batches_tracked", None) is not None:
            self.axes[f"{name}.num_batches_tracked"] = ()

    def chain(self, name: str, module: nn.Module, inputs: Axis) -> Axis:
        """Spec a module whose children run one after the other; the axis it outputs.

        Each conv starts a permutation of its own; a BN follows the conv before it; modules
        without tensors (ReLU, pooling, dropout) keep the channel order.
        """
        if isinstance(module, nn.Conv2d):
            output = self.permutation(name, module.out_channels)
            self.conv(name, module, inputs, output)
            return (output,)
        if isinstance(module, nn.BatchNorm2d):
            self.batchnorm(name, module, inputs)
            return inputs
        children = list(module.named_children())
        if not children:
            if any(True for _ in module.parameters(recurse=False)) or any(
                True for _ in module.buffers(recurse=False)
            ):
                raise PrrmseError(name, f"{type(module).__name__} has no permutation rule")
            return inputs
        for child_name, child in children:
            inputs = self.chain(f"{name}.{child_name}", child, inputs)
        return inputs

    def build(self, model: nn.Module) -> PermutationSpec:
        # Only learned tensors vote: running statistics are set by the data, at scales far
        # from the weights' (trained demo PSPNet: RV ~ 5, conv W ~ 0.02), and would decide
        # the matching alone, leaving the weights worse aligned than before.
        learned = {key for key, _ in model.named_parameters()}
        spec = PermutationSpec(dict(self.sizes), dict(self.axes), frozenset(learned))
        check_spec(spec, model.state_dict(), arch_name(model))
        return spec


def arch_name(model: nn.Module) -> str:
    """The registry name a model was built under, else its class name."""
    record = getattr(model, ARCH_ATTR, None)
    return str(record["name"]) if record else type(model).__name__


def supports_alignment(model: nn.Module) -> bool:
    """Whether `permutation_spec` knows this architecture (the paper's unet and pspnet)."""
    return isinstance(model, (UNet, PSPNet))


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The spec of a UNet or PSPNet; PrrmseError for any other architecture."""
    if isinstance(model, UNet):
        return _unet_spec(model)
    if isinstance(model, PSPNet):
        return _pspnet_spec(model)
    raise PrrmseError(
        arch_name(model),
        "alignment is not supported for this architecture (only unet and pspnet have a "
        "permutation spec)",
    )


def _unet_spec(model: UNet) -> PermutationSpec:
    builder = _SpecBuilder()
    path: Axis = None  # the input image's channel stays put
    skips: list[Axis] = []
    for name in UNET_ENCODER:
        path = builder.chain(name, getattr(model, name), path)
        skips.append(path)
    skips.pop()  # the deepest output is the path itself, not a skip
    for name in UNET_DECODER:
        # Up.forward: conv(cat([skip, upsampled path])); upsampling and padding keep channels.
        skip = skips.pop()
        assert skip is not None and path is not None
        path = builder.chain(f"{name}.conv", getattr(model, name).conv, skip + path)
    builder.conv("outc.conv", model.outc.conv, path, None)  # class channels stay put
    return builder.build(model)


def _pspnet_spec(model: PSPNet) -> PermutationSpec:
    builder = _SpecBuilder()
    encoder = model.encoder
    # The stem writes the residual stream that layer1 (no downsample) adds to.
    stream = builder.chain("encoder.conv1", encoder.conv1, None)
    builder.batchnorm("encoder.bn1", encoder.bn1, stream)
    for stage in RESNET_STAGES:
        for index, block in enumerate(getattr(encoder, stage)):
            name = f"encoder.{stage}.{index}"
            if not isinstance(block, BasicBlock):
                raise PrrmseError(name, f"{type(block).__name__} has no permutation rule")
            inner = builder.chain(f"{name}.conv1", block.conv1, stream)
            builder.batchnorm(f"{name}.bn1", block.bn1, inner)
            if block.downsample is not None:
                # A new stream: the downsample and every later conv2 of the stage write it.
                stream = builder.chain(f"{name}.downsample", block.downsample, stream)
            assert stream is not None
            builder.conv(f"{name}.conv2", block.conv2, inner, stream[0])
            builder.batchnorm(f"{name}.bn2", block.bn2, stream)
    assert stream is not None
    # PyramidPooling.forward concatenates [features, bin 1, bin 2, ...].
    concat = stream
    for index, stage in enumerate(model.decoder.ppm.stages):
        bin_axis = builder.chain(f"decoder.ppm.stages.{index}", stage, stream)
        assert bin_axis is not None
        concat = concat + bin_axis
    path = builder.chain("decoder.bottleneck", model.decoder.bottleneck, concat)
    builder.conv("head", model.head, path, None)  # class channels stay put
    return builder.build(model)


def check_spec(spec: PermutationSpec, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Every tensor is covered, and every permuted axis is as long as its blocks."""
    missing = sorted(set(state) - set(spec.axes))
    extra = sorted(set(spec.axes) - set(state))
    if missing or extra:
        raise PrrmseError(
            where,
            f"permutation spec does not cover the model: missing {missing[:3]}, extra {extra[:3]}",
        )
    for key, axes in spec.axes.items():
        shape = tuple(state[key].shape)
        if len(axes) != len(shape):
            raise PrrmseError(where, f"spec of {key} has {len(axes)} axes, tensor {len(shape)}")
        for axis, blocks in enumerate(axes):
            if blocks is not None and sum(spec.sizes[name] for name in blocks) != shape[axis]:
                raise PrrmseError(
                    where, f"spec of {key} axis {axis} covers {blocks}, tensor has {shape[axis]}"
                )


def _axis_index(
    blocks: tuple[str, ...], spec: PermutationSpec, perms: Permutations
) -> torch.Tensor:
    pieces, offset = [], 0
    for name in blocks:
        pieces.append(perms[name] + offset)
        offset += spec.sizes[name]
    return torch.cat(pieces)


def permute_tensor(
    tensor: torch.Tensor,
    key: str,
    spec: PermutationSpec,
    perms: Permutations,
    skip_axis: int | None = None,
) -> torch.Tensor:
    """`tensor` (state_dict entry `key`) reordered on every permuted axis but `skip_axis`."""
    for axis, blocks in enumerate(spec.axes[key]):
        if blocks is None or axis == skip_axis:
            continue
        index = _axis_index(blocks, spec, perms).to(tensor.device)
        tensor = tensor.index_select(axis, index)
    return tensor


def apply_permutations(
    spec: PermutationSpec, state: Mapping[str, torch.Tensor], perms: Permutations
) -> dict[str, torch.Tensor]:
    """A new state_dict: every tensor of `state` reordered by `perms` (copies, never views)."""
    return {
        key: permute_tensor(tensor.detach(), key, spec, perms).clone()
        for key, tensor in state.items()
    }


def identity_permutations(spec: PermutationSpec) -> Permutations:
    return {name: torch.arange(size) for name, size in spec.sizes.items()}


def random_permutations(spec: PermutationSpec, seed: int) -> Permutations:
    """A random order of every permutation's channels (for tests and sanity checks)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randperm(size, generator=generator) for name, size in spec.sizes.items()}


def weight_matching(
    spec: PermutationSpec,
    reference: Mapping[str, torch.Tensor],
    other: Mapping[str, torch.Tensor],
    *,
    seed: int = 0,
    max_iter: int = 100,
) -> Permutations:
    """Permutations of `other` maximising sum <reference, permuted other> over the matched
    tensors (every learned tensor with a permuted axis).

    Each sweep visits the permutations in a seeded random order; for each, with all others
    fixed, the best order is one linear assignment over the summed inner products of every
    block it orders. Stops after a sweep that changed nothing, or after `max_iter` sweeps.
    """
    usage = spec.usage()
    # float64 on the CPU: the assignment compares sums of many products. The reference's
    # side of every inner product never changes, so its matrices are made once.
    ref = {
        (key, axis, offset): _channel_rows(reference[key], axis, offset, spec.sizes[name])
        for name, uses in usage.items()
        for key, axis, offset in uses
    }
    oth = {key: other[key].detach().to("cpu", torch.float64) for key, _, _ in ref}
    neighbours = _neighbours(spec)
    perms = identity_permutations(spec)
    # One tensor's share of a permutation's scores depends only on the permutations of its
    # other axes: it is kept with their versions and recomputed only when one has changed.
    versions = dict.fromkeys(spec.sizes, 0)
    shares: dict[tuple[str, int, int], tuple[tuple[int, ...], torch.Tensor]] = {}
    names = sorted(spec.sizes)
    # A permutation's scores change only when a permutation it shares a tensor with does:
    # until then, revisiting it would find the same assignment, so it is skipped.
    stale = set(names)
    order = np.random.default_rng(seed)
    for _ in range(max_iter):
        if not stale:
            break
        for position in order.permutation(len(names)):
            name = names[position]
            if name not in stale:
                continue
            stale.discard(name)
            size = spec.sizes[name]
            scores = torch.zeros(size, size, dtype=torch.float64)
            for use in usage[name]:
                key, axis, _ = use
                depends = tuple(
                    versions[other_name]
                    for index, blocks in enumerate(spec.axes[key])
                    if index != axis
                    for other_name in blocks or ()
                )
                if use not in shares or shares[use][0] != depends:
                    shares[use] = (depends, _share(spec, use, size, ref[use], oth[key], perms))
                scores += shares[use][1]
            _, columns = linear_sum_assignment(scores.numpy(), maximize=True)
            proposal = torch.as_tensor(columns, dtype=torch.long)
            rows = torch.arange(size)
            old = float(scores[rows, perms[name]].sum())
            new = float(scores[rows, proposal].sum())
            if new - old > RELATIVE_GAIN * max(1.0, abs(old)):
                perms[name] = proposal
                versions[name] += 1
                stale |= neighbours[name]
    return perms


def _share(
    spec: PermutationSpec,
    use: tuple[str, int, int],
    size: int,
    reference_rows: torch.Tensor,
    other: torch.Tensor,
    perms: Permutations,
) -> torch.Tensor:
    """Inner products of the reference's channels (rows) with the other's (columns) in one
    block of one tensor, the other's remaining axes in their current order."""
    key, axis, offset = use
    permuted = permute_tensor(other, key, spec, perms, skip_axis=axis)
    return reference_rows @ _channel_rows(permuted, axis, offset, size).T


def _channel_rows(tensor: torch.Tensor, axis: int, offset: int, size: int) -> torch.Tensor:
    """The block [offset, offset + size) of `axis` as rows of a (size, rest) float64 matrix."""
    block = tensor.detach().narrow(axis, offset, size).movedim(axis, 0)
    return block.to("cpu", torch.float64).reshape(size, -1)


def _neighbours(spec: PermutationSpec) -> dict[str, set[str]]:
    """Per permutation, the others whose order changes its scores (itself if it occurs twice
    in one tensor)."""
    neighbours: dict[str, set[str]] = {name: set() for name in spec.sizes}
    for key, axes in spec.axes.items():
        if key not in spec.matched:
            continue
        names = [name for blocks in axes for name in blocks or ()]
        for name in names:
            neighbours[name] |= {other for other in names if other != name}
            if names.count(name) > 1:
                neighbours[name].add(name)
    return neighbours


def align_models(
    reference: nn.Module, other: nn.Module, *, seed: int = 0, max_iter: int = 100
) -> tuple[dict[str, torch.Tensor], Permutations]:
    """`other`'s state_dict with its channels reordered to match `reference`, and the orders.

    Loading the returned state_dict into `other` leaves its function unchanged (eval mode,
    up to float rounding). PrrmseError for an architecture without a permutation spec or
    models whose specs differ (another width or bias setting).
    """
    spec = permutation_spec(reference)
    other_spec = permutation_spec(other)
    if other_spec != spec:
        raise PrrmseError(
            arch_name(other),
            "cannot be aligned: its channels or tensors differ from the reference's",
        )
    other_state = other.state_dict()
    perms = weight_matching(spec, reference.state_dict(), other_state, seed=seed, max_iter=max_iter)
    return apply_permutations(spec, other_state, perms), perms
