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
- params: the config keys the job's verb reads (VERB_PARAMS), keyed against
  the config file the jobs read, and against its site file too (`site:`, prrmse.core.config)
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

Recording a Snakemake run in dvc.lock, and the way back, live in `prrmse.repro.record`.

Lists and stages are sorted, so regenerating is byte-identical; a test
compares the committed dvc.yaml with a fresh generation.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prrmse.core.errors import PrrmseError
from prrmse.core.io import write_text_atomic
from prrmse.repro.codedeps import MANIFEST_DIR, manifest_path

CODE_DEP = "src/prrmse"
CODE_STAGE = "code_manifests"
# byte code stays out of the `src/prrmse` hash; Snakemake's timestamp file in a directory
# output (its mtime carrier, rewritten by `snakemake --touch`) stays out of the folder's hash
DVCIGNORE_LINES = ("__pycache__/", "*.pyc", ".snakemake_timestamp")
HEADER = (
    "# Generated from the Snakefile's jobs by prrmse.repro.dvcgen ({config}); never edit by hand.\n"
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
    from prrmse.core.naming import parse_model_name

    return parse_model_name(model).network


def _run_network_of(run: str) -> str:
    from prrmse.core.naming import parse_run_name

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


def relative_path(path: str | Path, workdir: Path) -> str:
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
    config_rel = relative_path(config_abs, workdir)
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
            outputs = [relative_path(o, workdir) for o in job.output]
            jobs.append(
                Job(
                    rule=job.rule.name,
                    wildcards=[(k, str(v)) for k, v in job.wildcards_dict.items()],
                    inputs=[relative_path(i, workdir) for i in job.input],
                    outputs=outputs,
                    directories={relative_path(o, workdir) for o in job.output if o.is_directory},
                    logs=[relative_path(lg, workdir) for lg in job.log],
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
            f"verb '{verb}' takes --config but prrmse.repro.dvcgen.VERB_PARAMS does not say which keys it reads",
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


# The config's site file (prrmse.core.config: `site:`, git-ignored, merged over the config by
# every verb): its path relative to the workdir and its own content.
Site = tuple[str, dict[str, Any]]


def site_params_file(workdir: Path, config_rel: str, config: dict[str, Any]) -> Site | None:
    """The site file the config names, when it exists: its keys are params of their own."""
    from prrmse.core.config import read_site

    found = read_site(config, Path(workdir) / config_rel)
    return None if found is None else (relative_path(found[0].resolve(), Path(workdir)), found[1])


def build_stage(
    job: Job,
    config: dict[str, Any],
    config_rel: str,
    site: Site | None = None,
    code: Sequence[str] = (CODE_DEP,),
) -> dict[str, Any]:
    folders = _folders(job)
    cmd = job.shellcmd
    if folders:
        cmd = f"mkdir -p {' '.join(shlex.quote(f) for f in folders)} && {cmd}"
    stage: dict[str, Any] = {"cmd": cmd}
    deps = sorted(set(job.inputs) | set(code))
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


def load_config_file(path: Path) -> dict[str, Any]:
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
    config_rel = relative_path((workdir / configfile).resolve(), workdir)
    jobs = snakemake_jobs(snakefile, configfile, workdir)
    config = load_config_file(workdir / config_rel)
    site = site_params_file(workdir, config_rel, config)
    return dvc_yaml_content(jobs, config, config_rel, site, has_package_source(workdir))


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
    jobs: list[Job],
    config: dict[str, Any],
    config_rel: str,
    site: Site | None = None,
    manifests: bool = False,
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
        stages[name] = build_stage(job, config, config_rel, site, code)
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
) -> Path:
    """Generate and write `<workdir>/dvc.yaml` atomically (and the `.dvcignore` lines it needs)."""
    workdir = Path(workdir).resolve()
    content = generate_dvc_yaml(snakefile, configfile, workdir)
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
) -> list[str]:
    """Differences between the committed dvc.yaml and a fresh generation (empty: in sync)."""
    import difflib

    workdir = Path(workdir).resolve()
    path = workdir / "dvc.yaml"
    fresh = render_dvc_yaml(
        generate_dvc_yaml(snakefile, configfile, workdir),
        relative_path((workdir / configfile).resolve(), workdir),
    )
    current = path.read_text() if path.exists() else ""
    return list(
        difflib.unified_diff(
            current.splitlines(), fresh.splitlines(), "dvc.yaml", "generated", lineterm=""
        )
    )
