"""Figures 3-12 on small synthetic CSVs: files, embedded provenance, same bytes twice,
absent tensors as gaps (never 0), bad input, dispatch."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.provenance import csv_header, read_csv_provenance
from prrmse.figures.bnstats import plot_bn_stats
from prrmse.figures.model_labels import short_names
from prrmse.figures.models import plot_conv_rmse, plot_group_rmse, rmse_matrix
from prrmse.figures.paper import make_figure
from prrmse.figures.saving import read_figure_provenance
from prrmse.figures.sweeps import plot_bn_sweep, plot_conv_sweep

BASELINE = [0.99, 0.81, 0.83, 0.92]
BN_KINDS = ("RM", "RV", "RW", "RB")
CONV_KINDS = ("W", "B")
UNET = {"bn": 18, "conv": 18, "b_present": range(1, 20)}  # every conv has a bias
PSPNET = {"bn": 25, "conv": 25, "b_present": (1, 21, 22, 23, 24, 25)}  # ResNet convs lack one


def _write(path: Path, table: pd.DataFrame, record: dict) -> Path:
    path.write_text(csv_header(record) + table.to_csv(index=False, na_rep="nan"))
    return path


def sweep_table(net: dict) -> pd.DataFrame:
    """Deterministic Dice: replacing RM 1, 17 or W 1, 6 wrecks the foreground; class 1 is
    undefined (NaN) after replacing RV 3."""
    rows = [
        dict(
            family="baseline",
            layer=0,
            module="",
            head=False,
            kind="",
            status="baseline",
            **{"class": c},
            dice=d,
            baseline_dice=d,
            difference=0.0,
        )
        for c, d in enumerate(BASELINE)
    ]
    layers = [("bn", n, False) for n in range(1, net["bn"] + 1)]
    layers += [("conv", n, n == net["conv"] + 1) for n in range(1, net["conv"] + 2)]
    for family, layer, head in layers:
        for kind in BN_KINDS if family == "bn" else CONV_KINDS:
            absent = kind == "B" and layer not in net["b_present"]
            hit = (kind, layer) in {("RM", 1), ("RM", 17), ("W", 1), ("W", 6)}
            for cls, base in enumerate(BASELINE):
                dice = base - (0.6 if hit and cls else 0.01 * (layer % 3))
                dice = np.nan if absent or (kind, layer, cls) == ("RV", 3, 1) else dice
                rows.append(
                    dict(
                        family=family,
                        layer=layer,
                        module=f"m{family}{layer}",
                        head=head,
                        kind=kind,
                        status="absent" if absent else "replaced",
                        **{"class": cls},
                        dice=dice,
                        baseline_dice=base,
                        difference=dice - base,
                    )
                )
    return pd.DataFrame(rows)


def bnstats_table(net: dict) -> pd.DataFrame:
    layers = np.arange(1, net["bn"] + 1)
    table = pd.DataFrame(
        {
            "layer": layers,
            "module": [f"bn{n}" for n in layers],
            "channels": 8,
            "MRM": 0.1 + 0.05 * (layers % 4),
            "MRV": 1 + 0.1 * np.sin(layers),
            "MRW": 1 + 0.2 * np.cos(layers),
            "MRB": 0.02 * layers,
            "mrw_note": "",
        }
    )
    table.loc[table["layer"] == 5, ["MRW", "mrw_note"]] = [
        np.nan,
        "undefined: target weight 0 in 1 channels",
    ]
    return table


def rmse_table(net: dict, models: list[str]) -> pd.DataFrame:
    rows = []
    for number, (a, b) in enumerate(itertools.combinations(models, 2)):
        layers = [("bn", n, False) for n in range(1, net["bn"] + 1)]
        layers += [("conv", n, n == net["conv"] + 1) for n in range(1, net["conv"] + 2)]
        for family, layer, head in layers:
            for kind in BN_KINDS if family == "bn" else CONV_KINDS:
                absent = kind == "B" and layer not in net["b_present"]
                rmse = np.nan if absent else 0.01 * (number + 1) * (1 + layer % 5)
                rows.append(
                    dict(
                        model_a=a,
                        model_b=b,
                        family=family,
                        layer=layer,
                        module=f"m{family}{layer}",
                        head=head,
                        kind=kind,
                        status="absent" if absent else "compared",
                        numel=pd.NA if absent else 9,
                        rmse=rmse,
                    )
                )
    return pd.DataFrame(rows)


PAIR = {
    "target": "results/models/pspnet-seg-acdc-s0/model.safetensors",
    "source": "results/models/pspnet-auto-t1-s0/model.safetensors",
}
GROUP = ["pspnet-seg-t1-s0", "pspnet-auto-t1-s0", "pspnet-seg-acdc-s0", "pspnet-auto-acdc-s0"]


def write_inputs(folder: Path, net: dict) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "sweep": _write(folder / "sweep.csv", sweep_table(net), {"arch": "x", **PAIR}),
        "bnstats": _write(folder / "bnstats.csv", bnstats_table(net), {"arch": "x", **PAIR}),
        "pair": _write(folder / "rmse.csv", rmse_table(net, GROUP[2:0:-1]), {"models": {}}),
        "group": _write(folder / "group.csv", rmse_table(net, GROUP), {"models": {}}),
    }


PLOTTERS = {  # plotter -> the input it draws
    plot_bn_sweep: "sweep",
    plot_conv_sweep: "sweep",
    plot_bn_stats: "bnstats",
    plot_conv_rmse: "pair",
    plot_group_rmse: "group",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every figure kind drawn once per network (rendering is the slow part): net -> the
    inputs, the output folder and plotter name -> Figure."""
    result = {}
    for name, net in (("unet", UNET), ("pspnet", PSPNET)):
        root = tmp_path_factory.mktemp(name)
        inputs = write_inputs(root / "in", net)
        figures = {
            plot.__name__: plot(inputs[key], root / "out" / plot.__name__)
            for plot, key in PLOTTERS.items()
        }
        result[name] = {"inputs": inputs, "out": root / "out", "figures": figures}
    return result


