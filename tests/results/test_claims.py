"""Claims on hand-made results: each verdict each way, missing and malformed inputs, writing."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.results.claims.verdicts import (
    Claim,
    ClaimInputs,
    evaluate_claims,
    run_claims,
    verdict_of,
)
from prrmse.results.stats import Interval

BASE = 0.9  # baseline Dice of every foreground class
SEEDS = (1, 2, 3)
Entry = tuple[str, int, str]


def drops(
    rm: float = 0.0,
    rv: float = 0.0,
    rw: float = 0.0,
    rb: float = 0.0,
    w: float = 0.0,
    b: float | None = 0.0,
    rm1: float | None = None,
) -> dict[Entry, float | None]:
    """Dice drop per entry of a small model: 3 BN layers, 3 convs (B None: absent)."""
    table: dict[Entry, float | None] = {}
    for layer in (1, 2, 3):
        table |= {("bn", layer, "RM"): rm, ("bn", layer, "RV"): rv}
        table |= {("bn", layer, "RW"): rw, ("bn", layer, "RB"): rb}
        table |= {("conv", layer, "W"): w, ("conv", layer, "B"): b}
    if rm1 is not None:
        table[("bn", 1, "RM")] = rm1
    return table


def _rows(entries: Mapping[Entry, float | None], condition: str | None) -> list[dict]:
    rows = [
        dict(
            family="baseline",
            layer=0,
            module="",
            head=False,
            kind="",
            status="baseline",
            **{"class": c},
            dice=BASE,
            baseline_dice=BASE,
        )
        for c in range(4)
    ]
    # The head (conv 4) loses everything when replaced: a claim must leave it out.
    heads = {("conv", 4, "W"): 0.9, ("conv", 4, "B"): 0.9}
    for (family, layer, kind), drop in {**entries, **heads}.items():
        for c in range(4):
            dice = math.nan if drop is None else (BASE if c == 0 else BASE - drop)
            rows.append(
                dict(
                    family=family,
                    layer=layer,
                    module=f"m{family}{layer}",
                    head=layer == 4,
                    kind=kind,
                    status="absent" if drop is None else "replaced",
                    **{"class": c},
                    dice=dice,
                    baseline_dice=BASE,
                )
            )
    frame = pd.DataFrame(rows)
    frame["difference"] = frame["dice"] - frame["baseline_dice"]
    if condition is not None:
        frame["condition"] = condition
    return frame.to_dict("records")


def write_sweep(
    folder: Path,
    target: str,
    source: str,
    seed: int,
    entries: Mapping[Entry, float | None],
    condition: str | None = None,
    suffix: str = "",
    patients: int = 0,
    spread: float = 0.0,
) -> Path:
    """A sweep CSV `<target>-sS__<source>-sS<suffix>.csv`, optionally with per-patient Dice:
    patient p's drop is the entry's drop + spread * (p - mean), so patients differ."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{target}-s{seed}__{source}-s{seed}{suffix}.csv"
    frame = pd.DataFrame(_rows(entries, condition))
    path.write_text(provenance.csv_header({"seed": seed}) + frame.to_csv(index=False))
    if patients:
        rows = []
        offsets = spread * (np.arange(patients) - (patients - 1) / 2)
        for row in frame.itertuples(index=False):
            if row.status == "absent":
                continue
            for p, offset in enumerate(offsets):
                dice = row.dice if row.status == "baseline" or row[6] == 0 else row.dice - offset
                rows.append(
                    dict(
                        condition=condition or "source",
                        family=row.family,
                        layer=row.layer,
                        kind=row.kind or None,
                        patient=f"P{p:02d}",
                        **{"class": row[6]},
                        dice=dice,
                    )
                )
        stem = path.name.split(".")[0]
        pd.DataFrame(rows).to_csv(path.with_name(f"{stem}.patients.csv"), index=False)
    return path


def sweeps_over_seeds(
    folder: Path, target: str, source: str, make: Mapping[int, dict], **kwargs: object
) -> list[Path]:
    return [write_sweep(folder, target, source, seed, make[seed], **kwargs) for seed in make]


def by_id(claims: list[Claim], prefix: str) -> dict[str, Claim]:
    return {c.id: c for c in claims if c.id.startswith(prefix)}


def only(claims: list[Claim], prefix: str) -> Claim:
    found = list(by_id(claims, prefix).values())
    assert len(found) == 1, [c.id for c in found]
    return found[0]


def evaluate(**fields: object) -> list[Claim]:
    return evaluate_claims(ClaimInputs(n_boot=400, **fields))


# --- the verdict rule ------------------------------------------------------------------------


def test_verdict_rule() -> None:
    def interval(low: float, high: float, degenerate: bool = False) -> Interval:
        return Interval(
            (low + high) / 2, low, high, 3, 0, 0.95, degenerate, "one seed" * degenerate
        )

    assert verdict_of(interval(0.1, 0.2))[0] == "holds"
    assert verdict_of(interval(-0.2, -0.1))[0] == "does not hold"
    assert verdict_of(interval(-0.1, 0.2))[0] == "inconclusive"
    assert verdict_of(interval(0.1, 0.1, degenerate=True))[0] == "inconclusive"
    assert verdict_of(Interval(math.nan, math.nan, math.nan, 0, 0))[0] == "inconclusive"


# --- sweeps ----------------------------------------------------------------------------------

UNET = ("unet-seg-acdc", "unet-auto-acdc")
PSPNET = ("pspnet-seg-acdc", "pspnet-auto-acdc")


