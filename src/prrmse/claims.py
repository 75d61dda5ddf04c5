"""The paper's conclusions as testable statements over our results, each with a verdict.

Papers: v1 = arXiv 2008.03414 (Wang, "Using UNet and PSPNet to explore the reusability
principle of CNN parameters"), v2 = arXiv 2008.03411 (Wang et al., "Exploring the parameter
reusability of CNN", PR-RMSE). The paper statements below are our paraphrases.

Every claim is phrased so that it says "statistic > 0". The statistic is computed per
unit, a (seed, patient) pair where per-patient Dice files exist, else a seed, and its
95 % interval is a bootstrap over seeds and patients within seeds (`prrmse.stats`).

Verdict rule: `holds` if the interval lies entirely above 0, `does not hold` if entirely
below 0, else `inconclusive`. Also `inconclusive`: missing evidence, too few points, and a
degenerate interval (one seed and no per-patient values): a point estimate alone is no
verdict. Verdicts are computed, never written by hand.

Dice drop of an entry (layer, kind) = baseline minus replaced mean foreground Dice
(classes 1..3, NaN skipped), as the reuse plan uses it; the head is left out (the paper's
figures leave it out) and absent tensors (a conv without bias) are no entries.

Inputs (`ClaimInputs`, all optional): sweep CSVs (file names `<target>__<source>[.x].csv`;
a `condition` column source / reinit / rerandom, absent means source; per-patient Dice
found beside each as `<stem>.patients.csv`), RMSE tables (pairs and groups; rows of two
seeds of one model are the noise floor, wherever they come from), noise-floor tables,
reuse plans, Table 1 (its provenance lists the runs' metrics.json) and reuse run folders
(metrics.json, optional patients.csv). A missing file makes the claims needing it
inconclusive, naming it; a present but malformed file raises PrrmseError naming it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from prrmse import provenance
from prrmse.errors import PrrmseError
from prrmse.io import atomic_path, read_json, sha256_file, write_text_atomic
from prrmse.naming import ModelSpec, RunSpec, parse_model_name, parse_run_name
from prrmse.plan import FOREGROUND, SWEEP_COLUMNS, load_plan, read_table, require_columns
from prrmse.rmse import RMSE_COLUMNS
from prrmse.stats import Interval, bootstrap_ci, paired_difference_ci

VERDICTS = ("holds", "does not hold", "inconclusive")
CONDITIONS = ("source", "reinit", "rerandom")
PATIENT_COLUMNS = ["family", "layer", "kind", "patient", "class", "dice"]
RUN_PATIENT_COLUMNS = ["patient", "class", "dice"]
CSV_COLUMNS = [
    "id", "verdict", "estimate", "ci_low", "ci_high", "level", "n_seeds", "n_patients",
    "n_units", "units", "degenerate", "statistic", "statement", "paper", "reason",
]  # fmt: skip
V1, V2 = "v1 (arXiv 2008.03414)", "v2 (arXiv 2008.03411)"
Entry = tuple[str, int, str]  # (family, layer, kind)


@dataclass
class ClaimInputs:
    """Where the evidence lies; every field optional. Paths are reported as given."""

    sweeps: Sequence[Path] = ()  # sweep CSVs, every comparison, seed and condition
    rmse: Sequence[Path] = ()  # RMSE pair and group tables
    noise_floor: Sequence[Path] = ()  # RMSE tables between two seeds of one model
    plans: Sequence[Path] = ()  # reuse plan JSONs
    table1_csv: Path | None = None  # its provenance names the runs' metrics.json
    reuse_runs: Sequence[Path] = ()  # run folders with metrics.json (reuse/*, models/*-nN-*)
    n_boot: int = 2000
    level: float = 0.95
    seed: int = 0
    min_points: int = 4  # least (source, n) points for a rank correlation


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str  # the paper's statement (paraphrase) and version
    statement: str  # ours, precise: "statistic > 0"
    statistic: str
    estimate: float
    low: float
    high: float
    level: float
    n_seeds: int
    n_patients: int
    n_units: int  # layers, entries or points the statistic averages over
    units: str  # what n_units counts
    verdict: str
    reason: str
    degenerate: bool = False  # one value, nothing to resample: low == high, no interval


@dataclass(frozen=True)
class Spec:
    """The fixed text of one claim family."""

    id: str
    paper: str
    statement: str
    statistic: str
    units: str


def _inconclusive(spec: Spec, key: str, reason: str, n_units: int = 0) -> Claim:
    nan = math.nan
    return Claim(
        _claim_id(spec, key), spec.paper, _statement(spec, key), spec.statistic,
        nan, nan, nan, nan, 0, 0, n_units, spec.units, "inconclusive", reason,
    )  # fmt: skip


def _claim_id(spec: Spec, key: str) -> str:
    return f"{spec.id}[{key}]" if key else spec.id


def _statement(spec: Spec, key: str) -> str:
    return spec.statement.format(key=key or "any comparison")


def verdict_of(interval: Interval) -> tuple[str, str]:
    """The verdict rule (module docstring) and one sentence why."""
    if not math.isfinite(interval.estimate):
        return "inconclusive", "no estimate: " + (interval.note or "no finite values")
    if interval.degenerate:
        return "inconclusive", f"{interval.note}; a verdict needs an interval"
    shown = f"{interval.level:.0%} interval [{interval.low:.4g}, {interval.high:.4g}]"
    if interval.low > 0:
        return "holds", f"the {shown} lies above 0"
    if interval.high < 0:
        return "does not hold", f"the {shown} lies below 0"
    return "inconclusive", f"the {shown} contains 0"


def _claim(spec: Spec, key: str, interval: Interval, n_units: int, detail: str) -> Claim:
    verdict, why = verdict_of(interval)
    notes = [text for text in (detail, why) if text]
    if interval.note and not interval.degenerate:
        notes.append(interval.note)
    return Claim(
        _claim_id(spec, key), spec.paper, _statement(spec, key), spec.statistic,
        interval.estimate, interval.low, interval.high, interval.level, interval.n_seeds,
        interval.n_patients, n_units, spec.units, verdict, "; ".join(notes), interval.degenerate,
    )  # fmt: skip


# --- unit values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Units:
    """Values per unit: a Series indexed (seed, patient); patient "" at seed level."""

    series: pd.Series
    per_patient: bool

    def seed_level(self) -> Units:
        if not self.per_patient:
            return self
        means = self.series.groupby(level="seed").mean()
        return Units(_seed_index(means), False)

    def array(self) -> np.ndarray:
        if self.per_patient:
            return self.series.unstack("patient").sort_index().to_numpy(dtype=float)
        return self.series.droplevel("patient").sort_index().to_numpy(dtype=float)


def _seed_index(series: pd.Series) -> pd.Series:
    index = pd.MultiIndex.from_arrays(
        [series.index.to_numpy(), [""] * len(series)], names=["seed", "patient"]
    )
    return pd.Series(series.to_numpy(dtype=float), index=index)


def _paired(a: Units, b: Units) -> tuple[Units, Units]:
    if a.per_patient != b.per_patient:
        a, b = a.seed_level(), b.seed_level()
    common = a.series.index.intersection(b.series.index).sort_values()
    return Units(a.series.loc[common], a.per_patient), Units(b.series.loc[common], b.per_patient)


@dataclass(frozen=True)
class Bootstrap:
    n_boot: int
    level: float
    seed: int

    def one(self, units: Units) -> Interval:
        return bootstrap_ci(units.array(), n_boot=self.n_boot, level=self.level, seed=self.seed)

    def paired(self, a: Units, b: Units) -> Interval:
        a, b = _paired(a, b)
        return paired_difference_ci(
            a.array(), b.array(), n_boot=self.n_boot, level=self.level, seed=self.seed
        )


# --- reading: files ------------------------------------------------------------------------


@dataclass
class Evidence:
    """Every file read (for the provenance) and every named file that was missing."""

    read: list[Path] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)

    def present(self, path: Path, what: str) -> bool:
        if Path(path).is_file():
            self.read.append(Path(path))
            return True
        self.missing.setdefault(what, []).append(str(path))
        return False

    def absent(self, what: str, nothing: str) -> str:
        """Why evidence of a kind is lacking: the missing files, or that none was given."""
        missing = self.missing.get(what)
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            return f"{nothing} (missing: {shown})"
        return nothing


def _as_bool(column: pd.Series) -> pd.Series:
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("true", "1"))


def _model_key(spec: ModelSpec) -> str:
    subset = f"-n{spec.n_train}" if spec.n_train is not None else ""
    return f"{spec.network}-{spec.task}-{spec.dataset}{subset}"


def _parse_or_none(name: str) -> ModelSpec | None:
    try:
        return parse_model_name(name)
    except PrrmseError:
        return None


def _recorded_name(value: Any) -> str:
    # Products record a model by name or as results/models/<name>/model.safetensors.
    path = Path(str(value))
    return path.parent.name if path.suffix == ".safetensors" else path.name


# --- reading: sweeps -----------------------------------------------------------------------


@dataclass
class SweepFile:
    path: Path
    target: ModelSpec
    source: ModelSpec | None
    rows: pd.DataFrame  # seed-level rows: condition filled, head bool, layer int
    patients: pd.DataFrame | None  # per-patient rows, head bool


def _sweep_models(path: Path) -> tuple[ModelSpec, ModelSpec | None]:
    """Target and source from `<target>__<source>[.suffix].csv`, else the provenance."""
    target_name, _, source_name = path.name.split(".")[0].partition("__")
    target, source = _parse_or_none(target_name), _parse_or_none(source_name)
    if target is None:
        recorded = provenance.read_csv_provenance(path) or {}
        if "target" in recorded:
            target = _parse_or_none(_recorded_name(recorded["target"]))
        if source is None and "source" in recorded:
            source = _parse_or_none(_recorded_name(recorded["source"]))
    if target is None:
        raise PrrmseError(
            path, "cannot tell the target model: name it <target>__<source>.csv or stamp it"
        )
    return target, source


def _conditions(table: pd.DataFrame, path: Path) -> pd.Series:
    if "condition" not in table:
        return pd.Series("source", index=table.index)
    values = table["condition"].fillna("source").astype(str)
    unknown = sorted(set(values) - set(CONDITIONS))
    if unknown:
        raise PrrmseError(path, f"unknown condition {unknown[0]!r}; valid: {', '.join(CONDITIONS)}")
    return values


def _read_sweep(path: Path, evidence: Evidence) -> SweepFile | None:
    if not evidence.present(path, "sweeps"):
        return None
    table = read_table(path, SWEEP_COLUMNS)
    target, source = _sweep_models(path)
    table = table.assign(
        condition=_conditions(table, path),
        head=_as_bool(table["head"]),
        layer=pd.to_numeric(table["layer"], errors="raise").astype(int),
    )
    patients_path = path.with_name(path.name.split(".")[0] + ".patients.csv")
    patients = None
    if patients_path.is_file():
        evidence.read.append(patients_path)
        patients = read_table(patients_path, PATIENT_COLUMNS)
        heads = {
            (f, int(n)): bool(h)
            for f, n, h in zip(table["family"], table["layer"], table["head"], strict=True)
        }
        patients = patients.assign(
            condition=_conditions(patients, patients_path),
            patient=patients["patient"].astype(str),
            layer=pd.to_numeric(patients["layer"], errors="coerce").fillna(0).astype(int),
        )
        patients["head"] = [
            heads.get((f, n), False)
            for f, n in zip(patients["family"], patients["layer"], strict=True)
        ]
    return SweepFile(path, target, source, table, patients)


def _seed_drops(rows: pd.DataFrame) -> dict[Entry, float]:
    body = rows[(rows["family"] != "baseline") & (rows["status"] != "absent") & ~rows["head"]]
    body = body[body["class"].astype(int).isin(FOREGROUND)]
    return {
        (family, int(layer), kind): float(group["baseline_dice"].mean() - group["dice"].mean())
        for (family, layer, kind), group in body.groupby(["family", "layer", "kind"])
    }


def _patient_drops(
    patients: pd.DataFrame, condition: str, entries: Iterable[Entry]
) -> pd.DataFrame | None:
    """Drop per patient (rows) and entry (columns); None when the file lacks the condition."""
    foreground = patients[patients["class"].astype(int).isin(FOREGROUND)]
    is_baseline = (foreground["family"] == "baseline") | foreground["kind"].isna()
    baseline = foreground[is_baseline].groupby("patient")["dice"].mean()
    replaced = foreground[
        ~is_baseline & (foreground["condition"] == condition) & ~foreground["head"]
    ]
    if replaced.empty or baseline.empty:
        return None
    dice = (
        replaced.groupby(["patient", "family", "layer", "kind"])["dice"]
        .mean()
        .unstack(["family", "layer", "kind"])
    )
    wanted = [entry for entry in entries if entry in dice.columns]
    return -dice[wanted].sub(baseline, axis=0)


@dataclass(frozen=True)
class Drops:
    """Dice drop per unit (rows, index seed x patient) and entry (columns)."""

    frame: pd.DataFrame
    per_patient: bool

    def entries(self) -> list[Entry]:
        return list(self.frame.columns)

    def units(self, values: pd.Series) -> Units:
        return Units(values.astype(float), self.per_patient)


def drops_of(files: Sequence[SweepFile], condition: str) -> Drops | None:
    """Drops of one condition over the given files (one comparison, several seeds)."""
    by_seed: dict[int, dict[Entry, float]] = {}
    by_patient: dict[int, pd.DataFrame | None] = {}
    for sweep in files:
        seed = sweep.target.seed
        rows = sweep.rows[sweep.rows["condition"] == condition]
        drops = _seed_drops(rows)
        if not drops or seed in by_seed:
            continue
        by_seed[seed] = drops
        by_patient[seed] = (
            _patient_drops(sweep.patients, condition, drops) if sweep.patients is not None else None
        )
    if not by_seed:
        return None
    entries = sorted(set.intersection(*(set(drops) for drops in by_seed.values())))
    columns = pd.MultiIndex.from_tuples(entries, names=["family", "layer", "kind"])
    if all(frame is not None for frame in by_patient.values()):
        frames = {seed: frame.reindex(columns=columns) for seed, frame in by_patient.items()}
        frame = pd.concat(frames, names=["seed", "patient"]).sort_index()
        return Drops(frame, True)
    index = pd.MultiIndex.from_tuples(
        [(seed, "") for seed in sorted(by_seed)], names=["seed", "patient"]
    )
    values = [[by_seed[seed][entry] for entry in entries] for seed in sorted(by_seed)]
    return Drops(pd.DataFrame(values, index=index, columns=columns), False)


@dataclass(frozen=True)
class Comparison:
    target: str  # model keys without seed, e.g. pspnet-seg-acdc
    source: str
    network: str
    files: tuple[SweepFile, ...]
    controls: tuple[SweepFile, ...]  # files of the target holding control rows

    @property
    def key(self) -> str:
        return f"{self.target} <- {self.source}"


def comparisons_of(files: Sequence[SweepFile]) -> list[Comparison]:
    pairs: dict[tuple[str, str], list[SweepFile]] = {}
    for sweep in files:
        if sweep.source is not None and (sweep.rows["condition"] == "source").any():
            pairs.setdefault((_model_key(sweep.target), _model_key(sweep.source)), []).append(sweep)
    result = []
    for (target, source), members in sorted(pairs.items()):
        # Re-initialisation does not depend on the source: any control sweep of the target
        # serves, one made beside this source first.
        controls = sorted(
            (
                sweep
                for sweep in files
                if _model_key(sweep.target) == target
                and (sweep.rows["condition"] != "source").any()
            ),
            key=lambda sweep: sweep.source is None or _model_key(sweep.source) != source,
        )
        network = members[0].target.network
        result.append(Comparison(target, source, network, tuple(members), tuple(controls)))
    return result


# --- claims over sweeps --------------------------------------------------------------------

BN_SPEC = Spec(
    "bn-running-stats-matter-more",
    f"{V1} and {V2}, replacement sweeps (Figs. 3-10): replacing a BN layer's running mean "
    "and variance (RM, RV) with the source's changes Dice more than replacing its weight "
    "and bias (RW, RB).",
    "{key}: over the BN layers, the mean Dice drop of replacing RM and RV exceeds that of "
    "replacing RW and RB.",
    "mean over BN layers of (drop RM + drop RV)/2 - (drop RW + drop RB)/2",
    "BN layers",
)
CONV_SPEC = Spec(
    "conv-weight-sensitive-bias-not",
    f"{V1} and {V2}, replacement sweeps: conv weights (W) are sensitive to replacement, "
    "conv biases (B) are not.",
    "{key}: over the conv layers with a bias, the mean Dice drop of replacing W exceeds that "
    "of replacing B.",
    "mean over conv layers with bias of drop W - drop B",
    "conv layers",
)
FIRST_RM_SPEC = Spec(
    "first-bn-running-mean-matters-most",
    f"{V1} and {V2}: among the BN running means, the first BN layer's (RM 1) matters most.",
    "{key}: replacing RM of BN layer 1 drops Dice more than replacing RM of any other BN layer.",
    "drop RM 1 - drop RM l*, l* the other BN layer with the largest mean RM drop (chosen on "
    "the full data, which favours l*)",
    "BN layers",
)
NETWORK_SPEC = Spec(
    "pspnet-more-reusable-than-unet",
    f"{V1}: PSPNet's parameters are more reusable than UNet's.",
    "{key}: the mean Dice drop over all entries (layer, kind) is larger for UNet than for "
    "PSPNet (same target and source tasks).",
    "mean drop over UNet entries - mean drop over PSPNet entries (paired by seed, patient)",
    "entries (UNet + PSPNet)",
)
CONTROL_SPECS = {
    condition: Spec(
        f"source-beats-{condition}",
        "not in the paper (control after Zhang et al. 2019): a tensor is called reusable "
        "when the source's copy costs little Dice; that is transfer, not mere robustness, "
        f"only if the source's copy costs less than {word}.",
        "{key}: over the entries, replacing with the source's tensor drops Dice less than "
        f"{word}.",
        f"mean over entries of drop ({condition}) - drop (source)",
        "entries",
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
        return _inconclusive(BN_SPEC, comparison.key, "no source-replacement rows")
    have = set(drops.entries())
    layers = sorted(
        {
            n
            for f, n, _ in have
            if f == "bn" and all(("bn", n, k) in have for k in ("RM", "RV", "RW", "RB"))
        }
    )
    if not layers:
        return _inconclusive(BN_SPEC, comparison.key, "no BN layer with RM, RV, RW and RB")
    frame = drops.frame
    stats = _mean_over(frame, [("bn", n, k) for n in layers for k in ("RM", "RV")])
    affine = _mean_over(frame, [("bn", n, k) for n in layers for k in ("RW", "RB")])
    interval = boot.paired(drops.units(stats), drops.units(affine))
    detail = f"mean drop RM/RV {stats.mean():.4g}, RW/RB {affine.mean():.4g}"
    return _claim(BN_SPEC, comparison.key, interval, len(layers), detail)


def conv_claim(comparison: Comparison, boot: Bootstrap) -> Claim:
    drops = drops_of(comparison.files, "source")
    if drops is None:
        return _inconclusive(CONV_SPEC, comparison.key, "no source-replacement rows")
    have = set(drops.entries())
    layers = sorted(
        {n for f, n, k in have if f == "conv" and k == "B" and ("conv", n, "W") in have}
    )
    if not layers:
        return _inconclusive(
            CONV_SPEC,
            comparison.key,
            "conv B absent in every layer (convs without bias): nothing to compare W with",
        )
    weight = _mean_over(drops.frame, [("conv", n, "W") for n in layers])
    bias = _mean_over(drops.frame, [("conv", n, "B") for n in layers])
    interval = boot.paired(drops.units(weight), drops.units(bias))
    detail = f"mean drop W {weight.mean():.4g}, B {bias.mean():.4g}"
    return _claim(CONV_SPEC, comparison.key, interval, len(layers), detail)


def first_rm_claim(comparison: Comparison, boot: Bootstrap) -> Claim:
    drops = drops_of(comparison.files, "source")
    if drops is None:
        return _inconclusive(FIRST_RM_SPEC, comparison.key, "no source-replacement rows")
    rm = [entry for entry in drops.entries() if entry[0] == "bn" and entry[2] == "RM"]
    if ("bn", 1, "RM") not in rm or len(rm) < 2:
        return _inconclusive(
            FIRST_RM_SPEC, comparison.key, "needs RM of BN layer 1 and of another layer"
        )
    others = [entry for entry in rm if entry[1] != 1]
    rival = max(others, key=lambda entry: (drops.frame[entry].mean(), -entry[1]))
    first = drops.frame[("bn", 1, "RM")]
    interval = boot.paired(drops.units(first), drops.units(drops.frame[rival]))
    detail = f"drop RM 1 {first.mean():.4g}; largest other: RM {rival[1]} {drops.frame[rival].mean():.4g}"
    return _claim(FIRST_RM_SPEC, comparison.key, interval, len(rm), detail)


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
                claims.append(_inconclusive(NETWORK_SPEC, key, "no source-replacement rows"))
                continue
            means = [d.units(d.frame.mean(axis=1, skipna=True)) for d in sides]
            interval = boot.paired(*means)
            n_entries = sum(len(d.entries()) for d in sides)
            detail = (
                f"mean drop UNet {means[0].series.mean():.4g} ({len(sides[0].entries())} entries), "
                f"PSPNet {means[1].series.mean():.4g} ({len(sides[1].entries())} entries)"
            )
            claims.append(_claim(NETWORK_SPEC, key, interval, n_entries, detail))
    if not claims:
        networks = sorted({c.network for c in comparisons})
        reason = f"needs a UNet and a PSPNet comparison of the same tasks (have: {', '.join(networks) or 'none'})"
        claims.append(_inconclusive(NETWORK_SPEC, "", reason))
    return claims


def control_claim(comparison: Comparison, condition: str, boot: Bootstrap) -> Claim:
    spec = CONTROL_SPECS[condition]
    source = drops_of(comparison.files, "source")
    control = drops_of(comparison.controls, condition)
    if source is None or control is None:
        return _inconclusive(spec, comparison.key, f"no {condition} control sweep for this target")
    entries = sorted(set(source.entries()) & set(control.entries()))
    if not entries:
        return _inconclusive(
            spec, comparison.key, f"the {condition} sweep shares no entry with the source sweep"
        )
    means = [d.units(_mean_over(d.frame, entries)) for d in (control, source)]
    interval = boot.paired(*means)
    detail = (
        f"mean drop {condition} {means[0].series.mean():.4g}, source {means[1].series.mean():.4g}"
    )
    return _claim(spec, comparison.key, interval, len(entries), detail)


def sweep_claims(sweep_paths: Sequence[Path], evidence: Evidence, boot: Bootstrap) -> list[Claim]:
    # Per-patient files are read beside their sweep; a glob of sweeps/*.csv also lists them.
    paths = [Path(path) for path in sweep_paths if not str(path).endswith(".patients.csv")]
    files = [sweep for path in paths if (sweep := _read_sweep(path, evidence))]
    comparisons = comparisons_of(files)
    if not comparisons:
        why = evidence.absent("sweeps", "no sweep with source-replacement rows")
        specs = [BN_SPEC, CONV_SPEC, FIRST_RM_SPEC, NETWORK_SPEC, *CONTROL_SPECS.values()]
        return [_inconclusive(spec, "", why) for spec in specs]
    claims: list[Claim] = []
    for maker in (bn_claim, conv_claim, first_rm_claim):
        claims += [maker(comparison, boot) for comparison in comparisons]
    claims += network_claims(comparisons, boot)
    for condition in CONTROL_SPECS:
        claims += [control_claim(comparison, condition, boot) for comparison in comparisons]
    return claims


# --- reading: runs (Table 1) ---------------------------------------------------------------

RunKey = tuple[str, int, str | None, str]  # (target model key, n_train, source label, mode)


@dataclass(frozen=True)
class Run:
    key: RunKey
    seed: int
    source: str | None  # source model key without seed, e.g. pspnet-auto-t1
    dice_mean: float
    patients: pd.Series | None  # mean foreground Dice per patient


def _run_from(folder: Path, metrics: Path, evidence: Evidence) -> Run | None:
    if not evidence.present(metrics, "runs"):
        return None
    spec: RunSpec = parse_run_name(folder.name)
    if spec.model.n_train is None:
        raise PrrmseError(folder, "a Table 1 run is named <model>-n<N>-s<seed>[...]")
    values = read_json(metrics)
    if not isinstance(values, dict) or "dice_mean" not in values:
        raise PrrmseError(metrics, "not a segmentation metrics.json (needs dice_mean)")
    dice_mean = math.nan if values["dice_mean"] is None else float(values["dice_mean"])
    patients = None
    patients_csv = folder / "patients.csv"
    if patients_csv.is_file():
        evidence.read.append(patients_csv)
        table = read_table(patients_csv, RUN_PATIENT_COLUMNS)
        foreground = table[table["class"].astype(int).isin(FOREGROUND)]
        patients = foreground.groupby(foreground["patient"].astype(str))["dice"].mean()
    model = spec.model
    key = (
        f"{model.network}-{model.task}-{model.dataset}",
        model.n_train,
        spec.source_label,
        spec.mode,
    )
    return Run(key, model.seed, spec.source, dice_mean, patients)


def _table1_folders(table1_csv: Path, evidence: Evidence) -> list[tuple[Path, Path]]:
    if not evidence.present(table1_csv, "runs"):
        return []
    recorded = provenance.read_csv_provenance(table1_csv)
    runs = (recorded or {}).get("runs")
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and "metrics_json" in r for r in runs
    ):
        raise PrrmseError(table1_csv, "its provenance line lists no runs (metrics_json)")
    root = (
        Path(table1_csv).resolve().parents[2]
        if len(Path(table1_csv).resolve().parents) > 2
        else Path()
    )
    found = []
    for run in runs:
        metrics = Path(run["metrics_json"])
        if not metrics.is_absolute() and not metrics.is_file() and (root / metrics).is_file():
            metrics = root / metrics
        found.append((metrics.parent, metrics))
    return found


def read_runs(inputs: ClaimInputs, evidence: Evidence) -> dict[RunKey, dict[int, Run]]:
    folders = [(Path(folder), Path(folder) / "metrics.json") for folder in inputs.reuse_runs]
    if inputs.table1_csv is not None:
        folders += _table1_folders(Path(inputs.table1_csv), evidence)
    runs: dict[RunKey, dict[int, Run]] = {}
    seen: set[Path] = set()
    for folder, metrics in folders:
        if metrics.resolve() in seen:
            continue
        seen.add(metrics.resolve())
        run = _run_from(folder, metrics, evidence)
        if run is not None:
            runs.setdefault(run.key, {}).setdefault(run.seed, run)
    return runs


def run_units(runs: dict[int, Run]) -> Units:
    """Per patient where every seed has patients.csv, else per seed (metrics.json)."""
    ordered = [runs[seed] for seed in sorted(runs)]
    if all(run.patients is not None for run in ordered):
        series = pd.concat({run.seed: run.patients for run in ordered}, names=["seed", "patient"])
        return Units(series.astype(float), True)
    seeds = pd.Series([run.dice_mean for run in ordered], index=[run.seed for run in ordered])
    return Units(_seed_index(seeds), False)


# --- claims over Table 1 -------------------------------------------------------------------

T1_SPEC = Spec(
    "t1-auto-transfers-better-than-t1-seg",
    f"{V2}, Table 1: parameters of the T1 auto-encoder transfer to ACDC segmentation better "
    "than those of the T1 segmentation model.",
    "{key}: fine-tuned from T1-auto, the ACDC mean foreground Dice is higher than fine-tuned "
    "from T1-seg.",
    "Dice(T1-auto, finetune) - Dice(T1-seg, finetune), paired by seed (and patient)",
    "runs",
)
FINETUNE_SPEC = Spec(
    "finetune-beats-freeze",
    f"{V2}, Table 1: fine-tuning the reused parameters beats freezing them.",
    "{key}: fine-tuned, the ACDC mean foreground Dice is higher than frozen.",
    "Dice(finetune) - Dice(freeze), paired by seed (and patient)",
    "runs",
)
SCRATCH_SPEC = Spec(
    "reuse-beats-scratch-at-10",
    f"{V2}, Table 1: with 10 training patients, reusing parameters beats training from scratch.",
    "{key}: fine-tuned from the source with 10 patients, the ACDC mean foreground Dice is "
    "higher than from scratch with 10.",
    "Dice(source, finetune, n10) - Dice(scratch, n10), paired by seed (and patient)",
    "runs",
)
SELFFER_SPEC = Spec(
    "selffer-beats-source-freeze",
    "not in the paper (control after Yosinski et al. 2014): PR-RMSE reuses the source's "
    "tensors as if they were close to the target's own; the selffer run (the target's own "
    "trained tensors frozen per the plan, the rest retrained) is what ideal frozen reuse gives.",
    "{key}: frozen, the target's own tensors give a higher ACDC mean foreground Dice than "
    "the source's (so the source's tensors fall short of the target's own).",
    "Dice(selffer) - Dice(source, freeze), paired by seed (and patient)",
    "runs",
)
PAPER_SOURCES = ("T1-seg", "T1-auto", "RVSC-seg")
PREDICT_SPEC = Spec(
    "sweep-predicts-reuse",
    f"{V2}: the replacement sweep tells which layers can be reused; reusing them per the plan "
    "keeps the Dice.",
    "{key}: across frozen reuse runs (source, n), a larger predicted drop (sum of the sweep's "
    "Dice drops over the entries the plan reuses) goes with a smaller gain of frozen reuse "
    "over scratch at the same n.",
    "-Spearman rho(predicted drop, Dice(freeze) - Dice(scratch)) over the (source, n) "
    "points, per unit, averaged",
    "(source, n) points",
)


def _compare_runs(
    spec: Spec, key: str, runs: dict[RunKey, dict[int, Run]], left: RunKey, right: RunKey,
    boot: Bootstrap, evidence: Evidence,
) -> Claim:  # fmt: skip
    lacking = [k for k in (left, right) if k not in runs]
    if lacking:
        _, n, source, mode = lacking[0]
        what = f"n{n} scratch" if source is None else f"n{n} {source} {mode}"
        return _inconclusive(spec, key, evidence.absent("runs", f"no run {what}"))
    a, b = run_units(runs[left]), run_units(runs[right])
    interval = boot.paired(a, b)
    detail = f"Dice {a.series.mean():.4g} vs {b.series.mean():.4g}"
    return _claim(spec, key, interval, 2, detail)


def table1_claims(
    runs: dict[RunKey, dict[int, Run]], evidence: Evidence, boot: Bootstrap
) -> list[Claim]:
    targets = sorted({key[0] for key in runs}) or ["pspnet-seg-acdc"]
    reused = {key[2] for key in runs if key[3] in ("freeze", "finetune")}
    labels = sorted(label for label in reused if label) or list(PAPER_SOURCES)
    counts = sorted({key[1] for key in runs}) or [10, 50]
    many = len(targets) > 1
    claims = []
    for target in targets:
        prefix = f"{target} " if many else ""

        def compare(
            spec: Spec, key: str, left: RunKey, right: RunKey, prefix: str = prefix
        ) -> Claim:
            return _compare_runs(spec, prefix + key, runs, left, right, boot, evidence)

        for n in counts:
            left, right = (target, n, "T1-auto", "finetune"), (target, n, "T1-seg", "finetune")
            claims.append(compare(T1_SPEC, f"n{n}", left, right))
        for n in counts:
            for label in labels:
                left, right = (target, n, label, "finetune"), (target, n, label, "freeze")
                claims.append(compare(FINETUNE_SPEC, f"n{n} {label}", left, right))
        for label in labels:
            left, right = (target, 10, label, "finetune"), (target, 10, None, "scratch")
            claims.append(compare(SCRATCH_SPEC, label, left, right))
        for n in counts:
            own = [key for key in runs if key[:2] == (target, n) and key[3] == "selffer"]
            if not own:
                reason = f"no selffer run (the target's own tensors frozen) at n{n}"
                claims.append(_inconclusive(SELFFER_SPEC, f"{prefix}n{n}", reason))
                continue
            for label in labels:
                right = (target, n, label, "freeze")
                claims.append(compare(SELFFER_SPEC, f"n{n} {label}", own[0], right))
    return claims


# --- sweep predicts reuse ------------------------------------------------------------------


def _predicted_drops(
    plan_paths: Sequence[Path], evidence: Evidence
) -> dict[tuple[str, str, int], float]:
    """(target key, source key, seed) -> sum of dice drops over the entries the plan reuses."""
    predicted = {}
    for path in plan_paths:
        if not evidence.present(Path(path), "plans"):
            continue
        plan = load_plan(Path(path))
        target, source = (
            parse_model_name(str(plan["target"])),
            parse_model_name(str(plan["source"])),
        )
        drops = [
            float(entry["evidence"]["dice_drop"])
            for entry in plan["entries"]
            if entry["decision"] == "reuse"
            and isinstance(entry.get("evidence"), dict)
            and entry["evidence"].get("dice_drop") is not None
        ]
        predicted[(_model_key(target), _model_key(source), target.seed)] = float(sum(drops))
    return predicted


def predict_claims(
    runs: dict[RunKey, dict[int, Run]], plan_paths: Sequence[Path], evidence: Evidence,
    boot: Bootstrap, min_points: int,
) -> list[Claim]:  # fmt: skip
    predicted = _predicted_drops(plan_paths, evidence)
    if not predicted:
        return [_inconclusive(PREDICT_SPEC, "", evidence.absent("plans", "no reuse plans"))]
    targets = sorted({target for target, _, _ in predicted})
    return [_predict_claim(t, runs, predicted, evidence, boot, min_points) for t in targets]


def _predict_claim(
    target: str, runs: dict[RunKey, dict[int, Run]], predicted: dict[tuple[str, str, int], float],
    evidence: Evidence, boot: Bootstrap, min_points: int,
) -> Claim:  # fmt: skip
    # One point per (source, n): gain = frozen - scratch (same n, seed, patient).
    gains: dict[tuple[str, int], Units] = {}
    for (run_target, n, _, mode), by_seed in sorted(runs.items(), key=str):
        if run_target != target or mode != "freeze" or (target, n, None, "scratch") not in runs:
            continue
        source = next(iter(by_seed.values())).source
        frozen, scratch = _paired(run_units(by_seed), run_units(runs[(target, n, None, "scratch")]))
        gain = Units(frozen.series - scratch.series, frozen.per_patient)
        seeds = gain.series.index.get_level_values("seed")
        keep = [(target, str(source), int(seed)) in predicted for seed in seeds]
        gains[(str(source), n)] = Units(gain.series[keep], gain.per_patient)
    points = {point: units for point, units in gains.items() if not units.series.empty}
    if len(points) < min_points:
        why = f"{len(points)} (source, n) points with a plan, frozen and scratch runs; needs {min_points}"
        return _inconclusive(PREDICT_SPEC, target, evidence.absent("runs", why), len(points))
    if len({units.per_patient for units in points.values()}) > 1:
        points = {point: units.seed_level() for point, units in points.items()}
    frame = pd.DataFrame({point: units.series for point, units in points.items()}).dropna()
    per_patient = next(iter(points.values())).per_patient
    rhos = []
    for (seed, _), gain in frame.iterrows():
        x = [predicted[(target, source, int(seed))] for source, _ in frame.columns]
        rhos.append(_negative_spearman(np.asarray(x), gain.to_numpy(dtype=float)))
    series = pd.Series(rhos, index=frame.index, dtype=float)
    interval = boot.one(Units(series, per_patient))
    detail = f"{len(points)} points: " + ", ".join(f"{s} n{n}" for s, n in sorted(points))
    return _claim(PREDICT_SPEC, target, interval, len(points), detail)


def _negative_spearman(predicted: np.ndarray, gain: np.ndarray) -> float:
    if np.ptp(predicted) == 0 or np.ptp(gain) == 0:
        return math.nan  # no order to predict
    return -float(spearmanr(predicted, gain).statistic)


# --- RMSE against the noise floor ----------------------------------------------------------

FLOOR_SPECS = {
    column: Spec(
        f"{'aligned-' if column == 'rmse_aligned' else ''}rmse-exceeds-noise-floor",
        f"{V2}, Figs. 11-12: the RMSE of corresponding tensors measures how different two "
        "tasks' parameters are (not in the paper: against the seed-to-seed floor).",
        "{key}: "
        + ("after permutation alignment, " if column == "rmse_aligned" else "")
        + "the RMSE between the two models exceeds the RMSE between two seeds of one model, "
        "on average over the entries (geometric mean).",
        f"mean over entries of log({column} between / {column} floor); floor: mean over the "
        "seed pairs of both models (else their network's summarised floor)",
        "entries",
    )
    for column in ("rmse", "rmse_aligned")
}


def _read_rmse(path: Path, evidence: Evidence, what: str) -> pd.DataFrame | None:
    """Rows (key_a, key_b, seed, family, layer, kind, rmse[, rmse_aligned]), head left out.

    Takes RMSE pair or group tables, and the summarised floor table of `prrmse.floor`
    (network, family, layer, kind, floor[, floor_aligned]), whose rows become a floor of
    every model of the network, keyed "network:<network>".
    """
    if not evidence.present(path, what):
        return None
    table = read_table(path, ["family", "layer", "kind"])
    if "model_a" not in table and {"network", "floor"} <= set(table.columns):
        return _network_floor(path, table)
    require_columns(table, ["model_a", "model_b", *RMSE_COLUMNS], path)
    table = table[(table["status"] == "compared") & ~_as_bool(table["head"])]
    specs = {}
    for name in set(table["model_a"].astype(str)) | set(table["model_b"].astype(str)):
        spec = _parse_or_none(_recorded_name(name))
        if spec is None:
            raise PrrmseError(
                path, f"model {name!r} is not named <network>-<task>-<dataset>[-nN]-s<seed>"
            )
        specs[name] = spec
    a = table["model_a"].astype(str).map(specs)
    b = table["model_b"].astype(str).map(specs)
    columns = ["family", "layer", "kind", "rmse"] + (
        ["rmse_aligned"] if "rmse_aligned" in table else []
    )
    out = table[columns].copy()
    out["layer"] = out["layer"].astype(int)
    out["key_a"] = [_model_key(spec) for spec in a]
    out["key_b"] = [_model_key(spec) for spec in b]
    out["seed"] = [spec.seed for spec in a]
    return out


def _network_floor(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    if "head" in table:
        table = table[~_as_bool(table["head"])]
    out = pd.DataFrame(
        {
            "family": table["family"],
            "layer": pd.to_numeric(table["layer"], errors="raise").astype(int),
            "kind": table["kind"],
            "rmse": pd.to_numeric(table["floor"], errors="coerce"),
        }
    )
    if "floor_aligned" in table:
        out["rmse_aligned"] = pd.to_numeric(table["floor_aligned"], errors="coerce")
    out["key_a"] = out["key_b"] = [f"network:{network}" for network in table["network"]]
    out["seed"] = -1
    return out


def floor_claims(inputs: ClaimInputs, evidence: Evidence, boot: Bootstrap) -> list[Claim]:
    tables = [t for p in inputs.rmse if (t := _read_rmse(Path(p), evidence, "rmse")) is not None]
    tables += [
        t for p in inputs.noise_floor if (t := _read_rmse(Path(p), evidence, "floor")) is not None
    ]
    rows = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    same = rows["key_a"] == rows["key_b"] if not rows.empty else pd.Series(dtype=bool)
    floor, between = (rows[same], rows[~same]) if not rows.empty else (rows, rows)
    if between.empty:
        why = evidence.absent("rmse", "no RMSE between different models")
        return [_inconclusive(spec, "", why) for spec in FLOOR_SPECS.values()]
    if floor.empty:
        why = evidence.absent("floor", "no RMSE between two seeds of one model (noise floor)")
        return [_inconclusive(spec, "", why) for spec in FLOOR_SPECS.values()]
    claims = []
    for column, spec in FLOOR_SPECS.items():
        if column not in between or column not in floor:
            if column == "rmse_aligned":
                claims.append(
                    _inconclusive(spec, "", f"no {column} column in the RMSE or floor tables")
                )
            continue
        claims += _floor_claims_of(column, spec, between, floor, boot)
    return claims


def _floor_claims_of(
    column: str, spec: Spec, between: pd.DataFrame, floor: pd.DataFrame, boot: Bootstrap
) -> list[Claim]:
    entry = ["family", "layer", "kind"]
    floors = floor.groupby(["key_a", *entry])[column].mean()
    pairs = list(zip(between["key_a"], between["key_b"], strict=True))
    ordered = between.assign(
        first=[min(pair) for pair in pairs], second=[max(pair) for pair in pairs]
    ).drop_duplicates(["first", "second", "seed", *entry])
    have = set(floors.index.get_level_values("key_a"))

    def floor_of(model: str) -> pd.Series | None:
        # The model's own seed pairs, else its network's summarised floor.
        for key in (model, f"network:{model.split('-')[0]}"):
            if key in have:
                return floors.xs(key, level="key_a")
        return None

    claims = []
    for (first, second), pair in ordered.groupby(["first", "second"]):
        key = f"{first} vs {second}"
        found = [f for model in (first, second) if (f := floor_of(model)) is not None]
        if not found:
            claims.append(_inconclusive(spec, key, f"no noise floor for {first} or {second}"))
            continue
        reference = pd.concat(found, axis=1).mean(axis=1)
        pair = pair.join(reference.rename("floor"), on=entry)
        usable = pair[(pair["floor"] > 0) & (pair[column] > 0)]
        if usable.empty:
            claims.append(_inconclusive(spec, key, "no entry with a positive RMSE and floor"))
            continue
        ratio = np.log(usable[column] / usable["floor"])
        per_seed = ratio.groupby(usable["seed"]).mean()
        interval = boot.one(Units(_seed_index(per_seed), False))
        above = float((usable[column] > usable["floor"]).mean())
        n_entries = usable[entry].drop_duplicates().shape[0]
        detail = f"{above:.0%} of entries above the floor; geometric mean ratio {math.exp(ratio.mean()):.3g}"
        claims.append(_claim(spec, key, interval, n_entries, detail))
    return claims


# --- all claims and writing ----------------------------------------------------------------


def evaluate_claims(inputs: ClaimInputs) -> list[Claim]:
    """Every claim with its statistic, interval and verdict, in a fixed order."""
    claims, _ = _evaluate(inputs)
    return claims


def _evaluate(inputs: ClaimInputs) -> tuple[list[Claim], Evidence]:
    evidence = Evidence()
    boot = Bootstrap(inputs.n_boot, inputs.level, inputs.seed)
    claims = sweep_claims(inputs.sweeps, evidence, boot)
    runs = read_runs(inputs, evidence)
    claims += table1_claims(runs, evidence, boot)
    claims += predict_claims(runs, inputs.plans, evidence, boot, inputs.min_points)
    claims += floor_claims(inputs, evidence, boot)
    return claims, evidence


def claims_frame(claims: Sequence[Claim]) -> pd.DataFrame:
    rows = [asdict(claim) for claim in claims]
    frame = pd.DataFrame(rows, columns=[f.name for f in Claim.__dataclass_fields__.values()])
    return frame.rename(columns={"low": "ci_low", "high": "ci_high"})[CSV_COLUMNS]


def _number(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.4g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_markdown(claims: Sequence[Claim], record: dict[str, Any]) -> str:
    counts = {verdict: sum(claim.verdict == verdict for claim in claims) for verdict in VERDICTS}
    lines = [
        f"<!-- provenance: {json.dumps(record, sort_keys=True, default=str)} -->",
        "# The paper's claims, tested on our results",
        "",
        "Each claim says *statistic > 0*. Its interval is a percentile bootstrap over seeds "
        "and, where per-patient Dice exists, over validation patients within seeds. Verdict: "
        "**holds** if the interval lies entirely above 0, **does not hold** if entirely "
        "below, else **inconclusive** (also for missing evidence, too few points, or one seed "
        "without per-patient values, where there is no interval). Computed by `prrmse claims`, "
        "never by hand. Paper statements are paraphrases; v1 = arXiv 2008.03414, v2 = arXiv "
        "2008.03411.",
        "",
        ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + f" of {len(claims)} claims.",
        "",
        "| claim | verdict | estimate | interval | seeds | patients | n | statistic |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for claim in claims:
        if claim.degenerate:
            interval = "none (one value)"
        elif math.isfinite(claim.low):
            interval = f"[{_number(claim.low)}, {_number(claim.high)}]"
        else:
            interval = "–"
        lines.append(
            f"| {_cell(claim.id)} | {claim.verdict} | {_number(claim.estimate)} | {interval} | "
            f"{claim.n_seeds} | {claim.n_patients} | {claim.n_units} {_cell(claim.units)} | "
            f"{_cell(claim.statistic)} |"
        )
    for claim in claims:
        if math.isfinite(claim.low) and not claim.degenerate:
            interval = f"{claim.level:.0%} interval [{_number(claim.low)}, {_number(claim.high)}]"
        else:
            interval = "no interval"
        lines += [
            "",
            f"### {claim.id}: {claim.verdict}",
            "",
            f"*Paper:* {claim.paper} *Ours:* {claim.statement} *Statistic:* {claim.statistic}; "
            f"estimate {_number(claim.estimate)}, {interval}; {claim.n_seeds} seeds, "
            f"{claim.n_patients} patients, {claim.n_units} {claim.units}. *Verdict:* "
            f"**{claim.verdict}**, {claim.reason}.",
        ]
    return "\n".join(lines) + "\n"


def write_claims(
    claims: Sequence[Claim], md_path: Path, csv_path: Path, record: dict[str, Any] | None = None
) -> None:
    """claims.md (provenance as an HTML comment first) and claims.csv (provenance line first)."""
    stamp = record if record is not None else provenance.stamp(product="claims")
    frame = claims_frame(claims)
    with atomic_path(Path(csv_path)) as temp:
        temp.write_text(provenance.csv_header(stamp) + frame.to_csv(index=False))
    write_text_atomic(Path(md_path), claims_markdown(claims, stamp))


def run_claims(inputs: ClaimInputs, md_path: Path, csv_path: Path) -> list[Claim]:
    """Evaluate every claim and write claims.md and claims.csv, stamped with every input's hash."""
    claims, evidence = _evaluate(inputs)
    read = sorted({str(path) for path in evidence.read})
    record = provenance.stamp(
        product="claims",
        settings={
            "n_boot": inputs.n_boot,
            "level": inputs.level,
            "seed": inputs.seed,
            "min_points": inputs.min_points,
        },
        inputs={path: sha256_file(path) for path in read},
        missing={what: sorted(paths) for what, paths in sorted(evidence.missing.items())} or None,
    )
    write_claims(claims, md_path, csv_path, record)
    return claims
