"""The paper's Figures 3-14 by number: what each draws and from which summary, in one place
for the plotting code (`prrmse.figures.paper.make_figure`) and the workflow (the `figure` and
`figure_reuse` rules, the final targets)."""

from __future__ import annotations

from dataclasses import dataclass

from prrmse.core.errors import PrrmseError

# kinds whose figure draws the seed-to-seed RMSE noise floor as a band when given one
FLOOR_KINDS = frozenset({"conv_rmse", "group_rmse", "rmse_to_ideal"})


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its number, how it is drawn, and what it draws.

    Model figures (3-10) draw a summary of the `network`'s pair in analysis.comparisons
    from the summary folder `product`; group figures (11, 12) the RMSE group `group` of
    analysis.groups; reuse figures (13, 14) the RMSE of the reuse runs to the ideal model.
    """

    number: int
    kind: str
    network: str | None = None
    product: str | None = None
    group: str | None = None

    @property
    def label(self) -> str:
        """The two-digit number of its file names (fig03.png) and rule wildcards."""
        return f"{self.number:02d}"

    @property
    def draws_floor(self) -> bool:
        return self.kind in FLOOR_KINDS

    @property
    def is_reuse(self) -> bool:
        return self.kind == "rmse_to_ideal"


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(3, "bn_sweep", network="unet", product="sweeps"),
    FigureSpec(4, "conv_sweep", network="unet", product="sweeps"),
    FigureSpec(5, "bn_stats", network="unet", product="bnstats"),
    FigureSpec(6, "conv_rmse", network="unet", product="rmse"),
    FigureSpec(7, "bn_sweep", network="pspnet", product="sweeps"),
    FigureSpec(8, "conv_sweep", network="pspnet", product="sweeps"),
    FigureSpec(9, "bn_stats", network="pspnet", product="bnstats"),
    FigureSpec(10, "conv_rmse", network="pspnet", product="rmse"),
    FigureSpec(11, "group_rmse", group="fig11"),
    FigureSpec(12, "group_rmse", group="fig12"),
    FigureSpec(13, "rmse_to_ideal"),
    FigureSpec(14, "rmse_to_ideal"),
)
BY_NUMBER: dict[int, FigureSpec] = {spec.number: spec for spec in FIGURES}


def figure_spec(number: int) -> FigureSpec:
    """The figure `number`; an error naming the valid numbers for any other."""
    if number not in BY_NUMBER:
        valid = ", ".join(str(n) for n in sorted(BY_NUMBER))
        raise PrrmseError(f"figure {number}", f"no such figure; valid: {valid}")
    return BY_NUMBER[number]


def wildcard_pattern(*, reuse: bool) -> str:
    """The regex of the two-digit labels of the reuse figures (reuse=True) or the others."""
    return "|".join(spec.label for spec in FIGURES if spec.is_reuse == reuse)
