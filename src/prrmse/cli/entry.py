"""The `prrmse` command: a job handed to a warm `prrmse serve` when one serves this shell,
else run here.

Every workflow job is a fresh `prrmse <verb>` process, and importing torch, torchvision and
smp costs it 4-6 s before any work; serving the demo's 195 jobs took its job-seconds from
3237 to 2286 (config/README.md). `prrmse serve -- snakemake ...` imports them once and forks
a child per job; it exports `PRRMSE_SERVER` (its socket) to the command, and this entry
point then only sends its arguments, working folder, environment and standard streams
there and waits for the exit code. It imports nothing heavy itself, so a job costs
milliseconds to start.

A job runs here, as it always did, when no server is named, when the socket does not
answer, or when the job runs inside a Slurm job other than the server's (a cluster job uses
the node and allocation the scheduler gave it, not the submitting host's server).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence

from prrmse.cli.wire import (
    EXIT_CODE,
    LENGTH,
    SERVER_ENV,
    SERVER_SLURM_JOB_ENV,
    receive_exactly,
)


def main() -> int:
    code = forward_to_server(sys.argv[1:])
    if code is not None:
        return code
    from prrmse.cli.main import main as run_here

    return run_here()


def served_here() -> str | None:
    """The server socket this process may use, or None (no server, or another Slurm job)."""
    path = os.environ.get(SERVER_ENV)
    if not path:
        return None
    if os.environ.get("SLURM_JOB_ID", "") != os.environ.get(SERVER_SLURM_JOB_ENV, ""):
        return None
    return path


def forward_to_server(argv: Sequence[str]) -> int | None:
    """Run `prrmse argv` in the server's fork; its exit code, or None to run here instead."""
    path = served_here()
    if path is None:
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError:
        client.close()
        return None
    with client:
        request = json.dumps(
            {
                "argv": list(argv),
                "argv0": sys.argv[0],
                "cwd": os.getcwd(),
                "env": dict(os.environ),
            }
        ).encode()
        streams = _standard_streams()
        socket.send_fds(client, [LENGTH.pack(len(request))], streams[:3])
        client.sendall(request)
        for fd in streams[3:]:
            os.close(fd)
        reply = receive_exactly(client, EXIT_CODE.size)
    if reply is None:
        print(f"prrmse: error: {path}: the server ended before the job did", file=sys.stderr)
        return 1
    return int(EXIT_CODE.unpack(reply)[0])


def _standard_streams() -> list[int]:
    """fds 0, 1, 2; a closed one (a job started without stdin) is sent as /dev/null, which the
    returned list then also holds, past the first three, for the caller to close."""
    streams = [0, 1, 2]
    opened = []
    for fd in streams:
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            streams[fd] = null
            opened.append(null)
    return streams + opened


if __name__ == "__main__":
    sys.exit(main())
