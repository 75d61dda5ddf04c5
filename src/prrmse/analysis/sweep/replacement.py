"""The replacement sweep: put one source tensor into the target, score, restore; every tensor.

For every layer and kind of the target (BN: RM RV RW RB; conv: W B; the head included
and flagged) the source's tensor is copied into the target in place, the target's
validation set is segmented without retraining, per-class Dice (classes 0..3) is
recorded, and the original bytes are copied back. A baseline row has nothing replaced.
Kinds absent from the target (a conv without bias) are listed with status "absent".

Dice is computed per patient volume and averaged over patients (`prrmse.training.metrics`); a
class never present in the validation labels has no Dice at all: NaN on every row.

Speed: per batch, one baseline pass records every module's output (`prrmse.analysis.sweep.prefix`) and
each replacement's pass replays what ran before the replaced layer, so only the rest of
the network runs. At the default settings every row is bit-identical to `naive_sweep`
(deepcopy + load_state_dict + full evaluation); `fold_bn`, `channels_last` and `bf16`
trade that for speed, moving predictions only at near-tie pixels.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.analysis.sweep.bnfold import FoldedPair, fold_overrides, fold_pairs
from prrmse.analysis.sweep.prefix import PrefixCache, forwards_replaced, record_calls
from prrmse.analysis.sweep.rows import (
    DiceCounts,
    Replacement,
    check_compatible,
    check_inputs,
    make_replacements,
    patient_sweep_table,
    sweep_table,
)
from prrmse.core.errors import PrrmseError
from prrmse.core.progress import eta
from prrmse.models.layers import KIND_ATTR, Layer, get_tensor


@dataclass(frozen=True)
class SweepSettings:
    """How the sweep runs; the defaults give the reference numerics.

    `prefix_reuse`: replay what runs before the replaced layer (exact: rows stay
    bit-identical to `naive_sweep` under the same other settings). `channels_last`: NHWC
    memory format. `fold_bn`: eval BN folded into its conv, except the replaced layer's
    pair, after the replaced layer (the only setting `naive_sweep` does not share). These
    two move predictions only at near-tie pixels. `bf16`: bfloat16 autocast on the sweep's
    device; coarser (Dice moves in the third decimal). On CPU it pays only where the CPU
    computes in bf16 natively (`prrmse.core.device.cpu_has_native_bf16`): a PSPNet pass
    there takes ~0.55 of float32's time.
    """

    prefix_reuse: bool = True
    channels_last: bool = False
    fold_bn: bool = False
    bf16: bool = False
    batch_size: int = 64
    device: str = "cpu"

    def numerics(self) -> str:
        """What the rows can be compared with: the naive sweep's bytes, or not."""
        changed = [key for key in ("fold_bn", "channels_last", "bf16") if getattr(self, key)]
        if not changed:
            return "float32, exact (rows bit-identical to the naive sweep)"
        return f"opt-in {' + '.join(changed)}: rounding changed, Dice moves slightly"


def _device(settings: SweepSettings) -> torch.device:
    size = settings.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise PrrmseError(
            "sweep batch_size", f"must be a positive integer, got {settings.batch_size!r}"
        )
    try:
        device = torch.device(settings.device)
    except RuntimeError as err:
        raise PrrmseError("sweep device", f"{settings.device!r} is not a device ({err})") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrrmseError(
            "sweep device", f"{settings.device!r} asked for, but CUDA is not available"
        )
    return device


@contextlib.contextmanager
def _evaluating(model: nn.Module, device: torch.device, channels_last: bool) -> Iterator[None]:
    """Eval mode on `device` (NHWC if asked) for the block; mode, device, layout restored."""
    modes = [(module, module.training) for module in model.modules()]
    home = next(model.parameters()).device
    model.eval()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
        model.to(home)
        for module, training in modes:
            module.training = training


def predict_batch(
    model: nn.Module, batch: torch.Tensor, overrides: dict[nn.Module, Any], settings: SweepSettings
) -> torch.Tensor:
    """Arg-max class per pixel of one batch, (B, H, W) uint8 on the batch's device, with
    forwards overridden (left there: `DiceCounts` counts on that device)."""
    autocast = torch.autocast(
        batch.device.type,
        dtype=torch.bfloat16,
        enabled=settings.bf16,
    )
    with torch.no_grad(), autocast, forwards_replaced(overrides):
        logits = model(batch)
    # Arg-max over the last axis of an NHWC copy: the same first-maximum rule, 3-5x faster
    # on CPU than reducing over the strided channel axis.
    return logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1).to(torch.uint8)


