"""Figures 3 / 7 (BN) and 4 / 8 (conv): the replacement sweeps, Dice per class after
replacing each layer's tensor of one kind, one panel per kind, the baseline dashed. A kind
absent from a layer (a conv without bias) is a gap over a grey band, never a 0; class 0
(background) is a thin grey series, so a replacement that wrecks the background is
visible; classes 1-3 carry the colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prrmse.core.errors import PrrmseError
from prrmse.core.kinds import BN_KINDS, CONV_KINDS
from prrmse.figures.inputs import (
    absent_layers,
    check_unique,
    default_title,
    layer_count,
    read_input,
)
from prrmse.figures.saving import figure_provenance, save_figure
from prrmse.figures.style import (
    CLASS_COLOURS,
    CLASS_MARKERS,
    CLASS_NAMES,
    KIND_TITLES,
    absent_handle,
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

SWEEP_COLUMNS = ["family", "layer", "head", "kind", "status", "class", "dice", "baseline_dice"]


def sweep_series(
    table: pd.DataFrame, family: str, kind: str, n_layers: int, value: str = "dice"
) -> pd.DataFrame:
    """Dice after replacement (or its interval bound `value`), layers 1..n by class; NaN
    where absent or undefined."""
    rows = table[(table["family"] == family) & ~table["head"] & (table["kind"] == kind)]
    replaced = rows[rows["status"] == "replaced"]
    series = replaced.pivot(index="layer", columns="class", values=value)
    # summaries add class -1, the foreground mean: not a class to draw
    classes = sorted(
        int(c) for c in table.loc[table["family"] != "baseline", "class"].unique() if int(c) >= 0
    )
    return series.reindex(index=range(1, n_layers + 1), columns=classes).astype(float)


def sweep_baseline(table: pd.DataFrame) -> dict[int, float]:
    """Baseline Dice per class: the baseline rows, else the baseline_dice column."""
    baseline = table[table["family"] == "baseline"]
    source = baseline if not baseline.empty else table.assign(dice=table["baseline_dice"])
    return {
        int(c): float(rows["dice"].iloc[0]) for c, rows in source.groupby("class") if int(c) >= 0
    }


def draw_sweep(table: pd.DataFrame, family: str, title: str, where: str | Path = "sweep") -> Figure:
    kinds = BN_KINDS if family == "bn" else CONV_KINDS
    n_layers = layer_count(table, family)
    if n_layers == 0:
        raise PrrmseError(where, f"has no {family} layers (head excluded)")
    baseline = sweep_baseline(table)
    intervals = has_intervals(table, "dice")
    figure, axes = new_figure(len(kinds), 1.4 * len(kinds) + 1.2)
    any_absent = False
    for index, (ax, kind) in enumerate(zip(axes, kinds, strict=True)):
        series = sweep_series(table, family, kind, n_layers)
        any_absent |= shade_absent(ax, absent_layers(table, family, kind), n_layers, kind)
        for cls in series.columns:
            thin, colour = cls == 0, CLASS_COLOURS.get(cls, "#000000")
            ax.plot(
                series.index,
                series[cls],
                marker=CLASS_MARKERS.get(cls, "o"),
                ms=3 if thin else 4,
                lw=0.8 if thin else 1.3,
                color=colour,
            )
            if intervals:
                low = sweep_series(table, family, kind, n_layers, "dice_low")[cls]
                high = sweep_series(table, family, kind, n_layers, "dice_high")[cls]
                interval_band(ax, series.index, low, high, colour)
            if not np.isnan(baseline.get(cls, np.nan)):
                ax.axhline(baseline[cls], ls="--", lw=0.6 if thin else 0.9, color=colour)
        ax.set_ylim(-0.03, 1.05)
        ax.set_ylabel("Dice")
        panel_title(ax, index, f"{KIND_TITLES[kind]} replaced by the source's")
        layer_axis(ax, n_layers, None)
    name = "BN layer" if family == "bn" else "Conv layer"
    layer_axis(axes[-1], n_layers, f"{name} (forward order, head excluded)")
    handles: list[Any] = [
        Line2D(
            [],
            [],
            color=CLASS_COLOURS.get(c, "#000"),
            marker=CLASS_MARKERS.get(c, "o"),
            ms=4,
            lw=1.3,
            label=f"{c} {CLASS_NAMES.get(c, '')}".strip(),
        )
        for c in sorted(baseline)
    ]
    handles.append(
        Line2D([], [], color="#000000", ls="--", lw=0.9, label="baseline (nothing replaced)")
    )
    if intervals:
        handles.append(interval_handle(table))
    if any_absent:
        handles.append(absent_handle("B" if family == "conv" else "tensor"))
    legend(figure, handles)
    figure.suptitle(title)
    return figure


def _plot_sweep(sweep_csv: Path, out_base: Path, family: str, title: str | None) -> Figure:
    table, record = read_input(sweep_csv, SWEEP_COLUMNS)
    check_unique(table, ["family", "layer", "kind", "class"], sweep_csv)
    what = f"{'BN' if family == 'bn' else 'Conv'} replacement sweep"
    with house_style():
        title = title or default_title(record, what, sweep_csv)
        figure = draw_sweep(table, family, title, sweep_csv)
    save_figure(figure, out_base, figure_provenance([sweep_csv], what))
    return figure


def plot_bn_sweep(sweep_csv: Path, out_base: Path, title: str | None = None) -> Figure:
    """Figures 3 / 7: Dice after replacing each BN layer's RM, RV, RW, RB, per class."""
    return _plot_sweep(sweep_csv, out_base, "bn", title)


def plot_conv_sweep(sweep_csv: Path, out_base: Path, title: str | None = None) -> Figure:
    """Figures 4 / 8: Dice after replacing each conv layer's W and B, per class."""
    return _plot_sweep(sweep_csv, out_base, "conv", title)
