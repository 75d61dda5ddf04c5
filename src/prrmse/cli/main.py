"""`prrmse <verb>`: thin argparse wrappers around the library functions.

Every verb reads its parameter values from the config file (the file DVC
tracks) and takes its input and output paths on the command line (the paths
the Snakefile declares).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from prrmse.cli import beyond, repro
from prrmse.cli.common import bootstrap_settings, config_arg, sweep_settings
from prrmse.core.errors import PrrmseError
from prrmse.core.progress import timestamped_stdout

Handler = Callable[[argparse.Namespace], None]
RUN_NAMES = "<model> or <model>-<freeze|finetune|selffer>-from-<source>"


def _run_phantoms(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.data.phantoms import write_phantoms

    config = load_config(args.config)
    phantoms = config["phantoms"]
    if args.dataset not in ("acdc", "rvsc", "t1"):
        raise PrrmseError(
            args.config, f"no phantom generator for '{args.dataset}' (valid: acdc, rvsc, t1)"
        )
    write_phantoms(args.dataset, phantoms[args.dataset], phantoms["seed"], args.out)
    print(f"phantoms {args.dataset}: written to {args.out}")


def _run_prepare(args: argparse.Namespace) -> None:
    from prrmse.core.config import dataset_config, load_config
    from prrmse.data.prepare import prepare_dataset

    config = load_config(args.config)
    dataset = dataset_config(config, args.dataset, args.config)
    summary = prepare_dataset(args.dataset, dataset, config["prepare"], args.out)
    print(
        f"prepare {args.dataset}: {summary['slices']['train']} train / {summary['slices']['val']} val "
        f"slices from {summary['patients']['train']} / {summary['patients']['val']} patients -> {args.out}"
    )


def _run_qc(args: argparse.Namespace) -> None:
    from prrmse.core.config import dataset_config, load_config
    from prrmse.figures.qc import run_qc

    config = load_config(args.config)
    dataset_config(config, args.dataset, args.config)
    png, _ = run_qc(args.data, args.out, args.dataset, config["qc"]["slices_per_split"])
    print(f"qc {args.dataset}: montage of {args.data} -> {png}")


def _run_train(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.core.naming import parse_model_name
    from prrmse.training.train import train_model

    config = load_config(args.config)
    spec = parse_model_name(args.model)
    record = train_model(
        spec, config, args.data, args.out, threads=args.threads, shared_encoder=args.shared_encoder
    )
    scores = record["metrics"]
    shown = (
        "Dice " + " ".join(f"{d:.3f}" for d in scores["dice"])
        if "dice" in scores
        else f"MSE {scores['mse']:.5f}"
    )
    print(
        f"train {spec.name}: model of epoch {record['best_epoch']} ({record['selection']['rule']}), "
        f"validation {shown} -> {args.out}"
    )


def _run_encoder(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.training.encoder import make_shared_encoder

    config = load_config(args.config)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    make_shared_encoder(config, args.network, args.out, threads=args.threads)


def _run_import_weights(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.models.import_weights import import_resnet18
    from prrmse.models.start import start_config

    config = load_config(args.config)
    networks = config["networks"]
    if args.network not in networks:
        known = ", ".join(sorted(networks)) or "none"
        raise PrrmseError(
            args.config, f"no networks entry '{args.network}' (config defines: {known})"
        )
    named = start_config(networks[args.network])["encoder"]
    out = args.out
    if out is None:
        if named in ("independent", "shared"):
            raise PrrmseError(
                f"{args.config}: config key networks.{args.network}.start.encoder",
                f"is {named!r}, not a file: pass --out",
            )
        out = Path(named)
    record = import_resnet18(
        args.pth,
        networks[args.network],
        out,
        args.network,
        where=f"{args.config}: config key networks.{args.network}",
    )
    note = (
        "" if Path(named) == Path(out) else f" (networks.{args.network}.start.encoder is {named!r})"
    )
    print(
        f"import-weights {args.network}: {record['mapping']['tensors']} encoder tensors of "
        f"{args.pth.name} (sha256 {record['source']['sha256'][:12]}), {record['mapping']['stem']}, "
        f"fc dropped -> {out}{note}"
    )


def _run_sweep(args: argparse.Namespace) -> None:
    from prrmse.analysis.sweep.engine import run_sweep

    settings = sweep_settings(args.config, args.threads)
    table = run_sweep(
        args.target, args.source, args.data, args.out, settings, patients_csv=args.patients_csv
    )
    print(f"sweep: {len(table)} rows -> {args.out}")


def _run_bnstats(args: argparse.Namespace) -> None:
    from prrmse.analysis.bnstats import run_bnstats

    table = run_bnstats(args.target, args.source, args.out)
    print(f"bnstats: {len(table)} BN layers -> {args.out}")


def _run_rmse(args: argparse.Namespace) -> None:
    from prrmse.analysis.rmse import run_rmse

    table = run_rmse(args.models, args.out)
    print(f"rmse: {len(table)} rows -> {args.out}")


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
    network_name = parse_model_name(args.target).network
    if network_name not in config["networks"]:
        raise PrrmseError(
            args.config, f"no networks entry '{network_name}' for the target {args.target}"
        )
    network = config["networks"][network_name]
    plan = run_plan(
        args.sweep,
        args.rmse,
        args.out,
        thresholds,
        options["rule"],
        args.target,
        args.source,
        network=network,
    )
    share = plan["share"]
    print(
        f"plan {args.source} -> {args.target}: {share['entries']:.1%} of entries, "
        f"{share['scalars']:.1%} of scalars reused -> {args.out}"
    )


def _run_figure(args: argparse.Namespace) -> None:
    from prrmse.figures.paper import make_figure

    make_figure(
        args.number, args.inputs, args.out, title=args.title, floor=args.floor, runs=args.runs
    )
    print(f"figure {args.number:02d} -> {args.out}.png, {args.out}.pdf")


def _run_table(args: argparse.Namespace) -> None:
    from prrmse.core import provenance
    from prrmse.core.io import sha256_file
    from prrmse.results.tables import baseline_table, plan_table, write_table

    builders = {"baseline": baseline_table, "plans": plan_table}
    table = builders[args.kind](args.inputs)
    # what the builder read besides --inputs: checkpoints, and the paper's packaged files by
    # their package-relative name (never an absolute path)
    inputs = {**{str(p): sha256_file(p) for p in args.inputs}, **table.attrs.get("inputs", {})}
    stamp = provenance.stamp(inputs=inputs, resources=table.attrs.get("resources", {}))
    write_table(table, args.out, args.caption or args.kind, stamp)
    print(f"table {args.kind}: {len(table)} rows -> {args.out}.csv, .md, .tex")


def _run_reuse(args: argparse.Namespace) -> None:
    from prrmse.analysis.reuse import plan_setup
    from prrmse.core.config import load_config
    from prrmse.core.naming import parse_run_name
    from prrmse.training.train import train_model

    config = load_config(args.config)
    run = parse_run_name(args.run)
    if run.source is None:
        raise PrrmseError(
            args.run, "a reuse run is named <model>-<freeze|finetune|selffer>-from-<source>"
        )
    setup = plan_setup(args.source, args.plan, run.mode, config["reuse"]["frozen_bn"])
    extra = {"reuse": {"run": run.name, "mode": run.mode, "source": run.source}}
    record = train_model(
        run.model,
        config,
        args.data,
        args.out,
        threads=args.threads,
        setup=setup,
        extra_record=extra,
        shared_encoder=args.shared_encoder,
    )
    dice = " ".join(f"{d:.3f}" for d in record["metrics"]["dice"])
    print(
        f"reuse {run.name}: model of epoch {record['best_epoch']} ({record['selection']['rule']}), "
        f"validation Dice {dice} -> {args.out}"
    )


def _run_table1(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.core.naming import parse_run_name
    from prrmse.results.table1 import make_table1

    runs = []
    for path in args.runs:
        run = parse_run_name(path.parent.name)
        patients = path.parent / "patients.csv"
        runs.append(
            {
                "n_train": run.model.n_train,
                "source": run.source_label,
                "mode": run.mode,
                "seed": run.model.seed,
                "metrics_json": path,
                "patients_csv": patients if patients.exists() else None,
            }
        )
    min_seeds = load_config(args.config)["analysis"]["verdicts"]["min_seeds"]
    table, findings = make_table1(
        runs, args.out, bootstrap=bootstrap_settings(args.config), min_seeds=min_seeds
    )
    verdicts = [f["ours"] for f in findings]
    print(
        f"table1: {len(table)} rows, findings on our numbers: {verdicts.count('holds')} hold, "
        f"{verdicts.count('does not hold')} do not, {len(verdicts) - verdicts.count('holds') - verdicts.count('does not hold')} "
        f"inconclusive -> {args.out}.csv"
    )


def _run_rmse_to_ideal(args: argparse.Namespace) -> None:
    from prrmse.core.naming import run_label
    from prrmse.figures.reuse import rmse_to_ideal

    runs = {}
    for path in args.runs:
        try:
            runs[run_label(path.parent.name)] = path
        except PrrmseError:
            raise PrrmseError(
                path, f"folder '{path.parent.name}' is not a run name ({RUN_NAMES})"
            ) from None
    table = rmse_to_ideal(args.ideal, runs, args.out)
    print(f"rmse-to-ideal: {len(runs)} runs, {len(table)} rows -> {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prrmse", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    phantoms = verbs.add_parser(
        "phantoms", help="write synthetic cardiac MRI in a dataset's real format"
    )
    config_arg(phantoms)
    phantoms.add_argument("--dataset", required=True, help="acdc, rvsc or t1")
    phantoms.add_argument("--out", type=Path, required=True, help="raw dataset folder to write")
    phantoms.set_defaults(handler=_run_phantoms)

    prepare = verbs.add_parser("prepare", help="preprocess a raw dataset into 2D arrays + index")
    config_arg(prepare)
    prepare.add_argument("--dataset", required=True, help="a dataset named in the config")
    prepare.add_argument(
        "--out", type=Path, required=True, help="processed dataset folder to write"
    )
    prepare.set_defaults(handler=_run_prepare)

    qc = verbs.add_parser(
        "qc", help="PNG montage of a prepared dataset: sample slices, label outlines, class counts"
    )
    config_arg(qc)
    qc.add_argument("--dataset", required=True, help="a dataset named in the config")
    qc.add_argument("--data", type=Path, required=True, help="its prepared dataset folder")
    qc.add_argument(
        "--out", type=Path, required=True, help="output base path (no suffix): .png and .pdf"
    )
    qc.set_defaults(handler=_run_qc)

    train = verbs.add_parser("train", help="train one model of the study (resumes a killed run)")
    config_arg(train)
    train.add_argument("--model", required=True, help="<network>-<task>-<dataset>[-n<N>]-s<seed>")
    train.add_argument("--data", type=Path, required=True, help="prepared dataset folder")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    train.add_argument(
        "--shared-encoder",
        type=Path,
        default=None,
        help="the network's shared encoder start (start.encoder: shared)",
    )
    train.set_defaults(handler=_run_train)

    encoder = verbs.add_parser(
        "encoder", help="make a network's shared encoder start (config encoders.<network>)"
    )
    config_arg(encoder)
    encoder.add_argument("--network", required=True, help="a network of the config")
    encoder.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    encoder.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    encoder.set_defaults(handler=_run_encoder)

    imported = verbs.add_parser(
        "import-weights",
        help="a torchvision ResNet-18 state dict (.pth) -> the network's encoder start file (safetensors)",
    )
    config_arg(imported)
    imported.add_argument(
        "--pth", type=Path, required=True, help="torch.save(resnet18.state_dict()) file"
    )
    imported.add_argument(
        "--network", default="pspnet", help="a network of the config (default: pspnet)"
    )
    imported.add_argument(
        "--out",
        type=Path,
        default=None,
        help="safetensors file to write (default: its start.encoder path)",
    )
    imported.set_defaults(handler=_run_import_weights)

    sweep = verbs.add_parser(
        "sweep", help="replace each (layer, kind) of a target by a source's, measure Dice"
    )
    config_arg(sweep)
    sweep.add_argument("--target", type=Path, required=True, help="target model checkpoint")
    sweep.add_argument("--source", type=Path, required=True, help="source model checkpoint")
    sweep.add_argument(
        "--data", type=Path, required=True, help="the target's prepared dataset (val split used)"
    )
    sweep.add_argument("--out", type=Path, required=True, help="sweep CSV to write")
    sweep.add_argument(
        "--patients-csv",
        type=Path,
        default=None,
        help="per-patient Dice CSV (default: <out stem>.patients.csv)",
    )
    sweep.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sweep.set_defaults(handler=_run_sweep)

    bnstats = verbs.add_parser(
        "bnstats", help="BN scale and shift (MRM, MRV, MRW, MRB) between two models"
    )
    bnstats.add_argument("--target", type=Path, required=True, help="target model checkpoint")
    bnstats.add_argument("--source", type=Path, required=True, help="source model checkpoint")
    bnstats.add_argument("--out", type=Path, required=True, help="CSV to write")
    bnstats.set_defaults(handler=_run_bnstats)

    rmse = verbs.add_parser("rmse", help="per-layer RMSE between models (every pair of a group)")
    rmse.add_argument(
        "--models", type=Path, nargs="+", required=True, help="two or more checkpoints"
    )
    rmse.add_argument("--out", type=Path, required=True, help="CSV to write")
    rmse.set_defaults(handler=_run_rmse)

    plan = verbs.add_parser("plan", help="reuse plan from a sweep and an RMSE table")
    config_arg(plan)
    plan.add_argument("--sweep", type=Path, required=True, help="sweep CSV (source into target)")
    plan.add_argument("--rmse", type=Path, required=True, help="RMSE CSV of the same pair")
    plan.add_argument("--target", required=True, help="target model name")
    plan.add_argument("--source", required=True, help="source model name")
    plan.add_argument("--out", type=Path, required=True, help="plan JSON to write")
    plan.set_defaults(handler=_run_plan)

    figure = verbs.add_parser(
        "figure", help="draw one of the paper's figures (3-14) as PNG and PDF"
    )
    figure.add_argument("--number", type=int, required=True, help="figure number")
    figure.add_argument("--inputs", type=Path, nargs="+", required=True, help="the tables it draws")
    figure.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    figure.add_argument("--title", default=None, help="figure title")
    figure.add_argument("--runs", nargs="+", default=None, help="figures 13/14: the runs to draw")
    figure.add_argument(
        "--floor", type=Path, default=None, help="RMSE figures: seed-to-seed floor CSV"
    )
    figure.set_defaults(handler=_run_figure)

    reuse = verbs.add_parser(
        "reuse", help="train a target from a source's tensors per a reuse plan"
    )
    config_arg(reuse)
    reuse.add_argument(
        "--run", required=True, help="<model>-<freeze|finetune|selffer>-from-<source>"
    )
    reuse.add_argument("--source", type=Path, required=True, help="source model checkpoint")
    reuse.add_argument("--plan", type=Path, required=True, help="reuse plan JSON")
    reuse.add_argument("--data", type=Path, required=True, help="the target's prepared dataset")
    reuse.add_argument("--out", type=Path, required=True, help="run folder to write")
    reuse.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    reuse.add_argument(
        "--shared-encoder",
        type=Path,
        default=None,
        help="the network's shared encoder start (start.encoder: shared)",
    )
    reuse.set_defaults(handler=_run_reuse)

    table1 = verbs.add_parser("table1", help="the paper's Table 1 from the reuse runs' metrics")
    config_arg(table1)
    table1.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="metrics.json of each run"
    )
    table1.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    table1.set_defaults(handler=_run_table1)

    ideal = verbs.add_parser(
        "rmse-to-ideal", help="per-layer RMSE of each reuse run against the ideal model"
    )
    ideal.add_argument("--ideal", type=Path, required=True, help="the ideal model's checkpoint")
    ideal.add_argument("--runs", type=Path, nargs="+", required=True, help="run checkpoints")
    ideal.add_argument("--out", type=Path, required=True, help="CSV to write")
    ideal.set_defaults(handler=_run_rmse_to_ideal)

    table = verbs.add_parser("table", help="write a table as CSV, Markdown and LaTeX")
    table.add_argument("--kind", choices=["baseline", "plans"], required=True, help="which table")
    table.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="metrics.json or plan JSON files"
    )
    table.add_argument("--out", type=Path, required=True, help="output base path (no suffix)")
    table.add_argument("--caption", default=None, help="table caption")
    table.set_defaults(handler=_run_table)

    beyond.register(verbs)
    repro.register(verbs)
    return parser


# Tools a person runs and reads (or parses: --json) keep plain output; every workflow
# job's log gets timestamped lines, flushed as they end (prrmse.core.progress).
PLAIN_OUTPUT_VERBS = frozenset({"lineage", "dvc-sync", "dvc-record"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # argparse prints the usage and then "prog: error: ..."; keep only that last line, so a
    # bad argument, like any bad input, is one line on stderr (exit 2, as argparse's).
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        lines = [line for line in usage.getvalue().splitlines() if line.strip()]
        if code != 0 and lines:
            print(f"{lines[-1]} (see --help)", file=sys.stderr)
        else:
            sys.stderr.write(usage.getvalue())
        return code
    handler: Handler = args.handler
    output = contextlib.nullcontext() if args.verb in PLAIN_OUTPUT_VERBS else timestamped_stdout()
    try:
        with output:
            handler(args)
    except PrrmseError as exc:
        print(f"prrmse {args.verb}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A system error no check foresaw (permissions, I/O): still one line naming the file.
        where = exc.filename if exc.filename is not None else "?"
        print(f"prrmse {args.verb}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"prrmse {args.verb}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
