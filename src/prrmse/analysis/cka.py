"""Activation similarity: linear CKA between the BN layers of two models, every layer pair.

Linear CKA (Kornblith et al. 2019) compares two representations of the same n inputs:
with Gram matrices K = X Xᵀ and L = Y Yᵀ (rows = inputs, features flattened over C·H·W)
and H the centring matrix, CKA = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)), where
HSIC(K, L) = <HKH, HLH>_F / (n - 1)² (the biased estimator; the (n - 1)² cancels). It is 1
for identical representations and invariant to orthogonal transforms (so to channel
permutations) and to isotropic scaling, which raw weight RMSE is not.

Why BN outputs: the paper asks whether BN (and conv) tensors can be *reused*; what a
reused BN hands to the rest of the network is its output, so that is the representation
compared (post-BN, before the ReLU). Numbering is the layer index's (forward execution
order, BN layers 1..n); a module called twice contributes its first call, as it is
numbered. The Gram contribution is computed inside the forward hook, before an in-place
ReLU or residual addition overwrites the BN's output tensor.

Memory is O(layers · n²), never the activations: n x n Gram matrices (float64) are
filled block by block. When the n images do not fit one forward pass of `batch_size`,
they are cut into blocks of batch_size // 2 and every pair of blocks runs as one pass
(its Gram gives the two diagonal blocks and the cross block): exact, at the cost of
B(B-1)/2 passes for B blocks. BN runs in eval mode, so an image's activations do not
depend on what else is in the batch, and blockwise Grams equal one big batch's.

A layer whose output is constant over the n inputs has a zero centred Gram: its CKA is
undefined and reported as NaN.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from prrmse.analysis.rmse import probe_shape, write_table_csv
from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.progress import eta
from prrmse.core.tabular import CKA_COLUMNS as CKA_COLUMNS
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import load_model
from prrmse.models.layers import Layer, index_layers, layer_label

DATA_FILES = ("images.npy", "labels.npy", "index.csv")


# --- the statistic ------------------------------------------------------------------------


def gram_linear(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """K = X Xᵀ in float64 for X of shape (n, ...), features flattened."""
    x = torch.as_tensor(features).reshape(len(features), -1).to(torch.float64)
    return (x @ x.T).cpu().numpy()


def center_gram(gram: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11ᵀ/n: subtract row and column means, add back the grand mean."""
    gram = np.asarray(gram, dtype=np.float64)
    means = gram.mean(axis=0)
    return gram - means[None, :] - means[:, None] + means.mean()


def _unit_centred(grams: Sequence[np.ndarray]) -> np.ndarray:
    """Centred Grams flattened to rows of unit Frobenius norm; NaN rows where the norm is 0."""
    rows = np.stack([center_gram(gram).ravel() for gram in grams])
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, rows / np.where(norms > 0, norms, 1.0), np.nan)


