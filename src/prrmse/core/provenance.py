"""What made a product: code version, packages, seed, device, config values.

The stamp is free of wall-clock times so that two runs of the same commit and
seed produce the same bytes.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import prrmse

TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "segmentation-models-pytorch",
    "numpy",
    "scipy",
    "nibabel",
    "pydicom",
    "pandas",
    "safetensors",
    "matplotlib",
)


@functools.cache
def code_version() -> dict[str, Any]:
    """Git commit of the source tree this package runs from, and whether it is dirty."""
    source = Path(prrmse.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        # only the code counts: DVC rewrites dvc.lock after every stage of a run
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "pyproject.toml"],
            cwd=source.parent.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return {"version": prrmse.__version__, "commit": commit, "dirty": bool(status)}
    except (OSError, subprocess.CalledProcessError):
        return {"version": prrmse.__version__, "commit": None, "dirty": None}


@functools.cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def stamp(**fields: Any) -> dict[str, Any]:
    """Provenance record: code, packages, plus caller fields (seed, device, config, inputs)."""
    record: dict[str, Any] = {"code": code_version(), "packages": package_versions()}
    record.update({key: value for key, value in fields.items() if value is not None})
    return record


def csv_header(record: dict[str, Any]) -> str:
    """A comment line that pandas skips with `comment='#'`."""
    return "# provenance: " + json.dumps(record, sort_keys=True, default=str) + "\n"


def read_csv_provenance(path: str | Path) -> dict[str, Any] | None:
    """The stamp on a CSV's first line; None if it has none; an error if it is damaged."""
    from prrmse.core.errors import PrrmseError

    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except UnicodeDecodeError:
        raise PrrmseError(path, "not a text file (expected a CSV table)") from None
    if not first.startswith("# provenance: "):
        return None
    try:
        record = json.loads(first[len("# provenance: ") :])
    except json.JSONDecodeError as exc:
        raise PrrmseError(path, f"damaged provenance line (not valid JSON: {exc.msg})") from None
    if not isinstance(record, dict):
        raise PrrmseError(path, "damaged provenance line (not a JSON object)")
    return record


def png_text(path: str | Path, key: str = "prrmse") -> str | None:
    """A PNG's text chunk `key` (where figures keep their stamp), None if absent."""
    from PIL import Image  # only readers of figures need Pillow

    with Image.open(path) as image:
        return getattr(image, "text", {}).get(key)


def pdf_subject(path: str | Path) -> str | None:
    """A PDF's /Subject literal string (where figures keep their stamp), None if absent."""
    data = Path(path).read_bytes()
    start = data.find(b"/Subject (")
    if start < 0:
        return None
    # A PDF literal string: matplotlib escapes \ ( ) and newlines with a backslash.
    chars, i, escapes = [], start + len(b"/Subject ("), {"n": "\n", "r": "\r"}
    while i < len(data) and data[i : i + 1] != b")":
        char = chr(data[i])
        if char == "\\" and i + 1 < len(data):
            i += 1
            char = escapes.get(chr(data[i]), chr(data[i]))
        chars.append(char)
        i += 1
    return "".join(chars)