def _record(model: nn.Module, batch: torch.Tensor, settings: SweepSettings) -> tuple[Any, list]:
    """The baseline pass of one batch (nothing overridden), with every module call recorded."""
    return record_calls(model, lambda: predict_batch(model, batch, {}, settings))


Loader = Callable[[], torch.Tensor]


def _batches(
    images: torch.Tensor, settings: SweepSettings, device: torch.device
) -> Iterator[tuple[int, Loader]]:
    """(start, load) per batch; `load()` gives a fresh copy, so no pass sees another's edits."""
    layout = torch.channels_last if settings.channels_last else torch.contiguous_format
    for start in range(0, len(images), settings.batch_size):
        chunk = images[start : start + settings.batch_size]
        if device.type != "cpu":
            # each pass copies the batch on the device, not from the host (a host copy
            # waits for the GPU to finish the previous pass)
            chunk = chunk.to(device, torch.float32)

        def load(chunk: torch.Tensor = chunk) -> torch.Tensor:
            return chunk.to(device, torch.float32, copy=True).contiguous(memory_format=layout)

        yield start, load


def replacement_sweep(
    target: nn.Module,
    source: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings = SweepSettings(),
    *,
    source_name: str = "source",
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The sweep table (see `sweep_table`), replacing tensors of `target` in place.

    `target` is left as it was: every tensor's bytes, train/eval flags, device and layout.
    """
    return replacement_sweep_tables(
        target, source, images, labels, index, settings, source_name=source_name, log=log
    )[0]


def replacement_sweep_tables(
    target: nn.Module,
    source: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings = SweepSettings(),
    *,
    source_name: str = "source",
    log: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`replacement_sweep`'s table and the Dice per patient (`patient_sweep_table`)."""
    return shared_sweep_tables(
        target, [(source_name, source)], images, labels, index, settings, log=log
    )[0]


def shared_sweep_tables(
    target: nn.Module,
    sources: Sequence[tuple[str, nn.Module]],
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings = SweepSettings(),
    *,
    log: Callable[[str], None] | None = None,
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Per (name, source): `replacement_sweep_tables`, all sources in one pass.

    The baseline pass of a batch serves every source, and a row whose source tensor is
    byte-identical to an earlier source's tensor for the same (layer, kind) takes that
    source's predictions instead of running again (the control sweeps: BN is initialised
    to constants, so for independently drawn parts rerandom's BN tensors are reinit's).
    The model state of such a row is the same bytes, so every row is what a sweep of
    that source alone gives.
    """
    layers, counts = _replacement_counts(target, sources, images, labels, index, settings, log)
    return [_tables(layers, source_counts) for source_counts in counts]


def _tables(layers: list[Layer], counts: DiceCounts) -> tuple[pd.DataFrame, pd.DataFrame]:
    return sweep_table(layers, counts.dice()), patient_sweep_table(layers, *counts.per_patient())


def _earlier_identical(replacement_sets: list[list[Replacement]]) -> list[list[int | None]]:
    """Per source and row: the first earlier source whose tensor for that row is the same
    bytes (same dtype, shape and values), or None."""
    out: list[list[int | None]] = []
    for number, replacements in enumerate(replacement_sets):
        row_sources: list[int | None] = []
        for row, replacement in enumerate(replacements):
            donor = replacement.donor
            row_sources.append(
                next(
                    (
                        earlier
                        for earlier in range(number)
                        if out[earlier][row] is None
                        and _same_bytes(replacement_sets[earlier][row].donor, donor)
                    ),
                    None,
                )
            )
        out.append(row_sources)
    return out


def _same_bytes(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Equal dtype, shape and bits (NaN equal to itself; -0.0 not equal to 0.0)."""
    if first.dtype != second.dtype or first.shape != second.shape:
        return False
    return bool(
        torch.equal(first.contiguous().view(torch.uint8), second.contiguous().view(torch.uint8))
    )


def _predict_replaced(
    target: nn.Module,
    replacement: Replacement,
    cache: PrefixCache,
    pairs: list[FoldedPair],
    batch: torch.Tensor,
    load: Loader,
    settings: SweepSettings,
) -> tuple[torch.Tensor, PrefixCache]:
    """One row's predictions of one batch, replaying the prefix where it can; the cache
    to use from then on (recorded afresh if a recorded tensor was edited in place)."""
    reuse = None
    if settings.prefix_reuse and len(replacement.holders) == 1:
        reuse = cache.overrides_for(replacement.module)
    with replacement.applied():
        predicted = None
        if reuse:
            keep = replacement.holders | set(reuse)
            overrides = {**fold_overrides(pairs, keep), **reuse}
            predicted = predict_batch(target, load(), overrides, settings)
        if predicted is None or not cache.intact():
            overrides = fold_overrides(pairs, replacement.holders)
            predicted = predict_batch(target, load(), overrides, settings)
    if not cache.intact():
        # A recorded tensor was edited in place (never seen; guarded): the row was
        # redone in full above, and the batch is recorded afresh here.
        _, calls = _record(target, batch, settings)
        cache = PrefixCache(calls)
    return predicted, cache


def _replacement_counts(
    target: nn.Module,
    sources: Sequence[tuple[str, nn.Module]],
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings,
    log: Callable[[str], None] | None,
) -> tuple[list[Layer], list[DiceCounts]]:
    check_inputs(images, labels, index)
    if not sources:
        raise PrrmseError("sweep sources", "none given")
    device = _device(settings)
    shape = (1, *images.shape[1:])
    layers = check_compatible(target, sources[0][1], shape, sources[0][0])
    for name, source in sources[1:]:
        check_compatible(target, source, shape, name)
    n_rows = 1 + sum(len(layer.kinds) for layer in layers)
    counts = [DiceCounts(labels, index, n_rows) for _ in sources]
    n_batches = -(-len(images) // settings.batch_size)
    if log is not None:
        log(f"sweep: {len(images)} images on {device.type}, {settings.numerics()}")
    began = time.perf_counter()
    with _evaluating(target, device, settings.channels_last):
        replacement_sets = [
            make_replacements(target, source, layers, device) for _, source in sources
        ]
        earlier = _earlier_identical(replacement_sets)
        shared = sum(row is not None for rows in earlier for row in rows)
        if log is not None and shared:
            log(
                f"sweep: {shared} of {len(sources) * (n_rows - 1)} replacements are the same "
                "bytes as an earlier source's for that tensor: their rows reuse its predictions"
            )
        pairs: list[FoldedPair] | None = None if settings.fold_bn else []
        for number, (start, load) in enumerate(_batches(images, settings, device), start=1):
            batch = load()
            predicted, calls = _record(target, batch, settings)
            for source_counts in counts:
                source_counts.add(0, start, predicted)
            cache = PrefixCache(calls)
            if pairs is None:
                pairs = fold_pairs(target, calls)
            for row in range(n_rows - 1):
                by_source: list[torch.Tensor] = []
                for source_number, replacements in enumerate(replacement_sets):
                    same = earlier[source_number][row]
                    if same is None:
                        predicted, cache = _predict_replaced(
                            target, replacements[row], cache, pairs, batch, load, settings
                        )
                    else:
                        predicted = by_source[same]
                    by_source.append(predicted)
                    counts[source_number].add(row + 1, start, predicted)
            if log is not None:
                log(
                    f"sweep: batch {number}/{n_batches} ({len(sources) * (n_rows - 1) - shared} "
                    f"replacements) done, {eta(number, n_batches, time.perf_counter() - began)}"
                )
    return layers, counts


def naive_sweep(
    target: nn.Module,
    source: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings = SweepSettings(),
    *,
    source_name: str = "source",
) -> pd.DataFrame:
    """The same table the plain way: per row deepcopy, load_state_dict, full evaluation.

    The reference for exactness and speed; honours batch_size, device, channels_last
    and bf16, and ignores prefix_reuse and fold_bn.
    """
    return naive_sweep_tables(
        target, source, images, labels, index, settings, source_name=source_name
    )[0]


def naive_sweep_tables(
    target: nn.Module,
    source: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings = SweepSettings(),
    *,
    source_name: str = "source",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`naive_sweep`'s table and the Dice per patient (`patient_sweep_table`)."""
    check_inputs(images, labels, index)
    device = _device(settings)
    layers = check_compatible(target, source, (1, *images.shape[1:]), source_name)
    items: list[tuple[Layer, str] | None] = [None]
    items += [(layer, kind) for layer in layers for kind in layer.kinds]
    counts = DiceCounts(labels, index, len(items))
    state = target.state_dict()
    for row, item in enumerate(items):
        model = copy.deepcopy(target)
        if item is not None:
            layer, kind = item
            changed = dict(state)
            changed[f"{layer.module_name}.{KIND_ATTR[kind]}"] = get_tensor(source, layer, kind)
            model.load_state_dict(changed)
        with _evaluating(model, device, settings.channels_last):
            for start, load in _batches(images, settings, device):
                counts.add(row, start, predict_batch(model, load(), {}, settings))
    return _tables(layers, counts)
