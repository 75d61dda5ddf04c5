"""Synthetic cardiac patients: one patient's anatomy drawn at random (`draw_anatomy`).

A patient is drawn once: pathology group, pixel spacing, heart, body and pathology,
everything that stays fixed across its slices and phases. Each slice is then rendered
from its depth along the long axis (`slice_depths`: 0 base .. 1 apex) and its contraction
(`contraction_at`: 0 end-diastole .. 1 end-systole) by
`prrmse.data.slice_geometry.render_slice`. Sizes are in mm, angles in radians.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")

# Width (mm) of a chest that fills a typical cardiac field of view; smaller
# fields of view (tiny test images) scale the whole anatomy down so it still fits.
_CHEST_FOV_MM = 280.0


@dataclass(frozen=True)
class PatientAnatomy:
    """Everything that stays fixed for a patient across slices and phases (mm, radians)."""

    group: str
    spacing_mm: float
    body_centre: tuple[float, float]
    body_axes: tuple[float, float]
    heart_centre: tuple[float, float]
    heart_drift: tuple[float, float]  # centre shift from base to apex (oblique long axis)
    rv_angle: float  # image direction from LV centre to RV, atan2(d_row, d_col)
    lv_radius: float  # ED endocardial radius at the base
    lv_ellipticity: float
    lv_ellipse_angle: float
    myo_thickness: float
    myo_variation: float
    myo_variation_angle: float
    lesion_angle: float  # MINF: thinned sector; HCM: thickened septum (angle 0)
    lesion_strength: float
    lv_contraction: float  # fractional endocardial radius shrink at ES
    rv_width: float
    rv_span: float  # half-angle of the crescent around the LV
    rv_skew: float
    rv_wall: float
    rv_contraction: float
    rv_end_depth: float  # depth at which the RV has vanished
    fat_thickness: float
    fat_angle: float
    lung_gap: float
    skin_fat: float  # subcutaneous fat under the body outline


class _HeartSize(NamedTuple):
    """Unscaled sizes (mm) and motion of one patient's heart, its group's changes applied."""

    lv_radius: float
    myo: float
    lv_contraction: float
    rv_width: float
    lesion_strength: float
    rv_wall: float
    fat: float


def draw_anatomy(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing_range: tuple[float, float],
) -> PatientAnatomy:
    """Draw one patient's heart, body and pathology group."""
    group = GROUPS[int(rng.integers(len(GROUPS)))]
    # Rounded so DICOM and NIfTI headers store exactly the spacing the geometry used.
    spacing = round(float(rng.uniform(*spacing_range)), 4)
    fov = np.asarray(shape, dtype=float) * spacing
    scale = min(1.0, float(fov.min()) / _CHEST_FOV_MM)
    size = _draw_heart_size(rng, group)
    centre, drift = _place_heart(rng, size, fov, scale, spacing)
    return PatientAnatomy(
        group=group,
        spacing_mm=spacing,
        body_centre=tuple(fov / 2 + rng.uniform(-0.05, 0.05, 2) * fov),
        body_axes=tuple(fov / 2 * rng.uniform(0.8, 1.05, 2)),
        heart_centre=tuple(centre),
        heart_drift=tuple(drift),
        rv_angle=float(np.pi + rng.uniform(-0.5, 0.5)),
        lv_radius=size.lv_radius * scale,
        lv_ellipticity=rng.uniform(0.0, 0.12),
        lv_ellipse_angle=rng.uniform(0, np.pi),
        myo_thickness=size.myo * scale,
        myo_variation=rng.uniform(0.05, 0.2),
        myo_variation_angle=rng.uniform(-np.pi, np.pi),
        lesion_angle=rng.uniform(-np.pi, np.pi) if group == "MINF" else 0.0,
        lesion_strength=size.lesion_strength,
        lv_contraction=size.lv_contraction,
        rv_width=size.rv_width * scale,
        rv_span=rng.uniform(1.2, 1.6),
        rv_skew=rng.uniform(-0.3, 0.3),
        rv_wall=size.rv_wall * scale,
        rv_contraction=rng.uniform(0.2, 0.35),
        rv_end_depth=rng.uniform(0.75, 0.97),
        fat_thickness=size.fat * scale,
        fat_angle=rng.uniform(-np.pi, np.pi),
        lung_gap=rng.uniform(8.0, 20.0) * scale,
        skin_fat=rng.uniform(5.0, 15.0) * scale,
    )


def _draw_heart_size(rng: np.random.Generator, group: str) -> _HeartSize:
    """The heart's sizes and contraction, changed as the pathology group changes them."""
    lv_radius = rng.uniform(20.0, 26.0)
    myo = rng.uniform(7.0, 10.0)
    lv_contraction = rng.uniform(0.28, 0.4)
    rv_width = rng.uniform(22.0, 32.0)
    lesion_strength = 0.0
    if group == "DCM":
        lv_radius, myo, lv_contraction = lv_radius * 1.35, myo * 0.75, lv_contraction * 0.4
    elif group == "HCM":
        lv_radius, myo, lv_contraction = lv_radius * 0.8, myo * 1.6, lv_contraction * 1.2
        lesion_strength = rng.uniform(0.3, 0.6)
    elif group == "MINF":
        lv_radius, lv_contraction = lv_radius * 1.15, lv_contraction * 0.6
        lesion_strength = -rng.uniform(0.35, 0.6)
    elif group == "RV":
        rv_width *= 1.4
    rv_wall = rng.uniform(3.0, 4.5)
    fat = rng.uniform(2.0, 6.0)
    return _HeartSize(lv_radius, myo, lv_contraction, rv_width, lesion_strength, rv_wall, fat)


def _place_heart(
    rng: np.random.Generator, size: _HeartSize, fov: np.ndarray, scale: float, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """The heart's centre at the base and its drift towards the apex (mm)."""
    # Leave room for the whole heart (LV, RV, wall and fat) inside the field of view.
    extent = (size.lv_radius + size.myo + size.rv_width + size.rv_wall + size.fat) * scale
    room = np.maximum(fov / 2 - extent - 2 * spacing, 0.0)
    centre = fov / 2 - spacing / 2 + rng.uniform(-1, 1, 2) * np.minimum(room, 30 * scale)
    drift = rng.uniform(-1, 1, 2) * np.minimum(room / 2, 6 * scale)
    return centre, drift


def contraction_at(cycle_fraction: float, es_fraction: float) -> float:
    """Contraction 0 at ED (cycle start), 1 at ES, back to 0 at the cycle end (smooth)."""
    t = cycle_fraction % 1.0
    if t <= es_fraction:
        return 0.5 * (1 - np.cos(np.pi * t / es_fraction))
    return 0.5 * (1 + np.cos(np.pi * (t - es_fraction) / (1 - es_fraction)))


def slice_depths(n_slices: int) -> np.ndarray:
    """Depth of each slice from base (0) to apex (1); a single slice sits mid-ventricle."""
    return np.linspace(0.0, 1.0, n_slices) if n_slices > 1 else np.array([0.5])
