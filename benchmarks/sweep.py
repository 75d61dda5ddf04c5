"""Replacement sweep speed: prefix reuse and fast settings against the naive sweep, one run.

For UNet and PSPNet (random weights, BN statistics calibrated on the data) on N
validation slices it times, batch by batch and interleaved in rotating order (so a shared
machine's load hits every variant alike):
  - naive: per row deepcopy + load_state_dict + `evaluate.predict_labels` + Dice,
    what a user writes (default memory format),
  - prefix: `replacement_sweep` at the naive numerics (its rows must be bit-identical),
  - best: prefix reuse with the fast settings (default: fold_bn + channels_last),
  - best + bf16: the same in bfloat16 autocast, where the CPU has native bf16 (--bf16),
  - full passes: the sweep's own evaluation, extrapolated to R + 1 passes,
and prints the ideal of prefix reuse, (R+1) full passes over one full pass plus each
replacement's suffix, from conv/linear FLOPs in forward order and from measured seconds,
the achieved ratios, the fraction of the ideal, and the largest Dice difference of each
fast setting from naive. glibc is told to keep freed memory (see `keep_freed_memory`).

    .venv/bin/python benchmarks/sweep.py [--size 64 --n-images 200 --unet-width 16]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.analysis.sweep.prefix import record_calls
from prrmse.analysis.sweep.replacement import SweepSettings, predict_batch, replacement_sweep
from prrmse.core.device import cpu_has_native_bf16
from prrmse.core.memory import keep_freed_memory
from prrmse.core.provenance import cpu_model
from prrmse.models.layers import KIND_ATTR, get_tensor, index_layers
from prrmse.models.registry import build_model
from prrmse.training.evaluate import predict_labels
from prrmse.training.metrics import dice_per_class


def phantom_slices(
    n_images: int, size: int, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, pd.DataFrame]:
    """Discs (LV), rings (myocardium) and crescents (RV) in noise, 10 slices per patient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels, rows = [], [], []
    for i in range(n_images):
        cy, cx = size / 2 + rng.uniform(-size / 10, size / 10, 2)
        r = rng.uniform(size / 9, size / 6)
        dist = np.hypot(yy - cy, xx - cx)
        label = np.zeros((size, size), np.uint8)
        label[(np.hypot(yy - cy, xx - cx - r * 1.6) < r * 1.2) & (dist > r * 1.4)] = 1
        label[dist < r * 1.4] = 2
        label[dist < r] = 3
        image = np.choose(label, [0.2, 0.5, 0.1, 0.9]) + rng.normal(0, 0.1, (size, size))
        images.append(((image - image.mean()) / image.std()).astype(np.float32))
        labels.append(label)
        rows.append({"patient": f"p{i // 10:03d}", "phase": "ED", "series": 0, "slice": i % 10})
    return torch.from_numpy(np.stack(images))[:, None], np.stack(labels), pd.DataFrame(rows)


def calibrated_model(name: str, seed: int, images: torch.Tensor, **options: object) -> nn.Module:
    """Random weights; BN running statistics measured on `images`; head spread over classes."""
    torch.manual_seed(seed)
    model = build_model(name, **options)
    batch = images[: min(32, len(images))]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.momentum = None  # cumulative average: the statistics of the calibration batch
        model.train()
        model(batch)
        for bn in bns:
            bn.momentum = 0.1
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
        model.eval()
        # Standardise each class's logit, so every class wins somewhere.
        head = [layer for layer in index_layers(model, (1, *images.shape[1:])) if layer.head][0]
        conv = model.get_submodule(head.module_name)
        logits = model(batch).transpose(0, 1).flatten(1)
        mean, std = logits.mean(1), logits.std(1) + 1e-6
        conv.weight.div_(std.reshape(-1, 1, 1, 1))
        conv.bias.sub_(mean).div_(std)
    return model


