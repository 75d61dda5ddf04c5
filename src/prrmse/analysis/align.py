"""Permutation alignment of two models of one architecture: weight matching (Git Re-Basin).

Hidden channels of a CNN can be reordered without changing its function, as long as every
tensor that reads or writes those channels is reordered the same way. Two independently
trained models may therefore differ by a permutation rather than in substance, and raw
RMSE would count that as difference. Ainsworth, Hayase & Srinivasa (ICLR 2023) align model
B to model A by finding, per permutation P, the order of B's channels that maximises the
summed inner product with A over every tensor P touches; coordinate descent over the
permutations, one `scipy.optimize.linear_sum_assignment` per step, until none changes.
What permutes each axis of every tensor is the architecture's permutation spec
(`prrmse.analysis.permutation_spec`).

Convention: a permutation `p` maps aligned channel i to the other model's channel p[i],
`aligned = other.index_select(axis, p)`. The objective sums over the learned tensors
(conv W and B, BN RW and RB); BN running statistics are permuted with their conv but do
not vote, since their data-set scale would otherwise outweigh every weight. A step is
accepted only if it strictly raises the objective, so the total squared distance of the
learned tensors after alignment never exceeds the unaligned one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from prrmse.analysis.permutation_spec import PermutationSpec, arch_name, permutation_spec
from prrmse.core.errors import PrrmseError

Permutations = dict[str, torch.Tensor]
# One block of a tensor a permutation orders: (state_dict key, axis, offset on that axis).
Use = tuple[str, int, int]
# Per block, the other axes' permutation versions it was computed with, and its scores.
Shares = dict[Use, tuple[tuple[int, ...], torch.Tensor]]

# A step must raise the objective by more than this share of its size: float64 sums of
# equal scores can differ in the last bits, and accepting those could cycle forever.
RELATIVE_GAIN = 1e-10


def _axis_index(
    blocks: tuple[str, ...], spec: PermutationSpec, perms: Permutations
) -> torch.Tensor:
    pieces, offset = [], 0
    for name in blocks:
        pieces.append(perms[name] + offset)
        offset += spec.sizes[name]
    return torch.cat(pieces)


def permute_tensor(
    tensor: torch.Tensor,
    key: str,
    spec: PermutationSpec,
    perms: Permutations,
    skip_axis: int | None = None,
) -> torch.Tensor:
    """`tensor` (state_dict entry `key`) reordered on every permuted axis but `skip_axis`."""
    for axis, blocks in enumerate(spec.axes[key]):
        if blocks is None or axis == skip_axis:
            continue
        index = _axis_index(blocks, spec, perms).to(tensor.device)
        tensor = tensor.index_select(axis, index)
    return tensor


def apply_permutations(
    spec: PermutationSpec, state: Mapping[str, torch.Tensor], perms: Permutations
) -> dict[str, torch.Tensor]:
    """A new state_dict: every tensor of `state` reordered by `perms` (copies, never views)."""
    return {
        key: permute_tensor(tensor.detach(), key, spec, perms).clone()
        for key, tensor in state.items()
    }


def identity_permutations(spec: PermutationSpec) -> Permutations:
    return {name: torch.arange(size) for name, size in spec.sizes.items()}


def random_permutations(spec: PermutationSpec, seed: int) -> Permutations:
    """A random order of every permutation's channels (for tests and sanity checks)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randperm(size, generator=generator) for name, size in spec.sizes.items()}


def weight_matching(
    spec: PermutationSpec,
    reference: Mapping[str, torch.Tensor],
    other: Mapping[str, torch.Tensor],
    *,
    seed: int = 0,
    max_iter: int = 100,
) -> Permutations:
    """Permutations of `other` maximising sum <reference, permuted other> over the matched
    tensors (every learned tensor with a permuted axis).

    Each sweep visits the permutations in a seeded random order; for each, with all others
    fixed, the best order is one linear assignment over the summed inner products of every
    block it orders. Stops after a sweep that changed nothing, or after `max_iter` sweeps.
    """
    usage = spec.usage()
    # float64 on the CPU: the assignment compares sums of many products. The reference's
    # side of every inner product never changes, so its matrices are made once.
    ref = {
        (key, axis, offset): _channel_rows(reference[key], axis, offset, spec.sizes[name])
        for name, uses in usage.items()
        for key, axis, offset in uses
    }
    oth = {key: other[key].detach().to("cpu", torch.float64) for key, _, _ in ref}
    neighbours = _neighbours(spec)
    perms = identity_permutations(spec)
    # One tensor's share of a permutation's scores depends only on the permutations of its
    # other axes: it is kept with their versions and recomputed only when one has changed.
    versions = dict.fromkeys(spec.sizes, 0)
    shares: Shares = {}
    names = sorted(spec.sizes)
    # A permutation's scores change only when a permutation it shares a tensor with does:
    # until then, revisiting it would find the same assignment, so it is skipped.
    stale = set(names)
    order = np.random.default_rng(seed)
    for _ in range(max_iter):
        if not stale:
            break
        for position in order.permutation(len(names)):
            name = names[position]
            if name not in stale:
                continue
            stale.discard(name)
            scores = _scores(spec, name, usage[name], ref, oth, perms, versions, shares)
            proposal = _better_order(scores, perms[name])
            if proposal is not None:
                perms[name] = proposal
                versions[name] += 1
                stale |= neighbours[name]
    return perms


