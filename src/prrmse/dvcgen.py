"""dvc.yaml generated from the Snakefile: one graph, two front ends.

The Snakefile is the only dependency graph. `generate_dvc_yaml` asks Snakemake
for every concrete job of that graph (all of them, as with --forceall) and
writes one DVC stage per job:

- name: `<rule>` for a rule without wildcards, else `<rule>--<values>` with the
  wildcard values in the order the rule's output names them, joined by `__`
  (`train--unet-seg-acdc-s1`, `sweep--unet-seg-acdc-s1__unet-auto-acdc-s1`,
  `figure--03`). DVC allows letters, digits, `_` and `-` only (`@` is its own
  foreach syntax); any other character becomes `_`, and a collision is an error.
- cmd: `mkdir -p <output and log folders> && <the job's shell command>`. DVC,
  unlike Snakemake, neither creates output folders nor adds `set -euo
  pipefail`; every command is a single `prrmse` call, so an `&&` chain keeps
  the exit status that matters.
- deps: the job's inputs plus the package source `src/prrmse` (the code every
  verb runs; `.dvcignore` keeps `__pycache__` out of its hash).
- params: the config keys the job's verb reads (VERB_PARAMS), keyed against
  the config file the jobs read. A key absent from the file is tracked through
  its nearest ancestor the file has (so a `-S` that adds it still reruns the
  stage), or left out when the file has none: the verb then uses the schema's
  default, which lives in `src/prrmse` (a dep). Listing every key the verbs
  read in the config file keeps the tracking exact.
  The commands carry no parameter values, only `--config` and paths, so
  `dvc exp run -S <config>:train.lr=...` changes what the job really reads.
- outs: every output, directories as single outs, all cached (results/ and
  data/ are git-ignored, so DVC is what versions them); the job's log too,
  cached, so a pulled or run-cache-restored product keeps the log of the run
  that made it. `metrics.json` files are declared as metrics and
  `history.csv` files as plots (x: epoch), both cached.

Lists and stages are sorted, so regenerating is byte-identical; a test
compares the committed dvc.yaml with a fresh generation.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prrmse.errors import PrrmseError
from prrmse.io import write_text_atomic

CODE_DEP = "src/prrmse"
DVCIGNORE_LINES = ("__pycache__/", "*.pyc")
HEADER = (
    "# Generated from the Snakefile's jobs by prrmse.dvcgen ({config}); never edit by hand.\n"
    "# Regenerate after changing the workflow or the config's structure; tests fail on drift.\n"
)
# Snakemake caps each job's threads at --cores; DVC runs one stage at a time, so the
# stages get the threads each rule declares, independent of the machine generating them.
DAG_CORES = 1024
_STAGE_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_SHELL_OPERATORS = {">", ">>", "2>&1", "|", "&&", "||", ";", "<"}


def _network_of(model: str) -> str:
    from prrmse.naming import parse_model_name

    return parse_model_name(model).network


def _run_network_of(run: str) -> str:
    from prrmse.naming import parse_run_name

    return parse_run_name(run).model.network


# verb -> config keys it reads, from its command-line arguments (flag -> values).
# Every verb that takes --config must be listed: an unlisted one is an error, never a
# stage without params. Verbs without --config (bnstats, rmse, figure, table, noise-floor,
# rmse-to-ideal) read none; `reuse` trains like `train` (plan and source are deps).
VERB_PARAMS: dict[str, Callable[[dict[str, list[str]]], list[str]]] = {
    "phantoms": lambda a: ["phantoms.seed", f"phantoms.{a['--dataset'][0]}"],
    "prepare": lambda a: [f"datasets.{a['--dataset'][0]}", "prepare"],
    "train": lambda a: ["train", f"networks.{_network_of(a['--model'][0])}"],
    "reuse": lambda a: ["train", f"networks.{_run_network_of(a['--run'][0])}"],
    "sweep": lambda a: ["analysis.sweep"],
    "sweep-controls": lambda a: ["analysis.sweep", "analysis.controls"],
    "cka": lambda a: ["analysis.cka", "analysis.sweep.device"],
    "summarise": lambda a: ["analysis.bootstrap"],
    "table1": lambda a: ["analysis.bootstrap"],
    "claims": lambda a: ["analysis.bootstrap", "analysis.plan"],
    "plan": lambda a: [
        "analysis.plan.rule",
        "analysis.plan.max_dice_drop",
        "analysis.plan.max_rmse_w",
    ],
}


@dataclass
class Job:
    """One concrete Snakemake job, paths relative to the workdir."""

    rule: str
    wildcards: list[tuple[str, str]]
    inputs: list[str]
    outputs: list[str]
    directories: set[str]
    logs: list[str]
    shellcmd: str
    upstream: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _relative(path: str | Path, workdir: Path) -> str:
    """Workdir-relative POSIX path when inside the workdir, else the absolute path."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.relative_to(workdir).as_posix()
    except ValueError:
        try:
            return p.resolve().relative_to(workdir.resolve()).as_posix()
        except ValueError:
            return p.as_posix()