def flop_ideal(model: nn.Module, images: torch.Tensor) -> tuple[float, int]:
    """(R+1) F / (F + sum of suffix FLOPs) over the R replaceable tensors, and R."""
    flops: list[tuple[int, float]] = []  # (enter, FLOPs) per conv/linear call

    def run() -> object:
        with torch.no_grad():
            return model(images[:1])

    _, calls = record_calls(model, run)
    first_enter: dict[int, int] = {}
    for call in calls:
        first_enter.setdefault(id(call.module), call.enter)
        module, out = call.module, call.outputs[0] if call.outputs else None
        if isinstance(module, nn.Conv2d) and out is not None:
            per_output = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            flops.append((call.enter, 2.0 * out.numel() * per_output))
        elif isinstance(module, nn.Linear) and out is not None:
            flops.append((call.enter, 2.0 * out.numel() * module.in_features))
    total = sum(f for _, f in flops)
    suffixes = []
    for layer in index_layers(model, (1, *images.shape[1:])):
        start = first_enter[id(model.get_submodule(layer.module_name))]
        suffix = sum(f for enter, f in flops if enter >= start)
        suffixes += [suffix] * len(layer.kinds)
    replacements = len(suffixes)
    return (replacements + 1) * total / (total + sum(suffixes)), replacements


def time_ideal(model: nn.Module, images: torch.Tensor, repeats: int = 5) -> float:
    """The same ideal with measured seconds: each suffix timed from its layer's first call.

    Unlike FLOPs it counts the memory-bound work (BN, ReLU, pooling, upsampling, concat,
    arg-max) where it happens; median over `repeats` hooked passes of the first batch.
    """
    batch, settings = images[: SweepSettings().batch_size], SweepSettings()
    layers = index_layers(model, (1, *images.shape[1:]))
    starts: dict[int, float] = {}

    def started(module: nn.Module, _args: object) -> None:
        starts.setdefault(id(module), time.perf_counter())

    handles = [module.register_forward_pre_hook(started) for module in model.modules()]
    ideals = []
    try:
        for _ in range(repeats):
            starts.clear()
            begin = time.perf_counter()
            predict_batch(model, batch, {}, settings)
            end = time.perf_counter()
            suffixes = [
                end - starts[id(model.get_submodule(layer.module_name))]
                for layer in layers
                for _ in layer.kinds
            ]
            total = end - begin
            ideals.append((len(suffixes) + 1) * total / (total + sum(suffixes)))
    finally:
        for handle in handles:
            handle.remove()
    return float(np.median(ideals))


def user_naive_sweep(
    target: nn.Module,
    source: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
) -> np.ndarray:
    """(R+1, classes) Dice the way a user writes it: deepcopy, load_state_dict, evaluate."""
    layers = index_layers(target, (1, *images.shape[1:]))
    state = target.state_dict()
    dice = []
    for item in [None, *((layer, kind) for layer in layers for kind in layer.kinds)]:
        model = copy.deepcopy(target)
        if item is not None:
            layer, kind = item
            changed = dict(state)
            changed[f"{layer.module_name}.{KIND_ATTR[kind]}"] = get_tensor(source, layer, kind)
            model.load_state_dict(changed)
        predicted = predict_labels(model, images, SweepSettings().batch_size, torch.device("cpu"))
        dice.append(dice_per_class(predicted, labels, index))
    return np.array(dice)


def table_dice(table: pd.DataFrame) -> np.ndarray:
    """(R+1, classes) Dice of a sweep table: the baseline, then the replaced rows in order."""
    rows = table[table["status"].isin(["baseline", "replaced"])]
    return rows["dice"].to_numpy().reshape(-1, 4)


PASSES = 8  # full passes timed per batch, extrapolated to the R + 1 of a full-pass sweep


def full_passes(model: nn.Module, images: torch.Tensor) -> None:
    """`PASSES` evaluations of `images` as the sweep evaluates (unrecorded, in place)."""
    settings = SweepSettings()
    for _ in range(PASSES):
        for first in range(0, len(images), settings.batch_size):
            predict_batch(model, images[first : first + settings.batch_size], {}, settings)


