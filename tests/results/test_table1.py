"""Table 1: paper order, seed means, the paper's values on the same 4-class mean, findings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import read_csv_provenance
from prrmse.results.table1 import PAPER_CSV, paper_order, read_paper, table1
from prrmse.results.table1_files import make_table1
from prrmse.results.table1_findings import table1_findings

NAN = float("nan")


def mean4(mean: float) -> float:
    """The 4-class mean of write_metrics' default classes (0.99, mean -+ 0.05, mean)."""
    return (0.99 + 3 * mean) / 4


# Made-up Dice means for our runs (not the paper's): scratch 0.70 at 10 patients.
MEANS = {
    (10, None, "scratch"): 0.70,
    (10, "T1-seg", "freeze"): 0.50,
    (10, "T1-seg", "finetune"): 0.65,
    (10, "T1-auto", "freeze"): 0.72,
    (10, "T1-auto", "finetune"): 0.80,
    (10, "RVSC-seg", "freeze"): 0.60,
    (10, "RVSC-seg", "finetune"): 0.75,
    (50, None, "scratch"): 0.85,
    (50, "T1-seg", "freeze"): 0.80,
    (50, "T1-seg", "finetune"): 0.84,
    (50, "T1-auto", "freeze"): 0.86,
    (50, "T1-auto", "finetune"): 0.88,
    (50, "RVSC-seg", "freeze"): 0.83,
    (50, "RVSC-seg", "finetune"): 0.82,
}


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
        "dice_mean4",
    ]
    first = table.iloc[0]
    assert first["n_seeds"] == 2 and first["dice_fg"] == pytest.approx(0.71)  # (0.70 + 0.72) / 2
    assert first["dice_mean4"] == pytest.approx(mean4(0.71))
    assert first["dice_mean4_sd"] == pytest.approx(math.sqrt(2) * 0.0075)
    # the paper's row 1, n10: classes 0.99 0.62 0.60 0.70, printed mean 0.73
    assert first["paper_dice_mean4"] == 0.73 and first["paper_dice_1"] == 0.62
    assert first["paper_dice_fg"] == pytest.approx((0.62 + 0.60 + 0.70) / 3)
    assert first["diff_dice_mean4"] == pytest.approx(mean4(0.71) - 0.73)


def test_undefined_class_stays_nan_and_partial_runs_keep_order(tmp_path) -> None:
    a = write_metrics(tmp_path / "a" / "metrics.json", 0.6, [0.99, NAN, 0.6, 0.6])
    b = write_metrics(tmp_path / "b" / "metrics.json", 0.5, [0.98, NAN, 0.5, 0.5])
    runs = [
        {"n_train": 50, "source": None, "mode": "scratch", "metrics_json": a},
        {"n_train": 10, "source": "RVSC-seg", "mode": "finetune", "metrics_json": b},
    ]
    table = table1(runs)
    assert list(table["n_train"]) == [10, 50] and math.isnan(table.loc[0, "dice_1"])


def test_the_papers_table_is_transcribed_with_its_misprint_flagged() -> None:
    paper = read_paper()
    assert (
        paper.shape[0] == 14
        and not paper[["dice_0", "dice_1", "dice_2", "dice_3"]].isna().any().any()
    )
    keys = [tuple(r) for r in paper[["n_train", "source", "mode"]].itertuples(index=False)]
    assert keys == paper_order()
    # every printed mean is the 4-class mean to rounding, but the flagged misprint
    classes = paper[["dice_0", "dice_1", "dice_2", "dice_3"]].mean(axis=1)
    misprint = paper["note"].str.startswith("misprint")
    assert misprint.sum() == 1 and tuple(
        paper.loc[misprint, ["n_train", "source", "mode"]].iloc[0]
    ) == (50, "RVSC-seg", "freeze")
    assert ((classes - paper["dice_mean"]).abs()[~misprint] <= 0.0051).all()
    assert paper.loc[misprint, "dice_mean"].iloc[0] == 0.72
    assert paper.loc[misprint, "dice_mean4"].iloc[0] == pytest.approx(0.8125)


def test_misprinted_mean_is_shown_with_its_note(tmp_path) -> None:
    table = table1(runs_for(tmp_path))
    row = table[
        (table["n_train"] == 50) & (table["source"] == "RVSC-seg") & (table["mode"] == "freeze")
    ].iloc[0]
    assert row["paper_dice_mean4"] == pytest.approx(0.8125) and row["paper_note"].startswith(
        "misprint"
    )


def test_a_bad_paper_file_is_refused(tmp_path) -> None:
    paper = pd.read_csv(PAPER_CSV, comment="#", dtype={"source": str})
    paper.loc[1, "dice_1"] = 81.0
    bad = tmp_path / "paper.csv"
    paper.to_csv(bad, index=False)
    with pytest.raises(PrrmseError, match="paper.csv: dice_1: Dice must be a fraction"):
        table1(runs_for(tmp_path), bad)


