"""The paper's figures in one place: every number 3-14 once, each kind drawable, and the
workflow's wildcard patterns taken from the same list."""

import re

import pytest

from prrmse.core.errors import PrrmseError
from prrmse.figures.catalog import BY_NUMBER, FIGURES, figure_spec, wildcard_pattern
from prrmse.figures.paper import PLOTTERS


def test_every_figure_of_the_paper_once() -> None:
    assert [spec.number for spec in FIGURES] == list(range(3, 15))
    assert len(BY_NUMBER) == len(FIGURES)


def test_every_kind_has_its_plotter() -> None:
    kinds = {spec.kind for spec in FIGURES if not spec.is_reuse}
    assert kinds == set(PLOTTERS)
    assert [spec.number for spec in FIGURES if spec.is_reuse] == [13, 14]


def test_each_figure_names_what_it_draws() -> None:
    for spec in FIGURES:
        if spec.is_reuse:
            assert spec.network is spec.product is spec.group is None
        elif spec.group:
            assert spec.kind == "group_rmse" and spec.network is None
        else:
            assert spec.network in {"unet", "pspnet"} and spec.product in {
                "sweeps",
                "bnstats",
                "rmse",
            }
    assert [s.number for s in FIGURES if s.draws_floor] == [6, 10, 11, 12, 13, 14]


def test_wildcard_patterns_split_the_labels() -> None:
    model = re.compile(f"^(?:{wildcard_pattern(reuse=False)})$")
    reuse = re.compile(f"^(?:{wildcard_pattern(reuse=True)})$")
    for spec in FIGURES:
        assert bool(reuse.match(spec.label)) == spec.is_reuse
        assert bool(model.match(spec.label)) != spec.is_reuse
    assert not model.match("3") and not model.match("15")


def test_unknown_number_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(PrrmseError, match=r"figure 2: no such figure; valid: 3, 4, .*, 14"):
        figure_spec(2)
