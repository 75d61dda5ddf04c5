# Config loading and validation, path helpers and input functions. No science here.
import os
from pathlib import Path

from snakemake.utils import validate


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
validate(config, schema="../schemas/config.schema.yaml")

RAW = config["paths"]["raw"]
PROCESSED = config["paths"]["processed"]
RESULTS = config["paths"]["results"]
DATASETS = sorted(config["datasets"])
PHANTOM_DATASETS = ["acdc", "rvsc", "t1"] if config["phantoms"]["enabled"] else []


MODEL_PATTERN = r"[a-z][a-z0-9_]*-(seg|auto)-[a-z][a-z0-9_]*(-n[0-9]+)?-s[0-9]+"
FIRST_SEED = config["study"]["seeds"][0]


wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",
    model=MODEL_PATTERN,
    target=MODEL_PATTERN,
    source=MODEL_PATTERN,
    group="|".join(config["analysis"]["groups"]) or "NONE",
    number=r"0[3-9]|1[0-2]",
    reuse_figure=r"1[34]",
    run_model=r"[a-z][a-z0-9_]*-(seg|auto)-[a-z][a-z0-9_]*(-n[0-9]+)?",
    src=r"[a-z][a-z0-9_]*-(seg|auto)-[a-z][a-z0-9_]*",
    mode=r"freeze|finetune",
    seed=r"\d+",


def dataset_root(wildcards):
    return config["datasets"][wildcards.dataset]["root"]


def model_dataset(wildcards):
    dataset = wildcards.model.split("-")[2]
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


# figure number -> (network of analysis.comparisons, product) or RMSE group name
FIGURES = {
    "03": ("unet", "sweeps"),
    "04": ("unet", "sweeps"),
    "05": ("unet", "bnstats"),
    "06": ("unet", "rmse"),
    "07": ("pspnet", "sweeps"),
    "08": ("pspnet", "sweeps"),
    "09": ("pspnet", "bnstats"),
    "10": ("pspnet", "rmse"),
    "11": "fig11",
    "12": "fig12",
}


def figure_inputs(wildcards):
    what = FIGURES[wildcards.number]
    if isinstance(what, str):
        return f"{RESULTS}/rmse/groups/{what}-s{FIRST_SEED}.csv"
    network, product = what
    return f"{RESULTS}/{product}/{pair_stem(config['analysis']['comparisons'][network])}.csv"


def reuse_runs(seed=FIRST_SEED):
    """Every run of the reuse experiment: scratch, then each source frozen and fine-tuned."""
    target = config["analysis"]["plan"]["target"]
    runs = []
    for n in config["reuse"]["n_train"]:
        runs.append(f"{target}-n{n}-s{seed}")
        for src in config["analysis"]["plan"]["sources"]:
            runs += [
                f"{target}-n{n}-s{seed}-{m}-from-{src}"
                for m in config["reuse"]["modes"]
            ]
    return runs


def reuse_run_checkpoint(run):
    folder = "reuse" if "-from-" in run else "models"
    return f"{RESULTS}/{folder}/{run}/model.safetensors"


def reuse_metrics(wildcards):
    return [
        reuse_run_checkpoint(r).replace("model.safetensors", "metrics.json")
        for r in reuse_runs()
    ]


def ideal_run(seed=FIRST_SEED):
    ideal = config["reuse"]["ideal"]
    target = config["analysis"]["plan"]["target"]
    return (
        f"{target}-n{ideal['n_train']}-s{seed}-{ideal['mode']}-from-{ideal['source']}"
    )


def reuse_plan_file(src, seed):
    target = config["analysis"]["plan"]["target"]
    return f"{RESULTS}/plans/{target}-s{seed}__{src}-s{seed}.json"


def figure_runs(number):
    runs = [r for r in reuse_runs() if r != ideal_run()]
    if number == "14":
        runs = [
            r for r in runs if r.endswith(f"-from-{config['reuse']['fig14_source']}")
        ]
    return runs


def final_outputs():
    comparisons = config["analysis"]["comparisons"]
    figures = [
        n for n, f in FIGURES.items() if isinstance(f, str) or f[0] in comparisons
    ] + ["13", "14"]
    return (
        expand(f"{PROCESSED}/{{dataset}}", dataset=DATASETS)
        + expand(f"{RESULTS}/models/{{model}}/model.safetensors", model=study_models())
        + expand(f"{RESULTS}/figures/fig{{n}}.{{ext}}", n=figures, ext=["png", "pdf"])
        + plan_files()
        + multiext(f"{RESULTS}/tables/baseline", ".csv", ".md", ".tex")
        + multiext(f"{RESULTS}/tables/plans", ".csv", ".md", ".tex")
        + multiext(f"{RESULTS}/tables/table1", ".csv", ".md", ".tex", "-findings.csv")
    )
