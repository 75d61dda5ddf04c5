"""Training of one model of the study: seeded, resumable, checkpointed at epoch ends.

Every random draw of an epoch (shuffling, augmentation) comes from a generator
seeded with (seed, epoch), so a run resumed from any epoch's checkpoint ends
with the same bytes as a run that was never interrupted. That is why the resume
state can be written on a time interval (`RESUME_EVERY_S`) rather than after every
epoch: a paper-scale PSPNet state is ~185 MB, and a killed job redoes at most the
interval plus one epoch. The model's start (its initial tensors) is a separate,
recorded choice: `prrmse.models.start`.

Which epoch's model is reported (`train.selection`) never looks at the validation
patients it is reported on: `last` (default) takes the model after the fixed number of
epochs; `best_on_holdout` carves `train.holdout.n_patients` selection patients out of
the model's own training patients (recorded), trains on the others and keeps the epoch
of the best score on the selection patients. The validation (reporting) set is scored
every `train.val_every` epochs for history.csv's learning curve only.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import torch
from tqdm import tqdm

from prrmse.core.device import select_device
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import ModelSpec
from prrmse.core.precision import autocast, grad_scaler, resolve_precision
from prrmse.core.progress import eta
from prrmse.data.processed import load_processed
from prrmse.models.start import Start, legacy_start, resolve_start
from prrmse.models.start_model import build_start
from prrmse.models.tasks import task_loss
from prrmse.training.batches import augment, epoch_order, load_train_data
from prrmse.training.outputs import epoch_row, model_record, write_outputs
from prrmse.training.same_run import identical_run, same_run_record
from prrmse.training.session import Progress, Session
from prrmse.training.settings import RESUME_EVERY_S, Selection, TrainSettings
from prrmse.training.state import resume, run_fingerprint, save_state

# Called on the fresh model before training (reuse: load source tensors, freeze some).
ModelSetup = Callable[[torch.nn.Module], dict[str, Any]]
OUTPUTS = ("model.safetensors", "history.csv", "metrics.json")
SELECTIONS = get_args(Selection)


def initial_model(network: dict[str, Any], start: Start | int) -> torch.nn.Module:
    """The model a run of `network` (config networks entry) starts from, before any reuse setup.

    `start` is the start record train_model writes (`prrmse.models.start.resolve_start`); an int
    is the start of a checkpoint that records none (`legacy_start`: torch seeded with it).
    Torch's global generator is left as it was.
    """
    if isinstance(start, int) and not isinstance(start, bool):
        start = legacy_start(start)
    return build_start(network, start)


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
    optimizer = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=settings.lr, weight_decay=settings.weight_decay)


def learning_rate(settings: TrainSettings, epoch: int) -> float:
    progress = epoch / settings.epochs
    if settings.schedule == "cosine":
        return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if settings.schedule == "poly":
        return settings.lr * (1.0 - progress) ** 0.9
    return settings.lr


def _set_up(
    spec: ModelSpec,
    settings: TrainSettings,
    network: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    threads: int | None,
    setup: ModelSetup | None,
    shared_encoder: Path | None,
) -> Session:
    """Checks, device, data, the starting model with its setup, optimizer, fingerprint.
    The order is the random draws' order: changing it changes every trained model."""
    start_record = resolve_start(network, spec, shared_encoder)
    if threads:
        torch.set_num_threads(threads)
    device = select_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    data = load_train_data(load_processed(data_dir), spec, settings)
    batch = settings.batch_size
    if batch > len(data.images):
        raise PrrmseError(
            data_dir,
            f"batch size {batch} is larger than the {len(data.images)} training slices of {spec.name}",
        )
    model = initial_model(network, start_record)
    setup_record = setup(model) if setup else {}
    # channels-last convolutions: on a GPU faster with tensor cores, and on the CPU too
    # (oneDNN; demo sizes, one thread: UNet 1.4-1.5x, PSPNet 1.1x a training step)
    model.to(device=device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, settings)
    scaler = grad_scaler(precision, device)
    sections = {"train": settings.as_record(), "network": network}
    index_sha = hashlib.sha256((Path(data_dir) / "index.csv").read_bytes()).hexdigest()
    fingerprint = run_fingerprint(
        spec, {**sections, "setup": setup_record, "start": start_record}, index_sha
    )
    return Session(
        spec=spec,
        settings=settings,
        network=network,
        data_dir=Path(data_dir),
        out_dir=Path(out_dir),
        start_record=start_record,
        device=device,
        precision=precision,
        data=data,
        steps=settings.iterations_per_epoch or len(data.images) // batch,
        model=model,
        setup_record=setup_record,
        optimizer=optimizer,
        scaler=scaler,
        index_sha=index_sha,
        fingerprint=fingerprint,
    )


