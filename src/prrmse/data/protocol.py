"""The study's protocol on a raw download: which set folders are read, how many patients
they must hold, and how patient IDs are found and ordered.

A dataset's config (`datasets.<name>`) says it with three keys the loaders apply before
any image is read, so a root that holds more or fewer patients than the protocol expects
fails in a second, naming the root:

- `sets`: the set folders directly under the root to read (ACDC `training`, RVSC
  `TrainingSet`, `Test1Set`); null reads every patient folder under the root;
- `expected_patients`: the number of patients those folders must hold;
- `patient_id` (paired NIfTI): a regular expression that finds the patient ID in a case
  name; two files mapping to one patient are an error naming both.

Patients are ordered by a natural sort of their IDs (`case_2` before `case_10`), so
"first 60 / last 30" means what it says whatever the zero padding; a split may list the
order explicitly instead (`split.order`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prrmse.core.errors import PrrmseError
from prrmse.data.settings import DatasetSettings

_DIGITS = re.compile(r"([0-9]+)")
NaturalKey = tuple[tuple[int, int | str], ...]


def natural_key(name: str) -> NaturalKey:
    """Sort key comparing runs of digits as numbers: `case_2` < `case_10`, `p7` == `p007`."""
    parts = (part for part in _DIGITS.split(name) if part)
    return tuple(
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part) for part in parts
    )


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Names in natural order; ties (`p7`, `p007`) fall back to the text, so the order is total."""
    return sorted(names, key=lambda name: (natural_key(name), name))


@dataclass(frozen=True)
class Protocol:
    """What a loader checks on a raw root before reading any image.

    `where` names the config section in messages (e.g. `datasets.acdc`).
    """

    sets: tuple[str, ...] | None = None
    expected_patients: int | None = None
    patient_id: re.Pattern[str] | None = None
    where: str = "config"


def protocol_from_config(name: str, dataset: DatasetSettings) -> Protocol:
    """The protocol keys of `datasets.<name>` (null keys: no restriction)."""
    where = f"datasets.{name}"
    sets = dataset.sets
    pattern = dataset.patient_id
    compiled = None
    if pattern is not None:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise PrrmseError(
                f"config {where}.patient_id", f"not a valid regular expression ({error})"
            ) from None
        if compiled.groups > 1:
            raise PrrmseError(
                f"config {where}.patient_id",
                f"{pattern!r} has {compiled.groups} groups; use one (the ID) or none",
            )
    return Protocol(
        sets=sets,
        expected_patients=dataset.expected_patients,
        patient_id=compiled,
        where=where,
    )


def set_folders(root: Path, sets: Sequence[str] | None) -> list[Path]:
    """The folders to search: the root itself (sets None) or each set folder under it."""
    if sets is None:
        return [root]
    folders = []
    for name in sets:
        folder = root / name
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise PrrmseError(
                folder,
                f"set folder '{name}' not found under the root (folders there: {', '.join(found) or 'none'})",
            )
        folders.append(folder)
    return folders


def check_patient_count(root: Path, found: int, protocol: Protocol, what: str = "patients") -> None:
    """Refuse a root whose patient count differs from the config's `expected_patients`."""
    expected = protocol.expected_patients
    if expected is None or found == expected:
        return
    scope = f" in {', '.join(protocol.sets)}" if protocol.sets else ""
    raise PrrmseError(
        root, f"{found} {what} found{scope}, but {protocol.where}.expected_patients is {expected}"
    )


def patient_of(case: str, pattern: re.Pattern[str] | None, file: Path, where: str) -> str:
    """The patient ID of a case name: the pattern's group (or whole match), else the name."""
    if pattern is None:
        return case
    match = pattern.search(case)
    if match is None:
        raise PrrmseError(
            file, f"case name {case!r} does not match {where}.patient_id {pattern.pattern!r}"
        )
    patient = match.group(1) if pattern.groups else match.group(0)
    if not patient:
        raise PrrmseError(
            file, f"{where}.patient_id {pattern.pattern!r} finds an empty ID in {case!r}"
        )
    return patient


def explicit_order(names: Iterable[str], order: Sequence[str], where: str) -> list[str]:
    """`order` itself, once every listed ID is found and every found ID is listed; `where`
    names the config key in messages."""
    found = set(names)
    repeated = sorted(n for n, count in Counter(order).items() if count > 1)
    if repeated:
        raise PrrmseError(where, f"patients listed twice: {repeated[:8]}")
    missing, unlisted = [n for n in order if n not in found], natural_sorted(found - set(order))
    if missing or unlisted:
        parts = []
        if missing:
            parts.append(f"listed but not found {missing[:8]}")
        if unlisted:
            parts.append(f"found but not listed {unlisted[:8]}")
        raise PrrmseError(where, "patient order does not match the data: " + "; ".join(parts))
    return list(order)
