"""Activation similarity: linear CKA between the BN layers of two models, every layer pair.

This module makes the product: the CKA matrix of two models (`cka_matrix`) and the CKA
table of two checkpoints on a processed dataset's validation slices (`run_cka`), with its
provenance. The statistic is `prrmse.analysis.cka_statistic` (linear CKA, Kornblith et al.
2019: invariant to channel permutations and isotropic scaling, which raw weight RMSE is
not); the Gram matrices of each model's BN outputs, computed pass by pass, are
`prrmse.analysis.cka_grams`. Why BN outputs: the paper asks whether BN (and conv) tensors
can be *reused*; what a reused BN hands to the rest of the network is its output, so that
is the representation compared. A layer whose output is constant over the n inputs has an
undefined CKA, reported as NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.analysis.cka_grams import bn_grams, torch_device
from prrmse.analysis.cka_statistic import cka_from_grams
from prrmse.analysis.rmse import write_table_csv
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.tabular import CKA_COLUMNS as CKA_COLUMNS
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import load_model
from prrmse.models.layers import Layer

DATA_FILES = ("images.npy", "labels.npy", "index.csv")


def cka_matrix(
    model_a: nn.Module,
    model_b: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int,
    device: str = "cpu",
    names: tuple[str | Path, str | Path] = ("model_a", "model_b"),
) -> np.ndarray:
    """Linear CKA of BN outputs, (La x Lb): row i is BN layer i+1 of model_a, column j of b.

    The diagonal (i == j) is the per-layer CKA. `names` are what errors name.
    """
    return _cka_with_layers(model_a, model_b, images, batch_size, device, names)[0]


def _cka_with_layers(
    model_a: nn.Module,
    model_b: nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: str,
    names: tuple[str | Path, str | Path],
    log: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, list[Layer], list[Layer]]:
    layers_a, grams_a = bn_grams(
        model_a, images, batch_size=batch_size, device=device, where=names[0], log=log
    )
    layers_b, grams_b = bn_grams(
        model_b, images, batch_size=batch_size, device=device, where=names[1], log=log
    )
    return cka_from_grams(grams_a, grams_b), layers_a, layers_b


def select_images(n_available: int, max_images: int) -> np.ndarray:
    """At most `max_images` of n_available indices, evenly spaced, always the same ones."""
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 2:
        raise PrrmseError("cka max_images", f"must be an integer >= 2, got {max_images!r}")
    count = min(max_images, n_available)
    # k * n // count: distinct, ascending, spread over every patient of the split.
    return np.array([k * n_available // count for k in range(count)], dtype=np.int64)


def validation_images(data_dir: Path, max_images: int) -> tuple[torch.Tensor, np.ndarray]:
    """The chosen validation slices as an (n, 1, H, W) float32 tensor, and their row numbers."""
    data_dir = Path(data_dir)
    dataset = load_processed(data_dir)
    rows = dataset.rows("val")
    if len(rows) < 2:
        raise PrrmseError(
            data_dir / "index.csv", f"the val split has {len(rows)} slice(s); CKA needs at least 2"
        )
    rows = rows[select_images(len(rows), max_images)]
    images = np.ascontiguousarray(dataset.images[rows], dtype=np.float32)
    if not np.isfinite(images).all():
        raise PrrmseError(
            data_dir / "images.npy", "validation images contain NaN or infinite values"
        )
    return torch.from_numpy(images)[:, None], rows


def cka_table(
    matrix: np.ndarray, names: tuple[str, str], layers_a: Sequence[Layer], layers_b: Sequence[Layer]
) -> pd.DataFrame:
    """Tidy rows, every (layer_a, layer_b) pair, layer_a outer: the CKA_COLUMNS."""
    rows = [
        {
            "model_a": names[0],
            "model_b": names[1],
            "layer_a": layer_a.number,
            "module_a": layer_a.module_name,
            "layer_b": layer_b.number,
            "module_b": layer_b.module_name,
            "cka": float(matrix[i, j]),
        }
        for i, layer_a in enumerate(layers_a)
        for j, layer_b in enumerate(layers_b)
    ]
    return pd.DataFrame(rows, columns=CKA_COLUMNS)


def run_cka(
    checkpoint_a: Path,
    checkpoint_b: Path,
    data_dir: Path,
    out_csv: Path,
    *,
    max_images: int,
    batch_size: int,
    device: str = "cpu",
    log: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Linear CKA of every BN layer pair of two checkpoints on `data_dir`'s validation slices.

    Uses at most `max_images` slices, evenly spaced over the split in index order. Writes
    `out_csv` atomically: a provenance comment line, then the CKA_COLUMNS table
    (`pandas.read_csv(out_csv, comment="#")` reads it back; undefined CKA is NaN).
    """
    checkpoint_a, checkpoint_b, data_dir = Path(checkpoint_a), Path(checkpoint_b), Path(data_dir)
    model_a, record_a = load_model(checkpoint_a)
    model_b, record_b = load_model(checkpoint_b)
    images, rows = validation_images(data_dir, max_images)
    # Named as rmse names them: the record's name, else the run folder.
    names = (
        str(record_a.get("name") or checkpoint_a.parent.name),
        str(record_b.get("name") or checkpoint_b.parent.name),
    )
    matrix, layers_a, layers_b = _cka_with_layers(
        model_a, model_b, images, batch_size, device, (checkpoint_a, checkpoint_b), log
    )
    table = cka_table(matrix, names, layers_a, layers_b)
    target = torch_device(device)
    cuda = target.type == "cuda"
    device_name = torch.cuda.get_device_name(target) if cuda else provenance.cpu_model()
    record = provenance.stamp(
        what="linear CKA of BN outputs",
        models={names[0]: str(checkpoint_a), names[1]: str(checkpoint_b)},
        inputs={str(path): sha256_file(path) for path in (checkpoint_a, checkpoint_b)},
        data=str(data_dir),
        data_sha256={name: sha256_file(data_dir / name) for name in DATA_FILES},
        n_images=len(rows),
        val_rows=[int(row) for row in rows],
        settings={"max_images": max_images, "batch_size": batch_size, "device": str(target)},
        device=device_name,
    )
    write_table_csv(Path(out_csv), table, record)
    return table
