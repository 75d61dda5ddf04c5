"""Progress in a job's log: timestamped lines flushed as they end, ETAs, device warnings."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

import pytest

from prrmse.core.device import select_device
from prrmse.core.errors import PrrmseError
from prrmse.core.progress import TimestampedLines, eta, format_seconds

STAMP = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "
FIXED = time.struct_time((2019, 6, 1, 12, 34, 56, 5, 152, 0))


class CountingFlushes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_each_line_gets_the_time_and_is_flushed_when_it_ends() -> None:
    inner = CountingFlushes()
    stream = TimestampedLines(inner, clock=lambda: FIXED)
    stream.write("epoch 1/3 loss 0.5")
    assert inner.flushes == 0  # a line is flushed when it ends, not before
    stream.write(" (12 s)\nepoch 2/3\n")
    assert inner.flushes == 2
    print("done", file=stream)
    assert inner.getvalue() == (
        "[2019-06-01 12:34:56] epoch 1/3 loss 0.5 (12 s)\n"
        "[2019-06-01 12:34:56] epoch 2/3\n"
        "[2019-06-01 12:34:56] done\n"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (42.4, "42 s"), (425, "7 min 05 s"), (12_000, "3 h 20 min")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_eta_at_the_mean_pace_so_far() -> None:
    assert eta(2, 10, 60.0) == "ETA 4 min 00 s"
    assert eta(0, 10, 5.0) == "ETA unknown"
    assert eta(10, 10, 600.0) == "done"


def test_job_verbs_write_timestamped_lines_to_a_file_and_query_verbs_do_not(tmp_path) -> None:
    """A job's stdout is a file: its lines carry the time even when Python buffers blocks;
    `prrmse lineage` (read by a person, or parsed) stays plain."""
    log = tmp_path / "phantoms.log"
    out = tmp_path / "raw"
    config = tmp_path / "config.yaml"
    config.write_text(
        "phantoms: {seed: 1, t1: {n_patients: 1, n_slices: 1, n_ti: 2, shape: [16, 16], "
        "spacing_mm: [2.0, 2.0], slice_thickness_mm: 8.0}}\n"
    )
    with log.open("w") as handle:
        job = subprocess.run(
            [
                sys.executable,
                "-m",
                "prrmse.cli.main",
                "phantoms",
                "--config",
                str(config),
                "--dataset",
                "t1",
                "--out",
                str(out),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=300,
        )
    lines = log.read_text().splitlines()
    assert job.returncode == 0, lines
    assert lines and all(re.match(STAMP, line) for line in lines), lines

    plain = subprocess.run(
        [sys.executable, "-m", "prrmse.cli.main", "lineage", str(tmp_path / "missing.png")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert not re.match(STAMP, plain.stdout + plain.stderr), plain.stdout + plain.stderr


def test_auto_without_a_gpu_warns_and_cuda_without_one_fails_at_once(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    said: list[str] = []
    assert select_device("auto", "train.device", said.append).type == "cpu"
    assert said == [
        "warning: config train.device is auto and no CUDA device is available: running on CPU"
    ]
    assert select_device("cpu", "train.device", said.append).type == "cpu" and len(said) == 1
    with pytest.raises(PrrmseError, match=r"config analysis.sweep.device: cuda requested"):
        select_device("cuda", "analysis.sweep.device")
