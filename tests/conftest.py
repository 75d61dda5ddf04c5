"""Shared fixtures: a tiny prepared dataset and a tiny training config."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from prrmse.core.config import validate_config

torch.set_num_threads(1)


def write_processed(
    root: Path, n_patients: int = 8, slices: int = 4, size: int = 32, seed: int = 0
) -> Path:
    """A prepared dataset of discs (LV), rings (myocardium) and crescents (RV) in noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels, rows = [], [], []
    for p in range(n_patients):
        for s in range(slices):
            cy, cx = size / 2 + rng.uniform(-3, 3, 2)
            r = rng.uniform(size / 8, size / 5)
            dist = np.hypot(yy - cy, xx - cx)
            label = np.zeros((size, size), np.uint8)
            label[(np.hypot(yy - cy, xx - cx - r * 1.6) < r * 1.2) & (dist > r * 1.4)] = 1
            label[(dist < r * 1.4)] = 2
            label[dist < r] = 3
            image = np.choose(label, [0.2, 0.5, 0.1, 0.9]) + rng.normal(0, 0.05, (size, size))
            images.append(((image - image.mean()) / image.std()).astype(np.float32))
            labels.append(label)
            rows.append(
                {
                    "patient": f"patient{p:03d}",
                    "group": "training",
                    "phase": "ED",
                    "slice": s,
                    "series": 0,
                    "split": "train" if p < n_patients * 3 // 4 else "val",
                    "image_file": "x",
                    "image_sha256": "0",
                    "label_file": "y",
                    "label_sha256": "0",
                }
            )
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", np.stack(images))
    np.save(root / "labels.npy", np.stack(labels))
    index = pd.DataFrame(rows)
    index.insert(0, "row", range(len(index)))
    index.to_csv(root / "index.csv", index=False)
    return root


TINY_CONFIG = {
    "networks": {
        "unet": {"arch": "unet", "options": {"width": 4}},
        "pspnet": {"arch": "pspnet", "options": {"conv_bias": False}},
    },
    "train": {"device": "cpu", "epochs": 2, "batch_size": 4, "lr": 0.01, "eval_batch_size": 16},
}


@pytest.fixture
def tiny_config() -> dict:
    return validate_config(copy.deepcopy(TINY_CONFIG))


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_processed(tmp_path / "processed" / "acdc")
