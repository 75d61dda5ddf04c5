"""`make_figure`: any of the paper's Figures 3-14 by number, drawn by the plotting module of
its kind (`prrmse.figures.catalog` says which): sweeps (`prrmse.figures.sweeps`), BN
statistics (`prrmse.figures.bnstats`), RMSE (`prrmse.figures.models`), RMSE to the ideal
model (`prrmse.figures.reuse`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from prrmse.core.errors import PrrmseError
from prrmse.core.naming import network_of_name, run_label
from prrmse.core.provenance import read_csv_provenance
from prrmse.figures import bnstats as figures_bnstats
from prrmse.figures import models as figures_models
from prrmse.figures import reuse as figures_reuse
from prrmse.figures import sweeps as figures_sweeps
from prrmse.figures.catalog import FIGURES, figure_spec

PLOTTERS = {
    "bn_sweep": figures_sweeps.plot_bn_sweep,
    "conv_sweep": figures_sweeps.plot_conv_sweep,
    "bn_stats": figures_bnstats.plot_bn_stats,
    "conv_rmse": figures_models.plot_conv_rmse,
    "group_rmse": figures_models.plot_group_rmse,
}


def make_figure(
    number: int,
    inputs: Sequence[Path],
    out_base: Path,
    title: str | None = None,
    floor: Path | None = None,
    runs: Sequence[str] | None = None,
) -> Figure:
    """The paper's Figure `number` from its one input CSV, as <out_base>.png/.pdf.

    RMSE figures draw the seed-to-seed `floor` CSV as a band where given; Figures 13 and
    14 draw the reuse `runs` (run names; default every run of the table).
    """
    spec = figure_spec(number)
    if len(inputs) != 1:
        raise PrrmseError(f"figure {number}", f"takes one input CSV, got {len(inputs)}")
    if floor is not None and not spec.draws_floor:
        drawing = ", ".join(str(other.number) for other in FIGURES if other.draws_floor)
        raise PrrmseError(f"figure {number}", f"only RMSE figures ({drawing}) draw a noise floor")
    if runs is not None and not spec.is_reuse:
        raise PrrmseError(f"figure {number}", "only Figures 13 and 14 take runs")
    table = Path(inputs[0])
    if spec.is_reuse:
        return _rmse_to_ideal_figure(table, Path(out_base), title, floor, runs)
    if spec.draws_floor:
        return PLOTTERS[spec.kind](table, Path(out_base), title, floor)
    return PLOTTERS[spec.kind](table, Path(out_base), title)


def _rmse_to_ideal_figure(
    table: Path,
    out_base: Path,
    title: str | None,
    floor: Path | None,
    runs: Sequence[str] | None,
) -> Figure:
    if title is None:
        # the ideal model's checkpoint, as the table's provenance records it
        ideal = next(iter(((read_csv_provenance(table) or {}).get("ideal") or {}).values()), None)
        title = f"RMSE to the ideal model ({run_label(Path(ideal).parent.name)})" if ideal else None
    labels = [run_label(name) for name in runs] if runs else None
    network = network_of_name(runs[0]) if runs else ""
    return figures_reuse.plot_rmse_to_ideal(table, out_base, labels, title, floor, network)
