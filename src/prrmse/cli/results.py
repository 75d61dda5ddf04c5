"""`prrmse <verb>` for tables and verdicts: summaries over seeds, the noise floor, Table 1, claims."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prrmse.cli.common import bootstrap_settings, config_arg, flag


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


def _run_table1(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.results.table1_files import make_table1, reuse_runs_from_metrics

    min_seeds = load_config(args.config)["analysis"]["verdicts"]["min_seeds"]
    table, findings = make_table1(
        reuse_runs_from_metrics(args.run_metrics),
        args.out,
        bootstrap=bootstrap_settings(args.config),
        min_seeds=min_seeds,
    )
    verdicts = [f["ours"] for f in findings]
    held, failed = verdicts.count("holds"), verdicts.count("does not hold")
    print(
        f"table1: {len(table)} rows, findings on our numbers: {held} hold, {failed} do not, "
        f"{len(verdicts) - held - failed} inconclusive -> {args.out}.csv"
    )


def _run_table(args: argparse.Namespace) -> None:
    from prrmse.results.tables import make_table

    table = make_table(args.kind, args.inputs, args.out, args.caption or args.kind)
    print(f"table {args.kind}: {len(table)} rows -> {args.out}.csv, .md, .tex")


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
        reuse_runs=args.run_folders,
        min_seeds=config["analysis"]["verdicts"]["min_seeds"],
        **config["analysis"]["bootstrap"],
    )
    claims = run_claims(inputs, args.out, args.csv_out)
    counts = {
        v: sum(c.verdict == v for c in claims) for v in ("holds", "does not hold", "inconclusive")
    }
    print(
        f"claims: {len(claims)} ({', '.join(f'{n} {v}' for v, n in counts.items())}) -> {args.out}, {args.csv_out}"
    )


def register(verbs: Any) -> None:
    _add_summarise(verbs)
    _add_noise_floor(verbs)
    _add_table1(verbs)
    _add_table(verbs)
    _add_claims(verbs)


def _add_summarise(verbs: Any) -> None:
    summarise = verbs.add_parser(
        "summarise", help="mean and 95 %% bootstrap interval of a product over seeds"
    )
    config_arg(summarise, lambda a: ["analysis.bootstrap"])
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


def _add_noise_floor(verbs: Any) -> None:
    floor = verbs.add_parser(
        "noise-floor", help="seed-to-seed RMSE floor from RMSE tables of one model at two seeds"
    )
    floor.add_argument("--inputs", type=Path, nargs="+", required=True, help="RMSE pair tables")
    floor.add_argument("--out", type=Path, required=True, help="CSV to write")
    floor.set_defaults(handler=_run_noise_floor)


def _add_table1(verbs: Any) -> None:
    table1 = verbs.add_parser("table1", help="the paper's Table 1 from the reuse runs' metrics")
    config_arg(table1, lambda a: ["analysis.bootstrap", "analysis.verdicts"])
    flag(
        table1,
        "--run-metrics",
        former="--runs",
        type=Path,
        nargs="+",
        required=True,
        help="metrics.json of each run (in a folder named by the run)",
    )
    table1.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    table1.set_defaults(handler=_run_table1)


def _add_table(verbs: Any) -> None:
    table = verbs.add_parser("table", help="write a table as CSV, Markdown and LaTeX")
    table.add_argument("--kind", choices=["baseline", "plans"], required=True, help="which table")
    table.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="metrics.json or plan JSON files"
    )
    table.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    table.add_argument("--caption", default=None, help="table caption")
    table.set_defaults(handler=_run_table)


def _add_claims(verbs: Any) -> None:
    claims = verbs.add_parser(
        "claims", help="test each of the paper's conclusions on the results: verdicts"
    )
    config_arg(claims, lambda a: ["analysis.bootstrap", "analysis.plan", "analysis.verdicts"])
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
    flag(
        claims,
        "--run-folders",
        former="--runs",
        type=Path,
        nargs="*",
        default=[],
        help="reuse run folders",
    )
    claims.add_argument("--out", type=Path, required=True, help="claims.md to write")
    flag(claims, "--csv-out", former="--csv", type=Path, required=True, help="claims.csv to write")
    claims.set_defaults(handler=_run_claims)
