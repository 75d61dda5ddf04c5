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
    number=r"\d\d",
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


def final_outputs():
    figures = [
        f
        for n, f in FIGURES.items()
        if isinstance(f, str) or f[0] in config["analysis"]["comparisons"]
    ]
    return (
        expand(f"{PROCESSED}/{{dataset}}", dataset=DATASETS)
        + expand(f"{RESULTS}/models/{{model}}/model.safetensors", model=study_models())
        + expand(
            f"{RESULTS}/figures/fig{{number}}.{{ext}}",
            number=[n for n, f in FIGURES.items() if f in figures],
            ext=["png", "pdf"],
        )
        + plan_files()
        + multiext(f"{RESULTS}/tables/baseline", ".csv", ".md", ".tex")
        + multiext(f"{RESULTS}/tables/plans", ".csv", ".md", ".tex")
    )
