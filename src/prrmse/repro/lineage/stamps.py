"""The provenance stamp a product carries itself: CSV first line, PNG text chunk, PDF
Subject, safetensors metadata, JSON "provenance" key, meta.json of a processed dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prrmse.core.provenance import pdf_subject, png_text


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

    from prrmse.models.checkpoint import META_KEY

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
