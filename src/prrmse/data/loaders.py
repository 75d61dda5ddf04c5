"""One entry point for the raw loaders: the config's dataset `format` picks the reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prrmse.data.acdc import iter_acdc
from prrmse.data.nifti_pairs import iter_nifti_pairs
from prrmse.data.records import RawSlice
from prrmse.data.rvsc import iter_rvsc
from prrmse.errors import PrrmseError

LOADERS: dict[str, Callable[[Path], Iterator[RawSlice]]] = {
    "acdc": iter_acdc,
    "rvsc": iter_rvsc,
    "nifti_pairs": iter_nifti_pairs,
}


def iter_slices(fmt: str, root: Path) -> Iterator[RawSlice]:
    """Every RawSlice of the dataset under `root`, in (patient, phase, slice, series) order."""
    loader = LOADERS.get(fmt)
    if loader is None:
        raise PrrmseError("format", f"unknown format {fmt!r}; valid formats: {', '.join(LOADERS)}")
    return loader(Path(root))
