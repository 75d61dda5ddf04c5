"""Every figure: the table of the paper's Figs. 3-14 (`catalog`, light: the Snakefile reads
it), shared style and the per-layer plots (`style`), one module per family (`bnstats`,
`models`, `reuse`, `controls`, `cka`; model labels in `model_labels`), the dispatcher by
figure number (`paper`) and the data QC montage (`qc`).

May import `prrmse.results` and everything below it; never `cli`.
"""
