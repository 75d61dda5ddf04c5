"""The workflow's own times, for `make bench`: the last `make demo` of this workspace and a
no-op `dvc repro` of its record, beside issue 17's goals (900 s; under 3 s).

`make demo` cannot be rerun inside a benchmark (20-30 minutes on 2 cores), so the demo
writes its wall time when it ends: `record-demo` (the Makefile's last demo step) stores the
seconds since make started, the install included when this run made the virtual
environment, with the commit, cores and load. `measure` prints that record and times three
no-op `dvc repro` runs when the workspace holds a recorded run that `dvc status` calls
clean; it never starts a rebuild.

    python benchmarks/workflow.py record-demo --started EPOCH_SECONDS [--cores 2]
    python benchmarks/workflow.py measure [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_RECORD = ROOT / "results" / "demo-run.json"
INSTALLED_MARK = ROOT / ".venv" / ".installed"
DVC = Path(sys.executable).parent / "dvc"


def demo_record(started: float, ended: float, cores: int, installed_at: float | None) -> dict:
    """What one finished `make demo` measured: its wall time and what it included."""
    return {
        "seconds": round(ended - started, 1),
        "install_included": installed_at is not None and installed_at >= started,
        "started_utc": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "cores": cores,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "commit": _commit(),
    }


def _commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or None


def record_demo(started: float, cores: int, out: Path = DEMO_RECORD) -> dict:
    installed_at = INSTALLED_MARK.stat().st_mtime if INSTALLED_MARK.exists() else None
    record = demo_record(started, time.time(), cores, installed_at)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(out)
    return record


def demo_line(record_path: Path = DEMO_RECORD) -> str:
    """`make demo: ...`: the recorded run, or why there is none."""
    try:
        record = json.loads(record_path.read_text())
        seconds = float(record["seconds"])
    except FileNotFoundError:
        return "make demo: not recorded (run `make demo` in this workspace)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"make demo: not recorded ({record_path}: unreadable, {exc})"
    install = "install included" if record.get("install_included") else "install not included"
    return (
        f"make demo: {seconds:.0f} s wall ({install}; {record.get('cores')} cores; started "
        f"{record.get('started_utc')}; commit {str(record.get('commit'))[:9]})"
    )


def stage_count(workdir: Path = ROOT) -> int:
    return len((yaml.safe_load((workdir / "dvc.yaml").read_text()) or {}).get("stages", {}))


def noop_repro_line(workdir: Path = ROOT, repeats: int = 3) -> str:
    """`no-op dvc repro: ...`: the seconds of each run, or why none was timed."""
    if not (workdir / "dvc.lock").exists():
        return "no-op dvc repro: not measured (no dvc.lock: `make demo` records its run)"
    status = subprocess.run(
        [str(DVC), "status", "--json"], cwd=workdir, capture_output=True, text=True, check=False
    )
    if status.returncode != 0 or status.stdout.strip() not in ("{}", ""):
        return "no-op dvc repro: not measured (`dvc status` is not clean: a repro would rebuild)"
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        done = subprocess.run(
            [str(DVC), "repro"], cwd=workdir, capture_output=True, text=True, check=False
        )
        seconds.append(time.perf_counter() - began)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return f"no-op dvc repro: failed (exit {done.returncode}: {last})"
    runs = " / ".join(f"{s:.1f}" for s in seconds)
    stages = stage_count(workdir)
    return (
        f"no-op dvc repro: {sorted(seconds)[len(seconds) // 2]:.1f} s median of {runs} s "
        f"({stages} stage{'' if stages == 1 else 's'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    record = verbs.add_parser("record-demo", help="store the wall time of the demo just ended")
    record.add_argument("--started", type=float, required=True, help="epoch seconds make began")
    record.add_argument("--cores", type=int, default=2)
    measure = verbs.add_parser("measure", help="print the demo record and time no-op repros")
    measure.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.verb == "record-demo":
        saved = record_demo(args.started, args.cores)
        print(f"make demo: {saved['seconds']:.0f} s wall -> {DEMO_RECORD.relative_to(ROOT)}")
        return 0
    print(demo_line())
    print(noop_repro_line(repeats=args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
