"""The CKA figure: layer x layer linear CKA of BN outputs for one model pair, and per layer.

Panel (a) is the heatmap of every (BN layer of model_a, BN layer of model_b) pair (viridis
on a fixed 0..1 scale, so figures of different pairs compare by colour; layer 1 bottom
left, so matching layers run up the diagonal). Panel (b) is the per-layer CKA (the
diagonal, layer i of a against layer i of b) as bars, with each layer's best match
anywhere in b as a line: a layer whose features exist at another depth of b shows a
high line over a low bar. Undefined CKA (a layer with constant output) is grey in (a)
and a gap in (b). House style comes from `prrmse.figures.style`, saving and provenance from
`prrmse.figures.saving`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from prrmse.core.errors import PrrmseError
from prrmse.core.tabular import CKA_COLUMNS
from prrmse.figures.inputs import check_unique, read_input
from prrmse.figures.model_labels import short_names
from prrmse.figures.saving import figure_provenance, save_figure
from prrmse.figures.style import OKABE_ITO, WIDTH_IN, house_style, layer_axis, legend, panel_title

WHAT = "Linear CKA of BN outputs"
NAN_COLOUR = "#DDDDDD"
# Tick every layer up to these counts (a square heatmap is narrower than the bar panel).
HEATMAP_EVERY_UP_TO = 12
BARS_EVERY_UP_TO = 12


def cka_grid(table: pd.DataFrame) -> pd.DataFrame:
    """CKA as a DataFrame: rows BN layers 1..La of model_a, columns 1..Lb of model_b."""
    grid = table.pivot(index="layer_a", columns="layer_b", values="cka").astype(float)
    n_a, n_b = int(table["layer_a"].max()), int(table["layer_b"].max())
    return grid.reindex(index=range(1, n_a + 1), columns=range(1, n_b + 1))


def _layer_ticks(n_layers: int, every_up_to: int) -> list[int]:
    # Every layer up to `every_up_to`; beyond that every other one, so labels never collide.
    step = 1 if n_layers <= every_up_to else 2
    return list(range(1, n_layers + 1, step))


def _draw_heatmap(ax: Axes, grid: pd.DataFrame, label_a: str, label_b: str) -> Any:
    n_a, n_b = grid.shape
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=NAN_COLOUR)
    image = ax.imshow(
        np.ma.masked_invalid(grid.to_numpy()),
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        origin="lower",
        extent=(0.5, n_b + 0.5, 0.5, n_a + 0.5),
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_box_aspect(1)
    ax.set_xticks(_layer_ticks(n_b, HEATMAP_EVERY_UP_TO))
    ax.set_yticks(_layer_ticks(n_a, HEATMAP_EVERY_UP_TO))
    ax.set_xticks(range(1, n_b + 1), minor=True)
    ax.set_yticks(range(1, n_a + 1), minor=True)
    ax.set_xlabel(f"BN layer of {label_b}")
    ax.set_ylabel(f"BN layer of {label_a}")
    ax.grid(False)
    return image


def _draw_per_layer(ax: Axes, grid: pd.DataFrame, label_b: str) -> list[Any]:
    n_diag = min(grid.shape)
    layers = np.arange(1, n_diag + 1)
    diagonal = np.array([grid.iat[i, i] for i in range(n_diag)])
    best = grid.max(axis=1, skipna=True).to_numpy()[:n_diag]
    ax.bar(layers, diagonal, width=0.7, color=OKABE_ITO[1], zorder=2)
    ax.plot(layers, best, color=OKABE_ITO[4], marker="o", ms=3.5, lw=1.1, zorder=3)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("linear CKA")
    layer_axis(ax, n_diag, "BN layer (forward order)")
    if n_diag > BARS_EVERY_UP_TO:
        ax.set_xticks(_layer_ticks(n_diag, BARS_EVERY_UP_TO))
        ax.set_xticks(layers, minor=True)
    return [
        Patch(color=OKABE_ITO[1], label="same layer in both models (diagonal of (a))"),
        Line2D(
            [],
            [],
            color=OKABE_ITO[4],
            marker="o",
            ms=3.5,
            lw=1.1,
            label=f"best match over all layers of {label_b}",
        ),
    ]


def draw_cka(table: pd.DataFrame, record: dict[str, Any], where: Path) -> Figure:
    pairs = list(dict.fromkeys(zip(table["model_a"], table["model_b"], strict=True)))
    if len(pairs) != 1:
        raise PrrmseError(where, f"holds {len(pairs)} model pairs; the CKA figure draws one")
    model_a, model_b = (str(name) for name in pairs[0])
    labels = short_names([model_a, model_b])
    label_a, label_b = labels[model_a], labels[model_b]
    if label_a == label_b:
        # The same name on both sides (a model against itself, or two folders of one name).
        label_a, label_b = f"{label_a} (a)", f"{label_b} (b)"
    grid = cka_grid(table)

    figure = Figure(figsize=(WIDTH_IN, 3.9), layout="constrained")
    # Room between the colour bar's label and the bar panel's axis label.
    figure.get_layout_engine().set(wspace=0.08)
    heat_ax, line_ax = figure.subplots(1, 2, width_ratios=[1.0, 1.05])
    image = _draw_heatmap(heat_ax, grid, label_a, label_b)
    figure.colorbar(image, ax=heat_ax, shrink=0.85, pad=0.02, label="linear CKA")
    panel_title(heat_ax, 0, "every pair of BN layers")
    handles = _draw_per_layer(line_ax, grid, label_b)
    panel_title(line_ax, 1, "per layer")
    if grid.isna().to_numpy().any():
        handles.append(Patch(color=NAN_COLOUR, label="undefined (constant layer output)"))
    legend(figure, handles)
    n_images = record.get("n_images")
    slices = f" on {n_images} validation slices" if n_images else ""
    figure.suptitle(f"{WHAT}: {label_a} vs {label_b}{slices}")
    return figure


def draw_cka_figure(csv_path: Path, out_stem: Path) -> None:
    """<out_stem>.png and .pdf from a `prrmse.analysis.cka.run_cka` CSV, provenance stamped."""
    csv_path = Path(csv_path)
    table, record = read_input(csv_path, CKA_COLUMNS)
    check_unique(table, ["model_a", "model_b", "layer_a", "layer_b"], csv_path)
    with house_style():
        figure = draw_cka(table, record, csv_path)
    save_figure(figure, Path(out_stem), figure_provenance([csv_path], WHAT))