def snakemake_jobs(snakefile: Path, configfile: Path, workdir: Path) -> list[Job]:
    """Every concrete job of the Snakemake DAG (forceall), without the target-only rules."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
    )

    workdir = Path(workdir).resolve()
    config_abs = (workdir / configfile).resolve()
    config_rel = _relative(config_abs, workdir)
    if not config_abs.is_file():
        raise PrrmseError(configfile, "config file not found")
    jobs: list[Job] = []
    with _cwd(workdir), SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        try:
            wf_api = api.workflow(
                resource_settings=ResourceSettings(cores=DAG_CORES),
                config_settings=ConfigSettings(configfiles=[Path(config_rel)]),
                snakefile=Path(snakefile),
            )
            wf_api.dag(DAGSettings(targets=frozenset(), forceall=True))
            # Private API (hence the pinned snakemake): the CLI lists no complete jobs.
            wf = wf_api._workflow
            wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            wf._build_dag()
        except PrrmseError:
            raise
        except Exception as exc:  # snakemake raises many types; one line naming the file
            raise PrrmseError(snakefile, f"snakemake could not build the DAG ({exc})") from exc
        for job in wf.dag.jobs:
            if job.is_norun and not job.output:
                continue  # a target rule such as `all`
            if not job.is_shell:
                raise PrrmseError(
                    snakefile, f"rule {job.rule.name} has no shell command; DVC cannot run it"
                )
            shellcmd = squeeze_spaces(job.shellcmd.replace(str(config_abs), config_rel))
            outputs = [_relative(o, workdir) for o in job.output]
            jobs.append(
                Job(
                    rule=job.rule.name,
                    wildcards=[(k, str(v)) for k, v in job.wildcards_dict.items()],
                    inputs=[_relative(i, workdir) for i in job.input],
                    outputs=outputs,
                    directories={_relative(o, workdir) for o in job.output if o.is_directory},
                    logs=[_relative(lg, workdir) for lg in job.log],
                    shellcmd=shellcmd,
                    upstream=sorted({dep.rule.name for dep in wf.dag.job_dependencies(job)}),
                )
            )
    return jobs


def squeeze_spaces(cmd: str) -> str:
    """`cmd` with each run of blanks outside quotes cut to one space, ends stripped.

    A rule whose optional parameter is empty leaves two spaces in its command. DVC
    writes dvc.lock with long commands folded at spaces, and folding drops one of two
    adjacent spaces: the locked command then never equals dvc.yaml's and `dvc status`
    reports "changed command" forever. Quoted text (a --caption) keeps its spaces.
    """
    out: list[str] = []
    quote = ""
    for char in cmd.strip():
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in " \t" and out and out[-1] == " ":
            continue
        elif char == "\t":
            char = " "
        out.append(char)
    return "".join(out)


def stage_name(job: Job) -> str:
    if not job.wildcards:
        return _STAGE_NAME_BAD.sub("_", job.rule)
    values = "__".join(value for _, value in job.wildcards)
    return _STAGE_NAME_BAD.sub("_", f"{job.rule}--{values}")


def parse_verb(cmd: str) -> tuple[str | None, dict[str, list[str]]]:
    """The `prrmse` verb of a shell command and its arguments as flag -> values."""
    try:
        tokens = shlex.split(cmd)
    except ValueError:
        tokens = cmd.split()
    if "prrmse" not in tokens:
        return None, {}
    start = tokens.index("prrmse")
    if start + 1 >= len(tokens):
        return None, {}
    verb = tokens[start + 1]
    args: dict[str, list[str]] = {}
    flag = None
    for token in tokens[start + 2 :]:
        if token in _SHELL_OPERATORS or token.startswith(">"):
            break
        if token.startswith("--"):
            flag = token
            args.setdefault(flag, [])
        elif flag is not None:
            args[flag].append(token)
    return verb, args


def _get(config: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def job_params(job: Job, config: dict[str, Any], config_rel: str) -> list[str]:
    """The config keys the job's verb reads that the config file sets (sorted)."""
    verb, args = parse_verb(job.shellcmd)
    if "--config" not in args:
        if verb in VERB_PARAMS:
            raise PrrmseError(
                f"rule {job.rule}",
                f"verb '{verb}' reads the config but its command passes no --config",
            )
        return []
    if args["--config"] != [config_rel]:
        raise PrrmseError(
            f"rule {job.rule}",
            f"command reads config {args['--config']}, not the generated-for {config_rel}",
        )
    if verb not in VERB_PARAMS:
        raise PrrmseError(
            f"rule {job.rule}",
            f"verb '{verb}' takes --config but prrmse.dvcgen.VERB_PARAMS does not say which keys it reads",
        )
    return tracked_keys(VERB_PARAMS[verb](args), config)


