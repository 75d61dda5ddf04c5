"""Training of one model of the study: seeded, resumable, checkpointed every epoch.

Every random draw of an epoch (shuffling, augmentation) comes from a generator
seeded with (seed, epoch), so a run resumed from its last epoch checkpoint ends
with the same bytes as a run that was never interrupted. The model's start (its
initial tensors) is a separate, recorded choice: `prrmse.models.start`.

Which epoch's model is reported (`train.selection`) never looks at the validation
patients it is reported on: `last` (default) takes the model after the fixed number of
epochs; `best_on_holdout` carves `train.holdout.n_patients` selection patients out of
the model's own training patients (recorded), trains on the others and keeps the epoch
of the best score on the selection patients. The validation (reporting) set is scored
every `train.val_every` epochs for history.csv's learning curve only.
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

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, write_json_atomic, write_text_atomic
from prrmse.core.naming import ModelSpec
from prrmse.core.precision import autocast, grad_scaler, resolve_precision
from prrmse.core.progress import eta
from prrmse.data.processed import ProcessedDataset, load_processed
from prrmse.models.checkpoint import (
    load_tensors,
    optimizer_tensors,
    prefixed,
    restore_optimizer,
    save_tensors,
)
from prrmse.models.start import Start, describe, legacy_start, resolve_start
from prrmse.models.start_model import build_start
from prrmse.models.tasks import task_loss
from prrmse.training.evaluate import per_patient_dice, validate, write_patients_csv

# Called on the fresh model before training (reuse: load source tensors, freeze some).
ModelSetup = Callable[[torch.nn.Module], dict[str, Any]]
OUTPUTS = ("model.safetensors", "history.csv", "metrics.json")
SELECTIONS = ("last", "best_on_holdout")
# Every model also writes the best model's validation Dice per patient and class (for
# confidence intervals over patients); an auto-encoder's table has no rows.
PATIENTS_CSV = "patients.csv"


@dataclass(frozen=True)
class Split:
    """Images and labels of one evaluated split, with its index rows (patient, phase, slice)."""

    images: torch.Tensor  # (N, 1, H, W) float32
    labels: np.ndarray  # (N, H, W)
    index: Any
    patients: list[str]


@dataclass(frozen=True)
class TrainData:
    images: torch.Tensor  # (N, 1, H, W) float32
    labels: torch.Tensor  # (N, H, W) int64
    val: Split  # the validation patients the model is reported on
    selection: Split | None  # best_on_holdout: patients carved from the training patients
    train_patients: list[str]


def initial_model(network: dict[str, Any], start: Start | int) -> torch.nn.Module:
    """The model a run of `network` (config networks entry) starts from, before any reuse setup.

    `start` is the start record train_model writes (`prrmse.models.start.resolve_start`); an int
    is the start of a checkpoint that records none (`legacy_start`: torch seeded with it).
    Torch's global generator is left as it was.
    """
    if isinstance(start, int) and not isinstance(start, bool):
        start = legacy_start(start)
    return build_start(network, start)


def select_device(
    choice: str, key: str = "train.device", warn: Callable[[str], None] | None = None
) -> torch.device:
    """`cuda` without a usable GPU fails at once (a cluster job must not crawl on CPU);
    `auto` without one runs on CPU and says so."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise PrrmseError(f"config {key}", "cuda requested but no CUDA device is available")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    if choice == "auto":
        (warn or _warn)(
            f"warning: config {key} is auto and no CUDA device is available: running on CPU"
        )
    return torch.device("cpu")


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def carve_holdout(
    patients: list[str], n_holdout: int, seed: int, source: Path
) -> tuple[list[str], list[str]]:
    """(training patients left, selection patients): `n_holdout` drawn with `seed`."""
    if n_holdout >= len(patients):
        raise PrrmseError(
            source,
            f"train.holdout.n_patients {n_holdout} leaves none of the {len(patients)} "
            "training patients to train on",
        )
    order = np.random.default_rng(seed).permutation(len(patients))
    held = sorted(patients[i] for i in order[:n_holdout])
    return [p for p in patients if p not in held], held


def _split(dataset: ProcessedDataset, split: str, patients: list[str] | None = None) -> Split:
    rows = dataset.rows(split, patients)
    return Split(
        images=torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None],
        labels=np.asarray(dataset.labels[rows]),
        index=dataset.index.iloc[rows].reset_index(drop=True),
        patients=sorted(dict.fromkeys(dataset.index.iloc[rows]["patient"].astype(str))),
    )


def load_train_data(dataset: ProcessedDataset, spec: ModelSpec, cfg: dict[str, Any]) -> TrainData:
    """The model's training patients (its subset), its selection split if any, the val split."""
    patients = draw_subset(
        dataset.patients("train"), spec.n_train, cfg["subset_seed"], dataset.root
    )
    selection = None
    if cfg["selection"] == "best_on_holdout":
        holdout = cfg["holdout"]
        patients, held = carve_holdout(
            patients, holdout["n_patients"], holdout["seed"], dataset.root
        )
        selection = _split(dataset, "train", held)
    rows = dataset.rows("train", patients)
    val = _split(dataset, "val")
    if len(val.images) == 0:
        raise PrrmseError(dataset.root, "validation split is empty")
    return TrainData(
        images=torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None],
        labels=torch.from_numpy(dataset.labels[rows].astype(np.int64)),
        val=val,
        selection=selection,
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


