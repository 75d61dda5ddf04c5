"""RVSC folders: where each patient's DICOM images and manual contours lie (`find_patients`).

Layout: `<set>/patientNN/PNNdicom/PNN-NNNN.dcm`; contours in
`<set>/patientNN/PNNcontours-manual/` or, as the test sets were distributed,
`<set>Contours/PNNcontours-manual/`. `PNNlist.txt` is not read: its Windows paths point
into the patient folder even where the contours lie elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from prrmse.core.errors import PrrmseError
from prrmse.data.protocol import set_folders

PATIENT_DIR = re.compile(r"patient(\d{2})")


@dataclass(frozen=True)
class RvscPatient:
    name: str
    group: str
    dicom_dir: Path
    contour_dir: Path


def _is_patient_dir(folder: Path) -> bool:
    match = PATIENT_DIR.fullmatch(folder.name)
    return match is not None and (folder / f"P{match.group(1)}dicom").is_dir()


def _contour_dir(set_dir: Path, patient_dir: Path) -> Path | None:
    pnn = f"P{patient_dir.name[-2:]}"
    contours_set = set_dir.parent / f"{set_dir.name}Contours"
    for candidate in (
        patient_dir / f"{pnn}contours-manual",
        contours_set / f"{pnn}contours-manual",
        contours_set / patient_dir.name / f"{pnn}contours-manual",
    ):
        if candidate.is_dir():
            return candidate
    return None


def find_patients(root: Path, sets: tuple[str, ...] | None = None) -> list[RvscPatient]:
    """Patients of every set folder under root (or under each of its `sets` folders) that
    has manual contours, sorted by name; a listed set without contoured patients is refused."""
    patients: dict[str, RvscPatient] = {}
    for folder in set_folders(root, sets):
        before = len(patients)
        _find_in(folder, patients)
        if sets is not None and len(patients) == before:
            raise PrrmseError(
                folder,
                f"no patients with manual contours in this set folder or in {folder.name}Contours/",
            )
    return [patients[name] for name in sorted(patients)]


def _find_in(top: Path, patients: dict[str, RvscPatient]) -> None:
    # followlinks=False: symlinked folders are listed but never entered, so loops cannot hang.
    for dirpath, dirnames, _ in os.walk(top, followlinks=False):
        dirnames.sort()
        set_dir = Path(dirpath)
        patient_dirs = [set_dir / name for name in dirnames if _is_patient_dir(set_dir / name)]
        dirnames[:] = [name for name in dirnames if set_dir / name not in patient_dirs]
        contour_dirs = {p: _contour_dir(set_dir, p) for p in patient_dirs}
        # A set without any contours (Test2Set downloaded without Test2SetContours) has
        # nothing to yield; a set with some but not all is a broken download.
        if not any(contour_dirs.values()):
            continue
        for patient_dir, contour_dir in contour_dirs.items():
            if contour_dir is None:
                pnn = f"P{patient_dir.name[-2:]}"
                raise PrrmseError(
                    patient_dir,
                    f"no {pnn}contours-manual folder here or in {set_dir.name}Contours/",
                )
            if patient_dir.name in patients:
                raise PrrmseError(
                    patient_dir,
                    f"patient also found at {patients[patient_dir.name].dicom_dir.parent}",
                )
            patients[patient_dir.name] = RvscPatient(
                name=patient_dir.name,
                group=set_dir.name,
                dicom_dir=patient_dir / f"P{patient_dir.name[-2:]}dicom",
                contour_dir=contour_dir,
            )
