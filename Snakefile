# prrmse: the only dependency graph. dvc.yaml is generated from it (`prrmse dvc-sync`).
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/reuse.smk"


# Cheap rules (seconds each: the demo's phantom generation, tensor comparisons, plans,
# summaries, tables, figures, QC montages, claims) run on the submitting host under a
# cluster executor, so they do not each pay sbatch submission, queueing and status
# polling. Locally nothing changes.
localrules:
    all,
    phantoms,
    qc,
    bnstats,
    rmse_pair,
    rmse_group,
    noise_floor,
    plan,
    rmse_to_ideal,
    summarise_sweep,
    summarise_controls,
    summarise_pair,
    summarise_group,
    summarise_rmse_to_ideal,
    figure,
    figure_cka,
    figure_controls,
    figure_reuse,
    table_baseline,
    table_plans,
    table1,
    claims,


rule all:
    default_target: True
    input:
        final_outputs(),
