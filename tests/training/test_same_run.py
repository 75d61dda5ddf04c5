"""A subset run on every training patient is the full model's run: taken, not trained again."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from prrmse.core import study
from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import read_csv_provenance
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import load_tensors, save_tensors
from prrmse.training import train as train_module
from tests.training.test_train import _train


def _tables(folder):
    return {
        "tensors": load_tensors(folder / "model.safetensors")[0],
        "history": (folder / "history.csv").read_text(),
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "patients": pd.read_csv(folder / "patients.csv", comment="#"),
    }


def test_a_subset_of_every_patient_takes_the_full_models_tensors(
    tiny_config, tiny_data, tmp_path, monkeypatch
):
    n_all = len(load_processed(tiny_data).patients("train"))
    subset = f"unet-seg-acdc-n{n_all}-s1"
    _train(tiny_config, tiny_data, tmp_path / "full")
    _train(tiny_config, tiny_data, tmp_path / "trained", subset)
    trained = _tables(tmp_path / "trained")

    def no_training(*args):
        raise AssertionError("trained although the full model's run is this run")

    monkeypatch.setattr(train_module, "_train_epoch", no_training)
    lines: list[str] = []
    full = tmp_path / "full" / "model.safetensors"
    record = _train(
        tiny_config,
        tiny_data,
        tmp_path / "taken",
        subset,
        same_run_checkpoint=full,
        log=lines.append,
    )
    taken = _tables(tmp_path / "taken")
    assert any("the same run as" in line for line in lines)
    assert trained["tensors"].keys() == taken["tensors"].keys()
    assert all(trained["tensors"][k].equal(taken["tensors"][k]) for k in trained["tensors"])
    assert trained["history"] == taken["history"]
    assert trained["metrics"] == taken["metrics"] and taken["metrics"]["name"] == subset
    pd.testing.assert_frame_equal(trained["patients"], taken["patients"])
    assert record["name"] == subset and record["n_train"] == n_all
    assert record["same_run_as"]["checkpoint"] == str(full)
    assert len(record["same_run_as"]["sha256"]) == 64
    assert (
        load_tensors(tmp_path / "taken" / "model.safetensors")[1]["same_run_as"]["sha256"]
        == (record["same_run_as"]["sha256"])
    )
    assert read_csv_provenance(tmp_path / "taken" / "patients.csv")["model"] == subset


@pytest.mark.parametrize(
    ("name", "differs"), [("unet-seg-acdc-n2-s1", "train_patients"), ("unet-seg-acdc-s2", "seed")]
)
def test_a_run_that_is_not_the_checkpoints_trains(tiny_config, tiny_data, tmp_path, name, differs):
    _train(tiny_config, tiny_data, tmp_path / "full")
    _train(tiny_config, tiny_data, tmp_path / "trained", name)
    lines: list[str] = []
    record = _train(
        tiny_config,
        tiny_data,
        tmp_path / "asked",
        name,
        same_run_checkpoint=tmp_path / "full" / "model.safetensors",
        log=lines.append,
    )
    assert any(f"({differs} differs): training it" in line for line in lines)
    assert "same_run_as" not in record
    assert (tmp_path / "asked" / "model.safetensors").read_bytes() == (
        tmp_path / "trained" / "model.safetensors"
    ).read_bytes()


def test_the_workflow_asks_only_for_a_subset_as_large_as_the_split():
    config = {"datasets": {"acdc": {"split": {"method": "random", "n_train": 50}}, "rvsc": {}}}
    assert study.full_model_of_subset(config, "pspnet-seg-acdc-n50-s2") == "pspnet-seg-acdc-s2"
    assert study.full_model_of_subset(config, "pspnet-seg-acdc-n10-s2") is None
    assert study.full_model_of_subset(config, "pspnet-seg-acdc-s2") is None
    assert study.full_model_of_subset(config, "pspnet-seg-rvsc-n16-s1") is None


def test_a_checkpoint_that_is_no_finished_model_is_refused_before_any_output(
    tiny_config, tiny_data, tmp_path
):
    _train(tiny_config, tiny_data, tmp_path / "full")
    tensors, record = load_tensors(tmp_path / "full" / "model.safetensors")
    unfinished = tmp_path / "unfinished.safetensors"
    save_tensors(unfinished, tensors, {k: v for k, v in record.items() if k != "best_epoch"})
    for checkpoint, problem in [
        (unfinished, "is not a finished model"),
        (tmp_path / "missing.safetensors", "checkpoint not found"),
    ]:
        with pytest.raises(PrrmseError, match=problem) as error:
            _train(tiny_config, tiny_data, tmp_path / "out", same_run_checkpoint=checkpoint)
        assert error.value.where == str(checkpoint)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
