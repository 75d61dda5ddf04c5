"""Summaries over seeds (mean + bootstrap interval) and the seed-to-seed RMSE floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.results.floor import floor_for, noise_floor, run_noise_floor
from prrmse.results.summary import (
    BootstrapSettings,
    run_summary,
    seedless,
    summarise_seed_tables,
    summarise_sweeps,
)

FAST = BootstrapSettings(n_boot=400)


def _write(path: Path, table: pd.DataFrame, **stamp) -> Path:
    path.write_text(provenance.csv_header(stamp or {"what": "test"}) + table.to_csv(index=False))
    return path


def _sweep(seed_shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A two-layer BN sweep (RM of layer 2 absent) and its per-patient Dice for 3 patients."""
    patients = ["p1", "p2", "p3"]
    base = np.array([0.9, 0.8, 0.7]) + seed_shift
    rows, per_patient = [], []
    for family, layer, kind, drop in [
        ("baseline", 0, "", 0.0),
        ("bn", 1, "RM", 0.3),
        ("bn", 1, "RV", 0.0),
    ]:
        dice = base - drop
        per_patient += [
            {
                "condition": "source",
                "family": family,
                "layer": layer,
                "kind": kind,
                "patient": p,
                "class": 1,
                "dice": d,
            }
            for p, d in zip(patients, dice, strict=True)
        ]
        rows.append(
            {
                "family": family,
                "layer": layer,
                "module": "m",
                "head": False,
                "kind": kind,
                "status": "baseline" if family == "baseline" else "replaced",
                "class": 1,
                "dice": dice.mean(),
                "baseline_dice": base.mean(),
                "difference": -drop,
            }
        )
    rows.append(
        {
            "family": "bn",
            "layer": 2,
            "module": "m2",
            "head": False,
            "kind": "RM",
            "status": "absent",
            "class": 1,
            "dice": np.nan,
            "baseline_dice": base.mean(),
            "difference": np.nan,
        }
    )
    return pd.DataFrame(rows), pd.DataFrame(per_patient)


def test_seedless_names():
    assert seedless("pspnet-seg-acdc-s12") == "pspnet-seg-acdc"
    assert (
        seedless("pspnet-seg-acdc-n10-s1-freeze-from-pspnet-auto-t1")
        == "pspnet-seg-acdc-n10-freeze-from-pspnet-auto-t1"
    )
    assert seedless("n10 finetune T1-auto s3") == "n10 finetune T1-auto"


def test_sweep_summary_means_and_patient_intervals(tmp_path):
    sweeps, patients = [], []
    for seed, shift in [(1, 0.0), (2, 0.02)]:
        table, per_patient = _sweep(shift)
        sweeps.append(_write(tmp_path / f"s{seed}.csv", table))
        patients.append(_write(tmp_path / f"s{seed}.patients.csv", per_patient))
    summary = summarise_sweeps(sweeps, patients, FAST)
    rm = summary[(summary["layer"] == 1) & (summary["kind"] == "RM")].iloc[0]
    assert rm["difference"] == pytest.approx(-0.3)
    # every patient drops by exactly 0.3: the paired interval has no width
    assert rm["difference_low"] == pytest.approx(-0.3) and rm["difference_high"] == pytest.approx(
        -0.3
    )
    assert rm["dice_low"] < rm["dice"] < rm["dice_high"]
    absent = summary[(summary["layer"] == 2)].iloc[0]
    assert absent["status"] == "absent" and np.isnan(absent["dice_low"])
    assert set(summary["n_seeds"]) == {2} and set(summary["n_patients"]) == {3}


def test_sweep_summary_without_patients_is_over_seeds(tmp_path):
    paths = [_write(tmp_path / f"s{i}.csv", _sweep(shift)[0]) for i, shift in enumerate([0.0, 0.1])]
    summary = summarise_sweeps(paths, None, FAST)
    rv = summary[(summary["layer"] == 1) & (summary["kind"] == "RV")].iloc[0]
    assert rv["dice"] == pytest.approx(0.85) and rv["dice_low"] <= rv["dice"] <= rv["dice_high"]
    assert set(summary["n_patients"]) == {0}


def test_sweep_summary_refuses_mismatched_seeds(tmp_path):
    table, _ = _sweep(0.0)
    a = _write(tmp_path / "a.csv", table)
    b = _write(tmp_path / "b.csv", table[table["kind"] != "RV"])
    with pytest.raises(PrrmseError, match="b.csv"):
        summarise_sweeps([a, b], None, FAST)


def _rmse(a: str, b: str, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_a": a,
            "model_b": b,
            "family": "conv",
            "layer": [1, 2, 3],
            "module": "c",
            "head": [False, False, True],
            "kind": "W",
            "status": "compared",
            "numel": 9,
            "rmse": values,
        }
    )


def test_rmse_summary_over_seeds(tmp_path):
    paths = [
        _write(
            tmp_path / "s1.csv", _rmse("unet-seg-acdc-s1", "unet-auto-acdc-s1", [0.1, 0.2, 0.3])
        ),
        _write(
            tmp_path / "s2.csv", _rmse("unet-seg-acdc-s2", "unet-auto-acdc-s2", [0.3, 0.2, 0.5])
        ),
    ]
    summary = summarise_seed_tables(paths, "rmse", FAST)
    assert list(summary["model_a"].unique()) == ["unet-seg-acdc"]
    assert summary["rmse"].tolist() == pytest.approx([0.2, 0.2, 0.4])
    assert (summary["rmse_low"] <= summary["rmse"]).all() and (
        summary["rmse"] <= summary["rmse_high"]
    ).all()
    assert summary.loc[1, "rmse_low"] == pytest.approx(0.2) == summary.loc[1, "rmse_high"]
    out = tmp_path / "summary.csv"
    run_summary("rmse", paths, out, settings=FAST)
    assert provenance.read_csv_provenance(out)["summary"] == "rmse"
    assert out.read_bytes() == (run_summary("rmse", paths, out, settings=FAST), out.read_bytes())[1]


