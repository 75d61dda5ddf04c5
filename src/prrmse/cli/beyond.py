"""`prrmse <verb>` for the analyses beyond the paper: summaries over seeds, the seed-to-seed
noise floor, control sweeps, activation CKA and the verdicts on the paper's claims.

Thin wrappers like those of `prrmse.cli.main`: values from the config file, paths from the
command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prrmse.cli.common import bootstrap_settings, config_arg, sweep_settings


def _run_summarise(args: argparse.Namespace) -> None:
    from prrmse.results.summary import run_summary

    settings = bootstrap_settings(args.config)
    table = run_summary(args.kind, args.inputs, args.out, patients=args.patients, settings=settings)
    print(
        f"summarise {args.kind}: {len(args.inputs)} seed table(s), {len(table)} rows -> {args.out}"
    )


def _run_noise_floor(args: argparse.Namespace) -> None:
    from prrmse.results.floor import run_noise_floor

    table = run_noise_floor(args.inputs, args.out)
    print(f"noise-floor: {len(args.inputs)} seed pair table(s), {len(table)} rows -> {args.out}")


def _run_sweep_controls(args: argparse.Namespace) -> None:
    from prrmse.analysis.sweep.engine import run_control_sweep
    from prrmse.core.config import load_config

    settings = sweep_settings(args.config, args.threads)
    conditions = tuple(load_config(args.config)["analysis"]["controls"])
    table = run_control_sweep(
        args.target,
        args.data,
        args.out,
        settings,
        conditions=conditions,
        patients_csv=args.patients_csv,
    )
    print(f"sweep-controls {', '.join(conditions)}: {len(table)} rows -> {args.out}")


def _run_figure_controls(args: argparse.Namespace) -> None:
    from prrmse.figures.controls import plot_controls

    plot_controls(args.source, args.controls, args.out)
    print(f"figure controls -> {args.out}.png, {args.out}.pdf")


def _run_cka(args: argparse.Namespace) -> None:
    from prrmse.analysis.cka import run_cka
    from prrmse.core.config import load_config
    from prrmse.core.device import select_device

    config = load_config(args.config)
    options = config["analysis"]["cka"]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    device = select_device(config["analysis"]["sweep"]["device"], "analysis.sweep.device").type
    table = run_cka(
        args.target,
        args.source,
        args.data,
        args.out,
        max_images=options["max_images"],
        batch_size=options["batch_size"],
        device=device,
    )
    print(f"cka: {len(table)} layer pairs -> {args.out}")


def _run_figure_cka(args: argparse.Namespace) -> None:
    from prrmse.figures.cka import draw_cka_figure

    draw_cka_figure(args.input, args.out)
    print(f"figure cka -> {args.out}.png, {args.out}.pdf")


def _run_claims(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.results.claims.verdicts import ClaimInputs, run_claims

    config = load_config(args.config)
    inputs = ClaimInputs(
        sweeps=args.sweeps,
        rmse=args.rmse,
        noise_floor=args.noise_floor,
        plans=args.plans,
        bnstats=args.bnstats,
        table1_csv=args.table1,
        reuse_runs=args.runs,
        min_seeds=config["analysis"]["verdicts"]["min_seeds"],
        **config["analysis"]["bootstrap"],
    )
    claims = run_claims(inputs, args.out, args.csv)
    counts = {
        v: sum(c.verdict == v for c in claims) for v in ("holds", "does not hold", "inconclusive")
    }
    print(
        f"claims: {len(claims)} ({', '.join(f'{n} {v}' for v, n in counts.items())}) -> {args.out}, {args.csv}"
    )


def register(verbs: Any) -> None:
    summarise = verbs.add_parser(
        "summarise", help="mean and 95 %% bootstrap interval of a product over seeds"
    )
    config_arg(summarise)
    summarise.add_argument(
        "--kind", required=True, choices=["sweep", "bnstats", "rmse", "rmse_to_ideal"]
    )
    summarise.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="one table per seed"
    )
    summarise.add_argument(
        "--patients", type=Path, nargs="*", default=None, help="sweeps: per-patient Dice, per seed"
    )
    summarise.add_argument("--out", type=Path, required=True, help="summary CSV to write")
    summarise.set_defaults(handler=_run_summarise)

    floor = verbs.add_parser(
        "noise-floor", help="seed-to-seed RMSE floor from RMSE tables of one model at two seeds"
    )
    floor.add_argument("--inputs", type=Path, nargs="+", required=True, help="RMSE pair tables")
    floor.add_argument("--out", type=Path, required=True, help="CSV to write")
    floor.set_defaults(handler=_run_noise_floor)

    sweep = verbs.add_parser(
        "sweep-controls", help="sweep a target against its own init and a fresh draw"
    )
    config_arg(sweep)
    sweep.add_argument("--target", type=Path, required=True, help="target model checkpoint")
    sweep.add_argument(
        "--data", type=Path, required=True, help="the target's prepared dataset (val split used)"
    )
    sweep.add_argument("--out", type=Path, required=True, help="control sweep CSV to write")
    sweep.add_argument(
        "--patients-csv", type=Path, default=None, help="per-patient Dice CSV to write"
    )
    sweep.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sweep.set_defaults(handler=_run_sweep_controls)

    controls = verbs.add_parser(
        "figure-controls", help="Δ Dice: source's tensor vs re-initialisation vs re-randomisation"
    )
    controls.add_argument(
        "--source", type=Path, required=True, help="sweep summary of the target/source pair"
    )
    controls.add_argument(
        "--controls", type=Path, required=True, help="control-sweep summary of the target"
    )
    controls.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    controls.set_defaults(handler=_run_figure_controls)

    claims = verbs.add_parser(
        "claims", help="test each of the paper's conclusions on the results: verdicts"
    )
    config_arg(claims)
    claims.add_argument(
        "--sweeps", type=Path, nargs="*", default=[], help="sweep CSVs (every seed, controls too)"
    )
    claims.add_argument(
        "--rmse", type=Path, nargs="*", default=[], help="RMSE pair and group tables"
    )
    claims.add_argument(
        "--noise-floor",
        type=Path,
        nargs="*",
        default=[],
        help="RMSE tables of one model at two seeds",
    )
    claims.add_argument("--plans", type=Path, nargs="*", default=[], help="reuse plan JSONs")
    claims.add_argument(
        "--bnstats", type=Path, nargs="*", default=[], help="BN scale/shift tables (every seed)"
    )
    claims.add_argument(
        "--table1", type=Path, default=None, help="table1.csv (its provenance names the runs)"
    )
    claims.add_argument("--runs", type=Path, nargs="*", default=[], help="reuse run folders")
    claims.add_argument("--out", type=Path, required=True, help="claims.md to write")
    claims.add_argument("--csv", type=Path, required=True, help="claims.csv to write")
    claims.set_defaults(handler=_run_claims)

    cka = verbs.add_parser(
        "cka", help="linear CKA of two models' BN-layer activations, every layer pair"
    )
    config_arg(cka)
    cka.add_argument("--target", type=Path, required=True, help="first model checkpoint")
    cka.add_argument("--source", type=Path, required=True, help="second model checkpoint")
    cka.add_argument("--data", type=Path, required=True, help="prepared dataset (val split used)")
    cka.add_argument("--out", type=Path, required=True, help="CSV to write")
    cka.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    cka.set_defaults(handler=_run_cka)

    cka_figure = verbs.add_parser(
        "figure-cka", help="CKA heatmap (layer x layer) and per-layer CKA"
    )
    cka_figure.add_argument("--input", type=Path, required=True, help="CKA CSV of one model pair")
    cka_figure.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    cka_figure.set_defaults(handler=_run_figure_cka)
