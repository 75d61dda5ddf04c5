"""`prrmse <verb>` for raw data: phantoms in the real formats, and their preparation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prrmse.cli.common import config_arg
from prrmse.core.errors import PrrmseError


def _run_phantoms(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.data.phantoms import write_phantoms
    from prrmse.data.settings import phantoms_settings

    config = load_config(args.config)
    if args.dataset not in ("acdc", "rvsc", "t1"):
        raise PrrmseError(
            args.config, f"no phantom generator for '{args.dataset}' (valid: acdc, rvsc, t1)"
        )
    phantoms = phantoms_settings(config, str(args.config))
    write_phantoms(args.dataset, getattr(phantoms, args.dataset), phantoms.seed, args.out)
    print(f"phantoms {args.dataset}: written to {args.out}")


def _run_prepare(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.data.prepare import prepare_dataset
    from prrmse.data.settings import dataset_settings, prepare_settings

    config = load_config(args.config)
    source = str(args.config)
    dataset = dataset_settings(config, args.dataset, source)
    summary = prepare_dataset(args.dataset, dataset, prepare_settings(config, source), args.out)
    print(
        f"prepare {args.dataset}: {summary['slices']['train']} train / {summary['slices']['val']} val "
        f"slices from {summary['patients']['train']} / {summary['patients']['val']} patients -> {args.out}"
    )


def register(verbs: Any) -> None:
    phantoms = verbs.add_parser(
        "phantoms", help="write synthetic cardiac MRI in a dataset's real format"
    )
    config_arg(phantoms, lambda a: ["phantoms.seed", f"phantoms.{a.dataset}"])
    phantoms.add_argument("--dataset", required=True, help="acdc, rvsc or t1")
    phantoms.add_argument("--out", type=Path, required=True, help="raw dataset folder to write")
    phantoms.set_defaults(handler=_run_phantoms)

    prepare = verbs.add_parser("prepare", help="preprocess a raw dataset into 2D arrays + index")
    config_arg(prepare, lambda a: [f"datasets.{a.dataset}", "prepare"])
    prepare.add_argument("--dataset", required=True, help="a dataset named in the config")
    prepare.add_argument(
        "--out", type=Path, required=True, help="processed dataset folder to write"
    )
    prepare.set_defaults(handler=_run_prepare)
