"""What a finished training run writes: the model with its record, metrics.json, the
history of every epoch and the validation Dice per patient, renamed into place together."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from prrmse.core import provenance
from prrmse.core.device import device_name
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, write_json_atomic, write_text_atomic
from prrmse.models.checkpoint import (
    save_tensors,
)
from prrmse.training.evaluate import per_patient_dice, write_patients_csv
from prrmse.training.session import Progress, Session

# Every model also writes the best model's validation Dice per patient and class (for
# confidence intervals over patients); an auto-encoder's table has no rows.
PATIENTS_CSV = "patients.csv"


def history_csv(history: list[dict[str, Any]]) -> str:
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


def epoch_row(
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


def model_record(
    session: Session,
    progress: Progress,
    final: dict[str, Any],
    extra_record: dict[str, Any] | None,
) -> dict[str, Any]:
    spec, settings, data = session.spec, session.settings, session.data
    selection_record: dict[str, Any] = {"rule": settings.selection, "epoch": progress.best_epoch}
    if data.selection is not None:
        selection_record.update(
            patients=data.selection.patients,
            score=progress.best_score,
            holdout=settings.holdout.as_record(),
        )
    return {
        "kind": "model",
        "name": spec.name,
        "network": spec.network,
        "arch": session.network["arch"],
        "options": session.network.get("options", {}),
        "task": spec.task,
        "dataset": spec.dataset,
        "n_train": spec.n_train,
        "seed": spec.seed,
        "start": session.start_record,
        "best_epoch": progress.best_epoch,
        "selection": selection_record,
        "metrics": {k: v for k, v in final.items() if k != "score"},
        "config": {"train": settings.as_record(), "network": session.network},
        "data": {
            "dir": str(session.data_dir),
            "index_sha256": session.index_sha,
            "train_patients": data.train_patients,
        },
        "setup": session.setup_record,
        **(extra_record or {}),
        "precision": session.precision,
        "provenance": provenance.stamp(
            device=device_name(session.device),
            threads=torch.get_num_threads(),
            precision=session.precision,
        ),
    }


def write_outputs(session: Session, progress: Progress, record: dict[str, Any]) -> None:
    """The model, its metrics, history and per-patient Dice, renamed into place together."""
    spec, settings, out_dir = session.spec, session.settings, session.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    # every model writes the file, so the workflow can declare it; an auto-encoder's is empty
    patients = pd.DataFrame(columns=["patient", "class", "dice"])
    if spec.task == "seg":
        val = session.data.val
        patients = per_patient_dice(
            session.model,
            val.images,
            val.labels,
            val.index,
            settings.eval_batch_size,
            session.device,
            session.precision,
        )
    patients_record = provenance.stamp(
        table=f"validation Dice per patient and class of the selected model ({settings.selection})"
        + ("" if spec.task == "seg" else " (auto-encoder: no Dice, no rows)"),
        model=spec.name,
        best_epoch=progress.best_epoch,
        data={"dir": str(session.data_dir), "index_sha256": session.index_sha},
        device=device_name(session.device),
        threads=torch.get_num_threads(),
        precision=session.precision,
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
            write_text_atomic(temps["history.csv"], history_csv(progress.history))
            metrics = {"name": spec.name, "best_epoch": progress.best_epoch, **record["metrics"]}
            write_json_atomic(temps["metrics.json"], metrics)
            save_tensors(temps["model.safetensors"], session.model.state_dict(), record)
    except PrrmseError as err:  # a writer names its temp file: name the output instead
        for name, temp in temps.items():
            if str(err.where) == str(temp):
                raise PrrmseError(out_dir / name, err.problem) from err
        raise
    session.state_path.unlink(missing_ok=True)
