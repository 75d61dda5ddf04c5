"""A Snakemake run and DVC's record of it, kept in agreement both ways.

`prrmse dvc-record` records a finished Snakemake run in dvc.lock (`make demo` ends with
it): `dvc commit -f` of every stage whose job Snakemake considers done, the outputs'
modification times put back as Snakemake left them (DVC's links replace the files), so
`dvc status`, a no-op `dvc repro` and `snakemake -n` all agree. The reverse direction,
after `dvc pull`/`checkout`/`repro`, is `prrmse dvc-sync --touch-snakemake`
(`sync_snakemake_after_dvc`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError
from prrmse.repro.codedeps import write_code_manifests
from prrmse.repro.dvcgen import (
    CODE_DEP,
    CODE_STAGE,
    dvc_yaml_content,
    has_package_source,
    job_verbs,
    render_dvc_yaml,
    stage_name,
)
from prrmse.repro.snakemake_dag import Job, relative_path, snakemake_jobs
from prrmse.repro.stage_params import VerbKeys, read_stage_params

# --- Snakemake after DVC restores files -------------------------------------------------


def _tool(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def dvc_status(workdir: Path) -> dict[str, Any]:
    """`dvc status --json` (empty when every stage is up to date)."""
    import json

    result = subprocess.run(
        [*_tool("dvc"), "status", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PrrmseError(workdir, f"dvc status failed: {result.stderr.strip().splitlines()[-1:]}")
    text = result.stdout.strip()
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


def sync_snakemake_after_dvc(
    workdir: Path = Path("."), configfile: Path = Path("config/config.yaml")
) -> str:
    """After `dvc pull`/`dvc checkout`, make Snakemake agree that nothing needs to run.

    `.snakemake/metadata` is not versioned and DVC writes files in arbitrary order,
    so Snakemake would rerun jobs DVC knows are current. Only when `dvc status` is
    clean (every output matches dvc.lock) is it safe to `snakemake --touch`, which
    sets the mtimes in DAG order and records the metadata. Otherwise refuse: touching
    would make stale outputs look current.
    """
    workdir = Path(workdir)
    status = dvc_status(workdir)
    if status:
        stages = ", ".join(sorted(status)[:5]) + (" ..." if len(status) > 5 else "")
        raise PrrmseError(
            workdir,
            f"dvc status is not clean ({len(status)} stages: {stages}); run `dvc pull` or `dvc repro` first",
        )
    result = subprocess.run(
        [*_tool("snakemake"), "--cores", "1", "--touch", "--configfile", str(configfile)],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise PrrmseError(workdir, f"snakemake --touch failed: {tail}")
    return result.stderr + result.stdout


# --- a Snakemake run recorded in dvc.lock -----------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What `record_snakemake_run` did: stages recorded in dvc.lock, those of them committed
    now (the others were recorded already), stages left out (Snakemake would still run
    them), files whose links were replaced by copies, seconds."""

    stages: list[str]
    committed: list[str]
    pending: list[str]
    unlinked: list[str]
    seconds: float


FileTimes = dict[str, tuple[int, int]]  # path relative to the workdir -> (atime_ns, mtime_ns)