def timed(run: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and process-CPU seconds of `run()`, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def bench(
    name: str,
    options: dict,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    fast: list[SweepSettings],
) -> None:
    """Time the variants batch by batch, interleaved in rotating order.

    The machine may be shared: interleaving gives every variant the same share of any
    load, so ratios hold where absolute times do not. Each batch of images is swept as a
    validation set of its own (the cost of a sweep is linear in the images).
    """
    target = calibrated_model(name, 1, images, **options)
    source = calibrated_model(name, 2, images, **options)
    ideal, replacements = flop_ideal(target, images)
    seconds_ideal = time_ideal(target, images)
    variants: dict[str, Callable[..., object]] = {
        "naive": lambda *part: user_naive_sweep(target, source, *part),
        "prefix": lambda *part: table_dice(replacement_sweep(target, source, *part)),
        "pass": lambda *part: full_passes(target, part[0]),
    }
    for settings in fast:
        variants[_describe(settings)] = lambda *part, settings=settings: table_dice(
            replacement_sweep(target, source, *part, settings)
        )
    wall = dict.fromkeys(variants, 0.0)
    cpu = dict.fromkeys(variants, 0.0)
    exact = True
    worst = {_describe(settings): 0.0 for settings in fast}
    size = SweepSettings().batch_size
    for number, first in enumerate(range(0, len(images), size)):
        rows = slice(first, first + size)
        part = (images[rows], labels[rows], index.iloc[rows].reset_index(drop=True))
        turn = number % len(variants)
        keys = list(variants)[turn:] + list(variants)[:turn]
        dice = {}
        for key in keys:
            seconds, cpu_seconds, dice[key] = timed(lambda key=key, part=part: variants[key](*part))
            wall[key] += seconds
            cpu[key] += cpu_seconds
        exact &= np.array_equal(dice["prefix"], dice["naive"], equal_nan=True)
        for key in worst:
            gap = np.abs(dice[key] - dice["naive"])
            worst[key] = max(worst[key], float(np.nanmax(gap)) if np.isfinite(gap).any() else 0.0)
    scale = (replacements + 1) / PASSES
    full = {key: scale * value["pass"] for key, value in (("wall", wall), ("cpu", cpu))}

    print(f"\n{name} {options}: R = {replacements} replacements + baseline")
    print(
        f"  ideal of prefix reuse: FLOPs {ideal:5.2f}x; measured seconds {seconds_ideal:5.2f}x "
        "(memory-bound work counted)"
    )
    print(
        f"  naive: deepcopy + load + evaluate  {wall['naive']:7.1f} s (cpu {cpu['naive']:7.1f} s)"
    )
    print(f"  (R+1) full passes, extrapolated    {full['wall']:7.1f} s (cpu {full['cpu']:7.1f} s)")
    labels_of = {"prefix": "prefix reuse, naive numerics"}
    labels_of.update({key: f"prefix + {key}" for key in worst})
    for key, label in labels_of.items():
        print(
            f"  {label:37s}{wall[key]:7.1f} s (cpu {cpu[key]:7.1f} s): "
            f"{wall['naive'] / wall[key]:5.2f}x naive (cpu {cpu['naive'] / cpu[key]:5.2f}x), "
            f"{full['wall'] / wall[key]:5.2f}x full passes = "
            f"{100 * full['wall'] / wall[key] / ideal:4.0f} % of the FLOP ideal "
            f"(cpu {100 * full['cpu'] / cpu[key] / ideal:4.0f} %), "
            f"{100 * full['wall'] / wall[key] / seconds_ideal:4.0f} % of the seconds ideal"
        )
    print(f"  prefix rows bit-identical to naive: {exact}")
    for key, gap in worst.items():
        print(f"  prefix + {key}: max |Dice - naive| = {gap:.2e}")


def _describe(settings: SweepSettings) -> str:
    flags = [key for key in ("fold_bn", "channels_last", "bf16") if getattr(settings, key)]
    return "+".join(flags) or "defaults"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--unet-width", type=int, default=16)
    parser.add_argument("--networks", default="unet,pspnet")
    parser.add_argument(
        "--best", default="fold_bn,channels_last", help="fast settings to time, comma-separated"
    )
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="also time --best + bf16 (auto: where the CPU has native bf16)",
    )
    parser.add_argument(
        "--default-malloc", action="store_true", help="leave glibc's malloc as it is (slower)"
    )
    args = parser.parse_args()
    malloc = "glibc default" if args.default_malloc else "freed memory kept"
    if not args.default_malloc and not keep_freed_memory():
        malloc = "default (could not tune)"
    images, labels, index = phantom_slices(args.n_images, args.size)
    best = SweepSettings(**{flag: True for flag in args.best.split(",") if flag})
    fast = [best]
    native = cpu_has_native_bf16()
    if args.bf16 == "on" or (args.bf16 == "auto" and native):
        fast.append(dataclasses.replace(best, bf16=True))
    print(
        f"CPU: {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"native bf16: {native}; {args.n_images} images {args.size}x{args.size}, "
        f"batch {best.batch_size}; malloc: {malloc}"
    )
    networks = {"unet": {"width": args.unet_width}, "pspnet": {}}
    for name in args.networks.split(","):
        bench(name, networks[name], images, labels, index, fast)


if __name__ == "__main__":
    main()
