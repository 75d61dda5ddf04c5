"""GPU benchmark: the paper-scale sweep and training throughput on CUDA, as ratios measured
in one run, with peak GPU memory.

Sweep: a width-64 UNet (the paper's; every replaceable tensor: 110 in our UNet, the paper
counts 108), 1000 validation images at 256x256, a random source of the same network. Variants: the naive sweep (deepcopy,
load_state_dict, full evaluation per row: the baseline), prefix reuse at the default
(exact) numerics, and prefix reuse with bf16 autocast and channels_last (opt-in: its
largest Dice difference from the naive rows is printed). Goal: under 20 s (one H100
before: naive 53 s, compute floor about 7 s).

Training: images/s of a bare loop (model, optimizer, loss on tensors already on the GPU)
in fp32 eager and in bf16 autocast + channels_last, and of `prrmse train`'s loop at the
same precision, for the UNet (width 64) and the PSPNet-ResNet18 at 256x256. Goal: prrmse
train at >= 0.9 of the bare loop.

    python benchmarks/gpu.py            # on a machine with CUDA
    python benchmarks/gpu.py --smoke    # the same code paths at toy sizes on the CPU

Without CUDA (and without --smoke) it says so and exits 0: nothing is measured.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep import calibrated_model, phantom_slices, table_dice  # noqa: E402
from train_throughput import synthetic_dataset  # noqa: E402

from prrmse.analysis.sweep.replacement import SweepSettings, naive_sweep, replacement_sweep  # noqa: E402
from prrmse.core.config import load_config  # noqa: E402
from prrmse.core.naming import parse_model_name  # noqa: E402
from prrmse.models.registry import build_model  # noqa: E402
from prrmse.models.tasks import task_loss  # noqa: E402
from prrmse.training.settings import train_settings  # noqa: E402
from prrmse.training.train import make_optimizer, train_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EPOCH_RATE = re.compile(r"\(([0-9.]+) img/s, ")


@dataclass(frozen=True)
class Sizes:
    """Paper scale on a GPU; toy scale for --smoke on a CPU."""

    n_images: int
    image_size: int
    unet_width: int
    steps: int
    batch_size: int


PAPER = Sizes(n_images=1000, image_size=256, unet_width=64, steps=50, batch_size=16)
SMOKE = Sizes(n_images=8, image_size=32, unet_width=4, steps=2, batch_size=4)


def measured(device: torch.device, run: Callable[[], object]) -> tuple[float, float, object]:
    """Seconds and peak memory (GiB; 0 off CUDA) of `run()`, and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    result = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return seconds, peak, result


def bench_sweep(device: torch.device, sizes: Sizes) -> None:
    images, labels, index = phantom_slices(sizes.n_images, sizes.image_size)
    target = calibrated_model("unet", 1, images, width=sizes.unet_width).to(device)
    source = calibrated_model("unet", 2, images, width=sizes.unet_width).to(device)
    exact = SweepSettings(device=device.type)
    fast = SweepSettings(device=device.type, channels_last=True, bf16=device.type == "cuda")
    variants = {
        "naive (baseline)": lambda: naive_sweep(target, source, images, labels, index, exact),
        "prefix reuse, exact": lambda: replacement_sweep(
            target, source, images, labels, index, exact
        ),
        "prefix reuse, bf16 + channels_last": lambda: replacement_sweep(
            target, source, images, labels, index, fast
        ),
    }
    print(
        f"\nsweep: UNet width {sizes.unet_width}, {sizes.n_images} images "
        f"{sizes.image_size}x{sizes.image_size}",
        flush=True,
    )
    base_seconds, base = 0.0, np.zeros(0)
    for name, run in variants.items():  # each printed as it ends: a lease may end first
        seconds, peak, table = measured(device, run)
        dice = table_dice(table)
        if not base_seconds:
            base_seconds, base = seconds, dice
            print(f"  {len(base) - 1} replacements")
        gap = np.abs(dice - base)
        worst = float(np.nanmax(gap)) if np.isfinite(gap).any() else 0.0
        print(
            f"  {name:36s} {seconds:8.1f} s  {base_seconds / seconds:5.2f}x naive  "
            f"peak {peak:5.1f} GiB  max |Dice - naive| {worst:.1e}",
            flush=True,
        )
    print("  goal: under 20 s (one H100 before: naive 53 s, compute floor ~7 s)")


