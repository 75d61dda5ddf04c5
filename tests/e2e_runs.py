"""Whole-workflow runs of the tiny config in temp copies of the repository, and their hashes.

Shared by the slow end-to-end tests, each made once per pytest session because a run
takes minutes on 2 cores:
- `reference_run()`: one uninterrupted Snakemake run; the kill-and-resume and the
  determinism tests compare their own runs with its hashes, taken when it finished.
- `recorded_run()`: the same run recorded in DVC (`prrmse dvc-record`, what `make demo`
  ends with) in a git + DVC project, as a clone of the repository is. The DVC, lineage,
  report and record tests use it; a test that changes it puts it back as it found it
  (outputs rerun to the same bytes, the config reverted, the record made again).
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
from dataclasses import dataclass, field
from pathlib import Path

from prrmse.cli.main import verb_config_keys
from prrmse.core.io import sha256_file
from prrmse.repro import dvcgen
from tests import e2e
from tests.e2e import TINY, copy_repo, tool_env

PRODUCT_FOLDERS = ("data", "results")
RUN_TIMEOUT_S = 3600  # a whole tiny run takes ~4 min on 2 idle cores, ~10 min on a loaded box
# prrmse.core.io's atomic writes: `.<name>.tmp-<pid>` beside the final name
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


def run_snakemake(
    repo: Path, *extra: str, timeout: float = RUN_TIMEOUT_S, served: bool = False
) -> float:
    """Run snakemake to completion in `repo`; its wall seconds. Fails with the log's tail.
    `served`: under `prrmse serve`, as `make demo` runs it."""
    began = time.perf_counter()
    result = subprocess.run(
        [*(["prrmse", "serve", "--"] if served else []), *snakemake_cmd(*extra)],
        cwd=repo,
        env=workflow_env(repo),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
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


# Every copy's one commit has the same hash: products stamp the commit their code came from,
# so runs in different copies (and DVC's rerun of a stage) can give the same bytes.
FIXED_COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "prrmse-test",
    "GIT_AUTHOR_EMAIL": "test@prrmse.invalid",
    "GIT_COMMITTER_NAME": "prrmse-test",
    "GIT_COMMITTER_EMAIL": "test@prrmse.invalid",
    "GIT_AUTHOR_DATE": "2019-06-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2019-06-01T00:00:00+00:00",
}


@functools.cache
def _snapshot() -> Path:
    """One copy of the repository per session, as a clone is: a git + DVC project with the
    project's own `.dvc/config` (link cache types) and the dvc.yaml generated for the tiny
    config, committed once. Every run starts from the same sources even if the working
    tree changes while the slow tests run."""
    base = Path(tempfile.mkdtemp(prefix="prrmse-snapshot-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    repo = base / "repo"
    copy_repo(repo)
    env = {**tool_env(repo), **FIXED_COMMIT_ENV}
    e2e.run(["git", "init", "-q", "."], repo, env)
    e2e.run([*e2e.DVC, "init", "-q"], repo, env)
    shutil.copy(e2e.ROOT / ".dvc/config", repo / ".dvc/config")
    dvcgen.write_dvc_yaml(Path("Snakefile"), TINY, repo, verb_keys=verb_config_keys())
    e2e.run(["git", "add", "-A"], repo, env)
    e2e.run(["git", "-c", "commit.gpgsign=false", "commit", "-qm", "tiny"], repo, env)
    return repo


def fresh_copy(name: str) -> Path:
    """A copy of the session's snapshot of the repository in a folder of its own (so each run
    has a different absolute path), removed when pytest exits."""
    base = Path(tempfile.mkdtemp(prefix=f"prrmse-{name}-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    repo = base / "repo"
    shutil.copytree(_snapshot(), repo, symlinks=True)
    return repo


def full_run(name: str, served: bool = False) -> Run:
    """One uninterrupted run of the tiny config in a fresh copy (`served`: under `prrmse
    serve`)."""
    repo = fresh_copy(name)
    seconds = run_snakemake(repo, served=served)
    return Run(repo, product_hashes(repo), seconds)


@functools.cache
def reference_run() -> Run:
    """The uninterrupted reference run, made once per pytest session."""
    return full_run("reference")


@dataclass
class RecordedRun:
    """The reference run as a git + DVC project, its Snakemake products recorded in DVC."""

    repo: Path
    env: dict[str, str]
    record_output: str
    hashes: dict[str, str]  # sha256 of every file DVC tracks, right after the record
    timings: dict[str, float] = field(default_factory=dict)

    def snakemake(self, *args: str, timeout: float = e2e.COMMAND_TIMEOUT_S) -> str:
        result = e2e.run(
            [*e2e.SNAKEMAKE, *args, "--configfile", str(TINY)], self.repo, self.env, timeout
        )
        return result.stdout + result.stderr


@functools.cache
def recorded_run() -> RecordedRun:
    """`prrmse dvc-record` in the reference run's project. dvc.lock is left uncommitted, so
    the commit the products stamp stays the one they were made from."""
    reference = reference_run()
    repo, env = reference.repo, workflow_env(reference.repo)
    result, seconds = e2e.timed(["prrmse", "dvc-record", "--config", str(TINY)], repo, env)
    timings = {"snakemake run": reference.seconds, "prrmse dvc-record": seconds}
    return RecordedRun(repo, env, result.stdout, e2e.tracked_hashes(repo), timings)
