"""Two runs compared product by product, the commit that made them normalised away."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save_file

from prrmse.cli.main import main
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.repro.compare import compare_runs


def _stamp(commit: str, **fields: object) -> str:
    return json.dumps({"code": {"commit": commit, "dirty": False}, **fields}, sort_keys=True)


def _run(root: Path, commit: str, value: int = 1) -> Path:
    """A run like the workflow's: a stamped CSV, a figure naming its hash, a log."""
    table = root / "results/summary/table.csv"
    table.parent.mkdir(parents=True)
    table.write_text(f"# {_stamp(commit)}\nlayer,dice\n1,0.{value}\n")
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "prrmse", _stamp(commit, inputs={"results/summary/table.csv": sha256_file(table)})
    )
    figure = root / "results/figures/fig03.png"
    figure.parent.mkdir(parents=True)
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(figure, pnginfo=info)
    model = root / "results/models/m/model.safetensors"
    model.parent.mkdir(parents=True)
    # a checkpoint's stamp is a JSON string inside its JSON header: quotes escaped there
    save_file({"w": torch.ones(2)}, str(model), metadata={"prrmse": _stamp(commit)})
    (root / "data/raw").mkdir(parents=True)
    (root / "data/raw/scan.txt").write_text("raw bytes\n")
    (root / "results/code").mkdir()
    (root / "results/code/figure.json").write_text(commit)  # code paths: not a product
    return root


def test_runs_of_two_commits_with_the_same_science_are_identical(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", "a" * 40)
    second = _run(tmp_path / "b", "b" * 40)
    assert sha256_file(first / "results/figures/fig03.png") != sha256_file(
        second / "results/figures/fig03.png"
    )
    result = compare_runs(first, second)
    assert result.identical
    assert result.same == [
        "data/raw/scan.txt",
        "results/figures/fig03.png",
        "results/models/m/model.safetensors",
        "results/summary/table.csv",
    ]


def test_a_changed_value_shows_in_the_product_and_in_what_names_its_hash(tmp_path: Path) -> None:
    result = compare_runs(_run(tmp_path / "a", "a" * 40), _run(tmp_path / "b", "b" * 40, 2))
    assert not result.identical
    assert result.differ == ["results/figures/fig03.png", "results/summary/table.csv"]


def test_a_product_of_one_run_only_is_named(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "a", "a" * 40), _run(tmp_path / "b", "a" * 40)
    (second / "results/summary/extra.csv").write_text("x\n")
    result = compare_runs(first, second)
    assert result.only_second == ["results/summary/extra.csv"] and not result.identical


def test_the_verb_exits_non_zero_when_runs_differ(tmp_path: Path, capsys) -> None:
    first = _run(tmp_path / "a", "a" * 40)
    assert main(["compare-runs", str(first), str(_run(tmp_path / "b", "b" * 40))]) == 0
    assert "4 products identical" in capsys.readouterr().out
    assert main(["compare-runs", str(first), str(_run(tmp_path / "c", "c" * 40, 3))]) != 0
    out = capsys.readouterr()
    assert "differ: results/summary/table.csv" in out.out and "products differ" in out.err


def test_a_run_without_products_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PrrmseError, match="no products"):
        compare_runs(tmp_path, _run(tmp_path / "b", "b" * 40))
