"""Shared helpers of the slow end-to-end tests: a temp copy of the repository, commands
run to success with their timings, and the paths and hashes DVC tracks.

The finished runs themselves (Snakemake's reference run, and the same run recorded in
DVC) are made once per pytest process in `tests.e2e_runs`.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from prrmse.core.io import sha256_file

ROOT = Path(__file__).resolve().parents[1]
TINY = Path("tests/workflow/tiny.yaml")
# Upper bounds, not expectations: the machine running the tests may be shared and slow.
REPRO_TIMEOUT_S = 3600
COMMAND_TIMEOUT_S = 600
GIT_IDENTITY = ["-c", "user.name=prrmse-test", "-c", "user.email=test@prrmse.invalid"]


def copy_repo(dest: Path) -> None:
    """The files git would see (tracked and untracked, not ignored), without DVC's state."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if (
            rel in ("dvc.yaml", "dvc.lock")
            or rel.startswith(".dvc/")
            or not (src.exists() or src.is_symlink())
        ):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


def tool_env(repo: Path) -> dict[str, str]:
    """This venv's tools first on PATH, the copy's own package first on PYTHONPATH."""
    return {
        **os.environ,
        "PYTHONPATH": str(repo / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run a command to success within `timeout` seconds, or fail the test with its output."""
    try:
        result = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-3000:]
        raise AssertionError(f"{' '.join(cmd)} ran past {timeout} s:\n{out!r}") from exc
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def timed(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = COMMAND_TIMEOUT_S
) -> tuple[subprocess.CompletedProcess, float]:
    began = time.perf_counter()
    result = run(cmd, cwd, env, timeout)
    return result, time.perf_counter() - began


def child_cpu_timed(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = COMMAND_TIMEOUT_S
) -> tuple[subprocess.CompletedProcess, float, float]:
    """`timed`, plus the CPU seconds (user + system) the command and its children used:
    on a loaded machine the wall time says more about the neighbours than the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result, wall = timed(cmd, cwd, env, timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


DVC = [sys.executable, "-m", "dvc"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
GIT = ["git", *GIT_IDENTITY]


def tracked_paths(repo: Path) -> list[str]:
    """Every out, metric and plot dvc.yaml declares (folders as they are declared)."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths: list[str] = []
    for stage in stages.values():
        paths += stage.get("outs", []) + stage.get("metrics", [])
        paths += [next(iter(p)) if isinstance(p, dict) else p for p in stage.get("plots", [])]
    return sorted(paths)


def tracked_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every file under the DVC-tracked paths, keyed by repo-relative path;
    a tracked path that is missing maps to "missing". Snakemake's `.snakemake_timestamp`
    in a folder it made is left out, as .dvcignore leaves it out of DVC's hashes."""
    hashes: dict[str, str] = {}
    for rel in tracked_paths(repo):
        path = repo / rel
        if path.is_dir():
            files = (p for p in path.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")
            for file in sorted(files):
                hashes[file.relative_to(repo).as_posix()] = sha256_file(file)
        elif path.is_file():
            hashes[rel] = sha256_file(path)
        else:
            hashes[rel] = "missing"
    return hashes


def without_logs(hashes: dict[str, str]) -> dict[str, str]:
    """The products alone: a job's log (also a DVC out) holds its timings and times of day."""
    return {rel: digest for rel, digest in hashes.items() if not rel.startswith("logs/")}


def downstream_stages(repo: Path, roots: set[str]) -> set[str]:
    """The stages of dvc.yaml that depend, directly or through others, on `roots` (included)."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]

    def outs(stage: dict) -> set[str]:
        paths = stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", [])
        return {next(iter(p)) if isinstance(p, dict) else p for p in paths}

    reached = set(roots)
    frontier = set(roots)
    while frontier:
        made = set().union(*(outs(stages[name]) for name in frontier))
        frontier = {
            name
            for name, stage in stages.items()
            if name not in reached
            and any(
                dep == out or dep.startswith(out + "/")
                for dep in stage.get("deps", [])
                for out in made
            )
        }
        reached |= frontier
    return reached
