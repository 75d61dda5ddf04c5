"""The inputs a product's provenance stamp records, as the lineage tree's children: the
files and packaged resources it names with their sha256, the checkpoints it compared, and
the dataset folder it read (with the hashes of the files in it that the stamp names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prrmse.repro.lineage.dvc_records import norm
from prrmse.repro.lineage.hashing import package_resource


def stamp_inputs(root: Path, rel: str, stamp: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(path, sha256) of the inputs a stamp records, in a stable order; for a folder
    the sha256 is ((file name, sha256), ...) of the files in it the stamp names."""
    if not stamp:
        return []
    found: dict[str, Any] = {}
    inputs = stamp.get("inputs")
    for section in (inputs, stamp.get("resources")):  # resources: packaged files by name
        if isinstance(section, dict):
            for path, digest in section.items():
                name = path if package_resource(path) is not None else norm(path, root)
                found[name] = digest if isinstance(digest, str) else None
    for role in ("target", "source"):
        value = stamp.get(role)
        if isinstance(value, str) and value.endswith(".safetensors"):
            found.setdefault(norm(value, root), stamp.get(f"{role}_sha256"))
    data = stamp.get("data")
    files: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("dir"), str):  # a checkpoint's record
        if isinstance(data.get("index_sha256"), str):
            files = {"index.csv": data["index_sha256"]}
        data = data["dir"]
    elif isinstance(stamp.get("data_sha256"), dict):  # a sweep's stamp
        files = {k: v for k, v in stamp["data_sha256"].items() if isinstance(v, str)}
    if isinstance(data, str):
        found.setdefault(norm(data, root), tuple(sorted(files.items())) or None)
    return [(p, found[p]) for p in sorted(found) if p != rel]
