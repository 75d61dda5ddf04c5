"""Tables: CSV, Markdown and LaTeX with fixed decimals, NaN and absent shown as such;
the baseline and plan builders; bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from prrmse.errors import PrrmseError
from prrmse.provenance import read_csv_provenance
from prrmse.tables import baseline_table, format_cell, plan_table, write_table

STAMP = {"code": {"commit": "abc"}, "inputs": {"x.json": "00"}}


def _metrics(folder: Path, name: str, **values: object) -> Path:
    path = folder / name / "metrics.json"
    path.parent.mkdir(parents=True)
    # json.dumps writes NaN as the NaN token, as write_json_atomic does for metrics
    path.write_text(json.dumps({"name": name, "best_epoch": 1, **values}))
    return path


def _entry(family: str, layer: int, kind: str, decision: str, head: bool = False) -> dict:
    return {"family": family, "layer": layer, "module": f"m{layer}", "head": head, "kind": kind,
            "decision": decision, "numel": 4, "evidence": {}}  # fmt: skip


def _plan(folder: Path, source: str, non_reusable: dict, bias: bool) -> Path:
    entries = [_entry("bn", n, k, "keep" if n in non_reusable.get(k, []) else "reuse")
               for n in (1, 2, 17) for k in ("RM", "RV", "RW", "RB")]  # fmt: skip
    for n in (1, 2):
        entries.append(
            _entry("conv", n, "W", "keep" if n in non_reusable.get("W", []) else "reuse")
        )
        entries.append(_entry("conv", n, "B", ("keep" if n in non_reusable.get("B", []) else "reuse") if bias else "absent"))  # fmt: skip
    entries += [
        _entry("conv", 3, "W", "keep", head=True),
        _entry("conv", 3, "B", "absent", head=True),
    ]
    plan = {
        "target": "pspnet-seg-acdc-s0", "source": source, "arch": "pspnet", "rule": "sweep",
        "layer_counts": {"bn": 3, "conv": 3}, "thresholds": {}, "entries": entries,
        "share": {"entries": 120 / 131, "scalars": None},
        "non_reusable": {k: non_reusable.get(k, []) for k in ("RM", "RV", "RW", "RB", "W", "B")},
        "provenance": {},
    }  # fmt: skip
    path = folder / f"{source}.json"
    path.write_text(json.dumps(plan))
    return path


def test_format_cell() -> None:
    assert format_cell(0.81234, 3) == "0.812" and format_cell(2.0, 1) == "2.0"
    assert format_cell(7, 3) == "7" and format_cell("absent", 3) == "absent"
    assert format_cell(float("nan"), 3) is None and format_cell(None, 3) is None
    assert format_cell(pd.NA, 3) is None


def test_write_table_three_formats_show_nan_and_absent(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "model": ["a_1", "b|2"],
            "RV": [0.81234, float("nan")],
            "B": ["1, 17", "absent"],
            "n": [10, 50],
            "share (%)": [91.6031, 100.0],
        }  # fmt: skip
    )
    paths = write_table(table, tmp_path / "out" / "table1", "Dice & more", STAMP,
                        decimals={"share (%)": 1})  # fmt: skip
    assert [p.name for p in paths] == ["table1.csv", "table1.md", "table1.tex"]
    assert read_csv_provenance(paths[0]) == STAMP
    back = pd.read_csv(paths[0], comment="#")
    assert math.isnan(back.loc[1, "RV"]) and back.loc[0, "RV"] == 0.81234  # full precision

    md = paths[1].read_text()
    assert md.startswith("<!-- provenance: ") and "**Dice & more**" in md
    assert "| model | RV | B | n | share (%) |" in md
    assert "| :--- | ---: | :--- | ---: | ---: |" in md
    assert "| a_1 | 0.812 | 1, 17 | 10 | 91.6 |" in md
    assert r"| b\|2 | – | absent | 50 | 100.0 |" in md

    tex = paths[2].read_text()
    assert tex.startswith("% provenance: ") and r"\caption{Dice \& more}" in tex
    assert r"\begin{tabular}{lrlrr}" in tex and r"\label{tab:table1}" in tex
    assert r"model & RV & B & n & share (\%) \\" in tex
    assert r"a\_1 & 0.812 & 1, 17 & 10 & 91.6 \\" in tex
    assert r"b|2 & -- & absent & 50 & 100.0 \\" in tex
    assert not list((tmp_path / "out").glob(".*tmp*"))
    # the same table gives the same bytes
    again = write_table(
        table, tmp_path / "again" / "table1", "Dice & more", STAMP, {"share (%)": 1}
    )
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def test_baseline_table_dice_nan_and_mse(tmp_path: Path) -> None:
    paths = [
        _metrics(tmp_path, "unet-seg-acdc-s0", dice=[0.99, 0.81, 0.83, 0.92], dice_mean=0.8533),
        _metrics(tmp_path, "unet-seg-t1-s0", dice=[0.98, float("nan"), 0.7, None]),
        _metrics(tmp_path, "unet-auto-t1-s0", mse=0.00123456),
    ]
    table = baseline_table(paths)
    assert list(table.columns) == ["model", "BG", "RV", "MYO", "LV", "mean", "MSE"]
    assert table["model"].tolist() == ["unet-seg-acdc-s0", "unet-seg-t1-s0", "unet-auto-t1-s0"]
    assert table.loc[0, "mean"] == 0.8533
    assert math.isnan(table.loc[1, "RV"]) and table.loc[1, "mean"] == pytest.approx(0.7)
    assert math.isnan(table.loc[2, "BG"]) and math.isnan(table.loc[0, "MSE"])
    md = write_table(table, tmp_path / "baseline", "Baseline", STAMP)[1].read_text()
    assert "| unet-seg-t1-s0 | 0.980 | – | 0.700 | – | 0.700 | – |" in md
    assert "| unet-auto-t1-s0 | – | – | – | – | – | 0.00123 |" in md
    only_seg = baseline_table(paths[:1])
    assert list(only_seg.columns) == ["model", "BG", "RV", "MYO", "LV", "mean"]


def test_baseline_table_bad_input_names_the_file(tmp_path: Path) -> None:
    short = _metrics(tmp_path, "short", dice=[0.9, 0.8])
    with pytest.raises(PrrmseError, match=r"short/metrics\.json: dice must list 4 values"):
        baseline_table([short])
    empty = _metrics(tmp_path, "empty")
    with pytest.raises(PrrmseError, match=r"empty/metrics\.json: has neither dice"):
        baseline_table([empty])
    text = _metrics(tmp_path, "text", dice=[0.9, "x", 0.8, 0.7])
    with pytest.raises(PrrmseError, match=r"dice\[1\] is 'x', not a number"):
        baseline_table([text])
    with pytest.raises(PrrmseError, match="file not found"):
        baseline_table([tmp_path / "missing" / "metrics.json"])


def test_plan_table_lists_layers_absent_and_shares(tmp_path: Path) -> None:
    paper = _plan(tmp_path, "pspnet-auto-t1-s0", {"RM": [1, 17], "W": [1], "B": [1]}, bias=True)
    no_bias = _plan(tmp_path, "pspnet-seg-rvsc-s0", {}, bias=False)
    table = plan_table([paper, no_bias])
    assert list(table.columns) == [
        "source", "target", "RM", "RV", "RW", "RB", "W", "B",
        "reused entries (%)", "reused scalars (%)",
    ]  # fmt: skip
    assert table.loc[0, ["RM", "RV", "W", "B"]].tolist() == ["1, 17", "none", "1", "1"]
    assert table.loc[1, "B"] == "absent" and table.loc[1, "W"] == "none"
    assert table.loc[0, "reused entries (%)"] == pytest.approx(91.603, abs=1e-3)
    assert math.isnan(table.loc[0, "reused scalars (%)"])
    md = write_table(table, tmp_path / "plans", "Plans", STAMP)[1].read_text()
    assert (
        "| pspnet-auto-t1-s0 | pspnet-seg-acdc-s0 | 1, 17 | none | none | none | 1 | 1 | 91.6 | – |"
        in md
    )
    assert "| absent | 91.6 | – |" in md
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"target": "x"}))
    with pytest.raises(PrrmseError, match=r"broken\.json: not a reuse plan: missing keys"):
        plan_table([broken])
