"""One rendered slice of a synthetic patient: tissue map, ACDC labels and RV contours.

`render_slice` renders a slice of a `prrmse.data.anatomy.PatientAnatomy` from its depth
along the long axis (0 base .. 1 apex) and its contraction (0 end-diastole .. 1
end-systole). Sizes are in mm and rasterised with the patient's pixel spacing; pixel
(row, col) has its centre at (row, col) * spacing.

The LV is described in polar coordinates around its centre, the angle measured
from the direction of the RV, so the RV crescent, the septum and regional wall
changes are all simple functions of that angle and the whole slice is computed
with a few vectorised numpy expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from PIL import Image, ImageDraw

from prrmse.data.anatomy import PatientAnatomy

_MIN_RV_PIXELS = 4


class Tissue(IntEnum):
    """Tissue codes of the rendered slice; intensities are looked up per dataset."""

    AIR = 0
    BODY = 1
    FAT = 2
    LUNG = 3
    LIVER = 4
    LV_BLOOD = 5
    RV_BLOOD = 6
    MYOCARDIUM = 7
    RV_WALL = 8


# ACDC labels: 0 background, 1 RV cavity, 2 myocardium, 3 LV cavity.
TISSUE_TO_ACDC_LABEL = np.zeros(len(Tissue), dtype=np.uint8)
TISSUE_TO_ACDC_LABEL[[Tissue.RV_BLOOD, Tissue.MYOCARDIUM, Tissue.LV_BLOOD]] = [1, 2, 3]


@dataclass(frozen=True)
class SliceGeometry:
    """One rendered slice. Contours are (n, 2) pixel coordinates, x = column, y = row."""

    tissue: np.ndarray
    labels: np.ndarray
    rv_endo: np.ndarray | None
    rv_epi: np.ndarray | None


def _wall_radii(
    a: PatientAnatomy, phi: np.ndarray, depth: float, contraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """LV endo- and epicardial radius (mm) at angles `phi` measured from the RV direction."""
    shape_term = 1 + a.lv_ellipticity * np.cos(2 * (phi - a.lv_ellipse_angle))
    endo_ed = a.lv_radius * (1 - 0.6 * depth**1.5) * shape_term
    offset = (phi - a.lesion_angle + np.pi) % (2 * np.pi) - np.pi
    lesion = np.exp(-0.5 * (offset / 0.45) ** 2)
    thickness = (
        a.myo_thickness
        * (1 + a.myo_variation * np.cos(phi - a.myo_variation_angle))
        * (1 + a.lesion_strength * lesion)
    )
    epi_ed = endo_ed + thickness
    endo = endo_ed * (1 - a.lv_contraction * contraction)
    # The myocardium keeps its area while it contracts, so it thickens at ES.
    epi = np.sqrt(endo**2 + epi_ed**2 - endo_ed**2)
    return endo, epi


def _crescent(
    a: PatientAnatomy, centre: np.ndarray, depth: float, contraction: float, pad: float
) -> np.ndarray | None:
    """RV crescent polygon (pixel x, y) outside the LV epicardium, grown by `pad` mm."""
    presence = max(0.0, 1 - depth / a.rv_end_depth) ** 0.7
    width = a.rv_width * presence * (1 - a.rv_contraction * contraction) + pad
    span = a.rv_span * (0.6 + 0.4 * presence) + (pad / a.lv_radius if pad else 0.0)
    if presence == 0.0 or width < a.spacing_mm:
        return None
    n = max(16, int(4 * span * (a.lv_radius + width) / a.spacing_mm))
    phi = np.linspace(-span, span, n)
    _, epi = _wall_radii(a, phi, depth, contraction)
    profile = np.cos(0.5 * np.pi * phi / span).clip(0) ** 0.6 * (1 + a.rv_skew * phi / span)
    # The inner edge sits half a pixel inside the LV epicardium so that no gap
    # opens between the septum and the cavity when both are rasterised.
    inner, outer = epi - 0.5 * a.spacing_mm, epi + width * profile
    radii = np.concatenate([outer, inner[::-1]])
    angles = a.rv_angle + np.concatenate([phi, phi[::-1]])
    rows = (centre[0] + radii * np.sin(angles)) / a.spacing_mm
    cols = (centre[1] + radii * np.cos(angles)) / a.spacing_mm
    return np.stack([cols, rows], axis=1)


def _snap(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Integer vertices inside the image, consecutive duplicates dropped.

    PIL truncates float vertices and cv2.fillPoly needs integers, so integer
    vertices make every loader rebuild exactly the mask drawn here.
    """
    snapped = np.rint(polygon)
    snapped[:, 0] = snapped[:, 0].clip(0, shape[1] - 1)
    snapped[:, 1] = snapped[:, 1].clip(0, shape[0] - 1)
    keep = np.any(snapped != np.roll(snapped, 1, axis=0), axis=1)
    return snapped[keep]


