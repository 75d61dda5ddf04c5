"""The lineage tree of a product: its stage in dvc.lock, each dependency as a child,
down to the raw files, every file re-hashed; stamps where no stage wrote the file."""

from __future__ import annotations

import json
import os
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.repro.codedeps import MANIFEST_DIR
from prrmse.repro.lineage.hashing import dir_manifest, md5_dir, md5_file, package_resource
from prrmse.repro.lineage.stamps import read_provenance, stamp_summary

CODE_DIRS = ("src/prrmse",)
CODE_RECORDS = (MANIFEST_DIR,)  # a job's stage depends on its verb's code manifest there


def _read_lock(path: Path) -> dict[str, Any] | None:
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


def _entry_hash(entry: dict[str, Any]) -> str | None:
    return entry.get("md5") or entry.get("etag") or entry.get("checksum")


def _norm(path: str | Path, root: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
    return Path(os.path.normpath(p)).as_posix()


def _cache_dirs(root: Path) -> list[Path]:
    """The DVC cache folders to look in: `cache.dir` of .dvc/config.local and .dvc/config, the default."""
    import configparser

    found = []
    for name in ("config.local", "config"):
        parser = configparser.ConfigParser()
        try:
            parser.read(root / ".dvc" / name)
        except configparser.Error:
            continue
        value = parser.get("cache", "dir", fallback=None)
        if value:
            path = Path(value.strip().strip("'\""))
            found.append(path if path.is_absolute() else root / ".dvc" / path)
    found.append(root / ".dvc/cache")
    return found


class _Builder:
    def __init__(self, root: Path, stages: dict[str, Any] | None) -> None:
        self.root = root
        self.stages = stages
        self.outs: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, stage in (stages or {}).items():
            for section in ("outs", "metrics", "plots"):
                for entry in stage.get(section) or []:
                    if isinstance(entry, dict) and "path" in entry:
                        self.outs[_norm(entry["path"], root)] = (name, entry)
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
                value = md5_dir(path, self.root) if kind == "md5" else None
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

    def _manifest(self, dir_hash: str) -> list[dict[str, Any]] | None:
        """A directory's manifest ([{md5, relpath}]) from the local DVC cache, if present."""
        value = dir_hash[:-4] if dir_hash.endswith(".dir") else dir_hash
        name = value[2:] + ".dir"
        for base in _cache_dirs(self.root):
            for cache in (base / "files" / "md5", base):  # DVC 3 layout, then DVC 2
                obj = cache / value[:2] / name
                if obj.is_file():
                    try:
                        entries = json.loads(obj.read_text())
                    except (OSError, json.JSONDecodeError):
                        return None
                    return entries if isinstance(entries, list) else None
        return None

    def _manifest_md5(self, dir_hash: str, relpath: str) -> str | None:
        entries = self._manifest(dir_hash) or []
        return next(
            (e.get("md5") for e in entries if isinstance(e, dict) and e.get("relpath") == relpath),
            None,
        )

    def _changed_files(self, rel: str, dir_hash: str) -> list[str] | None:
        """Which files of a modified directory differ from its recorded manifest."""
        recorded = self._manifest(dir_hash)
        if recorded is None:
            return None
        before = {e.get("relpath"): e.get("md5") for e in recorded if isinstance(e, dict)}
        now = {e["relpath"]: e["md5"] for e in dir_manifest(self.root / rel, self.root)}
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
        out_hash = _entry_hash(out)
        within = None
        if out_path != rel:  # a file inside a directory out
            within = out_path
            file_hash = self._manifest_md5(
                recorded or out_hash or "", Path(rel).relative_to(out_path).as_posix()
            )
            if file_hash is not None:
                node_type, status = self._status(rel, file_hash)
                recorded_hash = file_hash
            else:  # no manifest in the cache: vouch for the whole directory
                node_type, status = self._status(out_path, recorded or out_hash)
                node_type = "file" if (self.root / rel).is_file() else node_type
                recorded_hash = recorded or out_hash
        else:
            node_type, status = self._status(rel, recorded or out_hash)
            recorded_hash = recorded or out_hash
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
        inputs = []
        for dep in stage.get("deps") or []:
            dep_rel = _norm(dep["path"], self.root)
            child = self.node(dep_rel, _entry_hash(dep))
            if any(dep_rel == d or dep_rel.startswith(f"{d}/") for d in CODE_DIRS + CODE_RECORDS):
                child = {**child, "role": "code"}
            inputs.append(child)
        # the packaged files the product compared itself with: no stage writes them, the
        # stamp names them with their sha256 (dvc.lock vouches for the code's folders as wholes)
        for name, digest in self._stamp_inputs(rel, provenance):
            if package_resource(name) is not None:
                inputs.append({**self.node(name, digest, "sha256"), "role": "resource"})
        if node_type == "directory":
            self._check_raw_files(rel, inputs)
        node["inputs"] = inputs
        return node

    def _check_raw_files(self, rel: str, inputs: list[dict[str, Any]]) -> None:
        """A processed dataset's index.csv names each raw file it read with its sha256:
        check them on the raw folder's node (dvc.lock's md5 vouches for the folder as a
        whole; this names the files), or add that node when no stage dep names it."""
        raw = self._raw_node(rel)
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
        inputs = [self.node(p, h, "sha256") for p, h in self._stamp_inputs(rel, provenance)]
        raw = self._raw_node(rel) if node_type == "directory" else None
        if raw is not None:
            inputs.append(raw)
        node["inputs"] = inputs
        return node

    def _stamp_inputs(self, rel: str, stamp: dict[str, Any] | None) -> list[tuple[str, Any]]:
        """(path, sha256) of the inputs a stamp records, in a stable order; for a folder
        the sha256 is ((file name, sha256), ...) of the files in it the stamp names."""
        if not stamp:
            return []
        found: dict[str, Any] = {}
        inputs = stamp.get("inputs")
        for section in (inputs, stamp.get("resources")):  # resources: packaged files by name
            if isinstance(section, dict):
                for path, digest in section.items():
                    name = path if package_resource(path) is not None else _norm(path, self.root)
                    found[name] = digest if isinstance(digest, str) else None
        for role in ("target", "source"):
            value = stamp.get(role)
            if isinstance(value, str) and value.endswith(".safetensors"):
                found.setdefault(_norm(value, self.root), stamp.get(f"{role}_sha256"))
        data = stamp.get("data")
        files: dict[str, str] = {}
        if isinstance(data, dict) and isinstance(data.get("dir"), str):  # a checkpoint's record
            if isinstance(data.get("index_sha256"), str):
                files = {"index.csv": data["index_sha256"]}
            data = data["dir"]
        elif isinstance(stamp.get("data_sha256"), dict):  # a sweep's stamp
            files = {k: v for k, v in stamp["data_sha256"].items() if isinstance(v, str)}
        if isinstance(data, str):
            found.setdefault(_norm(data, self.root), tuple(sorted(files.items())) or None)
        return [(p, found[p]) for p in sorted(found) if p != rel]

    def _raw_node(self, rel: str) -> dict[str, Any] | None:
        """A processed dataset's raw files (its index.csv names each with its sha256), verified."""
        import csv

        index = self.root / rel / "index.csv"
        meta = self.root / rel / "meta.json"
        if not (index.is_file() and meta.is_file()):
            return None
        try:
            raw_root = Path(json.loads(meta.read_text()).get("root", ""))
        except (json.JSONDecodeError, AttributeError):
            return None
        if not str(raw_root) or str(raw_root) == ".":
            return None
        base = raw_root if raw_root.is_absolute() else self.root / raw_root
        files: dict[str, str] = {}
        with open(index, newline="") as handle:
            for row in csv.DictReader(line for line in handle if not line.startswith("#")):
                for col in ("image", "label"):
                    name, digest = row.get(f"{col}_file"), row.get(f"{col}_sha256")
                    if name and digest:
                        files[name] = digest
        modified, missing = [], []
        for name, digest in sorted(files.items()):
            path = Path(name) if Path(name).is_absolute() else base / name
            if not path.is_file():
                path = self.root / name
            if not path.is_file():
                missing.append(name)
            elif sha256_file(path) != digest:
                modified.append(name)
        raw_rel = _norm(raw_root, self.root)
        node_type = "directory" if (self.root / raw_rel).is_dir() else "missing"
        status = (
            "missing" if node_type == "missing" else "modified" if modified or missing else "ok"
        )
        return {
            "path": raw_rel,
            "type": node_type,
            "origin": "stamp",
            "status": status,
            "stage": None,
            "provenance": None,
            "summary": {},
            "raw_files": {"count": len(files), "modified": modified, "missing": missing},
            "inputs": [],
            "trusted": status == "ok",
        }


def lineage(
    path: str | Path, dvc_lock: Path = Path("dvc.lock"), root: Path = Path(".")
) -> dict[str, Any]:
    """The tree of everything `path` came from (see the module docstring for the fields)."""
    root = Path(root)
    lock_path = Path(dvc_lock) if Path(dvc_lock).is_absolute() else root / dvc_lock
    rel = _norm(path, root)
    if not (root / rel).exists():
        raise PrrmseError(path, "no such file or folder")
    stages = _read_lock(lock_path)
    builder = _Builder(root, stages)
    tree = builder.node(rel)
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
