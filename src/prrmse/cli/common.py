"""What several verbs' wrappers share: the `--config` flag and the settings objects built
from the config file's analysis sections."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUN_NAMES = "<model> or <model>-<freeze|finetune|selffer>-from-<source>"


# The config keys a verb reads, given its other arguments: dotted paths into the config
# (a section or a value). Declared where the verb takes --config; dvc.yaml's params of its
# stages and the workflow rules' `settings` param (Snakemake reruns a job whose values
# changed) both come from this declaration.
ConfigKeys = Callable[[argparse.Namespace], list[str]]


def config_arg(parser: argparse.ArgumentParser, keys: ConfigKeys) -> None:
    """`--config`, and the config keys the verb reads (`keys`)."""
    parser.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)"
    )
    parser.set_defaults(config_keys=keys)


class _FormerName(argparse.Action):
    """A flag's name before the CLI's grammar was made one (a checkpoint flag names a path
    `--...-checkpoint`, a model name `--...-model`): accepted for one release, with a warning."""

    def __init__(self, option_strings: list[str], dest: str, name: str, **kwargs: Any) -> None:
        self.name = name
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"prrmse {parser.prog.split()[-1]}: {option_string} is deprecated, use {self.name} "
            "(the old name goes in the next release)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def flag(
    parser: argparse.ArgumentParser,
    name: str,
    *,
    former: str | None = None,
    required: bool = False,
    **kwargs: Any,
) -> None:
    """Adds the flag `name`; `former`, its earlier name, still works for one release (hidden
    from --help, a warning on stderr). A required flag is satisfied by either name."""
    if former is None:
        parser.add_argument(name, required=required, **kwargs)
        return
    group = parser.add_mutually_exclusive_group(required=required)
    action = group.add_argument(name, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k in ("type", "nargs", "default")}
    group.add_argument(
        former, dest=action.dest, action=_FormerName, name=name, help=argparse.SUPPRESS, **kwargs
    )


def bootstrap_settings(config_path: Path) -> Any:
    from prrmse.core.config import load_config
    from prrmse.results.summary import BootstrapSettings

    return BootstrapSettings(**load_config(config_path)["analysis"]["bootstrap"])


def sweep_settings(config_path: Path, threads: int | None) -> Any:
    """The config's analysis.sweep settings on the device they resolve to; torch threads set."""
    from prrmse.analysis.sweep.replacement import SweepSettings
    from prrmse.core.config import load_config
    from prrmse.core.device import cpu_has_native_bf16, select_device

    options = dict(load_config(config_path)["analysis"]["sweep"])
    options["device"] = select_device(options["device"], "analysis.sweep.device").type
    if options["bf16"] and options["device"] == "cpu" and not cpu_has_native_bf16():
        print(
            f"warning: {config_path}: analysis.sweep.bf16 on a CPU without native bf16 "
            "(AVX512-BF16 or AMX): emulated, slower than float32",
            file=sys.stderr,
            flush=True,
        )
    if threads:
        import torch

        torch.set_num_threads(threads)
    return SweepSettings(**options)
