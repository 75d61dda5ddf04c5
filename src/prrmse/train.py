"""Training of one model of the study: seeded, resumable, checkpointed every epoch.

Every random draw of an epoch (shuffling, augmentation) comes from a generator
seeded with (seed, epoch), so a run resumed from its last epoch checkpoint ends
with the same bytes as a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from prrmse import provenance
from prrmse.checkpoint import (
    load_tensors,
    optimizer_tensors,
    prefixed,
    restore_optimizer,
    save_tensors,
)
from prrmse.data.processed import ProcessedDataset, load_processed
from prrmse.errors import PrrmseError
from prrmse.evaluate import per_patient_dice, validate, write_patients_csv
from prrmse.io import atomic_path, write_json_atomic, write_text_atomic
from prrmse.models import build_model
from prrmse.naming import ModelSpec
from prrmse.tasks import task_loss

# Called on the fresh model before training (reuse: load source tensors, freeze some).
ModelSetup = Callable[[torch.nn.Module], dict[str, Any]]
OUTPUTS = ("model.safetensors", "history.csv", "metrics.json")
# Every model also writes the best model's validation Dice per patient and class (for
# confidence intervals over patients); an auto-encoder's table has no rows.
PATIENTS_CSV = "patients.csv"


@dataclass(frozen=True)
class TrainData:
    images: torch.Tensor  # (N, 1, H, W) float32
    labels: torch.Tensor  # (N, H, W) int64
    val_images: torch.Tensor
    val_labels: np.ndarray
    val_index: Any
    train_patients: list[str]


def initial_model(network: dict[str, Any], seed: int) -> torch.nn.Module:
    """The model a run of `network` (config networks entry: arch, options) with `seed` starts from.

    Seeds torch's global generator with `seed` and builds the network, exactly as
    `train_model` does before any reuse setup: the same seed gives the same tensors.
    The global generator is left seeded and advanced (wrap a call in
    `torch.random.fork_rng` to keep the caller's state).
    """
    torch.manual_seed(seed)
    return build_model(network["arch"], **network.get("options", {}))


def select_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise PrrmseError("config train.device", "cuda requested but no CUDA device is available")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def draw_subset(patients: list[str], n_train: int | None, seed: int, source: Path) -> list[str]:
    """`n_train` patients drawn with `seed`; smaller subsets are nested in larger ones."""
    if n_train is None:
        return patients
    if n_train > len(patients):
        raise PrrmseError(
            source, f"n{n_train} asks for more than the {len(patients)} training patients"
        )
    order = np.random.default_rng(seed).permutation(len(patients))
    return sorted(patients[i] for i in order[:n_train])


def load_train_data(dataset: ProcessedDataset, spec: ModelSpec, subset_seed: int) -> TrainData:
    patients = draw_subset(dataset.patients("train"), spec.n_train, subset_seed, dataset.root)
    rows, val_rows = dataset.rows("train", patients), dataset.rows("val")
    if len(val_rows) == 0:
        raise PrrmseError(dataset.root, "validation split is empty")
    return TrainData(
        images=torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None],
        labels=torch.from_numpy(dataset.labels[rows].astype(np.int64)),
        val_images=torch.from_numpy(np.ascontiguousarray(dataset.images[val_rows]))[:, None],
        val_labels=np.asarray(dataset.labels[val_rows]),
        val_index=dataset.index.iloc[val_rows].reset_index(drop=True),
        train_patients=patients,
    )


def make_optimizer(model: torch.nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
        )
    optimizer = torch.optim.AdamW if cfg["optimizer"] == "adamw" else torch.optim.Adam
    return optimizer(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def learning_rate(cfg: dict[str, Any], epoch: int) -> float:
    progress = epoch / cfg["epochs"]
    if cfg["schedule"] == "cosine":
        return cfg["lr"] * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg["schedule"] == "poly":
        return cfg["lr"] * (1.0 - progress) ** 0.9
    return cfg["lr"]


def augment(images: torch.Tensor, labels: torch.Tensor, cfg: dict[str, Any], gen: torch.Generator):
    n = len(images)
    if cfg["flip"]:
        flips = torch.rand(n, 2, generator=gen) < 0.5
        for i in range(n):
            dims = [d for d in range(2) if flips[i, d]]
            if dims:
                images[i] = images[i].flip([d + 1 for d in dims])
                labels[i] = labels[i].flip(dims)
    if cfg["shift_px"]:
        shifts = torch.randint(-cfg["shift_px"], cfg["shift_px"] + 1, (n, 2), generator=gen)
        for i in range(n):
            offset = (int(shifts[i, 0]), int(shifts[i, 1]))
            images[i] = images[i].roll(offset, dims=(1, 2))
            labels[i] = labels[i].roll(offset, dims=(0, 1))
    if cfg["intensity"]:
        scale = 1.0 + cfg["intensity"] * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        offset = cfg["intensity"] * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        images = images * scale + offset
    return images, labels


def epoch_order(n: int, steps: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Indices for `steps` batches: successive permutations, each batch full."""
    need = steps * batch
    chunks, have = [], 0
    while have < need:
        perm = torch.randperm(n, generator=gen)
        usable = (n // batch) * batch
        chunks.append(perm[:usable])
        have += usable
    return torch.cat(chunks)[:need].view(steps, batch)


def run_fingerprint(spec: ModelSpec, sections: dict[str, Any], index_sha: str) -> str:
    blob = json.dumps({"model": spec.name, "config": sections, "data": index_sha}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _history_csv(history: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _epoch_row(epoch: int, lr: float, loss: float, metrics: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"epoch": epoch, "lr": f"{lr:.6g}", "train_loss": f"{loss:.6f}"}
    if "dice" in metrics:
        row.update({f"val_dice_{c}": f"{d:.6f}" for c, d in enumerate(metrics["dice"])})
        row["val_dice_mean"] = f"{metrics['dice_mean']:.6f}"
    else:
        row["val_mse"] = f"{metrics['mse']:.6f}"
    return row


def train_model(
    spec: ModelSpec,
    config: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    *,
    threads: int | None = None,
    setup: ModelSetup | None = None,
    extra_record: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train `spec` on the prepared dataset in `data_dir`; write OUTPUTS into `out_dir`."""
    cfg = config["train"]
    if spec.network not in config["networks"]:
        known = ", ".join(sorted(config["networks"]))
        raise PrrmseError(
            f"model {spec.name}", f"unknown network '{spec.network}' (config networks: {known})"
        )
    network = config["networks"][spec.network]
    if threads:
        torch.set_num_threads(threads)
    device = select_device(cfg["device"])
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    dataset = load_processed(data_dir)
    data = load_train_data(dataset, spec, cfg["subset_seed"])
    batch = cfg["batch_size"]
    if batch > len(data.images):
        raise PrrmseError(
            data_dir,
            f"batch size {batch} is larger than the {len(data.images)} training slices of {spec.name}",
        )
    steps = cfg["iterations_per_epoch"] or len(data.images) // batch

    model = initial_model(network, spec.seed)
    setup_record = setup(model) if setup else {}
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)

    sections = {"train": cfg, "network": network}
    index_sha = hashlib.sha256((Path(data_dir) / "index.csv").read_bytes()).hexdigest()
    fingerprint = run_fingerprint(spec, {**sections, "setup": setup_record}, index_sha)
    state_path = out_dir / "state.safetensors"
    start, history, best_score, best_epoch = 0, [], -math.inf, -1
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if state_path.exists():
        tensors, record = load_tensors(state_path)
        if record.get("fingerprint") == fingerprint:
            model.load_state_dict(prefixed(tensors, "model"))
            best = prefixed(tensors, "best") or {
                k: v.clone() for k, v in model.state_dict().items()
            }
            restore_optimizer(optimizer, tensors, record["param_groups"])
            start, history = record["epoch"], record["history"]
            best_score, best_epoch = record["best_score"], record["best_epoch"]
            log(f"{spec.name}: resuming after epoch {start} from {state_path}")
        else:
            log(f"{spec.name}: {state_path} belongs to another configuration; starting afresh")

    show_bar = sys.stderr.isatty()
    for epoch in range(start, cfg["epochs"]):
        began = time.perf_counter()
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch)
        torch.manual_seed(spec.seed * 1_000_003 + epoch)
        lr = learning_rate(cfg, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        total = 0.0
        order = epoch_order(len(data.images), steps, batch, gen)
        bar = tqdm(order, desc=f"{spec.name} epoch {epoch + 1}", leave=False, disable=not show_bar)
        for step, idx in enumerate(bar):
            images, labels = augment(
                data.images[idx].clone(), data.labels[idx].clone(), cfg["augment"], gen
            )
            images, labels = images.to(device), labels.to(device)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                output = model(images)
            loss = task_loss(spec.task, output, images, labels, cfg["dice_weight"])
            if not torch.isfinite(loss):
                raise PrrmseError(
                    out_dir,
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; no model written",
                )
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        train_seconds = time.perf_counter() - began
        metrics = validate(
            model,
            spec.task,
            data.val_images,
            data.val_labels,
            data.val_index,
            cfg["eval_batch_size"],
            device,
        )
        history.append(_epoch_row(epoch + 1, lr, total / steps, metrics))
        improved = metrics["score"] > best_score
        if improved:
            best_score, best_epoch = metrics["score"], epoch + 1
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        opt_tensors, groups = optimizer_tensors(optimizer)
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        if not improved:  # when this epoch is the best, the model tensors are the best ones
            state.update({f"best.{k}": v for k, v in best.items()})
        state.update(opt_tensors)
        save_tensors(
            state_path,
            state,
            {
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "history": history,
                "param_groups": groups,
                "best_score": best_score,
                "best_epoch": best_epoch,
            },
        )
        summary = " ".join(f"{k} {v}" for k, v in history[-1].items() if k != "epoch")
        log(
            f"{spec.name} epoch {epoch + 1}/{cfg['epochs']} {summary} "
            f"({steps * batch / train_seconds:.1f} img/s, {time.perf_counter() - began:.1f} s)"
        )

    # the final checkpoint is the best epoch's model, re-validated so its metrics are exact
    model.load_state_dict(best)
    final = validate(
        model,
        spec.task,
        data.val_images,
        data.val_labels,
        data.val_index,
        cfg["eval_batch_size"],
        device,
    )
    record = {
        "kind": "model",
        "name": spec.name,
        "network": spec.network,
        "arch": network["arch"],
        "options": network.get("options", {}),
        "task": spec.task,
        "dataset": spec.dataset,
        "n_train": spec.n_train,
        "seed": spec.seed,
        "best_epoch": best_epoch,
        "metrics": {k: v for k, v in final.items() if k != "score"},
        "config": {"train": cfg, "network": network},
        "data": {
            "dir": str(data_dir),
            "index_sha256": index_sha,
            "train_patients": data.train_patients,
        },
        "setup": setup_record,
        **(extra_record or {}),
        "provenance": provenance.stamp(device=device_name(device), threads=torch.get_num_threads()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # every model writes the file, so the workflow can declare it; an auto-encoder's is empty
    patients = pd.DataFrame(columns=["patient", "class", "dice"])
    if spec.task == "seg":
        patients = per_patient_dice(
            model, data.val_images, data.val_labels, data.val_index, cfg["eval_batch_size"], device
        )
    patients_record = provenance.stamp(
        table="validation Dice per patient and class of the best model"
        + ("" if spec.task == "seg" else " (auto-encoder: no Dice, no rows)"),
        model=spec.name,
        best_epoch=best_epoch,
        data={"dir": str(data_dir), "index_sha256": index_sha},
        device=device_name(device),
        threads=torch.get_num_threads(),
    )
    # All four are written under temp names and renamed together (the model last), so a
    # failed write never leaves metrics that look complete beside a missing model.
    with contextlib.ExitStack() as outputs:
        model_temp, metrics_temp, history_temp, patients_temp = (
            outputs.enter_context(atomic_path(out_dir / name))
            for name in ("model.safetensors", "metrics.json", "history.csv", PATIENTS_CSV)
        )
        write_patients_csv(patients_temp, patients, patients_record)
        write_text_atomic(history_temp, _history_csv(history))
        metrics = {"name": spec.name, "best_epoch": best_epoch, **record["metrics"]}
        write_json_atomic(metrics_temp, metrics)
        save_tensors(model_temp, model.state_dict(), record)
    state_path.unlink(missing_ok=True)
    return record


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({provenance.cpu_model()})"
