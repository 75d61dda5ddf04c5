"""The parameter kinds of the study, apart from the model code so table readers stay light:
BN running mean RM, running variance RV, weight RW, bias RB; conv weight W, bias B."""

from __future__ import annotations

from typing import Literal

Family = Literal["bn", "conv"]

BN_KINDS: tuple[str, ...] = ("RM", "RV", "RW", "RB")
CONV_KINDS: tuple[str, ...] = ("W", "B")
KINDS_OF_FAMILY: dict[str, tuple[str, ...]] = {"bn": BN_KINDS, "conv": CONV_KINDS}
FAMILY_OF_KIND: dict[str, str] = {
    kind: family for family, kinds in KINDS_OF_FAMILY.items() for kind in kinds
}
