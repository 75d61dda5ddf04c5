"""The params of a DVC stage: the config keys its job's verb reads, in the files that set them.

Each verb that takes `--config` declares the keys it reads, given its other arguments
(`prrmse.cli.common.config_arg`); the caller passes those declarations in (`VerbKeys`),
since the CLI sits above this layer. A key is tracked in the config file the jobs read,
and in its site file too (`site:`, prrmse.core.config) where that file sets it: the jobs
read the merged value, so a change in either file reruns the stage. A key absent from the
file is tracked through its nearest ancestor the file has (a `-S` that adds it still
reruns the stage), or left out when the file has none: the verb then uses the schema's
default, which is code (a dep).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prrmse.core.config import config_value
from prrmse.core.errors import PrrmseError
from prrmse.repro.snakemake_dag import Job, parse_verb, relative_path

# verb -> the config keys it reads, given its parsed arguments
VerbKeys = Mapping[str, Callable[[argparse.Namespace], list[str]]]
# The config's site file (prrmse.core.config: `site:`, git-ignored, merged over the config by
# every verb): its path relative to the workdir and its own content.
Site = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class StageParams:
    """Where stages' params come from: the config file the jobs read (workdir-relative path
    and its own content), its site file, and the keys each verb reads."""

    config_rel: str
    config: dict[str, Any]
    verb_keys: VerbKeys
    site: Site | None = None

    def of(self, job: Job) -> list[dict[str, list[str]]]:
        """A stage's `params` entries: one per file that sets keys the job reads."""
        keys = job_read_keys(job, self.config_rel, self.verb_keys)
        params = tracked_keys(keys, self.config)
        entries = [{self.config_rel: params}] if params else []
        if self.site is not None:
            site_params = site_keys(keys, self.site[1])
            if site_params:
                entries.append({self.site[0]: site_params})
        return entries


def load_config_file(path: Path) -> dict[str, Any]:
    """The config file's own content (no site file, no defaults): what DVC's params read."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PrrmseError(path, f"cannot read config ({exc})") from exc
    if not isinstance(config, dict):
        raise PrrmseError(path, "config must be a mapping of keys to values")
    return config


def read_stage_params(workdir: Path, configfile: Path, verb_keys: VerbKeys) -> StageParams:
    """The params source for jobs that read `configfile` (relative to `workdir` or absolute)."""
    workdir = Path(workdir).resolve()
    config_rel = relative_path((workdir / configfile).resolve(), workdir)
    config = load_config_file(workdir / config_rel)
    return StageParams(config_rel, config, verb_keys, site_params_file(workdir, config_rel, config))


def verb_arguments(args: Mapping[str, list[str]]) -> argparse.Namespace:
    """A command's flags (`--patients-out a`) as the namespace its parser would give
    (`patients_out='a'`): the first value of each, True for a bare flag."""
    return argparse.Namespace(
        **{
            flag.lstrip("-").replace("-", "_"): values[0] if values else True
            for flag, values in args.items()
        }
    )


def job_params(job: Job, config: dict[str, Any], config_rel: str, verb_keys: VerbKeys) -> list[str]:
    """The config keys the job's verb reads that the config file sets (sorted)."""
    return tracked_keys(job_read_keys(job, config_rel, verb_keys), config)


def job_read_keys(job: Job, config_rel: str, verb_keys: VerbKeys) -> list[str]:
    """The config keys the job's verb reads (its declaration in `verb_keys`), whichever file sets them."""
    verb, args = parse_verb(job.shellcmd)
    if "--config" not in args:
        if verb in verb_keys:
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
    if verb not in verb_keys:
        raise PrrmseError(
            f"rule {job.rule}",
            f"verb '{verb}' takes --config but declares no config keys it reads (prrmse.cli.common.config_arg)",
        )
    return verb_keys[verb](verb_arguments(args))


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
            if config_value(config, candidate)[0]:
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


# The config's site file (prrmse.core.config: `site:`, git-ignored, merged over the config by
# every verb): its path relative to the workdir and its own content.
Site = tuple[str, dict[str, Any]]


def site_params_file(workdir: Path, config_rel: str, config: dict[str, Any]) -> Site | None:
    """The site file the config names, when it exists: its keys are params of their own."""
    from prrmse.core.config import read_site

    found = read_site(config, Path(workdir) / config_rel)
    return None if found is None else (relative_path(found[0].resolve(), Path(workdir)), found[1])
