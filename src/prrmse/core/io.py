"""Atomic writes, hashing and small file helpers shared by every phase.

Every product is written under a temporary name and renamed into place, so an
interrupted job never leaves a file that a rerun would take as complete.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError


def sha256_file(path: str | Path | Traversable, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes; a package resource (Traversable) is read the same way."""
    digest = hashlib.sha256()
    with (Path(path) if isinstance(path, str) else path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _pid_alive(text: str) -> bool:
    try:
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(final: Path) -> None:
    """Temp files of `final` left by a writer that was killed (its pid is gone): a rerun
    must not leave them beside the product."""
    name = glob.escape(final.name)
    for pattern in (f".{name}.tmp-*", f"..{name}.tmp-*"):
        for stale in final.parent.glob(pattern):
            if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
                _remove(stale)


def _check_parent_writable(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise PrrmseError(parent, "output folder expected, found a file")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrrmseError(parent, f"cannot create output folder ({exc.strerror})") from exc
    if not os.access(parent, os.W_OK):
        raise PrrmseError(parent, "output folder is not writable")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    final = Path(path)
    _check_parent_writable(final)
    temp = _temp_sibling(final)
    _remove(temp)
    _remove_stale_temps(final)
    try:
        yield temp
        if not temp.exists():
            raise PrrmseError(final, "writer produced no output")
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(temp, final)
    except OSError as exc:
        _remove(temp)
        raise PrrmseError(final, f"could not write output ({exc.strerror or exc})") from exc
    except BaseException:
        _remove(temp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text)


def write_json_atomic(path: str | Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise PrrmseError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PrrmseError(path, f"not valid JSON ({exc})") from exc
