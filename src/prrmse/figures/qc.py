"""`prrmse qc`: look at a prepared dataset before any GPU hour is spent on it.

One PNG (and PDF) montage per prepared dataset: a fixed sample of slices of each split
(train, val) - evenly spaced over the split's rows, which run in (patient, phase, slice,
series) order, so the sample spans the patients - with every class's label outline in
the class colours of the paper's figures, and each split's class pixel counts. A label
map that sends the myocardium to the wrong class, a transposed mask or a split without
some class shows at a glance.

Same prepared data, same bytes: the sample is fixed (no seed, no clock) and the
provenance record (inputs and their sha256, no date) is embedded by `figures.save_figure`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.data.processed import NUM_CLASSES, ProcessedDataset, load_processed
from prrmse.figures.saving import save_figure
from prrmse.figures.style import CLASS_COLOURS, CLASS_NAMES, WIDTH_IN, house_style

SPLITS = ("train", "val")
MAX_COLUMNS = 4
SPLIT_HEADER_IN = 0.5  # a split's two title lines
PANEL_TITLE_IN = 0.2
INPUT_FILES = ("images.npy", "labels.npy", "index.csv", "meta.json")
_COUNT_CHUNK = 256


@dataclass(frozen=True)
class SplitSummary:
    """What the montage shows of one split: its sample and its class pixel counts."""

    split: str
    n_slices: int
    n_patients: int
    sample: list[int]  # rows of images.npy, in index order
    pixel_counts: list[int]  # per class 0..3, over every slice of the split


def sample_rows(rows: np.ndarray, k: int) -> list[int]:
    """`k` rows evenly spaced over `rows` (all of them when there are no more than k)."""
    if len(rows) <= k:
        return [int(r) for r in rows]
    positions = np.rint(np.linspace(0, len(rows) - 1, k)).astype(int)
    return [int(rows[p]) for p in positions]


def class_counts(labels: np.ndarray, rows: np.ndarray) -> list[int]:
    """Pixels of each class 0..3 over the given rows, read in chunks (labels are mapped)."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for start in range(0, len(rows), _COUNT_CHUNK):
        block = np.asarray(labels[rows[start : start + _COUNT_CHUNK]])
        counts += np.bincount(block.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return [int(c) for c in counts]


def summarise_split(data: ProcessedDataset, split: str, k: int) -> SplitSummary:
    rows = data.rows(split)
    if len(rows) == 0:
        raise PrrmseError(data.root / "index.csv", f"the {split} split is empty: nothing to show")
    return SplitSummary(
        split=split,
        n_slices=len(rows),
        n_patients=len(data.patients(split)),
        sample=sample_rows(rows, k),
        pixel_counts=class_counts(data.labels, rows),
    )


def _counts_line(summary: SplitSummary) -> str:
    total = sum(summary.pixel_counts) or 1
    parts = [
        f"{CLASS_NAMES[c]} {n:,} px ({100 * n / total:.1f} %)"
        for c, n in enumerate(summary.pixel_counts)
    ]
    return ", ".join(parts)


def _slice_label(data: ProcessedDataset, row: int, series: bool) -> str:
    """patient, phase (ACDC, RVSC), slice s<k> and, for series data (T1), image t<k>."""
    entry = data.index.iloc[row]
    parts = [str(entry["patient"])]
    if entry.get("phase"):
        parts.append(str(entry["phase"]))
    parts.append(f"s{int(entry['slice'])}")
    if series:
        parts.append(f"t{int(entry['series'])}")
    return " ".join(parts)


def _draw_slice(ax: Axes, image: np.ndarray, label: np.ndarray, title: str) -> None:
    low, high = np.percentile(image, [1, 99])
    ax.imshow(
        image, cmap="gray", vmin=low, vmax=high if high > low else low + 1, interpolation="nearest"
    )
    for c in range(1, NUM_CLASSES):
        mask = label == c
        if mask.any():
            ax.contour(
                mask.astype(np.float32), levels=[0.5], colors=[CLASS_COLOURS[c]], linewidths=1.0
            )
    ax.set_title(title, fontsize=7, pad=2)
    ax.set_axis_off()


def _label_map_text(meta: dict[str, Any]) -> str:
    mapping = (
        ((meta.get("provenance") or {}).get("config") or {}).get("dataset", {}).get("label_map")
    )
    if not isinstance(mapping, dict):
        return ""
    shown = ", ".join(f"{k}->{CLASS_NAMES.get(int(v), v)}" for k, v in mapping.items())
    return f"; label map {shown}"


def _read_meta(root: Path) -> dict[str, Any]:
    path = root / "meta.json"
    if not path.is_file():
        raise PrrmseError(path, "file not found (was the dataset prepared completely?)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PrrmseError(path, f"not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise PrrmseError(path, "not a JSON object")
    return meta


def draw_qc(
    data: ProcessedDataset, name: str, summaries: Sequence[SplitSummary], meta: dict[str, Any]
) -> Figure:
    """The montage: per split a header with its counts, then its sample in rows of four."""
    columns = min(MAX_COLUMNS, max(len(s.sample) for s in summaries))
    grid_rows = [-(-len(s.sample) // columns) for s in summaries]
    height, width = data.images.shape[1:]
    panel_in = WIDTH_IN / columns * height / width + PANEL_TITLE_IN
    heights = [SPLIT_HEADER_IN + rows * panel_in for rows in grid_rows]
    figure = Figure(figsize=(WIDTH_IN, sum(heights) + 0.7), layout="constrained")
    shape = f"{height}x{width}"
    series = "series" in data.index.columns and bool((data.index["series"] > 0).any())
    figure.suptitle(
        f"QC {name}: {len(data.index)} prepared slices of {shape} px{_label_map_text(meta)}",
        fontsize=9,
    )
    parts = figure.subfigures(len(summaries), 1, height_ratios=heights, squeeze=False)[:, 0]
    for part, summary, rows in zip(parts, summaries, grid_rows, strict=True):
        part.suptitle(
            f"{summary.split}: {summary.n_patients} patients, {summary.n_slices} slices"
            f" (showing {len(summary.sample)})\n{_counts_line(summary)}",
            fontsize=8,
        )
        axes = part.subplots(rows, columns, squeeze=False).ravel()
        for ax, row in zip(axes, summary.sample, strict=False):
            title = _slice_label(data, row, series)
            _draw_slice(ax, np.asarray(data.images[row]), np.asarray(data.labels[row]), title)
        for ax in axes[len(summary.sample) :]:
            ax.set_axis_off()
    absent = [c for c in range(NUM_CLASSES) if not any(s.pixel_counts[c] for s in summaries)]
    handles = [
        Line2D(
            [],
            [],
            color=CLASS_COLOURS[c],
            lw=1.5,
            label=f"{c} {CLASS_NAMES[c]} outline" + (" (absent)" if c in absent else ""),
        )
        for c in range(1, NUM_CLASSES)
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return figure


def run_qc(data_dir: Path, out_base: Path, name: str, slices_per_split: int) -> tuple[Path, Path]:
    """Write <out_base>.png and .pdf for the prepared dataset in `data_dir`."""
    if slices_per_split < 1:
        raise PrrmseError(
            "config qc.slices_per_split", f"must be at least 1, got {slices_per_split}"
        )
    data_dir = Path(data_dir)
    data = load_processed(data_dir)
    meta = _read_meta(data_dir)
    summaries = [summarise_split(data, split, slices_per_split) for split in SPLITS]
    record = provenance.stamp(
        figure=f"qc {name}",
        inputs={str(data_dir / f): sha256_file(data_dir / f) for f in INPUT_FILES},
        qc={
            "dataset": name,
            "slices_per_split": slices_per_split,
            "splits": {
                s.split: {"sample_rows": s.sample, "pixel_counts": s.pixel_counts}
                for s in summaries
            },
        },
    )
    with house_style():
        figure = draw_qc(data, name, summaries, meta)
        return save_figure(figure, Path(out_base), record)
