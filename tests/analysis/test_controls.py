"""Sweep controls (re-initialisation, re-randomisation) and the Dice per patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from prrmse.analysis.sweep import replacement as replacement_module
from prrmse.analysis.sweep.controls import RERANDOM_SEED_OFFSET, control_source
from prrmse.analysis.sweep.engine import run_control_sweep
from prrmse.analysis.sweep.replacement import (
    SweepSettings,
    naive_sweep_tables,
    replacement_sweep_tables,
)
from prrmse.analysis.sweep.rows import COLUMNS
from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import read_csv_provenance
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import save_tensors
from prrmse.models.layers import BN_KINDS, get_tensor, index_layers
from prrmse.training.train import initial_model
from tests.analysis.test_sweep import SMALL_PSPNET, calibrated
from tests.conftest import write_processed

torch.set_num_threads(1)

UNET = {"arch": "unet", "options": {"width": 4}}
PSPNET = {"arch": "pspnet", "options": {**SMALL_PSPNET, "conv_bias": False}}
SETTINGS = SweepSettings(batch_size=4)
KEYS = ["condition", "family", "layer", "kind", "class"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 val patients of 2 slices; patient 2 loses its RV (class 1) so some Dice are NaN.
    root = write_processed(tmp_path_factory.mktemp("controls") / "acdc", n_patients=12, slices=2)
    index = pd.read_csv(root / "index.csv")
    labels = np.load(root / "labels.npy")
    rows = (index["patient"] == "patient011").to_numpy()
    labels[rows] = np.where(labels[rows] == 1, 0, labels[rows])
    np.save(root / "labels.npy", labels)
    return root


@pytest.fixture(scope="module")
def val_set(data_dir: Path) -> tuple[torch.Tensor, np.ndarray, pd.DataFrame]:
    dataset = load_processed(data_dir)
    rows = dataset.rows("val")
    images = torch.from_numpy(np.array(dataset.images[rows]))[:, None]
    return images, np.array(dataset.labels[rows]), dataset.index.iloc[rows].reset_index(drop=True)


def save_checkpoint(model: nn.Module, network: dict, seed: int, path: Path) -> Path:
    """A checkpoint recording what train.py records about the network and seed."""
    record = {"kind": "model", "name": path.stem, "seed": seed, **network}
    save_tensors(path, model.state_dict(), record)
    return path


def read_csv(path: Path) -> pd.DataFrame:
    # An empty kind is a kind, not a missing value; only "nan" is an undefined Dice.
    return pd.read_csv(path, comment="#", keep_default_na=False, na_values=["nan"])


def patient_means(patients: pd.DataFrame) -> pd.DataFrame:
    """Each sweep row's Dice as the sweep computes it: the NaN-skipping mean over patients."""
    out = []
    for key, rows in patients.groupby(KEYS[:4], sort=False):
        frame = rows.pivot(index="patient", columns="class", values="dice")
        means = frame.mean(axis=0, skipna=True)
        out += [(*key, int(c), means[c]) for c in frame.columns]
    return pd.DataFrame(out, columns=[*KEYS, "dice"])


