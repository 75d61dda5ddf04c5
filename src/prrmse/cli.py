"""`prrmse <verb>`: thin argparse wrappers around the library functions.

Every verb reads its parameter values from the config file (the file DVC
tracks) and takes its input and output paths on the command line (the paths
the Snakefile declares).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from prrmse.errors import PrrmseError

Handler = Callable[[argparse.Namespace], None]


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)")


def _run_phantoms(args: argparse.Namespace) -> None:
    from prrmse.config import load_config
    from prrmse.data.phantoms import write_phantoms

    config = load_config(args.config)
    phantoms = config["phantoms"]
    if args.dataset not in ("acdc", "rvsc", "t1"):
        raise PrrmseError(args.config, f"no phantom generator for '{args.dataset}' (valid: acdc, rvsc, t1)")
    write_phantoms(args.dataset, phantoms[args.dataset], phantoms["seed"], args.out)
    print(f"phantoms {args.dataset}: written to {args.out}")


def _run_prepare(args: argparse.Namespace) -> None:
    from prrmse.config import dataset_config, load_config
    from prrmse.data.prepare import prepare_dataset

    config = load_config(args.config)
    dataset = dataset_config(config, args.dataset, args.config)
    summary = prepare_dataset(args.dataset, dataset, config["prepare"], args.out)
    print(
        f"prepare {args.dataset}: {summary['slices']['train']} train / {summary['slices']['val']} val "
        f"slices from {summary['patients']['train']} / {summary['patients']['val']} patients -> {args.out}"
    )


def _run_train(args: argparse.Namespace) -> None:
    from prrmse.config import load_config
    from prrmse.naming import parse_model_name
    from prrmse.train import train_model

    config = load_config(args.config)
    spec = parse_model_name(args.model)
    record = train_model(spec, config, args.data, args.out, threads=args.threads)
    scores = record["metrics"]
    shown = (
        "Dice " + " ".join(f"{d:.3f}" for d in scores["dice"]) if "dice" in scores else f"MSE {scores['mse']:.5f}"
    )
    print(f"train {spec.name}: best epoch {record['best_epoch']}, validation {shown} -> {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prrmse", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    phantoms = verbs.add_parser("phantoms", help="write synthetic cardiac MRI in a dataset's real format")
    _config_arg(phantoms)
    phantoms.add_argument("--dataset", required=True, help="acdc, rvsc or t1")
    phantoms.add_argument("--out", type=Path, required=True, help="raw dataset folder to write")
    phantoms.set_defaults(handler=_run_phantoms)

    prepare = verbs.add_parser("prepare", help="preprocess a raw dataset into 2D arrays + index")
    _config_arg(prepare)
    prepare.add_argument("--dataset", required=True, help="a dataset named in the config")
    prepare.add_argument("--out", type=Path, required=True, help="processed dataset folder to write")
    prepare.set_defaults(handler=_run_prepare)

    train = verbs.add_parser("train", help="train one model of the study (resumes a killed run)")
    _config_arg(train)
    train.add_argument("--model", required=True, help="<network>-<task>-<dataset>[-n<N>]-s<seed>")
    train.add_argument("--data", type=Path, required=True, help="prepared dataset folder")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    train.set_defaults(handler=_run_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        handler(args)
    except PrrmseError as exc:
        print(f"prrmse {args.verb}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"prrmse {args.verb}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
