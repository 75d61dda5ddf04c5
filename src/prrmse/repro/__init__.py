"""Reproducibility: dvc.yaml generated from the Snakefile's jobs and the record of a
Snakemake run in DVC (`dvcgen`), and the lineage of a result back to its code, config and
data (`lineage`).

May import `prrmse.models` and `prrmse.core`; independent of the analysis.
"""
