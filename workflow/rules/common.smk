# Config loading and validation, path helpers and input functions. No science here.
import argparse
import os
from pathlib import Path

from snakemake.utils import validate

from prrmse.core import study
from prrmse.cli.main import verb_config_keys
from prrmse.core.config import layer_site, settings_json
from prrmse.figures.catalog import FIGURES, figure_spec, wildcard_pattern
from prrmse.core.naming import (
    MODEL_PATTERN,
    PAIR_PATTERN,
    RUN_MODEL_PATTERN,
    STEM_PATTERN,
    dataset_of_name,
    network_of_name,
)


def _config_file():
    """The one config file every job reads; --config overrides are refused, not merged."""
    if workflow.config_settings.config:
        raise ValueError(
            "prrmse: --config overrides are not supported: the jobs read their values from the "
            "config file (the file DVC tracks). Edit a copy of config/config.yaml and pass it "
            "with --configfile instead."
        )
    files = list(workflow.overwrite_configfiles or [])
    if len(files) > 1:
        raise ValueError(
            "prrmse: pass exactly one --configfile (configs are not merged)"
        )
    return Path(files[0]) if files else Path("config/config.yaml")


CONFIG_FILE = _config_file()
if not workflow.overwrite_configfiles:
    workflow.configfile(str(CONFIG_FILE))
# The config's site file (`site:`, git-ignored: this user's data roots and settings), merged
# over it exactly as every job's `prrmse <verb> --config` merges it (prrmse.core.config).
SITE_FILE = layer_site(config, CONFIG_FILE)
validate(config, schema="../schemas/config.schema.yaml")

RAW = config["paths"]["raw"]
PROCESSED = config["paths"]["processed"]
RESULTS = config["paths"]["results"]
DATASETS = sorted(config["datasets"])
PHANTOM_DATASETS = ["acdc", "rvsc", "t1"] if config["phantoms"]["enabled"] else []


SEEDS = config["study"]["seeds"]
FIRST_SEED = SEEDS[0]
REUSE_SEEDS = config["reuse"]["seeds"] or SEEDS
SUMMARY = f"{RESULTS}/summary"
# GPU requests follow the device each verb reads, so a CPU config on a cluster queues
# no GPU job. train.device -> shared_encoder, train, reuse; analysis.sweep.device ->
# sweep, sweep_controls, cka.
TRAIN_GPUS = int(config["train"]["device"] != "cpu")
ANALYSIS_GPUS = int(config["analysis"]["sweep"]["device"] != "cpu")


wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",
    model=MODEL_PATTERN,
    target=MODEL_PATTERN,
    source=MODEL_PATTERN,
    group="|".join(config["analysis"]["groups"]) or "NONE",
    network="|".join(config["analysis"]["comparisons"]) or "NONE",
    pair=PAIR_PATTERN,
    number=wildcard_pattern(reuse=False),
    reuse_figure=wildcard_pattern(reuse=True),
    run_model=RUN_MODEL_PATTERN,
    src=STEM_PATTERN,
    mode=r"freeze|finetune|selffer",
    seed=r"\d+",


VERB_KEYS = verb_config_keys()


def settings(verb, **arguments):
    """The config values `prrmse <verb>` reads (the keys it declares in prrmse.cli, given
    its arguments as wildcard patterns), as a param: Snakemake reruns a job whose values
    changed, as DVC does with a stage's params."""

    def values(wildcards):
        named = {
            name: pattern.format(**wildcards) for name, pattern in arguments.items()
        }
        return settings_json(config, VERB_KEYS[verb](argparse.Namespace(**named)))

    return values


def dataset_root(wildcards):
    return config["datasets"][wildcards.dataset]["root"]


def model_dataset(wildcards):
    dataset = dataset_of_name(wildcards.model)
    return f"{PROCESSED}/{dataset}"


def study_models():
    return [
        f"{m}-s{s}" for m in config["study"]["models"] for s in config["study"]["seeds"]
    ]


def model_checkpoint(model, seed=FIRST_SEED):
    return f"{RESULTS}/models/{model}-s{seed}/model.safetensors"


def group_checkpoints(wildcards):
    return [
        model_checkpoint(m, wildcards.seed)
        for m in config["analysis"]["groups"][wildcards.group]
    ]


def pair_stem(pair, seed=FIRST_SEED):
    return f"{pair['target']}-s{seed}__{pair['source']}-s{seed}"


