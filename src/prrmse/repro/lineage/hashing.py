"""Hashes as DVC records them, computed by DVC itself, and the package's resources.

`DvcHashes` opens the repository with DVC's API once per lineage: a file's md5 and a
folder's tree hash (`<md5>.dir`) come from `dvc_data`'s `build`, with the repository's
`.dvcignore` applied by DVC's own matcher and DVC's state database reused (a file DVC
hashed before is not read again); a recorded folder's manifest is loaded from the DVC
cache the repository's config names. Outside a DVC project (no `.dvc`), hashes are still
DVC's, with `.dvcignore` still honoured; there is no cache to read manifests from.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

RESOURCE_PREFIX = "prrmse/resources/"  # how stamps name a packaged file (paper.recorded_name)


def package_resource(name: str) -> Traversable | None:
    """The installed package's file for a stamp's `prrmse/resources/<file>`; None for any
    other name (which is a path relative to the repository root)."""
    if not name.startswith(RESOURCE_PREFIX):
        return None
    parts = name[len(RESOURCE_PREFIX) :].split("/")
    if not all(parts) or any(part in (".", "..") for part in parts):
        return None
    return resources.files("prrmse").joinpath("resources", *parts)


class DvcHashes:
    """DVC's hashes of the files of the repository at `root` (use as a context manager, or
    call `close`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._stack = ExitStack()
        self._repo: Any = None
        self._odb: Any = None

    def __enter__(self) -> DvcHashes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._repo = self._odb = None

    def _open(self) -> tuple[Any, Any]:
        if self._repo is None:
            from dvc.repo import Repo
            from dvc_data.hashfile.db import HashFileDB

            self._repo = self._stack.enter_context(Repo(str(self.root), uninitialized=True))
            self._odb = self._repo.cache.local
            if self._odb is None:  # not a DVC project: a throwaway object store for `build`
                scratch = self._stack.enter_context(tempfile.TemporaryDirectory())
                self._odb = HashFileDB(self._repo.fs, scratch)
        return self._repo, self._odb

    def _object(self, path: Path) -> Any:
        from dvc_data.hashfile.build import build

        repo, odb = self._open()
        _, _, obj = build(
            odb, str(Path(path).resolve()), repo.fs, "md5", ignore=repo.dvcignore, dry_run=True
        )
        return obj

    def md5(self, path: Path) -> str:
        """A file's md5, or a folder's `<md5>.dir`, as dvc.lock records it."""
        return str(self._object(path).hash_info.value)

    def manifest(self, directory: Path) -> list[dict[str, str]]:
        """[{"md5", "relpath"}] of a folder now, sorted by relpath, as DVC lists it."""
        return _entries(self._object(directory).as_list())

    def cached_manifest(self, dir_hash: str) -> list[dict[str, str]] | None:
        """The manifest DVC stored for a recorded folder hash, if its cache holds it."""
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_data.hashfile.tree import Tree
        from dvc_objects.errors import ObjectFormatError

        _, odb = self._open()
        if self._repo.cache.local is None:
            return None
        try:
            tree = Tree.load(odb, HashInfo("md5", dir_hash))
        except (OSError, ValueError, ObjectFormatError):
            return None
        return _entries(tree.as_list())


def _entries(listed: list[dict[str, Any]]) -> list[dict[str, str]]:
    return sorted(
        ({"md5": str(e["md5"]), "relpath": str(e["relpath"])} for e in listed),
        key=lambda e: e["relpath"],
    )


def md5_file(path: Path) -> str:
    """A file's md5 as DVC computes it."""
    from dvc_data.hashfile.hash import file_md5

    return str(file_md5(str(path)))


def md5_dir(directory: Path, root: Path) -> str:
    """DVC's hash of a folder of the repository at `root` (`<md5>.dir`, .dvcignore applied)."""
    with DvcHashes(root) as hashes:
        return hashes.md5(directory)


def dir_manifest(directory: Path, root: Path) -> list[dict[str, str]]:
    """[{"md5", "relpath"}] of a folder of the repository at `root`, as DVC lists it."""
    with DvcHashes(root) as hashes:
        return hashes.manifest(directory)
