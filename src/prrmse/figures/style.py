"""The paper's Figures 3-12 from the analysis CSVs: house style, provenance, replacement sweeps.

Figure numbers (UNet / PSPNet): 3 / 7 BN replacement sweep, 4 / 8 conv replacement sweep
(here), 5 / 9 BN scale and shift, 6 / 10 conv RMSE, 11 / 12 RMSE across a group of models
(`prrmse.figures.models`); `prrmse.figures.paper` draws any of them by number.

Every figure is written as <out_base>.png and <out_base>.pdf under temp names, then
renamed. Both carry a provenance record (the inputs' sha256 and their own provenance
lines): PNG as a "prrmse" text chunk, PDF as the Subject (a JSON string); neither holds a
date, so the same inputs give the same bytes. The prediction head is never shown. A
kind absent from a layer (a conv without bias) is a gap over a grey band, never a 0.
Class 0 (background) is drawn as a thin grey series, so a replacement that wrecks the
background is visible; classes 1-3 carry the colours.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, sha256_file
from prrmse.core.kinds import BN_KINDS, CONV_KINDS
from prrmse.core.tabular import read_table

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
SWEEP_COLUMNS = ["family", "layer", "head", "kind", "status", "class", "dice", "baseline_dice"]


# --- reading ------------------------------------------------------------------------------


def read_input(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table (PrrmseError naming the file if missing, unreadable, lacking columns or
    empty) and its provenance line ({} if it has none)."""
    table = read_table(Path(path), list(required))
    if "head" in table:
        table["head"] = as_bool(table["head"])
    return table, provenance.read_csv_provenance(path) or {}


def as_bool(column: pd.Series) -> pd.Series:
    # A CSV round trip leaves "True"/"False" text where a bool was written.
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("true", "1"))


def model_name(recorded: Any) -> str:
    """A model as products record it, by name or by results/models/<name>/model.safetensors."""
    path = Path(str(recorded))
    return path.parent.name if path.suffix in (".safetensors", ".pt", ".pth") else path.name


def layer_count(table: pd.DataFrame, family: str) -> int:
    """Highest layer number of the family, the head excluded."""
    body = table[(table["family"] == family) & ~table["head"]]
    return int(body["layer"].max()) if not body.empty else 0


def check_unique(table: pd.DataFrame, keys: list[str], where: Path) -> None:
    duplicated = table.duplicated(keys)
    if duplicated.any():
        first = table.loc[duplicated, keys].iloc[0].to_dict()
        raise PrrmseError(where, f"duplicate rows for {first}")


# --- drawing helpers ----------------------------------------------------------------------


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


# --- saving -------------------------------------------------------------------------------


def figure_paths(out_base: Path) -> tuple[Path, Path]:
    """<out_base>.png and <out_base>.pdf (a .png/.pdf suffix on out_base is dropped)."""
    base = Path(out_base)
    if base.suffix in (".png", ".pdf"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".png"), base.with_name(base.name + ".pdf")


def figure_provenance(inputs: Sequence[Path], what: str) -> dict[str, Any]:
    return provenance.stamp(
        figure=what,
        inputs={str(path): sha256_file(path) for path in inputs},
        input_provenance={str(path): provenance.read_csv_provenance(path) for path in inputs},
    )


def save_figure(figure: Figure, out_base: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """PNG and PDF with the provenance embedded, both renamed into place only once both exist."""
    png, pdf = figure_paths(out_base)
    text = json.dumps(record, sort_keys=True, default=str)
    title = figure.get_suptitle() or png.stem
    with house_style(), atomic_path(png) as png_temp, atomic_path(pdf) as pdf_temp:
        # The temp names end in .tmp-<pid>: the format must be named, not inferred.
        figure.savefig(png_temp, format="png", metadata={"Title": title, "prrmse": text})
        figure.savefig(
            pdf_temp,
            format="pdf",
            metadata={
                "Title": title,
                "Subject": text,
                "Keywords": "prrmse provenance (JSON in Subject)",
                "Creator": f"prrmse {record.get('code', {}).get('version', '')}".strip(),
                "CreationDate": None,
            },
        )
    return png, pdf


def read_figure_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance a figure file carries (PNG text chunk or PDF Subject), None if none."""
    path = Path(path)
    text = provenance.png_text(path) if path.suffix == ".png" else provenance.pdf_subject(path)
    return json.loads(text) if text else None


def default_title(record: dict[str, Any], what: str, fallback: Path) -> str:
    if "target" in record and "source" in record:
        target, source = model_name(record["target"]), model_name(record["source"])
        return f"{what}: target {target}, source {source}"
    target, sep, source = Path(fallback).stem.partition("__")
    if sep and "summary" in record:
        # a summary over seeds is named <target>__<source> without seeds
        return f"{what}: target {target}, source {source} (mean over seeds)"
    return f"{what}: {Path(fallback).stem}"


# --- Figures 3/7 and 4/8: replacement sweeps ----------------------------------------------


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


def absent_layers(table: pd.DataFrame, family: str, kind: str) -> list[int]:
    rows = table[(table["family"] == family) & ~table["head"] & (table["kind"] == kind)]
    return sorted(int(layer) for layer in rows.loc[rows["status"] == "absent", "layer"].unique())


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
