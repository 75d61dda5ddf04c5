"""RMSE of reuse-trained models to the "ideal" model: the paper's Figures 13 and 14.

The paper takes T1-auto fine-tuned on 50 patients as the ideal ACDC model and shows, per
layer and kind, how far each reuse run ended from it (Fig. 13: every reuse run; Fig. 14:
the RVSC-seg runs), from the table `prrmse.analysis.rmse.rmse_to_ideal` writes (one row per
run, layer and kind, the head flagged, absent kinds as status "absent"). `plot_rmse_to_ideal`
draws one panel per kind, x = layer (head left out), one line per run, in the house style
of `prrmse.figures.style`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prrmse.core.errors import PrrmseError
from prrmse.core.kinds import BN_KINDS, CONV_KINDS, FAMILY_OF_KIND
from prrmse.core.tabular import IDEAL_COLUMNS
from prrmse.figures.inputs import absent_layers, check_unique, layer_count, read_input
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
    panel_title,
    shade_absent,
)
from prrmse.results.floor import floor_for

LINE_STYLES = ("-", "--", ":", "-.")  # after the 8 colours are used, the next style
LEGEND_COLUMNS = 3


def _series(
    table: pd.DataFrame, run: str, kind: str, n_layers: int, value: str = "rmse"
) -> pd.Series:
    rows = table[(table["run"] == run) & (table["kind"] == kind) & (table["status"] == "compared")]
    return rows.set_index("layer")[value].astype(float).reindex(range(1, n_layers + 1))


def draw_rmse_to_ideal(
    table: pd.DataFrame,
    runs: Sequence[str],
    title: str,
    floor: pd.DataFrame | None = None,
    network: str = "",
) -> Figure:
    """Panels RM, RV, RW, RB, W and B (B only where some layer has one), two a row; interval
    bands where the table has them, the network's seed-to-seed floor where given."""
    intervals = has_intervals(table, "rmse")
    drawn_floor = None
    body = table[~table["head"]]
    compared = set(body.loc[body["status"] == "compared", "kind"])
    kinds = [kind for kind in (*BN_KINDS, *CONV_KINDS) if kind in compared]
    if not kinds:
        raise PrrmseError("rmse to ideal", "no compared tensors (head excluded)")
    rows = (len(kinds) + 1) // 2
    legend_rows = -(-len(runs) // LEGEND_COLUMNS)
    figure = Figure(figsize=(7.0, 1.9 * rows + 0.8 + 0.25 * legend_rows), layout="constrained")
    grid = figure.add_gridspec(rows, 2)
    absent = False
    for index, kind in enumerate(kinds):
        ax = figure.add_subplot(grid[index // 2, index % 2])
        family = FAMILY_OF_KIND[kind]
        n_layers = layer_count(body, family)
        absent |= shade_absent(ax, absent_layers(body, family, kind), n_layers, kind)
        drawn_floor = (
            floor_band(ax, floor_for(floor, network, family, kind, n_layers)) or drawn_floor
        )
        _draw_runs(ax, body, runs, kind, n_layers, intervals)
        panel_title(ax, index, KIND_TITLES[kind])
        # Each family's lowest panels name the axis; BN and conv layers are numbered apart.
        lowest = not any(FAMILY_OF_KIND[k] == family for k in kinds[index + 2 :: 2])
        name = "BN layer" if family == "bn" else "Conv layer"
        layer_axis(ax, n_layers, f"{name} (forward order, head excluded)" if lowest else None)
        ax.tick_params(axis="x", labelrotation=90 if n_layers > 12 else 0)
    _legend(figure, table, drawn_floor, intervals, absent)
    figure.suptitle(title)
    return figure


def _draw_runs(
    ax: Axes, body: pd.DataFrame, runs: Sequence[str], kind: str, n_layers: int, intervals: bool
) -> None:
    """One line per run on the kind's panel, each with its interval band where drawn."""
    for number, run in enumerate(runs):
        series = _series(body, run, kind, n_layers)
        colour = OKABE_ITO[number % len(OKABE_ITO)]
        ax.plot(
            series.index,
            series.to_numpy(),
            lw=1.1,
            ms=3.5,
            label=run,
            color=colour,
            marker=MARKERS[number % len(MARKERS)],
            ls=LINE_STYLES[number // len(OKABE_ITO) % len(LINE_STYLES)],
        )
        if intervals:
            low, high = (_series(body, run, kind, n_layers, v) for v in ("rmse_low", "rmse_high"))
            interval_band(ax, series.index, low, high, colour)
    ax.set_ylabel("RMSE")
    ax.set_ylim(bottom=0)


def _legend(
    figure: Figure, table: pd.DataFrame, drawn_floor: Any, intervals: bool, absent: bool
) -> None:
    """The runs' lines, then the floor band, the interval bands and the absent kind, where
    drawn, below the panels."""
    handles = [h for h in figure.axes[0].get_legend_handles_labels()[0] if isinstance(h, Line2D)]
    if drawn_floor is not None:
        handles.append(floor_handle(str(drawn_floor.get_label())))
    handles += [interval_handle(table)] if intervals else []
    handles += [absent_handle("B")] if absent else []
    # Run labels are long: three a row keeps the legend inside 7 inches.
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(LEGEND_COLUMNS, len(handles))
    )


def plot_rmse_to_ideal(
    csv: Path,
    out_base: Path,
    runs_subset: Sequence[str] | None = None,
    title: str | None = None,
    floor_csv: Path | None = None,
    network: str = "",
) -> Figure:
    """Figures 13 / 14 from the rmse_to_ideal CSV: <out_base>.png and .pdf with provenance.

    `runs_subset` picks and orders the runs drawn (Fig. 14: the RVSC-seg runs); default all.
    """
    csv = Path(csv)
    table, record = read_input(csv, IDEAL_COLUMNS)
    table["run"] = table["run"].astype(str)
    check_unique(table, ["run", "family", "layer", "kind"], csv)
    available = list(dict.fromkeys(table["run"]))
    runs = list(runs_subset) if runs_subset is not None else available
    if all(run not in available for run in runs):
        # a summary over seeds labels runs without their seed ("n10 freeze T1-auto")
        runs = [re.sub(r" s\d+$", "", run) for run in runs]
    unknown = [run for run in runs if run not in available]
    if unknown or not runs:
        raise PrrmseError(
            csv,
            f"no run {unknown[0] if unknown else '(none asked)'!r}; runs: {', '.join(available)}",
        )
    what = "RMSE to the ideal model"
    ideal = next(iter(record.get("ideal", {})), None)
    with house_style():
        floor = (
            read_input(Path(floor_csv), ["network", "floor", "floor_low", "floor_high"])[0]
            if floor_csv
            else None
        )
        title = title or (f"{what}: {ideal}" if ideal else what)
        figure = draw_rmse_to_ideal(table, runs, title, floor, network)
    inputs = [csv] + ([Path(floor_csv)] if floor_csv else [])
    stamp: dict[str, Any] = {**figure_provenance(inputs, what), "runs": runs}
    save_figure(figure, out_base, stamp)
    return figure
