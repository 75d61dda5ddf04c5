"""The lineage tree of a product: its stage in dvc.lock, each dependency as a child,
down to the raw files, every file re-hashed; stamps where no stage wrote the file."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.repro.codedeps import MANIFEST_DIR
from prrmse.repro.lineage.dvc_records import entry_hash, norm, read_lock
from prrmse.repro.lineage.hashing import DvcHashes, md5_file, package_resource
from prrmse.repro.lineage.raw_files import raw_node
from prrmse.repro.lineage.stamp_inputs import stamp_inputs
from prrmse.repro.lineage.stamps import read_provenance, stamp_summary

CODE_DIRS = ("src/prrmse",)
CODE_RECORDS = (MANIFEST_DIR,)  # a job's stage depends on its verb's code manifest there


class _Builder:
    def __init__(self, root: Path, stages: dict[str, Any] | None, hashes: DvcHashes) -> None:
        self.root = root
        self.hashes = hashes
        self.stages = stages
        self.outs: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, stage in (stages or {}).items():
            for section in ("outs", "metrics", "plots"):
                for entry in stage.get(section) or []:
                    if isinstance(entry, dict) and "path" in entry:
                        self.outs[norm(entry["path"], root)] = (name, entry)
        self._hash_cache: dict[tuple[str, str], str | None] = {}
        self._nodes: dict[tuple[str, str | None, str], dict[str, Any]] = {}

    # hashing ------------------------------------------------------------------------
    def locate(self, rel: str) -> Path | Traversable:
        """Where `rel` lies: under the root, or for a package resource in the package."""
        resource = package_resource(rel)
        return resource if resource is not None else self.root / rel

    def disk_hash(self, rel: str, kind: str = "md5") -> str | None:
        key = (rel, kind)
        if key not in self._hash_cache:
            path = self.locate(rel)
            if isinstance(path, Path) and path.is_dir():
                value = self.hashes.md5(path) if kind == "md5" else None
            elif path.is_file():
                value = (
                    md5_file(path)
                    if kind == "md5" and isinstance(path, Path)
                    else sha256_file(path)
                )
            else:
                value = None
            self._hash_cache[key] = value
        return self._hash_cache[key]

    def _manifest_md5(self, dir_hash: str, relpath: str) -> str | None:
        entries = self.hashes.cached_manifest(dir_hash) or []
        return next(
            (e.get("md5") for e in entries if isinstance(e, dict) and e.get("relpath") == relpath),
            None,
        )

    def _changed_files(self, rel: str, dir_hash: str) -> list[str] | None:
        """Which files of a modified directory differ from its recorded manifest."""
        recorded = self.hashes.cached_manifest(dir_hash)
        if recorded is None:
            return None
        before = {e.get("relpath"): e.get("md5") for e in recorded if isinstance(e, dict)}
        now = {e["relpath"]: e["md5"] for e in self.hashes.manifest(self.root / rel)}
        return sorted(p for p in set(before) | set(now) if before.get(p) != now.get(p))

    def _status(self, rel: str, recorded: Any, kind: str = "md5") -> tuple[str, str]:
        """(type, status); `recorded` is a hash, or for a folder ((file name, sha256), ...)."""
        path = self.locate(rel)
        node_type = "directory" if path.is_dir() else "file" if path.is_file() else "missing"
        if node_type == "missing":
            return node_type, "missing"
        if recorded is None:
            return node_type, "unrecorded"
        if isinstance(recorded, tuple):
            same = all(
                self.disk_hash(f"{rel}/{name}", "sha256") == digest for name, digest in recorded
            )
            return node_type, "ok" if same else "modified"
        return node_type, "ok" if self.disk_hash(rel, kind) == recorded else "modified"

    # the producing stage ------------------------------------------------------------
    def producer(self, rel: str) -> tuple[str, dict[str, Any], str] | None:
        """(stage name, out entry, out path) of the stage that wrote `rel` or a folder holding it."""
        if rel in self.outs:
            return (*self.outs[rel], rel)
        parts = rel.split("/")
        for cut in range(len(parts) - 1, 0, -1):
            parent = "/".join(parts[:cut])
            if parent in self.outs:
                return (*self.outs[parent], parent)
        return None

    # nodes --------------------------------------------------------------------------
    def node(self, rel: str, recorded: Any = None, kind: str = "md5") -> dict[str, Any]:
        """Node for `rel`; `recorded` is the hash its consumer recorded (None: the producer's)."""
        key = (rel, recorded, kind)
        if key in self._nodes:
            return self._nodes[key]
        found = self.producer(rel) if self.stages is not None else None
        if found is not None and kind == "md5":
            node = self._lock_node(rel, recorded, *found)
        else:
            node = self._stamp_node(rel, recorded, kind)
        node["trusted"] = node["status"] == "ok" and all(
            child["trusted"] for child in node["inputs"]
        )
        self._nodes[key] = node
        return node

    def _lock_node(
        self, rel: str, recorded: str | None, stage_name: str, out: dict[str, Any], out_path: str
    ) -> dict[str, Any]:
        stage = self.stages[stage_name]  # type: ignore[index]
        out_hash = entry_hash(out)
        within = out_path if out_path != rel else None  # a file inside a directory out
        node_type, status, recorded_hash = self._lock_status(rel, recorded, out_hash, out_path)
        changed = None
        if node_type == "directory" and status == "modified" and recorded_hash:
            changed = self._changed_files(rel, recorded_hash)
        provenance = read_provenance(self.root / rel)
        node: dict[str, Any] = {
            "path": rel,
            "type": node_type,
            "origin": "dvc.lock",
            "md5": recorded_hash,
            "status": status,
        }
        if (
            recorded is not None
            and out_hash is not None
            and recorded != out_hash
            and within is None
        ):
            node["note"] = (
                f"the stage that writes it has since recorded md5 {out_hash} (rebuilt later)"
            )
        if changed is not None:
            node["changed_files"] = changed
        if within is not None:
            node["within"] = within
            node["within_md5"] = recorded or out_hash
        node["stage"] = {
            "name": stage_name,
            "cmd": stage.get("cmd"),
            "params": stage.get("params") or {},
        }
        node["provenance"] = provenance
        node["summary"] = stamp_summary(provenance)
        node["inputs"] = self._lock_inputs(rel, stage, provenance, node_type)
        return node

    def _lock_status(
        self, rel: str, recorded: str | None, out_hash: str | None, out_path: str
    ) -> tuple[str, str, str | None]:
        """(type, status, recorded hash) of a stage's out, or of a file inside a directory out:
        by its md5 in the directory's manifest, else the whole directory's."""
        if out_path == rel:
            return (*self._status(rel, recorded or out_hash), recorded or out_hash)
        file_hash = self._manifest_md5(
            recorded or out_hash or "", Path(rel).relative_to(out_path).as_posix()
        )
        if file_hash is not None:
            return (*self._status(rel, file_hash), file_hash)
        # no manifest in the cache: vouch for the whole directory
        node_type, status = self._status(out_path, recorded or out_hash)
        node_type = "file" if (self.root / rel).is_file() else node_type
        return node_type, status, recorded or out_hash

    def _lock_inputs(
        self, rel: str, stage: dict[str, Any], provenance: dict[str, Any] | None, node_type: str
    ) -> list[dict[str, Any]]:
        """The children of a stage's out: its deps (code marked), the packaged files its
        stamp names, and for a processed dataset its raw files."""
        inputs = []
        for dep in stage.get("deps") or []:
            dep_rel = norm(dep["path"], self.root)
            child = self.node(dep_rel, entry_hash(dep))
            if any(dep_rel == d or dep_rel.startswith(f"{d}/") for d in CODE_DIRS + CODE_RECORDS):
                child = {**child, "role": "code"}
            inputs.append(child)
        # the packaged files the product compared itself with: no stage writes them, the
        # stamp names them with their sha256 (dvc.lock vouches for the code's folders as wholes)
        for name, digest in stamp_inputs(self.root, rel, provenance):
            if package_resource(name) is not None:
                inputs.append({**self.node(name, digest, "sha256"), "role": "resource"})
        if node_type == "directory":
            self._check_raw_files(rel, inputs)
        return inputs

    def _check_raw_files(self, rel: str, inputs: list[dict[str, Any]]) -> None:
        """A processed dataset's index.csv names each raw file it read with its sha256:
        check them on the raw folder's node (dvc.lock's md5 vouches for the folder as a
        whole; this names the files), or add that node when no stage dep names it."""
        raw = raw_node(self.root, rel)
        if raw is None:
            return
        for child in inputs:
            if child["path"] == raw["path"]:
                if "raw_files" not in child:  # nodes are shared: annotate once
                    child["raw_files"] = raw["raw_files"]
                    if raw["status"] != "ok":
                        child["status"] = "modified" if child["status"] == "ok" else child["status"]
                        child["trusted"] = False
                return
        inputs.append(raw)

    def _stamp_node(self, rel: str, recorded: Any, kind: str) -> dict[str, Any]:
        node_type, status = self._status(rel, recorded, kind)
        where = self.locate(rel)
        packaged = package_resource(rel) is not None
        provenance = (
            read_provenance(where)
            if node_type != "missing" and not packaged and isinstance(where, Path)
            else None
        )
        node: dict[str, Any] = {
            "path": rel,
            "type": node_type,
            "origin": "package" if packaged else "stamp" if provenance else "none",
            kind: dict(recorded) if isinstance(recorded, tuple) else recorded,
            "status": status,
            "stage": None,
            "provenance": provenance,
            "summary": stamp_summary(provenance),
        }
        if packaged:
            node["location"] = str(where)
        inputs = [self.node(p, h, "sha256") for p, h in stamp_inputs(self.root, rel, provenance)]
        raw = raw_node(self.root, rel) if node_type == "directory" else None
        if raw is not None:
            inputs.append(raw)
        node["inputs"] = inputs
        return node


def lineage(
    path: str | Path, dvc_lock: Path = Path("dvc.lock"), root: Path = Path(".")
) -> dict[str, Any]:
    """The tree of everything `path` came from (see the module docstring for the fields)."""
    root = Path(root)
    lock_path = Path(dvc_lock) if Path(dvc_lock).is_absolute() else root / dvc_lock
    rel = norm(path, root)
    if not (root / rel).exists():
        raise PrrmseError(path, "no such file or folder")
    stages = read_lock(lock_path)
    with DvcHashes(root) as hashes:
        tree = _Builder(root, stages, hashes).node(rel)
    tree["lock"] = lock_path.as_posix() if stages is not None else None
    if stages is not None:
        tree["newer_than_lock"] = _newer_than(lock_path, root, problems(tree))
    return tree


def problems(tree: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, status) of every node that is not "ok", each path once, in tree order."""
    found: dict[str, str] = {}
    seen: set[int] = set()

    def walk(node: dict[str, Any]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if node["status"] != "ok":
            found.setdefault(node["path"], node["status"])
        for child in node["inputs"]:
            walk(child)

    walk(tree)
    return list(found.items())


def _newer_than(lock_path: Path, root: Path, found: list[tuple[str, str]]) -> list[str]:
    """The modified files written after dvc.lock: most likely a run that was never recorded."""
    try:
        written = lock_path.stat().st_mtime
        return [
            rel
            for rel, status in found
            if status == "modified"
            and (root / rel).exists()
            and (root / rel).stat().st_mtime > written
        ]
    except OSError:
        return []