def tracked_keys(keys: list[str], config: dict[str, Any]) -> list[str]:
    """The keys DVC can track in this config file: each key, or where the file lacks it
    its nearest ancestor the file has (a `-S` that adds the key then still reruns the
    stage; regenerating narrows it again). Keys with no ancestor in the file are left
    out: the verb uses the schema default, which is code (`src/prrmse`, a dep)."""
    chosen: set[str] = set()
    for key in keys:
        parts = key.split(".")
        for cut in range(len(parts), 0, -1):
            candidate = ".".join(parts[:cut])
            if _get(config, candidate)[0]:
                chosen.add(candidate)
                break
    # a key inside another chosen key is already tracked through it
    return sorted(k for k in chosen if not any(k.startswith(o + ".") for o in chosen if o != k))


def _folders(job: Job) -> list[str]:
    folders = {str(Path(p).parent.as_posix()) for p in job.outputs + job.logs}
    return sorted(f for f in folders if f not in ("", "."))


def build_stage(job: Job, config: dict[str, Any], config_rel: str) -> dict[str, Any]:
    folders = _folders(job)
    cmd = job.shellcmd
    if folders:
        cmd = f"mkdir -p {' '.join(shlex.quote(f) for f in folders)} && {cmd}"
    stage: dict[str, Any] = {"cmd": cmd}
    deps = sorted(set(job.inputs) | {CODE_DEP})
    stage["deps"] = deps
    params = job_params(job, config, config_rel)
    if params:
        stage["params"] = [{config_rel: params}]
    outs, metrics, plots = [], [], []
    for path in sorted(set(job.outputs) | set(job.logs)):
        name = Path(path).name
        if name == "metrics.json" and path not in job.directories:
            metrics.append(path)
        elif name == "history.csv" and path not in job.directories:
            plots.append({path: {"x": "epoch"}})
        else:
            outs.append(path)
    if outs:
        stage["outs"] = outs
    if metrics:
        stage["metrics"] = metrics
    if plots:
        stage["plots"] = plots
    return stage


