"""The control figure: replacing a tensor by the source's, against replacing it by the
target's own initial value (re-initialisation) or a fresh draw of the initialiser
(re-randomisation), per layer and kind (Zhang et al.'s controls beside the PR-RMSE sweep).

A layer whose Dice barely moves under all three is *robust*, not evidence that the
source's tensor transfers; "reusable" means the source's tensor does clearly better than
the controls. Each line is the change of the mean foreground Dice (classes 1..3) against
the unreplaced target, mean over seeds, with its 95 % bootstrap interval (summary rows of
class -1, see `prrmse.results.summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prrmse.core.errors import PrrmseError
from prrmse.core.kinds import BN_KINDS, CONV_KINDS, FAMILY_OF_KIND
from prrmse.figures.inputs import layer_count, read_input
from prrmse.figures.saving import figure_provenance, save_figure
from prrmse.figures.style import (
    KIND_TITLES,
    MARKERS,
    OKABE_ITO,
    absent_handle,
    has_intervals,
    house_style,
    interval_band,
    interval_handle,
    layer_axis,
    legend,
    panel_title,
    shade_absent,
)
from prrmse.results.summary import FOREGROUND

CONDITIONS = {
    "source": "source's tensor",
    "reinit": "target's own initial tensor (re-initialisation)",
    "rerandom": "fresh draw of the initialiser (re-randomisation)",
}
COLUMNS = ["family", "layer", "head", "kind", "status", "class", "difference"]


def _foreground(table: pd.DataFrame, where: Path) -> pd.DataFrame:
    rows = table[(table["class"].astype(int) == FOREGROUND) & (table["family"] != "baseline")]
    if rows.empty:
        raise PrrmseError(where, "has no foreground-mean rows (class -1): not a sweep summary")
    if "condition" not in rows.columns:
        rows = rows.assign(condition="source")
    return rows[~rows["head"].astype(str).str.lower().eq("true")]


def _series(rows: pd.DataFrame, condition: str, kind: str, n_layers: int, value: str) -> pd.Series:
    picked = rows[
        (rows["condition"] == condition) & (rows["kind"] == kind) & (rows["status"] != "absent")
    ]
    return picked.set_index("layer")[value].astype(float).reindex(range(1, n_layers + 1))


def draw_controls(rows: pd.DataFrame, title: str) -> Figure:
    kinds = [
        k
        for k in (*BN_KINDS, *CONV_KINDS)
        if k in set(rows.loc[rows["status"] != "absent", "kind"])
    ]
    conditions = [c for c in CONDITIONS if c in set(rows["condition"])]
    figure = Figure(figsize=(7.0, 1.9 * ((len(kinds) + 1) // 2) + 1.2), layout="constrained")
    grid = figure.add_gridspec((len(kinds) + 1) // 2, 2)
    absent = False
    for index, kind in enumerate(kinds):
        ax = figure.add_subplot(grid[index // 2, index % 2])
        family = FAMILY_OF_KIND[kind]
        n_layers = layer_count(rows, family)
        gone = rows[(rows["kind"] == kind) & (rows["status"] == "absent")]["layer"].unique()
        absent |= shade_absent(ax, sorted(int(v) for v in gone), n_layers, kind)
        ax.axhline(0.0, lw=0.8, color="#000000")
        for number, condition in enumerate(conditions):
            colour = OKABE_ITO[number % len(OKABE_ITO)]
            series = _series(rows, condition, kind, n_layers, "difference")
            ax.plot(
                series.index,
                series.to_numpy(),
                lw=1.1,
                ms=3.2,
                color=colour,
                marker=MARKERS[number % len(MARKERS)],
            )
            if has_intervals(rows, "difference"):
                low, high = (
                    _series(rows, condition, kind, n_layers, v)
                    for v in ("difference_low", "difference_high")
                )
                interval_band(ax, series.index, low, high, colour)
        ax.set_ylabel("Δ Dice")
        panel_title(ax, index, f"{KIND_TITLES[kind]} replaced")
        lowest = not any(FAMILY_OF_KIND[k] == family for k in kinds[index + 2 :: 2])
        name = "BN layer" if family == "bn" else "Conv layer"
        layer_axis(ax, n_layers, f"{name} (head excluded)" if lowest else None)
        ax.tick_params(axis="x", labelrotation=90 if n_layers > 12 else 0)
    handles: list[Any] = [
        Line2D(
            [],
            [],
            color=OKABE_ITO[n % len(OKABE_ITO)],
            marker=MARKERS[n % len(MARKERS)],
            lw=1.1,
            label=CONDITIONS[c],
        )
        for n, c in enumerate(conditions)
    ]
    if has_intervals(rows, "difference"):
        handles.append(interval_handle(rows))
    handles += [absent_handle("B")] if absent else []
    legend(figure, handles)
    figure.suptitle(title)
    return figure


def plot_controls(
    source_csv: Path, controls_csv: Path, out_base: Path, title: str | None = None
) -> Figure:
    """Δ foreground Dice per layer and kind: source vs re-initialisation vs re-randomisation."""
    source, _ = read_input(Path(source_csv), COLUMNS)
    controls, _ = read_input(Path(controls_csv), [*COLUMNS, "condition"])
    rows = pd.concat(
        [
            _foreground(source, Path(source_csv)).assign(condition="source"),
            _foreground(controls, Path(controls_csv)),
        ],
        ignore_index=True,
    )
    target, _, source_name = Path(source_csv).stem.partition("__")
    what = "Replacement against the controls"
    default = f"{what}: {target}" + (f" (source {source_name})" if source_name else "")
    with house_style():
        figure = draw_controls(rows, title or default)
    save_figure(
        figure, Path(out_base), figure_provenance([Path(source_csv), Path(controls_csv)], what)
    )
    return figure