def cka_from_grams(grams_a: Sequence[np.ndarray], grams_b: Sequence[np.ndarray]) -> np.ndarray:
    """CKA of every (a, b) pair of Gram matrices over the same n inputs: an (La, Lb) array."""
    if not grams_a or not grams_b:
        raise PrrmseError("cka", "needs at least one Gram matrix on each side")
    shapes = {np.shape(gram) for gram in (*grams_a, *grams_b)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or len(set(next(iter(shapes)))) != 1:
        raise PrrmseError("cka", f"Gram matrices must all be n x n for one n, got {sorted(shapes)}")
    # <Kc, Lc> / (|Kc| |Lc|): HSIC's 1/(n-1)² cancels.
    return _unit_centred(grams_a) @ _unit_centred(grams_b).T


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA of two representations (n, ...) of the same n inputs."""
    if len(x) != len(y):
        raise PrrmseError("cka", f"representations of {len(x)} and {len(y)} inputs differ in n")
    return float(cka_from_grams([gram_linear(x)], [gram_linear(y)])[0, 0])


# --- Gram matrices of a model's BN outputs ------------------------------------------------


def bn_layers(model: nn.Module) -> list[Layer]:
    """The model's BN layers in forward execution order (the layer index's numbering)."""
    layers = [layer for layer in index_layers(model, probe_shape(model)) if layer.family == "bn"]
    if not layers:
        raise PrrmseError(type(model).__name__, "has no BatchNorm2d layer to compare")
    return layers


def pass_schedule(n: int, batch_size: int) -> list[np.ndarray]:
    """Image indices of each forward pass so that every pair of images shares one pass."""
    if n <= batch_size:
        return [np.arange(n)]
    block = max(1, batch_size // 2)
    blocks = [np.arange(start, min(start + block, n)) for start in range(0, n, block)]
    return [np.concatenate(pair) for pair in itertools.combinations(blocks, 2)]


def bn_grams(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int,
    device: str = "cpu",
    where: str | Path = "model",
    log: Callable[[str], None] | None = None,
) -> tuple[list[Layer], list[np.ndarray]]:
    """The BN layers and, per layer, the n x n float64 Gram of its outputs on `images`.

    The model runs in eval mode without grad on `device`; its modes and device are
    restored. A non-finite output raises PrrmseError naming `where` and the layer.
    """
    n = _check_images(images, batch_size)
    layers = bn_layers(model)
    grams = [np.zeros((n, n), np.float64) for _ in layers]
    current: dict[int, torch.Tensor] = {}

    def hook(number: int):
        def record(_module: nn.Module, _args: object, output: torch.Tensor) -> None:
            if number not in current:  # a module called twice counts at its first call
                flat = output.detach().flatten(1).to(torch.float64)
                current[number] = (flat @ flat.T).cpu()

        return record

    target = _torch_device(device)
    hooks = []
    try:
        with _evaluating(model, target), torch.no_grad():
            for number, layer in enumerate(layers):
                hooks.append(
                    model.get_submodule(layer.module_name).register_forward_hook(hook(number))
                )
            schedule = pass_schedule(n, batch_size)
            began = time.perf_counter()
            for done, rows in enumerate(schedule, start=1):
                current.clear()
                _forward(model, images[torch.from_numpy(rows)].to(target, torch.float32), where)
                for number, layer in enumerate(layers):
                    if number not in current:
                        raise PrrmseError(
                            where, f"{layer_label(layer)} ({layer.module_name}) did not run"
                        )
                    gram = current[number].numpy()
                    if not np.isfinite(gram).all():
                        raise PrrmseError(
                            where,
                            f"non-finite output of {layer_label(layer)} ({layer.module_name}) "
                            f"in a pass over {len(rows)} of the {n} images compared",
                        )
                    # float64 products need not be bit-symmetric: make them so.
                    grams[number][np.ix_(rows, rows)] = (gram + gram.T) / 2
                if log is not None:
                    left = eta(done, len(schedule), time.perf_counter() - began)
                    log(f"cka {where}: pass {done}/{len(schedule)}, {left}")
    finally:
        for handle in hooks:
            handle.remove()
    return layers, grams


@contextlib.contextmanager
def _evaluating(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode on `device` for the block; every module's mode and the device restored."""
    modes = [(module, module.training) for module in model.modules()]
    home = next(model.parameters()).device
    model.eval().to(device)
    try:
        yield
    finally:
        model.to(home)
        for module, training in modes:
            module.training = training


def _forward(model: nn.Module, batch: torch.Tensor, where: str | Path) -> None:
    try:
        model(batch)
    except RuntimeError as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PrrmseError(
            where, f"forward fails on a {list(batch.shape)} batch: {problem}"
        ) from err


def _check_images(images: torch.Tensor, batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PrrmseError("cka batch_size", f"must be a positive integer, got {batch_size!r}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = list(getattr(images, "shape", []))
        raise PrrmseError("cka images", f"must be an N x C x H x W tensor, got shape {shape}")
    if len(images) < 2:
        raise PrrmseError("cka images", f"CKA needs at least 2 images, got {len(images)}")
    if not torch.isfinite(images).all():
        raise PrrmseError("cka images", "contain NaN or infinite values")
    return len(images)


def _torch_device(device: str) -> torch.device:
    try:
        target = torch.device(device)
    except RuntimeError as err:
        raise PrrmseError("cka device", f"{device!r} is not a device ({err})") from err
    if target.type == "cuda" and not torch.cuda.is_available():
        raise PrrmseError("cka device", f"{device!r} asked for, but CUDA is not available")
    return target


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


# --- the product --------------------------------------------------------------------------


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
    target = _torch_device(device)
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
