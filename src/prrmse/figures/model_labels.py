"""Display names of models in figures: "ACDC seg", "T1 auto" for the study's model names.

Names following the study's <network>-<task>-<dataset>[-n<N>]-s<seed> pattern are shortened
to dataset and task (subset and seed kept where they tell models apart); any other names,
or short names that would collide, stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prrmse.core.errors import PrrmseError
from prrmse.core.naming import parse_model_name


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Display names: pspnet-seg-acdc-s0 -> "ACDC seg" (seed, subset kept where they differ)."""
    try:
        # summaries over seeds name models without their seed
        specs = {
            name: parse_model_name(name if re.search(r"-s\d+$", name) else f"{name}-s0")
            for name in names
        }
    except PrrmseError:
        return {name: name for name in names}
    seeds_differ = len({spec.seed for spec in specs.values()}) > 1
    short = {
        name: f"{spec.dataset.upper()} {spec.task}"
        + (f" n{spec.n_train}" if spec.n_train is not None else "")
        + (f" s{spec.seed}" if seeds_differ else "")
        for name, spec in specs.items()
    }
    return short if len(set(short.values())) == len(short) else {name: name for name in names}
