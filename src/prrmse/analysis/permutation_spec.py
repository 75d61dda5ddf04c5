"""Permutation specs of the architectures alignment knows (`prrmse.analysis.align`): for
every state_dict key, what permutes each axis: None (an axis that stays put: kernel taps,
the input image's channel, the 4-class head) or the names of the permutations of
consecutive blocks along it (a concatenation's input is block-structured: [skip, upsampled]
in the UNet decoder, [features, bin 1, ...] in the pyramid pooling). Every BN tensor (RM,
RV, RW, RB) and a conv's bias follow the conv's output permutation. A residual addition
forces one permutation on everything that writes into the stream, so a ResNet stage shares
one. Each permutation is named after the first conv whose output it orders. Specs are built
by walking the modules, so they follow any width; architectures without a spec
(`smp:...`) are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from prrmse.core.errors import PrrmseError
from prrmse.models.pspnet import PSPNet
from prrmse.models.registry import ARCH_ATTR
from prrmse.models.unet import UNet

# None: the axis is not permuted; otherwise the permutations of consecutive channel blocks.
Axis = tuple[str, ...] | None

UNET_ENCODER = ("inc", "down1", "down2", "down3", "down4")  # x1..x5 in UNet.forward
UNET_DECODER = ("up1", "up2", "up3", "up4")  # up_k takes the skip x(5-k) and the path so far
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


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
