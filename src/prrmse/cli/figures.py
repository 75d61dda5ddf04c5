"""`prrmse <verb>` for figures: the data QC montage, the paper's Figs. 3-14, controls and CKA."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prrmse.cli.common import config_arg, flag


def _run_qc(args: argparse.Namespace) -> None:
    from prrmse.core.config import dataset_config, load_config
    from prrmse.data.settings import qc_settings
    from prrmse.figures.qc import run_qc

    config = load_config(args.config)
    dataset_config(config, args.dataset, args.config)
    qc = qc_settings(config, str(args.config))
    png, _ = run_qc(args.data, args.out, args.dataset, qc.slices_per_split)
    print(f"qc {args.dataset}: montage of {args.data} -> {png}")


def _run_figure(args: argparse.Namespace) -> None:
    from prrmse.figures.paper import make_figure

    make_figure(
        args.number, args.inputs, args.out, title=args.title, floor=args.floor, runs=args.run_names
    )
    print(f"figure {args.number:02d} -> {args.out}.png, {args.out}.pdf")


def _run_figure_controls(args: argparse.Namespace) -> None:
    from prrmse.figures.controls import plot_controls

    plot_controls(args.sweep_summary, args.controls_summary, args.out)
    print(f"figure controls -> {args.out}.png, {args.out}.pdf")


def _run_figure_cka(args: argparse.Namespace) -> None:
    from prrmse.figures.cka import draw_cka_figure

    draw_cka_figure(args.summary, args.out)
    print(f"figure cka -> {args.out}.png, {args.out}.pdf")


def register(verbs: Any) -> None:
    _add_qc(verbs)
    _add_figure(verbs)
    _add_figure_controls(verbs)
    _add_figure_cka(verbs)


def _add_qc(verbs: Any) -> None:
    qc = verbs.add_parser(
        "qc", help="PNG montage of a prepared dataset: sample slices, label outlines, class counts"
    )
    config_arg(qc, lambda a: ["qc"])
    qc.add_argument("--dataset", required=True, help="a dataset named in the config")
    qc.add_argument("--data", type=Path, required=True, help="its prepared dataset folder")
    qc.add_argument(
        "--out", type=Path, required=True, help="output base path (no suffix): .png and .pdf"
    )
    qc.set_defaults(handler=_run_qc)


def _add_figure(verbs: Any) -> None:
    figure = verbs.add_parser(
        "figure", help="draw one of the paper's figures (3-14) as PNG and PDF"
    )
    figure.add_argument("--number", type=int, required=True, help="figure number")
    figure.add_argument("--inputs", type=Path, nargs="+", required=True, help="the tables it draws")
    figure.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    figure.add_argument("--title", default=None, help="figure title")
    flag(
        figure,
        "--run-names",
        former="--runs",
        nargs="+",
        default=None,
        help="figures 13/14: the runs to draw, by name",
    )
    figure.add_argument(
        "--floor", type=Path, default=None, help="RMSE figures: seed-to-seed floor CSV"
    )
    figure.set_defaults(handler=_run_figure)


def _add_figure_controls(verbs: Any) -> None:
    controls = verbs.add_parser(
        "figure-controls", help="Δ Dice: source's tensor vs re-initialisation vs re-randomisation"
    )
    flag(
        controls,
        "--sweep-summary",
        former="--source",
        type=Path,
        required=True,
        help="sweep summary CSV of the target/source pair",
    )
    flag(
        controls,
        "--controls-summary",
        former="--controls",
        type=Path,
        required=True,
        help="control-sweep summary CSV of the target",
    )
    controls.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    controls.set_defaults(handler=_run_figure_controls)


def _add_figure_cka(verbs: Any) -> None:
    cka_figure = verbs.add_parser(
        "figure-cka", help="CKA heatmap (layer x layer) and per-layer CKA"
    )
    flag(
        cka_figure,
        "--summary",
        former="--input",
        type=Path,
        required=True,
        help="CKA summary CSV of one model pair",
    )
    cka_figure.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    cka_figure.set_defaults(handler=_run_figure_cka)
