"""Hashes as DVC records them (md5 of a file, of a folder with `.dvcignore` applied) and
the package's resources, looked up in the installed package."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

RESOURCE_PREFIX = "prrmse/resources/"  # how stamps name a packaged file (paper.recorded_name)
_CHUNK = 1 << 20


def md5_file(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security use
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def package_resource(name: str) -> Traversable | None:
    """The installed package's file for a stamp's `prrmse/resources/<file>`; None for any
    other name (which is a path relative to the repository root)."""
    if not name.startswith(RESOURCE_PREFIX):
        return None
    parts = name[len(RESOURCE_PREFIX) :].split("/")
    if not all(parts) or any(part in (".", "..") for part in parts):
        return None
    return resources.files("prrmse").joinpath("resources", *parts)


def _ignore_patterns(root: Path) -> list[str]:
    path = root / ".dvcignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [
        line for line in lines if line and not line.startswith("#") and not line.startswith("!")
    ]


def _ignored(rel_to_root: str, is_dir: bool, patterns: list[str]) -> bool:
    name = rel_to_root.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pat = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        if "/" in pat:
            if fnmatch.fnmatch(rel_to_root, pat.lstrip("/")):
                return True
        elif fnmatch.fnmatch(name, pat):
            return True
    return False


def _walk_files(directory: Path, root: Path, patterns: list[str]) -> Iterator[Path]:
    for current, dirs, files in os.walk(directory, followlinks=True):
        here = Path(current)
        try:
            base = here.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            base = None
        kept = []
        for name in dirs:
            rel = f"{base}/{name}" if base else name
            if name in (".dvc", ".git") or (base is not None and _ignored(rel, True, patterns)):
                continue
            kept.append(name)
        dirs[:] = kept
        for name in files:
            rel = f"{base}/{name}" if base else name
            if base is not None and _ignored(rel, False, patterns):
                continue
            yield here / name


def dir_manifest(directory: Path, root: Path) -> list[dict[str, str]]:
    """[{"md5", "relpath"}] sorted by relpath, as DVC lists a directory (honouring .dvcignore)."""
    patterns = _ignore_patterns(root)
    entries = [
        {"md5": md5_file(f), "relpath": f.relative_to(directory).as_posix()}
        for f in _walk_files(directory, root, patterns)
    ]
    return sorted(entries, key=lambda e: e["relpath"])


def md5_dir(directory: Path, root: Path) -> str:
    """DVC's directory hash: md5 of the JSON manifest, with the `.dir` suffix."""
    manifest = json.dumps(dir_manifest(directory, root), sort_keys=True).encode()
    return hashlib.md5(manifest).hexdigest() + ".dir"  # noqa: S324
