"""`prrmse serve -- COMMAND`: run COMMAND (`snakemake ...`) with its `prrmse` jobs served
by forks of one process that imported the package and its libraries once.

Why: a job's own imports (torch, torchvision, smp, scipy, pandas, matplotlib) take 4-6 s of
CPU on this project's 2-core machine; serving took the demo's job-seconds from 3237 to 2286
(config/README.md). A fork starts with them loaded. What a job computes does not change: it
runs the same `prrmse.cli.main.main` in its own process, in the job's folder, with the job's
environment, arguments and standard streams (its log file), and its exit code goes back to
the job's `prrmse` process (`prrmse.cli.entry`), which the workflow sees as the job.

The server is one thread: forking a process with other Python threads is unsafe. It forks
only from its loop, before any torch operation has started a thread pool; the job then sets
its own thread count (`--threads`, or `OMP_NUM_THREADS` as Snakemake exports it), which a
fresh process would have read at start. A job whose `prrmse` process dies (killed by the
workflow, or Ctrl-C) has its fork terminated. The server stops when COMMAND ends, and
returns COMMAND's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import pkgutil
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prrmse.cli.wire import (
    EXIT_CODE,
    LENGTH,
    SERVER_ENV,
    SERVER_SLURM_JOB_ENV,
    receive_exactly,
)
from prrmse.core.errors import PrrmseError

# what the jobs import, loaded once before the first fork (the package's modules come after)
LIBRARIES = ("torch", "segmentation_models_pytorch", "scipy.optimize", "pandas", "matplotlib")
POLL_S = 0.05
RunVerb = Callable[[Sequence[str]], int]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a command (snakemake) with its prrmse jobs forked from one warm "
        "process: the same products, without each job's 4-6 s of imports",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="the command to run, after `--` (e.g. -- snakemake --cores 2)",
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> None:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise PrrmseError("command", "none given (prrmse serve -- snakemake ...)")
    # `prrmse.cli.main.main`, handed down by the parser: this module is one of its verbs
    code = serve(command, args.run_verb)
    if code:
        raise SystemExit(code)


def serve(command: Sequence[str], run_verb: RunVerb, log: Any = None) -> int:
    """Run `command` with PRRMSE_SERVER naming this process's socket, each job a fork that
    calls `run_verb(argv)`; the command's exit code."""
    log = log or (lambda line: print(f"prrmse serve: {line}", file=sys.stderr, flush=True))
    began = time.perf_counter()
    preload()
    log(f"imports loaded in {time.perf_counter() - began:.1f} s; running {' '.join(command)}")
    folder = Path(tempfile.mkdtemp(prefix="prrmse-serve-"))
    path = folder / "socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(64)
        env = {
            **os.environ,
            SERVER_ENV: str(path),
            SERVER_SLURM_JOB_ENV: os.environ.get("SLURM_JOB_ID", ""),
        }
        server = _Server(listener, run_verb)
        code, served = server.run(command, env)
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
    log(f"{command[0]} exited {code}; {served} prrmse jobs served")
    return code


def preload() -> None:
    """Import the libraries and every module of the package, as a job would."""
    for name in LIBRARIES:
        importlib.import_module(name)
    import prrmse

    for module in pkgutil.walk_packages(prrmse.__path__, prefix="prrmse."):
        importlib.import_module(module.name)


@dataclass
class _Job:
    pid: int
    connection: socket.socket


class _Server:
    """The fork loop: accept a job, fork it, send its exit code back, until the command ends."""

    def __init__(self, listener: socket.socket, run_verb: RunVerb) -> None:
        self.listener = listener
        self.run_verb = run_verb
        self.jobs: dict[int, _Job] = {}  # by the connection's fd
        self.selector = selectors.DefaultSelector()
        self.served = 0

    def run(self, command: Sequence[str], env: dict[str, str]) -> tuple[int, int]:
        self.selector.register(self.listener, selectors.EVENT_READ)
        # Ctrl-C reaches the whole foreground group: the command handles it, and the server
        # waits for the command to end rather than dying before the jobs it forked.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        child = subprocess.Popen(list(command), env=env)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            while child.poll() is None:
                for key, _ in self.selector.select(POLL_S):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._client_gone(key.fileobj)  # type: ignore[arg-type]
                self._reap()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._end_jobs()
            self.selector.close()
        return int(child.returncode), self.served

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        try:
            request, fds = _receive_request(connection)
        except (OSError, ValueError) as exc:
            print(f"prrmse serve: a job's request was unreadable: {exc}", file=sys.stderr)
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.listener.close()
            for job in self.jobs.values():
                job.connection.close()
            connection.close()
            _run_job(request, fds, self.run_verb)  # never returns
        for fd in fds:
            os.close(fd)
        self.jobs[connection.fileno()] = _Job(pid, connection)
        self.selector.register(connection, selectors.EVENT_READ)
        self.served += 1

    def _client_gone(self, connection: socket.socket) -> None:
        """The job's own process ended before its fork did (killed): end the fork too."""
        self.selector.unregister(connection)
        job = self.jobs.get(connection.fileno())
        if job is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)

    def _reap(self) -> None:
        for fd, job in list(self.jobs.items()):
            pid, status = os.waitpid(job.pid, os.WNOHANG)
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                job.connection.sendall(EXIT_CODE.pack(code if code >= 0 else 128 - code))
            self._forget(fd)

    def _forget(self, fd: int) -> None:
        job = self.jobs.pop(fd)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(job.connection)
        job.connection.close()

    def _end_jobs(self) -> None:
        for job in self.jobs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)
        for fd, job in list(self.jobs.items()):
            os.waitpid(job.pid, 0)
            self._forget(fd)


def _receive_request(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    head, fds, _, _ = socket.recv_fds(connection, LENGTH.size, 3)
    if len(head) != LENGTH.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("no header with three standard streams")
    (size,) = LENGTH.unpack(head)
    body = receive_exactly(connection, size)
    try:
        if body is None:
            raise ValueError("the request ended early")
        return json.loads(body), fds
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise


def _run_job(request: dict[str, Any], fds: list[int], run_verb: RunVerb) -> None:
    """In the fork: become the job's process, run its verb, exit with its code."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _reopen_standard_streams()
        sys.argv = [request["argv0"], *request["argv"]]
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))
        code = run_verb(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the job's own process would print it and exit 1
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reopen_standard_streams() -> None:
    """Text streams over the job's fds, buffered as a new process would buffer them."""
    stdout = open(1, "wb", closefd=False)  # noqa: SIM115 - lives as long as the process
    stderr = open(2, "wb", buffering=0, closefd=False)  # noqa: SIM115
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = io.TextIOWrapper(stdout, line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(stderr, errors="backslashreplace", line_buffering=True)
