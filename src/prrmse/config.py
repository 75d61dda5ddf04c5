"""Load the workflow config, validate it against the schema and fill in defaults.

The same schema file validates the config in the Snakefile (snakemake's
`validate`) and in every `prrmse` verb, so a job reads exactly the values DVC
tracks in config/config.yaml.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from prrmse.errors import PrrmseError


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


def validate_config(config: dict[str, Any], source: str | Path = "config") -> dict[str, Any]:
    """Validate in place (filling defaults) and return the config; raise PrrmseError on the first problem."""
    validator = _DefaultFillingValidator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            message = f"unknown key ({error.message})"
        else:
            message = error.message
        raise PrrmseError(source, f"config key {_error_location(error)}: {message}")
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PrrmseError(path, "config file not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PrrmseError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from exc
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise PrrmseError(path, "config must be a mapping of keys to values")
    return validate_config(config, path)


def dataset_config(config: dict[str, Any], name: str, source: str | Path = "config") -> dict[str, Any]:
    datasets = config.get("datasets", {})
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "none"
        raise PrrmseError(source, f"unknown dataset '{name}' (config defines: {known})")
    return datasets[name]
