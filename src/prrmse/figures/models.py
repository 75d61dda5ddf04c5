"""Figures of the RMSE between models' parameters: 6 / 10 RMSE of conv W and B for one
target/source pair, 11 / 12 RMSE of every kind for every pair of a group, with the
pair-by-pair matrix of mean W RMSE (rmse CSV, model_a/model_b).

House style comes from `prrmse.figures.style`, saving and provenance from
`prrmse.figures.saving`, model labels from `prrmse.figures.model_labels`. The head is left
out; an absent kind (a conv without bias) is a gap over a grey band, never a 0. The BN
scale and shift figures (5 / 9) are `prrmse.figures.bnstats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prrmse.core.errors import PrrmseError
from prrmse.core.kinds import BN_KINDS, CONV_KINDS, FAMILY_OF_KIND
from prrmse.figures.inputs import (
    absent_layers,
    check_unique,
    layer_count,
    read_input,
)
from prrmse.figures.model_labels import short_names
from prrmse.figures.saving import figure_provenance, save_figure
from prrmse.figures.style import (
    KIND_TITLES,
    MARKERS,
    OKABE_ITO,
    absent_handle,
    floor_band,
    floor_handle,
    has_intervals,
    house_style,
    interval_band,
    interval_handle,
    layer_axis,
    legend,
    new_figure,
    panel_title,
    shade_absent,
)
from prrmse.results.floor import floor_for

# the columns these figures read: a subset of prrmse.core.tabular.RMSE_COLUMNS
RMSE_COLUMNS_READ = ["family", "layer", "head", "kind", "status", "rmse"]
FLOOR_COLUMNS = ["network", "family", "layer", "kind", "floor", "floor_low", "floor_high"]


def model_pairs(table: pd.DataFrame, where: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Models in order of appearance and the pairs; a one-pair table may lack model_a/b."""
    if "model_a" not in table or "model_b" not in table:
        check_unique(table, ["family", "layer", "kind"], where)
        return ["A", "B"], [("A", "B")]
    check_unique(table, ["model_a", "model_b", "family", "layer", "kind"], where)
    pairs = list(dict.fromkeys(zip(table["model_a"], table["model_b"], strict=True)))
    return list(dict.fromkeys(name for pair in pairs for name in pair)), pairs


def rmse_series(
    table: pd.DataFrame, pair: tuple[str, str], kind: str, n_layers: int, value: str = "rmse"
) -> pd.Series:
    """RMSE per layer 1..n of one pair and kind, head excluded; NaN where absent."""
    rows = table[(table["kind"] == kind) & ~table["head"] & (table["status"] == "compared")]
    if "model_a" in table:
        rows = rows[(rows["model_a"] == pair[0]) & (rows["model_b"] == pair[1])]
    series = rows.set_index("layer")[value].astype(float)
    return series.reindex(range(1, n_layers + 1))


def rmse_matrix(table: pd.DataFrame, models: Sequence[str], kind: str = "W") -> pd.DataFrame:
    """Models x models mean RMSE over the kind's compared layers (head excluded), symmetric;
    NaN on the diagonal and for pairs the table lacks."""
    matrix = pd.DataFrame(np.nan, index=list(models), columns=list(models))
    rows = table[(table["kind"] == kind) & ~table["head"] & (table["status"] == "compared")]
    for (a, b), pair_rows in rows.groupby(["model_a", "model_b"], sort=False):
        matrix.loc[a, b] = matrix.loc[b, a] = float(pair_rows["rmse"].astype(float).mean())
    return matrix


