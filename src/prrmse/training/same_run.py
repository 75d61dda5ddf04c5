"""A subset run that is another trained model's run: its outputs without training again.

The reuse experiment's scratch run on n patients, where n is every training patient
(paper: `pspnet-seg-acdc-n50`, the 50 ACDC training patients), draws all of them in
the same sorted order, from the same start, with the same settings and seed, as the
study's full model (`pspnet-seg-acdc`): training it again gives the same tensors. Here
the record of that trained model is compared with what this run would train on, field
by field; only when all agree are its tensors taken, and the run's own outputs written
by the usual writer (metrics and per-patient Dice evaluated afresh, the history of its
epochs, and `same_run_as` naming the checkpoint and its sha256). Any difference is
logged and the run trains.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.models.checkpoint import load_tensors
from prrmse.training.session import Progress, Session


def _expected(session: Session) -> dict[str, Any]:
    """The fields of a model record that fix what its training computed."""
    selection = session.data.selection
    return {
        "network": session.spec.network,
        "task": session.spec.task,
        "dataset": session.spec.dataset,
        "seed": session.spec.seed,
        "config": {"train": session.settings.as_record(), "network": session.network},
        "start": session.start_record,
        "setup": session.setup_record,
        "precision": session.precision,
        "index_sha256": session.index_sha,
        "train_patients": session.data.train_patients,
        "selection_patients": None if selection is None else selection.patients,
    }


def _recorded(record: dict[str, Any]) -> dict[str, Any]:
    data, selection = record.get("data") or {}, record.get("selection") or {}
    return {
        "network": record.get("network"),
        "task": record.get("task"),
        "dataset": record.get("dataset"),
        "seed": record.get("seed"),
        "config": record.get("config"),
        "start": record.get("start"),
        "setup": record.get("setup"),
        "precision": record.get("precision"),
        "index_sha256": data.get("index_sha256"),
        "train_patients": data.get("train_patients"),
        "selection_patients": selection.get("patients"),
    }


def _history(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise PrrmseError(path, f"cannot read the trained run's history ({err.strerror})") from err
    if not rows:
        raise PrrmseError(path, "the trained run's history has no epochs")
    return rows


def identical_run(
    session: Session, checkpoint: Path, log: Callable[[str], None]
) -> Progress | None:
    """The finished progress of `checkpoint`'s run when it is this session's run (its
    tensors loaded into the session's model), else None with the first difference logged.
    """
    tensors, record = load_tensors(checkpoint)
    if record.get("kind") != "model" or record.get("best_epoch") is None:
        raise PrrmseError(checkpoint, "is not a finished model (its record has no best_epoch)")
    expected, recorded = _expected(session), _recorded(record)
    # JSON round trips turn tuples into lists: compare as the record stores them
    differing = [key for key in expected if _as_json(expected[key]) != _as_json(recorded[key])]
    if differing:
        log(
            f"{session.spec.name}: not the run of {checkpoint} ({differing[0]} differs): "
            "training it"
        )
        return None
    try:
        session.model.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise PrrmseError(checkpoint, f"its tensors do not fit the network ({first})") from err
    best = {}
    if session.selecting:
        best = {k: v.detach().clone() for k, v in session.model.state_dict().items()}
    score = (record.get("selection") or {}).get("score")
    log(
        f"{session.spec.name}: the same run as {checkpoint} (same patients, start, settings "
        "and seed): its trained tensors are taken, not trained again"
    )
    return Progress(
        first=session.settings.epochs,
        history=_history(Path(checkpoint).with_name("history.csv")),
        best_score=-math.inf if score is None else float(score),
        best_epoch=int(record["best_epoch"]),
        best=best,
    )


def same_run_record(checkpoint: Path) -> dict[str, Any]:
    """What the outputs record about the run they were taken from."""
    return {
        "same_run_as": {
            "checkpoint": str(checkpoint),
            "sha256": sha256_file(checkpoint),
            "why": "same patients, start, settings and seed: the identical training",
        }
    }


def _as_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value