def jitter(make: object, values: tuple[float, ...] = (0.0, 0.01, -0.01)) -> dict[int, dict]:
    """Per seed drops with a small seed-to-seed difference (the model varies by seed)."""
    return {
        seed: {k: (None if v is None else v + d) for k, v in make().items()}  # type: ignore[operator]
        for seed, d in zip(SEEDS, values, strict=True)
    }


@pytest.mark.parametrize(
    ("entries", "verdict"),
    [
        (lambda: drops(rm=0.2, rv=0.3, rw=0.01, rb=0.02, w=0.1), "holds"),
        (lambda: drops(rm=0.01, rv=0.02, rw=0.2, rb=0.3, w=0.1), "does not hold"),
    ],
)
def test_bn_claim_both_ways(tmp_path: Path, entries: object, verdict: str) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(entries))
    claim = only(evaluate(sweeps=paths), "rm-rv-matter-more")
    assert claim.verdict == verdict
    assert claim.n_seeds == 3 and claim.n_units == 3
    assert claim.id == "rm-rv-matter-more[unet-seg-acdc <- unet-auto-acdc]"
    assert claim.scope == "paper" and "RM and RV matter more" in claim.paper


def test_bn_claim_seed_spread_straddling_zero_is_inconclusive(tmp_path: Path) -> None:
    # The contrast is +0.1, -0.1, +0.02 in the three seeds.
    make = {
        1: drops(rm=0.2, rv=0.2, rw=0.1, rb=0.1),
        2: drops(rm=0.1, rv=0.1, rw=0.2, rb=0.2),
        3: drops(rm=0.12, rv=0.12, rw=0.1, rb=0.1),
    }
    claim = only(evaluate(sweeps=sweeps_over_seeds(tmp_path, *UNET, make)), "rm-rv-matter")
    assert claim.verdict == "inconclusive"
    assert "contains 0" in claim.reason


def test_one_seed_without_patients_is_inconclusive_one_seed_with_patients_decides(
    tmp_path: Path,
) -> None:
    strong = drops(rm=0.3, rv=0.3, rw=0.01, rb=0.01)
    single = write_sweep(tmp_path / "a", *UNET, 1, strong)
    claim = only(evaluate(sweeps=[single]), "rm-rv-matter")
    assert claim.verdict == "inconclusive"
    assert claim.estimate == pytest.approx(0.29)
    assert "one seed" in claim.reason and math.isclose(claim.low, claim.high)
    assert claim.degenerate
    with_patients = write_sweep(tmp_path / "b", *UNET, 1, strong, patients=12, spread=0.01)
    claim = only(evaluate(sweeps=[with_patients], min_seeds=1), "rm-rv-matter")
    assert claim.verdict == "holds"
    assert claim.n_patients == 12 and claim.n_seeds == 1
    assert "patient sampling only" in claim.reason
    # the seed policy: one seed of training decides nothing, whatever the patients say
    claim = only(evaluate(sweeps=[with_patients]), "rm-rv-matter")
    assert claim.verdict == "inconclusive" and claim.interval_says == "holds"
    assert claim.reason.startswith("only 1 seed of training (a verdict needs 3)")


def test_seed_policy_two_seeds_inconclusive_three_decide(tmp_path: Path) -> None:
    make = jitter(lambda: drops(rm=0.2, rv=0.3, rw=0.01, rb=0.02))
    two = sweeps_over_seeds(tmp_path, *UNET, {s: make[s] for s in (1, 2)})
    claim = only(evaluate(sweeps=two), "rm-rv-matter")
    assert (claim.verdict, claim.interval_says, claim.n_seeds) == ("inconclusive", "holds", 2)
    three = sweeps_over_seeds(tmp_path, *UNET, make)
    assert only(evaluate(sweeps=three), "rm-rv-matter").verdict == "holds"
    md, csv = tmp_path / "claims.md", tmp_path / "claims.csv"
    run_claims(ClaimInputs(sweeps=two, n_boot=200), md, csv)
    text = md.read_text()
    assert "inconclusive (2 seeds)" in text and "**Seed policy.**" in text


def test_per_patient_spread_can_make_it_inconclusive(tmp_path: Path) -> None:
    # RM/RV drops 0.05 more than RW/RB on average, but patients spread far around it: the
    # replaced RM and RV drop by 0.05 +- up to 0.55 per patient.
    make = {seed: drops(rm=0.1, rv=0.1, rw=0.05, rb=0.05) for seed in SEEDS}
    paths = []
    for seed, entries in make.items():
        path = write_sweep(tmp_path, *UNET, seed, entries, patients=12)
        patients_csv = path.with_name(path.name.replace(".csv", ".patients.csv"))
        table = pd.read_csv(patients_csv)
        number = table["patient"].str[1:].astype(int)
        wobble = np.where(number % 2 == 0, 1.0, -1.0) * (0.1 + 0.04 * number)
        moved = table["kind"].isin(["RM", "RV"]) & (table["class"] > 0)
        table.loc[moved, "dice"] = table.loc[moved, "dice"] + wobble[moved]
        table.to_csv(patients_csv, index=False)
        paths.append(path)
    claim = only(evaluate(sweeps=paths), "rm-rv-matter")
    assert claim.n_patients == 12
    assert claim.verdict == "inconclusive"


@pytest.mark.parametrize(
    ("entries", "verdict"),
    [(lambda: drops(w=0.3, b=0.0), "holds"), (lambda: drops(w=0.0, b=0.2), "does not hold")],
)
def test_conv_claim_both_ways(tmp_path: Path, entries: object, verdict: str) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(entries, (0.0, 0.005, 0.002)))
    claim = only(evaluate(sweeps=paths), "conv-weight")
    assert claim.verdict == verdict
    assert claim.n_units == 3  # the head (conv 4) is left out


