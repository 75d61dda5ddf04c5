"""One entry point for the raw loaders: the config's dataset `format` picks the reader, and
the dataset's protocol keys (`sets`, `expected_patients`, `patient_id`) go to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prrmse.core.errors import PrrmseError
from prrmse.data.acdc import iter_acdc
from prrmse.data.nifti_pairs import iter_nifti_pairs
from prrmse.data.protocol import Protocol
from prrmse.data.records import RawSlice
from prrmse.data.rvsc import iter_rvsc

LOADERS: dict[str, Callable[[Path, Protocol | None], Iterator[RawSlice]]] = {
    "acdc": iter_acdc,
    "rvsc": iter_rvsc,
    "nifti_pairs": iter_nifti_pairs,
}
# formats whose patient is a folder of fixed name: no ID pattern applies
_FOLDER_PATIENTS = ("acdc", "rvsc")


def iter_slices(fmt: str, root: Path, protocol: Protocol | None = None) -> Iterator[RawSlice]:
    """Every RawSlice of the dataset under `root`, in (patient, phase, slice, series) order."""
    loader = LOADERS.get(fmt)
    if loader is None:
        raise PrrmseError("format", f"unknown format {fmt!r}; valid formats: {', '.join(LOADERS)}")
    if protocol is not None and protocol.patient_id is not None and fmt in _FOLDER_PATIENTS:
        raise PrrmseError(
            f"config {protocol.where}.patient_id",
            f"applies to paired NIfTI only; {fmt} patients are the patient folders",
        )
    return loader(Path(root), protocol)