def bare_images_per_s(
    config: dict, network: str, device: torch.device, sizes: Sizes, fast: bool
) -> tuple[float, float]:
    """Images/s and peak GiB of a bare training loop: fp32 eager, or bf16 + channels_last."""
    torch.manual_seed(1)
    net = config["networks"][network]
    model = build_model(net["arch"], **net.get("options", {})).to(device)
    shape = (sizes.batch_size, 1, sizes.image_size, sizes.image_size)
    images = torch.randn(shape, device=device)
    labels = torch.randint(0, 4, (shape[0], *shape[2:]), device=device)
    if fast:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, train_settings(config))
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast)

    def loop() -> None:
        for _ in range(sizes.steps):
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = task_loss("seg", model(images), images, labels, 1.0)
            loss.backward()
            optimizer.step()

    loop()  # warm-up: kernels chosen, memory pools grown
    seconds, peak, _ = measured(device, loop)
    return sizes.steps * sizes.batch_size / seconds, peak


def prrmse_train_rates(config: dict, network: str, data: Path, out: Path) -> tuple[float, float]:
    """Images/s of `prrmse train`'s loop in its last epoch (as its log reports it: the first
    epoch pays kernel selection, as the bare loop's warm-up does) and over the whole run."""
    lines: list[str] = []
    cfg = config["train"]
    spec = parse_model_name(f"{network}-seg-bench-s1")
    began = time.perf_counter()
    train_model(
        spec, train_settings(config), config["networks"][network], data, out, log=lines.append
    )
    seconds = time.perf_counter() - began
    epoch_rates = [float(m.group(1)) for m in map(EPOCH_RATE.search, lines) if m]
    images = cfg["epochs"] * cfg["iterations_per_epoch"] * cfg["batch_size"]
    return epoch_rates[-1], images / seconds


def bench_training(config: dict, device: torch.device, sizes: Sizes) -> None:
    print(f"\ntraining at {sizes.image_size}x{sizes.image_size}, batch {sizes.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_dataset(Path(tmp), 4 * sizes.batch_size, sizes.image_size)
        for network in ("unet", "pspnet"):
            eager, eager_peak = bare_images_per_s(config, network, device, sizes, fast=False)
            fast, fast_peak = bare_images_per_s(config, network, device, sizes, fast=True)
            ours = {}
            for precision in ("fp32", "bf16") if device.type == "cuda" else ("fp32",):
                run = copy.deepcopy(config)
                run["train"]["precision"] = precision
                ours[precision] = prrmse_train_rates(
                    run, network, data, Path(tmp) / f"{network}-{precision}"
                )
            print(
                f"  {network:7s} bare fp32 eager {eager:8.1f} img/s (peak {eager_peak:5.1f} GiB)  "
                f"bare bf16 + channels_last {fast:8.1f} img/s = {fast / eager:5.2f}x "
                f"(peak {fast_peak:5.1f} GiB)"
            )
            for precision, (loop_rate, run_rate) in ours.items():
                bare = eager if precision == "fp32" else fast
                print(
                    f"          prrmse train {precision} last epoch {loop_rate:8.1f} img/s = "
                    f"{loop_rate / bare:5.2f} of the bare loop (goal >= 0.9); whole run, "
                    f"set-up, validation and writes included, {run_rate:8.1f} img/s"
                )


def bench_config(sizes: Sizes, device: torch.device) -> dict:
    config = copy.deepcopy(load_config(ROOT / "config" / "paper.yaml"))
    config["networks"]["unet"]["options"]["width"] = sizes.unet_width
    for network in config["networks"].values():
        network["start"] = {"encoder": "independent"}  # no weights file needed
    config["train"].update(
        device=device.type,
        epochs=3,  # the last epoch's rate is the loop's, past kernel selection
        iterations_per_epoch=sizes.steps,
        batch_size=sizes.batch_size,
        selection="last",
        val_every=0,
    )
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="toy sizes on the CPU: checks the code paths run"
    )
    parser.add_argument(
        "--images",
        type=int,
        help="validation images of the sweep (paper scale: 1000; its naive fp32 sweep alone took "
        "~4 min on an H200, so a short lease may take fewer: 200 took 48 s)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        device, sizes = torch.device("cpu"), SMOKE
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda"), PAPER
    else:
        print("gpu benchmark: no CUDA device here; nothing measured (--smoke runs it on the CPU)")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke sizes)"
    if args.images:
        sizes = dataclasses.replace(sizes, n_images=args.images)
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    # training first: it takes seconds, the paper-scale sweep minutes
    bench_training(bench_config(sizes, device), device, sizes)
    bench_sweep(device, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
