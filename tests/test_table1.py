"""Table 1: paper order, seed means, the paper's values (none transcribed yet), findings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from prrmse.errors import PrrmseError
from prrmse.provenance import read_csv_provenance
from prrmse.table1 import (
    DICE,
    PAPER_CSV,
    make_table1,
    paper_order,
    read_paper,
    table1,
    table1_findings,
)

NAN = float("nan")
# Made-up Dice means for our runs (not the paper's): scratch 0.70 at 10 patients.
MEANS = {
    (10, None, "scratch"): 0.70,
    (10, "T1-seg", "freeze"): 0.50, (10, "T1-seg", "finetune"): 0.65,
    (10, "T1-auto", "freeze"): 0.72, (10, "T1-auto", "finetune"): 0.80,
    (10, "RVSC-seg", "freeze"): 0.60, (10, "RVSC-seg", "finetune"): 0.75,
    (50, None, "scratch"): 0.85,
    (50, "T1-seg", "freeze"): 0.80, (50, "T1-seg", "finetune"): 0.84,
    (50, "T1-auto", "freeze"): 0.86, (50, "T1-auto", "finetune"): 0.88,
    (50, "RVSC-seg", "freeze"): 0.83, (50, "RVSC-seg", "finetune"): 0.82,
}  # fmt: skip


def write_metrics(path: Path, mean: float, dice: list[float] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dice = dice if dice is not None else [0.99, mean - 0.05, mean, mean + 0.05]
    path.write_text(
        json.dumps({"name": path.parent.name, "best_epoch": 2, "dice": dice, "dice_mean": mean})
    )
    return path


def runs_for(folder: Path, seeds=(0,), shift: float = 0.0) -> list[dict]:
    runs = []
    for seed in seeds:
        for (n, source, mode), mean in MEANS.items():
            name = f"n{n}-{source or 'scratch'}-{mode}-s{seed}"
            metrics = write_metrics(folder / name / "metrics.json", mean + shift * seed)
            runs.append(
                {
                    "n_train": n,
                    "source": source,
                    "mode": mode,
                    "metrics_json": metrics,
                    "seed": seed,
                }
            )
    return runs


def test_rows_follow_the_paper_order_and_average_seeds(tmp_path) -> None:
    runs = runs_for(tmp_path, seeds=(0, 1), shift=0.02)
    table = table1(list(reversed(runs)))
    assert [
        tuple(r) for r in table[["n_train", "source", "mode"]].itertuples(index=False)
    ] == paper_order()
    assert paper_order()[:3] == [
        (10, None, "scratch"),
        (10, "T1-seg", "freeze"),
        (10, "T1-seg", "finetune"),
    ]
    assert list(table.columns[:9]) == [
        "n_train",
        "source",
        "mode",
        "n_seeds",
        "dice_0",
        "dice_1",
        "dice_2",
        "dice_3",
        "dice_mean",
    ]
    first = table.iloc[0]
    assert first["n_seeds"] == 2 and first["dice_mean"] == pytest.approx(0.71)  # (0.70 + 0.72) / 2
    assert first["dice_mean_sd"] == pytest.approx(math.sqrt(2) * 0.01)
    # No paper value is transcribed: every paper cell and difference is missing, not guessed.
    assert (
        table.filter(like="paper_").isna().all().all()
        and table.filter(like="diff_").isna().all().all()
    )


def test_undefined_class_stays_nan_and_partial_runs_keep_order(tmp_path) -> None:
    a = write_metrics(tmp_path / "a" / "metrics.json", 0.6, [0.99, NAN, 0.6, 0.6])
    b = write_metrics(tmp_path / "b" / "metrics.json", 0.5, [0.98, NAN, 0.5, 0.5])
    runs = [
        {"n_train": 50, "source": None, "mode": "scratch", "metrics_json": a},
        {"n_train": 10, "source": "RVSC-seg", "mode": "finetune", "metrics_json": b},
    ]
    table = table1(runs)
    assert list(table["n_train"]) == [10, 50] and math.isnan(table.loc[0, "dice_1"])


def test_filled_paper_values_flow_through(tmp_path) -> None:
    # Made-up "paper" numbers for this test only, in a temporary copy of the resource.
    paper = pd.read_csv(PAPER_CSV, comment="#", dtype={"source": str, **dict.fromkeys(DICE, float)})
    paper.loc[0, ["dice_1", "dice_2", "dice_3", "dice_mean"]] = [0.6, 0.7, 0.8, 0.7]
    paper.loc[4, "dice_mean"] = 0.75  # 10, T1-auto, finetune
    filled = tmp_path / "paper.csv"
    paper.to_csv(filled, index=False)
    table = table1(runs_for(tmp_path), filled)
    scratch = table.iloc[0]
    assert scratch["paper_dice_mean"] == 0.7 and scratch["diff_dice_mean"] == pytest.approx(0.0)
    assert scratch["diff_dice_1"] == pytest.approx(0.65 - 0.6) and math.isnan(
        scratch["paper_dice_0"]
    )
    finding = table1_findings(table)[0]
    assert finding["finding"] == "T1-auto (fine-tuned) beats scratch at 10 patients"
    assert (finding["paper_left"], finding["paper_right"], finding["holds_paper"]) == (
        0.75,
        0.7,
        True,
    )

    paper.loc[1, "dice_1"] = 81.0
    paper.to_csv(filled, index=False)
    with pytest.raises(PrrmseError, match="paper.csv: dice_1: Dice must be a fraction"):
        table1(runs_for(tmp_path), filled)


def test_findings_are_computed_from_our_numbers(tmp_path) -> None:
    table = table1(runs_for(tmp_path))
    findings = {f["finding"]: f for f in table1_findings(table)}
    assert len(findings) == 2 + 6
    assert findings["T1-auto (fine-tuned) beats scratch at 10 patients"]["holds_ours"] is True
    assert (
        findings["T1-seg (fine-tuned) does worse than scratch at 10 patients"]["holds_ours"] is True
    )
    assert findings["freezing loses to fine-tuning: T1-seg, 10 patients"]["holds_ours"] is True
    rvsc = findings["freezing loses to fine-tuning: RVSC-seg, 50 patients"]
    assert (rvsc["ours_left"], rvsc["ours_right"], rvsc["holds_ours"]) == (0.83, 0.82, False)
    assert all(f["holds_paper"] is None for f in findings.values())  # nothing transcribed
    # A statement whose row has no run cannot be judged.
    partial = table[table["source"] != "T1-auto"]
    assert table1_findings(partial)[0]["holds_ours"] is None


def test_written_products_show_na_for_the_paper(tmp_path) -> None:
    runs = runs_for(tmp_path / "runs")
    table, findings = make_table1(runs, tmp_path / "tables" / "table1")
    csv, md, tex = (tmp_path / "tables" / f"table1.{s}" for s in ("csv", "md", "tex"))
    stamp = read_csv_provenance(csv)
    assert "prrmse/resources/paper_table1.csv" in stamp["inputs"] and len(stamp["inputs"]) == len(runs) + 1
    written = pd.read_csv(csv, comment="#", keep_default_na=False, dtype=str)
    assert len(written) == 14 and set(written["paper_dice_mean"]) == {"n/a"}
    assert written.loc[0, "source"] == "" and written.loc[0, "dice_mean"] == "0.700"
    assert "| n | source | mode | seeds | BG | RV | MYO | LV | mean |" in md.read_text()
    assert r"\begin{tabular}" in tex.read_text() and "paper RV" in tex.read_text()
    assert read_csv_provenance(tmp_path / "tables" / "table1-findings.csv") == stamp
    assert len(findings) == 8


def test_bad_runs_and_paper_files_are_refused(tmp_path) -> None:
    good = write_metrics(tmp_path / "m.json", 0.5)
    bad_runs = [
        ({"n_train": 20, "source": None, "mode": "scratch", "metrics_json": good}, "n_train 20"),
        (
            {"n_train": 10, "source": "T1-seg", "mode": "scratch", "metrics_json": good},
            "only scratch",
        ),
        ({"n_train": 10, "source": None, "mode": "freeze", "metrics_json": good}, "only scratch"),
        ({"n_train": 10, "source": "ImageNet", "mode": "freeze", "metrics_json": good}, "ImageNet"),
        ({"n_train": 10, "source": None, "mode": "scratch"}, "lacks metrics_json"),
    ]
    for run, message in bad_runs:
        with pytest.raises(PrrmseError, match=message):
            table1([run])
    twice = {"n_train": 10, "source": None, "mode": "scratch", "metrics_json": good, "seed": 1}
    with pytest.raises(PrrmseError, match="run 2: second run"):
        table1([twice, twice])
    (tmp_path / "auto.json").write_text(json.dumps({"mse": 0.1}))
    with pytest.raises(PrrmseError, match="auto.json: not a segmentation metrics.json"):
        table1([{**twice, "metrics_json": tmp_path / "auto.json"}])
    assert read_paper().shape[0] == 14


def test_selffer_rows_follow_their_patient_count_and_get_patient_intervals(tmp_path):
    runs = runs_for(tmp_path)
    patients = pd.DataFrame(
        [{"patient": f"p{i}", "class": c, "dice": 0.6 + 0.02 * i} for i in range(6) for c in (0, 1, 2, 3)]
    )
    for n in (10, 50):
        metrics = write_metrics(tmp_path / f"selffer-n{n}" / "metrics.json", 0.66)
        csv = metrics.parent / "patients.csv"
        csv.write_text("# provenance: {}\n" + patients.to_csv(index=False))
        runs.append({"n_train": n, "source": "ACDC-seg", "mode": "selffer", "metrics_json": metrics,
                     "seed": 0, "patients_csv": csv})  # fmt: skip
    table = table1(runs, PAPER_CSV)
    keys = list(zip(table["n_train"], table["mode"], strict=True))
    assert keys.index((10, "selffer")) == 7 and keys[-1] == (50, "selffer")
    selffer = table[(table["mode"] == "selffer") & (table["n_train"] == 10)].iloc[0]
    # per-patient foreground means 0.60 .. 0.70: the interval lies inside, over 6 patients
    assert 0.6 <= selffer["dice_mean_low"] < selffer["dice_mean_high"] <= 0.7
    assert selffer["n_patients"] == 6
    scratch = table[(table["mode"] == "scratch") & (table["n_train"] == 10)].iloc[0]
    assert math.isnan(scratch["dice_mean_low"])  # one seed, no patient file: no interval
    with pytest.raises(PrrmseError, match="source 'ACDC-seg'"):
        table1([{**runs[-1], "mode": "freeze"}], PAPER_CSV)