def fill_polygon(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of a polygon of (x = column, y = row) vertices, outline included.

    PIL's fill leaves out some edge pixels that cv2.fillPoly (the RVSC reference
    loader) draws; adding the closed outline gives the cv2 mask.
    """
    vertices = [tuple(p) for p in polygon.tolist()]
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    draw.polygon(vertices, fill=1)
    draw.line([*vertices, vertices[0]], fill=1, width=1)
    return np.asarray(canvas, dtype=bool)


def _inside_ellipse(
    rows: np.ndarray, cols: np.ndarray, centre: tuple[float, float], axes: tuple[float, float]
) -> np.ndarray:
    return ((rows - centre[0]) / axes[0]) ** 2 + ((cols - centre[1]) / axes[1]) ** 2 <= 1.0


def _heart_bound(a: PatientAnatomy) -> float:
    """Radius (mm) around the LV centre beyond which no LV wall or pericardial fat lies."""
    wall = a.myo_thickness * (1 + a.myo_variation) * (1 + abs(a.lesion_strength))
    return a.lv_radius * (1 + a.lv_ellipticity) + wall + a.fat_thickness + 2 * a.spacing_mm


def _paint_background(
    a: PatientAnatomy, shape: tuple[int, int], centre: np.ndarray, depth: float
) -> np.ndarray:
    """Air, body, subcutaneous fat, lungs and liver of a slice, as tissue codes."""
    rows = np.arange(shape[0], dtype=np.float32)[:, None] * np.float32(a.spacing_mm)
    cols = np.arange(shape[1], dtype=np.float32)[None, :] * np.float32(a.spacing_mm)
    tissue = np.full(shape, Tissue.AIR, dtype=np.uint8)
    body = _inside_ellipse(rows, cols, a.body_centre, a.body_axes)
    inner_axes = (a.body_axes[0] - a.skin_fat, a.body_axes[1] - a.skin_fat)
    tissue[body] = Tissue.FAT
    tissue[body & _inside_ellipse(rows, cols, a.body_centre, inner_axes)] = Tissue.BODY
    # Lungs flank the heart left and right, past a gap of mediastinal tissue.
    mediastinum = (_heart_bound(a) + a.rv_width + a.rv_wall + a.lung_gap,) * 2
    outside_heart = ~_inside_ellipse(rows, cols, tuple(centre), mediastinum)
    lung_axes = (0.55 * a.body_axes[0], 0.4 * a.body_axes[1])
    for side in (-1, 1):
        lung_centre = (
            a.body_centre[0] - 0.2 * a.body_axes[0],
            a.body_centre[1] + side * 0.55 * a.body_axes[1],
        )
        lung = _inside_ellipse(rows, cols, lung_centre, lung_axes)
        tissue[lung & body & outside_heart] = Tissue.LUNG
    # The liver rises into the slice below the heart towards the apex.
    liver_axes = (a.lv_radius * (0.5 + 2.5 * depth), a.lv_radius * (1 + 3 * depth))
    liver_centre = (centre[0] + 2.2 * a.lv_radius + 3 * a.myo_thickness, centre[1])
    tissue[_inside_ellipse(rows, cols, liver_centre, liver_axes) & body] = Tissue.LIVER
    return tissue


def _paint_lv(
    a: PatientAnatomy, tissue: np.ndarray, centre: np.ndarray, depth: float, contraction: float
) -> None:
    """Pericardial fat, myocardium and LV blood, computed only in a box around the LV."""
    bound = _heart_bound(a)
    lo = np.maximum(np.floor((centre - bound) / a.spacing_mm), 0).astype(int)
    hi = np.minimum(np.ceil((centre + bound) / a.spacing_mm) + 1, tissue.shape).astype(int)
    if np.any(hi <= lo):
        return
    d_row = np.arange(lo[0], hi[0], dtype=np.float32)[:, None] * a.spacing_mm - centre[0]
    d_col = np.arange(lo[1], hi[1], dtype=np.float32)[None, :] * a.spacing_mm - centre[1]
    rho = np.hypot(d_row, d_col)
    phi = (np.arctan2(d_row, d_col) - a.rv_angle + np.pi) % (2 * np.pi) - np.pi
    endo, epi = _wall_radii(a, phi, depth, contraction)
    fat_band = a.fat_thickness * (0.5 + 0.5 * np.cos(phi - a.fat_angle)) ** 2
    box = tissue[lo[0] : hi[0], lo[1] : hi[1]]
    box[rho < epi + fat_band + a.spacing_mm] = Tissue.FAT
    box[rho < epi] = Tissue.MYOCARDIUM
    box[rho < endo] = Tissue.LV_BLOOD


def render_slice(
    a: PatientAnatomy, shape: tuple[int, int], depth: float, contraction: float
) -> SliceGeometry:
    """Tissue map, ACDC labels and RV contours of one slice."""
    centre = np.asarray(a.heart_centre) + depth * np.asarray(a.heart_drift)
    tissue = _paint_background(a, shape, centre, depth)
    _paint_lv(a, tissue, centre, depth, contraction)
    rv_endo = _crescent(a, centre, depth, contraction, pad=0.0)
    rv_epi = None
    if rv_endo is not None:
        rv_endo = _snap(rv_endo, shape)
        cavity = fill_polygon(rv_endo, shape)
        if cavity.sum() < _MIN_RV_PIXELS:
            rv_endo = None
        else:
            rv_epi = _snap(_crescent(a, centre, depth, contraction, pad=a.rv_wall), shape)
            outside_lv = (tissue != Tissue.MYOCARDIUM) & (tissue != Tissue.LV_BLOOD)
            tissue[fill_polygon(rv_epi, shape) & outside_lv] = Tissue.RV_WALL
            # Painted last: the RV cavity label is exactly the filled i-contour.
            tissue[cavity] = Tissue.RV_BLOOD
    return SliceGeometry(tissue, TISSUE_TO_ACDC_LABEL[tissue], rv_endo, rv_epi)
