"""The lineage tree as text, its problems and its verdict (trusted, NOT TRUSTED,
UNVERIFIED), and `run_lineage` that prints it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError
from prrmse.repro.lineage.tree import lineage, problems


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
