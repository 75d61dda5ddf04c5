import copy
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml

from prrmse.core.errors import PrrmseError
from prrmse.core.naming import parse_model_name
from prrmse.core.provenance import read_csv_provenance
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import load_model, load_tensors, save_tensors
from prrmse.models.start import resolve_start
from prrmse.training.batches import carve_holdout, load_train_data
from prrmse.training.evaluate import validate
from prrmse.training.settings import TrainSettings
from prrmse.training.train import initial_model, train_model
from tests.conftest import TINY_CONFIG


def _train(tiny_config, data, out, name="unet-seg-acdc-s1", **kwargs):
    spec = parse_model_name(name)
    settings = TrainSettings.from_config(tiny_config["train"], "config train")
    network = tiny_config["networks"][spec.network]
    kwargs.setdefault("log", lambda _: None)
    return train_model(spec, settings, network, data, out, **kwargs)


def test_same_seed_gives_bit_identical_checkpoints(tiny_config, tiny_data, tmp_path):
    _train(tiny_config, tiny_data, tmp_path / "a")
    _train(tiny_config, tiny_data, tmp_path / "b")
    for name in ("model.safetensors", "history.csv", "metrics.json", "patients.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert not (tmp_path / "a" / "state.safetensors").exists()
    _train(tiny_config, tiny_data, tmp_path / "c", "unet-seg-acdc-s2")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() != (
        tmp_path / "c" / "model.safetensors"
    ).read_bytes()


def test_checkpoint_records_provenance_and_loads(tiny_config, tiny_data, tmp_path):
    record = _train(tiny_config, tiny_data, tmp_path / "m")
    model, loaded = load_model(tmp_path / "m" / "model.safetensors")
    assert loaded["seed"] == 1 and loaded["arch"] == "unet" and loaded["task"] == "seg"
    assert loaded["config"]["train"]["epochs"] == 2
    assert set(loaded["provenance"]) >= {"code", "packages", "device", "precision"}
    # train.precision auto resolves to fp32 on CPU, recorded with the model
    assert loaded["precision"] == loaded["provenance"]["precision"] == "fp32"
    assert len(record["metrics"]["dice"]) == 4


def test_auto_encoder_task_trains(tiny_config, tiny_data, tmp_path):
    record = _train(tiny_config, tiny_data, tmp_path / "auto", "unet-auto-acdc-s1")
    assert record["metrics"]["mse"] > 0
    # every model writes the file (the workflow declares it); an auto-encoder's has no rows
    patients = pd.read_csv(tmp_path / "auto" / "patients.csv", comment="#")
    assert list(patients.columns) == ["patient", "class", "dice"] and patients.empty


def test_training_starts_from_initial_model_of_its_recorded_start(tiny_config, tiny_data, tmp_path):
    started = {}

    def capture(model):
        started.update({k: v.clone() for k, v in model.state_dict().items()})
        return {}

    spec = parse_model_name("unet-seg-acdc-s3")
    record = _train(tiny_config, tiny_data, tmp_path / "m", spec.name, setup=capture)
    network = tiny_config["networks"]["unet"]
    assert record["start"] == resolve_start(network, spec)
    expected = initial_model(network, record["start"]).state_dict()
    assert started.keys() == expected.keys()
    assert all(torch.equal(started[k], expected[k]) for k in expected)


def test_selection_last_reports_the_last_epoch_and_never_scores_val_to_choose(
    tiny_config, tiny_data, tmp_path
):
    tiny_config["train"]["epochs"] = 3
    tiny_config["train"]["val_every"] = 2
    record = _train(tiny_config, tiny_data, tmp_path / "m")
    assert record["selection"] == {"rule": "last", "epoch": 3} and record["best_epoch"] == 3
    history = pd.read_csv(tmp_path / "m" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert not [c for c in history.columns if c.startswith("sel_")]
    # the learning curve: epochs 2 (val_every) and 3 (the reported model) only
    assert history["val_dice_mean"].isna().tolist() == [True, False, False]
    assert history["val_dice_mean"].iloc[-1] == pytest.approx(
        record["metrics"]["dice_mean"], abs=1e-6
    )
    model, _ = load_model(tmp_path / "m" / "model.safetensors")
    dataset = load_processed(tiny_data)
    settings = TrainSettings.from_config(tiny_config["train"], "config train")
    data = load_train_data(dataset, parse_model_name("unet-seg-acdc-s1"), settings)
    again = validate(
        model, "seg", data.val.images, data.val.labels, data.val.index, 16, torch.device("cpu")
    )
    assert again["dice"] == record["metrics"]["dice"]


def test_best_on_holdout_selects_on_training_patients_apart_from_the_reporting_set(
    tiny_config, tiny_data, tmp_path
):
    train = tiny_config["train"]
    train.update(epochs=3, selection="best_on_holdout", holdout={"n_patients": 2, "seed": 5})
    record = _train(tiny_config, tiny_data, tmp_path / "m")
    dataset = load_processed(tiny_data)
    held = record["selection"]["patients"]
    assert record["selection"]["rule"] == "best_on_holdout" and len(held) == 2
    assert set(held) <= set(dataset.patients("train"))  # carved from the training patients
    assert not set(held) & set(record["data"]["train_patients"])  # and not trained on
    assert not set(held) & set(dataset.patients("val"))  # never the reporting set
    assert len(record["data"]["train_patients"]) == len(dataset.patients("train")) - 2
    history = pd.read_csv(tmp_path / "m" / "history.csv")
    scores = history["sel_dice_mean"].tolist()
    assert record["best_epoch"] == 1 + scores.index(max(scores))
    assert record["selection"]["score"] == pytest.approx(max(scores), abs=1e-6)
    # the reported Dice is the selected model's on the validation patients
    model, _ = load_model(tmp_path / "m" / "model.safetensors")
    settings = TrainSettings.from_config(train, "config train")
    data = load_train_data(dataset, parse_model_name("unet-seg-acdc-s1"), settings)
    assert data.selection is not None and data.selection.patients == held
    again = validate(
        model, "seg", data.val.images, data.val.labels, data.val.index, 16, torch.device("cpu")
    )
    assert again["dice"] == record["metrics"]["dice"]
    # the same patients every time (a seeded draw), others with another seed
    assert carve_holdout(dataset.patients("train"), 2, 5, tiny_data)[1] == held
    assert carve_holdout(dataset.patients("train"), 2, 6, tiny_data)[1] != held


def test_holdout_leaving_no_training_patient_is_refused(tiny_config, tiny_data, tmp_path):
    tiny_config["train"].update(selection="best_on_holdout", holdout={"n_patients": 6, "seed": 1})
    with pytest.raises(PrrmseError, match="leaves none of the 6 training patients"):
        _train(tiny_config, tiny_data, tmp_path / "m")
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_segmentation_writes_per_patient_dice_that_averages_to_metrics(
    tiny_config, tiny_data, tmp_path
):
    record = _train(tiny_config, tiny_data, tmp_path / "m")
    path = tmp_path / "m" / "patients.csv"
    stamp = read_csv_provenance(path)
    assert stamp["model"] == "unet-seg-acdc-s1" and stamp["best_epoch"] == record["best_epoch"]
    patients = pd.read_csv(path, comment="#")
    assert list(patients.columns) == ["patient", "class", "dice"]
    assert patients["patient"].nunique() == 2 and len(patients) == 2 * 4  # 8 patients, 1/4 val
    per_class = patients.pivot(index="patient", columns="class", values="dice")
    means = per_class.mean(axis=0, skipna=True).to_list()
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert means == metrics["dice"] == record["metrics"]["dice"]


def test_subset_draws_nested_patients(tiny_config, tiny_data, tmp_path):
    record = _train(tiny_config, tiny_data, tmp_path / "n2", "unet-seg-acdc-n2-s1")
    assert len(record["data"]["train_patients"]) == 2


def test_checkpoint_of_another_architecture_is_refused(tiny_config, tiny_data, tmp_path):
    _train(tiny_config, tiny_data, tmp_path / "m")
    with pytest.raises(PrrmseError, match="expected .*pspnet.* found .*unet"):
        load_model(tmp_path / "m" / "model.safetensors", expect={"arch": "pspnet"})
    tensors, record = load_tensors(tmp_path / "m" / "model.safetensors")
    record["options"] = {"width": 8}
    save_tensors(tmp_path / "wide.safetensors", tensors, record)
    with pytest.raises(PrrmseError, match="expected shape"):
        load_model(tmp_path / "wide.safetensors")
    del tensors[next(iter(tensors))]
    save_tensors(tmp_path / "short.safetensors", tensors, record)
    with pytest.raises(PrrmseError, match="expected"):
        load_model(tmp_path / "short.safetensors")


def test_nan_loss_stops_and_names_the_epoch(tiny_config, tiny_data, tmp_path):
    # NaN images are refused when the data is read; an absurd learning rate still
    # drives the loss to NaN within the first epoch.
    tiny_config["train"]["lr"] = 1e30
    with pytest.raises(
        PrrmseError, match=r"loss became (nan|inf|-inf) at epoch 1, step [0-9]+; no model"
    ):
        _train(tiny_config, tiny_data, tmp_path / "nan")
    assert not (tmp_path / "nan" / "model.safetensors").exists()


def test_batch_larger_than_split_is_refused(tiny_config, tiny_data, tmp_path):
    tiny_config["train"]["batch_size"] = 500
    with pytest.raises(PrrmseError, match="batch size 500"):
        _train(tiny_config, tiny_data, tmp_path / "big")


def test_index_not_matching_arrays_is_refused(tiny_config, tiny_data, tmp_path):
    index = (tiny_data / "index.csv").read_text().splitlines()
    (tiny_data / "index.csv").write_text("\n".join(index[:-3]) + "\n")
    with pytest.raises(PrrmseError, match="index.csv"):
        _train(tiny_config, tiny_data, tmp_path / "bad")


def test_killed_training_resumes_to_the_same_bytes(tiny_data, tmp_path):
    config = copy.deepcopy(TINY_CONFIG)
    config["train"]["epochs"] = 6
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))

    def command(out):
        return [
            sys.executable,
            "-m",
            "prrmse.cli.main",
            "train",
            "--config",
            str(config_path),
            "--model",
            "unet-seg-acdc-s1",
            "--data",
            str(tiny_data),
            "--out",
            str(out),
            "--threads",
            "1",
            "--resume-every",
            "0",
        ]

    reference = tmp_path / "reference"
    subprocess.run(command(reference), check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state = killed / "state.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if state.exists() and load_tensors(state)[1]["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "model.safetensors").exists()
    resumed = subprocess.run(command(killed), check=True, capture_output=True, text=True)
    assert "resuming after epoch" in resumed.stdout
    for name in ("model.safetensors", "history.csv", "metrics.json", "patients.csv"):
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name