def _load_config_file(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PrrmseError(path, f"cannot read config ({exc})") from exc
    if not isinstance(config, dict):
        raise PrrmseError(path, "config must be a mapping of keys to values")
    return config


def generate_dvc_yaml(snakefile: Path, configfile: Path, workdir: Path) -> dict[str, Any]:
    """The dvc.yaml content (a dict with `stages`) for every job of the Snakemake DAG."""
    workdir = Path(workdir).resolve()
    config_rel = _relative((workdir / configfile).resolve(), workdir)
    jobs = snakemake_jobs(snakefile, configfile, workdir)
    config = _load_config_file(workdir / config_rel)
    stages: dict[str, dict[str, Any]] = {}
    for job in jobs:
        name = stage_name(job)
        if name in stages:
            raise PrrmseError(f"rule {job.rule}", f"two jobs map to the DVC stage name '{name}'")
        stages[name] = build_stage(job, config, config_rel)
    return {"stages": {name: stages[name] for name in sorted(stages)}}


def render_dvc_yaml(content: dict[str, Any], configfile: str | Path) -> str:
    body = yaml.safe_dump(content, sort_keys=False, default_flow_style=False, width=1 << 16)
    return HEADER.format(config=Path(configfile).as_posix()) + body


def ensure_dvcignore(workdir: Path) -> None:
    """`.dvcignore` keeps byte-code caches out of the `src/prrmse` dependency's hash."""
    path = Path(workdir) / ".dvcignore"
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [line for line in DVCIGNORE_LINES if line not in lines]
    if missing:
        write_text_atomic(path, "\n".join(lines + missing) + "\n")


def write_dvc_yaml(
    snakefile: Path = Path("Snakefile"),
    configfile: Path = Path("config/config.yaml"),
    workdir: Path = Path("."),
    out: Path | None = None,
) -> Path:
    """Generate and write `<workdir>/dvc.yaml` atomically (and the `.dvcignore` lines it needs)."""
    workdir = Path(workdir).resolve()
    content = generate_dvc_yaml(snakefile, configfile, workdir)
    target = Path(out) if out is not None else workdir / "dvc.yaml"
    write_text_atomic(
        target, render_dvc_yaml(content, _relative((workdir / configfile).resolve(), workdir))
    )
    ensure_dvcignore(workdir)
    return target


def check_dvc_yaml(
    snakefile: Path = Path("Snakefile"),
    configfile: Path = Path("config/config.yaml"),
    workdir: Path = Path("."),
) -> list[str]:
    """Differences between the committed dvc.yaml and a fresh generation (empty: in sync)."""
    import difflib

    workdir = Path(workdir).resolve()
    path = workdir / "dvc.yaml"
    fresh = render_dvc_yaml(
        generate_dvc_yaml(snakefile, configfile, workdir),
        _relative((workdir / configfile).resolve(), workdir),
    )
    current = path.read_text() if path.exists() else ""
    return list(
        difflib.unified_diff(
            current.splitlines(), fresh.splitlines(), "dvc.yaml", "generated", lineterm=""
        )
    )


# --- Snakemake after DVC restores files -------------------------------------------------


def _tool(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def dvc_status(workdir: Path) -> dict[str, Any]:
    """`dvc status --json` (empty when every stage is up to date)."""
    import json

    result = subprocess.run(
        [*_tool("dvc"), "status", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PrrmseError(workdir, f"dvc status failed: {result.stderr.strip().splitlines()[-1:]}")
    text = result.stdout.strip()
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


def sync_snakemake_after_dvc(
    workdir: Path = Path("."), configfile: Path = Path("config/config.yaml")
) -> str:
    """After `dvc pull`/`dvc checkout`, make Snakemake agree that nothing needs to run.

    `.snakemake/metadata` is not versioned and DVC writes files in arbitrary order,
    so Snakemake would rerun jobs DVC knows are current. Only when `dvc status` is
    clean (every output matches dvc.lock) is it safe to `snakemake --touch`, which
    sets the mtimes in DAG order and records the metadata. Otherwise refuse: touching
    would make stale outputs look current.
    """
    workdir = Path(workdir)
    status = dvc_status(workdir)
    if status:
        stages = ", ".join(sorted(status)[:5]) + (" ..." if len(status) > 5 else "")
        raise PrrmseError(
            workdir,
            f"dvc status is not clean ({len(status)} stages: {stages}); run `dvc pull` or `dvc repro` first",
        )
    result = subprocess.run(
        [*_tool("snakemake"), "--cores", "1", "--touch", "--configfile", str(configfile)],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise PrrmseError(workdir, f"snakemake --touch failed: {tail}")
    return result.stderr + result.stdout


# --- CLI wrapper (wired into prrmse.cli by register) --------------------------------------


def register(subparsers: Any) -> None:
    """`prrmse dvc-sync` (write dvc.yaml), `--check` (fail on drift), `--touch-snakemake`."""
    parser = subparsers.add_parser("dvc-sync", help="generate dvc.yaml from the Snakefile's jobs")
    parser.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)"
    )
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    parser.add_argument("--workdir", type=Path, default=Path("."))
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if dvc.yaml is out of date"
    )
    action.add_argument(
        "--touch-snakemake",
        action="store_true",
        help="after dvc pull/checkout: if dvc status is clean, snakemake --touch so both agree",
    )
    parser.set_defaults(handler=run_dvc_sync)


def run_dvc_sync(args: Any) -> None:
    if args.touch_snakemake:
        sync_snakemake_after_dvc(args.workdir, args.config)
        print("dvc status clean; snakemake outputs touched: nothing to run")
        return
    if args.check:
        diff = check_dvc_yaml(args.snakefile, args.config, args.workdir)
        if diff:
            print("\n".join(diff[:60]))
            raise PrrmseError(Path(args.workdir) / "dvc.yaml", "out of date: run `prrmse dvc-sync`")
        print("dvc.yaml is in sync with the Snakefile")
        return
    path = write_dvc_yaml(args.snakefile, args.config, args.workdir)
    stages = len(yaml.safe_load(path.read_text())["stages"])
    print(f"dvc-sync: {stages} stages -> {path}")
