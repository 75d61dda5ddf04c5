"""`prrmse <verb>`: thin argparse wrappers around the library functions.

Every verb reads its parameter values from the config file (the file DVC
tracks) and takes its input and output paths on the command line (the paths
the Snakefile declares). The verbs of each phase are registered by its module
(`prrmse.cli.data`, `training`, `analysis`, `results`, `figures`, `repro`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import sys
from collections.abc import Callable, Sequence

from prrmse import __version__
from prrmse.cli import analysis, data, figures, repro, results, serve, training
from prrmse.cli.common import ConfigKeys
from prrmse.core.errors import PrrmseError
from prrmse.core.memory import keep_freed_memory
from prrmse.core.progress import timestamped_stdout

Handler = Callable[[argparse.Namespace], None]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help shows its default, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prrmse", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"prrmse {__version__}")
    verbs = parser.add_subparsers(
        dest="verb",
        required=True,
        metavar="VERB",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=_Help),
    )
    for phase in (data, training, analysis, results, figures, repro, serve):
        phase.register(verbs)
    # the DVC verbs derive each stage's params from every verb's declared config keys
    parser.set_defaults(verb_keys=_declared_config_keys(verbs), run_verb=main)
    return parser


def _declared_config_keys(verbs: argparse._SubParsersAction) -> dict[str, ConfigKeys]:
    return {
        verb: keys
        for verb, parser in verbs.choices.items()
        if (keys := parser.get_default("config_keys")) is not None
    }


def verb_config_keys() -> dict[str, ConfigKeys]:
    """Each verb that reads the config file -> the config keys it reads (see `config_arg`)."""
    return build_parser().get_default("verb_keys")


# Tools a person runs and reads (or parses: --json) keep plain output; every workflow
# job's log gets timestamped lines, flushed as they end (prrmse.core.progress).
PLAIN_OUTPUT_VERBS = frozenset({"lineage", "dvc-sync", "dvc-record", "serve"})


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
    keep_freed_memory()
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
