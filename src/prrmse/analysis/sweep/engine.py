"""The replacement sweep: put one source tensor into the target, score, restore; every tensor.

For every layer and kind of the target (BN: RM RV RW RB; conv: W B; the head included
and flagged) the source's tensor is copied into the target in place, the target's
validation set is segmented without retraining, per-class Dice (classes 0..3) is
recorded, and the original bytes are copied back. A baseline row has nothing replaced.
Kinds absent from the target (a conv without bias) are listed with status "absent".

Dice is computed per patient volume and averaged over patients (`prrmse.training.metrics`); a
class never present in the validation labels has no Dice at all: NaN on every row.

Controls (Zhang et al.'s re-initialisation and re-randomisation): the same sweep with
another replacement source. `reinit` replaces each tensor with the target's own initial
tensor, `rerandom` with a fresh draw of the initialiser (see `control_source`), so a
"reusable" tensor can be told apart from one the network is robust to replacing at all.
`run_sweep` and `run_control_sweep` write the table with a `condition` column
(`source`, `reinit`, `rerandom`) and beside it the Dice per patient
(`<csv stem>.patients.csv`) for confidence intervals over patients.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.analysis.sweep.bnfold import FoldedPair, fold_overrides, fold_pairs
from prrmse.analysis.sweep.prefix import PrefixCache, forwards_replaced, record_calls
from prrmse.analysis.sweep.rows import (
    DICE_COLUMNS,
    DiceCounts,
    check_compatible,
    check_inputs,
    make_replacements,
    patient_sweep_table,
    present_classes,
    sweep_table,
)
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, sha256_file
from prrmse.core.progress import eta
from prrmse.core.provenance import cpu_model, csv_header, stamp
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import load_model
from prrmse.models.layers import KIND_ATTR, Layer, get_tensor
from prrmse.models.start import (
    Start,
    check_start,
    independent_seed,
    legacy_start,
    rerandom_start,
)
from prrmse.models.start_model import build_start
from prrmse.training.evaluate import write_patients_csv

# What replaces a tensor: the source model's tensor, or (controls, target only) the
# target's own initial tensor or a fresh draw of the initialiser.
CONDITIONS = ("source", "reinit", "rerandom")
CONTROLS = ("reinit", "rerandom")
# rerandom draws with the target's seed plus this: never a seed a study run is given.
# (Torch's CPU generator keeps only a seed's low 32 bits: 2**32 would change nothing.)
RERANDOM_SEED_OFFSET = 1_000_000_000


@dataclass(frozen=True)
class SweepSettings:
    """How the sweep runs; the defaults give the reference numerics.

    `prefix_reuse`: replay what runs before the replaced layer (exact: rows stay
    bit-identical to `naive_sweep` under the same other settings). `channels_last`: NHWC
    memory format. `fold_bn`: eval BN folded into its conv, except the replaced layer's
    pair, after the replaced layer (the only setting `naive_sweep` does not share). These
    two move predictions only at near-tie pixels. `bf16`: bfloat16 autocast, CUDA only;
    coarser (about 2 % of pixels of a random model flip on CPU, where it is not used).
    """

    prefix_reuse: bool = True
    channels_last: bool = False
    fold_bn: bool = False
    bf16: bool = False
    batch_size: int = 64
    device: str = "cpu"


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
) -> np.ndarray:
    """Arg-max class per pixel of one batch, (B, H, W) uint8, with forwards overridden."""
    autocast = torch.autocast(
        batch.device.type,
        dtype=torch.bfloat16,
        enabled=settings.bf16 and batch.device.type == "cuda",
    )
    with torch.no_grad(), autocast, forwards_replaced(overrides):
        logits = model(batch)
    # Arg-max over the last axis of an NHWC copy: the same first-maximum rule, 3-5x faster
    # on CPU than reducing over the strided channel axis.
    labels = logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)
    return labels.to("cpu", torch.uint8).numpy()


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
    layers, counts = _replacement_counts(
        target, source, images, labels, index, settings, source_name, log
    )
    return _tables(layers, counts)


def _tables(layers: list[Layer], counts: DiceCounts) -> tuple[pd.DataFrame, pd.DataFrame]:
    return sweep_table(layers, counts.dice()), patient_sweep_table(layers, *counts.per_patient())


def _replacement_counts(
    target: nn.Module,
    source: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    index: pd.DataFrame,
    settings: SweepSettings,
    source_name: str,
    log: Callable[[str], None] | None,
) -> tuple[list[Layer], DiceCounts]:
    check_inputs(images, labels, index)
    device = _device(settings)
    layers = check_compatible(target, source, (1, *images.shape[1:]), source_name)
    counts = DiceCounts(labels, index, 1 + sum(len(layer.kinds) for layer in layers))
    n_batches = -(-len(images) // settings.batch_size)
    began = time.perf_counter()
    with _evaluating(target, device, settings.channels_last):
        replacements = make_replacements(target, source, layers, device)
        pairs: list[FoldedPair] | None = None if settings.fold_bn else []
        for number, (start, load) in enumerate(_batches(images, settings, device), start=1):
            batch = load()
            predicted, calls = _record(target, batch, settings)
            counts.add(0, start, predicted)
            cache = PrefixCache(calls)
            if pairs is None:
                pairs = fold_pairs(target, calls)
            for row, replacement in enumerate(replacements, start=1):
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
                    # A recorded tensor was edited in place (never seen; guarded): the row
                    # was redone in full above, and the batch is recorded afresh here.
                    _, calls = _record(target, batch, settings)
                    cache = PrefixCache(calls)
                counts.add(row, start, predicted)
            if log is not None:
                log(
                    f"sweep: batch {number}/{n_batches} ({len(replacements)} replacements) done, "
                    f"{eta(number, n_batches, time.perf_counter() - began)}"
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


def control_seed(condition: str, target_seed: int) -> int:
    """The seed of a control's replacement model's independent draw: the target's start
    seed for reinit (the very draw its training started from), + RERANDOM_SEED_OFFSET
    for rerandom."""
    if condition not in CONTROLS:
        raise PrrmseError(
            "sweep condition", f"unknown control {condition!r}; valid: {', '.join(CONTROLS)}"
        )
    return target_seed + (RERANDOM_SEED_OFFSET if condition == "rerandom" else 0)


def control_start(condition: str, start: Start | int) -> Start:
    """The start record of a control's replacement model (see `control_source`)."""
    if isinstance(start, int) and not isinstance(start, bool):
        start = legacy_start(start)
    control_seed(condition, 0)  # refuses an unknown condition
    if condition == "reinit":
        return start
    return rerandom_start(start, RERANDOM_SEED_OFFSET)


