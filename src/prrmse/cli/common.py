"""What several verbs' wrappers share: the `--config` flag and the settings objects built
from the config file's analysis sections."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

RUN_NAMES = "<model> or <model>-<freeze|finetune|selffer>-from-<source>"


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)"
    )


def bootstrap_settings(config_path: Path) -> Any:
    from prrmse.core.config import load_config
    from prrmse.results.summary import BootstrapSettings

    return BootstrapSettings(**load_config(config_path)["analysis"]["bootstrap"])


def sweep_settings(config_path: Path, threads: int | None) -> Any:
    """The config's analysis.sweep settings on the device they resolve to; torch threads set."""
    from prrmse.analysis.sweep.engine import SweepSettings
    from prrmse.core.config import load_config
    from prrmse.core.device import select_device

    options = dict(load_config(config_path)["analysis"]["sweep"])
    options["device"] = select_device(options["device"], "analysis.sweep.device").type
    if threads:
        import torch

        torch.set_num_threads(threads)
    return SweepSettings(**options)
