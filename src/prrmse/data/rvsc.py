"""RVSC loader: every i-contoured image of every patient as a slice record (`iter_rvsc`).

Only images with an i-contour are yielded; the label is the filled i-contour (RV cavity)
with value 1. This module orders them: slice positions from the images' locations, ED or
ES inferred per image, records by (patient, phase, slice). Where the files lie is
`prrmse.data.rvsc_patients`; reading an image and its contour is `prrmse.data.rvsc_images`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prrmse.core.errors import PrrmseError
from prrmse.data.nifti_pairs import require_dir
from prrmse.data.protocol import Protocol, check_patient_count
from prrmse.data.records import RawSlice
from prrmse.data.rvsc_images import ContouredImage, read_contoured_images
from prrmse.data.rvsc_patients import RvscPatient, find_patients

# Slices are ~7 mm apart; images of one slice share its SliceLocation up to rounding.
SAME_LOCATION_MM = 0.5


def slice_indices(locations: list[float]) -> list[int]:
    """Rank of each location among the distinct locations (within SAME_LOCATION_MM), ascending."""
    order = sorted(range(len(locations)), key=lambda i: locations[i])
    ranks = [0] * len(locations)
    rank, start = -1, None
    for i in order:
        if start is None or locations[i] - start > SAME_LOCATION_MM:
            rank, start = rank + 1, locations[i]
        ranks[i] = rank
    return ranks


def assign_phases(images: list[ContouredImage], slices: list[int]) -> list[str]:
    """ED or ES per contoured image: RVSC files do not say which, so it is inferred.

    Within one slice location the contoured image with the lower image number is ED and
    the higher ES: the images of a cine slice are numbered in cardiac-cycle order, which
    starts at the R wave, i.e. near end-diastole. A slice with one contour gets the phase
    whose mean trigger time (over the patient's paired slices) is nearer to its own;
    without trigger times it is ED, since ES (the contracted heart) is the phase that
    loses basal and apical slices.
    """
    phases = [""] * len(images)
    by_slice: dict[int, list[int]] = {}
    for i, s in enumerate(slices):
        by_slice.setdefault(s, []).append(i)
    singles = []
    for members in by_slice.values():
        members.sort(key=lambda i: (images[i].image_number, images[i].contour_file.name))
        if len(members) > 2:
            names = ", ".join(images[i].contour_file.name for i in members[:2])
            raise PrrmseError(
                images[members[2]].contour_file,
                f"a third i-contour at one slice location (after {names})",
            )
        if len(members) == 2:
            phases[members[0]], phases[members[1]] = "ED", "ES"
        else:
            singles.append(members[0])
    times = {
        p: [images[i].dicom.trigger_time for i in range(len(images)) if phases[i] == p]
        for p in ("ED", "ES")
    }
    known = all(t is not None for p in times for t in times[p]) and times["ED"] and times["ES"]
    for i in singles:
        t = images[i].dicom.trigger_time
        if known and t is not None:
            ed, es = float(np.mean(times["ED"])), float(np.mean(times["ES"]))
            phases[i] = "ED" if abs(t - ed) <= abs(t - es) else "ES"
        else:
            phases[i] = "ED"
    return phases


def iter_patient_slices(patient: RvscPatient) -> Iterator[RawSlice]:
    images = read_contoured_images(patient)
    slices = slice_indices([image.dicom.slice_location for image in images])
    phases = assign_phases(images, slices)
    for i in sorted(range(len(images)), key=lambda i: (phases[i], slices[i])):
        image = images[i]
        yield RawSlice(
            patient=patient.name,
            group=patient.group,
            phase=phases[i],
            slice_index=slices[i],
            series_index=0,
            image=image.dicom.pixels,
            label=image.label,
            spacing=image.dicom.spacing,
            image_file=image.dicom_file,
            label_file=image.contour_file,
        )


def iter_rvsc(root: Path, protocol: Protocol | None = None) -> Iterator[RawSlice]:
    """Every i-contoured image of every RVSC patient of the protocol's sets under root, by
    (patient, phase, slice).

    The folder search and the patient count run at call time, so a wrong root fails
    before any file is read.
    """
    root = Path(root)
    protocol = protocol or Protocol()
    require_dir(root)
    patients = find_patients(root, protocol.sets)
    if not patients:
        raise PrrmseError(
            root,
            "no RVSC patients with manual contours found "
            "(<set>/patientNN/PNNdicom/ + PNNcontours-manual/)",
        )
    check_patient_count(root, len(patients), protocol, "patients with manual contours")
    return (record for patient in patients for record in iter_patient_slices(patient))