@pytest.mark.parametrize("net", ["unet", "pspnet"])
def test_every_figure_writes_png_and_pdf_with_provenance(rendered: dict, net: str) -> None:
    inputs, out = rendered[net]["inputs"], rendered[net]["out"]
    for plot, key in PLOTTERS.items():
        for suffix in (".png", ".pdf"):
            record = read_figure_provenance(out / f"{plot.__name__}{suffix}")
            assert record is not None, (plot.__name__, suffix)
            assert record["inputs"] == {str(inputs[key]): sha256_file(inputs[key])}
            assert record["input_provenance"][str(inputs[key])] == read_csv_provenance(inputs[key])
            assert "code" in record and "packages" in record
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{plot.__name__}{suffix}" for plot in PLOTTERS for suffix in (".png", ".pdf")
    )  # nothing left under a temp name


def test_same_inputs_give_same_bytes(rendered: dict, tmp_path: Path) -> None:
    first = rendered["pspnet"]["out"] / "plot_conv_sweep"
    plot_conv_sweep(rendered["pspnet"]["inputs"]["sweep"], tmp_path / "again.png")
    for suffix in (".png", ".pdf"):
        assert (tmp_path / f"again{suffix}").read_bytes() == first.with_suffix(suffix).read_bytes()


def _ydata(figure, panel: int) -> list[np.ndarray]:
    return [np.asarray(line.get_ydata(), dtype=float) for line in figure.axes[panel].get_lines()]


def test_absent_bias_is_a_gap_not_zero(rendered: dict) -> None:
    figures = rendered["pspnet"]["figures"]
    absent = [n - 1 for n in range(1, 26) if n not in PSPNET["b_present"]]
    series = [y for y in _ydata(figures["plot_conv_sweep"], 1) if len(y) == 25]
    assert len(series) == 4  # one per class; the baselines are 2-point lines
    for ydata in series:
        assert np.isnan(ydata[absent]).all() and not np.isnan(ydata[[0, 20, 24]]).any()
    (bias,) = _ydata(figures["plot_conv_rmse"], 1)
    assert len(bias) == 25 and np.isnan(bias[absent]).all() and (bias[[0, 20]] > 0).all()
    group_bias = figures["plot_group_rmse"].axes[5]
    assert group_bias.get_title(loc="left").startswith("(f) B")
    for line in group_bias.get_lines():
        assert np.isnan(np.asarray(line.get_ydata(), dtype=float)[absent]).all()
    notes = [text.get_text() for text in figures["plot_conv_sweep"].axes[1].texts]
    assert notes == ["B absent"]  # layers 2-20: one band, one note


def test_undefined_dice_is_a_gap(rendered: dict) -> None:
    rv_panel = _ydata(rendered["unet"]["figures"]["plot_bn_sweep"], 1)
    class_1 = [y for y in rv_panel if len(y) == 18][1]  # series: classes 0, 1, 2, 3
    assert np.isnan(class_1[2]) and not np.isnan(class_1[[0, 1, 3]]).any()


