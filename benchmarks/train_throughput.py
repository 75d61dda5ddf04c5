"""Images/s of `prrmse train`'s loop against a bare loop, measured in one run.

The train loop includes batching from the prepared arrays, augmentation, the
loss, logging and the atomic resume state of model + optimizer (at its interval);
its validation pass is made negligible (a 4-slice validation split) because a
bare loop has none. The bare loop runs the same model in the same memory format
(channels-last, as `prrmse train` on every device; `--bare-layout contiguous` for the
default a user gets), batch size, optimizer and loss on tensors already in memory, so
the ratio is the loop's own cost, not the layout's gain. Each repeat runs the two back to
back, in alternating order; the ratio is the median of the repeats' ratios (the best img/s
of each is shown), so load from other processes hurts both alike.

Epochs, iterations and sizes default to the config's (the demo's): with far fewer steps the
one-off set-up (building the model, reading the split) is measured more than the loop.

    python benchmarks/train_throughput.py [--epochs 6 --iterations 40 --repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prrmse.core.config import load_config
from prrmse.core.memory import keep_freed_memory
from prrmse.core.naming import parse_model_name
from prrmse.core.provenance import cpu_model
from prrmse.models.registry import build_model
from prrmse.models.tasks import task_loss
from prrmse.training.settings import train_settings
from prrmse.training.train import make_optimizer, train_model

ROOT = Path(__file__).resolve().parents[1]


def synthetic_dataset(root: Path, n_train: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    n = n_train + 4
    np.save(root / "images.npy", rng.standard_normal((n, size, size), dtype=np.float32))
    np.save(root / "labels.npy", rng.integers(0, 4, (n, size, size), dtype=np.uint8))
    rows = [
        {
            "row": i,
            "patient": f"p{i // 4:03d}",
            "group": "",
            "phase": "ED",
            "slice": i % 4,
            "series": 0,
            "split": "train" if i < n_train else "val",
        }
        for i in range(n)
    ]
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


def bare_loop(
    config: dict,
    network: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    layout: torch.memory_format = torch.channels_last,
) -> float:
    cfg = config["train"]
    torch.manual_seed(1)
    net = config["networks"][network]
    model = build_model(net["arch"], **net.get("options", {})).to(memory_format=layout)
    optimizer = make_optimizer(model, train_settings(config))
    model.train()
    batch = cfg["batch_size"]
    order = torch.randint(0, len(images), (steps, batch))
    began = time.perf_counter()
    for idx in order:
        optimizer.zero_grad(set_to_none=True)
        loss = task_loss("seg", model(images[idx]), images[idx], labels[idx], cfg["dice_weight"])
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - began)


def train_loop(config: dict, network: str, data: Path, out: Path) -> float:
    cfg = config["train"]
    began = time.perf_counter()
    spec = parse_model_name(f"{network}-seg-bench-s1")
    settings, net = train_settings(config), config["networks"][network]
    train_model(spec, settings, net, data, out, log=lambda _: None)
    elapsed = time.perf_counter() - began
    return cfg["epochs"] * cfg["iterations_per_epoch"] * cfg["batch_size"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--epochs", type=int, help="default: the config's train.epochs")
    parser.add_argument(
        "--iterations", type=int, help="default: the config's train.iterations_per_epoch"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bare-layout",
        choices=("channels_last", "contiguous"),
        default="channels_last",
        help="the bare loop's memory format (default: prrmse train's)",
    )
    args = parser.parse_args()
    keep_freed_memory()  # as the `prrmse` entry point does, for both loops alike
    torch.set_num_threads(args.threads)
    config = copy.deepcopy(load_config(args.config))
    train = config["train"]
    train.update(
        epochs=args.epochs or train["epochs"],
        iterations_per_epoch=args.iterations or train["iterations_per_epoch"],
        device="cpu",
    )
    for network in config["networks"].values():  # a start regime costs nothing per step
        network["start"] = {"encoder": "independent", "rest": "independent"}
    size = config["prepare"]["shape"][0]
    print(
        f"CPU: {cpu_model()} ({platform.machine()}), torch threads {torch.get_num_threads()}, "
        f"input {size}x{size}, batch {train['batch_size']}, "
        f"{train['epochs']} epochs of {train['iterations_per_epoch']} iterations, "
        f"bare loop {args.bare_layout}"
    )
    layout = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}[
        args.bare_layout
    ]
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_dataset(Path(tmp), 400, size)
        images = torch.from_numpy(np.load(data / "images.npy"))[:, None]
        labels = torch.from_numpy(np.load(data / "labels.npy").astype(np.int64))
        steps = train["epochs"] * train["iterations_per_epoch"]
        for network in ("unet", "pspnet"):
            bare, ours = [], []
            for repeat in range(args.repeats):
                # back to back, the order alternating, so drift in the machine's speed (2 shared
                # cores vary by +-10 % from one run to the next) falls on both alike
                for run in ("bare", "ours") if repeat % 2 == 0 else ("ours", "bare"):
                    if run == "bare":
                        bare.append(bare_loop(config, network, images, labels, steps, layout))
                    else:
                        out = Path(tmp) / f"{network}-{repeat}"
                        ours.append(train_loop(config, network, data, out))
            pairs = [o / b for o, b in zip(ours, bare, strict=True)]
            print(f"{network:7s} pair ratios " + " ".join(f"{r:.3f}" for r in pairs))
            print(
                f"{network:7s} bare loop {max(bare):7.1f} img/s   prrmse train {max(ours):7.1f} img/s   "
                f"ratio {statistics.median(pairs):.3f} (target >= 0.95)"
            )


if __name__ == "__main__":
    main()
