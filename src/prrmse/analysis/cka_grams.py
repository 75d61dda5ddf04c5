"""Gram matrices of a model's BN outputs on n images, pass by pass (`bn_grams`).

What is compared is each BN layer's output (post-BN, before the ReLU): what a reused BN
hands to the rest of the network. Numbering is the layer index's (forward execution
order, BN layers 1..n); a module called twice contributes its first call, as it is
numbered. The Gram contribution is computed inside the forward hook, before an in-place
ReLU or residual addition overwrites the BN's output tensor.

Memory is O(layers · n²), never the activations: n x n Gram matrices (float64) are
filled block by block. When the n images do not fit one forward pass of `batch_size`,
they are cut into blocks of batch_size // 2 and every pair of blocks runs as one pass
(its Gram gives the two diagonal blocks and the cross block): exact, at the cost of
B(B-1)/2 passes for B blocks. BN runs in eval mode, so an image's activations do not
depend on what else is in the batch, and blockwise Grams equal one big batch's.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prrmse.analysis.rmse import probe_shape
from prrmse.core.errors import PrrmseError
from prrmse.core.progress import eta
from prrmse.models.layers import Layer, index_layers, layer_label


def bn_layers(model: nn.Module) -> list[Layer]:
    """The model's BN layers in forward execution order (the layer index's numbering)."""
    layers = [layer for layer in index_layers(model, probe_shape(model)) if layer.family == "bn"]
    if not layers:
        raise PrrmseError(type(model).__name__, "has no BatchNorm2d layer to compare")
    return layers


def pass_schedule(n: int, batch_size: int) -> list[np.ndarray]:
    """Image indices of each forward pass so that every pair of images shares one pass."""
    if n <= batch_size:
        return [np.arange(n)]
    block = max(1, batch_size // 2)
    blocks = [np.arange(start, min(start + block, n)) for start in range(0, n, block)]
    return [np.concatenate(pair) for pair in itertools.combinations(blocks, 2)]


def bn_grams(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int,
    device: str = "cpu",
    where: str | Path = "model",
    log: Callable[[str], None] | None = None,
) -> tuple[list[Layer], list[np.ndarray]]:
    """The BN layers and, per layer, the n x n float64 Gram of its outputs on `images`.

    The model runs in eval mode without grad on `device`; its modes and device are
    restored. A non-finite output raises PrrmseError naming `where` and the layer.
    """
    n = _check_images(images, batch_size)
    layers = bn_layers(model)
    grams = [np.zeros((n, n), np.float64) for _ in layers]
    current: dict[int, torch.Tensor] = {}
    target = torch_device(device)
    hooks = []
    try:
        with _evaluating(model, target), torch.no_grad():
            for number, layer in enumerate(layers):
                module = model.get_submodule(layer.module_name)
                hooks.append(module.register_forward_hook(_gram_hook(number, current)))
            schedule = pass_schedule(n, batch_size)
            began = time.perf_counter()
            for done, rows in enumerate(schedule, start=1):
                current.clear()
                _forward(model, images[torch.from_numpy(rows)].to(target, torch.float32), where)
                _store_pass(current, layers, grams, rows, where)
                if log is not None:
                    left = eta(done, len(schedule), time.perf_counter() - began)
                    log(f"cka {where}: pass {done}/{len(schedule)}, {left}")
    finally:
        for handle in hooks:
            handle.remove()
    return layers, grams


def _gram_hook(number: int, current: dict[int, torch.Tensor]) -> Callable[..., None]:
    """A forward hook keeping the Gram of its module's output in `current[number]`."""

    def record(_module: nn.Module, _args: object, output: torch.Tensor) -> None:
        if number not in current:  # a module called twice counts at its first call
            flat = output.detach().flatten(1).to(torch.float64)
            current[number] = (flat @ flat.T).cpu()

    return record


def _store_pass(
    current: dict[int, torch.Tensor],
    layers: list[Layer],
    grams: list[np.ndarray],
    rows: np.ndarray,
    where: str | Path,
) -> None:
    """One pass's Grams into the (rows, rows) block of every layer's n x n Gram; a layer
    that did not run, or gave a non-finite output, raises PrrmseError naming `where`."""
    for number, layer in enumerate(layers):
        if number not in current:
            raise PrrmseError(where, f"{layer_label(layer)} ({layer.module_name}) did not run")
        gram = current[number].numpy()
        if not np.isfinite(gram).all():
            raise PrrmseError(
                where,
                f"non-finite output of {layer_label(layer)} ({layer.module_name}) "
                f"in a pass over {len(rows)} of the {len(grams[number])} images compared",
            )
        # float64 products need not be bit-symmetric: make them so.
        grams[number][np.ix_(rows, rows)] = (gram + gram.T) / 2


@contextlib.contextmanager
def _evaluating(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode on `device` for the block; every module's mode and the device restored."""
    modes = [(module, module.training) for module in model.modules()]
    home = next(model.parameters()).device
    model.eval().to(device)
    try:
        yield
    finally:
        model.to(home)
        for module, training in modes:
            module.training = training


def _forward(model: nn.Module, batch: torch.Tensor, where: str | Path) -> None:
    try:
        model(batch)
    except RuntimeError as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PrrmseError(
            where, f"forward fails on a {list(batch.shape)} batch: {problem}"
        ) from err


def _check_images(images: torch.Tensor, batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PrrmseError("cka batch_size", f"must be a positive integer, got {batch_size!r}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = list(getattr(images, "shape", []))
        raise PrrmseError("cka images", f"must be an N x C x H x W tensor, got shape {shape}")
    if len(images) < 2:
        raise PrrmseError("cka images", f"CKA needs at least 2 images, got {len(images)}")
    if not torch.isfinite(images).all():
        raise PrrmseError("cka images", "contain NaN or infinite values")
    return len(images)


def torch_device(device: str) -> torch.device:
    try:
        target = torch.device(device)
    except RuntimeError as err:
        raise PrrmseError("cka device", f"{device!r} is not a device ({err})") from err
    if target.type == "cuda" and not torch.cuda.is_available():
        raise PrrmseError("cka device", f"{device!r} asked for, but CUDA is not available")
    return target
