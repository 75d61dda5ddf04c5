"""The resume state: written after every epoch but the last, read back only by the very
configuration (fingerprint) that wrote it, so a killed run resumes to identical bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from prrmse.core.naming import ModelSpec
from prrmse.models.checkpoint import (
    load_tensors,
    optimizer_tensors,
    prefixed,
    restore_optimizer,
    save_tensors,
)
from prrmse.models.start import describe
from prrmse.training.session import Progress, Session


def run_fingerprint(spec: ModelSpec, sections: dict[str, Any], index_sha: str) -> str:
    blob = json.dumps({"model": spec.name, "config": sections, "data": index_sha}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_state(
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


def resume(session: Session, log: Callable[[str], None]) -> Progress:
    """The epochs done so far, from a state file this very configuration wrote."""
    spec, state_path = session.spec, session.state_path
    if not state_path.exists():
        log(f"{spec.name}: start {describe(session.start_record)}")
        return Progress()
    tensors, record = load_tensors(state_path)
    if record.get("fingerprint") != session.fingerprint:
        log(f"{spec.name}: {state_path} belongs to another configuration; starting afresh")
        return Progress()
    model = session.model
    model.load_state_dict(prefixed(tensors, "model"))
    best: dict[str, torch.Tensor] = {}
    if session.selecting:
        best = prefixed(tensors, "best") or {k: v.clone() for k, v in model.state_dict().items()}
    restore_optimizer(session.optimizer, tensors, record["param_groups"])
    log(f"{spec.name}: resuming after epoch {record['epoch']} from {state_path}")
    return Progress(
        first=record["epoch"],
        history=record["history"],
        best_score=record["best_score"],
        best_epoch=record["best_epoch"],
        best=best,
    )