def control_source(condition: str, network: dict[str, Any], start: Start | int) -> nn.Module:
    """The replacement source of a control, from the target's start record (`prrmse.models.start`;
    an int: a checkpoint recording none, started from torch seeded with it).

    reinit: the target's own initial tensors, rebuilt exactly as train.py started them
    (independent parts from their seed, a shared or file encoder from its file, whose
    hash must be unchanged). rerandom: a fresh independent draw of every part, the
    encoder included (its seed + RERANDOM_SEED_OFFSET). BN initialisation is
    deterministic (running mean 0, running var 1, weight 1, bias 0), so for the BN kinds
    of independent parts rerandom is reinit; tensors a network option loads from a file
    (PSPNet's `encoder_weights`) are loaded by both. Torch's global generator is left as
    it was.
    """
    model = build_start(network, control_start(condition, start), f"{condition} control")
    model.eval()
    return model


def patients_csv_path(out_csv: Path) -> Path:
    """Where the Dice per patient of a sweep CSV goes by default: `<stem>.patients.csv` beside it."""
    out_csv = Path(out_csv)
    return out_csv.with_name(f"{out_csv.stem}.patients.csv")


@dataclass(frozen=True)
class _ValidationSet:
    images: torch.Tensor
    labels: np.ndarray
    index: pd.DataFrame
    record: dict[str, Any]  # the data's provenance fields


