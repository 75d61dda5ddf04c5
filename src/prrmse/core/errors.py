"""The one error type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class PrrmseError(Exception):
    """A problem with a user's input: names the file (or config key) and what is wrong."""

    def __init__(self, where: str | Path, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