def test_noise_floor_band_and_refusals(tmp_path):
    pairs = [
        _write(
            tmp_path / "a.csv", _rmse("pspnet-seg-acdc-s1", "pspnet-seg-acdc-s2", [0.1, 0.2, 0.3])
        ),
        _write(
            tmp_path / "b.csv", _rmse("pspnet-auto-t1-s1", "pspnet-auto-t1-s2", [0.3, 0.4, 0.1])
        ),
    ]
    floor = noise_floor(pairs)
    layer1 = floor[floor["layer"] == 1].iloc[0]
    assert (layer1["floor"], layer1["floor_low"], layer1["floor_high"]) == pytest.approx(
        (0.2, 0.1, 0.3)
    )
    assert layer1["n_pairs"] == 2 and layer1["network"] == "pspnet"
    band = floor_for(floor, "pspnet", "conv", "W", 2)
    assert band["floor_high"].tolist() == pytest.approx([0.3, 0.4])  # head (layer 3) left out
    assert floor_for(floor, "unet", "conv", "W", 2) is None
    bad = _write(
        tmp_path / "bad.csv", _rmse("pspnet-seg-acdc-s1", "pspnet-auto-acdc-s1", [0.1, 0.2, 0.3])
    )
    with pytest.raises(PrrmseError, match="bad.csv.*not one model at two seeds"):
        noise_floor([bad])
    out = tmp_path / "floor.csv"
    run_noise_floor(pairs, out)
    assert "seed-to-seed" in provenance.read_csv_provenance(out)["what"]


def test_rmse_figure_draws_intervals_and_floor(tmp_path):
    from prrmse.figures.paper import make_figure
    from prrmse.figures.saving import read_figure_provenance

    seeds = [
        _write(
            tmp_path / "s1.csv", _rmse("pspnet-seg-acdc-s1", "pspnet-auto-acdc-s1", [0.1, 0.2, 0.3])
        ),
        _write(
            tmp_path / "s2.csv", _rmse("pspnet-seg-acdc-s2", "pspnet-auto-acdc-s2", [0.3, 0.2, 0.5])
        ),
    ]
    summary = tmp_path / "summary.csv"
    run_summary("rmse", seeds, summary, settings=FAST)
    floor = tmp_path / "floor.csv"
    run_noise_floor(
        [
            _write(
                tmp_path / "f.csv",
                _rmse("pspnet-seg-acdc-s1", "pspnet-seg-acdc-s2", [0.05, 0.1, 0.2]),
            )
        ],
        floor,
    )
    figure = make_figure(10, [summary], tmp_path / "fig10", floor=floor)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert any("floor" in label for label in labels) and any("95 %" in label for label in labels)
    record = read_figure_provenance(tmp_path / "fig10.png")
    assert str(floor) in json_inputs(record)
    with pytest.raises(PrrmseError, match=r"only RMSE figures \(6, 10, 11, 12, 13, 14\)"):
        make_figure(5, [summary], tmp_path / "fig05", floor=floor)


def json_inputs(record: dict) -> str:
    import json

    return json.dumps(record)


def test_foreground_rows_and_control_figure(tmp_path):
    from prrmse.figures.controls import plot_controls

    sweeps, patients, controls = [], [], []
    for seed, shift in [(1, 0.0), (2, 0.02)]:
        table, per_patient = _sweep(shift)
        sweeps.append(_write(tmp_path / f"s{seed}.csv", table))
        patients.append(_write(tmp_path / f"s{seed}.patients.csv", per_patient))
        control = pd.concat(
            [table.assign(condition=c) for c in ("reinit", "rerandom")], ignore_index=True
        )
        control.loc[control["kind"] == "RV", "dice"] -= 0.2
        control.loc[control["kind"] == "RV", "difference"] -= 0.2
        controls.append(_write(tmp_path / f"c{seed}.csv", control))
    summary = summarise_sweeps(sweeps, patients, FAST)
    foreground = summary[(summary["class"] == -1) & (summary["kind"] == "RM")].iloc[0]
    assert foreground["difference"] == pytest.approx(-0.3)
    assert foreground["difference_low"] == pytest.approx(-0.3)
    source_summary = tmp_path / "source.csv"
    run_summary("sweep", sweeps, source_summary, patients=patients, settings=FAST)
    control_summary = tmp_path / "controls.csv"
    run_summary("sweep", controls, control_summary, settings=FAST)
    control_rows = pd.read_csv(control_summary, comment="#")
    rv = control_rows[(control_rows["class"] == -1) & (control_rows["kind"] == "RV")]
    assert set(rv["condition"]) == {"reinit", "rerandom"} and rv[
        "difference"
    ].tolist() == pytest.approx([-0.2, -0.2])
    figure = plot_controls(source_summary, control_summary, tmp_path / "controls")
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert any("re-initialisation" in label for label in labels) and any(
        "source" in label for label in labels
    )
    assert (tmp_path / "controls.png").exists() and (tmp_path / "controls.pdf").exists()
