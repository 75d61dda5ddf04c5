"""What a job's `prrmse` process (`prrmse.cli.entry`) and `prrmse serve` exchange.

The job connects to the Unix socket named by `PRRMSE_SERVER` and sends the length of its
request with its fds 0, 1 and 2 attached (SCM_RIGHTS), then the request: JSON with `argv`,
`argv0`, `cwd` and `env`. The server answers with the job's exit code once its fork ends.
"""

from __future__ import annotations

import socket
import struct

SERVER_ENV = "PRRMSE_SERVER"
# the Slurm job the server runs in ("" outside Slurm): only jobs of the same one are served
SERVER_SLURM_JOB_ENV = "PRRMSE_SERVER_SLURM_JOB"
LENGTH = struct.Struct("!I")
EXIT_CODE = struct.Struct("!i")


def receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes from the socket, or None when the peer closes it first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