def test_conv_claim_without_bias_is_inconclusive_with_reason(tmp_path: Path) -> None:
    paths = sweeps_over_seeds(tmp_path, *PSPNET, jitter(lambda: drops(w=0.3, b=None)))
    claim = only(evaluate(sweeps=paths), "conv-weight")
    assert claim.verdict == "inconclusive"
    assert "absent" in claim.reason


@pytest.mark.parametrize(("control", "verdict"), [(0.1, "holds"), (0.6, "does not hold")])
def test_rm1_claim_against_the_control_both_ways(
    tmp_path: Path, control: float, verdict: str
) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(lambda: drops(rm=0.05, rm1=0.4)))
    controls = jitter(lambda: drops(rm=0.05, rm1=control))
    paths += [write_controls(tmp_path, UNET[0], seed, controls[seed]) for seed in SEEDS]
    claim = only(evaluate(sweeps=paths), "rm1-not-reusable")
    assert claim.verdict == verdict
    assert "drop RM 1: source 0.4" in claim.reason and "reinit control" in claim.reason


def test_rm1_claim_without_controls_is_inconclusive(tmp_path: Path) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(lambda: drops(rm=0.05, rm1=0.4)))
    claim = only(evaluate(sweeps=paths), "rm1-not-reusable")
    assert claim.verdict == "inconclusive" and "no control sweep" in claim.reason


@pytest.mark.parametrize(
    ("unet", "pspnet", "verdict"), [(0.2, 0.05, "holds"), (0.05, 0.2, "does not hold")]
)
def test_network_claim_both_ways(tmp_path: Path, unet: float, pspnet: float, verdict: str) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(lambda: drops(rm=unet, w=unet)))
    paths += sweeps_over_seeds(
        tmp_path, *PSPNET, jitter(lambda: drops(rm=pspnet, w=pspnet, b=None))
    )
    claim = only(evaluate(sweeps=paths), "reuse-affects-unet-more")
    assert claim.verdict == verdict
    assert claim.id == "reuse-affects-unet-more[seg-acdc <- auto-acdc]"


def test_network_claim_needs_both_networks(tmp_path: Path) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(lambda: drops(rm=0.2)))
    claim = only(evaluate(sweeps=paths), "reuse-affects-unet-more")
    assert claim.verdict == "inconclusive" and "UNet and a PSPNet" in claim.reason


def write_controls(folder: Path, target: str, seed: int, entries: dict, patients: int = 0) -> Path:
    """One control sweep per target and seed, as `prrmse sweep-controls` writes it:
    `controls/<target>-sS.csv`, both conditions in it, no source in the name."""
    parts = []
    for condition in ("reinit", "rerandom"):
        path = write_sweep(
            folder / condition,
            target,
            "x-seg-y",
            seed,
            entries,
            condition,
            patients=patients,
            spread=0.01,
        )
        parts.append(path)
    out = folder / "controls" / f"{target}-s{seed}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = [pd.read_csv(path, comment="#") for path in parts]
    out.write_text(provenance.csv_header({}) + pd.concat(tables).to_csv(index=False))
    if patients:
        beside = [pd.read_csv(str(p).replace(".csv", ".patients.csv")) for p in parts]
        pd.concat(beside).to_csv(out.with_name(f"{target}-s{seed}.patients.csv"), index=False)
    return out


@pytest.mark.parametrize(("control", "verdict"), [(0.4, "holds"), (0.01, "does not hold")])
@pytest.mark.parametrize("patients", [0, 8])
def test_control_claims_both_ways(
    tmp_path: Path, control: float, verdict: str, patients: int
) -> None:
    paths = sweeps_over_seeds(
        tmp_path, *UNET, jitter(lambda: drops(rm=0.1, w=0.1)), patients=patients, spread=0.01
    )
    controls = jitter(lambda: drops(rm=control, w=control, rv=control))
    paths += [write_controls(tmp_path, UNET[0], seed, controls[seed], patients) for seed in SEEDS]
    paths += sorted(tmp_path.glob("*.patients.csv"))  # a glob of sweeps/*.csv lists them too
    claims = evaluate(sweeps=paths)
    for condition in ("reinit", "rerandom"):
        claim = only(claims, f"source-beats-{condition}")
        assert claim.verdict == verdict and claim.scope == "not in the paper"
        assert claim.n_patients == patients and claim.n_seeds == 3
    # the controls do not leak into the source-condition claims
    assert only(claims, "rm-rv-matter").estimate == pytest.approx(0.05, abs=0.011)


def test_control_claims_without_controls_are_inconclusive(tmp_path: Path) -> None:
    paths = sweeps_over_seeds(tmp_path, *UNET, jitter(lambda: drops(rm=0.1)))
    claim = only(evaluate(sweeps=paths), "source-beats-reinit")
    assert claim.verdict == "inconclusive" and "no reinit control" in claim.reason


def test_sweep_claims_with_missing_file_name_it(tmp_path: Path) -> None:
    missing = tmp_path / "unet-seg-acdc-s1__unet-auto-acdc-s1.csv"
    claims = evaluate(sweeps=[missing])
    sweep_ids = ("rm-rv-", "conv-", "rm1-", "reuse-affects-", "source-beats-")
    sweep_claims = [c for c in claims if c.id.startswith(sweep_ids)]
    assert len(sweep_claims) == 6
    assert sweep_claims and all(c.verdict == "inconclusive" for c in sweep_claims)
    assert all(str(missing) in c.reason for c in sweep_claims)