def _scores(
    spec: PermutationSpec,
    name: str,
    uses: list[Use],
    ref: Mapping[Use, torch.Tensor],
    oth: Mapping[str, torch.Tensor],
    perms: Permutations,
    versions: Mapping[str, int],
    shares: Shares,
) -> torch.Tensor:
    """Permutation `name`'s (size, size) scores: the summed inner products of every block it
    orders, each block's share recomputed only where another axis's order has changed."""
    size = spec.sizes[name]
    scores = torch.zeros(size, size, dtype=torch.float64)
    for use in uses:
        key, axis, _ = use
        depends = tuple(
            versions[other_name]
            for index, blocks in enumerate(spec.axes[key])
            if index != axis
            for other_name in blocks or ()
        )
        if use not in shares or shares[use][0] != depends:
            shares[use] = (depends, _share(spec, use, size, ref[use], oth[key], perms))
        scores += shares[use][1]
    return scores


def _better_order(scores: torch.Tensor, current: torch.Tensor) -> torch.Tensor | None:
    """The best order by one linear assignment over `scores`, if it strictly raises the
    objective over the `current` order; else None."""
    _, columns = linear_sum_assignment(scores.numpy(), maximize=True)
    proposal = torch.as_tensor(columns, dtype=torch.long)
    rows = torch.arange(len(scores))
    old = float(scores[rows, current].sum())
    new = float(scores[rows, proposal].sum())
    if new - old > RELATIVE_GAIN * max(1.0, abs(old)):
        return proposal
    return None


def _share(
    spec: PermutationSpec,
    use: tuple[str, int, int],
    size: int,
    reference_rows: torch.Tensor,
    other: torch.Tensor,
    perms: Permutations,
) -> torch.Tensor:
    """Inner products of the reference's channels (rows) with the other's (columns) in one
    block of one tensor, the other's remaining axes in their current order."""
    key, axis, offset = use
    permuted = permute_tensor(other, key, spec, perms, skip_axis=axis)
    return reference_rows @ _channel_rows(permuted, axis, offset, size).T


def _channel_rows(tensor: torch.Tensor, axis: int, offset: int, size: int) -> torch.Tensor:
    """The block [offset, offset + size) of `axis` as rows of a (size, rest) float64 matrix."""
    block = tensor.detach().narrow(axis, offset, size).movedim(axis, 0)
    return block.to("cpu", torch.float64).reshape(size, -1)


def _neighbours(spec: PermutationSpec) -> dict[str, set[str]]:
    """Per permutation, the others whose order changes its scores (itself if it occurs twice
    in one tensor)."""
    neighbours: dict[str, set[str]] = {name: set() for name in spec.sizes}
    for key, axes in spec.axes.items():
        if key not in spec.matched:
            continue
        names = [name for blocks in axes for name in blocks or ()]
        for name in names:
            neighbours[name] |= {other for other in names if other != name}
            if names.count(name) > 1:
                neighbours[name].add(name)
    return neighbours


def align_models(
    reference: nn.Module, other: nn.Module, *, seed: int = 0, max_iter: int = 100
) -> tuple[dict[str, torch.Tensor], Permutations]:
    """`other`'s state_dict with its channels reordered to match `reference`, and the orders.

    Loading the returned state_dict into `other` leaves its function unchanged (eval mode,
    up to float rounding). PrrmseError for an architecture without a permutation spec or
    models whose specs differ (another width or bias setting).
    """
    spec = permutation_spec(reference)
    other_spec = permutation_spec(other)
    if other_spec != spec:
        raise PrrmseError(
            arch_name(other),
            "cannot be aligned: its channels or tensors differ from the reference's",
        )
    other_state = other.state_dict()
    perms = weight_matching(spec, reference.state_dict(), other_state, seed=seed, max_iter=max_iter)
    return apply_permutations(spec, other_state, perms), perms