def _metric_columns(prefix: str, metrics: dict[str, Any] | None, task: str) -> dict[str, str]:
    """History columns of one evaluation; empty cells in an epoch that was not evaluated."""
    if task == "seg":
        names = [f"{prefix}_dice_{c}" for c in range(4)] + [f"{prefix}_dice_mean"]
        if metrics is None:
            return dict.fromkeys(names, "")
        values = [*metrics["dice"], metrics["dice_mean"]]
        return {name: f"{value:.6f}" for name, value in zip(names, values, strict=True)}
    return {f"{prefix}_mse": "" if metrics is None else f"{metrics['mse']:.6f}"}


def _epoch_row(
    epoch: int,
    lr: float,
    loss: float,
    task: str,
    val: dict[str, Any] | None,
    selection: dict[str, Any] | None,
    selecting: bool,
) -> dict[str, Any]:
    row: dict[str, Any] = {"epoch": epoch, "lr": f"{lr:.6g}", "train_loss": f"{loss:.6f}"}
    if selecting:
        row.update(_metric_columns("sel", selection, task))
    row.update(_metric_columns("val", val, task))
    return row


def _evaluate(
    model: torch.nn.Module, task: str, split: Split, cfg: dict[str, Any], device, precision: str
) -> dict:
    return validate(
        model,
        task,
        split.images,
        split.labels,
        split.index,
        cfg["eval_batch_size"],
        device,
        precision,
    )


