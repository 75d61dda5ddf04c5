"""What DVC recorded, read for the lineage tree: dvc.lock's stages, the hash of one of
their entries, and paths as dvc.lock and stamps write them, normalised against the
repository root. (A recorded folder's manifest is read by DVC: `hashing.DvcHashes`.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from prrmse.core.errors import PrrmseError


def read_lock(path: Path) -> dict[str, Any] | None:
    """The stages of a dvc.lock; None where there is no such file."""
    if not path.is_file():
        return None
    try:
        lock = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PrrmseError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from exc
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        raise PrrmseError(path, "not a dvc.lock (no 'stages' mapping)")
    return stages


def entry_hash(entry: dict[str, Any]) -> str | None:
    """The hash dvc.lock records for one out or dep."""
    return entry.get("md5") or entry.get("etag") or entry.get("checksum")


def norm(path: str | Path, root: Path) -> str:
    """A path as the tree names it: POSIX, normalised, relative to `root` where it lies under it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return Path(os.path.normpath(p)).as_posix()