def test_head_excluded_and_layers_numbered_from_one(rendered: dict) -> None:
    for net, count in (("unet", 18), ("pspnet", 25)):
        figure = rendered[net]["figures"]["plot_conv_sweep"]
        assert list(figure.axes[0].get_lines()[0].get_xdata()) == list(range(1, count + 1))
        assert [int(t) for t in figure.axes[1].get_xticks()] == list(range(1, count + 1))
        labels = [t.get_text() for t in figure.axes[1].get_xticklabels()]
        assert labels == [str(n) for n in range(1, count + 1)]


def test_undefined_mrw_is_marked(rendered: dict) -> None:
    figure = rendered["unet"]["figures"]["plot_bn_stats"]
    marks = [line for line in figure.axes[2].get_lines() if line.get_marker() == "x"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [5]
    legend = {text.get_text() for text in figure.legends[0].get_texts()}
    assert "MRW undefined (a target weight is 0)" in legend
    heights = [patch.get_height() for patch in figure.axes[2].patches]
    assert np.isnan(heights[4])  # no bar drawn for the undefined layer


def test_titles_and_labels_name_the_models(rendered: dict) -> None:
    figures = rendered["unet"]["figures"]
    title = figures["plot_bn_sweep"].get_suptitle()
    assert "target pspnet-seg-acdc-s0" in title and "source pspnet-auto-t1-s0" in title
    assert figures["plot_conv_rmse"].get_suptitle().endswith("ACDC seg vs T1 auto")
    labels = {text.get_text() for text in figures["plot_group_rmse"].legends[0].get_texts()}
    assert "T1 seg vs T1 auto" in labels and len(labels) == 6


def test_rmse_matrix_is_symmetric_mean_of_w() -> None:
    table = rmse_table(UNET, GROUP[:3])
    matrix = rmse_matrix(table, GROUP[:3])
    assert np.isnan(np.diag(matrix.to_numpy())).all()
    assert matrix.loc[GROUP[0], GROUP[1]] == matrix.loc[GROUP[1], GROUP[0]]
    w = table[(table["kind"] == "W") & ~table["head"] & (table["model_b"] == GROUP[2])]
    mean = w.loc[w["model_a"] == GROUP[0], "rmse"].mean()
    assert matrix.loc[GROUP[0], GROUP[2]] == pytest.approx(mean)


def test_short_names() -> None:
    assert short_names(["unet-seg-acdc-n10-s0", "unet-auto-t1-s1"]) == {
        "unet-seg-acdc-n10-s0": "ACDC seg n10 s0",
        "unet-auto-t1-s1": "T1 auto s1",
    }
    assert short_names(["pspnet-seg-acdc-s0", "other"]) == {
        "pspnet-seg-acdc-s0": "pspnet-seg-acdc-s0",
        "other": "other",
    }


def test_make_figure_dispatches_by_number(rendered: dict, tmp_path: Path) -> None:
    inputs = rendered["unet"]["inputs"]
    figure = make_figure(9, [inputs["bnstats"]], tmp_path / "fig09", title="Custom title")
    assert figure.get_suptitle() == "Custom title"
    assert (tmp_path / "fig09.png").is_file() and (tmp_path / "fig09.pdf").is_file()
    with pytest.raises(PrrmseError, match=r"valid: 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14"):
        make_figure(15, [inputs["bnstats"]], tmp_path / "fig15")
    with pytest.raises(PrrmseError, match="only Figures 13 and 14 take runs"):
        make_figure(9, [inputs["bnstats"]], tmp_path / "fig09", runs=["unet-seg-acdc-n10"])
    with pytest.raises(PrrmseError, match="one input CSV, got 2"):
        make_figure(3, [inputs["sweep"], inputs["sweep"]], tmp_path / "fig03")


def test_missing_columns_name_the_file_and_leave_nothing(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path / "in", UNET)
    broken = tmp_path / "in" / "broken.csv"
    broken.write_text(
        pd.read_csv(inputs["sweep"], comment="#").drop(columns=["dice", "kind"]).to_csv(index=False)
    )
    with pytest.raises(PrrmseError, match=r"broken\.csv.*missing columns: kind, dice"):
        make_figure(3, [broken], tmp_path / "out" / "fig03")
    empty = tmp_path / "in" / "empty.csv"
    empty.write_text(csv_header({}) + ",".join(bnstats_table(UNET).columns) + "\n")
    with pytest.raises(PrrmseError, match=r"empty\.csv: has no rows"):
        make_figure(5, [empty], tmp_path / "out" / "fig05")
    with pytest.raises(PrrmseError, match=r"sweep\.csv: missing columns: rmse, model_a, model_b"):
        make_figure(11, [inputs["sweep"]], tmp_path / "out" / "fig11")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