def test_reinit_of_an_untrained_target_gives_the_baseline_on_every_row(data_dir, tmp_path):
    """The target is its own initial model: reinit replaces every tensor by itself."""
    target = initial_model(UNET, 3)
    ckpt = save_checkpoint(target, UNET, 3, tmp_path / "untrained.safetensors")
    out = tmp_path / "sweeps" / "controls.csv"
    table = run_control_sweep(ckpt, data_dir, out, SETTINGS, log=lambda _: None)
    assert list(table.columns) == [*COLUMNS, "condition"]
    assert list(dict.fromkeys(table["condition"])) == ["reinit", "rerandom"]
    replaced = table[table["status"] == "replaced"]
    reinit = replaced[replaced["condition"] == "reinit"]
    assert len(reinit) == 4 * (18 * 4 + 19 * 2)
    assert np.array_equal(reinit["dice"], reinit["baseline_dice"], equal_nan=True)
    rerandom = replaced[replaced["condition"] == "rerandom"]
    bn = rerandom["kind"].isin(BN_KINDS)
    assert np.array_equal(
        rerandom.loc[bn, "dice"], rerandom.loc[bn, "baseline_dice"], equal_nan=True
    )
    # (An untrained UNet predicts one class almost everywhere, so conv draws rarely move
    # its Dice; that rerandom's conv tensors differ is tested on the tensors below.)

    record = read_csv_provenance(out)
    assert record["target"] == str(ckpt) and record["conditions"] == ["reinit", "rerandom"]
    assert record["seeds"] == {"reinit": 3, "rerandom": 3 + RERANDOM_SEED_OFFSET}
    assert record["network"] == UNET
    back = read_csv(out)
    assert list(back.columns) == [*COLUMNS, "condition"] and len(back) == len(table)
    assert np.array_equal(back["dice"], table["dice"], equal_nan=True)
    assert (out.parent / "controls.patients.csv").exists()


def test_rerandom_differs_from_reinit_in_conv_tensors_and_equals_it_in_bn():
    for network in (UNET, PSPNET):
        before = torch.random.get_rng_state()
        reinit, rerandom = (control_source(c, network, 1) for c in ("reinit", "rerandom"))
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's draws unmoved
        start = initial_model(network, 1)
        for layer in index_layers(start):
            for kind in layer.kinds:
                first, fresh = get_tensor(reinit, layer, kind), get_tensor(rerandom, layer, kind)
                assert torch.equal(first, get_tensor(start, layer, kind))
                if layer.family == "bn":
                    assert torch.equal(first, fresh), (layer.module_name, kind)
                elif kind == "W":
                    assert not torch.equal(first, fresh), (layer.module_name, kind)
        bn = next(layer for layer in index_layers(start) if layer.family == "bn")
        values = [get_tensor(rerandom, bn, kind).unique().tolist() for kind in BN_KINDS]
        assert values == [[0.0], [1.0], [1.0], [0.0]]


@pytest.mark.parametrize("condition", ["reinit", "rerandom"])
def test_control_rows_are_bit_identical_to_a_naive_sweep(val_set, data_dir, tmp_path, condition):
    """A trained-like target swept against its controls: the fast sweep, the naive one
    (deepcopy + load_state_dict of the same replacement tensors) and the CSV agree."""
    target = calibrated("unet", 1, val_set[0], width=4)
    source = control_source(condition, UNET, 1)
    fast, fast_patients = replacement_sweep_tables(target, source, *val_set, SETTINGS)
    naive, naive_patients = naive_sweep_tables(target, source, *val_set, SETTINGS)
    pd.testing.assert_frame_equal(fast, naive, check_exact=True)
    pd.testing.assert_frame_equal(fast_patients, naive_patients, check_exact=True)
    replaced = fast[fast["status"] == "replaced"]
    assert (replaced["difference"].abs() > 0).mean() > 0.1, "controls too harmless to test"

    ckpt = save_checkpoint(target, UNET, 1, tmp_path / "target.safetensors")
    out = tmp_path / "controls.csv"
    run_control_sweep(ckpt, data_dir, out, SETTINGS, conditions=[condition], log=lambda _: None)
    back = read_csv(out)
    assert set(back["condition"]) == {condition}
    for column in ("dice", "baseline_dice", "difference"):
        assert np.array_equal(back[column], fast[column], equal_nan=True), column


