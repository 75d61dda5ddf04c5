"""benchmarks/workflow.py: `make demo` stores its wall time, and `make bench` prints it with
a no-op `dvc repro` timed only on a clean record (never a rebuild)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.scripts import load_script

DVC = str(Path(sys.executable).parent / "dvc")


def test_the_demo_record_says_whether_the_install_was_part_of_the_time(tmp_path):
    workflow = load_script("workflow")
    started = time.time() - 100
    fresh = workflow.demo_record(started, started + 1392.4, 2, installed_at=started + 200)
    reused = workflow.demo_record(started, started + 1150.0, 2, installed_at=started - 3600)
    assert (fresh["seconds"], fresh["install_included"]) == (1392.4, True)
    assert (reused["seconds"], reused["install_included"]) == (1150.0, False)
    record = tmp_path / "demo-run.json"
    record.write_text(json.dumps(fresh))
    line = workflow.demo_line(record)
    assert line.startswith("make demo: 1392 s wall (install included; 2 cores; started ")


def test_a_missing_or_broken_demo_record_is_named_not_guessed(tmp_path):
    workflow = load_script("workflow")
    assert workflow.demo_line(tmp_path / "none.json") == (
        "make demo: not recorded (run `make demo` in this workspace)"
    )
    broken = tmp_path / "demo-run.json"
    broken.write_text("{")
    assert workflow.demo_line(broken).startswith(f"make demo: not recorded ({broken}: unreadable")


def _dvc_project(path):
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=path, check=True)
    (path / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: echo made > made.txt\n    outs:\n    - made.txt\n"
    )


def test_the_no_op_repro_is_timed_only_on_a_clean_record(tmp_path):
    workflow = load_script("workflow")
    _dvc_project(tmp_path)
    assert workflow.noop_repro_line(tmp_path) == (
        "no-op dvc repro: not measured (no dvc.lock: `make demo` records its run)"
    )
    subprocess.run([DVC, "repro", "-q"], cwd=tmp_path, check=True)
    line = workflow.noop_repro_line(tmp_path, repeats=2)
    assert line.startswith("no-op dvc repro: ") and line.endswith("(1 stage)"), line
    (tmp_path / "made.txt").write_text("changed by hand\n")
    assert workflow.noop_repro_line(tmp_path) == (
        "no-op dvc repro: not measured (`dvc status` is not clean: a repro would rebuild)"
    )
    assert (tmp_path / "made.txt").read_text() == "changed by hand\n"


def test_summary_puts_the_workflow_times_beside_their_goals():
    summary = load_script("summary")
    output = (
        "make demo: 1392 s wall (install included; 2 cores; started x; commit abc)\n"
        "no-op dvc repro: 3.8 s median of 3.9 / 3.8 / 3.7 s (195 stages)\n"
    )
    rows = {r.benchmark: (r.measured_value, r.goal) for r in summary.parse_workflow(output)}
    assert rows == {
        "make demo": (
            "1392 s wall (install included; 2 cores; started x; commit abc)",
            "<= 900 s on a fresh clone, install included",
        ),
        "no-op dvc repro": ("3.8 s median of 3.9 / 3.8 / 3.7 s (195 stages)", "< 3 s"),
    }
