"""The claims over replacement sweeps: BN running statistics matter more than weight and
bias, conv weight vs bias, RM 1 not reusable (against the control sweep), reuse affects
UNet more than PSPNet, and (ours) the source against the re-init controls."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from prrmse.results.claims.core import (
    OURS,
    V1,
    V2,
    Bootstrap,
    Claim,
    Entry,
    Spec,
    claim_from,
    inconclusive,
)
from prrmse.results.claims.drops import Comparison, comparisons_of, drops_of, read_sweep
from prrmse.results.claims.evidence import Evidence

FIGURES = "replacement sweeps, Figs. 3-10 (drawn, no values printed)"
BN_SPEC = Spec(
    "rm-rv-matter-more",
    f'{V1}, conclusion (2): "RM and RV matter more than RW and RB, which are almost '
    'entirely reusable".',
    "{key}: over the BN layers, the mean Dice drop of replacing RM and RV exceeds that of "
    "replacing RW and RB.",
    "mean over BN layers of (drop RM + drop RV)/2 - (drop RW + drop RB)/2",
    "BN layers",
    evidence=f"{FIGURES}; the paper's plan finds only RM 1, 17 of the BN tensors not reusable",
)
CONV_SPEC = Spec(
    "conv-weight-sensitive-bias-not",
    f"{V2}, 1.1.1 (UNet): conv W is not reusable; B is reusable in every layer but the first.",
    "{key}: over the conv layers with a bias, the mean Dice drop of replacing W exceeds that "
    "of replacing B.",
    "mean over conv layers with bias of drop W - drop B",
    "conv layers",
    evidence=FIGURES,
)
RM1_SPEC = Spec(
    "rm1-not-reusable",
    f"{V1}, conclusion (1) and {V2}: \"UNet and PSPNet's RM are not reusable in the first "
    "layer\" (the paper's PSPNet plan also keeps RM 17).",
    "{key}: replacing RM of BN layer 1 with the source's drops Dice more than the control "
    "sweep's replacement of the same tensor (its initial value): the source's RM 1 is worse "
    "than knowing nothing.",
    "drop RM 1 (source) - drop RM 1 (control), paired by seed (and patient)",
    "BN layers",
    evidence=f"{FIGURES}; the paper's PSPNet plan: RM 1, 17 not reusable",
)
NETWORK_SPEC = Spec(
    "reuse-affects-unet-more",
    f"{V2}, 1.2.1: parameter reuse affects UNet more than PSPNet, although their W RMSE is of "
    "the same order of magnitude.",
    "{key}: the mean Dice drop over all entries (layer, kind) is larger for UNet than for "
    "PSPNet (same target and source tasks).",
    "mean drop over UNet entries - mean drop over PSPNet entries (paired by seed, patient)",
    "entries (UNet + PSPNet)",
    evidence=FIGURES,
)
CONTROL_SPECS = {
    condition: Spec(
        f"source-beats-{condition}",
        f"{OURS} (control after Zhang et al. 2019): a tensor is called reusable "
        "when the source's copy costs little Dice; that is transfer, not mere robustness, "
        f"only if the source's copy costs less than {word}.",
        "{key}: over the entries, replacing with the source's tensor drops Dice less than "
        f"{word}.",
        f"mean over entries of drop ({condition}) - drop (source)",
        "entries",
        scope=OURS,
        evidence="no control sweep in the paper",
    )
    for condition, word in (
        ("reinit", "re-initialising the tensor to the target's initial value"),
        ("rerandom", "a fresh draw of the initialiser"),
    )
}


def _mean_over(frame: pd.DataFrame, columns: Sequence[Entry]) -> pd.Series:
    return frame[list(columns)].mean(axis=1, skipna=True)


def bn_claim(comparison: Comparison, boot: Bootstrap) -> Claim:
    drops = drops_of(comparison.files, "source")
    if drops is None:
        return inconclusive(BN_SPEC, comparison.key, "no source-replacement rows")
    have = set(drops.entries())
    layers = sorted(
        {
            n
            for f, n, _ in have
            if f == "bn" and all(("bn", n, k) in have for k in ("RM", "RV", "RW", "RB"))
        }
    )
    if not layers:
        return inconclusive(BN_SPEC, comparison.key, "no BN layer with RM, RV, RW and RB")
    frame = drops.frame
    stats = _mean_over(frame, [("bn", n, k) for n in layers for k in ("RM", "RV")])
    affine = _mean_over(frame, [("bn", n, k) for n in layers for k in ("RW", "RB")])
    interval = boot.paired(drops.units(stats), drops.units(affine))
    detail = f"mean drop RM/RV {stats.mean():.4g}, RW/RB {affine.mean():.4g}"
    return claim_from(BN_SPEC, comparison.key, interval, len(layers), detail)


def conv_claim(comparison: Comparison, boot: Bootstrap) -> Claim:
    drops = drops_of(comparison.files, "source")
    if drops is None:
        return inconclusive(CONV_SPEC, comparison.key, "no source-replacement rows")
    have = set(drops.entries())
    layers = sorted(
        {n for f, n, k in have if f == "conv" and k == "B" and ("conv", n, "W") in have}
    )
    if not layers:
        return inconclusive(
            CONV_SPEC,
            comparison.key,
            "conv B absent in every layer (convs without bias): nothing to compare W with",
        )
    weight = _mean_over(drops.frame, [("conv", n, "W") for n in layers])
    bias = _mean_over(drops.frame, [("conv", n, "B") for n in layers])
    interval = boot.paired(drops.units(weight), drops.units(bias))
    detail = f"mean drop W {weight.mean():.4g}, B {bias.mean():.4g}"
    return claim_from(CONV_SPEC, comparison.key, interval, len(layers), detail)


def rm1_claim(comparison: Comparison, boot: Bootstrap) -> Claim:
    source = drops_of(comparison.files, "source")
    entry = ("bn", 1, "RM")
    if source is None or entry not in source.entries():
        return inconclusive(RM1_SPEC, comparison.key, "no source replacement of RM of BN layer 1")
    for condition in ("reinit", "rerandom"):
        control = drops_of(comparison.controls, condition)
        if control is not None and entry in control.entries():
            break
    else:
        return inconclusive(RM1_SPEC, comparison.key, "no control sweep replacing RM 1")
    ours, theirs = source.frame[entry], control.frame[entry]
    interval = boot.paired(source.units(ours), control.units(theirs))
    detail = f"drop RM 1: source {ours.mean():.4g}, {condition} control {theirs.mean():.4g}"
    return claim_from(RM1_SPEC, comparison.key, interval, 1, detail)


def network_claims(comparisons: Sequence[Comparison], boot: Bootstrap) -> list[Claim]:
    """UNet vs PSPNet for every pair of comparisons of the same target and source tasks."""

    def role(key: str) -> str:
        return key.split("-", 1)[1]

    claims = []
    for unet in (c for c in comparisons if c.network == "unet"):
        for pspnet in (c for c in comparisons if c.network == "pspnet"):
            if (role(unet.target), role(unet.source)) != (role(pspnet.target), role(pspnet.source)):
                continue
            key = f"{role(unet.target)} <- {role(unet.source)}"
            sides = [drops_of(c.files, "source") for c in (unet, pspnet)]
            if sides[0] is None or sides[1] is None:
                claims.append(inconclusive(NETWORK_SPEC, key, "no source-replacement rows"))
                continue
            means = [d.units(d.frame.mean(axis=1, skipna=True)) for d in sides]
            interval = boot.paired(*means)
            n_entries = sum(len(d.entries()) for d in sides)
            detail = (
                f"mean drop UNet {means[0].series.mean():.4g} ({len(sides[0].entries())} entries), "
                f"PSPNet {means[1].series.mean():.4g} ({len(sides[1].entries())} entries)"
            )
            claims.append(claim_from(NETWORK_SPEC, key, interval, n_entries, detail))
    if not claims:
        networks = sorted({c.network for c in comparisons})
        reason = f"needs a UNet and a PSPNet comparison of the same tasks (have: {', '.join(networks) or 'none'})"
        claims.append(inconclusive(NETWORK_SPEC, "", reason))
    return claims


def control_claim(comparison: Comparison, condition: str, boot: Bootstrap) -> Claim:
    spec = CONTROL_SPECS[condition]
    source = drops_of(comparison.files, "source")
    control = drops_of(comparison.controls, condition)
    if source is None or control is None:
        return inconclusive(spec, comparison.key, f"no {condition} control sweep for this target")
    entries = sorted(set(source.entries()) & set(control.entries()))
    if not entries:
        return inconclusive(
            spec, comparison.key, f"the {condition} sweep shares no entry with the source sweep"
        )
    means = [d.units(_mean_over(d.frame, entries)) for d in (control, source)]
    interval = boot.paired(*means)
    detail = (
        f"mean drop {condition} {means[0].series.mean():.4g}, source {means[1].series.mean():.4g}"
    )
    return claim_from(spec, comparison.key, interval, len(entries), detail)


def sweep_claims(sweep_paths: Sequence[Path], evidence: Evidence, boot: Bootstrap) -> list[Claim]:
    # Per-patient files are read beside their sweep; a glob of sweeps/*.csv also lists them.
    paths = [Path(path) for path in sweep_paths if not str(path).endswith(".patients.csv")]
    files = [sweep for path in paths if (sweep := read_sweep(path, evidence))]
    comparisons = comparisons_of(files)
    if not comparisons:
        why = evidence.absent("sweeps", "no sweep with source-replacement rows")
        specs = [BN_SPEC, CONV_SPEC, RM1_SPEC, NETWORK_SPEC, *CONTROL_SPECS.values()]
        return [inconclusive(spec, "", why) for spec in specs]
    claims: list[Claim] = []
    for maker in (bn_claim, conv_claim, rm1_claim):
        claims += [maker(comparison, boot) for comparison in comparisons]
    claims += network_claims(comparisons, boot)
    for condition in CONTROL_SPECS:
        claims += [control_claim(comparison, condition, boot) for comparison in comparisons]
    return claims
