# Config loading and validation, path helpers and input functions. No science here.
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
        raise ValueError("prrmse: pass exactly one --configfile (configs are not merged)")
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


wildcard_constraints:
    dataset="|".join(DATASETS) or "NONE",
    model=r"[a-z][a-z0-9_]*-(seg|auto)-[a-z][a-z0-9_]*(-n[0-9]+)?-s[0-9]+",


def dataset_root(wildcards):
    return config["datasets"][wildcards.dataset]["root"]


def model_dataset(wildcards):
    dataset = wildcards.model.split("-")[2]
    return f"{PROCESSED}/{dataset}"


def study_models():
    return [f"{m}-s{s}" for m in config["study"]["models"] for s in config["study"]["seeds"]]


def final_outputs():
    return expand(f"{PROCESSED}/{{dataset}}", dataset=DATASETS) + expand(
        f"{RESULTS}/models/{{model}}/model.safetensors", model=study_models()
    )
