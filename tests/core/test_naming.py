"""The model-name grammar: one place for names, their fields and the workflow's wildcards."""

from __future__ import annotations

import re

import pytest

from prrmse.core.errors import PrrmseError
from prrmse.core.naming import (
    MODEL_PATTERN,
    PAIR_PATTERN,
    RUN_MODEL_PATTERN,
    STEM_PATTERN,
    dataset_of_name,
    network_of_name,
    parse_model_name,
    stem_fields,
)


@pytest.mark.parametrize(
    "name",
    ["pspnet-seg-acdc-s1", "unet-auto-acdc-s12", "pspnet-seg-acdc-n10-s3", "my_net-seg-t1-s2"],
)
def test_every_parsed_name_matches_the_wildcard_pattern_and_gives_the_same_fields(name):
    spec = parse_model_name(name)
    assert re.fullmatch(MODEL_PATTERN, name)
    assert stem_fields(name) == (spec.network, spec.task, spec.dataset)
    assert network_of_name(name) == spec.network
    assert dataset_of_name(name) == spec.dataset


def test_run_models_and_sources_have_no_seed_and_still_give_their_fields():
    assert re.fullmatch(RUN_MODEL_PATTERN, "pspnet-seg-acdc-n50")
    assert not re.fullmatch(RUN_MODEL_PATTERN, "pspnet-seg-acdc-n50-s1")
    assert re.fullmatch(STEM_PATTERN, "pspnet-auto-t1")
    assert dataset_of_name("pspnet-seg-acdc-n50") == "acdc"
    assert network_of_name("pspnet-auto-t1") == "pspnet"
    assert re.fullmatch(PAIR_PATTERN, "unet-seg-acdc__unet-auto-acdc")
    assert not re.fullmatch(PAIR_PATTERN, "unet-seg-acdc-s1__unet-auto-acdc-s1")


@pytest.mark.parametrize(
    "name", ["pspnet-cls-acdc-s1", "pspnet", "PSPNet-seg-acdc-s1", "pspnetseg-acdc"]
)
def test_a_name_without_a_valid_stem_is_refused_naming_it(name):
    with pytest.raises(PrrmseError, match=re.escape(name)):
        stem_fields(name)
    assert not re.fullmatch(MODEL_PATTERN, name)
