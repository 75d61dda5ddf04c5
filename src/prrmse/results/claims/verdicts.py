"""The paper's conclusions as testable statements over our results, each with a verdict.

Papers: v1 = arXiv 2008.03414 (Wang, "Using UNet and PSPNet to explore the reusability
principle of CNN parameters"), v2 = arXiv 2008.03411 (Wang et al., "Exploring the parameter
reusability of CNN", PR-RMSE). The claim set follows the paper's conclusions as worded (the
package's `prrmse.results.paper` holds its numbers); each claim carries the paper's own evidence
beside our statistic. Claims of our own (controls, selffer, noise floor, fine-tune vs
freeze, the plan's prediction) are labelled "not in the paper".

Every claim is phrased so that it says "statistic > 0". The statistic is computed per
unit, a (seed, patient) pair where per-patient Dice files exist, else a seed, and its
95 % interval is a bootstrap over seeds and patients within seeds (`prrmse.results.stats`).

Verdict rule: `holds` if the interval lies entirely above 0, `does not hold` if entirely
below 0, else `inconclusive`. Also `inconclusive`: missing evidence, too few points, a
degenerate interval (one seed and no per-patient values), and — the seed policy — any claim
resting on fewer than `min_seeds` (default 3) seeds of training, whatever its interval over
patients says: that interval covers patients, not the variance between training runs.
`interval_says` keeps what the interval alone would say. Verdicts are computed, never
written by hand.

Dice drop of an entry (layer, kind) = baseline minus replaced mean foreground Dice
(classes 1..3, NaN skipped), as the reuse plan uses it; the head is left out (the paper's
figures leave it out) and absent tensors (a conv without bias) are no entries. Reuse runs
are compared on the mean Dice of the four classes, the paper's Table 1 mean.

Inputs (`ClaimInputs`, all optional): sweep CSVs (file names `<target>__<source>[.x].csv`;
a `condition` column source / reinit / rerandom, absent means source; per-patient Dice
found beside each as `<stem>.patients.csv`), RMSE tables (pairs and groups; rows of two
seeds of one model are the noise floor, wherever they come from), noise-floor tables, BN
scale/shift tables, reuse plans, Table 1 (its provenance lists the runs' metrics.json) and
reuse run folders (metrics.json, optional patients.csv). A missing file makes the claims
needing it inconclusive, naming it; a present but malformed file raises PrrmseError naming it.

Modules of `prrmse.results.claims`: `core` (inputs, claim, verdict rule, seed policy, units
and bootstrap), `evidence` (files read and missing, runs, plans, RMSE tables), `drops` (sweep
files, drops, comparisons), the claim families `sweep`, `reuse`, `rmse`, `bn` and `floor`,
and `report` (claims.md and claims.csv written); this module evaluates them all and has
them written, stamped with every input's hash.
"""

from __future__ import annotations

from pathlib import Path

from prrmse.core import provenance
from prrmse.core.io import sha256_file
from prrmse.results.claims.bn import bn_hypothesis_claims
from prrmse.results.claims.core import (
    OURS,
    PAPER,
    V1,
    V2,
    Bootstrap,
    Claim,
    ClaimInputs,
    Entry,
    Spec,
    Units,
    apply_seed_policy,
    verdict_of,
)
from prrmse.results.claims.drops import (
    CONDITIONS,
    PATIENT_COLUMNS,
    Comparison,
    Drops,
    SweepFile,
    comparisons_of,
    drops_of,
)
from prrmse.results.claims.evidence import (
    RUN_PATIENT_COLUMNS,
    Evidence,
    Run,
    RunKey,
    read_runs,
    run_units,
)
from prrmse.results.claims.floor import FLOOR_SPECS, floor_claims
from prrmse.results.claims.report import write_claims
from prrmse.results.claims.reuse import (
    FINETUNE_SPEC,
    NOT_BETTER_SPEC,
    PAPER_SOURCES,
    PREDICT_SPEC,
    SELFFER_SPEC,
    T1_AUTO_SPEC,
    T1_SPEC,
    predict_claims,
    table1_claims,
)
from prrmse.results.claims.rmse import CORE_SPEC, FIG11_SPEC, FIG12_SPEC, rmse_claims
from prrmse.results.claims.sweep import (
    BN_SPEC,
    CONTROL_SPECS,
    CONV_SPEC,
    NETWORK_SPEC,
    RM1_SPEC,
    bn_claim,
    control_claim,
    conv_claim,
    network_claims,
    rm1_claim,
    sweep_claims,
)

__all__ = [
    "BN_SPEC",
    "CONDITIONS",
    "CONTROL_SPECS",
    "CONV_SPEC",
    "CORE_SPEC",
    "FIG11_SPEC",
    "FIG12_SPEC",
    "FINETUNE_SPEC",
    "FLOOR_SPECS",
    "NETWORK_SPEC",
    "NOT_BETTER_SPEC",
    "OURS",
    "PAPER",
    "PAPER_SOURCES",
    "PATIENT_COLUMNS",
    "PREDICT_SPEC",
    "RM1_SPEC",
    "RUN_PATIENT_COLUMNS",
    "SELFFER_SPEC",
    "T1_AUTO_SPEC",
    "T1_SPEC",
    "V1",
    "V2",
    "Bootstrap",
    "Claim",
    "ClaimInputs",
    "Comparison",
    "Drops",
    "Entry",
    "Evidence",
    "Run",
    "RunKey",
    "Spec",
    "SweepFile",
    "Units",
    "bn_claim",
    "bn_hypothesis_claims",
    "comparisons_of",
    "control_claim",
    "conv_claim",
    "drops_of",
    "evaluate_claims",
    "floor_claims",
    "network_claims",
    "predict_claims",
    "read_runs",
    "rm1_claim",
    "rmse_claims",
    "run_claims",
    "run_units",
    "sweep_claims",
    "table1_claims",
    "verdict_of",
    "write_claims",
]


# --- all claims ----------------------------------------------------------------------------


def evaluate_claims(inputs: ClaimInputs) -> list[Claim]:
    """Every claim with its statistic, interval and verdict, in a fixed order."""
    claims, _ = _evaluate(inputs)
    return claims


def _evaluate(inputs: ClaimInputs) -> tuple[list[Claim], Evidence]:
    evidence = Evidence()
    boot = Bootstrap(inputs.n_boot, inputs.level, inputs.seed)
    runs = read_runs(inputs, evidence)
    claims = table1_claims(runs, evidence, boot)
    claims += rmse_claims(inputs, runs, evidence, boot)
    claims += sweep_claims(inputs.sweeps, evidence, boot)
    claims += bn_hypothesis_claims(list(inputs.bnstats), evidence, boot)
    claims += predict_claims(runs, inputs.plans, evidence, boot, inputs.min_points)
    claims += floor_claims(inputs, evidence, boot)
    # the paper's claims first, ours after, each group in its family order
    claims = [c for c in claims if c.scope == PAPER] + [c for c in claims if c.scope != PAPER]
    return [apply_seed_policy(claim, inputs.min_seeds) for claim in claims], evidence


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
            "min_seeds": inputs.min_seeds,
        },
        inputs={path: sha256_file(path) for path in read},
        missing={what: sorted(paths) for what, paths in sorted(evidence.missing.items())} or None,
    )
    write_claims(claims, md_path, csv_path, record, inputs.min_seeds)
    return claims
