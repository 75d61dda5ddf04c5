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
- deps: the job's inputs plus the code its verb runs (prrmse.repro.codedeps: the
  wrapper's CLI file and the phase folders of `src/prrmse` its imports reach; the whole
  `src/prrmse` where the workdir has no package source). `.dvcignore` keeps `__pycache__`
  out of their hashes, and Snakemake's `.snakemake_timestamp` out of a directory output's.
- params: the config keys the job's verb reads, as its `--config` declares them, in the
  config file and its site file (prrmse.repro.stage_params). The commands carry no
  parameter values, only `--config` and paths, so `dvc exp run -S <config>:train.lr=...`
  changes what the job really reads.
- outs: every output, directories as single outs, all cached (results/ and
  data/ are git-ignored, so DVC is what versions them); the job's log too,
  cached, so a pulled or run-cache-restored product keeps the log of the run
  that made it. `metrics.json` files are declared as metrics and
  `history.csv` files as plots (x: epoch), both cached.
- top level, for `dvc plots show` / `dvc metrics show`: every PNG a job writes (the
  figures) as an image plot, every `*-metrics.json` (Table 1's mean Dice per row) as a
  metrics file; both stay outs of the stage that writes them.

Recording a Snakemake run in dvc.lock, and the way back, live in `prrmse.repro.record`.

Lists and stages are sorted, so regenerating is byte-identical; a test
compares the committed dvc.yaml with a fresh generation.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from prrmse.core.errors import PrrmseError
from prrmse.core.io import write_text_atomic
from prrmse.repro.codedeps import MANIFEST_DIR, manifest_path
from prrmse.repro.snakemake_dag import Job, parse_verb, relative_path, snakemake_jobs
from prrmse.repro.stage_params import StageParams, VerbKeys, read_stage_params

CODE_DEP = "src/prrmse"
CODE_STAGE = "code_manifests"
# byte code stays out of the `src/prrmse` hash; Snakemake's timestamp file in a directory
# output (its mtime carrier, rewritten by `snakemake --touch`) stays out of the folder's hash
DVCIGNORE_LINES = ("__pycache__/", "*.pyc", ".snakemake_timestamp")
HEADER = (
    "# Generated from the Snakefile's jobs by prrmse.repro.dvcgen ({config}); never edit by hand.\n"
    "# Regenerate after changing the workflow or the config's structure; tests fail on drift.\n"
)
_STAGE_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
TOP_METRICS_SUFFIX = "-metrics.json"  # results/tables/table1-metrics.json
IMAGE_PLOT_SUFFIXES = (".png",)  # DVC renders these as image plots


def stage_name(job: Job) -> str:
    if not job.wildcards:
        return _STAGE_NAME_BAD.sub("_", job.rule)
    values = "__".join(value for _, value in job.wildcards)
    return _STAGE_NAME_BAD.sub("_", f"{job.rule}--{values}")


def _folders(job: Job) -> list[str]:
    folders = {str(Path(p).parent.as_posix()) for p in job.outputs + job.logs}
    return sorted(f for f in folders if f not in ("", "."))


def build_stage(job: Job, params: StageParams, code: Sequence[str] = (CODE_DEP,)) -> dict[str, Any]:
    folders = _folders(job)
    cmd = job.shellcmd
    if folders:
        cmd = f"mkdir -p {' '.join(shlex.quote(f) for f in folders)} && {cmd}"
    stage: dict[str, Any] = {"cmd": cmd}
    deps = sorted(set(job.inputs) | set(code))
    stage["deps"] = deps
    entries = params.of(job)
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


def generate_dvc_yaml(
    snakefile: Path, configfile: Path, workdir: Path, *, verb_keys: VerbKeys
) -> dict[str, Any]:
    """The dvc.yaml content (`stages`, `metrics`, `plots`) for every job of the Snakemake DAG;
    `verb_keys`: the config keys each verb reads (`prrmse.cli.main.verb_config_keys`)."""
    workdir = Path(workdir).resolve()
    params = read_stage_params(workdir, configfile, verb_keys)
    jobs = snakemake_jobs(snakefile, configfile, workdir)
    return dvc_yaml_content(jobs, params, has_package_source(workdir))


def has_package_source(workdir: Path) -> bool:
    """Whether `workdir` holds the package's source with its CLI (a checkout of prrmse),
    so that each stage can depend on its verb's code manifest rather than all of it."""
    return (Path(workdir) / CODE_DEP / "cli").is_dir()


def code_stage(verbs: Iterable[str]) -> dict[str, Any]:
    """The stage writing each verb's code manifest from the whole package source; cached like
    every out, so `dvc pull` brings them back with the products."""
    names = sorted(set(verbs))
    return {
        "cmd": f"mkdir -p {MANIFEST_DIR} && prrmse code-manifest --package {CODE_DEP} "
        + " ".join(names),
        "deps": [CODE_DEP],
        "outs": sorted(map(manifest_path, names)),
    }


def job_verbs(jobs: Iterable[Job]) -> list[str]:
    return sorted({verb for job in jobs if (verb := parse_verb(job.shellcmd)[0])})


def dvc_yaml_content(
    jobs: list[Job], params: StageParams, manifests: bool = False
) -> dict[str, Any]:
    """One stage per job, plus the top-level `metrics` (every `*-metrics.json` a job writes)
    and `plots` (every PNG a job writes, shown by `dvc plots show` as an image). With
    `manifests`, a job's code dependency is its verb's manifest (`CODE_STAGE` writes them),
    else the whole package source."""
    stages: dict[str, dict[str, Any]] = {}
    for job in jobs:
        name = stage_name(job)
        if name in stages:
            raise PrrmseError(f"rule {job.rule}", f"two jobs map to the DVC stage name '{name}'")
        verb = parse_verb(job.shellcmd)[0]
        code = [manifest_path(verb)] if manifests and verb else [CODE_DEP]
        stages[name] = build_stage(job, params, code)
    if manifests:
        if CODE_STAGE in stages:
            raise PrrmseError(f"rule {CODE_STAGE}", "the stage name is taken by the code manifests")
        stages[CODE_STAGE] = code_stage(job_verbs(jobs))
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
    *,
    verb_keys: VerbKeys,
) -> Path:
    """Generate and write `<workdir>/dvc.yaml` atomically (and the `.dvcignore` lines it needs)."""
    workdir = Path(workdir).resolve()
    content = generate_dvc_yaml(snakefile, configfile, workdir, verb_keys=verb_keys)
    target = Path(out) if out is not None else workdir / "dvc.yaml"
    write_text_atomic(
        target, render_dvc_yaml(content, relative_path((workdir / configfile).resolve(), workdir))
    )
    ensure_dvcignore(workdir)
    return target


def check_dvc_yaml(
    snakefile: Path = Path("Snakefile"),
    configfile: Path = Path("config/config.yaml"),
    workdir: Path = Path("."),
    *,
    verb_keys: VerbKeys,
) -> list[str]:
    """Differences between the committed dvc.yaml and a fresh generation (empty: in sync)."""
    import difflib

    workdir = Path(workdir).resolve()
    path = workdir / "dvc.yaml"
    fresh = render_dvc_yaml(
        generate_dvc_yaml(snakefile, configfile, workdir, verb_keys=verb_keys),
        relative_path((workdir / configfile).resolve(), workdir),
    )
    current = path.read_text() if path.exists() else ""
    return list(
        difflib.unified_diff(
            current.splitlines(), fresh.splitlines(), "dvc.yaml", "generated", lineterm=""
        )
    )
