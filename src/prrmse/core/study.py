"""The runs of the reuse experiment as a config lays them out (Table 1, Figs. 13-14).

For each training subset n of `reuse.n_train`: the target trained from scratch, then the
target from each planned source in each of `reuse.modes`, then (with `reuse.selffer`) the
selffer control. The workflow's rules and the tests take the run list from here; names are
formatted by `prrmse.core.naming`, the one grammar of model and run names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prrmse.core.naming import ModelSpec, RunSpec, parse_model_name, stem_fields

# Figs. 13 and 14 draw the reuse runs; Fig. 14 only those from `reuse.fig14_source`
REUSE_FIGURES = (13, 14)


def _target_model(config: Mapping[str, Any], n_train: int, seed: int) -> ModelSpec:
    network, task, dataset = stem_fields(config["analysis"]["plan"]["target"])
    return ModelSpec(network, task, dataset, n_train, seed)


def reuse_runs(config: Mapping[str, Any], seed: int) -> list[str]:
    """Every run of one seed: per subset, scratch, each source in each mode, then selffer."""
    plan, reuse = config["analysis"]["plan"], config["reuse"]
    runs = []
    for n_train in reuse["n_train"]:
        model = _target_model(config, n_train, seed)
        runs.append(RunSpec(model, "scratch", None).name)
        runs += [
            RunSpec(model, mode, source).name
            for source in plan["sources"]
            for mode in reuse["modes"]
        ]
        if reuse["selffer"]:
            runs.append(RunSpec(model, "selffer", plan["target"]).name)
    return runs


def ideal_run(config: Mapping[str, Any], seed: int) -> str:
    """The run whose trained tensors are the 'ideal' of Figs. 13-14's RMSE axis."""
    ideal = config["reuse"]["ideal"]
    model = _target_model(config, ideal["n_train"], seed)
    return RunSpec(model, ideal["mode"], ideal["source"]).name


def figure_runs(config: Mapping[str, Any], number: int, seed: int) -> list[str]:
    """The runs Fig. 13 (all but the ideal) or Fig. 14 (those from `reuse.fig14_source`) draws."""
    if number not in REUSE_FIGURES:
        raise ValueError(f"Fig. {number} draws no reuse runs (those are Figs. 13 and 14)")
    ideal = ideal_run(config, seed)
    runs = [run for run in reuse_runs(config, seed) if run != ideal]
    if number == 14:
        runs = [run for run in runs if run.endswith(f"-from-{config['reuse']['fig14_source']}")]
    return runs


def selffer_plan_source(config: Mapping[str, Any]) -> str:
    """The source whose reuse plan a selffer run follows (its own tensors, that plan's layers)."""
    return config["reuse"]["selffer_plan"] or config["reuse"]["ideal"]["source"]


def run_folder(run: str) -> str:
    """Where a run's products live under the results: scratch runs are study models."""
    return "reuse" if "-from-" in run else "models"


def full_model_of_subset(config: Mapping[str, Any], model: str) -> str | None:
    """The study model whose run a subset model's run may be: for a subset of as many
    patients as its dataset's split trains on (`datasets.<name>.split.n_train`), the
    model on the whole training split, same seed (else None). `prrmse train
    --same-run-checkpoint` checks the records before taking its tensors."""
    spec = parse_model_name(model)
    split = (config["datasets"].get(spec.dataset) or {}).get("split") or {}
    if spec.n_train is None or split.get("n_train") != spec.n_train:
        return None
    return ModelSpec(spec.network, spec.task, spec.dataset, None, spec.seed).name
