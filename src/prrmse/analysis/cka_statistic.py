"""Linear CKA, the statistic: Gram matrices, their centring, and CKA from them.

Linear CKA (Kornblith et al. 2019) compares two representations of the same n inputs:
with Gram matrices K = X Xᵀ and L = Y Yᵀ (rows = inputs, features flattened over C·H·W)
and H the centring matrix, CKA = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)), where
HSIC(K, L) = <HKH, HLH>_F / (n - 1)² (the biased estimator; the (n - 1)² cancels). It is 1
for identical representations and invariant to orthogonal transforms (so to channel
permutations) and to isotropic scaling, which raw weight RMSE is not. A representation
constant over the n inputs has a zero centred Gram: its CKA is undefined, NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from prrmse.core.errors import PrrmseError


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
