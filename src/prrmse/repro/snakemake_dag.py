"""The Snakefile's jobs as concrete commands: what dvc.yaml is generated from and what a
recorded Snakemake run is checked against.

`snakemake_jobs` asks Snakemake (its Python API, as `snakemake -n` would) for every job of
the DAG with its inputs, outputs, logs, upstream rules and shell command, paths relative
to the workdir; `parse_verb` reads the `prrmse` verb and flags of a job's command.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError

# Snakemake caps each job's threads at --cores; DVC runs one stage at a time, so the
# stages get the threads each rule declares, independent of the machine generating them.
DAG_CORES = 1024
_SHELL_OPERATORS = {">", ">>", "2>&1", "|", "&&", "||", ";", "<"}


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
    settings: str | None = None  # the rule's `settings` param: the config values its verb reads


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
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
    with working_directory(workdir), SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
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
            jobs.append(_job(job, wf.dag, snakefile, workdir, config_abs, forceall))
    return jobs


def _job(
    job: Any, dag: Any, snakefile: Path, workdir: Path, config_abs: Path, forceall: bool
) -> Job:
    """One of Snakemake's jobs as a `Job`: paths workdir-relative, the config file too."""
    if not job.is_shell:
        raise PrrmseError(
            snakefile, f"rule {job.rule.name} has no shell command; DVC cannot run it"
        )
    config_rel = relative_path(config_abs, workdir)
    return Job(
        rule=job.rule.name,
        wildcards=[(k, str(v)) for k, v in job.wildcards_dict.items()],
        inputs=[relative_path(i, workdir) for i in job.input],
        outputs=[relative_path(o, workdir) for o in job.output],
        directories={relative_path(o, workdir) for o in job.output if o.is_directory},
        logs=[relative_path(lg, workdir) for lg in job.log],
        shellcmd=squeeze_spaces(job.shellcmd.replace(str(config_abs), config_rel)),
        upstream=sorted({dep.rule.name for dep in dag.job_dependencies(job)}),
        needrun=forceall or bool(dag.needrun(job)),
        settings=job.params.get("settings"),
    )


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
