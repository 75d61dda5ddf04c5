"""A processed dataset's raw files for the lineage tree: the files its index.csv names,
each re-hashed against the sha256 recorded there, as one node for the raw folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prrmse.core.io import sha256_file
from prrmse.repro.lineage.dvc_records import norm


def raw_node(root: Path, rel: str) -> dict[str, Any] | None:
    """A processed dataset's raw files (its index.csv names each with its sha256), verified."""
    import csv

    index = root / rel / "index.csv"
    meta = root / rel / "meta.json"
    if not (index.is_file() and meta.is_file()):
        return None
    try:
        raw_root = Path(json.loads(meta.read_text()).get("root", ""))
    except (json.JSONDecodeError, AttributeError):
        return None
    if not str(raw_root) or str(raw_root) == ".":
        return None
    base = raw_root if raw_root.is_absolute() else root / raw_root
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
            path = root / name
        if not path.is_file():
            missing.append(name)
        elif sha256_file(path) != digest:
            modified.append(name)
    raw_rel = norm(raw_root, root)
    node_type = "directory" if (root / raw_rel).is_dir() else "missing"
    status = "missing" if node_type == "missing" else "modified" if modified or missing else "ok"
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
