"""Whole-workflow runs of the tiny config in temp copies of the repository, and their hashes.

Shared by the slow end-to-end tests: the kill-and-resume test and the determinism
test compare their runs with one uninterrupted reference run, made once per
pytest session (`reference_run()`).
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prrmse.io import sha256_file
from tests.e2e import TINY, copy_repo, tool_env

PRODUCT_FOLDERS = ("data", "results")
RUN_TIMEOUT_S = 3600  # a whole tiny run takes ~4 min on 2 idle cores, ~10 min on a loaded box
# prrmse.io's atomic writes: `.<name>.tmp-<pid>` beside the final name
ATOMIC_TEMP = re.compile(r"^\..+\.tmp-\d+$")


def workflow_env(repo: Path) -> dict[str, str]:
    """The environment a user's shell would have: this venv first, the copy's sources imported
    (no fixed PYTHONHASHSEED: the runs must agree whatever Python's hash seed)."""
    return tool_env(repo)


def snakemake_cmd(*extra: str, cores: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        "--configfile",
        str(TINY),
        *extra,
    ]


def run_snakemake(repo: Path, *extra: str, timeout: float = RUN_TIMEOUT_S) -> float:
    """Run snakemake to completion in `repo`; its wall seconds. Fails with the log's tail."""
    began = time.perf_counter()
    result = subprocess.run(
        snakemake_cmd(*extra), cwd=repo, env=workflow_env(repo), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(extra)} failed in {repo}:\n{result.stderr[-4000:]}"
        )
    return time.perf_counter() - began


def product_files(repo: Path) -> list[str]:
    """Every file under data/ and results/, relative to the repository, sorted."""
    return sorted(
        path.relative_to(repo).as_posix()
        for folder in PRODUCT_FOLDERS
        for path in (repo / folder).rglob("*")
        if path.is_file()
    )


def product_hash(repo: Path, rel: str) -> str:
    """Every product is compared byte for byte: none records where the repository lies."""
    return sha256_file(repo / rel)


def product_hashes(repo: Path) -> dict[str, str]:
    return {rel: product_hash(repo, rel) for rel in product_files(repo)}


def leftovers(repo: Path) -> list[str]:
    """What an interrupted run may leave behind and a complete one must not: temp files of
    atomic writes, training resume state, Snakemake's incomplete-job markers and locks."""
    found = [
        path.relative_to(repo).as_posix()
        for folder in (*PRODUCT_FOLDERS, "logs")
        for path in (repo / folder).rglob("*")
        if ATOMIC_TEMP.match(path.name) or path.name == "state.safetensors"
    ]
    for marker in ("incomplete", "locks"):
        folder = repo / ".snakemake" / marker
        if folder.is_dir():
            found += [p.relative_to(repo).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(found)


def compare_hashes(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Files missing, extra or with different bytes, one line each (empty: identical)."""
    problems = [f"missing: {rel}" for rel in sorted(set(expected) - set(actual))]
    problems += [f"extra: {rel}" for rel in sorted(set(actual) - set(expected))]
    problems += [
        f"differs: {rel}"
        for rel in sorted(set(expected) & set(actual))
        if expected[rel] != actual[rel]
    ]
    return problems


@dataclass(frozen=True)
class Run:
    repo: Path
    hashes: dict[str, str]
    seconds: float


@functools.cache
def _snapshot() -> Path:
    """One copy of the repository per session: every run starts from the same sources even
    if the working tree changes while the slow tests run."""
    base = Path(tempfile.mkdtemp(prefix="prrmse-snapshot-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    copy_repo(base / "repo")
    return base / "repo"


def fresh_copy(name: str) -> Path:
    """A copy of the session's snapshot of the repository in a folder of its own (so each run
    has a different absolute path), removed when pytest exits."""
    base = Path(tempfile.mkdtemp(prefix=f"prrmse-{name}-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    repo = base / "repo"
    shutil.copytree(_snapshot(), repo, symlinks=True)
    return repo


def full_run(name: str) -> Run:
    """One uninterrupted run of the tiny config in a fresh copy."""
    repo = fresh_copy(name)
    seconds = run_snakemake(repo)
    return Run(repo, product_hashes(repo), seconds)


@functools.cache
def reference_run() -> Run:
    """The uninterrupted reference run, made once per pytest session."""
    return full_run("reference")
