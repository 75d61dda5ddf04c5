"""Every bad input of the suite: each case damages a copy of the kit and says what must happen.

A case returns a Scenario: the `prrmse` command line, the file (or config key) the one-line
message must name, words the message must hold, and the outputs the command declares, none
of which may exist afterwards. The README table is made from these cases and their real
messages (see test_bad_inputs.py).
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import signal
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from prrmse.models.checkpoint import load_tensors
from tests.data.loader_fixtures import rewrite_dicom, truncate, write_singular_nifti
from tests.reliability.conftest import Kit, Mounts, config_dict, copy_tensors, write_config


@dataclass(frozen=True)
class Scenario:
    argv: list[str]
    where: str | Path  # the file or config key the message must name
    words: tuple[str, ...]  # what the message must say about it
    outputs: tuple[Path, ...]  # declared outputs: none may exist afterwards
    exit_code: int = 1
    # Run as a real process (the console entry point) with this preexec_fn, not in-process.
    preexec: Callable[[], None] | None = None
    subprocess: bool = False


@dataclass(frozen=True)
class Env:
    kit: Kit
    tmp: Path
    mounts: Mounts
    tmpfs_ok: bool


@dataclass(frozen=True)
class Case:
    name: str
    entry: str  # raw data, processed data, config, checkpoint, plan, CLI arguments, output
    bad_input: str
    make: Callable[[Env], Scenario] = field(repr=False)


CASES: list[Case] = []


def case(
    entry: str, bad_input: str
) -> Callable[[Callable[[Env], Scenario]], Callable[[Env], Scenario]]:
    def register(make: Callable[[Env], Scenario]) -> Callable[[Env], Scenario]:
        CASES.append(Case(make.__name__, entry, bad_input, make))
        return make

    return register


# ---------------------------------------------------------------- helpers


def raw_copy(env: Env, dataset: str) -> Path:
    """A private copy of one raw phantom dataset."""
    target = env.tmp / "raw" / dataset
    shutil.copytree(env.kit.raw / dataset, target, symlinks=True)
    return target


def config_with(
    env: Env, edit: Callable[[dict], None] | None = None, raw: Path | None = None
) -> Path:
    """The kit's config, its datasets pointing at `raw` (default: the kit's), edited."""
    config = config_dict(raw if raw is not None else env.kit.raw)
    if edit is not None:
        edit(config)
    return write_config(env.tmp / "config.yaml", config)


def prepare(
    env: Env,
    dataset: str,
    where: str | Path,
    *words: str,
    config: Path | None = None,
    out: Path | None = None,
) -> Scenario:
    config = config or config_with(env, raw=env.tmp / "raw")
    out = out or env.tmp / "processed" / dataset
    argv = ["prepare", "--config", str(config), "--dataset", dataset, "--out", str(out)]
    return Scenario(argv, where, words, (out,))


def acdc_frame(raw: Path, label: bool = False) -> Path:
    patient = raw / "training" / "patient001"
    return patient / f"patient001_frame01{'_gt' if label else ''}.nii.gz"


def contoured_dicom(raw: Path) -> tuple[Path, Path]:
    """The first i-contour of the training set and its DICOM image."""
    contours = sorted((raw / "TrainingSet").rglob("*-icontour-manual.txt"))
    contour = contours[0]
    stem = contour.name.removesuffix("-icontour-manual.txt")
    dicom = next((raw / "TrainingSet").rglob(f"{stem}.dcm"))
    return contour, dicom


def flip_byte(path: Path, offset: int, mask: int = 0x10) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))
    return path


def flip_damaging_bit(path: Path) -> Path:
    """Flip one bit from the middle of a .gz on, the first that changes what it decompresses to.

    A flip in an unused Huffman code length changes nothing: that file is not damaged.
    """
    original = path.read_bytes()
    clean = gzip.decompress(original)
    for offset in range(len(original) // 2, len(original) - 8):
        data = bytearray(original)
        data[offset] ^= 0x10
        try:
            changed = gzip.decompress(bytes(data)) != clean
        except (OSError, EOFError, zlib.error):
            changed = True
        if changed:
            path.write_bytes(bytes(data))
            return path
    raise AssertionError(f"no damaging bit flip found in {path}")


def train_argv(env: Env, data: Path, model: str = "unet-seg-acdc-s1", config: Path | None = None):
    out = env.tmp / "models" / model
    argv = [
        "train",
        "--config",
        str(config or env.kit.config),
        "--model",
        model,
        "--data",
        str(data),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    return argv, tuple(out / name for name in ("model.safetensors", "metrics.json", "history.csv"))


def processed_copy(env: Env) -> Path:
    target = env.tmp / "processed" / "acdc"
    shutil.copytree(env.kit.processed, target)
    return target


def sweep_argv(
    env: Env, target: Path, source: Path, data: Path | None = None
) -> tuple[list[str], Path]:
    out = env.tmp / "analysis" / "sweep.csv"
    argv = [
        "sweep",
        "--config",
        str(env.kit.config),
        "--target-checkpoint",
        str(target),
        "--source-checkpoint",
        str(source),
        "--data",
        str(data or env.kit.processed),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    return argv, out


def rmse_scenario(env: Env, bad: Path, *words: str, out: Path | None = None) -> Scenario:
    out = out or env.tmp / "analysis" / "rmse.csv"
    argv = ["rmse", "--checkpoints", str(env.kit.unet), str(bad), "--out", str(out)]
    return Scenario(argv, bad, words, (out,))


def forged_header(
    source: Path, target: Path, forge: Callable[[int, bytes], tuple[int, bytes]]
) -> Path:
    """A safetensors copy whose (length, header JSON) `forge` rewrote; tensor bytes unchanged."""
    raw = source.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    new_length, header = forge(length, raw[8 : 8 + length])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(struct.pack("<Q", new_length) + header + raw[8 + length :])
    return target


def same_length(header: dict, length: int) -> bytes:
    """Header JSON padded with spaces to `length` bytes, as safetensors pads its own."""
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length
    return text + b" " * (length - len(text))


def reuse_argv(env: Env, run: str, source: Path, plan: Path) -> tuple[list[str], tuple[Path, ...]]:
    out = env.tmp / "reuse" / run
    argv = [
        "reuse",
        "--config",
        str(env.kit.config),
        "--run",
        run,
        "--source-checkpoint",
        str(source),
        "--plan",
        str(plan),
        "--data",
        str(env.kit.processed),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    return argv, tuple(out / name for name in ("model.safetensors", "metrics.json", "history.csv"))


def plan_argv(
    env: Env,
    sweep: Path,
    rmse: Path,
    target: str = "unet-seg-acdc-s1",
    source: str = "unet-seg-acdc-s2",
) -> tuple[list[str], Path]:
    out = env.tmp / "plans" / "plan.json"
    argv = [
        "plan",
        "--config",
        str(env.kit.config),
        "--sweep",
        str(sweep),
        "--rmse",
        str(rmse),
        "--target-model",
        target,
        "--source-model",
        source,
        "--out",
        str(out),
    ]
    return argv, out


# ---------------------------------------------------------------- raw data (prepare)


@case("raw data", "truncated .nii.gz image (ACDC, half the bytes)")
def truncated_nifti(env: Env) -> Scenario:
    bad = truncate(acdc_frame(raw_copy(env, "acdc")), 0.5)
    return prepare(env, "acdc", bad, "cannot read NIfTI file")


@case(
    "raw data",
    "bit-flipped .nii.gz image (ACDC, one bit in the deflate stream; nibabel alone reads it)",
)
def bitflipped_nifti(env: Env) -> Scenario:
    bad = acdc_frame(raw_copy(env, "acdc"))
    flip_damaging_bit(bad)
    return prepare(env, "acdc", bad, "cannot read NIfTI file")


@case("raw data", "truncated .nii.gz label (T1 paired NIfTI)")
def truncated_nifti_pair(env: Env) -> Scenario:
    bad = truncate(raw_copy(env, "t1") / "patient002_gt.nii.gz", 0.3)
    return prepare(env, "t1", bad, "cannot read NIfTI file")


@case("raw data", ".nii.gz that is not gzip at all (a text file)")
def not_gzip_nifti(env: Env) -> Scenario:
    bad = raw_copy(env, "t1") / "patient001.nii.gz"
    bad.write_text("this is not a NIfTI file\n")
    return prepare(env, "t1", bad, "cannot read NIfTI file")


@case("raw data", "truncated DICOM (RVSC, 60% of the bytes)")
def truncated_dicom(env: Env) -> Scenario:
    _, bad = contoured_dicom(raw_copy(env, "rvsc"))
    truncate(bad, 0.6)
    return prepare(env, "rvsc", bad, "pixel data")


@case("raw data", "bit-flipped DICOM (RVSC, one bit of the DICM magic)")
def bitflipped_dicom(env: Env) -> Scenario:
    _, bad = contoured_dicom(raw_copy(env, "rvsc"))
    flip_byte(bad, 129, 0x01)
    return prepare(env, "rvsc", bad, "not a readable DICOM file")


@case("raw data", "DICOM with JPEG-LS compressed pixel data and no decoder installed")
def compressed_dicom(env: Env) -> Scenario:
    _, bad = contoured_dicom(raw_copy(env, "rvsc"))
    rewrite_dicom(bad, compressed=True)
    return prepare(env, "rvsc", bad, "cannot decode pixel data", "JPEG-LS")


@case("raw data", "DICOM without pixel data")
def dicom_without_pixels(env: Env) -> Scenario:
    _, bad = contoured_dicom(raw_copy(env, "rvsc"))
    rewrite_dicom(bad, drop_pixels=True)
    return prepare(env, "rvsc", bad, "without pixel data")


@case("raw data", "NIfTI image whose affine is singular (zero voxel size)")
def singular_affine(env: Env) -> Scenario:
    bad = acdc_frame(raw_copy(env, "acdc"))
    data = np.asarray(nib.load(bad).dataobj)
    write_singular_nifti(bad, data)
    return prepare(env, "acdc", bad, "singular affine")


@case("raw data", "RVSC contour with points outside the image")
def contour_outside(env: Env) -> Scenario:
    bad, _ = contoured_dicom(raw_copy(env, "rvsc"))
    bad.write_text("10 10\n500 12\n20 300\n")
    return prepare(env, "rvsc", bad, "contour points outside")


@case("raw data", "RVSC contour with a line that is not 'x y'")
def contour_garbage(env: Env) -> Scenario:
    bad, _ = contoured_dicom(raw_copy(env, "rvsc"))
    bad.write_text("10 10\n12 oops\n20 30\n")
    return prepare(env, "rvsc", bad, "line 2 is not 'x y'")


@case("raw data", "label volume with values 0..255 (outside the label map)")
def labels_0_to_255(env: Env) -> Scenario:
    bad = acdc_frame(raw_copy(env, "acdc"), label=True)
    image = nib.load(bad)
    # Column-major, so each slice holds every value 0..255.
    values = (
        (np.arange(np.prod(image.shape)) % 256).reshape(image.shape, order="F").astype(np.uint8)
    )
    nib.save(nib.Nifti1Image(values, image.affine), bad)
    return prepare(env, "acdc", bad, "label values [4, 5, 6", "not in the label map")


@case("raw data", "empty raw folder (ACDC format)")
def empty_folder_acdc(env: Env) -> Scenario:
    root = env.tmp / "raw" / "acdc"
    root.mkdir(parents=True)
    return prepare(env, "acdc", root, "no patientNNN folders found")


@case("raw data", "empty raw folder (paired NIfTI format)")
def empty_folder_nifti(env: Env) -> Scenario:
    root = env.tmp / "raw" / "t1"
    root.mkdir(parents=True)
    return prepare(env, "t1", root, "no image/label pairs found")


@case("raw data", "raw root that is a symlink loop")
def symlink_loop_root(env: Env) -> Scenario:
    root = env.tmp / "raw" / "rvsc"
    root.parent.mkdir(parents=True)
    root.symlink_to(root)
    return prepare(env, "rvsc", root, "symlink loop")


@case("raw data", "raw root that does not exist")
def missing_root(env: Env) -> Scenario:
    return prepare(env, "acdc", env.tmp / "raw" / "acdc", "data folder not found")


@case("raw data", "NaN voxel in a float NIfTI image (T1)")
def nan_in_image(env: Env) -> Scenario:
    bad = raw_copy(env, "t1") / "patient001.nii.gz"
    image = nib.load(bad)
    data = np.asarray(image.dataobj, dtype=np.float32)
    data[1, 2, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine, image.header), bad)
    return prepare(env, "t1", bad, "NaN")


@case("raw data", "image and label volumes of different shapes")
def shape_mismatch(env: Env) -> Scenario:
    bad = acdc_frame(raw_copy(env, "acdc"), label=True)
    image = nib.load(bad)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:-3], image.affine, image.header), bad)
    return prepare(env, "acdc", bad, "does not match image shape")


@case("raw data", "Info.cfg whose ES frame is not a number")
def bad_info_cfg(env: Env) -> Scenario:
    bad = raw_copy(env, "acdc") / "training" / "patient002" / "Info.cfg"
    bad.write_text(bad.read_text().replace("ES: ", "ES: x"))
    return prepare(env, "acdc", bad, "ES is not an integer")


@case("raw data", "paired NIfTI label without its image")
def label_without_image(env: Env) -> Scenario:
    raw = raw_copy(env, "t1")
    (raw / "patient003.nii.gz").unlink()
    return prepare(env, "t1", raw / "patient003_gt.nii.gz", "label without its image")


@case("raw data", "empty split: the val folder named by the config has no patients")
def empty_split(env: Env) -> Scenario:
    raw = raw_copy(env, "rvsc")

    def edit(config: dict) -> None:
        config["datasets"]["rvsc"]["split"]["val_folder"] = "Test2Set"

    return prepare(
        env, "rvsc", raw, "split 'val' is empty", config=config_with(env, edit, env.tmp / "raw")
    )


@case("raw data", "ACDC root holding more patients than the protocol expects (training + testing)")
def acdc_more_patients(env: Env) -> Scenario:
    raw = raw_copy(env, "acdc")
    shutil.copytree(raw / "training" / "patient001", raw / "testing" / "patient101")

    def edit(config: dict) -> None:
        config["datasets"]["acdc"]["expected_patients"] = 4

    config = config_with(env, edit, env.tmp / "raw")
    return prepare(
        env, "acdc", raw, "5 patientNNN folders found", "expected_patients is 4", config=config
    )


@case("raw data", "T1 root holding fewer patients than the protocol expects")
def t1_fewer_patients(env: Env) -> Scenario:
    raw = raw_copy(env, "t1")

    def edit(config: dict) -> None:
        config["datasets"]["t1"]["expected_patients"] = 210

    config = config_with(env, edit, env.tmp / "raw")
    return prepare(
        env, "t1", raw, "3 patients found", "datasets.t1.expected_patients is 210", config=config
    )


@case("raw data", "two T1 files that map to one patient (a rescan beside the original)")
def t1_two_files_one_patient(env: Env) -> Scenario:
    raw = raw_copy(env, "t1")
    for suffix in (".nii.gz", "_gt.nii.gz"):
        shutil.copy(raw / f"patient002{suffix}", raw / f"patient002_rescan{suffix}")

    def edit(config: dict) -> None:
        config["datasets"]["t1"]["patient_id"] = "patient([0-9]+)"

    config = config_with(env, edit, env.tmp / "raw")
    return prepare(
        env,
        "t1",
        raw / "patient002_rescan.nii.gz",
        "maps to patient '002'",
        str(raw / "patient002.nii.gz"),
        config=config,
    )


# ---------------------------------------------------------------- config


@case("config", "typo in a key (train.epoch for train.epochs)")
def config_typo(env: Env) -> Scenario:
    config = config_with(env, lambda c: c["train"].update(epoch=3))
    argv, outputs = train_argv(env, env.kit.processed, config=config)
    return Scenario(argv, config, ("config key train", "unknown key", "'epoch'"), outputs)


@case("config", "value of the wrong type (train.epochs: 'six')")
def config_wrong_type(env: Env) -> Scenario:
    config = config_with(env, lambda c: c["train"].update(epochs="six"))
    argv, outputs = train_argv(env, env.kit.processed, config=config)
    return Scenario(
        argv, config, ("config key train.epochs", "'six' is not of type 'integer'"), outputs
    )


@case("config", "label map sending a raw label outside the 4 classes")
def config_label_map(env: Env) -> Scenario:
    config = config_with(env, lambda c: c["datasets"]["acdc"]["label_map"].update({3: 9}))
    return prepare(env, "acdc", config, "config key datasets.acdc.label_map", config=config)


@case("config", "unknown dataset format")
def config_unknown_format(env: Env) -> Scenario:
    config = config_with(env, lambda c: c["datasets"]["acdc"].update(format="mnms"))
    return prepare(env, "acdc", config, "config key datasets.acdc.format", "'mnms'", config=config)


@case("config", "invalid YAML")
def config_bad_yaml(env: Env) -> Scenario:
    config = env.tmp / "config.yaml"
    config.write_text("train: {epochs: 2\nnetworks: [\n")
    return prepare(env, "acdc", config, "not valid YAML", config=config)


@case("config", "config that is a list, not a mapping")
def config_not_mapping(env: Env) -> Scenario:
    config = env.tmp / "config.yaml"
    config.write_text("- train\n- networks\n")
    return prepare(env, "acdc", config, "config must be a mapping", config=config)


@case("config", "missing config file")
def config_missing(env: Env) -> Scenario:
    config = env.tmp / "nowhere.yaml"
    return prepare(env, "acdc", config, "config file not found", config=config)


@case("config", "unknown dataset name (prepare --dataset kaggle)")
def unknown_dataset(env: Env) -> Scenario:
    return prepare(env, "kaggle", env.kit.config, "unknown dataset 'kaggle'", config=env.kit.config)


@case("config", "unknown network name (train --model resnet-seg-acdc-s1)")
def unknown_network(env: Env) -> Scenario:
    argv, outputs = train_argv(env, env.kit.processed, model="resnet-seg-acdc-s1")
    return Scenario(argv, "model resnet-seg-acdc-s1", ("unknown network 'resnet'",), outputs)


@case("config", "phantoms for an unknown dataset (phantoms --dataset mnms)")
def unknown_phantoms(env: Env) -> Scenario:
    out = env.tmp / "raw" / "mnms"
    argv = ["phantoms", "--config", str(env.kit.config), "--dataset", "mnms", "--out", str(out)]
    return Scenario(argv, env.kit.config, ("no phantom generator for 'mnms'",), (out,))


@case("config", "site file naming an unknown key (train.epoch in config/site.yaml)")
def site_unknown_key(env: Env) -> Scenario:
    config = config_with(env, lambda c: c.update(site="site.yaml"))
    site = config.parent / "site.yaml"
    site.write_text("train: {epoch: 3}\n")
    argv, outputs = train_argv(env, env.kit.processed, config=config)
    return Scenario(argv, site, ("config key train", "unknown key", "'epoch'"), outputs)


# ---------------------------------------------------------------- processed data


@case("processed data", "images.npy stored as int64")
def images_int64(env: Env) -> Scenario:
    data = processed_copy(env)
    images = np.load(data / "images.npy")
    np.save(data / "images.npy", images.astype(np.int64))
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data / "images.npy", ("expected a 3-D float32 array", "int64"), outputs)


@case("processed data", "labels.npy holding class 7")
def labels_out_of_range(env: Env) -> Scenario:
    data = processed_copy(env)
    labels = np.load(data / "labels.npy")
    labels[0, 0, 0] = 7
    np.save(data / "labels.npy", labels)
    argv, out = sweep_argv(env, env.kit.unet, env.kit.unet_b, data)
    return Scenario(argv, data / "labels.npy", ("label 7 outside the classes 0..3",), (out,))


@case("processed data", "NaN in images.npy")
def nan_in_processed(env: Env) -> Scenario:
    data = processed_copy(env)
    images = np.load(data / "images.npy")
    images[-1, 5, 5] = np.nan
    np.save(data / "images.npy", images)
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data / "images.npy", ("NaN",), outputs)


@case("processed data", "images.npy holding pickled Python objects (never unpickled)")
def pickled_processed(env: Env) -> Scenario:
    data = processed_copy(env)
    np.save(data / "images.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    argv, out = sweep_argv(env, env.kit.unet, env.kit.unet_b, data)
    return Scenario(
        argv, data / "images.npy", ("not a readable .npy array", "Python objects"), (out,)
    )


@case("processed data", "truncated images.npy")
def truncated_processed(env: Env) -> Scenario:
    data = processed_copy(env)
    truncate(data / "images.npy", 0.5)
    argv, out = sweep_argv(env, env.kit.unet, env.kit.unet_b, data)
    return Scenario(argv, data / "images.npy", ("not a readable .npy array",), (out,))


@case("processed data", "index.csv without its split column")
def index_missing_column(env: Env) -> Scenario:
    data = processed_copy(env)
    index = pd.read_csv(data / "index.csv")
    index.drop(columns="split").to_csv(data / "index.csv", index=False)
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data / "index.csv", ("index lacks columns ['split']",), outputs)


@case("processed data", "index.csv with fewer rows than the arrays")
def index_short(env: Env) -> Scenario:
    data = processed_copy(env)
    index = pd.read_csv(data / "index.csv")
    index.iloc[:-1].to_csv(data / "index.csv", index=False)
    argv, out = sweep_argv(env, env.kit.unet, env.kit.unet_b, data)
    return Scenario(argv, data / "index.csv", ("numbered differently",), (out,))


@case("processed data", "empty validation split (train)")
def empty_val_split_train(env: Env) -> Scenario:
    data = processed_copy(env)
    index = pd.read_csv(data / "index.csv")
    index.assign(split="train").to_csv(data / "index.csv", index=False)
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data, ("validation split is empty",), outputs)


@case("processed data", "empty training split (train)")
def empty_train_split(env: Env) -> Scenario:
    data = processed_copy(env)
    index = pd.read_csv(data / "index.csv")
    index.assign(split="val").to_csv(data / "index.csv", index=False)
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data, ("0 training slices",), outputs)


@case("processed data", "empty validation split (sweep)")
def empty_val_split_sweep(env: Env) -> Scenario:
    data = processed_copy(env)
    index = pd.read_csv(data / "index.csv")
    index.assign(split="train").to_csv(data / "index.csv", index=False)
    argv, out = sweep_argv(env, env.kit.unet, env.kit.unet_b, data)
    return Scenario(argv, data / "index.csv", ("val split is empty",), (out,))


@case("processed data", "unknown split name in index.csv")
def unknown_split(env: Env) -> Scenario:
    data = processed_copy(env)
    index = pd.read_csv(data / "index.csv")
    index.assign(split="test").to_csv(data / "index.csv", index=False)
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data / "index.csv", ("unknown split names ['test']",), outputs)


@case("processed data", "processed folder that does not exist")
def processed_missing(env: Env) -> Scenario:
    data = env.tmp / "processed" / "acdc"
    argv, outputs = train_argv(env, data)
    return Scenario(argv, data, ("processed dataset folder not found",), outputs)


# ---------------------------------------------------------------- checkpoints


@case("checkpoint", "truncated safetensors checkpoint")
def truncated_checkpoint(env: Env) -> Scenario:
    bad = env.tmp / "bad" / "model.safetensors"
    bad.parent.mkdir()
    shutil.copy(env.kit.unet_b, bad)
    truncate(bad, 0.7)
    return rmse_scenario(env, bad, "not a readable safetensors checkpoint")


@case("checkpoint", "forged safetensors header: length field pointing past the end")
def forged_length(env: Env) -> Scenario:
    size = env.kit.unet_b.stat().st_size
    bad = forged_header(
        env.kit.unet_b,
        env.tmp / "bad" / "model.safetensors",
        lambda _n, header: (size + 1000, header),
    )
    return rmse_scenario(env, bad, "not a readable safetensors checkpoint")


@case("checkpoint", "forged safetensors header: invalid JSON")
def forged_json(env: Env) -> Scenario:
    def forge(length: int, header: bytes) -> tuple[int, bytes]:
        return length, b"{'not': json" + header[12:]

    bad = forged_header(env.kit.unet_b, env.tmp / "bad" / "model.safetensors", forge)
    argv, out = sweep_argv(env, env.kit.unet, bad)
    return Scenario(argv, bad, ("not a readable safetensors checkpoint",), (out,))


@case("checkpoint", "forged safetensors header: two tensors' data offsets overlap")
def forged_overlap(env: Env) -> Scenario:
    def forge(length: int, header: bytes) -> tuple[int, bytes]:
        entries = json.loads(header)
        names = [name for name in entries if name != "__metadata__"]
        first, second = sorted(names, key=lambda name: entries[name]["data_offsets"][0])[:2]
        begin = entries[first]["data_offsets"][0]
        size = entries[second]["data_offsets"][1] - entries[second]["data_offsets"][0]
        entries[second]["data_offsets"] = [begin, begin + size]
        return length, same_length(entries, length)

    bad = forged_header(env.kit.unet_b, env.tmp / "bad" / "model.safetensors", forge)
    out = env.tmp / "analysis" / "bnstats.csv"
    argv = [
        "bnstats",
        "--target-checkpoint",
        str(env.kit.unet),
        "--source-checkpoint",
        str(bad),
        "--out",
        str(out),
    ]
    return Scenario(argv, bad, ("not a readable safetensors checkpoint",), (out,))


@case("checkpoint", "checkpoint with an extra tensor")
def extra_tensor(env: Env) -> Scenario:
    bad = copy_tensors(
        env.kit.unet_b,
        env.tmp / "bad" / "model.safetensors",
        lambda tensors, _record: tensors.update(stray=torch.zeros(3)),
    )
    return rmse_scenario(env, bad, "unexpected ['stray']")


@case("checkpoint", "checkpoint with a missing tensor")
def missing_tensor(env: Env) -> Scenario:
    def drop(tensors: dict, _record: dict) -> None:
        del tensors[sorted(tensors)[0]]

    bad = copy_tensors(env.kit.unet_b, env.tmp / "bad" / "model.safetensors", drop)
    argv, out = sweep_argv(env, bad, env.kit.unet)
    return Scenario(argv, bad, ("tensors do not match architecture 'unet'", "missing ["), (out,))


@case("checkpoint", "checkpoint with a float16 tensor")
def float16_tensor(env: Env) -> Scenario:
    def halve(tensors: dict, _record: dict) -> None:
        name = next(n for n, t in sorted(tensors.items()) if t.is_floating_point())
        tensors[name] = tensors[name].half()

    bad = copy_tensors(env.kit.unet_b, env.tmp / "bad" / "model.safetensors", halve)
    return rmse_scenario(env, bad, "float16", "float32")


@case("checkpoint", "checkpoint with a NaN weight")
def nan_tensor(env: Env) -> Scenario:
    def poison(tensors: dict, _record: dict) -> None:
        name = next(n for n, t in sorted(tensors.items()) if t.is_floating_point())
        tensors[name].view(-1)[0] = float("nan")

    bad = copy_tensors(env.kit.unet_b, env.tmp / "bad" / "model.safetensors", poison)
    argv, out = sweep_argv(env, env.kit.unet, bad)
    return Scenario(argv, bad, ("NaN",), (out,))


@case("checkpoint", "checkpoint tensor of the wrong shape (another width)")
def wrong_shape_tensor(env: Env) -> Scenario:
    def widen(tensors: dict, _record: dict) -> None:
        name = next(n for n, t in sorted(tensors.items()) if t.ndim == 4)
        tensors[name] = torch.zeros(tensors[name].shape[0] + 1, *tensors[name].shape[1:])

    bad = copy_tensors(env.kit.unet_b, env.tmp / "bad" / "model.safetensors", widen)
    return rmse_scenario(env, bad, "expected shape")


@case("checkpoint", "a pickled torch.save file named .safetensors (never unpickled)")
def pickle_checkpoint(env: Env) -> Scenario:
    bad = env.tmp / "bad" / "model.safetensors"
    bad.parent.mkdir()
    torch.save({"weight": torch.zeros(2)}, bad)
    return rmse_scenario(env, bad, "not a readable safetensors checkpoint")


@case("checkpoint", "safetensors file without the prrmse record")
def foreign_safetensors(env: Env) -> Scenario:
    from safetensors.torch import save_file

    bad = env.tmp / "bad" / "model.safetensors"
    bad.parent.mkdir()
    save_file({"weight": torch.zeros(2)}, str(bad))
    return rmse_scenario(env, bad, "lacks prrmse metadata")


@case("checkpoint", "checkpoint recording an architecture that does not exist")
def unknown_recorded_arch(env: Env) -> Scenario:
    bad = copy_tensors(
        env.kit.unet_b,
        env.tmp / "bad" / "model.safetensors",
        lambda _tensors, record: record.update(arch="resnet9000"),
    )
    return rmse_scenario(env, bad, "records resnet9000: unknown network")


@case("checkpoint", "checkpoint whose prrmse record is a JSON list, not an object")
def record_not_object(env: Env) -> Scenario:
    from safetensors.torch import save_file

    tensors, _ = load_tensors(env.kit.unet_b)
    bad = env.tmp / "bad" / "model.safetensors"
    bad.parent.mkdir()
    save_file(tensors, str(bad), metadata={"prrmse": "[1, 2]"})
    return rmse_scenario(env, bad, "metadata is a JSON list, not an object")


@case("checkpoint", "checkpoint that does not exist")
def missing_checkpoint(env: Env) -> Scenario:
    return rmse_scenario(env, env.tmp / "nowhere" / "model.safetensors", "checkpoint not found")


@case("checkpoint", "sweep whose target and source architectures differ (UNet vs PSPNet)")
def sweep_other_architecture(env: Env) -> Scenario:
    argv, out = sweep_argv(env, env.kit.unet, env.kit.pspnet)
    return Scenario(
        argv, env.kit.pspnet, ("different architectures: pspnet (source) vs unet",), (out,)
    )


@case("checkpoint", "BN statistics of two architectures (UNet vs PSPNet)")
def bnstats_other_architecture(env: Env) -> Scenario:
    out = env.tmp / "analysis" / "bnstats.csv"
    argv = [
        "bnstats",
        "--target-checkpoint",
        str(env.kit.unet),
        "--source-checkpoint",
        str(env.kit.pspnet),
        "--out",
        str(out),
    ]
    return Scenario(argv, env.kit.pspnet, ("do not correspond",), (out,))


@case("checkpoint", "corrupt training state left in a run folder (train resume)")
def corrupt_resume_state(env: Env) -> Scenario:
    argv, outputs = train_argv(env, env.kit.processed)
    state = outputs[0].parent / "state.safetensors"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"\x00" * 100)
    return Scenario(argv, state, ("not a readable safetensors checkpoint",), outputs)


class NotATensor:
    """Pickled by reference into a .pth: torch.load(weights_only=True) must refuse it."""


def import_weights_argv(env: Env, pth: Path) -> tuple[list[str], tuple[Path, ...]]:
    out = env.tmp / "encoders" / "resnet18-imagenet.safetensors"
    argv = [
        "import-weights",
        "--config",
        str(env.kit.config),
        "--network",
        "pspnet",
        "--pth",
        str(pth),
        "--out",
        str(out),
    ]
    return argv, (out,)


@case("checkpoint", "encoder weights that are not a ResNet-18 state dict (the UNet's tensors)")
def import_not_resnet18(env: Env) -> Scenario:
    tensors, _ = load_tensors(env.kit.unet)
    pth = env.tmp / "unet.pth"
    torch.save(tensors, pth)
    argv, outputs = import_weights_argv(env, pth)
    return Scenario(argv, pth, ("not a torchvision ResNet-18 state dict", "missing"), outputs)


@case("checkpoint", "encoder weights holding a pickle that is not plain tensors (a class instance)")
def import_not_plain_tensors(env: Env) -> Scenario:
    pth = env.tmp / "resnet18.pth"
    torch.save({"conv1.weight": NotATensor()}, pth)
    argv, outputs = import_weights_argv(env, pth)
    words = ("torch.load(weights_only=True) refused", "NotATensor")
    return Scenario(argv, pth, words, outputs)


# ---------------------------------------------------------------- plans and tables


@case("plans and tables", "plan JSON made for another architecture (UNet plan, PSPNet target)")
def plan_other_architecture(env: Env) -> Scenario:
    argv, outputs = reuse_argv(
        env, "pspnet-seg-acdc-s1-freeze-from-unet-seg-acdc", env.kit.unet, env.kit.plan
    )
    return Scenario(argv, env.kit.plan, ("plan made for another architecture",), outputs)


@case("plans and tables", "plan JSON with an unknown kind")
def plan_unknown_kind(env: Env) -> Scenario:
    plan = json.loads(env.kit.plan.read_text())
    plan["entries"][0]["kind"] = "XX"
    bad = env.tmp / "bad" / "plan.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(plan))
    argv, outputs = reuse_argv(
        env, "unet-seg-acdc-s1-freeze-from-unet-seg-acdc", env.kit.unet_b, bad
    )
    return Scenario(argv, bad, ("entry 1: no kind 'XX'",), outputs)


@case("plans and tables", "truncated plan JSON")
def plan_truncated(env: Env) -> Scenario:
    bad = env.tmp / "bad" / "plan.json"
    bad.parent.mkdir()
    shutil.copy(env.kit.plan, bad)
    truncate(bad, 0.5)
    argv, outputs = reuse_argv(
        env, "unet-seg-acdc-s1-freeze-from-unet-seg-acdc", env.kit.unet_b, bad
    )
    return Scenario(argv, bad, ("not valid JSON",), outputs)


@case("plans and tables", "reuse source of another architecture than the plan's target")
def reuse_source_other_architecture(env: Env) -> Scenario:
    argv, outputs = reuse_argv(
        env, "unet-seg-acdc-s1-freeze-from-pspnet-seg-acdc", env.kit.pspnet, env.kit.plan
    )
    return Scenario(argv, env.kit.pspnet, ("source of another architecture",), outputs)


@case("plans and tables", "reuse run name without <mode>-from-<source>")
def reuse_bad_run_name(env: Env) -> Scenario:
    argv, outputs = reuse_argv(
        env, "unet-seg-acdc-s1-thaw-from-unet-seg-acdc", env.kit.unet_b, env.kit.plan
    )
    return Scenario(
        argv, "unet-seg-acdc-s1-thaw-from-unet-seg-acdc", ("model name must read",), outputs
    )


@case("plans and tables", "sweep CSV of another target/source pair")
def plan_wrong_pair(env: Env) -> Scenario:
    argv, out = plan_argv(env, env.kit.sweep, env.kit.rmse, target="unet-seg-acdc-s9")
    return Scenario(argv, env.kit.sweep, ("made for target",), (out,))


@case("plans and tables", "RMSE CSV that is binary garbage")
def plan_binary_rmse(env: Env) -> Scenario:
    bad = env.tmp / "bad" / "rmse.csv"
    bad.parent.mkdir()
    bad.write_bytes(bytes(range(256)) * 8)
    argv, out = plan_argv(env, env.kit.sweep, bad)
    return Scenario(argv, bad, ("missing columns",), (out,))


@case("plans and tables", "empty sweep CSV")
def plan_empty_sweep(env: Env) -> Scenario:
    bad = env.tmp / "bad" / "sweep.csv"
    bad.parent.mkdir()
    bad.write_text("")
    argv, out = plan_argv(env, bad, env.kit.rmse)
    return Scenario(argv, bad, ("not a readable CSV",), (out,))


@case("plans and tables", "figure input table that does not exist (figure 13)")
def figure_input_missing(env: Env) -> Scenario:
    missing = env.tmp / "analysis" / "rmse_to_ideal.csv"
    out = env.tmp / "figures" / "fig13"
    argv = ["figure", "--number", "13", "--inputs", str(missing), "--out", str(out)]
    return Scenario(argv, missing, (), (out.with_suffix(".png"), out.with_suffix(".pdf")))


@case("plans and tables", "baseline table from a metrics.json that is not JSON")
def table_bad_metrics(env: Env) -> Scenario:
    bad = env.tmp / "bad" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text("{dice: [0.9,")
    out = env.tmp / "tables" / "baseline"
    argv = ["table", "--kind", "baseline", "--inputs", str(bad), "--out", str(out)]
    suffixes = (".csv", ".md", ".tex")
    return Scenario(argv, bad, ("not valid JSON",), tuple(out.with_suffix(s) for s in suffixes))


# ---------------------------------------------------------------- CLI arguments


@case("CLI arguments", "--threads that is not a number")
def cli_bad_threads(env: Env) -> Scenario:
    argv, outputs = train_argv(env, env.kit.processed)
    argv[-1] = "many"
    return Scenario(
        argv, "argument --threads", ("invalid int value: 'many'",), outputs, exit_code=2
    )


@case("CLI arguments", "a required argument left out (rmse without --out)")
def cli_missing_argument(env: Env) -> Scenario:
    argv = ["rmse", "--checkpoints", str(env.kit.unet), str(env.kit.unet_b)]
    return Scenario(argv, "--out", ("the following arguments are required",), (), exit_code=2)


@case("CLI arguments", "an unknown verb")
def cli_unknown_verb(env: Env) -> Scenario:
    return Scenario(["trian", "--model", "x"], "trian", ("invalid choice",), (), exit_code=2)


@case("CLI arguments", "a figure number the paper does not have")
def cli_unknown_figure(env: Env) -> Scenario:
    out = env.tmp / "figures" / "fig99"
    argv = ["figure", "--number", "99", "--inputs", str(env.kit.sweep), "--out", str(out)]
    return Scenario(
        argv, "figure 99", ("no such figure",), (out.with_suffix(".png"), out.with_suffix(".pdf"))
    )


@case("CLI arguments", "a model name that does not follow the naming scheme")
def cli_bad_model_name(env: Env) -> Scenario:
    argv, outputs = train_argv(env, env.kit.processed, model="unet_seg")
    return Scenario(argv, "unet_seg", ("model name must read",), outputs)


@case("CLI arguments", "rmse of a single checkpoint")
def cli_one_model(env: Env) -> Scenario:
    out = env.tmp / "analysis" / "rmse.csv"
    argv = ["rmse", "--checkpoints", str(env.kit.unet), "--out", str(out)]
    return Scenario(argv, "rmse", ("needs at least two checkpoints",), (out,))


# ---------------------------------------------------------------- output folders


@case("output", "read-only output folder")
def read_only_output(env: Env) -> Scenario:
    folder = env.tmp / "readonly"
    if env.tmpfs_ok:
        env.mounts.tmpfs(folder, "size=64k,ro")
    elif os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
    else:
        pytest.skip("root without mount rights: no way to make a folder read-only")
    out = folder / "rmse.csv"
    argv = ["rmse", "--checkpoints", str(env.kit.unet), str(env.kit.unet_b), "--out", str(out)]
    return Scenario(argv, folder, ("not writable",), (out,))


@case("output", "output path below a regular file")
def output_below_file(env: Env) -> Scenario:
    blocker = env.tmp / "analysis"
    blocker.write_text("a file where a folder should be\n")
    out = blocker / "rmse.csv"
    argv = ["rmse", "--checkpoints", str(env.kit.unet), str(env.kit.unet_b), "--out", str(out)]
    return Scenario(argv, blocker, ("output folder expected, found a file",), (out,))


def _full_tmpfs(env: Env, name: str) -> Path:
    """A real tmpfs filled to the last byte."""
    if not env.tmpfs_ok:
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE case covers writes")
    folder = env.mounts.tmpfs(env.tmp / name, "size=256k")
    filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: the disk is full
        pass
    finally:
        os.close(filler)
    return folder


@case("output", "full disk while writing a prepared dataset (a full tmpfs)")
def full_disk_prepare(env: Env) -> Scenario:
    folder = _full_tmpfs(env, "full")
    out = folder / "acdc"
    return prepare(
        env,
        "acdc",
        out,
        "could not write output",
        "No space left on device",
        config=env.kit.config,
        out=out,
    )


@case("output", "full disk while writing a checkpoint (a full tmpfs)")
def full_disk_train(env: Env) -> Scenario:
    folder = _full_tmpfs(env, "full")
    out = folder / "unet-seg-acdc-s1"
    argv = [
        "train",
        "--config",
        str(env.kit.config),
        "--model",
        "unet-seg-acdc-s1",
        "--data",
        str(env.kit.processed),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    outputs = tuple(out / name for name in ("model.safetensors", "metrics.json", "history.csv"))
    # the first file written is the resume state, or with one epoch the outputs: the
    # line names a file of the run folder
    return Scenario(argv, out, ("No space left on device",), outputs)


def _limit_file_size() -> None:
    # A real "file too large": writes past 1 KiB fail with EFBIG (SIGXFSZ would kill instead).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


@case("output", "file too large (RLIMIT_FSIZE 1 KiB, a real process)")
def file_too_large(env: Env) -> Scenario:
    out = env.tmp / "analysis" / "rmse.csv"
    argv = ["rmse", "--checkpoints", str(env.kit.unet), str(env.kit.unet_b), "--out", str(out)]
    return Scenario(
        argv,
        out,
        ("could not write output", "File too large"),
        (out,),
        preexec=_limit_file_size,
        subprocess=True,
    )
