"""Progress a job's log can be followed by, also when the log is a file.

A workflow job's stdout is a file (`> logs/...log`), which Python buffers in blocks: a
50-epoch training job's log stays empty for hours and loses its tail when Slurm kills
the job at its time limit. `timestamped(stream)` is what every job verb writes through:
each line gets the time of day and is flushed as soon as it ends. `eta` turns a count
done out of a total, and the seconds it took, into the time left.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

Clock = Callable[[], time.struct_time]


class TimestampedLines(io.TextIOBase):
    """A text stream that writes `[YYYY-mm-dd HH:MM:SS] ` before each line to `inner`
    and flushes `inner` at every line end."""

    def __init__(self, inner: TextIO, clock: Clock = time.localtime) -> None:
        super().__init__()
        self._inner = inner
        self._clock = clock
        self._at_line_start = True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                self._inner.write(time.strftime("[%Y-%m-%d %H:%M:%S] ", self._clock()))
            self._inner.write(piece)
            self._at_line_start = piece.endswith("\n")
            if self._at_line_start:
                self._inner.flush()
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()


@contextlib.contextmanager
def timestamped_stdout() -> Iterator[None]:
    """sys.stdout timestamped and flushed line by line for the block; restored after."""
    original = sys.stdout
    sys.stdout = TimestampedLines(original)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = original


def format_seconds(seconds: float) -> str:
    """`42 s`, `7 min 05 s`, `3 h 20 min`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def eta(done: int, total: int, elapsed_s: float) -> str:
    """`ETA 7 min 05 s` at the mean pace so far; `done` when nothing is left."""
    if done >= total:
        return "done"
    if done <= 0:
        return "ETA unknown"
    return f"ETA {format_seconds(elapsed_s / done * (total - done))}"