def test_malformed_sweep_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "unet-seg-acdc-s1__unet-auto-acdc-s1.csv"
    path.write_text("family,layer\nbn,1\n")
    with pytest.raises(PrrmseError, match="unet-seg-acdc-s1__unet-auto-acdc-s1.csv"):
        evaluate(sweeps=[path])
    bad = write_sweep(tmp_path / "x", *UNET, 1, drops(), condition="shuffled")
    with pytest.raises(PrrmseError, match="unknown condition"):
        evaluate(sweeps=[bad])


# --- Table 1 ---------------------------------------------------------------------------------

SOURCES = {"T1-seg": "pspnet-seg-t1", "T1-auto": "pspnet-auto-t1", "RVSC-seg": "pspnet-seg-rvsc"}


def write_run(
    root: Path,
    n: int,
    seed: int,
    dice: float,
    source: str | None = None,
    mode: str = "scratch",
    patients: int = 0,
) -> Path:
    name = f"pspnet-seg-acdc-n{n}-s{seed}" + (f"-{mode}-from-{source}" if source else "")
    folder = root / ("models" if source is None else "reuse") / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(
        json.dumps({"dice": [0.99, dice, dice, dice], "dice_mean": dice, "name": name})
    )
    if patients:
        offsets = 0.02 * (np.arange(patients) - (patients - 1) / 2)
        rows = [
            {"patient": f"P{p}", "class": c, "dice": 0.99 if c == 0 else dice + offsets[p]}
            for p in range(patients)
            for c in range(4)
        ]
        pd.DataFrame(rows).to_csv(folder / "patients.csv", index=False)
    return folder


def write_runs(
    root: Path, dice: Mapping[tuple[int, str | None, str], float], **kwargs: object
) -> list[Path]:
    """Every run in `dice` ((n, source label, mode) -> Dice) for seeds 1..3, Dice +- 0.005."""
    folders = []
    for seed, wobble in zip(SEEDS, (0.0, 0.005, -0.005), strict=True):
        for (n, label, mode), value in dice.items():
            source = SOURCES[label] if label else None
            folders.append(write_run(root, n, seed, value + wobble, source, mode, **kwargs))  # type: ignore[arg-type]
    return folders


def table1_dice(auto: float, other: float, scratch: float, frozen_loss: float = 0.0) -> dict:
    """Fine-tuned T1-auto `auto`, T1-seg and RVSC-seg `other`, frozen `frozen_loss` lower."""
    dice: dict[tuple[int, str | None, str], float] = {}
    for n in (10, 50):
        dice[(n, None, "scratch")] = scratch
        for label in SOURCES:
            value = auto if label == "T1-auto" else other
            dice[(n, label, "finetune")] = value
            dice[(n, label, "freeze")] = value - frozen_loss
    return dice


def verdicts(claims: list[Claim], prefix: str) -> set[str]:
    return {c.verdict for c in by_id(claims, prefix).values()}


def test_table1_paper_claims_hold(tmp_path: Path) -> None:
    folders = write_runs(tmp_path, table1_dice(auto=0.7, other=0.5, scratch=0.6))
    claims = evaluate(reuse_runs=folders)
    assert len(by_id(claims, "reuse-not-necessarily-better")) == 8  # 2 sources x 2 modes x 2 n
    assert verdicts(claims, "reuse-not-necessarily-better") == {"holds"}
    assert len(by_id(claims, "t1-auto-reuse-beats-scratch")) == 4
    assert verdicts(claims, "t1-auto-reuse-beats-scratch") == {"holds"}
    assert verdicts(claims, "t1-auto-transfers-better-than-t1-seg") == {"holds"}
    claim = only(claims, "t1-auto-reuse-beats-scratch[n10 finetune]")
    assert claim.n_seeds == 3 and claim.scope == "paper"
    # on the paper's definition: the mean of the 4 classes, background included
    assert claim.estimate == pytest.approx(3 * (0.7 - 0.6) / 4)


def test_table1_paper_claims_do_not_hold(tmp_path: Path) -> None:
    folders = write_runs(tmp_path, table1_dice(auto=0.4, other=0.7, scratch=0.5))
    claims = evaluate(reuse_runs=folders)
    for prefix in (
        "reuse-not-necessarily-better",
        "t1-auto-reuse-beats-scratch",
        "t1-auto-transfers-better-than-t1-seg",
    ):
        assert verdicts(claims, prefix) == {"does not hold"}, prefix


def test_table1_claims_carry_the_papers_numbers(tmp_path: Path) -> None:
    claims = evaluate(reuse_runs=write_runs(tmp_path, table1_dice(0.7, 0.5, 0.6)))
    said = only(claims, "reuse-not-necessarily-better[n10 T1-seg freeze]").paper_evidence
    assert said == "n10 scratch 0.73 vs n10 T1-seg freeze 0.67"
    said = only(claims, "reuse-not-necessarily-better[n50 RVSC-seg freeze]").paper_evidence
    assert said == "n50 scratch 0.88 vs n50 RVSC-seg freeze 0.81 (printed 0.72, a misprint)"
    finetune = only(claims, "finetune-beats-freeze[n50 T1-seg]")
    assert finetune.scope == "not in the paper" and "0.81" in finetune.paper_evidence


@pytest.mark.parametrize(("loss", "verdict"), [(0.1, "holds"), (-0.1, "does not hold")])
def test_finetune_vs_freeze_is_ours_both_ways(tmp_path: Path, loss: float, verdict: str) -> None:
    claims = evaluate(reuse_runs=write_runs(tmp_path, table1_dice(0.7, 0.5, 0.6, loss)))
    assert len(by_id(claims, "finetune-beats-freeze")) == 6
    assert verdicts(claims, "finetune-beats-freeze") == {verdict}
    assert {c.scope for c in by_id(claims, "finetune-beats-freeze").values()} == {
        "not in the paper"
    }


