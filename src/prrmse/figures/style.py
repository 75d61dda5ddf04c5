"""The figures' house style and the drawing helpers they share.

Figure numbers (UNet / PSPNet): 3 / 7 BN replacement sweep, 4 / 8 conv replacement sweep
(`prrmse.figures.sweeps`), 5 / 9 BN scale and shift (`prrmse.figures.bnstats`), 6 / 10 conv
RMSE, 11 / 12 RMSE across a group of models (`prrmse.figures.models`); `prrmse.figures.paper` draws any of them by number.
Every figure reads its inputs with `prrmse.figures.inputs` and is saved with its provenance by
`prrmse.figures.saving`. The prediction head is never shown. A kind absent from a layer (a
conv without bias) is a gap over a grey band, never a 0. Class 0 (background) is drawn as a
thin grey series; classes 1-3 carry the colours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

WIDTH_IN = 7.0
# Okabe-Ito, colour-blind safe; yellow (#F0E442) last since it is faint on white.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CLASS_NAMES = {0: "BG", 1: "RV", 2: "MYO", 3: "LV"}
CLASS_COLOURS = {0: "#999999", 1: "#D55E00", 2: "#009E73", 3: "#0072B2"}
CLASS_MARKERS = {0: ".", 1: "o", 2: "s", 3: "^"}
ABSENT_COLOUR = "#DDDDDD"
KIND_TITLES = {
    "RM": "RM (BN running mean)",
    "RV": "RV (BN running variance)",
    "RW": "RW (BN weight)",
    "RB": "RB (BN bias)",
    "W": "W (conv weight)",
    "B": "B (conv bias)",
}
STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,  # TrueType: text stays text in the PDF
    "svg.hashsalt": "prrmse",  # fixed ids, should anyone save SVG
}


@contextlib.contextmanager
def house_style() -> Iterator[None]:
    """The house style for drawing and saving, without touching matplotlib's global state."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(rows: int, height_in: float) -> tuple[Figure, list[Axes]]:
    """A full-width figure of stacked panels sharing the layer axis."""
    figure = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, list(axes)


def layer_axis(ax: Axes, n_layers: int, label: str | None) -> None:
    """Integer layer ticks, every layer labelled up to 26 layers."""
    ax.set_xlim(0.4, n_layers + 0.6)
    if n_layers <= 26:
        ax.set_xticks(range(1, n_layers + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(False, axis="x")
    if label:
        ax.set_xlabel(label)


def shade_absent(ax: Axes, layers: Sequence[int], n_layers: int, what: str) -> bool:
    """Grey bands, labelled "<what> absent", over the layers where the kind has no tensor."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    for run in runs:
        ax.axvspan(run[0] - 0.5, run[-1] + 0.5, color=ABSENT_COLOUR, zorder=0, linewidth=0)
        wide = len(run) >= 3 or len(run) == n_layers
        note = f"{what} absent in every layer" if len(run) == n_layers else f"{what} absent"
        ax.text(
            (run[0] + run[-1]) / 2,
            0.5,
            note,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="center",
            rotation=0 if wide else 90,
            fontsize=8,
            color="#555555",
            zorder=1,
        )
    return bool(layers)


def absent_handle(what: str) -> Patch:
    return Patch(facecolor=ABSENT_COLOUR, label=f"{what} absent (no such tensor)")


def interval_band(ax: Axes, x: Any, low: Any, high: Any, colour: str) -> None:
    """A mean's 95 % interval as a translucent band in the line's colour."""
    ax.fill_between(
        x, np.asarray(low, float), np.asarray(high, float), color=colour, alpha=0.2, lw=0
    )


def has_intervals(table: pd.DataFrame, value: str) -> bool:
    """Whether a summary holds real intervals for `value`: one seed without per-patient
    values has none to draw (its bounds equal the mean)."""
    if not {f"{value}_low", f"{value}_high"} <= set(table.columns):
        return False
    seeds = int(table["n_seeds"].iloc[0]) if "n_seeds" in table.columns else 0
    patients = int(table["n_patients"].iloc[0]) if "n_patients" in table.columns else 0
    return seeds > 1 or patients > 0


def interval_handle(table: pd.DataFrame) -> Patch:
    seeds = int(table["n_seeds"].iloc[0]) if "n_seeds" in table.columns else 0
    patients = int(table["n_patients"].iloc[0]) if "n_patients" in table.columns else 0
    over = f"{seeds} seed{'s' if seeds != 1 else ''}" + (
        f" x {patients} patients" if patients else ""
    )
    return Patch(color="#000000", alpha=0.2, label=f"95 % bootstrap interval ({over})")


def floor_band(ax: Axes, floor: pd.DataFrame | None) -> Any:
    """The seed-to-seed RMSE floor (min-max over models) behind the lines; None if unknown."""
    if floor is None or floor["floor_high"].isna().all():
        return None
    # filled and outlined as well as hatched: a floor whose min and max nearly agree is a
    # thin band that hatching alone would leave invisible
    return ax.fill_between(
        floor.index,
        floor["floor_low"].to_numpy(float),
        floor["floor_high"].to_numpy(float),
        **FLOOR_STYLE,
        zorder=0,
        step="mid",
        label="seed-to-seed floor (min-max over models)",
    )


FLOOR_STYLE: dict[str, Any] = {
    "facecolor": "#D9D9D9",
    "edgecolor": "#555555",
    "hatch": "////",
    "lw": 0.8,
}


def floor_handle(label: str) -> Patch:
    return Patch(**FLOOR_STYLE, label=label)


def legend(figure: Figure, handles: Sequence[Any]) -> None:
    """Below the panels; rows of two very long, three long or five short entries, so it
    never runs past 7 inches."""
    longest = max((len(str(h.get_label())) for h in handles), default=0)
    per_row = 2 if longest > 40 else 3 if longest > 24 else 5
    rows = -(-len(handles) // per_row)
    columns = -(-len(handles) // rows) if handles else 1
    figure.legend(handles=list(handles), loc="outside lower center", ncols=columns)


def panel_title(ax: Axes, index: int, text: str) -> None:
    ax.set_title(f"({chr(ord('a') + index)}) {text}", loc="left")