def _validation_set(data_dir: Path, log: Callable[[str], None]) -> _ValidationSet:
    dataset = load_processed(data_dir)
    rows = dataset.rows("val")
    if len(rows) == 0:
        raise PrrmseError(Path(data_dir) / "index.csv", "the val split is empty: nothing to sweep")
    images = torch.from_numpy(np.ascontiguousarray(dataset.images[rows]))[:, None]
    labels = np.ascontiguousarray(dataset.labels[rows])
    if labels.max() >= 4:
        raise PrrmseError(Path(data_dir) / "labels.npy", f"class {int(labels.max())} outside 0..3")
    index = dataset.index.iloc[rows].reset_index(drop=True)
    missing = np.flatnonzero(~present_classes(labels)).tolist()
    if missing:
        classes = ", ".join(str(c) for c in missing)
        log(
            f"warning: {Path(data_dir) / 'labels.npy'}: class {classes} never present in the "
            "validation labels; its Dice is NaN"
        )
    record = {
        "data": str(data_dir),
        "data_sha256": {
            name: sha256_file(Path(data_dir) / name)
            for name in ("images.npy", "labels.npy", "index.csv")
        },
    }
    return _ValidationSet(images, labels, index, record)


def run_sweep(
    target_ckpt: Path,
    source_ckpt: Path,
    data_dir: Path,
    out_csv: Path,
    settings: SweepSettings = SweepSettings(),
    log: Callable[[str], None] = print,
    patients_csv: Path | None = None,
) -> pd.DataFrame:
    """Sweep the target checkpoint's validation split (of `data_dir`) with the source's tensors.

    Writes `out_csv` atomically: a provenance comment line, then the table with a last
    column `condition` = "source" (`pandas.read_csv(out_csv, comment="#")` reads it
    back). Absent kinds have empty Dice cells; a Dice that is undefined (a class never
    present) is written as nan. The Dice per patient goes to `patients_csv` (default
    `patients_csv_path(out_csv)`, see `write_patient_sweep_csv`). Returns the table.
    """
    target, _ = load_model(target_ckpt)
    source, _ = load_model(source_ckpt)
    val = _validation_set(data_dir, log)
    table, patients = replacement_sweep_tables(
        target,
        source,
        val.images,
        val.labels,
        val.index,
        settings,
        source_name=str(source_ckpt),
        log=log,
    )
    record = stamp(
        target=str(target_ckpt),
        source=str(source_ckpt),
        target_sha256=sha256_file(target_ckpt),
        source_sha256=sha256_file(source_ckpt),
        conditions=["source"],
        **val.record,
        settings=asdict(settings),
        device=_describe_device(settings),
    )
    table = with_condition(table, "source")
    write_patient_sweep_csv(
        patients_csv or patients_csv_path(out_csv),
        with_condition(patients, "source", first=True),
        record,
        out_csv,
    )
    write_sweep_csv(out_csv, table, record)
    return table


