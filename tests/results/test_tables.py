"""Tables: CSV, Markdown and LaTeX with fixed decimals, NaN and absent shown as such;
the baseline and plan builders; bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from prrmse.cli.main import main
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.provenance import read_csv_provenance
from prrmse.models.checkpoint import save_tensors
from prrmse.results import paper
from prrmse.results.table_format import format_cell, write_table
from prrmse.results.tables import agreement, baseline_table, plan_table

STAMP = {"code": {"commit": "abc"}, "inputs": {"x.json": "00"}}


def _metrics(folder: Path, name: str, **values: object) -> Path:
    path = folder / name / "metrics.json"
    path.parent.mkdir(parents=True)
    # json.dumps writes NaN as the NaN token, as write_json_atomic does for metrics
    path.write_text(json.dumps({"name": name, "best_epoch": 1, **values}))
    return path


def _checkpoint(metrics_json: Path, **options: object) -> Path:
    """A model.safetensors beside metrics.json whose record holds `options` (no real tensors:
    the table reads the header only)."""
    path = metrics_json.parent / "model.safetensors"
    record = {
        "kind": "model",
        "name": metrics_json.parent.name,
        "arch": "pspnet",
        "options": options,
    }
    save_tensors(path, {"w": torch.zeros(1)}, record)
    return path


def _entry(family: str, layer: int, kind: str, decision: str, head: bool = False) -> dict:
    return {
        "family": family,
        "layer": layer,
        "module": f"m{layer}",
        "head": head,
        "kind": kind,
        "decision": decision,
        "numel": 4,
        "evidence": {},
    }


def _plan(folder: Path, source: str, non_reusable: dict, bias: bool) -> Path:
    entries = [
        _entry("bn", n, k, "keep" if n in non_reusable.get(k, []) else "reuse")
        for n in (1, 2, 17)
        for k in ("RM", "RV", "RW", "RB")
    ]
    for n in (1, 2):
        entries.append(
            _entry("conv", n, "W", "keep" if n in non_reusable.get("W", []) else "reuse")
        )
        entries.append(
            _entry(
                "conv",
                n,
                "B",
                ("keep" if n in non_reusable.get("B", []) else "reuse") if bias else "absent",
            )
        )
    entries += [
        _entry("conv", 3, "W", "keep", head=True),
        _entry("conv", 3, "B", "absent", head=True),
    ]
    plan = {
        "target": "pspnet-seg-acdc-s0",
        "source": source,
        "arch": "pspnet",
        "rule": "sweep",
        "layer_counts": {"bn": 3, "conv": 3},
        "thresholds": {},
        "entries": entries,
        "share": {"entries": 120 / 131, "scalars": None},
        "non_reusable": {k: non_reusable.get(k, []) for k in ("RM", "RV", "RW", "RB", "W", "B")},
        "provenance": {},
    }
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
        }
    )
    paths = write_table(
        table, tmp_path / "out" / "table1", "Dice & more", STAMP, decimals={"share (%)": 1}
    )
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
    assert list(table.columns) == [
        "model",
        "BG",
        "RV",
        "MYO",
        "LV",
        "mean (4 classes)",
        "mean (RV, MYO, LV)",
        "paper row",
        "paper BG",
        "paper RV",
        "paper MYO",
        "paper LV",
        "paper mean (4 classes)",
        "MSE",
    ]
    assert table["model"].tolist() == ["unet-seg-acdc-s0", "unet-seg-t1-s0", "unet-auto-t1-s0"]
    assert table.loc[0, "mean (RV, MYO, LV)"] == 0.8533
    assert table.loc[0, "mean (4 classes)"] == pytest.approx((0.99 + 0.81 + 0.83 + 0.92) / 4)
    assert math.isnan(table.loc[1, "RV"]) and table.loc[1, "mean (RV, MYO, LV)"] == pytest.approx(
        0.7
    )
    assert table.loc[1, "mean (4 classes)"] == pytest.approx(0.84)  # NaN skipped: (0.98 + 0.7) / 2
    assert math.isnan(table.loc[2, "BG"]) and math.isnan(table.loc[0, "MSE"])
    md = write_table(table, tmp_path / "baseline", "Baseline", STAMP)[1].read_text()
    assert (
        "| unet-seg-t1-s0 | 0.980 | – | 0.700 | – | 0.840 | 0.700 | – | – | – | – | – | – | – |"
        in md
    )
    assert "| unet-auto-t1-s0 | – | – | – | – | – | – | – | – | – | – | – | – | 0.00123 |" in md
    only_seg = baseline_table(paths[:1])
    assert list(only_seg.columns)[:7] == [
        "model",
        "BG",
        "RV",
        "MYO",
        "LV",
        "mean (4 classes)",
        "mean (RV, MYO, LV)",
    ]
    assert "MSE" not in only_seg
    only_auto = baseline_table(paths[2:])
    assert list(only_auto.columns) == ["model", "MSE"] and only_auto.attrs["resources"] == {}


def test_baseline_table_puts_the_papers_row_beside_acdc_segmentation(tmp_path: Path) -> None:
    unet = _metrics(tmp_path, "unet-seg-acdc-s1", dice=[0.99, 0.7, 0.75, 0.85], dice_mean=0.7667)
    plain = _metrics(tmp_path, "pspnet-seg-acdc-s1", dice=[0.99, 0.8, 0.8, 0.9], dice_mean=0.8333)
    biased = _metrics(tmp_path, "pspnet-seg-acdc-s2", dice=[0.99, 0.8, 0.8, 0.9], dice_mean=0.8333)
    others = [
        _metrics(tmp_path, "pspnet-seg-t1-s1", dice=[0.99, None, 0.8, None]),  # not ACDC
        _metrics(tmp_path, "pspnet-seg-acdc-n10-s1", dice=[0.99, 0.6, 0.6, 0.7]),  # subset
        _metrics(tmp_path, "pspnet-auto-acdc-s1", mse=0.001),
        _metrics(tmp_path, "my-model", dice=[0.9, 0.8, 0.7, 0.6]),  # outside the naming
    ]
    no_bias, with_bias = _checkpoint(plain, conv_bias=False), _checkpoint(biased, conv_bias=True)
    table = baseline_table([unet, plain, biased, *others]).set_index("model")
    assert table.loc["unet-seg-acdc-s1", "paper row"] == "UNet"
    assert table.loc[
        "unet-seg-acdc-s1", ["paper BG", "paper RV", "paper MYO", "paper LV"]
    ].tolist() == [
        1.00,
        0.81,
        0.83,
        0.92,
    ]
    assert table.loc["unet-seg-acdc-s1", "paper mean (4 classes)"] == pytest.approx(0.89)
    assert table.loc["pspnet-seg-acdc-s1", "paper row"] == (
        "PSPNet-ResNet18, convs without bias (by conv_bias false in model.safetensors)"
    )
    assert table.loc["pspnet-seg-acdc-s1", "paper LV"] == 0.92
    assert table.loc["pspnet-seg-acdc-s2", "paper row"].startswith(
        "PSPNet-ResNet18, convs with bias"
    )
    assert table.loc["pspnet-seg-acdc-s2", "paper LV"] == 0.93
    assert table.loc["pspnet-seg-acdc-s2", "paper mean (4 classes)"] == pytest.approx(0.9125)
    for name in ("pspnet-seg-t1-s1", "pspnet-seg-acdc-n10-s1", "pspnet-auto-acdc-s1", "my-model"):
        assert table.loc[name, "paper row"] is None
        assert table.loc[name, ["paper BG", "paper mean (4 classes)"]].isna().all()
    # what the table read besides its inputs: the checkpoints, and the paper's file by name
    assert table.attrs["inputs"] == {
        str(no_bias): sha256_file(no_bias),
        str(with_bias): sha256_file(with_bias),
    }
    assert table.attrs["resources"] == {
        "prrmse/resources/paper_baseline.csv": sha256_file(paper.BASELINE_CSV)
    }
    md = write_table(table.reset_index(), tmp_path / "baseline", "Baseline", STAMP)[1].read_text()
    assert (
        "| pspnet-seg-t1-s1 | 0.990 | – | 0.800 | – | 0.895 | 0.800 | – | – | – | – | – | – | – |"
        in md
    )
    assert "| 1.000 | 0.860 | 0.860 | 0.920 | 0.910 | – |" in md  # the paper's PSPNet, no bias

    with_bias.unlink()
    with pytest.raises(
        PrrmseError, match=r"pspnet-seg-acdc-s2/model\.safetensors: checkpoint not found"
    ):
        baseline_table([biased])
    _checkpoint(biased, width=4)
    with pytest.raises(PrrmseError, match="records no conv_bias option"):
        baseline_table([biased])
    (biased.parent / "model.safetensors").write_text("not a checkpoint")
    with pytest.raises(PrrmseError, match="not a readable safetensors checkpoint"):
        baseline_table([biased])


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


PAPER_ROW = [
    "paper",
    "pspnet-auto-t1",
    "pspnet-seg-acdc",
    "1, 17",
    "none",
    "none",
    "none",
    "1, 6, 11, 12, 16, 17, 19, 20",
    "1",
]


def test_plan_table_lists_layers_absent_and_shares(tmp_path: Path) -> None:
    ours = _plan(tmp_path, "pspnet-auto-t1-s0", {"RM": [1, 17], "W": [1], "B": [1]}, bias=True)
    no_bias = _plan(tmp_path, "pspnet-seg-rvsc-s0", {}, bias=False)
    table = plan_table([ours, no_bias])
    assert list(table.columns) == [
        "plan",
        "source",
        "target",
        "RM",
        "RV",
        "RW",
        "RB",
        "W",
        "B",
        "reused entries (%)",
        "reused scalars (%)",
    ]
    assert table["plan"].tolist() == ["paper", "ours", "ours vs paper", "ours"]
    assert table.iloc[0, :9].tolist() == PAPER_ROW
    assert table.loc[0, "reused entries (%)"] == 92 and math.isnan(
        table.loc[0, "reused scalars (%)"]
    )
    assert table.loc[1, ["RM", "RV", "W", "B"]].tolist() == ["1, 17", "none", "1", "1"]
    assert table.loc[3, "B"] == "absent" and table.loc[3, "W"] == "none"
    assert table.loc[1, "reused entries (%)"] == pytest.approx(91.603, abs=1e-3)
    assert math.isnan(table.loc[1, "reused scalars (%)"])
    # the RVSC plan has other tasks than the paper's: no agreement row
    assert table.loc[2, "source"] == "pspnet-auto-t1-s0"
    assert table.loc[2, ["RM", "RV", "W", "B"]].tolist() == [
        "agree: 1, 17",
        "agree: none",
        "agree: 1; paper only: 6, 11, 12, 16, 17, 19, 20",
        "agree: 1",
    ]
    assert table.attrs["resources"] == {
        "prrmse/resources/paper_plan.json": sha256_file(paper.PLAN_JSON)
    }
    md = write_table(table, tmp_path / "plans", "Plans", STAMP)[1].read_text()
    assert (
        "| ours | pspnet-auto-t1-s0 | pspnet-seg-acdc-s0 | 1, 17 | none | none | none | 1 | 1 | 91.6 | – |"
        in md
    )
    assert (
        "| paper | pspnet-auto-t1 | pspnet-seg-acdc | 1, 17 | none | none | none | 1, 6, 11, 12, 16, 17, 19, 20 | 1 | 92.0 | – |"
        in md
    )
    assert "| absent | 91.6 | – |" in md
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"target": "x"}))
    with pytest.raises(PrrmseError, match=r"broken\.json: not a reuse plan: missing keys"):
        plan_table([broken])


def test_plan_agreement_says_agree_ours_only_paper_only_and_absent(tmp_path: Path) -> None:
    # layers 1, 2, 17 exist in the hand-made plans; the paper's lists run to 20
    differs = _plan(
        tmp_path, "pspnet-auto-t1-s3", {"RM": [2, 17], "RV": [1], "W": [1, 2]}, bias=False
    )
    table = plan_table([differs]).set_index("plan")
    row = table.loc["ours vs paper"]
    assert (row["source"], row["target"]) == ("pspnet-auto-t1-s3", "pspnet-seg-acdc-s0")
    assert row["RM"] == "agree: 17; ours only: 2; paper only: 1"
    assert row["RV"] == "agree: none; ours only: 1"
    assert row["RW"] == "agree: none"
    assert row["W"] == "agree: 1; ours only: 2; paper only: 6, 11, 12, 16, 17, 19, 20"
    # our demo PSPNet has no conv bias: B is absent in ours, not a difference
    assert row["B"] == "absent in ours (paper: 1)"
    assert "differ" not in " ".join(str(v) for v in row.tolist())
    assert math.isnan(row["reused entries (%)"])
    plan = json.loads(differs.read_text())
    assert agreement(plan, "RM", []) == "agree: none; ours only: 2, 17"
    assert agreement(plan, "W", [1, 2]) == "agree: 1, 2"
    plan["entries"] = [e for e in plan["entries"] if e["kind"] != "RB"]
    assert agreement(plan, "RB", [1]) is None  # our plan has no such kind: a dash

    other_paper = tmp_path / "paper.json"
    other_paper.write_text(
        json.dumps(
            {"source": "x", "target": "y", "non_reusable": {"W": "1"}, "share_reused_percent": 92}
        )
    )
    with pytest.raises(PrrmseError, match=r"paper\.json: non_reusable W must list layer numbers"):
        plan_table([differs], paper_json=other_paper)


def test_table_cli_stamps_the_papers_files_by_package_name(tmp_path: Path) -> None:
    ours = _plan(tmp_path, "pspnet-auto-t1-s0", {"RM": [1, 17]}, bias=True)
    assert (
        main(["table", "--kind", "plans", "--inputs", str(ours), "--out", str(tmp_path / "p")]) == 0
    )
    stamp = read_csv_provenance(tmp_path / "p.csv")
    assert stamp["resources"] == {"prrmse/resources/paper_plan.json": sha256_file(paper.PLAN_JSON)}
    assert set(stamp["inputs"]) == {str(ours)}
    assert str(paper.PLAN_JSON) not in (tmp_path / "p.csv").read_text()
    assert "| paper | pspnet-auto-t1 |" in (tmp_path / "p.md").read_text()
