"""The CLI's grammar: every verb registered once by its phase's module, --version, defaults
in --help."""

from __future__ import annotations

import argparse

import pytest

from prrmse import __version__
from prrmse.cli import analysis, data, figures, repro, results, training
from prrmse.cli.main import build_parser, main


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_each_phase_module_registers_its_verbs_and_no_verb_twice() -> None:
    seen: list[str] = []
    for phase in (data, training, analysis, results, figures, repro):
        parser = argparse.ArgumentParser()
        phase.register(parser.add_subparsers())
        seen += list(_verbs(parser))
    assert len(seen) == len(set(seen))
    assert set(seen) == set(_verbs(build_parser()))


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"prrmse {__version__}"


def test_help_shows_defaults_and_choices(capsys) -> None:
    assert main(["summarise", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: config/config.yaml)" in text
    assert "{sweep,bnstats,rmse,rmse_to_ideal}" in text
    assert "(default: None)" not in text