def test_table1_claims_inconclusive_when_equal_or_missing(tmp_path: Path) -> None:
    # seeds are offset alike for every run, so differences are 0 in every seed
    folders = write_runs(tmp_path, table1_dice(auto=0.6, other=0.6, scratch=0.6))
    claims = evaluate(reuse_runs=folders)
    assert verdicts(claims, "t1-auto") == {"inconclusive"}
    missing = evaluate(reuse_runs=[tmp_path / "reuse" / "pspnet-seg-acdc-n10-s1-freeze-from-x-y-z"])
    claim = only(missing, "t1-auto-transfers-better-than-t1-seg[n10 finetune]")
    assert claim.verdict == "inconclusive" and "missing: " in claim.reason


@pytest.mark.parametrize(("own", "verdict"), [(0.7, "holds"), (0.3, "does not hold")])
def test_selffer_claim_both_ways(tmp_path: Path, own: float, verdict: str) -> None:
    folders = write_runs(tmp_path, table1_dice(auto=0.7, other=0.6, scratch=0.5, frozen_loss=0.2))
    for seed in SEEDS:
        for n in (10, 50):
            name = f"pspnet-seg-acdc-n{n}-s{seed}-selffer-from-pspnet-seg-acdc"
            folder = tmp_path / "reuse" / name
            folder.mkdir(parents=True)
            metrics = {"dice": [0.99, own, own, own + 0.001 * seed], "dice_mean": own}
            (folder / "metrics.json").write_text(json.dumps(metrics))
            folders.append(folder)
    claims = by_id(evaluate(reuse_runs=folders), "selffer-beats-source-freeze")
    assert len(claims) == 6  # n10, n50 x three sources
    assert {c.verdict for c in claims.values()} == {verdict}
    # the selffer runs are no source of their own in the other claims
    assert not any("ACDC-seg" in c for c in by_id(evaluate(reuse_runs=folders), "finetune"))


def test_selffer_claim_without_selffer_runs_is_inconclusive(tmp_path: Path) -> None:
    folders = write_runs(tmp_path, table1_dice(auto=0.7, other=0.6, scratch=0.5))
    claim = only(evaluate(reuse_runs=folders), "selffer-beats-source-freeze[n10]")
    assert claim.verdict == "inconclusive" and "no selffer run" in claim.reason


def test_table1_one_seed_with_patients_gives_an_interval_but_no_verdict(tmp_path: Path) -> None:
    folders = [
        write_run(tmp_path, 10, 1, 0.7, "pspnet-auto-t1", "finetune", patients=20),
        write_run(tmp_path, 10, 1, 0.6, "pspnet-seg-t1", "finetune", patients=20),
    ]
    name = "t1-auto-transfers-better-than-t1-seg[n10 finetune]"
    claim = only(evaluate(reuse_runs=folders), name)
    assert claim.verdict == "inconclusive" and claim.interval_says == "holds"
    assert claim.n_patients == 20 and claim.n_seeds == 1 and claim.low > 0
    assert only(evaluate(reuse_runs=folders, min_seeds=1), name).verdict == "holds"


def test_table1_runs_found_through_the_table1_provenance(tmp_path: Path) -> None:
    folders = write_runs(tmp_path, table1_dice(auto=0.7, other=0.6, scratch=0.5))
    runs = [{"metrics_json": str(folder / "metrics.json")} for folder in folders]
    table1 = tmp_path / "table1.csv"
    table1.write_text(provenance.csv_header({"runs": runs}) + "n_train\n10\n")
    claims = evaluate(table1_csv=table1)
    assert verdicts(claims, "t1-auto") == {"holds"}
    bad = tmp_path / "bad.csv"
    bad.write_text("n_train\n10\n")
    with pytest.raises(PrrmseError, match="bad.csv"):
        evaluate(table1_csv=bad)


def test_malformed_metrics_raise_naming_the_file(tmp_path: Path) -> None:
    folder = write_run(tmp_path, 10, 1, 0.5)
    (folder / "metrics.json").write_text("{not json")
    with pytest.raises(PrrmseError, match="metrics.json"):
        evaluate(reuse_runs=[folder])


# --- the sweep predicts reuse ----------------------------------------------------------------

PREDICTED = {"pspnet-seg-t1": 0.1, "pspnet-auto-t1": 0.5, "pspnet-seg-rvsc": 0.3}


def write_plan(root: Path, source: str, seed: int, predicted: float) -> Path:
    target = f"pspnet-seg-acdc-s{seed}"
    entries = [
        {
            "family": "bn",
            "layer": layer,
            "module": f"bn{layer}",
            "kind": "RM",
            "decision": "reuse",
            "evidence": {"dice_drop": predicted / 2, "rmse": 0.1, "reason": "test"},
        }
        for layer in (1, 2)
    ] + [
        {
            "family": "bn",
            "layer": 3,
            "module": "bn3",
            "kind": "RM",
            "decision": "keep",
            "evidence": {"dice_drop": 5.0, "rmse": 0.1, "reason": "kept: must not count"},
        }
    ]
    plan = {
        "target": target,
        "source": f"{source}-s{seed}",
        "arch": "pspnet",
        "layer_counts": {"bn": 3, "conv": 0},
        "thresholds": {},
        "rule": "sweep",
        "entries": entries,
        "share": {},
        "non_reusable": {},
        "provenance": {},
    }
    path = root / "plans" / f"{target}__{source}-s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan))
    return path