def _draw_pairs(
    ax: Axes,
    table: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    kind: str,
    labels: dict[str, str],
    floor: pd.DataFrame | None = None,
) -> bool:
    """One line per pair on the kind's panel (with its interval band where the table has
    one, over the seed-to-seed floor where given); True if the kind is absent somewhere."""
    family = FAMILY_OF_KIND[kind]
    n_layers = layer_count(table, family)
    absent = shade_absent(ax, absent_layers(table, family, kind), n_layers, kind)
    floor_band(ax, floor_for(floor, network_of(table), family, kind, n_layers))
    for number, pair in enumerate(pairs):
        series = rmse_series(table, pair, kind, n_layers)
        colour = OKABE_ITO[number % len(OKABE_ITO)]
        ax.plot(
            series.index,
            series.to_numpy(),
            lw=1.1,
            ms=3.5,
            color=colour,
            marker=MARKERS[number % len(MARKERS)],
            label=f"{labels[pair[0]]} vs {labels[pair[1]]}",
        )
        if has_intervals(table, "rmse"):
            low = rmse_series(table, pair, kind, n_layers, "rmse_low")
            high = rmse_series(table, pair, kind, n_layers, "rmse_high")
            interval_band(ax, series.index, low, high, colour)
    ax.set_ylabel("RMSE")
    ax.set_ylim(bottom=0)
    return absent


def network_of(table: pd.DataFrame) -> str:
    return str(table["model_a"].iloc[0]).split("-")[0] if "model_a" in table.columns else ""


def read_floor(floor_csv: Path | None) -> pd.DataFrame | None:
    return None if floor_csv is None else read_input(Path(floor_csv), FLOOR_COLUMNS)[0]


def extra_handles(figure_axes: Sequence[Axes], table: pd.DataFrame) -> list[Any]:
    """Legend entries for the floor band and the interval bands, where drawn."""
    handles: list[Any] = []
    floors = [c for ax in figure_axes for c in ax.collections if "floor" in str(c.get_label())]
    if floors:
        handles.append(floor_handle(str(floors[0].get_label())))
    if has_intervals(table, "rmse"):
        handles.append(interval_handle(table))
    return handles


def draw_conv_rmse(
    table: pd.DataFrame, title: str, where: Path, floor: pd.DataFrame | None = None
) -> Figure:
    models, pairs = model_pairs(table, where)
    labels = short_names(models)
    figure, axes = new_figure(2, 4.6)
    n_layers = layer_count(table, "conv")
    if n_layers == 0:
        raise PrrmseError(where, "has no conv layers (head excluded)")
    absent = False
    for index, (ax, kind) in enumerate(zip(axes, CONV_KINDS, strict=True)):
        absent |= _draw_pairs(ax, table, pairs, kind, labels, floor)
        panel_title(ax, index, f"RMSE of {KIND_TITLES[kind]}")
        layer_axis(ax, n_layers, None)
    layer_axis(axes[-1], n_layers, "Conv layer (forward order, head excluded)")
    handles: list[Any] = [
        h for h in axes[0].get_legend_handles_labels()[0] if isinstance(h, Line2D)
    ]
    handles += extra_handles(axes, table)
    handles += [absent_handle("B")] if absent else []
    legend(figure, handles)
    figure.suptitle(title)
    return figure


def _draw_matrix(ax: Axes, matrix: pd.DataFrame, labels: dict[str, str]) -> None:
    values = matrix.to_numpy(dtype=float)
    # No colour bar: every cell is annotated, and a bar would narrow the W and B panels.
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#EEEEEE")
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    # From 0, so colour reads as distance: near-equal RMSEs must not look far apart.
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=top)
    names = [labels[name] for name in matrix.index]
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(names)), names)
    ax.grid(False)
    middle = top / 2
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            # Dark text on the bright (high) end of viridis, white on the dark end.
            colour = "#000000" if value > middle else "#FFFFFF"
            ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=8, color=colour)


