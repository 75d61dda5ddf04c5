"""The CLI's grammar: every verb registered once by its phase's module, --version, defaults
in --help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from prrmse import __version__
from prrmse.cli import analysis, data, figures, repro, results, serve, training
from prrmse.cli.common import sweep_settings
from prrmse.cli.main import build_parser, main


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_each_phase_module_registers_its_verbs_and_no_verb_twice() -> None:
    seen: list[str] = []
    for phase in (data, training, analysis, results, figures, repro, serve):
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


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]


def test_one_flag_grammar_checkpoints_models_and_outputs() -> None:
    """A checkpoint flag is a path named `--...-checkpoint(s)`; a flag holding a model name
    is `--model`, `--run` or `--...-model`; a written file is `--out` or `--...-out`."""
    for verb, parser in _verbs(build_parser()).items():
        for action in _flags(parser):
            name, text = action.option_strings[0], (action.help or "").lower()
            if "checkpoint" in text:
                assert name.endswith(("-checkpoint", "-checkpoints")), (verb, name)
                assert action.type is not None and action.type.__name__ == "Path", (verb, name)
            if name.endswith(("-checkpoint", "-checkpoints")):
                assert "checkpoint" in text, (verb, name)
            if "model name" in text:
                assert name in ("--model", "--run") or name.endswith("-model"), (verb, name)
            if "to write" in text:
                assert name == "--out" or name.endswith("-out"), (verb, name)


@pytest.mark.parametrize(
    ("argv", "dest", "former"),
    [
        (
            ["bnstats", "--target", "a", "--source-checkpoint", "b", "--out", "o"],
            "target_checkpoint",
            "--target",
        ),
        (["rmse", "--models", "a", "b", "--out", "o"], "checkpoints", "--models"),
        (
            [
                "plan",
                "--sweep",
                "s",
                "--rmse",
                "r",
                "--target",
                "t",
                "--source-model",
                "u",
                "--out",
                "o",
            ],
            "target_model",
            "--target",
        ),
        (["figure-cka", "--input", "c.csv", "--out", "o"], "summary", "--input"),
    ],
)
def test_former_flag_names_work_for_one_release_with_a_warning(capsys, argv, dest, former) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) is not None
    err = capsys.readouterr().err
    assert f"{former} is deprecated" in err and "next release" in err
    assert err.count("\n") == 1


def test_former_names_are_hidden_and_a_required_flag_is_still_required(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bnstats", "--help"])
    shown = capsys.readouterr().out
    assert "--target-checkpoint" in shown and "--target " not in shown
    assert main(["bnstats", "--source-checkpoint", "b", "--out", "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--target-checkpoint" in err and "--target " not in err.replace("--target-", "")


@pytest.mark.parametrize(("native", "warned"), [(True, False), (False, True)])
def test_sweep_bf16_on_a_cpu_without_native_bf16_warns(
    tmp_path, monkeypatch, capsys, native, warned
) -> None:
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "config/config.yaml").read_text()
    )
    config["analysis"]["sweep"].update(bf16=True, device="cpu")
    path = tmp_path / "bf16.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr("prrmse.core.device.cpu_has_native_bf16", lambda: native)
    settings = sweep_settings(path, threads=None)
    assert settings.bf16 and settings.device == "cpu"
    err = capsys.readouterr().err
    assert ("without native bf16" in err) == warned
    assert not warned or str(path) in err