def predict_inputs(root: Path, sign: float, sources: Mapping[str, float] = PREDICTED) -> dict:
    plans, folders = [], []
    for seed in SEEDS:
        for n in (10, 50):
            folders.append(write_run(root, n, seed, 0.5))
            for source, predicted in sources.items():
                folders.append(write_run(root, n, seed, 0.5 - sign * predicted, source, "freeze"))
        plans += [write_plan(root, s, seed, p) for s, p in sources.items()]
    return {"plans": plans, "reuse_runs": folders}


@pytest.mark.parametrize(("sign", "verdict"), [(1.0, "holds"), (-1.0, "does not hold")])
def test_sweep_predicts_reuse_both_ways(tmp_path: Path, sign: float, verdict: str) -> None:
    claim = only(evaluate(**predict_inputs(tmp_path, sign)), "sweep-predicts-reuse")
    assert claim.verdict == verdict
    assert claim.n_units == 6
    assert claim.estimate == pytest.approx(sign)


def test_sweep_predicts_reuse_too_few_points_or_no_plans(tmp_path: Path) -> None:
    inputs = predict_inputs(tmp_path, 1.0, {"pspnet-seg-t1": 0.1})
    claim = only(evaluate(**inputs), "sweep-predicts-reuse")
    assert claim.verdict == "inconclusive" and "needs 4" in claim.reason
    claim = only(evaluate(plans=[tmp_path / "none.json"]), "sweep-predicts-reuse")
    assert claim.verdict == "inconclusive" and "none.json" in claim.reason


# --- RMSE against the noise floor ------------------------------------------------------------