def run_control_sweep(
    target_ckpt: Path,
    data_dir: Path,
    out_csv: Path,
    settings: SweepSettings = SweepSettings(),
    conditions: Sequence[str] = CONTROLS,
    log: Callable[[str], None] = print,
    patients_csv: Path | None = None,
) -> pd.DataFrame:
    """The control sweeps of the target checkpoint, one CSV with a `condition` column.

    Each condition (`control_source`: "reinit", "rerandom") is a whole sweep: the same
    columns as `run_sweep`'s CSV, its rows (baseline included, so the baseline appears
    once per condition, identical) in the order of `conditions`. The network and seed
    come from the checkpoint's record (arch, options, seed, as train.py writes them);
    the provenance line names the target, the conditions and each one's seed. The Dice
    per patient goes to `patients_csv` (default `patients_csv_path(out_csv)`).
    """
    conditions = list(dict.fromkeys(conditions))
    if not conditions:
        raise PrrmseError("sweep conditions", "none given")
    for condition in conditions:
        control_seed(condition, 0)  # refuses an unknown condition before any work
    target, target_record = load_model(target_ckpt)
    start = target_start(target_ckpt, target_record)
    network = {"arch": target_record["arch"], "options": target_record.get("options", {})}
    if (target_record.get("setup") or {}).get("loaded"):
        log(
            f"warning: {target_ckpt}: trained from reused tensors; reinit uses its seed's "
            "fresh initialisation, not the tensors it was loaded with"
        )
    val = _validation_set(data_dir, log)
    tables, patient_tables = [], []
    for condition in conditions:
        source = control_source(condition, network, start)
        table, patients = replacement_sweep_tables(
            target,
            source,
            val.images,
            val.labels,
            val.index,
            settings,
            source_name=f"{condition} of {target_ckpt}",
            log=log,
        )
        tables.append(with_condition(table, condition))
        patient_tables.append(with_condition(patients, condition, first=True))
    record = stamp(
        target=str(target_ckpt),
        target_sha256=sha256_file(target_ckpt),
        conditions=conditions,
        network=network,
        seeds={c: independent_seed(control_start(c, start)) for c in conditions},
        starts={c: control_start(c, start) for c in conditions},
        seed_rule=(
            "reinit: the target's start (its independent parts' seed, its shared or file "
            f"encoder); rerandom: every part drawn with that seed + {RERANDOM_SEED_OFFSET}"
        ),
        **val.record,
        settings=asdict(settings),
        device=_describe_device(settings),
    )
    table = pd.concat(tables, ignore_index=True)
    write_patient_sweep_csv(
        patients_csv or patients_csv_path(out_csv),
        pd.concat(patient_tables, ignore_index=True),
        record,
        out_csv,
    )
    write_sweep_csv(out_csv, table, record)
    return table


def target_start(path: Path, record: dict[str, Any]) -> Start:
    """The start a checkpoint records, or for one recording none, its seed's legacy start."""
    if "start" in record:
        return check_start(record["start"], path)
    seed = record.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PrrmseError(path, "records no integer seed: its initial model is unknown")
    return legacy_start(seed)


def with_condition(table: pd.DataFrame, condition: str, first: bool = False) -> pd.DataFrame:
    """A copy with a `condition` column, last (sweep CSVs) or first (per-patient CSVs)."""
    out = table.copy()
    out.insert(0 if first else len(out.columns), "condition", condition)
    return out


def _describe_device(settings: SweepSettings) -> dict[str, Any]:
    device = torch.device(settings.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"device": str(device), "name": name, "threads": torch.get_num_threads()}


def write_patient_sweep_csv(
    path: Path, table: pd.DataFrame, record: dict[str, Any], sweep_csv: Path
) -> None:
    """Provenance line (the sweep's, plus which sweep CSV), then the long per-patient table.

    Columns: condition, family, layer, kind, patient, class, dice; the baseline rows
    have family "baseline", layer 0 and an empty kind; absent kinds have no rows; a
    Dice is nan where the class is absent from a patient's prediction and truth (or
    from the whole validation set). Averaged over patients per (condition, family,
    layer, kind, class), NaN skipped, it gives the sweep CSV's Dice.
    """
    write_patients_csv(
        path, table, {**record, "table": "Dice per patient", "sweep_csv": str(sweep_csv)}
    )


def write_sweep_csv(path: Path, table: pd.DataFrame, record: dict[str, Any]) -> None:
    """Provenance line, then the table; absent rows' Dice cells empty, undefined Dice "nan"."""
    text = table.astype({column: object for column in DICE_COLUMNS})
    text.loc[table["status"] == "absent", list(DICE_COLUMNS)] = ""
    with atomic_path(path) as temp, open(temp, "w") as handle:
        handle.write(csv_header(record))
        text.to_csv(handle, index=False, na_rep="nan")
