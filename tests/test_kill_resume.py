"""Interrupted work resumes: the whole tiny workflow, SIGKILLed again and again, ends with
the same bytes as an uninterrupted run and leaves nothing half-written.

A user's worst day: `kill -9` of snakemake and every job it runs (its whole process group) at
seeded-random points, then what a user does next: `snakemake --unlock` (the lock of the killed
run is stale) and `snakemake --rerun-incomplete`. Kills are aimed at the job kinds in the
order the workflow reaches them (data, training, sweep, RMSE, plan, reuse training, figures,
tables): each attempt waits until a job of its kind (or a later one) starts, then waits a
random 0.3..6 s more, so kills land in Python start-up, in computation and in writes alike.
Where each kill landed is read from snakemake's own log (jobs started and not finished).
"""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e_runs import (
    RUN_TIMEOUT_S,
    compare_hashes,
    fresh_copy,
    leftovers,
    product_hashes,
    reference_run,
    run_snakemake,
    snakemake_cmd,
    workflow_env,
)

SEED = 20190601
# each entry aims one kill; a rule's rank is its first position here
TARGETS = (
    "phantoms",
    "prepare",
    "train",
    "train",
    "sweep",
    "rmse_pair",
    "plan",
    "reuse",
    "reuse",
    "figure",
    "table1",
    "rmse_to_ideal",
    "figure_reuse",
)
RANK = {rule: TARGETS.index(rule) for rule in TARGETS}
MIN_KILLS = 10
DELAY_S = (0.3, 6.0)

JOB_START = re.compile(r"^(?:local)?rule (\w+):$")
JOB_ID = re.compile(r"^\s+jobid: (\d+)$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
JOB_DONE = re.compile(r"^Finished jobid: (\d+)")


@dataclass
class Attempt:
    target: str
    delay: float
    killed: bool = False
    running: list[str] = field(default_factory=list)  # "rule[wildcards]" of jobs hit by the kill
    seconds: float = 0.0


class _SnakemakeLog:
    """Reads snakemake's merged output as it comes; knows which jobs have started and finished."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)

    def jobs(self) -> tuple[dict[str, str], set[str]]:
        """(jobid -> "rule[wildcards]" of every started job, finished jobids)."""
        started, finished, rule = {}, set(), None
        for line in list(self.lines):
            if match := JOB_START.match(line):
                rule = match.group(1)
            elif (match := JOB_ID.match(line)) and rule:
                started[match.group(1)] = rule
            elif (match := WILDCARDS.match(line)) and started and rule:
                last = next(reversed(started))
                started[last] = f"{rule}[{match.group(1)}]"
            elif match := JOB_DONE.match(line):
                finished.add(match.group(1))
                rule = None
        return started, finished


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill_all(process: subprocess.Popen) -> list[int]:
    """kill -9 of the process group (snakemake and its jobs); descendants that left the group
    are killed too and returned (there should be none)."""
    others = _children(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    strays = []
    for pid in others:
        try:
            if os.getpgid(pid) != process.pid:
                os.kill(pid, signal.SIGKILL)
                strays.append(pid)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)
    return strays


def _attempt(repo: Path, target: str, delay: float, deadline: float) -> Attempt:
    """One `snakemake --rerun-incomplete`, killed `delay` s after a job of `target`'s rank or
    later starts; not killed if it finishes first."""
    attempt = Attempt(target, delay)
    began = time.perf_counter()
    process = subprocess.Popen(
        snakemake_cmd("--rerun-incomplete"),
        cwd=repo,
        env=workflow_env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = _SnakemakeLog(process.stdout)
    try:
        fire_at = None
        while process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"kill-and-resume ran past {RUN_TIMEOUT_S} s")
            if fire_at is None:
                started, _ = log.jobs()
                if any(RANK.get(job.split("[")[0], -1) >= RANK[target] for job in started.values()):
                    fire_at = time.monotonic() + delay
            elif time.monotonic() >= fire_at:
                strays = _kill_all(process)
                assert not strays, f"jobs outside snakemake's process group: {strays}"
                attempt.killed = True
                break
            time.sleep(0.05)
    except BaseException:
        if process.poll() is None:
            _kill_all(process)
        raise
    log.join()
    if not attempt.killed:
        assert process.returncode == 0, "\n".join(log.lines[-60:])
    started, finished = log.jobs()
    attempt.running = sorted(job for jobid, job in started.items() if jobid not in finished)
    attempt.seconds = time.perf_counter() - began
    return attempt


@pytest.mark.slow
def test_killed_workflow_resumes_to_identical_bytes():
    reference = reference_run()
    repo = fresh_copy("killed")
    rng = random.Random(SEED)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    began = time.perf_counter()
    attempts = []
    for target in TARGETS:
        attempt = _attempt(repo, target, round(rng.uniform(*DELAY_S), 2), deadline)
        attempts.append(attempt)
        if not attempt.killed:
            break  # the workflow finished before this kill could land
        # the killed run's lock is stale: what snakemake's error message tells a user to do
        run_snakemake(repo, "--unlock", timeout=300)
    run_snakemake(repo, "--rerun-incomplete", timeout=max(60.0, deadline - time.monotonic()))
    seconds = time.perf_counter() - began

    kills = [a for a in attempts if a.killed]
    by_rule = collections.Counter(job.split("[")[0] for a in kills for job in a.running)
    report = [
        f"kill {n}: aimed at {a.target} +{a.delay:.2f} s after {a.seconds:.0f} s; running: "
        f"{', '.join(a.running) or '(none: between jobs)'}"
        for n, a in enumerate(kills, 1)
    ]
    print("\n" + "\n".join(report))
    print(f"kills per rule running at the time: {dict(sorted(by_rule.items()))}")
    print(
        f"killed run: {len(kills)} kills, {seconds:.0f} s in all; reference run {reference.seconds:.0f} s"
    )

    assert len(kills) >= MIN_KILLS, report
    assert len(by_rule) >= 5, f"kills landed in too few kinds of job: {by_rule}"
    problems = compare_hashes(reference.hashes, product_hashes(repo))
    problems += [f"left behind: {rel}" for rel in leftovers(repo)]
    print(f"compared {len(reference.hashes)} files by sha256; problems: {len(problems)}")
    assert not problems, "the resumed run is not the uninterrupted one:\n" + "\n".join(problems)
