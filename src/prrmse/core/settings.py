"""Typed settings: the base of the frozen dataclasses a verb turns its config section into.

`Settings.from_config` takes exactly the keys of a validated section (`prrmse.core.config.
load_config`, schema defaults filled): a missing or unknown key, or a value of the wrong
type, is a PrrmseError naming the place. Values are kept as the config gives them (an
integer `lr` stays an integer), so `as_record()` gives back the very section, and records
written from it keep their bytes. The phases define their own settings on this base
(`prrmse.training.settings`, `prrmse.data.settings`).

Field types: bool, int, float (an integer is kept as it is), str, None, Literal, unions
of these, nested Settings, lists as tuples (`tuple[int, int]` of fixed length,
`tuple[str, ...]` of any), and mappings of these as `Mapping[K, V]` (held as a read-only
`FrozenMap`). `as_record()` writes tuples back as lists and maps as dicts. A field made
with `optional_key()` is a key the section may leave out, for a schema key without a
default whose type admits no null: absent it reads None, and `as_record()` leaves it out
again.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

from prrmse.core.errors import PrrmseError

_OPTIONAL_KEY = "prrmse_optional_key"
_NO = object()  # a value that does not match a type


def optional_key() -> Any:
    """A field whose key the section may leave out (None when it does; see above)."""
    return dataclasses.field(metadata={_OPTIONAL_KEY: True})


class FrozenMap(Mapping[Any, Any]):
    """A read-only, hashable mapping that keeps its keys' order: a mapping field's value."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[Any, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def _is_union(hint: Any) -> bool:
    return get_origin(hint) in (typing.Union, types.UnionType)


def _type_name(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if _is_union(hint):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a list, each item {_type_name(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} items, " + ", ".join(_type_name(a) for a in args)
    if origin is Mapping:
        return f"a mapping, each key {_type_name(args[0])} and each value {_type_name(args[1])}"
    if hint is type(None):
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _scalar(value: Any, hint: Any) -> Any:
    if hint is type(None):
        ok = value is None
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:  # a number: an integer is one too, and is kept as it is
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"settings field of unsupported type {hint!r}")
    return value if ok else _NO


def _convert(value: Any, hint: Any) -> Any:
    """`value` as a field of type `hint` holds it (lists as tuples, mappings as FrozenMap),
    or _NO when it does not match."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value if any(type(value) is type(a) and value == a for a in args) else _NO
    if _is_union(hint):
        for arg in args:
            converted = _convert(value, arg)
            if converted is not _NO:
                return converted
        return _NO
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _NO
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            return _NO
        converted = tuple(_convert(v, h) for v, h in zip(value, items, strict=True))
        return _NO if any(c is _NO for c in converted) else converted
    if origin is Mapping:
        if not isinstance(value, Mapping):
            return _NO
        pairs = [(_convert(k, args[0]), _convert(v, args[1])) for k, v in value.items()]
        return _NO if any(k is _NO or v is _NO for k, v in pairs) else FrozenMap(dict(pairs))
    return _scalar(value, hint)


def _without_none(hint: Any) -> Any:
    if not _is_union(hint):
        return hint
    return typing.Union[tuple(arg for arg in get_args(hint) if arg is not type(None))]  # noqa: UP007


def _record(value: Any) -> Any:
    if isinstance(value, Settings):
        return value.as_record()
    if isinstance(value, tuple):
        return [_record(item) for item in value]
    if isinstance(value, FrozenMap):
        return {key: _record(item) for key, item in value.items()}
    return value


def _optional(field: dataclasses.Field[Any]) -> bool:
    return bool(field.metadata.get(_OPTIONAL_KEY))


class Settings:
    """Base of the settings dataclasses: built from a config section, written back as one."""

    @classmethod
    def from_config(cls, section: Mapping[str, Any], where: str) -> typing.Self:
        """The settings of a validated config `section`; `where` names it in errors
        (e.g. "config.yaml: config key train")."""
        if not isinstance(section, Mapping):
            raise PrrmseError(where, f"must be a mapping, got {type(section).__name__}")
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        names = [field.name for field in fields]
        unknown = [str(key) for key in section if key not in names]
        if unknown:
            raise PrrmseError(
                where, f"unknown key {', '.join(unknown)} (known: {', '.join(names)})"
            )
        missing = [f.name for f in fields if f.name not in section and not _optional(f)]
        if missing:
            raise PrrmseError(where, f"missing key {', '.join(missing)}")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in fields:
            name, hint = field.name, hints[field.name]
            if name not in section:  # an optional key left out
                values[name] = None
                continue
            value, place = section[name], f"{where}.{name}"
            hint = _without_none(hint) if _optional(field) else hint
            if isinstance(hint, type) and issubclass(hint, Settings):
                values[name] = hint.from_config(value, place)
                continue
            values[name] = _convert(value, hint)
            if values[name] is not _NO:
                continue
            if get_origin(hint) is Literal:
                valid = ", ".join(str(arg) for arg in get_args(hint))
                raise PrrmseError(place, f"unknown {value!r}; valid: {valid}")
            raise PrrmseError(place, f"must be {_type_name(hint)}, got {value!r}")
        return cls(**values)

    def as_record(self) -> dict[str, Any]:
        """The config section these settings were made from: the mapping records hold."""
        record: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is None and _optional(field):
                continue
            record[field.name] = _record(value)
        return record