def train_model(
    spec: ModelSpec,
    config: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    *,
    threads: int | None = None,
    setup: ModelSetup | None = None,
    extra_record: dict[str, Any] | None = None,
    shared_encoder: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train `spec` on the prepared dataset in `data_dir`; write OUTPUTS into `out_dir`.

    `shared_encoder` is the file a `shared` encoder start loads (`prrmse.models.start`).
    """
    cfg = config["train"]
    if spec.network not in config["networks"]:
        known = ", ".join(sorted(config["networks"]))
        raise PrrmseError(
            f"model {spec.name}", f"unknown network '{spec.network}' (config networks: {known})"
        )
    if cfg["selection"] not in SELECTIONS:
        raise PrrmseError(
            "config train.selection",
            f"unknown {cfg['selection']!r}; valid: {', '.join(SELECTIONS)}",
        )
    network = config["networks"][spec.network]
    start_record = resolve_start(network, spec, shared_encoder)
    if threads:
        torch.set_num_threads(threads)
    device = select_device(cfg["device"])
    precision = resolve_precision(cfg["precision"], device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    dataset = load_processed(data_dir)
    data = load_train_data(dataset, spec, cfg)
    batch = cfg["batch_size"]
    if batch > len(data.images):
        raise PrrmseError(
            data_dir,
            f"batch size {batch} is larger than the {len(data.images)} training slices of {spec.name}",
        )
    steps = cfg["iterations_per_epoch"] or len(data.images) // batch
    selecting = data.selection is not None

    model = initial_model(network, start_record)
    setup_record = setup(model) if setup else {}
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    scaler = grad_scaler(precision, device)

    sections = {"train": cfg, "network": network}
    index_sha = hashlib.sha256((Path(data_dir) / "index.csv").read_bytes()).hexdigest()
    fingerprint = run_fingerprint(
        spec, {**sections, "setup": setup_record, "start": start_record}, index_sha
    )
    state_path = out_dir / "state.safetensors"
    first, history, best_score, best_epoch = 0, [], -math.inf, -1
    best: dict[str, torch.Tensor] = {}
    if state_path.exists():
        tensors, record = load_tensors(state_path)
        if record.get("fingerprint") == fingerprint:
            model.load_state_dict(prefixed(tensors, "model"))
            if selecting:
                best = prefixed(tensors, "best") or {
                    k: v.clone() for k, v in model.state_dict().items()
                }
            restore_optimizer(optimizer, tensors, record["param_groups"])
            first, history = record["epoch"], record["history"]
            best_score, best_epoch = record["best_score"], record["best_epoch"]
            log(f"{spec.name}: resuming after epoch {first} from {state_path}")
        else:
            log(f"{spec.name}: {state_path} belongs to another configuration; starting afresh")
    else:
        log(f"{spec.name}: start {describe(start_record)}")

    show_bar = sys.stderr.isatty()
    epochs, val_every = cfg["epochs"], cfg["val_every"]
    val_metrics: dict[str, Any] | None = None
    run_began = time.perf_counter()
    for epoch in range(first, epochs):
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
            with autocast(precision, device):
                output = model(images)
            loss = task_loss(spec.task, output, images, labels, cfg["dice_weight"])
            if not torch.isfinite(loss):
                raise PrrmseError(
                    out_dir,
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; no model written",
                )
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach())
        train_seconds = time.perf_counter() - began
        last = epoch + 1 == epochs
        # the reporting set: a learning curve every val_every epochs (and the last, which
        # `selection: last` reports); never used to choose a model
        val_metrics = None
        if (val_every and (epoch + 1) % val_every == 0) or (last and not selecting):
            val_metrics = _evaluate(model, spec.task, data.val, cfg, device, precision)
        improved = False
        sel_metrics = None
        if data.selection is not None:
            sel_metrics = _evaluate(model, spec.task, data.selection, cfg, device, precision)
            improved = sel_metrics["score"] > best_score
            if improved:
                best_score, best_epoch = sel_metrics["score"], epoch + 1
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            best_epoch = epoch + 1
        history.append(
            _epoch_row(epoch + 1, lr, total / steps, spec.task, val_metrics, sel_metrics, selecting)
        )
        if not last:  # the last epoch's outputs are written below; no resume state needed
            _save_state(
                state_path,
                model,
                optimizer,
                best if selecting and not improved else {},
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "history": history,
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                },
            )
        summary = " ".join(f"{k} {v}" for k, v in history[-1].items() if k != "epoch" and v != "")
        log(
            f"{spec.name} epoch {epoch + 1}/{epochs} {summary} "
            f"({steps * batch / train_seconds:.1f} img/s, {time.perf_counter() - began:.1f} s, "
            f"{eta(epoch + 1 - first, epochs - first, time.perf_counter() - run_began)})"
        )

    if selecting:
        # the selected epoch's model, validated on the reporting set once, at the end
        model.load_state_dict(best)
        final = _evaluate(model, spec.task, data.val, cfg, device, precision)
    elif val_metrics is not None:
        final = val_metrics  # the last epoch's model, just validated
    else:  # resumed after the last epoch's state (not written in practice)
        final = _evaluate(model, spec.task, data.val, cfg, device, precision)
    selection_record: dict[str, Any] = {"rule": cfg["selection"], "epoch": best_epoch}
    if data.selection is not None:
        selection_record.update(
            patients=data.selection.patients,
            score=best_score,
            holdout=cfg["holdout"],
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
        "start": start_record,
        "best_epoch": best_epoch,
        "selection": selection_record,
        "metrics": {k: v for k, v in final.items() if k != "score"},
        "config": {"train": cfg, "network": network},
        "data": {
            "dir": str(data_dir),
            "index_sha256": index_sha,
            "train_patients": data.train_patients,
        },
        "setup": setup_record,
        **(extra_record or {}),
        "precision": precision,
        "provenance": provenance.stamp(
            device=device_name(device), threads=torch.get_num_threads(), precision=precision
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # every model writes the file, so the workflow can declare it; an auto-encoder's is empty
    patients = pd.DataFrame(columns=["patient", "class", "dice"])
    if spec.task == "seg":
        patients = per_patient_dice(
            model,
            data.val.images,
            data.val.labels,
            data.val.index,
            cfg["eval_batch_size"],
            device,
            precision,
        )
    patients_record = provenance.stamp(
        table=f"validation Dice per patient and class of the selected model ({cfg['selection']})"
        + ("" if spec.task == "seg" else " (auto-encoder: no Dice, no rows)"),
        model=spec.name,
        best_epoch=best_epoch,
        data={"dir": str(data_dir), "index_sha256": index_sha},
        device=device_name(device),
        threads=torch.get_num_threads(),
        precision=precision,
    )
    # All four are written under temp names and renamed together (the model last), so a
    # failed write never leaves metrics that look complete beside a missing model.
    names = ("model.safetensors", "metrics.json", "history.csv", PATIENTS_CSV)
    temps: dict[str, Path] = {}
    try:
        with contextlib.ExitStack() as outputs:
            for name in names:
                temps[name] = outputs.enter_context(atomic_path(out_dir / name))
            write_patients_csv(temps[PATIENTS_CSV], patients, patients_record)
            write_text_atomic(temps["history.csv"], _history_csv(history))
            metrics = {"name": spec.name, "best_epoch": best_epoch, **record["metrics"]}
            write_json_atomic(temps["metrics.json"], metrics)
            save_tensors(temps["model.safetensors"], model.state_dict(), record)
    except PrrmseError as err:  # a writer names its temp file: name the output instead
        for name, temp in temps.items():
            if str(err.where) == str(temp):
                raise PrrmseError(out_dir / name, err.problem) from err
        raise
    state_path.unlink(missing_ok=True)
    return record


def _save_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    best: dict[str, torch.Tensor],
    record: dict[str, Any],
) -> None:
    """The resume state after an epoch: model, optimizer and (when it differs) the best model."""
    opt_tensors, groups = optimizer_tensors(optimizer)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"best.{k}": v for k, v in best.items()})
    state.update(opt_tensors)
    save_tensors(path, state, {**record, "param_groups": groups})


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({provenance.cpu_model()})"
