"""`prrmse <verb>` for what is measured between models: sweeps, BN statistics, RMSE, CKA, plans."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prrmse.cli.common import RUN_NAMES, config_arg, flag, sweep_settings
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import network_of_name


def _run_sweep(args: argparse.Namespace) -> None:
    from prrmse.analysis.sweep.engine import run_sweep

    settings = sweep_settings(args.config, args.threads)
    table = run_sweep(
        args.target_checkpoint,
        args.source_checkpoint,
        args.data,
        args.out,
        settings,
        patients_csv=args.patients_out,
    )
    print(f"sweep: {len(table)} rows -> {args.out}")


def _run_sweep_controls(args: argparse.Namespace) -> None:
    from prrmse.analysis.sweep.engine import run_control_sweep
    from prrmse.core.config import load_config

    settings = sweep_settings(args.config, args.threads)
    conditions = tuple(load_config(args.config)["analysis"]["controls"])
    table = run_control_sweep(
        args.target_checkpoint,
        args.data,
        args.out,
        settings,
        conditions=conditions,
        patients_csv=args.patients_out,
    )
    print(f"sweep-controls {', '.join(conditions)}: {len(table)} rows -> {args.out}")


def _run_bnstats(args: argparse.Namespace) -> None:
    from prrmse.analysis.bnstats import run_bnstats

    table = run_bnstats(args.target_checkpoint, args.source_checkpoint, args.out)
    print(f"bnstats: {len(table)} BN layers -> {args.out}")


def _run_rmse(args: argparse.Namespace) -> None:
    from prrmse.analysis.rmse import run_rmse

    table = run_rmse(args.checkpoints, args.out)
    print(f"rmse: {len(table)} rows -> {args.out}")


def _run_rmse_to_ideal(args: argparse.Namespace) -> None:
    from prrmse.analysis.rmse import rmse_to_ideal
    from prrmse.core.naming import run_label

    runs = {}
    for path in args.run_checkpoints:
        try:
            runs[run_label(path.parent.name)] = path
        except PrrmseError:
            raise PrrmseError(
                path, f"folder '{path.parent.name}' is not a run name ({RUN_NAMES})"
            ) from None
    table = rmse_to_ideal(args.ideal_checkpoint, runs, args.out)
    print(f"rmse-to-ideal: {len(runs)} runs, {len(table)} rows -> {args.out}")


def _run_plan(args: argparse.Namespace) -> None:
    from prrmse.analysis.plan_models import run_plan
    from prrmse.core.config import load_config
    from prrmse.core.naming import parse_model_name

    config = load_config(args.config)
    options = config["analysis"]["plan"]
    thresholds = {
        "max_dice_drop": options["max_dice_drop"],
        "max_rel_rmse_w": options["max_rel_rmse_w"],
    }
    network_name = parse_model_name(args.target_model).network
    if network_name not in config["networks"]:
        raise PrrmseError(
            args.config, f"no networks entry '{network_name}' for the target {args.target_model}"
        )
    network = config["networks"][network_name]
    plan = run_plan(
        args.sweep,
        args.rmse,
        args.out,
        thresholds,
        options["rule"],
        args.target_model,
        args.source_model,
        network=network,
    )
    share = plan["share"]
    print(
        f"plan {args.source_model} -> {args.target_model}: {share['entries']:.1%} of entries, "
        f"{share['scalars']:.1%} of scalars reused -> {args.out}"
    )


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
        args.target_checkpoint,
        args.source_checkpoint,
        args.data,
        args.out,
        max_images=options["max_images"],
        batch_size=options["batch_size"],
        device=device,
    )
    print(f"cka: {len(table)} layer pairs -> {args.out}")


def _checkpoint(parser: argparse.ArgumentParser, role: str, help: str | None = None) -> None:
    """`--<role>-checkpoint`: a model checkpoint path (formerly `--<role>`)."""
    flag(
        parser,
        f"--{role}-checkpoint",
        former=f"--{role}",
        type=Path,
        required=True,
        help=help or f"{role} model checkpoint",
    )


def register(verbs: Any) -> None:
    _add_sweep(verbs)
    _add_sweep_controls(verbs)
    _add_bnstats(verbs)
    _add_rmse(verbs)
    _add_rmse_to_ideal(verbs)
    _add_plan(verbs)
    _add_cka(verbs)


def _add_sweep(verbs: Any) -> None:
    sweep = verbs.add_parser(
        "sweep", help="replace each (layer, kind) of a target by a source's, measure Dice"
    )
    config_arg(sweep, lambda a: ["analysis.sweep"])
    _checkpoint(sweep, "target")
    _checkpoint(sweep, "source")
    sweep.add_argument(
        "--data", type=Path, required=True, help="the target's prepared dataset (val split used)"
    )
    sweep.add_argument("--out", type=Path, required=True, help="sweep CSV to write")
    flag(
        sweep,
        "--patients-out",
        former="--patients-csv",
        type=Path,
        default=None,
        help="per-patient Dice CSV to write (default: <out stem>.patients.csv)",
    )
    sweep.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sweep.set_defaults(handler=_run_sweep)


def _add_sweep_controls(verbs: Any) -> None:
    sweep = verbs.add_parser(
        "sweep-controls", help="sweep a target against its own init and a fresh draw"
    )
    config_arg(sweep, lambda a: ["analysis.sweep", "analysis.controls"])
    _checkpoint(sweep, "target")
    sweep.add_argument(
        "--data", type=Path, required=True, help="the target's prepared dataset (val split used)"
    )
    sweep.add_argument("--out", type=Path, required=True, help="control sweep CSV to write")
    flag(
        sweep,
        "--patients-out",
        former="--patients-csv",
        type=Path,
        default=None,
        help="per-patient Dice CSV to write",
    )
    sweep.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sweep.set_defaults(handler=_run_sweep_controls)


def _add_bnstats(verbs: Any) -> None:
    bnstats = verbs.add_parser(
        "bnstats", help="BN scale and shift (MRM, MRV, MRW, MRB) between two models"
    )
    _checkpoint(bnstats, "target")
    _checkpoint(bnstats, "source")
    bnstats.add_argument("--out", type=Path, required=True, help="CSV to write")
    bnstats.set_defaults(handler=_run_bnstats)


def _add_rmse(verbs: Any) -> None:
    rmse = verbs.add_parser("rmse", help="per-layer RMSE between models (every pair of a group)")
    flag(
        rmse,
        "--checkpoints",
        former="--models",
        type=Path,
        nargs="+",
        required=True,
        help="two or more model checkpoints",
    )
    rmse.add_argument("--out", type=Path, required=True, help="CSV to write")
    rmse.set_defaults(handler=_run_rmse)


def _add_rmse_to_ideal(verbs: Any) -> None:
    ideal = verbs.add_parser(
        "rmse-to-ideal", help="per-layer RMSE of each reuse run against the ideal model"
    )
    _checkpoint(ideal, "ideal", "the ideal model's checkpoint")
    flag(
        ideal,
        "--run-checkpoints",
        former="--runs",
        type=Path,
        nargs="+",
        required=True,
        help="each reuse run's checkpoint (in a folder named by the run)",
    )
    ideal.add_argument("--out", type=Path, required=True, help="CSV to write")
    ideal.set_defaults(handler=_run_rmse_to_ideal)


def _add_plan(verbs: Any) -> None:
    plan = verbs.add_parser("plan", help="reuse plan from a sweep and an RMSE table")
    # the relative-RMSE rule is calibrated on two untrained models of the target's network
    config_arg(
        plan,
        lambda a: [
            "analysis.plan.rule",
            "analysis.plan.max_dice_drop",
            "analysis.plan.max_rel_rmse_w",
            f"networks.{network_of_name(a.target_model)}",
        ],
    )
    plan.add_argument("--sweep", type=Path, required=True, help="sweep CSV (source into target)")
    plan.add_argument("--rmse", type=Path, required=True, help="RMSE CSV of the same pair")
    flag(plan, "--target-model", former="--target", required=True, help="target model name")
    flag(plan, "--source-model", former="--source", required=True, help="source model name")
    plan.add_argument("--out", type=Path, required=True, help="plan JSON to write")
    plan.set_defaults(handler=_run_plan)


def _add_cka(verbs: Any) -> None:
    cka = verbs.add_parser(
        "cka", help="linear CKA of two models' BN-layer activations, every layer pair"
    )
    config_arg(cka, lambda a: ["analysis.cka", "analysis.sweep.device"])
    _checkpoint(cka, "target", "first model checkpoint")
    _checkpoint(cka, "source", "second model checkpoint")
    cka.add_argument("--data", type=Path, required=True, help="prepared dataset (val split used)")
    cka.add_argument("--out", type=Path, required=True, help="CSV to write")
    cka.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    cka.set_defaults(handler=_run_cka)
