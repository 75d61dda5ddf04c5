"""Figures 5 / 9: BN scale and shift of a target/source pair, from a bnstats CSV.

One bar panel per statistic (MRM, MRV, MRW, MRB) per BN layer, with interval bars where
the table has them, the no-change line at 1 for the ratios, and an x where MRW is
undefined. House style comes from `prrmse.figures.style`, saving and provenance from
`prrmse.figures.saving`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from prrmse.figures.inputs import check_unique, default_title, read_input
from prrmse.figures.saving import figure_provenance, save_figure
from prrmse.figures.style import (
    OKABE_ITO,
    has_intervals,
    house_style,
    interval_handle,
    layer_axis,
    legend,
    new_figure,
    panel_title,
)

BNSTATS_COLUMNS = ["layer", "MRM", "MRV", "MRW", "MRB", "mrw_note"]


def draw_bn_stats(table: pd.DataFrame, title: str) -> Figure:
    table = table.sort_values("layer")
    n_layers = int(table["layer"].max())
    figure, axes = new_figure(4, 6.8)
    panels = {
        "MRM": "MRM = mean w·|μ − μ′| / σ  (shift of the output)",
        "MRV": "MRV = mean σ / σ′  (scale of the output)",
        "MRW": "MRW = mean w′ / w  (ratio of weights)",
        "MRB": "MRB = mean |b − b′|  (shift of the bias)",
    }
    extras: dict[str, Any] = {}
    for index, (ax, (column, text)) in enumerate(zip(axes, panels.items(), strict=True)):
        values = table[column].astype(float)
        errors = None
        if has_intervals(table, column):
            low, high = table[f"{column}_low"].astype(float), table[f"{column}_high"].astype(float)
            errors = np.vstack([(values - low).clip(lower=0), (high - values).clip(lower=0)])
            extras["interval"] = interval_handle(table)
        ax.bar(
            table["layer"],
            values,
            width=0.7,
            color=OKABE_ITO[3],
            yerr=errors,
            error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"},
        )
        if column in ("MRV", "MRW"):
            extras["ref"] = ax.axhline(1.0, ls="--", lw=0.9, color="#000000", label="1 (no change)")
        if column == "MRW" and values.isna().any():
            undefined = table.loc[values.isna(), "layer"]
            extras["undefined"] = ax.plot(
                undefined,
                np.zeros(len(undefined)),
                ls="none",
                marker="x",
                ms=7,
                mew=1.5,
                color=OKABE_ITO[4],
                clip_on=False,
                zorder=5,
                transform=ax.get_xaxis_transform(),
                label="MRW undefined (a target weight is 0)",
            )[0]
        if column in ("MRM", "MRB"):
            ax.set_ylim(bottom=0)  # means of magnitudes: never below 0
        ax.set_ylabel(column)
        panel_title(ax, index, text)
        layer_axis(ax, n_layers, None)
    layer_axis(axes[-1], n_layers, "BN layer (forward order, head excluded)")
    handles = [Patch(color=OKABE_ITO[3], label="mean over the layer's channels"), *extras.values()]
    legend(figure, handles)
    figure.suptitle(title)
    return figure


def plot_bn_stats(bnstats_csv: Path, out_base: Path, title: str | None = None) -> Figure:
    """Figures 5 / 9: MRM, MRV, MRW, MRB per BN layer; undefined MRW marked with an x."""
    table, record = read_input(bnstats_csv, BNSTATS_COLUMNS)
    check_unique(table, ["layer"], bnstats_csv)
    what = "BN scale and shift"
    with house_style():
        figure = draw_bn_stats(table, title or default_title(record, what, bnstats_csv))
    save_figure(figure, out_base, figure_provenance([bnstats_csv], what))
    return figure