def _train_epoch(session: Session, epoch: int, show_bar: bool) -> tuple[float, float]:
    """One epoch of optimisation steps; (learning rate, summed loss)."""
    spec, settings, model, device = session.spec, session.settings, session.model, session.device
    data, batch = session.data, settings.batch_size
    gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch)
    torch.manual_seed(spec.seed * 1_000_003 + epoch)
    lr = learning_rate(settings, epoch)
    for group in session.optimizer.param_groups:
        group["lr"] = lr
    model.train()
    # The loss stays on the device until the epoch ends: reading it each step (a float, a
    # finiteness test) would make the host wait for the GPU, so the next batch could not be
    # prepared while this one computes. Summed in float64, as Python floats were.
    total = torch.zeros((), dtype=torch.float64, device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bad_loss = torch.zeros((), dtype=torch.float64, device=device)
    order = epoch_order(len(data.images), session.steps, batch, gen)
    bar = tqdm(order, desc=f"{spec.name} epoch {epoch + 1}", leave=False, disable=not show_bar)
    for step, idx in enumerate(bar):
        images, labels = augment(
            data.images[idx].clone(), data.labels[idx].clone(), settings.augment, gen
        )
        images, labels = _to_device(images, device), _to_device(labels, device)
        session.optimizer.zero_grad(set_to_none=True)
        with autocast(session.precision, device):
            output = model(images)
        loss = task_loss(spec.task, output, images, labels, settings.dice_weight)
        value = loss.detach().double()
        newly_bad = (first_bad < 0) & ~torch.isfinite(value)
        first_bad = torch.where(newly_bad, step, first_bad)
        bad_loss = torch.where(newly_bad, value, bad_loss)
        session.scaler.scale(loss).backward()
        session.scaler.step(session.optimizer)
        session.scaler.update()
        total += value
    if int(first_bad) >= 0:
        raise PrrmseError(
            session.out_dir,
            f"loss became {float(bad_loss)} at epoch {epoch + 1}, step {int(first_bad) + 1}; "
            "no model written",
        )
    return lr, float(total)


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`batch` on `device`; to a GPU from pinned memory without waiting (no host sync), and
    images channels-last as the model is."""
    if device.type != "cuda":
        return batch
    moved = batch.pin_memory().to(device, non_blocking=True)
    return moved.contiguous(memory_format=torch.channels_last) if moved.dim() == 4 else moved


def _end_epoch(
    session: Session, progress: Progress, epoch: int, lr: float, total: float, save_due: bool
) -> None:
    """Validation, selection, the history row and (when due) the resume state after an epoch."""
    settings, model, data = session.settings, session.model, session.data
    last = epoch + 1 == settings.epochs
    # the reporting set: a learning curve every val_every epochs (and the last, which
    # `selection: last` reports); never used to choose a model
    val_every = settings.val_every
    progress.val_metrics = None
    if (val_every and (epoch + 1) % val_every == 0) or (last and not session.selecting):
        progress.val_metrics = session.evaluate(data.val)
    improved = False
    sel_metrics = None
    if data.selection is not None:
        sel_metrics = session.evaluate(data.selection)
        improved = sel_metrics["score"] > progress.best_score
        if improved:
            progress.best_score, progress.best_epoch = sel_metrics["score"], epoch + 1
            progress.best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    else:
        progress.best_epoch = epoch + 1
    progress.history.append(
        epoch_row(
            epoch + 1,
            lr,
            total / session.steps,
            session.spec.task,
            progress.val_metrics,
            sel_metrics,
            session.selecting,
        )
    )
    if last or not save_due:  # the last epoch's outputs are written below: no state needed
        return
    save_state(
        session.state_path,
        model,
        session.optimizer,
        progress.best if session.selecting and not improved else {},
        {
            "fingerprint": session.fingerprint,
            "epoch": epoch + 1,
            "history": progress.history,
            "best_score": progress.best_score,
            "best_epoch": progress.best_epoch,
        },
    )


def _final_metrics(session: Session, progress: Progress) -> dict[str, Any]:
    if session.selecting:
        # the selected epoch's model, validated on the reporting set once, at the end
        session.model.load_state_dict(progress.best)
        return session.evaluate(session.data.val)
    if progress.val_metrics is not None:
        return progress.val_metrics  # the last epoch's model, just validated
    return session.evaluate(session.data.val)  # resumed after the last epoch's state


def train_model(
    spec: ModelSpec,
    settings: TrainSettings,
    network: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    *,
    threads: int | None = None,
    setup: ModelSetup | None = None,
    extra_record: dict[str, Any] | None = None,
    shared_encoder: Path | None = None,
    resume_every_s: float = RESUME_EVERY_S,
    same_run_checkpoint: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train `spec` on the prepared dataset in `data_dir`; write OUTPUTS into `out_dir`.

    `settings` is the config's `train` section (`TrainSettings.from_config`), `network` the
    config's `networks.<spec.network>` entry, as `prrmse.models` takes it (a mapping).
    `shared_encoder` is the file a `shared` encoder start loads (`prrmse.models.start`).
    The resume state is written at the first epoch end `resume_every_s` seconds after the
    last one (or the start); 0 writes it after every epoch. `same_run_checkpoint`: a trained
    model's checkpoint whose run may be this very run (`prrmse.training.same_run`): if its
    record agrees, its tensors are taken instead of training.
    """
    session = _set_up(spec, settings, network, data_dir, out_dir, threads, setup, shared_encoder)
    if same_run_checkpoint is not None:
        done = identical_run(session, same_run_checkpoint, log)
        if done is not None:
            extra = {**(extra_record or {}), **same_run_record(same_run_checkpoint)}
            record = model_record(session, done, _final_metrics(session, done), extra)
            write_outputs(session, done, record)
            return record
    progress = resume(session, log)
    show_bar = sys.stderr.isatty()
    epochs, batch = settings.epochs, settings.batch_size
    run_began = saved = time.perf_counter()
    for epoch in range(progress.first, epochs):
        began = time.perf_counter()
        lr, total = _train_epoch(session, epoch, show_bar)
        train_seconds = time.perf_counter() - began
        save_due = time.perf_counter() - saved >= resume_every_s
        _end_epoch(session, progress, epoch, lr, total, save_due)
        if save_due:  # written, or the last epoch's outputs: the loop ends
            saved = time.perf_counter()
        row = progress.history[-1]
        summary = " ".join(f"{k} {v}" for k, v in row.items() if k != "epoch" and v != "")
        log(
            f"{spec.name} epoch {epoch + 1}/{epochs} {summary} "
            f"({session.steps * batch / train_seconds:.1f} img/s, "
            f"{time.perf_counter() - began:.1f} s, "
            f"{eta(epoch + 1 - progress.first, epochs - progress.first, time.perf_counter() - run_began)})"
        )
    record = model_record(session, progress, _final_metrics(session, progress), extra_record)
    write_outputs(session, progress, record)
    return record