def write_rmse(path: Path, pairs: Mapping[tuple[str, str], float], aligned: bool = False) -> Path:
    rows = []
    for (a, b), value in pairs.items():
        for layer in (1, 2, 3):
            for kind in ("RM", "RV"):
                row = dict(
                    model_a=a,
                    model_b=b,
                    family="bn",
                    layer=layer,
                    module=f"bn{layer}",
                    head=False,
                    kind=kind,
                    status="compared",
                    numel=8,
                    rmse=value * layer,
                )
                if aligned:
                    row["rmse_aligned"] = value * layer / 2
                rows.append(row)
        rows.append(
            dict(
                model_a=a,
                model_b=b,
                family="conv",
                layer=4,
                module="head",
                head=True,
                kind="W",
                status="compared",
                numel=8,
                rmse=100.0,
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def floor_inputs(root: Path, between: float, aligned: bool = False) -> dict:
    rmse = [
        write_rmse(
            root / f"rmse/s{seed}.csv",
            {(f"pspnet-seg-acdc-s{seed}", f"pspnet-auto-t1-s{seed}"): between * (1 + 0.05 * seed)},
            aligned,
        )
        for seed in SEEDS
    ]
    floor = write_rmse(
        root / "floor/seg.csv", {("pspnet-seg-acdc-s1", "pspnet-seg-acdc-s2"): 0.1}, aligned
    )
    return {"rmse": rmse, "noise_floor": [floor]}


@pytest.mark.parametrize(("between", "verdict"), [(1.0, "holds"), (0.01, "does not hold")])
def test_noise_floor_claim_both_ways(tmp_path: Path, between: float, verdict: str) -> None:
    claims = evaluate(**floor_inputs(tmp_path, between, aligned=True))
    claim = only(claims, "rmse-exceeds-noise-floor")
    assert claim.id == "rmse-exceeds-noise-floor[pspnet-auto-t1 vs pspnet-seg-acdc]"
    assert claim.verdict == verdict and claim.n_units == 6 and claim.n_seeds == 3
    assert only(claims, "aligned-rmse").verdict == verdict


def test_noise_floor_inconclusive_without_floor_aligned_or_seeds(tmp_path: Path) -> None:
    inputs = floor_inputs(tmp_path, 1.0)
    claims = evaluate(**inputs)
    assert only(claims, "rmse-exceeds").verdict == "holds"
    assert only(claims, "aligned-rmse").verdict == "inconclusive"
    assert "rmse_aligned" in only(claims, "aligned-rmse").reason
    claims = evaluate(rmse=inputs["rmse"][:1], noise_floor=inputs["noise_floor"])
    assert only(claims, "rmse-exceeds").verdict == "inconclusive"  # one seed
    claims = evaluate(rmse=inputs["rmse"], noise_floor=[tmp_path / "floor" / "gone.csv"])
    claim = only(claims, "rmse-exceeds")
    assert claim.verdict == "inconclusive" and "gone.csv" in claim.reason


def test_summarised_network_floor_serves_every_model_of_the_network(tmp_path: Path) -> None:
    inputs = floor_inputs(tmp_path, 1.0)
    rows = [
        dict(
            network="pspnet",
            family="bn",
            layer=layer,
            kind=kind,
            head=False,
            floor=0.1 * layer,
            floor_low=0.05,
            floor_high=0.2,
            n_pairs=1,
            models="pspnet-seg-acdc",
        )
        for layer in (1, 2, 3)
        for kind in ("RM", "RV")
    ]
    summarised = tmp_path / "rmse" / "noise_floor.csv"
    summarised.write_text(provenance.csv_header({}) + pd.DataFrame(rows).to_csv(index=False))
    claim = only(evaluate(rmse=[*inputs["rmse"], summarised]), "rmse-exceeds")
    assert claim.verdict == "holds" and claim.n_units == 6


def test_malformed_rmse_raises_naming_the_file(tmp_path: Path) -> None:
    path = write_rmse(tmp_path / "r.csv", {("modelA", "modelB"): 1.0})
    with pytest.raises(PrrmseError, match="r.csv"):
        evaluate(rmse=[path])


# --- the PR-RMSE core and the RMSE matrices --------------------------------------------------

FIG12 = ("pspnet-seg-t1", "pspnet-seg-rvsc", "pspnet-seg-acdc", "pspnet-auto-t1")
FIG11 = ("pspnet-seg-t1", "pspnet-auto-t1", "pspnet-seg-acdc", "pspnet-auto-acdc")


def write_w_rmse(path: Path, pairs: Mapping[tuple[str, str], float]) -> Path:
    """Conv W RMSE of 3 conv layers per pair (value * layer), plus a head that must not count."""
    rows = [
        dict(
            model_a=a,
            model_b=b,
            family="conv",
            layer=layer,
            module=f"c{layer}",
            head=layer == 4,
            kind="W",
            status="compared",
            numel=9,
            rmse=100.0 if layer == 4 else value * layer,
        )
        for (a, b), value in pairs.items()
        for layer in (1, 2, 3, 4)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def group_tables(root: Path, models: tuple[str, ...], distance: object, name: str) -> list[Path]:
    """One group table per seed: every pair of `models`, RMSE distance(a, b, seed)."""
    paths = []
    for seed in SEEDS:
        pairs = {
            (f"{a}-s{seed}", f"{b}-s{seed}"): distance(a, b, seed)  # type: ignore[operator]
            for i, a in enumerate(models)
            for b in models[i + 1 :]
        }
        paths.append(write_w_rmse(root / "rmse" / "groups" / f"{name}-s{seed}.csv", pairs))
    return paths


@pytest.mark.parametrize(("closest", "verdict"), [(0.05, "holds"), (0.5, "does not hold")])
def test_fig12_closest_pair_both_ways(tmp_path: Path, closest: float, verdict: str) -> None:
    def distance(a: str, b: str, seed: int) -> float:
        pair = {a, b} == {"pspnet-auto-t1", "pspnet-seg-acdc"}
        return (closest if pair else 0.2) + 0.001 * seed

    claim = only(evaluate(rmse=group_tables(tmp_path, FIG12, distance, "fig12")), "closest-pair")
    assert claim.id == "closest-pair-t1-auto-acdc-seg[pspnet]"
    assert claim.verdict == verdict and claim.n_seeds == 3


@pytest.mark.parametrize(("with_seg", "verdict"), [(0.5, "holds"), (0.05, "does not hold")])
def test_fig11_large_rmse_involve_t1_seg_both_ways(
    tmp_path: Path, with_seg: float, verdict: str
) -> None:
    def distance(a: str, b: str, seed: int) -> float:
        return (with_seg if "pspnet-seg-t1" in (a, b) else 0.2) + 0.001 * seed

    claims = evaluate(rmse=group_tables(tmp_path, FIG11, distance, "fig11"))
    assert only(claims, "large-rmse-involve-t1-seg").verdict == verdict


def test_rmse_matrix_claims_need_every_pair(tmp_path: Path) -> None:
    path = write_w_rmse(tmp_path / "r.csv", {("pspnet-auto-t1-s1", "pspnet-seg-acdc-s1"): 0.1})
    claims = evaluate(rmse=[path])
    for prefix in ("closest-pair", "large-rmse"):
        assert only(claims, prefix).verdict == "inconclusive"
        assert "every pair" in only(claims, prefix).reason


@pytest.mark.parametrize(("sign", "verdict"), [(1.0, "holds"), (-1.0, "does not hold")])
def test_closest_source_helps_most_both_ways(tmp_path: Path, sign: float, verdict: str) -> None:
    distance = {"pspnet-auto-t1": 0.1, "pspnet-seg-rvsc": 0.2, "pspnet-seg-t1": 0.3}
    folders, rmse = [], []
    for seed in SEEDS:
        pairs = {}
        for n in (10, 50):
            folders.append(write_run(tmp_path, n, seed, 0.6))
            for source, d in distance.items():
                pairs[(f"pspnet-seg-acdc-s{seed}", f"{source}-s{seed}")] = d
                for mode in ("freeze", "finetune"):
                    gain = sign * (0.2 - d)  # the closer, the larger the gain (sign +1)
                    folders.append(write_run(tmp_path, n, seed, 0.6 + gain, source, mode))
        rmse.append(write_w_rmse(tmp_path / "rmse" / f"pairs-s{seed}.csv", pairs))
    claim = only(evaluate(reuse_runs=folders, rmse=rmse), "closest-source-helps-most")
    assert claim.verdict == verdict and claim.estimate == pytest.approx(sign)
    assert claim.n_units == 3 and "pspnet-auto-t1 0.2" in claim.reason  # mean over layers 1-3


def test_closest_source_needs_runs_and_rmse(tmp_path: Path) -> None:
    claim = only(evaluate(), "closest-source-helps-most")
    assert claim.verdict == "inconclusive"
    folders = write_runs(tmp_path, table1_dice(auto=0.7, other=0.5, scratch=0.6))
    claim = only(evaluate(reuse_runs=folders), "closest-source-helps-most")
    assert claim.verdict == "inconclusive"  # no RMSE: no order of the sources


# --- BN scale/shift hypotheses ---------------------------------------------------------------


def write_bnstats(
    root: Path, network: str, seed: int, mrm: float, mrb: float, mrv: float, mrw: float
) -> Path:
    name = f"{network}-seg-acdc-s{seed}__{network}-auto-acdc-s{seed}.csv"
    rows = [
        dict(
            layer=layer,
            module=f"bn{layer}",
            channels=8,
            MRM=mrm * layer,
            MRV=mrv,
            MRW=mrw,
            MRB=mrb * layer,
            mrw_note="",
        )
        for layer in (1, 2, 3)
    ]
    path = root / "bnstats" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(provenance.csv_header({}) + pd.DataFrame(rows).to_csv(index=False))
    return path


def test_bn_hypotheses_hold_as_the_paper_states(tmp_path: Path) -> None:
    paths = [write_bnstats(tmp_path, "unet", s, 1.0 + 0.1 * s, 0.1, 3.0, 1.0) for s in SEEDS]
    paths += [write_bnstats(tmp_path, "pspnet", s, 0.2, 0.2 + 0.01 * s, 1.1, 1.0) for s in SEEDS]
    claims = evaluate(bnstats=paths)
    assert only(claims, "unet-mrm-far-above-mrb").verdict == "holds"
    assert only(claims, "unet-mrv-far-above-mrw").verdict == "holds"
    assert only(claims, "pspnet-mrm-near-mrb").verdict == "holds"
    assert only(claims, "pspnet-mrv-near-mrw").verdict == "holds"


def test_bn_hypotheses_do_not_hold_the_other_way(tmp_path: Path) -> None:
    # UNet: MRM equal to MRB (not far above); PSPNet: MRM ten times MRB (not near)
    paths = [write_bnstats(tmp_path, "unet", s, 0.1, 0.1 + 0.001 * s, 1.0, 1.0) for s in SEEDS]
    paths += [write_bnstats(tmp_path, "pspnet", s, 1.0 + 0.1 * s, 0.1, 10.0, 1.0) for s in SEEDS]
    claims = evaluate(bnstats=paths)
    assert only(claims, "unet-mrm-far-above-mrb").verdict == "does not hold"
    assert only(claims, "pspnet-mrm-near-mrb").verdict == "does not hold"
    assert only(claims, "pspnet-mrv-near-mrw").verdict == "does not hold"


def test_bn_hypotheses_missing_or_badly_named(tmp_path: Path) -> None:
    claim = only(evaluate(bnstats=[tmp_path / "gone.csv"]), "unet-mrm")
    assert claim.verdict == "inconclusive" and "gone.csv" in claim.reason
    bad = tmp_path / "bnstats.csv"
    bad.write_text("layer,MRM,MRV,MRW,MRB\n1,1,1,1,1\n")
    with pytest.raises(PrrmseError, match="bnstats.csv"):
        evaluate(bnstats=[bad])


# --- everything together, and writing ---------------------------------------------------------


def test_nothing_given_makes_every_claim_inconclusive() -> None:
    claims = evaluate()
    assert claims and {c.verdict for c in claims} == {"inconclusive"}
    assert len({c.id for c in claims}) == len(claims)


def test_claims_written_with_provenance_and_byte_identical_on_rerun(tmp_path: Path) -> None:
    sweeps = sweeps_over_seeds(tmp_path / "sweeps", *UNET, jitter(lambda: drops(rm=0.2, w=0.3)))
    inputs = ClaimInputs(
        sweeps=sweeps,
        n_boot=300,
        **floor_inputs(tmp_path, 1.0),  # type: ignore[arg-type]
    )
    md, csv = tmp_path / "out" / "claims.md", tmp_path / "out" / "claims.csv"
    claims = run_claims(inputs, md, csv)
    first = md.read_bytes(), csv.read_bytes()
    run_claims(inputs, md, csv)
    assert (md.read_bytes(), csv.read_bytes()) == first
    assert not list(md.parent.glob(".*tmp*"))  # nothing half-written left behind

    text = md.read_text()
    assert text.startswith("<!-- provenance: ")
    record = json.loads(text.splitlines()[0][len("<!-- provenance: ") : -len(" -->")])
    assert record["inputs"][str(sweeps[0])] == sha256_file(sweeps[0])
    assert (
        "| claim | whose | the paper's evidence | our estimate | interval | seeds | verdict |"
        in text
    )
    assert all(f"### {c.id}: " in text for c in claims)

    assert provenance.read_csv_provenance(csv) == record
    table = pd.read_csv(csv, comment="#")
    assert list(table["id"]) == [c.id for c in claims]
    assert set(table["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    assert {
        "estimate",
        "ci_low",
        "ci_high",
        "n_seeds",
        "degenerate",
        "reason",
        "scope",
        "paper_evidence",
        "interval_says",
    } <= set(table.columns)


def test_claim_set_matches_the_paper_and_labels_ours() -> None:
    claims = evaluate()
    families = {c.id.split("[")[0]: c.scope for c in claims}
    paper = {
        "reuse-not-necessarily-better",
        "t1-auto-reuse-beats-scratch",
        "t1-auto-transfers-better-than-t1-seg",
        "closest-source-helps-most",
        "closest-pair-t1-auto-acdc-seg",
        "large-rmse-involve-t1-seg",
        "rm-rv-matter-more",
        "conv-weight-sensitive-bias-not",
        "rm1-not-reusable",
        "reuse-affects-unet-more",
        "unet-mrm-far-above-mrb",
        "unet-mrv-far-above-mrw",
        "pspnet-mrm-near-mrb",
        "pspnet-mrv-near-mrw",
    }
    ours = {
        "finetune-beats-freeze",
        "selffer-beats-source-freeze",
        "sweep-predicts-reuse",
        "source-beats-reinit",
        "source-beats-rerandom",
        "rmse-exceeds-noise-floor",
        "aligned-rmse-exceeds-noise-floor",
    }
    assert {f for f, scope in families.items() if scope == "paper"} == paper
    assert {f for f, scope in families.items() if scope == "not in the paper"} == ours
    assert "first-bn-running-mean-matters-most" not in families
    # the paper's claims come first
    scopes = [c.scope for c in claims]
    assert scopes == sorted(scopes, key=lambda scope: scope != "paper")
