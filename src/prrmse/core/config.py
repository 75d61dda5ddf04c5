"""Load the workflow config, layer the user's site file over it, validate and fill defaults.

The same schema file validates the config in the Snakefile (snakemake's `validate`) and in
every `prrmse` verb, so a job reads exactly the values DVC tracks.

Site settings: a config may name a *site file* (`site: site.yaml`, relative to the
config's folder; config/paper.yaml does). That file, git-ignored, holds one user's data
roots and machine settings; when it exists it is deep-merged over the config (mappings
merge key by key, any other value replaces), so the tracked file never needs editing.
`layer_site` does the merge for both front ends: `load_config` (every verb) and the
Snakefile (workflow/rules/common.smk), and `prrmse.repro.dvcgen` lists the keys the site file
sets as DVC params of that file. Every key of a site file must be a key of the schema:
an unknown one is an error naming the site file and the key. An absent site file changes
nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from prrmse.core.errors import PrrmseError

SITE_KEY = "site"


def schema_path() -> Path:
    return Path(str(resources.files("prrmse") / "resources" / "config.schema.yaml"))


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(schema_path().read_text())


def _extend_with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_defaults(jsonschema.Draft202012Validator)


def _error_location(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys an additionalProperties error is about."""
    instance = error.instance if isinstance(error.instance, dict) else {}
    known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    return sorted(str(key) for key in instance if key not in known)


def _sets(site: dict[str, Any], path: list[Any]) -> bool:
    """Whether the site file sets the value at `path` (or a value above it)."""
    node: Any = site
    for part in path:
        if not isinstance(node, dict):
            return True  # the site replaced a value above `path`
        if part not in node:
            return False
        node = node[part]
    return True


def _blamed(error: jsonschema.ValidationError, site: dict[str, Any] | None) -> bool:
    """Whether a validation error of the merged config comes from the site file."""
    if site is None:
        return False
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        return any(_sets(site, [*path, key]) for key in _unexpected_keys(error))
    return bool(path) and _sets(site, path)


def validate_config(
    config: dict[str, Any],
    source: str | Path = "config",
    site: tuple[Path, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Validate in place (filling defaults) and return the config; raise PrrmseError on the first problem.

    `site`: the site file merged into `config` and its own content; an error at a key the
    site file sets names the site file.
    """
    validator = _DefaultFillingValidator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where: str | Path = source
        if site is not None and _blamed(error, site[1]):
            where = site[0]
        if error.validator == "additionalProperties":
            message = f"unknown key ({error.message})"
        else:
            message = error.message
        raise PrrmseError(where, f"config key {_error_location(error)}: {message}")
    return config


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PrrmseError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PrrmseError(path, f"cannot read {what} ({exc})") from exc
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise PrrmseError(path, f"{what} must be a mapping of keys to values")
    return content


def site_path(config: dict[str, Any], config_path: str | Path) -> Path | None:
    """The site file a config names (`site:`, relative to the config's folder), or None."""
    name = config.get(SITE_KEY)
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise PrrmseError(config_path, f"config key {SITE_KEY}: must be a file name, got {name!r}")
    path = Path(name)
    return path if path.is_absolute() else Path(config_path).parent / path


def read_site(
    config: dict[str, Any], config_path: str | Path
) -> tuple[Path, dict[str, Any]] | None:
    """The site file a config names and its content; None when it names none or the file
    is absent (a config with no site file is used as it is)."""
    path = site_path(config, config_path)
    if path is None or not (path.exists() or path.is_symlink()):
        return None
    if not path.is_file():
        raise PrrmseError(path, "site file is not a readable file")
    site = _read_mapping(path, "site file")
    if SITE_KEY in site:
        raise PrrmseError(path, f"config key {SITE_KEY}: a site file cannot name another site file")
    return path, site


def config_value(config: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    """Whether `config` sets the dotted key (`analysis.plan.rule`), and its value."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def settings_json(config: Mapping[str, Any], keys: list[str]) -> str:
    """The values of `keys` that `config` sets, as sorted JSON: a workflow rule's `settings`
    param, so Snakemake reruns a job whose values changed, as DVC does with its params."""
    found = {key: config_value(config, key) for key in keys}
    return json.dumps(
        {key: value for key, (present, value) in found.items() if present}, sort_keys=True
    )


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge `over` into `base` in place: mappings key by key, any other value replaces."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def layer_site(config: dict[str, Any], config_path: str | Path) -> Path | None:
    """Merge the config's site file into `config` in place and check the result against the
    schema (an error at a key the site file sets names the site file); return the site
    file, or None when there is none. The Snakefile and `load_config` both call this."""
    found = read_site(config, config_path)
    if found is None:
        return None
    deep_merge(config, found[1])
    # a copy: the caller fills defaults itself (the Snakefile with snakemake's validate)
    validate_config(copy.deepcopy(config), config_path, site=found)
    return found[0]


def load_config(path: str | Path) -> dict[str, Any]:
    """The config file, its site file (if it names one that exists) merged over it,
    validated and with defaults filled in."""
    path = Path(path)
    if not path.is_file():
        raise PrrmseError(path, "config file not found")
    config = _read_mapping(path, "config")
    found = read_site(config, path)
    if found is not None:
        deep_merge(config, found[1])
    return validate_config(config, path, site=found)


def dataset_config(
    config: dict[str, Any], name: str, source: str | Path = "config"
) -> dict[str, Any]:
    datasets = config.get("datasets", {})
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "none"
        raise PrrmseError(source, f"unknown dataset '{name}' (config defines: {known})")
    return datasets[name]