def test_findings_label_the_papers_and_ours_and_wait_for_seeds(tmp_path) -> None:
    one = table1(runs_for(tmp_path / "one"))
    findings = {f["finding"]: f for f in table1_findings(one)}
    assert len(findings) == 8 + 4 + 6
    not_better = findings[
        "reuse does not necessarily help: T1-seg freeze is no better than scratch at 10 patients"
    ]
    assert not_better["scope"].startswith("paper") and not_better["holds_paper"] == "yes"
    assert (not_better["paper_left"], not_better["paper_right"]) == (0.73, 0.67)
    assert not_better["point_estimate_holds"] == "yes"  # ours: scratch 0.70 vs 0.50
    assert not_better["ours"] == "inconclusive (1 seed)"
    auto = findings["T1-auto finetune beats scratch at 10 patients"]
    assert auto["holds_paper"] == "yes" and auto["point_estimate_holds"] == "yes"
    ours = findings["fine-tuned beats frozen: T1-seg, 50 patients"]
    assert ours["scope"] == "not in the paper" and ours["holds_paper"] == "no"  # 0.81 vs 0.82
    rvsc = findings["fine-tuned beats frozen: RVSC-seg, 50 patients"]
    assert rvsc["ours_left"] == pytest.approx(mean4(0.82)) and rvsc["point_estimate_holds"] == "no"

    three = table1(runs_for(tmp_path / "three", seeds=(1, 2, 3), shift=0.001))
    findings = {f["finding"]: f for f in table1_findings(three)}
    assert findings["T1-auto finetune beats scratch at 10 patients"]["ours"] == "holds"
    assert findings["fine-tuned beats frozen: RVSC-seg, 50 patients"]["ours"] == "does not hold"
    # a statement whose row has no run cannot be judged
    partial = three[three["source"] != "T1-auto"]
    found = {f["finding"]: f for f in table1_findings(partial)}
    assert found["T1-auto freeze beats scratch at 10 patients"]["ours"].startswith("inconclusive")


def test_written_products_show_ours_beside_the_paper(tmp_path) -> None:
    runs = runs_for(tmp_path / "runs")
    table, findings = make_table1(runs, tmp_path / "tables" / "table1")
    csv, md, tex = (tmp_path / "tables" / f"table1.{s}" for s in ("csv", "md", "tex"))
    stamp = read_csv_provenance(csv)
    assert (
        "prrmse/resources/paper_table1.csv" in stamp["inputs"]
        and len(stamp["inputs"]) == len(runs) + 1
    )
    assert stamp["min_seeds"] == 3
    written = pd.read_csv(csv, comment="#", keep_default_na=False, dtype=str)
    assert len(written) == 14 and written.loc[0, "paper_dice_mean4"] == "0.730"
    assert written.loc[0, "source"] == "" and written.loc[0, "dice_fg"] == "0.700"
    text = md.read_text()
    assert "| n | source | mode | seeds | BG | RV | MYO | LV | mean (4 classes) |" in text
    assert "paper mean (4 classes)" in text and "mean (RV, MYO, LV)" in text and "misprint" in text
    assert "not transcribed" not in text and "n/a" not in written.loc[0].tolist()
    assert r"\begin{tabular}" in tex.read_text() and "paper RV" in tex.read_text()
    assert read_csv_provenance(tmp_path / "tables" / "table1-findings.csv") == stamp
    assert len(findings) == 18


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
        [
            {"patient": f"p{i}", "class": c, "dice": 0.6 + 0.02 * i}
            for i in range(6)
            for c in (0, 1, 2, 3)
        ]
    )
    for n in (10, 50):
        metrics = write_metrics(tmp_path / f"selffer-n{n}" / "metrics.json", 0.66)
        csv = metrics.parent / "patients.csv"
        csv.write_text("# provenance: {}\n" + patients.to_csv(index=False))
        runs.append(
            {
                "n_train": n,
                "source": "ACDC-seg",
                "mode": "selffer",
                "metrics_json": metrics,
                "seed": 0,
                "patients_csv": csv,
            }
        )
    table = table1(runs, PAPER_CSV)
    keys = list(zip(table["n_train"], table["mode"], strict=True))
    assert keys.index((10, "selffer")) == 7 and keys[-1] == (50, "selffer")
    selffer = table[(table["mode"] == "selffer") & (table["n_train"] == 10)].iloc[0]
    # per-patient 4-class means 0.60 .. 0.70: the interval lies inside, over 6 patients
    assert 0.6 <= selffer["dice_mean4_low"] < selffer["dice_mean4_high"] <= 0.7
    assert selffer["n_patients"] == 6 and selffer["paper_note"] == "not in the paper"
    scratch = table[(table["mode"] == "scratch") & (table["n_train"] == 10)].iloc[0]
    assert math.isnan(scratch["dice_mean4_low"])  # one seed, no patient file: no interval
    with pytest.raises(PrrmseError, match="source 'ACDC-seg'"):
        table1([{**runs[-1], "mode": "freeze"}], PAPER_CSV)


def test_runs_are_read_from_their_folders_names(tmp_path):
    from prrmse.results.table1_files import reuse_runs_from_metrics

    scratch = tmp_path / "pspnet-seg-acdc-n10-s2" / "metrics.json"
    frozen = tmp_path / "pspnet-seg-acdc-n50-s1-freeze-from-pspnet-auto-t1" / "metrics.json"
    for path in (scratch, frozen):
        path.parent.mkdir()
        path.write_text("{}")
    (frozen.parent / "patients.csv").write_text("patient\n")
    first, second = reuse_runs_from_metrics([scratch, frozen])
    assert (first["n_train"], first["source"], first["mode"], first["seed"]) == (
        10,
        None,
        "scratch",
        2,
    )
    assert first["patients_csv"] is None
    assert (second["n_train"], second["source"], second["mode"]) == (50, "T1-auto", "freeze")
    assert second["patients_csv"] == frozen.parent / "patients.csv"
