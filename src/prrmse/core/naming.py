"""Model names of the study: <network>-<task>-<dataset>[-n<N>]-s<seed>."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prrmse.core.errors import PrrmseError

TASKS = ("seg", "auto")
_NAME = re.compile(
    r"^(?P<network>[a-z][a-z0-9_]*)-(?P<task>[a-z]+)-(?P<dataset>[a-z][a-z0-9_]*)"
    r"(?:-n(?P<n_train>\d+))?-s(?P<seed>\d+)$"
)
_STEM_FIELDS = re.compile(
    rf"^(?P<network>[a-z][a-z0-9_]*)-(?P<task>{'|'.join(TASKS)})-(?P<dataset>[a-z][a-z0-9_]*)(?:-|$)"
)

# The same grammar as Snakemake wildcard constraints: a stem <network>-<task>-<dataset>
# (a reuse source), a run model (stem and subset, the reuse rules' target) and a model.
STEM_PATTERN = rf"[a-z][a-z0-9_]*-({'|'.join(TASKS)})-[a-z][a-z0-9_]*"
RUN_MODEL_PATTERN = rf"{STEM_PATTERN}(-n[0-9]+)?"
MODEL_PATTERN = rf"{RUN_MODEL_PATTERN}-s[0-9]+"
PAIR_PATTERN = rf"{STEM_PATTERN}__{STEM_PATTERN}"


@dataclass(frozen=True)
class ModelSpec:
    network: str
    task: str
    dataset: str
    n_train: int | None
    seed: int

    @property
    def name(self) -> str:
        subset = f"-n{self.n_train}" if self.n_train is not None else ""
        return f"{self.network}-{self.task}-{self.dataset}{subset}-s{self.seed}"


def parse_model_name(name: str) -> ModelSpec:
    match = _NAME.match(name)
    if not match:
        raise PrrmseError(name, "model name must read <network>-<task>-<dataset>[-n<N>]-s<seed>")
    if match["task"] not in TASKS:
        raise PrrmseError(name, f"unknown task '{match['task']}' (valid: {', '.join(TASKS)})")
    n_train = int(match["n_train"]) if match["n_train"] else None
    return ModelSpec(match["network"], match["task"], match["dataset"], n_train, int(match["seed"]))


# selffer: Yosinski et al.'s BnB control, the target's own trained tensors frozen.
MODES = ("freeze", "finetune", "selffer")
_REUSE = re.compile(
    r"^(?P<model>.+)-(?P<mode>freeze|finetune|selffer)-from-"
    r"(?P<source>[a-z][a-z0-9_]*-[a-z]+-[a-z][a-z0-9_]*)$"
)


@dataclass(frozen=True)
class RunSpec:
    """A run of the reuse experiment: a target model trained from scratch or from a source's tensors."""

    model: ModelSpec
    mode: str  # "scratch", "freeze", "finetune" or "selffer"
    source: str | None  # source model without seed, e.g. "pspnet-auto-t1"

    @property
    def name(self) -> str:
        if self.source is None:
            return self.model.name
        return f"{self.model.name}-{self.mode}-from-{self.source}"

    @property
    def source_label(self) -> str | None:
        """The paper's name of the source: T1-seg, T1-auto, RVSC-seg."""
        if self.source is None:
            return None
        _, task, dataset = self.source.split("-")
        return f"{dataset.upper()}-{task}"


def parse_run_name(name: str) -> RunSpec:
    """`<model>` (scratch) or `<model>-<freeze|finetune|selffer>-from-<source>`.

    A selffer run's source is the target's own task: `<network>-<task>-<dataset>` of
    the model (e.g. `pspnet-seg-acdc-n10-s1-selffer-from-pspnet-seg-acdc`).
    """
    match = _REUSE.match(name)
    if match is None:
        return RunSpec(parse_model_name(name), "scratch", None)
    model = parse_model_name(match["model"])
    own = f"{model.network}-{model.task}-{model.dataset}"
    if match["mode"] == "selffer" and match["source"] != own:
        raise PrrmseError(
            name,
            f"a selffer run's source is the target's own task {own!r}, not {match['source']!r}",
        )
    return RunSpec(model, match["mode"], match["source"])


def run_label(name: str) -> str:
    """Short label of a reuse-experiment run: "n10 freeze T1-auto", "n50 scratch"."""
    run = parse_run_name(name)
    subset = f"n{run.model.n_train} " if run.model.n_train is not None else ""
    label = f"{subset}{run.mode}" + (f" {run.source_label}" if run.source else "")
    return f"{label} s{run.model.seed}"


def stem_fields(name: str) -> tuple[str, str, str]:
    """Network, task and dataset of a model name, or of any name that begins with a model
    stem (a reuse rule's run model carries no seed)."""
    match = _STEM_FIELDS.match(name)
    if not match:
        raise PrrmseError(name, "name must begin <network>-<task>-<dataset>")
    return match["network"], match["task"], match["dataset"]


def network_of_name(name: str) -> str:
    return stem_fields(name)[0]


def dataset_of_name(name: str) -> str:
    return stem_fields(name)[2]
