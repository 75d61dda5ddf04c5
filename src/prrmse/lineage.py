"""`prrmse lineage PATH`: everything a product came from, down to the raw files.

Two sources of truth, used together:

- dvc.lock: the stage that wrote the file (or the directory containing it), its
  command, the config values it used (params) and the md5 of every dependency
  as the stage consumed it. Each dependency that another stage wrote becomes a
  child; the rest (raw downloads, the code `src/prrmse`) are leaves.
- the provenance stamp the product carries itself (CSV first line, PNG text
  chunk, PDF Subject, safetensors metadata, JSON "provenance" key, meta.json of
  a processed dataset): code version (commit, dirty), packages, seed, device.
  Without dvc.lock (or for a file no stage wrote) the tree is built from the
  stamps alone: their recorded inputs and sha256 hashes (origin "stamp").

Package resources (the paper's transcribed tables) are recorded in stamps as
`prrmse/resources/<file>` (`prrmse.paper.recorded_name`) with their sha256: they are
looked up in the installed package (importlib.resources), never in the working
directory, and checked against that hash (origin "package").

Every node's file is re-hashed: `status` is "ok" when the file on disk still
has the hash that was recorded, "modified" when not, "missing" when it is gone,
"unrecorded" when nothing recorded a hash for it (a Snakemake run not yet recorded
in dvc.lock: `prrmse dvc-record`). `trusted` is true only when the node and
everything below it are "ok". The verdict (`verdict`) tells the three apart: NOT
TRUSTED for a modified or missing file, UNVERIFIED when hashes were only never
recorded; `prrmse lineage` exits 1 unless the tree is trusted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from prrmse.errors import PrrmseError
from prrmse.io import sha256_file
from prrmse.provenance import pdf_subject, png_text

CODE_DIRS = ("src/prrmse",)
RESOURCE_PREFIX = "prrmse/resources/"  # how stamps name a packaged file (paper.recorded_name)
_CHUNK = 1 << 20


# --- hashing as DVC records it -----------------------------------------------------------


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


# --- provenance stamps read from the product itself ------------------------------------


def _stamp_from_text(path: Path, lines: int = 5) -> dict[str, Any] | None:
    """A `provenance: {json}` comment in the first lines (CSV `#`, LaTeX `%`, Markdown `<!--`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = [handle.readline() for _ in range(lines)]
    except (OSError, UnicodeDecodeError):
        return None
    for line in head:
        at = line.find("provenance: {")
        if at < 0:
            continue
        text = line[at + len("provenance: ") :].strip()
        if text.endswith("-->"):
            text = text[:-3].rstrip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _png_stamp(path: Path) -> dict[str, Any] | None:
    text = png_text(path)
    return json.loads(text) if text else None


def _pdf_stamp(path: Path) -> dict[str, Any] | None:
    text = pdf_subject(path)
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def checkpoint_record(path: Path) -> dict[str, Any] | None:
    """The JSON record of a prrmse safetensors file, read from its header only."""
    from safetensors import safe_open

    from prrmse.checkpoint import META_KEY

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = handle.metadata() or {}
    text = metadata.get(META_KEY)
    return json.loads(text) if text else None


def _safetensors_stamp(path: Path) -> dict[str, Any] | None:
    record = checkpoint_record(path)
    if record is None:
        return None
    stamp = dict(record.get("provenance") or {})
    for key in ("name", "seed", "config", "data"):  # what made the weights, beside the stamp
        if key in record and key not in stamp:
            stamp[key] = record[key]
    return stamp


def _json_stamp(path: Path) -> dict[str, Any] | None:
    value = json.loads(path.read_text())
    if isinstance(value, dict) and isinstance(value.get("provenance"), dict):
        return value["provenance"]
    return None


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance stamp a product carries (None when it carries none or is unreadable).

    Directories: their meta.json (a processed dataset). Checkpoints: the stamp plus
    the record's name, seed, config and data.
    """
    path = Path(path)
    try:
        if path.is_dir():
            meta = path / "meta.json"
            if not meta.is_file():
                return None
            stamp = _json_stamp(meta)
            if stamp is not None:
                summary = json.loads(meta.read_text())
                stamp = {**stamp, **{k: summary[k] for k in ("dataset", "root") if k in summary}}
            return stamp
        suffix = path.suffix.lower()
        if suffix == ".png":
            return _png_stamp(path)
        if suffix == ".pdf":
            return _pdf_stamp(path)
        if suffix == ".safetensors":
            return _safetensors_stamp(path)
        if suffix == ".json":
            return _json_stamp(path)
        return _stamp_from_text(path)
    except Exception:  # noqa: BLE001 - a product without a readable stamp is reported as such
        return None


def stamp_summary(stamp: dict[str, Any] | None) -> dict[str, Any]:
    """seed, device, commit, dirty and version, where the stamp has them."""
    if not stamp:
        return {}
    out: dict[str, Any] = {}
    if "seed" in stamp:
        out["seed"] = stamp["seed"]
    device = stamp.get("device")
    if isinstance(device, dict):
        device = device.get("name") or device.get("type") or json.dumps(device, sort_keys=True)
    if device is not None:
        out["device"] = device
    code = stamp.get("code") or {}
    for key in ("commit", "dirty", "version"):
        if code.get(key) is not None:
            out[key] = code[key]
    return out


# --- dvc.lock ------------------------------------------------------------------------------


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
            if dep_rel in CODE_DIRS:
                child = {**child, "role": "code"}
            inputs.append(child)
        # the packaged files the product compared itself with: no stage writes them, the
        # stamp names them with their sha256 (dvc.lock vouches only for src/prrmse as a whole)
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


# --- output ----------------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"))
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key in sorted(value, key=str):
            yield from _leaves(f"{prefix}.{key}", value[key])
    else:
        yield prefix, value


def _params_line(node: dict[str, Any]) -> str | None:
    """Every config value the node's stage used, flattened to dotted keys."""
    stage = node.get("stage") or {}
    values = [
        f"{key}={_short(value)}"
        for params in (stage.get("params") or {}).values()
        for top, tree in sorted(params.items())
        for key, value in _leaves(top, tree)
    ]
    return "params: " + ", ".join(values) if values else None


def _node_line(node: dict[str, Any]) -> str:
    parts = [node["path"] + ("/" if node.get("type") == "directory" else "")]
    digest = node.get("md5") or node.get("sha256")
    if isinstance(digest, dict):  # a folder vouched for by some of its files
        parts.append(
            "sha256 of "
            + ", ".join(f"{name} {value[:8]}" for name, value in sorted(digest.items()))
        )
    elif digest:
        parts.append(("md5 " if node.get("md5") else "sha256 ") + digest[:8])
    parts.append(
        node["status"] if node["trusted"] or node["status"] != "ok" else "ok (input changed)"
    )
    if node.get("role") == "code":
        parts.append("code")
    stage = node.get("stage")
    if stage:
        parts.append(f"[{stage['name']}]")
    elif node.get("origin") in ("stamp", "package"):
        parts.append(f"[{node['origin']}]")
    summary = node.get("summary") or {}
    if "seed" in summary:
        parts.append(f"seed={summary['seed']}")
    if "device" in summary:
        parts.append(f"device={_short(summary['device'], 40)}")
    if summary.get("commit"):
        parts.append(
            f"commit={summary['commit'][:10]}" + (" (dirty)" if summary.get("dirty") else "")
        )
    raw = node.get("raw_files")
    if raw:
        bad = len(raw["modified"]) + len(raw["missing"])
        parts.append(
            f"raw files: {raw['count']}"
            + (f", {bad} changed or missing" if bad else ", all match the index")
        )
    if node.get("within") and node.get("md5") == node.get("within_md5"):
        parts.append(f"(in {node['within']}/, verified as a whole)")
    elif node.get("within"):
        parts.append(f"(in {node['within']}/)")
    changed = node.get("changed_files")
    if changed:
        parts.append(
            "changed: "
            + ", ".join(changed[:5])
            + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        )
    if node.get("note"):
        parts.append(f"({node['note']})")
    return "  ".join(parts)


def render_tree(tree: dict[str, Any]) -> str:
    """One line per node, indented by depth; a subtree already shown is not repeated, nor
    a code folder already shown with the same hash."""
    lines: list[str] = []
    shown: set[int] = set()

    code_shown: set[tuple[str, Any, str]] = set()

    def walk(node: dict[str, Any], depth: int) -> None:
        if node.get("role") == "code":  # the same code under every stage: once is enough
            key = (node["path"], node.get("md5"), node["status"])
            if key in code_shown:
                return
            code_shown.add(key)
        line = "  " * depth + _node_line(node)
        key = id(node)
        if node["inputs"] and key in shown:
            lines.append(line + "  (inputs shown above)")
            return
        shown.add(key)
        lines.append(line)
        params = _params_line(node)
        if params:
            lines.append("  " * depth + "    " + params)
        for child in node["inputs"]:
            walk(child, depth + 1)

    walk(tree, 0)
    if tree.get("lock") is None:
        lines.append("(no dvc.lock: built from the products' provenance stamps alone)")
    lines.append(verdict(tree))
    return "\n".join(lines) + "\n"


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


def _listed(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def verdict(tree: dict[str, Any]) -> str:
    """The last line: TRUSTED, NOT TRUSTED (a file modified or missing) or UNVERIFIED (only
    hashes never recorded, e.g. a Snakemake run not recorded in dvc.lock yet)."""
    if tree["trusted"]:
        return "TRUSTED: every file matches the hash recorded when the product was made"
    found = problems(tree)
    bad = [f"{path} {status}" for path, status in found if status != "unrecorded"]
    if bad:
        text = f"NOT TRUSTED: {_listed(bad)} (against the hash recorded when the product was made)"
        newer = tree.get("newer_than_lock") or []
        if newer:
            text += (
                f"; {_listed(newer)} written after {tree['lock']}: a run not recorded yet? "
                "`prrmse dvc-record` records a finished Snakemake run"
            )
        return text
    unrecorded = [path for path, _ in found]
    hint = (
        "no dvc.lock: after a Snakemake run, `prrmse dvc-record` records one"
        if tree.get("lock") is None
        else "dvc.lock has no entry for it: `prrmse dvc-record` after a Snakemake run"
    )
    return (
        f"UNVERIFIED: no hash was recorded for {_listed(unrecorded)} ({hint}); "
        "nothing recorded differs"
    )


def run_lineage(
    path: str | Path,
    as_json: bool = False,
    dvc_lock: Path = Path("dvc.lock"),
    root: Path = Path("."),
) -> dict[str, Any]:
    """Print the lineage of `path` as an indented tree or as JSON; return the tree when it is
    trusted, else raise (the CLI exits 1) with the verdict, after printing."""
    tree = lineage(path, dvc_lock, root)
    if as_json:
        print(json.dumps({**tree, "verdict": verdict(tree)}, indent=2, sort_keys=True, default=str))
    else:
        print(render_tree(tree), end="", flush=True)
    if not tree["trusted"]:
        raise PrrmseError(path, verdict(tree))
    return tree


def register(subparsers: Any) -> None:
    """`prrmse lineage PATH [--json] [--lock dvc.lock] [--root .]`."""
    parser = subparsers.add_parser(
        "lineage", help="trace a product to the raw files, config values and code"
    )
    parser.add_argument(
        "path", type=Path, help="a figure, table, CSV, plan, checkpoint or dataset folder"
    )
    parser.add_argument("--json", action="store_true", help="print the tree as JSON")
    parser.add_argument(
        "--lock", type=Path, default=Path("dvc.lock"), help="dvc.lock to read (relative to --root)"
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.set_defaults(
        handler=lambda args: run_lineage(args.path, args.json, args.lock, args.root)
    )
