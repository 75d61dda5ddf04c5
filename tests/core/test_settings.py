"""The settings base (`prrmse.core.settings`): lists as tuples, mappings as FrozenMap, keys a
section may leave out, each written back by `as_record()` as the section held it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Literal

import pytest

from prrmse.core.errors import PrrmseError
from prrmse.core.settings import FrozenMap, Settings, optional_key


@dataclasses.dataclass(frozen=True)
class Inner(Settings):
    flag: bool


@dataclasses.dataclass(frozen=True)
class Sample(Settings):
    shape: tuple[int, int]
    range_mm: tuple[float, float]
    names: tuple[str, ...] | None
    order: Literal["natural"] | tuple[str, ...]
    labels: Mapping[int | str, int]
    count: int | None = optional_key()
    inner: Inner


SECTION = {
    "shape": [4, 5],
    "range_mm": [1, 2.5],
    "names": ["a", "b"],
    "order": ["x", "y"],
    "labels": {0: 0, "1": 2},
    "count": 3,
    "inner": {"flag": True},
}


def test_lists_and_mappings_round_trip_as_the_section_held_them():
    settings = Sample.from_config(SECTION, "config sample")
    assert settings.shape == (4, 5) and settings.names == ("a", "b")
    assert settings.range_mm == (1, 2.5) and type(settings.range_mm[0]) is int
    assert isinstance(settings.labels, FrozenMap) and settings.labels[0] == 0
    assert settings.labels["1"] == 2 and list(settings.labels) == [0, "1"]
    record = settings.as_record()
    assert record == SECTION and type(record["shape"]) is list
    assert type(record["labels"]) is dict and list(record["labels"]) == [0, "1"]
    assert json.dumps(record) == json.dumps(SECTION)
    assert Sample.from_config(record, "again") == settings


def test_settings_with_lists_and_mappings_stay_frozen_and_hashable():
    settings = Sample.from_config(SECTION, "config sample")
    assert hash(settings) == hash(Sample.from_config(SECTION, "config sample"))
    with pytest.raises(TypeError):
        settings.labels[0] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.shape = (1, 1)  # type: ignore[misc]
    assert FrozenMap({1: 2, 3: 4}) == FrozenMap({3: 4, 1: 2}) == {1: 2, 3: 4}
    assert hash(FrozenMap({1: 2, 3: 4})) == hash(FrozenMap({3: 4, 1: 2}))


def test_a_union_of_a_literal_and_a_list():
    settings = Sample.from_config({**SECTION, "order": "natural", "names": None}, "s")
    assert settings.order == "natural" and settings.names is None
    assert settings.as_record()["names"] is None
    with pytest.raises(PrrmseError, match="must be one of natural or a list, each item a string"):
        Sample.from_config({**SECTION, "order": "reverse"}, "s")


def test_an_optional_key_left_out_is_none_and_left_out_again():
    section = {key: value for key, value in SECTION.items() if key != "count"}
    settings = Sample.from_config(section, "config sample")
    assert settings.count is None
    assert settings.as_record() == section and "count" not in settings.as_record()
    with pytest.raises(PrrmseError, match="count: must be an integer, got None"):
        Sample.from_config({**section, "count": None}, "config sample")


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("shape", [4], "must be a list of 2 items, an integer, an integer, got [4]"),
        ("shape", [4, 5, 6], "a list of 2 items"),
        ("shape", "4x5", "a list of 2 items"),
        ("shape", [4, 5.0], "a list of 2 items"),
        ("range_mm", [1, True], "a list of 2 items, a number, a number"),
        ("names", ["a", 1], "must be a list, each item a string or null"),
        ("labels", {0: "x"}, "a mapping, each key an integer or a string and each value an"),
        ("labels", [0, 1], "a mapping"),
        ("labels", {1.5: 0}, "a mapping"),
    ],
)
def test_a_wrong_list_or_mapping_names_the_key(key, value, words):
    with pytest.raises(PrrmseError, match="must be") as error:
        Sample.from_config({**SECTION, key: value}, "config sample")
    assert error.value.where == f"config sample.{key}"
    assert words in str(error.value)


def test_unsupported_field_types_are_a_programming_error():
    @dataclasses.dataclass(frozen=True)
    class Listy(Settings):
        items: list[int]

    with pytest.raises(TypeError, match="unsupported type"):
        Listy.from_config({"items": [1]}, "s")
