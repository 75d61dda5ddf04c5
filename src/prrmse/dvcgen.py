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
  verb runs; `.dvcignore` keeps `__pycache__` out of its hash, and Snakemake's
  `.snakemake_timestamp` out of a directory output's).
- params: the config keys the job's verb reads (VERB_PARAMS), keyed against
  the config file the jobs read, and against its site file too (`site:`, prrmse.config)
  where that file exists and sets them: the jobs read the merged value, so a change in
  either file reruns the stage. A key absent from the file is tracked through
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
- top level, for `dvc plots show` / `dvc metrics show`: every PNG a job writes (the
  figures) as an image plot, every `*-metrics.json` (Table 1's mean Dice per row) as a
  metrics file; both stay outs of the stage that writes them.

`prrmse dvc-record` records a finished Snakemake run in dvc.lock (`make demo` ends with
it): `dvc commit -f` of every stage whose job Snakemake considers done, the outputs'
modification times put back as Snakemake left them (DVC's links replace the files), so
`dvc status`, a no-op `dvc repro` and `snakemake -n` all agree. The reverse direction,
after `dvc pull`/`checkout`/`repro`, is `prrmse dvc-sync --touch-snakemake`.

Lists and stages are sorted, so regenerating is byte-identical; a test
compares the committed dvc.yaml with a fresh generation.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prrmse.errors import PrrmseError
from prrmse.io import write_text_atomic

CODE_DEP = "src/prrmse"
# byte code stays out of the `src/prrmse` hash; Snakemake's timestamp file in a directory
# output (its mtime carrier, rewritten by `snakemake --touch`) stays out of the folder's hash
DVCIGNORE_LINES = ("__pycache__/", "*.pyc", ".snakemake_timestamp")
HEADER = (
    "# Generated from the Snakefile's jobs by prrmse.dvcgen ({config}); never edit by hand.\n"
    "# Regenerate after changing the workflow or the config's structure; tests fail on drift.\n"
)
# Snakemake caps each job's threads at --cores; DVC runs one stage at a time, so the
# stages get the threads each rule declares, independent of the machine generating them.
DAG_CORES = 1024
_STAGE_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_SHELL_OPERATORS = {">", ">>", "2>&1", "|", "&&", "||", ";", "<"}
TOP_METRICS_SUFFIX = "-metrics.json"  # results/tables/table1-metrics.json
IMAGE_PLOT_SUFFIXES = (".png",)  # DVC renders these as image plots


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
    "qc": lambda a: ["qc"],
    "train": lambda a: ["train", f"networks.{_network_of(a['--model'][0])}"],
    "reuse": lambda a: ["train", f"networks.{_run_network_of(a['--run'][0])}", "reuse.frozen_bn"],
    # the shared encoder start: its recipe, the network, and for a pretext recipe the
    # training, the phantom pool (phantoms.acdc's settings) and its preprocessing
    "encoder": lambda a: [
        f"encoders.{a['--network'][0]}",
        f"networks.{a['--network'][0]}",
        "train",
        "phantoms.seed",
        "phantoms.acdc",
        "prepare",
    ],
    "sweep": lambda a: ["analysis.sweep"],
    "sweep-controls": lambda a: ["analysis.sweep", "analysis.controls"],
    "cka": lambda a: ["analysis.cka", "analysis.sweep.device"],
    "summarise": lambda a: ["analysis.bootstrap"],
    "table1": lambda a: ["analysis.bootstrap", "analysis.verdicts"],
    "claims": lambda a: ["analysis.bootstrap", "analysis.plan", "analysis.verdicts"],
    # the relative-RMSE rule is calibrated on two untrained models of the target's network
    "plan": lambda a: [
        "analysis.plan.rule",
        "analysis.plan.max_dice_drop",
        "analysis.plan.max_rel_rmse_w",
        f"networks.{_network_of(a['--target'][0])}",
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
    needrun: bool = True  # Snakemake would (re)run it (always, for a forceall DAG)


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


def snakemake_jobs(
    snakefile: Path, configfile: Path, workdir: Path, forceall: bool = True
) -> list[Job]:
    """Every concrete job of the Snakemake DAG, without the target-only rules.

    forceall: every job, as if nothing had run (what dvc.yaml is generated from); else the
    same jobs, each with `needrun` as Snakemake sees the workdir now (missing, older or
    incomplete outputs, changed params or code).
    """
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
            wf_api.dag(DAGSettings(targets=frozenset(), forceall=forceall, force_incomplete=True))
            # Private API (hence the pinned snakemake): the CLI lists no complete jobs.
            wf = wf_api._workflow
            wf._prepare_dag(
                forceall=forceall, ignore_incomplete=forceall, lock_warn_only=True, nolock=True
            )
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
                    needrun=forceall or bool(wf.dag.needrun(job)),
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
    return tracked_keys(job_read_keys(job, config_rel), config)


def job_read_keys(job: Job, config_rel: str) -> list[str]:
    """The config keys the job's verb reads (VERB_PARAMS), whichever file sets them."""
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
    return VERB_PARAMS[verb](args)


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


def site_keys(keys: list[str], site: dict[str, Any]) -> list[str]:
    """The keys DVC tracks in a site file: each key the file sets, or sets values inside
    (`datasets.acdc` where it sets `datasets.acdc.root`), or replaces whole (an ancestor
    set to a non-mapping). A key the site file does not reach is the config file's alone."""
    chosen: set[str] = set()
    for key in keys:
        node: Any = site
        parts = key.split(".")
        for cut, part in enumerate(parts):
            if not isinstance(node, dict):
                chosen.add(".".join(parts[:cut]))
                break
            if part not in node:
                break
            node = node[part]
        else:
            chosen.add(key)
    return sorted(k for k in chosen if not any(k.startswith(o + ".") for o in chosen if o != k))


def _folders(job: Job) -> list[str]:
    folders = {str(Path(p).parent.as_posix()) for p in job.outputs + job.logs}
    return sorted(f for f in folders if f not in ("", "."))


# The config's site file (prrmse.config: `site:`, git-ignored, merged over the config by
# every verb): its path relative to the workdir and its own content.
Site = tuple[str, dict[str, Any]]


def site_params_file(workdir: Path, config_rel: str, config: dict[str, Any]) -> Site | None:
    """The site file the config names, when it exists: its keys are params of their own."""
    from prrmse.config import read_site

    found = read_site(config, Path(workdir) / config_rel)
    return None if found is None else (_relative(found[0].resolve(), Path(workdir)), found[1])


def build_stage(
    job: Job, config: dict[str, Any], config_rel: str, site: Site | None = None
) -> dict[str, Any]:
    folders = _folders(job)
    cmd = job.shellcmd
    if folders:
        cmd = f"mkdir -p {' '.join(shlex.quote(f) for f in folders)} && {cmd}"
    stage: dict[str, Any] = {"cmd": cmd}
    deps = sorted(set(job.inputs) | {CODE_DEP})
    stage["deps"] = deps
    keys = job_read_keys(job, config_rel)
    params = tracked_keys(keys, config)
    # a key the site file sets is tracked in it too: the job reads the merged value
    site_params = site_keys(keys, site[1]) if site is not None else []
    entries = [{config_rel: params}] if params else []
    if site is not None and site_params:
        entries.append({site[0]: site_params})
    if entries:
        stage["params"] = entries
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
    """The dvc.yaml content (`stages`, `metrics`, `plots`) for every job of the Snakemake DAG."""
    workdir = Path(workdir).resolve()
    config_rel = _relative((workdir / configfile).resolve(), workdir)
    jobs = snakemake_jobs(snakefile, configfile, workdir)
    config = _load_config_file(workdir / config_rel)
    site = site_params_file(workdir, config_rel, config)
    return dvc_yaml_content(jobs, config, config_rel, site)


def dvc_yaml_content(
    jobs: list[Job], config: dict[str, Any], config_rel: str, site: Site | None = None
) -> dict[str, Any]:
    """One stage per job, plus the top-level `metrics` (every `*-metrics.json` a job writes)
    and `plots` (every PNG a job writes, shown by `dvc plots show` as an image)."""
    stages: dict[str, dict[str, Any]] = {}
    for job in jobs:
        name = stage_name(job)
        if name in stages:
            raise PrrmseError(f"rule {job.rule}", f"two jobs map to the DVC stage name '{name}'")
        stages[name] = build_stage(job, config, config_rel, site)
    content: dict[str, Any] = {"stages": {name: stages[name] for name in sorted(stages)}}
    files = sorted({o for job in jobs for o in job.outputs if o not in job.directories})
    metrics = [o for o in files if Path(o).name.endswith(TOP_METRICS_SUFFIX)]
    plots = [o for o in files if Path(o).suffix.lower() in IMAGE_PLOT_SUFFIXES]
    if metrics:
        content["metrics"] = metrics
    if plots:
        content["plots"] = plots
    return content


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


# --- a Snakemake run recorded in dvc.lock -----------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What `record_snakemake_run` did: stages recorded in dvc.lock, those of them committed
    now (the others were recorded already), stages left out (Snakemake would still run
    them), files whose links were replaced by copies, seconds."""

    stages: list[str]
    committed: list[str]
    pending: list[str]
    unlinked: list[str]
    seconds: float


FileTimes = dict[str, tuple[int, int]]  # path relative to the workdir -> (atime_ns, mtime_ns)


def _dvc(workdir: Path, *args: str) -> str:
    result = subprocess.run(
        [*_tool("dvc"), *args], cwd=workdir, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise PrrmseError(workdir, f"dvc {args[0]} failed: {' '.join(tail)}")
    return result.stdout


def file_times(workdir: Path, paths: Iterable[str]) -> FileTimes:
    """(atime, mtime) of each path and, for a folder, of everything in it, as they are now."""
    times: FileTimes = {}

    def keep(path: Path) -> None:
        st = os.stat(path, follow_symlinks=False)
        times[path.relative_to(workdir).as_posix()] = (st.st_atime_ns, st.st_mtime_ns)

    for rel in paths:
        path = workdir / rel
        if path.is_dir() and not path.is_symlink():
            for current, dirs, files in os.walk(path):
                for name in dirs + files:
                    keep(Path(current) / name)
        if path.exists() or path.is_symlink():
            keep(path)
    return times


def _unlink_copy(path: Path) -> None:
    """Replace a link to DVC's cache by a plain copy of its bytes (what `dvc unprotect` does)."""
    temp = path.with_name(f".{path.name}.unlink-{os.getpid()}")
    shutil.copyfile(path, temp)
    os.replace(temp, path)


def restore_times(workdir: Path, times: FileTimes) -> list[str]:
    """Put the recorded times back after DVC linked files to its cache; return the files
    given a copy of their own.

    DVC replaces each out by a link to a new cache object, so the files get the time they
    were linked at, in DVC's order; Snakemake compares inputs' and outputs' times and would
    rerun jobs. Files with the same bytes share one cache object (hard link, or symlink
    target) and so one time; where they were written at different times, every one but
    the first gets a copy of its own. Folders last, deepest first (a new link inside a
    folder changes the folder's time).
    """
    by_object: dict[tuple[int, int], list[str]] = {}
    folders = []
    for rel in times:
        path = workdir / rel
        if path.is_dir() and not path.is_symlink():
            folders.append(rel)
        elif path.exists():
            st = path.stat()
            by_object.setdefault((st.st_dev, st.st_ino), []).append(rel)
    unlinked = []
    for group in by_object.values():
        group.sort(key=lambda rel: (times[rel][1], rel))
        for rel in group[1:]:
            if times[rel][1] != times[group[0]][1]:
                _unlink_copy(workdir / rel)
                unlinked.append(rel)
        for rel in group:
            path = workdir / rel
            if path.is_symlink():
                os.utime(path, ns=times[rel], follow_symlinks=False)
            os.utime(path, ns=times[rel])
    for rel in sorted(folders, key=lambda r: r.count("/"), reverse=True):
        os.utime(workdir / rel, ns=times[rel], follow_symlinks=False)
    return sorted(unlinked)


def record_snakemake_run(
    workdir: Path = Path("."),
    configfile: Path = Path("config/config.yaml"),
    snakefile: Path = Path("Snakefile"),
) -> Recorded:
    """Record a Snakemake run in dvc.lock, so `dvc status` is clean and `dvc repro` a no-op.

    dvc.yaml must match the Snakefile's jobs for `configfile` (else: `prrmse dvc-sync`).
    Every stage whose job Snakemake considers done (outputs and log present, nothing newer
    upstream, params and code unchanged, not incomplete) and that dvc.lock does not record
    as it is is committed with `dvc commit --force`, its outs linked to the cache (with the
    project's link cache types a checkpoint is stored once; folders by `dvc checkout
    --relink`); stages Snakemake would still run are left out and named. Then the outputs
    get back the times Snakemake gave them (`restore_times`), and `dvc status` re-hashes
    them into DVC's state: it must list no recorded stage.
    """
    began = time.perf_counter()
    workdir = Path(workdir).resolve()
    config_rel = _relative((workdir / configfile).resolve(), workdir)
    dvc_yaml = workdir / "dvc.yaml"
    if not (workdir / ".dvc").is_dir():
        raise PrrmseError(workdir, "not a DVC project (no .dvc folder): run `dvc init` first")
    if not dvc_yaml.is_file():
        raise PrrmseError(dvc_yaml, f"not found: run `prrmse dvc-sync --config {config_rel}`")
    jobs = snakemake_jobs(snakefile, configfile, workdir, forceall=False)
    config = _load_config_file(workdir / config_rel)
    site = site_params_file(workdir, config_rel, config)
    fresh = render_dvc_yaml(dvc_yaml_content(jobs, config, config_rel, site), config_rel)
    if dvc_yaml.read_text() != fresh:
        raise PrrmseError(
            dvc_yaml,
            f"does not match the Snakefile's jobs for {config_rel}: "
            f"run `prrmse dvc-sync --config {config_rel}` first",
        )
    done: dict[str, Job] = {}
    pending: list[str] = []
    for job in jobs:
        made = job.outputs + job.logs
        if job.needrun or not all((workdir / p).exists() for p in made):
            pending.append(stage_name(job))
        else:
            done[stage_name(job)] = job
    if not done:
        raise PrrmseError(workdir, f"nothing to record: no job of {config_rel} has finished")
    # DVC's commit costs seconds a stage (it re-reads the params file and saves the run
    # cache): with a dvc.lock, only the stages dvc status lists are committed
    listed = set(dvc_status(workdir)) if (workdir / "dvc.lock").is_file() else set(done)
    changed = sorted(listed & set(done))
    unlinked: list[str] = []
    if changed:
        # every file of every done stage: one that shares a cache object with a committed
        # file shares its time too
        times = file_times(workdir, [p for job in done.values() for p in job.outputs + job.logs])
        every = len(changed) == len(jobs)
        _dvc(workdir, "commit", "--force", "--quiet", *([] if every else changed))
        # commit links the files it cached, not those inside a directory out
        folders = [name for name in changed if done[name].directories]
        if folders:
            _dvc(workdir, "checkout", "--relink", "--quiet", *folders)
        unlinked = restore_times(workdir, times)
        # re-hashes the files with their restored times into DVC's state (so the next dvc
        # command finds them there) and checks the record
        listed = set(dvc_status(workdir))
    stale = sorted(listed - set(pending))
    if stale:
        raise PrrmseError(
            workdir / "dvc.lock",
            f"dvc status still lists {len(stale)} recorded stages ({', '.join(stale[:3])})",
        )
    return Recorded(sorted(done), changed, sorted(pending), unlinked, time.perf_counter() - began)


def run_dvc_record(args: Any) -> None:
    result = record_snakemake_run(args.workdir, args.config, args.snakefile)
    line = (
        f"dvc-record: {len(result.stages)} stages recorded in dvc.lock, "
        f"{len(result.committed)} of them now ({result.seconds:.1f} s)"
    )
    if result.unlinked:
        line += f"; {len(result.unlinked)} files with the same bytes kept as copies"
    if result.pending:
        shown = ", ".join(result.pending[:5]) + (" ..." if len(result.pending) > 5 else "")
        line += f"; {len(result.pending)} not recorded, Snakemake would run them: {shown}"
    else:
        line += "; dvc status clean"
    print(line)


# --- CLI wrapper (wired into prrmse.cli by register) --------------------------------------


def register(subparsers: Any) -> None:
    """`prrmse dvc-sync` (write dvc.yaml), `--check` (fail on drift), `--touch-snakemake`;
    `prrmse dvc-record` (record a finished Snakemake run in dvc.lock)."""
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

    record = subparsers.add_parser(
        "dvc-record",
        help="record a finished Snakemake run in dvc.lock (dvc status clean, dvc repro a no-op)",
    )
    record.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)"
    )
    record.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    record.add_argument("--workdir", type=Path, default=Path("."))
    record.set_defaults(handler=run_dvc_record)


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