def _dvc(workdir: Path, *args: str) -> str:
    result = subprocess.run(
        [*_tool("dvc"), *args], cwd=workdir, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise PrrmseError(workdir, f"dvc {args[0]} failed: {' '.join(tail)}")
    return result.stdout


def file_times(workdir: Path, paths: Iterable[str]) -> FileTimes:
    """(atime, mtime) of each path and, for a folder, of everything in it, as they are now."""
    times: FileTimes = {}

    def keep(path: Path) -> None:
        st = os.stat(path, follow_symlinks=False)
        times[path.relative_to(workdir).as_posix()] = (st.st_atime_ns, st.st_mtime_ns)

    for rel in paths:
        path = workdir / rel
        if path.is_dir() and not path.is_symlink():
            for current, dirs, files in os.walk(path):
                for name in dirs + files:
                    keep(Path(current) / name)
        if path.exists() or path.is_symlink():
            keep(path)
    return times


def _unlink_copy(path: Path) -> None:
    """Replace a link to DVC's cache by a plain copy of its bytes (what `dvc unprotect` does)."""
    temp = path.with_name(f".{path.name}.unlink-{os.getpid()}")
    shutil.copyfile(path, temp)
    os.replace(temp, path)


def restore_times(workdir: Path, times: FileTimes) -> list[str]:
    """Put the recorded times back after DVC linked files to its cache; return the files
    given a copy of their own.

    DVC replaces each out by a link to a new cache object, so the files get the time they
    were linked at, in DVC's order; Snakemake compares inputs' and outputs' times and would
    rerun jobs. Files with the same bytes share one cache object (hard link, or symlink
    target) and so one time; where they were written at different times, every one but
    the first gets a copy of its own. Folders last, deepest first (a new link inside a
    folder changes the folder's time).
    """
    by_object: dict[tuple[int, int], list[str]] = {}
    folders = []
    for rel in times:
        path = workdir / rel
        if path.is_dir() and not path.is_symlink():
            folders.append(rel)
        elif path.exists():
            st = path.stat()
            by_object.setdefault((st.st_dev, st.st_ino), []).append(rel)
    unlinked = []
    for group in by_object.values():
        group.sort(key=lambda rel: (times[rel][1], rel))
        for rel in group[1:]:
            if times[rel][1] != times[group[0]][1]:
                _unlink_copy(workdir / rel)
                unlinked.append(rel)
        for rel in group:
            path = workdir / rel
            if path.is_symlink():
                os.utime(path, ns=times[rel], follow_symlinks=False)
            os.utime(path, ns=times[rel])
    for rel in sorted(folders, key=lambda r: r.count("/"), reverse=True):
        os.utime(workdir / rel, ns=times[rel], follow_symlinks=False)
    return sorted(unlinked)


def record_snakemake_run(
    workdir: Path = Path("."),
    configfile: Path = Path("config/config.yaml"),
    snakefile: Path = Path("Snakefile"),
    *,
    verb_keys: VerbKeys,
) -> Recorded:
    """Record a Snakemake run in dvc.lock, so `dvc status` is clean and `dvc repro` a no-op.

    dvc.yaml must match the Snakefile's jobs for `configfile` (else: `prrmse dvc-sync`).
    Every stage whose job Snakemake considers done (outputs and log present, nothing newer
    upstream, params and code unchanged, not incomplete) and that dvc.lock does not record
    as it is is committed with `dvc commit --force`, its outs linked to the cache (with the
    project's link cache types a checkpoint is stored once; folders by `dvc checkout
    --relink`); stages Snakemake would still run are left out and named. Then the outputs
    get back the times Snakemake gave them (`restore_times`), and `dvc status` re-hashes
    them into DVC's state: it must list no recorded stage.
    """
    began = time.perf_counter()
    workdir = Path(workdir).resolve()
    jobs, content = _checked_jobs(workdir, configfile, snakefile, verb_keys)
    done, pending = _finished(workdir, jobs, configfile)
    if has_package_source(workdir):
        # the record vouches that the finished jobs ran the package source here now, as
        # it did when stages depended on the whole source (Snakemake does not track it)
        write_code_manifests(workdir / CODE_DEP, job_verbs(jobs), workdir)
        done_stages = {**done, CODE_STAGE: None}
    else:
        done_stages = dict(done)
    # DVC's commit costs seconds a stage (it re-reads the params file and saves the run
    # cache): with a dvc.lock, only the stages dvc status lists are committed
    listed = set(dvc_status(workdir)) if (workdir / "dvc.lock").is_file() else set(done_stages)
    changed = sorted(listed & set(done_stages))
    unlinked: list[str] = []
    if changed:
        every = len(changed) == len(content["stages"])
        unlinked = _commit(workdir, done, changed, every)
        # re-hashes the files with their restored times into DVC's state (so the next dvc
        # command finds them there) and checks the record
        listed = set(dvc_status(workdir))
    stale = sorted(listed - set(pending))
    if stale:
        raise PrrmseError(
            workdir / "dvc.lock",
            f"dvc status still lists {len(stale)} recorded stages ({', '.join(stale[:3])})",
        )
    return Recorded(
        sorted(done_stages), changed, sorted(pending), unlinked, time.perf_counter() - began
    )


def _checked_jobs(
    workdir: Path, configfile: Path, snakefile: Path, verb_keys: VerbKeys
) -> tuple[list[Job], dict[str, Any]]:
    """The DAG's jobs as Snakemake sees the workdir now, and dvc.yaml's content for them,
    which must be the committed dvc.yaml."""
    config_rel = relative_path((workdir / configfile).resolve(), workdir)
    dvc_yaml = workdir / "dvc.yaml"
    if not (workdir / ".dvc").is_dir():
        raise PrrmseError(workdir, "not a DVC project (no .dvc folder): run `dvc init` first")
    if not dvc_yaml.is_file():
        raise PrrmseError(dvc_yaml, f"not found: run `prrmse dvc-sync --config {config_rel}`")
    jobs = snakemake_jobs(snakefile, configfile, workdir, forceall=False)
    params = read_stage_params(workdir, configfile, verb_keys)
    content = dvc_yaml_content(jobs, params, has_package_source(workdir))
    if dvc_yaml.read_text() != render_dvc_yaml(content, config_rel):
        raise PrrmseError(
            dvc_yaml,
            f"does not match the Snakefile's jobs for {config_rel}: "
            f"run `prrmse dvc-sync --config {config_rel}` first",
        )
    return jobs, content


def _finished(workdir: Path, jobs: list[Job], configfile: Path) -> tuple[dict[str, Job], list[str]]:
    """Stage name -> job of every job Snakemake considers done; the stages it would run."""
    done: dict[str, Job] = {}
    pending: list[str] = []
    for job in jobs:
        made = job.outputs + job.logs
        if job.needrun or not all((workdir / p).exists() for p in made):
            pending.append(stage_name(job))
        else:
            done[stage_name(job)] = job
    if not done:
        config_rel = relative_path((workdir / configfile).resolve(), workdir)
        raise PrrmseError(workdir, f"nothing to record: no job of {config_rel} has finished")
    return done, pending


def _commit(workdir: Path, done: dict[str, Job], changed: list[str], every: bool) -> list[str]:
    """`dvc commit` the changed stages, their folders relinked, every done file's time kept;
    the files whose links were replaced by copies."""
    # every file of every done stage: one that shares a cache object with a committed
    # file shares its time too
    times = file_times(workdir, [p for job in done.values() for p in job.outputs + job.logs])
    _dvc(workdir, "commit", "--force", "--quiet", *([] if every else changed))
    # commit links the files it cached, not those inside a directory out
    folders = [name for name in changed if name in done and done[name].directories]
    if folders:
        _dvc(workdir, "checkout", "--relink", "--quiet", *folders)
    return restore_times(workdir, times)
