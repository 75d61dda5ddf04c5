"""Typed settings: the base of the frozen dataclasses a verb turns its config section into.

`Settings.from_config` takes exactly the keys of a validated section (`prrmse.core.config.
load_config`, schema defaults filled): a missing or unknown key, or a value of the wrong
type, is a PrrmseError naming the place. Values are kept as the config gives them (an
integer `lr` stays an integer), so `as_record()` gives back the very section, and records
written from it keep their bytes. The phases define their own settings on this base
(`prrmse.training.settings`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

from prrmse.core.errors import PrrmseError


def _type_name(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(hint))
    if get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(hint))
    if hint is type(None):
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _matches(value: Any, hint: Any) -> bool:
    if get_origin(hint) is Literal:
        return any(type(value) is type(arg) and value == arg for arg in get_args(hint))
    if get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # a number: an integer is one too, and is kept as it is
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    raise TypeError(f"settings field of unsupported type {hint!r}")


class Settings:
    """Base of the settings dataclasses: built from a config section, written back as one."""

    @classmethod
    def from_config(cls, section: Mapping[str, Any], where: str) -> typing.Self:
        """The settings of a validated config `section`; `where` names it in errors
        (e.g. "config.yaml: config key train")."""
        if not isinstance(section, Mapping):
            raise PrrmseError(where, f"must be a mapping, got {type(section).__name__}")
        fields = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = [str(key) for key in section if key not in fields]
        if unknown:
            raise PrrmseError(
                where, f"unknown key {', '.join(unknown)} (known: {', '.join(fields)})"
            )
        missing = [name for name in fields if name not in section]
        if missing:
            raise PrrmseError(where, f"missing key {', '.join(missing)}")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for name in fields:
            hint, value, place = hints[name], section[name], f"{where}.{name}"
            if isinstance(hint, type) and issubclass(hint, Settings):
                values[name] = hint.from_config(value, place)
            elif _matches(value, hint):
                values[name] = value
            elif get_origin(hint) is Literal:
                valid = ", ".join(str(arg) for arg in get_args(hint))
                raise PrrmseError(place, f"unknown {value!r}; valid: {valid}")
            else:
                raise PrrmseError(place, f"must be {_type_name(hint)}, got {value!r}")
        return cls(**values)

    def as_record(self) -> dict[str, Any]:
        """The config section these settings were made from: the mapping records hold."""
        record: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            record[field.name] = value.as_record() if isinstance(value, Settings) else value
        return record