def draw_group_rmse(
    table: pd.DataFrame, title: str, where: Path, floor: pd.DataFrame | None = None
) -> Figure:
    models, pairs = model_pairs(table, where)
    labels = short_names(models)
    compared = set(table.loc[~table["head"] & (table["status"] == "compared"), "kind"])
    left = [kind for kind in BN_KINDS if kind in compared]
    right = [kind for kind in CONV_KINDS if kind in compared]
    if not left and not right:
        raise PrrmseError(where, "has no compared tensors (head excluded)")
    rows = max(len(left), len(right) + 2)
    figure = Figure(figsize=(7.0, 1.75 * rows + 1.6), layout="constrained")
    # Two subfigures, so each column lays out its own rows (BN and conv axes differ).
    bn_side, conv_side = figure.subfigures(1, 2, wspace=0.02)
    conv_rows = [1] * len(right) + [max(2, rows - len(right))]
    conv_grid = conv_side.add_gridspec(len(conv_rows), 1, height_ratios=conv_rows)
    panels = [(bn_side.add_subplot(len(left), 1, row + 1), kind) for row, kind in enumerate(left)]
    panels += [(conv_side.add_subplot(conv_grid[row, 0]), kind) for row, kind in enumerate(right)]
    absent = False
    for index, (ax, kind) in enumerate(panels):
        absent |= _draw_pairs(ax, table, pairs, kind, labels, floor)
        panel_title(ax, index, KIND_TITLES[kind])
        family = FAMILY_OF_KIND[kind]
        last = kind in (left[-1:] + right[-1:])
        label = f"{'BN' if family == 'bn' else 'Conv'} layer (head excluded)" if last else None
        layer_axis(ax, layer_count(table, family), label)
        ax.tick_params(axis="x", labelrotation=90, labelbottom=last)
    matrix_ax = conv_side.add_subplot(conv_grid[len(right), 0])
    _draw_matrix(matrix_ax, rmse_matrix(table, models), labels)
    panel_title(matrix_ax, len(panels), "RMSE matrix: mean over W layers")
    handles: list[Any] = [
        h for h in panels[0][0].get_legend_handles_labels()[0] if isinstance(h, Line2D)
    ]
    handles += extra_handles([ax for ax, _ in panels], table)
    handles += [absent_handle("B")] if absent else []
    legend(figure, handles)
    figure.suptitle(title)
    return figure


def _title(record: dict[str, Any], table: pd.DataFrame, what: str, where: Path) -> str:
    models, _ = model_pairs(table, where)
    if models == ["A", "B"] and "models" in record:
        models = list(record["models"])
    names = list(short_names(models).values())
    if models == ["A", "B"]:
        return f"{what}: {where.stem}"
    return f"{what}: {' vs '.join(names) if len(names) == 2 else ', '.join(names)}"


def plot_conv_rmse(
    rmse_csv: Path, out_base: Path, title: str | None = None, floor_csv: Path | None = None
) -> Figure:
    """Figures 6 / 10: RMSE of conv W and B per conv layer, one line per model pair."""
    table, record = read_input(rmse_csv, RMSE_COLUMNS_READ)
    what = "RMSE of conv weights and biases"
    with house_style():
        title = title or _title(record, table, what, rmse_csv)
        figure = draw_conv_rmse(table, title, rmse_csv, read_floor(floor_csv))
    inputs = [rmse_csv] + ([Path(floor_csv)] if floor_csv else [])
    save_figure(figure, out_base, figure_provenance(inputs, what))
    return figure


def plot_group_rmse(
    rmse_csv: Path, out_base: Path, title: str | None = None, floor_csv: Path | None = None
) -> Figure:
    """Figures 11 / 12: RMSE per layer and kind for every pair of a group, and its matrix."""
    table, record = read_input(rmse_csv, [*RMSE_COLUMNS_READ, "model_a", "model_b"])
    what = "Layer-wise RMSE between models"
    with house_style():
        title = title or _title(record, table, what, rmse_csv)
        figure = draw_group_rmse(table, title, rmse_csv, read_floor(floor_csv))
    inputs = [rmse_csv] + ([Path(floor_csv)] if floor_csv else [])
    save_figure(figure, out_base, figure_provenance(inputs, what))
    return figure