def test_both_controls_in_one_pass_equal_each_swept_alone_and_share_the_bn_rows(
    val_set, data_dir, tmp_path, monkeypatch
):
    """rerandom's BN tensors are reinit's bytes, so their rows are evaluated once; every
    row is still what a sweep of that condition alone gives, bit for bit."""
    target = calibrated("unet", 1, val_set[0], width=4)
    alone = {
        condition: replacement_sweep_tables(
            target, control_source(condition, UNET, 1), *val_set, SETTINGS
        )
        for condition in ("reinit", "rerandom")
    }
    passes = []
    original = replacement_module.predict_batch
    monkeypatch.setattr(
        replacement_module,
        "predict_batch",
        lambda *args: passes.append(1) or original(*args),
    )
    ckpt = save_checkpoint(target, UNET, 1, tmp_path / "target.safetensors")
    out = tmp_path / "controls.csv"
    lines: list[str] = []
    run_control_sweep(ckpt, data_dir, out, SETTINGS, log=lines.append)
    back, patients = read_csv(out), read_csv(tmp_path / "controls.patients.csv")
    for condition, (table, patient_table) in alone.items():
        rows = back[back["condition"] == condition].reset_index(drop=True)
        for column in ("dice", "baseline_dice", "difference"):
            assert np.array_equal(rows[column], table[column], equal_nan=True), condition
        mine = patients[patients["condition"] == condition].reset_index(drop=True)
        assert np.array_equal(mine["dice"], patient_table["dice"], equal_nan=True), condition

    n_bn = sum(layer.family == "bn" for layer in index_layers(target))
    n_rows = sum(len(layer.kinds) for layer in index_layers(target))
    assert any(f"{4 * n_bn} of {2 * n_rows} replacements are the same bytes" in x for x in lines)
    n_batches = -(-len(val_set[0]) // SETTINGS.batch_size)
    # One baseline pass a batch for both conditions, and the shared rows once.
    assert len(passes) == n_batches * (1 + 2 * n_rows - 4 * n_bn)


def test_per_patient_dice_averages_back_to_the_sweep_csv_exactly(val_set, data_dir, tmp_path):
    target = calibrated("unet", 1, val_set[0], width=4)
    ckpt = save_checkpoint(target, UNET, 1, tmp_path / "target.safetensors")
    out = tmp_path / "controls.csv"
    patients_csv = tmp_path / "elsewhere" / "per-patient.csv"
    run_control_sweep(ckpt, data_dir, out, SETTINGS, log=lambda _: None, patients_csv=patients_csv)
    sweep = read_csv(out)
    patients = read_csv(patients_csv)
    assert list(patients.columns) == ["condition", *KEYS[1:4], "patient", "class", "dice"]
    assert not (tmp_path / "controls.patients.csv").exists()
    record = read_csv_provenance(patients_csv)
    assert record["sweep_csv"] == str(out) and record["seeds"] == read_csv_provenance(out)["seeds"]

    baseline = patients[patients["family"] == "baseline"]
    assert set(baseline["layer"]) == {0} and set(baseline["kind"]) == {""}
    assert patients["patient"].nunique() == 3
    # patient011 has no RV in truth; where the model predicts none either, Dice is NaN.
    assert patients["dice"].isna().any()
    assert len(patients) == 2 * (1 + 18 * 4 + 19 * 2) * 3 * 4

    present = sweep[sweep["status"] != "absent"]
    means = patient_means(patients)
    merged = present.merge(
        means.assign(kind=means["kind"].astype(str)), on=KEYS, suffixes=("", "_patients")
    )
    assert len(merged) == len(present)
    assert np.array_equal(merged["dice"], merged["dice_patients"], equal_nan=True)


def test_unknown_conditions_and_seedless_checkpoints_are_refused(data_dir, tmp_path):
    target = initial_model(UNET, 1)
    ckpt = save_checkpoint(target, UNET, 1, tmp_path / "t.safetensors")
    with pytest.raises(PrrmseError, match="unknown control 'shuffle'"):
        run_control_sweep(ckpt, data_dir, tmp_path / "c.csv", conditions=["reinit", "shuffle"])
    seedless = tmp_path / "seedless.safetensors"
    save_tensors(seedless, target.state_dict(), {"kind": "model", **UNET})
    with pytest.raises(PrrmseError, match="records no integer seed") as error:
        run_control_sweep(seedless, data_dir, tmp_path / "c.csv")
    assert error.value.where == str(seedless)
    assert not (tmp_path / "c.csv").exists()
