"""What the study measures between trained models: the layer-replacement sweep (`sweep`),
per-layer RMSE (`rmse`, with permutation alignment in `align`), BN statistics (`bnstats`),
activation CKA (`cka`, with `cka_statistic` and `cka_grams`), the reuse plan (`plan`,
`plan_rules`, `plan_models`) and the fine-tuning experiment that applies the plan (`reuse`).

May import `prrmse.training`, `prrmse.models`, `prrmse.data` and `prrmse.core`.
"""