def plan_files(seed=FIRST_SEED):
    plan = config["analysis"]["plan"]
    return [
        f"{RESULTS}/plans/{pair_stem({'target': plan['target'], 'source': s}, seed)}.json"
        for s in plan["sources"]
    ]


def comparison_pair(network):
    pair = config["analysis"]["comparisons"][network]
    return f"{pair['target']}__{pair['source']}"


def comparison_seed_pair(network, seed=FIRST_SEED):
    pair = config["analysis"]["comparisons"][network]
    return seed_pair(pair["target"], pair["source"], seed)


def seed_pair(target, source, seed):
    return f"{target}-s{seed}__{source}-s{seed}"


def figure_inputs(wildcards):
    """The summary over seeds a figure of Figs. 3-12 draws (prrmse.figures.catalog)."""
    spec = figure_spec(int(wildcards.number))
    if spec.group:
        return f"{SUMMARY}/rmse/groups/{spec.group}.csv"
    pair = config["analysis"]["comparisons"][spec.network]
    return f"{SUMMARY}/{spec.product}/{pair['target']}__{pair['source']}.csv"


def figure_floor(wildcards):
    """The noise floor, for a figure that draws one."""
    return floor_input() if figure_spec(int(wildcards.number)).draws_floor else []


def noise_floor_inputs():
    """RMSE tables of every study model at every pair of seeds (none with one seed)."""
    pairs = [(a, b) for i, a in enumerate(SEEDS) for b in SEEDS[i + 1 :]]
    return [
        f"{RESULTS}/rmse/{m}-s{a}__{m}-s{b}.csv"
        for m in config["study"]["models"]
        for a, b in pairs
    ]


def floor_input():
    return [f"{RESULTS}/rmse/noise_floor.csv"] if len(SEEDS) > 1 else []


def floor_flag(wildcards, input):
    return f"--floor {input.floor}" if input.get("floor") else ""


def seed_products(product, suffix=".csv"):
    """One product of a target/source pair ({pair} = <target>__<source>), every seed."""

    def inputs(wildcards):
        target, source = wildcards.pair.split("__")
        return [
            f"{RESULTS}/{product}/{seed_pair(target, source, s)}{suffix}" for s in SEEDS
        ]

    return inputs


def comparison_pairs():
    return [
        f"{p['target']}__{p['source']}"
        for p in config["analysis"]["comparisons"].values()
    ]


def plan_pairs():
    plan = config["analysis"]["plan"]
    return [f"{plan['target']}__{s}" for s in plan["sources"]]


def reuse_runs(seed=FIRST_SEED):
    return study.reuse_runs(config, int(seed))


def ideal_run(seed=FIRST_SEED):
    return study.ideal_run(config, int(seed))


def figure_runs(number, seed=FIRST_SEED):
    return study.figure_runs(config, int(number), int(seed))


def reuse_plan_input(wildcards):
    src = (
        study.selffer_plan_source(config)
        if wildcards.mode == "selffer"
        else wildcards.src
    )
    return reuse_plan_file(src, wildcards.seed)


def reuse_run_checkpoint(run):
    return f"{RESULTS}/{study.run_folder(run)}/{run}/model.safetensors"


def reuse_metrics(wildcards):
    return [
        reuse_run_checkpoint(r).replace("model.safetensors", "metrics.json")
        for seed in REUSE_SEEDS
        for r in reuse_runs(seed)
    ]


def reuse_patients(wildcards):
    return [
        path.replace("metrics.json", "patients.csv")
        for path in reuse_metrics(wildcards)
    ]


def reuse_plan_file(src, seed):
    target = config["analysis"]["plan"]["target"]
    return f"{RESULTS}/plans/{target}-s{seed}__{src}-s{seed}.json"


