"""Each DVC stage depends on the code its verb runs, read from the package's import graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from prrmse.core.errors import PrrmseError
from prrmse.repro.codedeps import manifest_path, read_package, verb_files, write_code_manifests
from prrmse.repro.dvcgen import CODE_DEP, CODE_STAGE
from prrmse.repro.snakemake_dag import parse_verb

ROOT = Path(__file__).resolve().parents[2]


def _package(tmp_path: Path) -> Path:
    """A package shaped like ours, named `prrmse` so that its imports are followed."""
    files = {
        "__init__.py": "",
        "cli/__init__.py": "",
        "cli/main.py": (
            "from prrmse.core.errors import E\n"
            "def _run_draw(args):\n    from prrmse.figures.draw import draw\n    helper()\n"
            "def _run_fit(args):\n    from prrmse.training.fit import fit\n"
            "def helper():\n    from prrmse.cli.common import settings\n    settings()\n"
            "def build(verbs):\n"
            # one name for two parsers: each set_defaults belongs to the parser before it
            "    verb = verbs.add_parser('draw')\n    verb.set_defaults(handler=_run_draw)\n"
            "    verb = verbs.add_parser('fit')\n    verb.set_defaults(handler=_run_fit)\n"
        ),
        "cli/common.py": "def settings():\n    from prrmse.core.config import load\n",
        "core/__init__.py": "",
        "core/errors.py": "class E(Exception): ...\n",
        "core/config.py": 'from importlib import resources\nX = resources.files("prrmse")\n',
        "figures/__init__.py": "",
        "figures/draw.py": "from prrmse.results import table\ndef draw(): ...\n",
        "results/__init__.py": "",
        "results/table.py": "import prrmse\n",
        "training/__init__.py": "",
        "training/fit.py": "from prrmse.core import errors\ndef fit(): ...\n",
        "resources/schema.yaml": "{}\n",
    }
    for name, text in files.items():
        path = tmp_path / "src/prrmse" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "src/prrmse"


def _names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root / "src/prrmse").as_posix() for p in paths]


def test_a_verb_runs_its_wrapper_and_the_modules_its_imports_reach(tmp_path: Path) -> None:
    source = read_package(_package(tmp_path))
    assert source.handlers == {
        "draw": ("prrmse.cli.main", "_run_draw"),
        "fit": ("prrmse.cli.main", "_run_fit"),
    }
    # the wrapper module's top-level imports count, and so do the helper's and the
    # resources its config module reads; the other wrapper's imports do not
    assert _names(verb_files(source, "draw"), tmp_path) == [
        "__init__.py",
        "cli/__init__.py",
        "cli/common.py",
        "cli/main.py",
        "core/__init__.py",
        "core/config.py",
        "core/errors.py",
        "figures/__init__.py",
        "figures/draw.py",
        "resources/schema.yaml",
        "results/__init__.py",
        "results/table.py",
    ]
    assert _names(verb_files(source, "fit"), tmp_path) == [
        "__init__.py",
        "cli/__init__.py",
        "cli/main.py",
        "core/__init__.py",
        "core/errors.py",
        "training/__init__.py",
        "training/fit.py",
    ]


def test_manifests_change_only_for_the_verbs_that_run_an_edited_file(tmp_path: Path) -> None:
    package = _package(tmp_path)
    draw, fit = write_code_manifests(package, ["fit", "draw"], tmp_path)
    assert draw == tmp_path / manifest_path("draw") and fit == tmp_path / manifest_path("fit")
    manifest = json.loads(draw.read_text())
    assert manifest["verb"] == "draw" and "src/prrmse/figures/draw.py" in manifest["files"]
    before = {path: path.read_bytes() for path in (draw, fit)}
    write_code_manifests(package, ["draw", "fit"], tmp_path)
    assert {path: path.read_bytes() for path in (draw, fit)} == before  # same code, same bytes
    (package / "figures/draw.py").write_text("from prrmse.results import table\ndef draw(): 1\n")
    write_code_manifests(package, ["draw", "fit"], tmp_path)
    assert draw.read_bytes() != before[draw] and fit.read_bytes() == before[fit]


def test_an_unknown_verb_is_an_error_naming_the_cli(tmp_path: Path) -> None:
    source = read_package(_package(tmp_path))
    with pytest.raises(PrrmseError, match="no wrapper registers the verb 'nope'"):
        verb_files(source, "nope")


def test_a_module_that_does_not_parse_is_named(tmp_path: Path) -> None:
    package = _package(tmp_path)
    (package / "figures/draw.py").write_text("def broken(:\n")
    with pytest.raises(PrrmseError, match=r"draw\.py.*does not parse"):
        read_package(package)


def test_each_stage_depends_on_its_verbs_manifest_and_one_stage_on_the_package() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    code = stages.pop(CODE_STAGE)
    assert code["deps"] == [CODE_DEP]
    verbs = set()
    for name, stage in stages.items():
        verb = parse_verb(stage["cmd"])[0]
        assert manifest_path(verb) in stage["deps"] and CODE_DEP not in stage["deps"], name
        verbs.add(verb)
    assert code["outs"] == sorted(map(manifest_path, verbs))


def test_the_package_s_verbs_run_the_phases_they_need_only() -> None:
    source = read_package(ROOT / CODE_DEP)

    def phases(verb: str) -> set[str]:
        return {p.relative_to(ROOT / CODE_DEP).parts[0] for p in verb_files(source, verb)}

    # a figure module's edit reruns what draws figures, not the training or the sweeps
    for verb in ("train", "sweep", "rmse", "reuse", "prepare", "phantoms"):
        assert not phases(verb) & {"figures", "results", "repro"}, verb
    assert "figures" in phases("figure") and "training" not in phases("figure")
    assert "analysis" not in phases("train")
