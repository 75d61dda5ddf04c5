"""glibc told to keep freed memory, by the `prrmse` entry point only, with an opt-out."""

from __future__ import annotations

import ctypes
import platform

import pytest

from prrmse.cli import main as cli_main
from prrmse.core import memory


def test_opting_out_leaves_malloc_alone(monkeypatch) -> None:
    calls = []
    monkeypatch.setenv(memory.OPT_OUT, "default")
    monkeypatch.setattr(ctypes, "CDLL", lambda *a: calls.append(a))
    assert memory.keep_freed_memory() is False
    assert calls == []


def test_without_glibc_it_reports_false(monkeypatch) -> None:
    monkeypatch.delenv(memory.OPT_OUT, raising=False)

    def no_libc(*args):
        raise OSError("libc.so.6: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert memory.keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_on_glibc_both_settings_are_accepted(monkeypatch) -> None:
    monkeypatch.delenv(memory.OPT_OUT, raising=False)
    assert memory.keep_freed_memory() is True


def test_every_verb_runs_with_it_and_help_does_not(monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setattr(cli_main, "keep_freed_memory", lambda: calls.append(1) or True)
    assert cli_main.main(["summarise", "--help"]) == 0
    assert calls == []
    assert cli_main.main(["bnstats", "--source-checkpoint", "b", "--out", "o"]) == 2
    assert calls == []
    # a verb that runs (and fails on its input) has set malloc up first
    assert cli_main.main(["lineage", "no/such/file.png"]) != 0
    assert calls == [1]
