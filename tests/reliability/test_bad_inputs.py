"""Every bad input through the real CLI: one line naming the file and the problem, a non-zero
exit, no traceback, and no output that a rerun would take as complete.

Cases run `prrmse.cli.main.main(argv)` in this process (a fresh interpreter costs seconds per case
on a loaded machine), except those that need a process of their own (a file-size limit),
which run `python -m prrmse.cli.main`. Set PRRMSE_RELIABILITY_README=<path> to write the table of
cases with their real messages (tests/reliability/README.md is made that way).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prrmse.cli.main import main
from tests.reliability.cases import CASES, Case, Env, Scenario
from tests.reliability.conftest import Kit, Mounts
from tests.reliability.readme import write_readme

TEMP_MARK = ".tmp-"  # prrmse.core.io's temporary siblings: .<name>.tmp-<pid>


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stderr: str


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits itself; main() should not let it, but count it
        code = exc.code if isinstance(exc.code, int) else 1
    # Any other exception escapes here and fails the test with its traceback: that is a bug.
    return Outcome(code, capsys.readouterr().err)


def run_process(scenario: Scenario) -> Outcome:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "prrmse.cli.main", *scenario.argv],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=scenario.preexec,
        timeout=300,
    )
    return Outcome(done.returncode, done.stderr)


def leftover_temps(outputs: tuple[Path, ...]) -> list[Path]:
    folders = {path.parent for path in outputs}
    return sorted(
        found
        for folder in folders
        if folder.is_dir()
        for found in folder.rglob("*")
        if TEMP_MARK in found.name
    )


@pytest.fixture(scope="session")
def messages() -> Iterator[dict[str, tuple[str, int]]]:
    found: dict[str, tuple[str, int]] = {}
    yield found
    target = os.environ.get("PRRMSE_RELIABILITY_README")
    if target:
        write_readme(Path(target), CASES, found)


@pytest.mark.parametrize("bad", CASES, ids=[c.name for c in CASES])
def test_bad_input(
    bad: Case,
    kit: Kit,
    tmp_path: Path,
    mounts: Mounts,
    tmpfs_ok: bool,
    capsys: pytest.CaptureFixture[str],
    messages: dict[str, tuple[str, int]],
) -> None:
    scenario = bad.make(Env(kit, tmp_path, mounts, tmpfs_ok))
    outcome = (
        run_process(scenario) if scenario.subprocess else run_in_process(scenario.argv, capsys)
    )

    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.exit_code == scenario.exit_code, outcome.stderr
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert len(lines) == 1, outcome.stderr
    line = lines[0]
    assert line.startswith(f"prrmse {scenario.argv[0]}: error: ") or (
        scenario.exit_code == 2 and line.startswith("prrmse")
    ), line
    assert str(scenario.where) in line, line
    for word in scenario.words:
        assert word in line, line
    present = [path for path in scenario.outputs if path.exists()]
    assert not present, f"outputs a rerun would take as complete: {present}"
    assert not leftover_temps(scenario.outputs)
    messages[bad.name] = (
        line.replace(str(tmp_path), "<case>").replace(str(kit.root), "<kit>"),
        outcome.exit_code,
    )


def test_suite_covers_every_entry_point_with_30_cases() -> None:
    entries = {c.entry for c in CASES}
    assert {
        "raw data",
        "processed data",
        "config",
        "checkpoint",
        "plans and tables",
        "CLI arguments",
        "output",
    } <= entries
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