def final_outputs():
    comparisons = config["analysis"]["comparisons"]
    figures = [
        spec.label
        for spec in FIGURES
        if spec.network is None or spec.network in comparisons
    ]
    return (
        expand(f"{PROCESSED}/{{dataset}}", dataset=DATASETS)
        + expand(
            f"{RESULTS}/qc/{{dataset}}.{{ext}}", dataset=DATASETS, ext=["png", "pdf"]
        )
        + expand(f"{RESULTS}/models/{{model}}/model.safetensors", model=study_models())
        + expand(f"{RESULTS}/figures/fig{{n}}.{{ext}}", n=figures, ext=["png", "pdf"])
        + expand(f"{RESULTS}/figures/cka-{{net}}.png", net=comparisons)
        + expand(f"{RESULTS}/figures/controls-{{net}}.png", net=comparisons)
        + [f"{RESULTS}/claims.md"]
        + [p for seed in REUSE_SEEDS for p in plan_files(seed)]
        + multiext(f"{RESULTS}/tables/baseline", ".csv", ".md", ".tex")
        + multiext(f"{RESULTS}/tables/plans", ".csv", ".md", ".tex")
        + multiext(f"{RESULTS}/tables/table1", ".csv", ".md", ".tex", "-findings.csv")
    )


def claims_inputs(wildcards):
    """Every result a verdict on the paper's claims rests on, by kind."""
    comparisons = config["analysis"]["comparisons"].values()
    sweeps = [
        f"{RESULTS}/sweeps/{seed_pair(p['target'], p['source'], s)}.csv"
        for p in comparisons
        for s in SEEDS
    ]
    sweeps += [
        f"{RESULTS}/sweeps/controls/{p['target']}-s{s}.csv"
        for p in comparisons
        for s in SEEDS
        if config["analysis"]["controls"]
    ]
    plan = config["analysis"]["plan"]
    sweeps += [
        f"{RESULTS}/sweeps/{seed_pair(plan['target'], source, s)}.csv"
        for source in plan["sources"]
        for s in REUSE_SEEDS
    ]
    rmse = [
        f"{RESULTS}/rmse/{seed_pair(p['target'], p['source'], s)}.csv"
        for p in comparisons
        for s in SEEDS
    ]
    rmse += [
        f"{RESULTS}/rmse/groups/{g}-s{s}.csv"
        for g in config["analysis"]["groups"]
        for s in SEEDS
    ]
    rmse += [
        f"{RESULTS}/rmse/{seed_pair(plan['target'], source, s)}.csv"
        for source in plan["sources"]
        for s in REUSE_SEEDS
    ]
    return {
        "sweeps": sweeps,
        "patients": [p.replace(".csv", ".patients.csv") for p in sweeps],
        "rmse": rmse,
        "bnstats": [
            f"{RESULTS}/bnstats/{seed_pair(p['target'], p['source'], s)}.csv"
            for p in comparisons
            for s in SEEDS
        ],
        "noise_floor": noise_floor_inputs(),
        "plans": [p for s in REUSE_SEEDS for p in plan_files(s)],
        "table1": f"{RESULTS}/tables/table1.csv",
    }


def claims_args(wildcards, input):
    """The command-line flags of `prrmse claims` for its inputs (patient files are found
    beside their sweeps)."""
    flags = []
    for name in ("sweeps", "rmse", "noise_floor", "plans", "bnstats"):
        files = list(input.get(name, []))
        if files:
            flags.append(f"--{name.replace('_', '-')} " + " ".join(files))
    return " ".join(flags + [f"--table1 {input.table1}"])


# --- training starts (rules in train.smk, reuse.smk, analysis.smk) ---------------------


def encoder_start(network):
    """A network's start.encoder: independent, shared, or the path of a local file."""
    return config["networks"][network].get("start", {}).get("encoder", "independent")


def shared_encoder_networks():
    return [n for n in config["networks"] if encoder_start(n) == "shared"]


def start_inputs(network):
    """The file a network's encoder starts from, if any: the shared one this workflow
    makes, or a local file named in the config (tracked, so a changed file retrains)."""
    choice = encoder_start(network)
    if choice == "shared":
        return [f"{RESULTS}/encoders/{network}.safetensors"]
    return [] if choice == "independent" else [choice]


def shared_encoder_flag(network):
    def flag(wildcards, input):
        if encoder_start(network(wildcards)) != "shared":
            return ""
        return f"--shared-encoder {input.encoder}"

    return flag


def same_run_input(wildcards):
    """The full model a subset model's run may be (the reuse experiment's scratch run on
    every training patient): trained once, its tensors taken if the records agree."""
    full = study.full_model_of_subset(config, wildcards.model)
    return [] if full is None else [f"{RESULTS}/models/{full}/model.safetensors"]


def same_run_flag(wildcards, input):
    return f"--same-run-checkpoint {input.same_run}" if input.same_run else ""


def model_network(wildcards):
    return network_of_name(wildcards.model)
