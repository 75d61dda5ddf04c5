"""Data settings from partial config entries, the schema's defaults filled as `load_config`
fills them: what a test hands the data library in place of a validated config section."""

from __future__ import annotations

import copy
from typing import Any

from prrmse.core.config import validate_config
from prrmse.data.settings import (
    DatasetSettings,
    PhantomParams,
    SplitSettings,
    dataset_settings,
    phantoms_settings,
)

NAME = "d"


def dataset(entry: dict[str, Any], name: str = NAME) -> DatasetSettings:
    """The settings of a `datasets.<name>` entry (format, root and split default to an
    ACDC folder split under "raw")."""
    full = {"format": "acdc", "root": "raw", "split": {"method": "folder"}, **entry}
    config = validate_config({"datasets": {name: copy.deepcopy(full)}})
    return dataset_settings(config, name)


def split(**keys: Any) -> SplitSettings:
    """The settings of a `datasets.<name>.split` entry."""
    return dataset({"split": keys}).split


def phantom(name: str, params: dict[str, Any]) -> PhantomParams:
    """The settings of a `phantoms.<name>` section."""
    config = validate_config({"phantoms": {name: copy.deepcopy(params)}})
    return getattr(phantoms_settings(config), name)
