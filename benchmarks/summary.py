"""`make bench`: run the training and sweep benchmarks and write their ratios to results/bench.md,
with the workflow's own times (the last `make demo` here, a no-op `dvc repro`) beside their goals.

Each benchmark measures its baseline and its subject in the same run, interleaved, so the
ratios hold on a shared machine where absolute times do not. This script runs them as
subprocesses (the commands are listed in the summary, to be rerun by hand), reads the
numbers from their output and writes one Markdown page: every ratio with its baseline and
measured values, the machine (CPU model, cores, load average), torch threads, torch
version, code version, date and the commands, then each benchmark's own output.

    python benchmarks/summary.py [--out results/bench.md] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from prrmse.core.errors import PrrmseError
from prrmse.core.io import write_text_atomic
from prrmse.core.provenance import code_version, cpu_model

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent

# training at the demo's sizes (the config's epochs, iterations, shape and batch): with fewer
# steps the one-off set-up dominates and the ratio says little; the sweep at 48 x 48 and 100
# validation images. About 10 minutes together on 2 idle cores. --quick: a smoke run
FULL_ARGS = {
    "train": ["--repeats", "3"],
    "sweep": ["--size", "48", "--n-images", "100"],
    "workflow": ["measure"],
}
QUICK_ARGS = {
    "train": ["--epochs", "1", "--iterations", "2", "--repeats", "1"],
    "sweep": ["--size", "32", "--n-images", "20", "--unet-width", "4"],
    "workflow": ["measure", "--repeats", "1"],
}

TRAIN_LINE = re.compile(
    r"^(?P<network>\w+)\s+bare loop\s+(?P<bare>[\d.]+) img/s\s+prrmse train\s+(?P<ours>[\d.]+) img/s"
    r"\s+ratio (?P<ratio>[\d.]+) \(target (?P<target>[^)]+)\)$"
)
SWEEP_HEAD = re.compile(r"^(?P<network>\w+) \{.*\}: R = (?P<r>\d+) replacements \+ baseline$")
SWEEP_IDEAL = re.compile(
    r"^\s+ideal of prefix reuse: FLOPs\s+(?P<flops>[\d.]+)x; measured seconds\s+(?P<secs>[\d.]+)x"
)
SWEEP_NAIVE = re.compile(r"^\s+naive: deepcopy \+ load \+ evaluate\s+(?P<wall>[\d.]+) s")
SWEEP_FULL = re.compile(r"^\s+\(R\+1\) full passes, extrapolated\s+(?P<wall>[\d.]+) s")
SWEEP_VARIANT = re.compile(
    r"^\s+(?P<label>prefix reuse, naive numerics|prefix \+ \S+)\s+(?P<wall>[\d.]+) s \(cpu\s+[\d.]+ s\): "
    r"\s*(?P<vs_naive>[\d.]+)x naive .*?(?P<vs_full>[\d.]+)x full passes = \s*(?P<pct_flops>\d+) % of the FLOP ideal"
)
SWEEP_EXACT = re.compile(r"^\s+prefix rows bit-identical to naive: (?P<exact>\w+)$")
SWEEP_GAP = re.compile(r"^\s+prefix \+ (?P<settings>\S+): max \|Dice - naive\| = (?P<gap>\S+)$")
# issue 17's goals: the PSPNet sweep past prefix reuse's FLOP ideal; UNet's speed-up kept
# (2.70x prefix reuse, 3.77x best settings when the goals were set)
SWEEP_GOALS = {"pspnet": ">= 2.5x", "unet": "keep (2.70x, best 3.77x)"}
# benchmarks/workflow.py's lines -> (benchmark, what, issue 17's goal)
WORKFLOW_LINES = {
    "make demo": ("make demo", "its last run here", "<= 900 s on a fresh clone, install included"),
    "no-op dvc repro": ("no-op dvc repro", "the demo's record", "< 3 s"),
}
THREADS = re.compile(r"torch threads (\d+)|(\d+) threads[;,]")


@dataclass(frozen=True)
class Ratio:
    benchmark: str
    network: str
    baseline: str
    baseline_value: str
    measured: str
    measured_value: str
    ratio: str
    goal: str


@dataclass(frozen=True)
class Result:
    name: str
    command: list[str]
    output: str
    seconds: float
    threads: int | None
    ratios: list[Ratio]


def _command(script: str, args: list[str]) -> list[str]:
    return [sys.executable, str((BENCH_DIR / script).relative_to(ROOT)), *args]


def _run(name: str, command: list[str], threads: int) -> tuple[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    began = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PrrmseError(command[1], f"{name} benchmark failed (exit {result.returncode}): {last}")
    return result.stdout, seconds


def _threads(output: str) -> int | None:
    match = THREADS.search(output)
    return int(match.group(1) or match.group(2)) if match else None


def parse_train(output: str) -> list[Ratio]:
    ratios = []
    for line in output.splitlines():
        if match := TRAIN_LINE.match(line.strip()):
            ratios.append(
                Ratio(
                    "training throughput",
                    match["network"],
                    "bare loop",
                    f"{match['bare']} img/s",
                    "prrmse train",
                    f"{match['ours']} img/s",
                    match["ratio"],
                    match["target"],
                )
            )
    return ratios


def _exactness(network: str, variant: str, ratio: str, goal: str) -> Ratio:
    """A variant's Dice against the naive sweep's."""
    return Ratio(
        "sweep exactness", network, "naive sweep Dice", "-", f"{variant} Dice", "-", ratio, goal
    )


def parse_sweep(output: str) -> list[Ratio]:
    ratios: list[Ratio] = []
    network = naive = full = ideal = goal = ""
    for line in output.splitlines():
        if match := SWEEP_HEAD.match(line):
            network = f"{match['network']} (R = {match['r']})"
            goal = SWEEP_GOALS.get(match["network"], "> 1 (faster)")
        elif match := SWEEP_IDEAL.match(line):
            ideal = f"ideal {match['flops']}x (FLOPs), {match['secs']}x (seconds)"
        elif match := SWEEP_NAIVE.match(line):
            naive = f"{match['wall']} s"
        elif match := SWEEP_FULL.match(line):
            full = f"{match['wall']} s"
        elif match := SWEEP_VARIANT.match(line):
            ratios.append(
                Ratio(
                    "sweep speed-up",
                    network,
                    "naive sweep",
                    naive,
                    match["label"],
                    f"{match['wall']} s",
                    f"{match['vs_naive']}x",
                    goal,
                )
            )
            ratios.append(
                Ratio(
                    "sweep vs full passes",
                    network,
                    "(R+1) full passes",
                    full,
                    match["label"],
                    f"{match['wall']} s",
                    f"{match['vs_full']}x",
                    f"{ideal}; reached {match['pct_flops']} % of the FLOP ideal",
                )
            )
        elif match := SWEEP_EXACT.match(line):
            ratios.append(
                _exactness(
                    network,
                    "prefix reuse",
                    f"bit-identical: {match['exact']}",
                    "bit-identical (exact by default)",
                )
            )
        elif match := SWEEP_GAP.match(line):
            ratios.append(
                _exactness(
                    network,
                    f"prefix + {match['settings']}",
                    f"max |dDice| {match['gap']}",
                    "opt-in: reported",
                )
            )
    return ratios


def parse_workflow(output: str) -> list[Ratio]:
    """The demo's recorded wall time and the no-op repro's seconds: absolute, no baseline."""
    ratios = []
    for line in output.splitlines():
        name, _, value = line.partition(": ")
        if name in WORKFLOW_LINES:
            benchmark, network, goal = WORKFLOW_LINES[name]
            ratios.append(Ratio(benchmark, network, "-", "-", name, value, "-", goal))
    return ratios


PARSERS = {"train": parse_train, "sweep": parse_sweep, "workflow": parse_workflow}
SCRIPTS = {"train": "train_throughput.py", "sweep": "sweep.py", "workflow": "workflow.py"}


def run_benchmark(name: str, args: list[str], threads: int) -> Result:
    extra = ["--threads", str(threads)] if name == "train" else []
    command = _command(SCRIPTS[name], [*args, *extra])
    print(f"bench: {' '.join(command[1:])}", flush=True)
    output, seconds = _run(name, command, threads)
    ratios = PARSERS[name](output)
    if not ratios:
        raise PrrmseError(command[1], f"{name} benchmark printed no ratio this summary can read")
    return Result(name, command, output, seconds, _threads(output), ratios)


def render(
    results: list[Result], began: str, load: tuple[tuple[float, ...], tuple[float, ...]]
) -> str:
    code = code_version()
    dirty = " (uncommitted changes)" if code.get("dirty") else ""
    lines = [
        "# Benchmarks",
        "",
        "Each ratio compares a subject with a baseline measured in the same run, interleaved, so it holds "
        "on a loaded machine where the absolute numbers do not. Written by `make bench` "
        "(`benchmarks/summary.py`).",
        "",
        f"- date: {began}",
        f"- machine: {cpu_model()} ({platform.machine()}), {os.cpu_count()} logical CPUs; "
        f"load average (1, 5, 15 min) {' '.join(f'{x:.2f}' for x in load[0])} at start, "
        f"{' '.join(f'{x:.2f}' for x in load[1])} at the end",
        "- torch threads: "
        + ", ".join(f"{r.name} {r.threads}" for r in results if r.threads is not None),
        f"- torch {torch.__version__}, Python {platform.python_version()}",
        f"- code: prrmse {code.get('version')}, commit {code.get('commit') or 'unknown'}{dirty}",
        "",
        "| benchmark | network | baseline | baseline value | measured | measured value | ratio | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines += [
            f"| {r.benchmark} | {r.network} | {r.baseline} | {r.baseline_value} | {r.measured} | "
            f"{r.measured_value} | {r.ratio} | {r.goal} |"
            for r in result.ratios
        ]
    lines += ["", "## Commands", ""]
    lines += [f"- `{' '.join(['python', *r.command[1:]])}` ({r.seconds:.0f} s)" for r in results]
    for result in results:
        lines += ["", f"## Output of {result.name}", "", "```", result.output.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench.md")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every benchmark")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the pipeline, not speed"
    )
    args = parser.parse_args(argv)
    sizes = QUICK_ARGS if args.quick else FULL_ARGS
    began = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()
    try:
        results = [
            run_benchmark(name, sizes[name], args.threads)
            for name in ("train", "sweep", "workflow")
        ]
        write_text_atomic(args.out, render(results, began, (load_start, os.getloadavg())))
    except PrrmseError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    print(f"bench: {sum(len(r.ratios) for r in results)} ratios -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