def test_resume_state_interval_leaves_the_outputs_unchanged(
    tiny_config, tiny_data, tmp_path, monkeypatch
):
    import prrmse.training.train

    tiny_config["train"]["epochs"] = 4
    writes = []
    real_save = prrmse.training.train.save_state

    def counted(path, *args):
        writes.append(args[-1]["epoch"])
        real_save(path, *args)

    monkeypatch.setattr(prrmse.training.train, "save_state", counted)
    _train(tiny_config, tiny_data, tmp_path / "every", resume_every_s=0)
    assert writes == [1, 2, 3]  # every epoch but the last, whose outputs are written instead
    writes.clear()
    _train(tiny_config, tiny_data, tmp_path / "never", resume_every_s=1e9)
    assert writes == []
    for name in ("model.safetensors", "history.csv", "metrics.json", "patients.csv"):
        assert (tmp_path / "every" / name).read_bytes() == (tmp_path / "never" / name).read_bytes()


def test_a_failed_output_write_names_the_output_not_its_temp_file(
    tiny_config, tiny_data, tmp_path, monkeypatch
):
    import prrmse.core.io
    import prrmse.training.outputs

    def full_disk(path, payload):
        with prrmse.core.io.atomic_path(path) as temp:
            temp.write_text("partial")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(prrmse.training.outputs, "write_json_atomic", full_disk)
    out = tmp_path / "m"
    with pytest.raises(PrrmseError) as error:
        _train(tiny_config, tiny_data, out, resume_every_s=0)
    assert error.value.where == str(out / "metrics.json")
    assert "No space left on device" in error.value.problem
    # no output and no temp file is left; only the resume state of the epoch before
    assert sorted(p.name for p in out.iterdir()) == ["state.safetensors"]


def test_soft_dice_leaves_classes_absent_from_the_batch_to_cross_entropy():
    from prrmse.models.tasks import soft_dice_loss

    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[:, 2:6, 2:6] = 2  # a T1 batch: background and myocardium only
    perfect = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float() * 20
    # near-perfect logits: the loss is near 0, however much mass the absent classes keep
    assert soft_dice_loss(perfect, labels) < 1e-3
    leaky = perfect.clone()
    leaky[:, 1] = 15.0  # absent class 1 keeps e^-5 of the mass everywhere
    assert soft_dice_loss(leaky, labels) < 0.02
    wrong = perfect.flip(1)  # present classes predicted wrong: the loss is high
    assert soft_dice_loss(wrong, labels) > 0.9
