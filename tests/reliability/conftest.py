"""Session fixtures for the bad-input suite: tiny raw phantoms, a prepared dataset, checkpoints,
a sweep, an RMSE table and a plan, all made once by the library and then damaged per case.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from prrmse.analysis.plan_models import run_plan
from prrmse.analysis.rmse import run_rmse
from prrmse.analysis.sweep.engine import run_sweep
from prrmse.analysis.sweep.replacement import SweepSettings
from prrmse.core.config import validate_config
from prrmse.core.naming import parse_model_name
from prrmse.data.phantoms import write_phantoms
from prrmse.data.prepare import prepare_dataset
from prrmse.data.settings import dataset_settings, phantoms_settings, prepare_settings
from prrmse.models.checkpoint import load_tensors, save_tensors
from prrmse.models.registry import build_model
from prrmse.training.settings import train_settings
from prrmse.training.train import train_model

torch.set_num_threads(1)

PHANTOMS = {
    "seed": 7,
    "acdc": {"n_patients": 4, "n_slices": 2, "shape": [40, 40], "spacing_mm": [2.6, 3.2]},
    "rvsc": {
        "n_train": 1,
        "n_test1": 1,
        "n_slices": 2,
        "n_phases": 2,
        "shape": [40, 40],
        "spacing_mm": [2.6, 3.2],
    },
    "t1": {"n_patients": 3, "n_slices": 1, "n_ti": 2, "shape": [40, 40], "spacing_mm": [2.6, 3.2]},
}
DATASETS = {
    "acdc": {
        "format": "acdc",
        "label_map": {0: 0, 1: 1, 2: 2, 3: 3},
        "split": {"method": "random", "n_train": 2, "n_val": 2, "seed": 1},
    },
    "rvsc": {
        "format": "rvsc",
        "label_map": {0: 0, 1: 1},
        "split": {"method": "folder", "train_folder": "TrainingSet", "val_folder": "Test1Set"},
    },
    "t1": {
        "format": "nifti_pairs",
        "label_map": {0: 0, 1: 2},
        "split": {"method": "first_last", "n_train": 2, "n_val": 1},
    },
}
NETWORKS = {
    "unet": {"arch": "unet", "options": {"width": 4}},
    "pspnet": {
        "arch": "pspnet",
        "options": {
            "conv_bias": False,
            "ppm_channels": 8,
            "bottleneck_channels": 16,
            "output_stride": 8,
        },
    },
}
TRAIN = {
    "device": "cpu",
    "epochs": 1,
    "iterations_per_epoch": 1,
    "batch_size": 2,
    "eval_batch_size": 16,
    "augment": {"flip": False, "shift_px": 0, "intensity": 0.0},
}
PLAN = {
    "rule": "both",
    "max_rel_rmse_w": 0.5,
    "max_dice_drop": dict.fromkeys(["RM", "RV", "RW", "RB", "W", "B"], 0.05),
}


def config_dict(raw: Path) -> dict:
    """The suite's config: the study's structure with every size made tiny."""
    datasets = {name: {**copy.deepcopy(d), "root": str(raw / name)} for name, d in DATASETS.items()}
    return {
        "phantoms": copy.deepcopy(PHANTOMS),
        "datasets": datasets,
        "prepare": {"spacing_mm": 3.0, "shape": [32, 32]},
        "networks": copy.deepcopy(NETWORKS),
        "train": copy.deepcopy(TRAIN),
        "analysis": {
            "sweep": {"batch_size": 16, "device": "cpu"},
            "plan": {"target": "unet-seg-acdc", "sources": ["unet-seg-acdc"], **PLAN},
        },
    }


def write_config(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass(frozen=True)
class Kit:
    """Good inputs of every entry point; cases copy and damage them, never edit them in place."""

    root: Path
    raw: Path  # raw/<acdc|rvsc|t1>
    config: Path  # config YAML whose datasets point at `raw`
    processed: Path  # prepared acdc
    unet: Path  # trained unet-seg-acdc-s1 checkpoint
    unet_b: Path  # an untrained unet of another seed (same architecture)
    pspnet: Path  # an untrained PSPNet (another architecture)
    sweep: Path  # sweep CSV: unet_b into unet
    rmse: Path  # RMSE CSV of the same pair
    plan: Path  # plan JSON of the same pair

    def config_dict(self) -> dict:
        return config_dict(self.raw)


def _save_untrained(path: Path, network: str, name: str, seed: int) -> Path:
    torch.manual_seed(seed)
    spec = NETWORKS[network]
    model = build_model(spec["arch"], **spec["options"])
    record = {
        "kind": "model",
        "name": name,
        "network": network,
        "arch": spec["arch"],
        "options": spec["options"],
        "task": "seg",
        "dataset": "acdc",
        "seed": seed,
    }
    save_tensors(path, model.state_dict(), record)
    return path


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("reliability")
    raw = root / "raw"
    config = validate_config(config_dict(raw))
    phantoms = phantoms_settings(config)
    for name in DATASETS:
        write_phantoms(name, getattr(phantoms, name), phantoms.seed, raw / name)
    config_path = write_config(root / "config.yaml", config_dict(raw))
    processed = root / "processed" / "acdc"
    prepare_dataset("acdc", dataset_settings(config, "acdc"), prepare_settings(config), processed)
    quiet = lambda _line: None  # noqa: E731
    models = root / "models"
    train_model(
        parse_model_name("unet-seg-acdc-s1"),
        train_settings(config),
        config["networks"]["unet"],
        processed,
        models / "unet-seg-acdc-s1",
        threads=1,
        log=quiet,
    )
    unet = models / "unet-seg-acdc-s1" / "model.safetensors"
    unet_b = _save_untrained(
        models / "unet-seg-acdc-s2" / "model.safetensors", "unet", "unet-seg-acdc-s2", 2
    )
    pspnet = _save_untrained(
        models / "pspnet-seg-acdc-s1" / "model.safetensors", "pspnet", "pspnet-seg-acdc-s1", 1
    )
    analysis = root / "analysis"
    sweep = analysis / "sweep.csv"
    run_sweep(unet, unet_b, processed, sweep, SweepSettings(batch_size=16, device="cpu"), log=quiet)
    rmse = analysis / "rmse.csv"
    run_rmse([unet, unet_b], rmse)
    plan = analysis / "plan.json"
    thresholds = {"max_dice_drop": PLAN["max_dice_drop"], "max_rel_rmse_w": PLAN["max_rel_rmse_w"]}
    run_plan(
        sweep,
        rmse,
        plan,
        thresholds,
        PLAN["rule"],
        "unet-seg-acdc-s1",
        "unet-seg-acdc-s2",
        network=NETWORKS["unet"],
    )
    return Kit(root, raw, config_path, processed, unet, unet_b, pspnet, sweep, rmse, plan)


def can_mount_tmpfs(probe: Path) -> bool:
    """Root in a container that allows mounts: a real tmpfs gives a real full or read-only disk."""
    if os.geteuid() != 0:
        return False
    probe.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(probe)], capture_output=True
    )
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(probe)], check=True)
    return True


class Mounts:
    """tmpfs mounts a case makes; all are unmounted when the case ends."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, point: Path, options: str) -> Path:
        point.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        self.points.append(point)
        return point

    def remount(self, point: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)

    def release(self) -> None:
        for point in reversed(self.points):
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    held = Mounts()
    yield held
    held.release()


@pytest.fixture(scope="session")
def tmpfs_ok(tmp_path_factory: pytest.TempPathFactory) -> bool:
    return can_mount_tmpfs(tmp_path_factory.mktemp("probe") / "mnt")


def copy_tensors(source: Path, target: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of a checkpoint whose tensors (and record) `edit(tensors, record)` changed in place."""
    tensors, record = load_tensors(source)
    edit(tensors, record)
    save_tensors(target, tensors, record)
    return target
