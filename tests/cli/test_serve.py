"""`prrmse serve -- COMMAND`: the command's prrmse jobs run in forks of one warm process and
behave as the jobs' own processes would: their folder, environment, streams and exit codes;
a job killed by the workflow has its fork ended; no server, or another Slurm job, runs here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prrmse.cli import entry, wire

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRRMSE_SERVER")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


def _serve(script: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "prrmse"), "serve", "--", "bash", "-c", script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_served_jobs_keep_their_folder_environment_streams_and_exit_codes(tmp_path) -> None:
    (tmp_path / "job").mkdir()
    script = (
        "cd job && JOB_MARK=42 prrmse --version > version.txt; echo version $?; "
        "prrmse rmse --checkpoints a.safetensors b.safetensors --out r.csv 2> error.txt; "
        "echo rmse $?; prrmse no-such-verb 2> usage.txt; echo usage $?; exit 3"
    )
    done = _serve(script, tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.split("\n")[:3] == ["version 0", "rmse 1", "usage 2"]
    assert (tmp_path / "job/version.txt").read_text().startswith("prrmse ")
    error = (tmp_path / "job/error.txt").read_text().strip()
    assert error == "prrmse rmse: error: a.safetensors: checkpoint not found"
    assert "invalid choice: 'no-such-verb'" in (tmp_path / "job/usage.txt").read_text()
    assert not (tmp_path / "job/r.csv").exists()
    assert "3 prrmse jobs served" in done.stderr
    assert "bash exited 3" in done.stderr


def test_a_killed_job_has_its_fork_ended(tmp_path) -> None:
    """The fork of a served job here is itself a `prrmse serve` running `sleep`: killing the
    job's own process must end the fork, which ends its sleep, within seconds."""
    marker = f"{time.time_ns() % 10**6}.5"
    script = (
        f"prrmse serve -- sleep {marker} & job=$!; sleep 2; kill $job; wait $job; echo killed $?"
    )
    began = time.perf_counter()
    done = _serve(script, tmp_path, timeout=60)
    took = time.perf_counter() - began
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "killed 143"
    assert took < 30, took
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, check=False)
    assert left.stdout == b"", "the killed job's fork left its work running"


def test_a_request_cut_short_is_refused_and_the_server_serves_on(tmp_path) -> None:
    """A client that sends its streams and a length, then less than that length, and hangs
    up: the server says so in one line and serves the next job."""
    cut_short = (
        "import os, socket, struct; "
        "s = socket.socket(socket.AF_UNIX); s.connect(os.environ['PRRMSE_SERVER']); "
        "socket.send_fds(s, [struct.pack('!I', 100)], [0, 1, 2]); s.sendall(b'{}'); s.close()"
    )
    done = _serve(f'{sys.executable} -c "{cut_short}"; sleep 0.5; prrmse --version', tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("prrmse ")
    assert "a job's request was unreadable: the request ended early" in done.stderr
    assert "1 prrmse jobs served" in done.stderr


def test_without_an_answering_server_the_job_runs_here(tmp_path) -> None:
    done = subprocess.run(
        [str(BIN / "prrmse"), "--version"],
        env=_env(PRRMSE_SERVER=str(tmp_path / "gone.socket")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("prrmse ")


@pytest.mark.parametrize(
    ("job_slurm", "server_slurm", "served"),
    [(None, "", True), ("17", "", False), ("17", "17", True), (None, "17", False)],
)
def test_only_jobs_of_the_servers_own_slurm_allocation_are_served(
    monkeypatch, job_slurm, server_slurm, served
) -> None:
    monkeypatch.setenv(wire.SERVER_ENV, "/tmp/prrmse.socket")
    monkeypatch.setenv(wire.SERVER_SLURM_JOB_ENV, server_slurm)
    if job_slurm is None:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    else:
        monkeypatch.setenv("SLURM_JOB_ID", job_slurm)
    assert (entry.served_here() is not None) is served


def test_serve_needs_a_command() -> None:
    done = subprocess.run(
        [str(BIN / "prrmse"), "serve"], env=_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "prrmse serve: error: command: none given (prrmse serve -- snakemake ...)"
    )
