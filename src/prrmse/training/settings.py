"""Typed settings of the training verbs: the config's `train:` section (`TrainSettings`, with
`HoldoutSettings` and `AugmentSettings`) and a network's `encoders.<network>` recipe
(`EncoderSettings`, with `PoolSettings`), each a frozen dataclass.

A verb (`prrmse train`, `reuse`, `encoder`) builds them once from the validated config
with `from_config` (`prrmse.core.settings`); the library reads attributes (`settings.lr`),
never the raw mapping. `as_record()` is the plain mapping written wherever the section goes
into a record (the model's `config.train`, the resume fingerprint, the encoder's
`settings`): the very section the config holds, so every product keeps its bytes.

A `networks.<name>` entry stays a plain mapping: it is handed on to `prrmse.models`, which
builds the network and its start from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from prrmse.core.errors import PrrmseError
from prrmse.core.settings import Settings

# seconds of training between resume-state writes (at the first epoch end after them); 0: every
# epoch. An execution setting, not config: the outputs are the same bytes whatever it is
RESUME_EVERY_S = 60.0

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["constant", "cosine", "poly"]
Selection = Literal["last", "best_on_holdout"]
Recipe = Literal["random", "pretext"]
Task = Literal["seg", "auto"]


@dataclasses.dataclass(frozen=True)
class HoldoutSettings(Settings):
    """`train.holdout`: the selection patients of `selection: best_on_holdout`."""

    n_patients: int
    seed: int


@dataclasses.dataclass(frozen=True)
class AugmentSettings(Settings):
    """`train.augment`: the on-the-fly augmentation of training batches."""

    flip: bool
    shift_px: int
    intensity: float


@dataclasses.dataclass(frozen=True)
class TrainSettings(Settings):
    """`train`: how every model is trained (fields in the schema's order)."""

    device: Device
    precision: Precision
    epochs: int
    iterations_per_epoch: int | None
    batch_size: int
    eval_batch_size: int
    optimizer: Optimizer
    lr: float
    weight_decay: float
    momentum: float
    schedule: Schedule
    dice_weight: float
    subset_seed: int
    selection: Selection
    holdout: HoldoutSettings
    val_every: int
    augment: AugmentSettings


@dataclasses.dataclass(frozen=True)
class PoolSettings(Settings):
    """`encoders.<network>.pool`: the phantom pool a pretext encoder is trained on."""

    n_patients: int
    n_val: int
    seed: int


@dataclasses.dataclass(frozen=True)
class EncoderSettings(Settings):
    """`encoders.<network>`: how `prrmse encoder` makes the network's shared encoder start."""

    recipe: Recipe
    seed: int
    task: Task
    pool: PoolSettings
    epochs: int | None
    iterations_per_epoch: int | None
    lr: float | None


def _where(source: str | None, key: str) -> str:
    return f"config {key}" if source is None else f"{source}: config key {key}"


def train_settings(config: Mapping[str, Any], source: str | None = None) -> TrainSettings:
    """The `train` section of a validated config; `source` (the config file) is named in errors."""
    return TrainSettings.from_config(config["train"], _where(source, "train"))


def encoder_settings(
    config: Mapping[str, Any], network_name: str, source: str | None = None
) -> EncoderSettings:
    """The `encoders.<network_name>` recipe of a validated config."""
    where = _where(source, f"encoders.{network_name}")
    recipes = config.get("encoders") or {}
    if network_name not in recipes:
        raise PrrmseError(
            where, "missing: a shared encoder start needs a recipe (random or pretext)"
        )
    return EncoderSettings.from_config(recipes[network_name], where)


def network_entry(config: Mapping[str, Any], network_name: str, where: str) -> dict[str, Any]:
    """The `networks.<network_name>` entry of a validated config, a plain mapping (see above);
    `where` names what asks for it (a model, a network)."""
    networks = config["networks"]
    if network_name not in networks:
        known = ", ".join(sorted(networks))
        raise PrrmseError(where, f"unknown network '{network_name}' (config networks: {known})")
    return networks[network_name]
