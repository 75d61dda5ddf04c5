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


rule all:
    default_target: True
    input:
        final_outputs(),
