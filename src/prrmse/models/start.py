"""How each part of a network starts training: a recorded design choice (issue 14).

The paper's PSPNet models all start from one ImageNet ResNet-18 encoder, while the
decoder, the pyramid, the head and the whole UNet start random. Config
`networks.<net>.start` says, per part, how a model starts:

- `encoder` (the network's `encoder` submodule; PSPNet and smp networks have one):
  - `independent`: a random draw of the model's own (see below);
  - `shared`: one file made once for the network (`prrmse encoder`, the workflow's
    `results/encoders/<network>.safetensors`), loaded by every model of the network;
  - any other value: the path of a local safetensors file of encoder tensors (real
    data: an imported ImageNet ResNet-18), loaded by every model of the network.
- `rest` (everything else): `independent`, always.

Independent parts are drawn with torch seeded by `start_seed(model_identity(spec),
spec.seed)`: a stable hash of the model's task identity and its seed, apart from the
data-order seed (`spec.seed`: `prrmse.training.batches`' shuffling and augmentation).
Every model of another task or dataset starts elsewhere; two seeds of one model start elsewhere,
except for a shared encoder, which they share too, so the seed-to-seed noise floor is
measured under the regime of the between-task pairs it is compared with. The subset
size is not part of the identity: the reuse experiment's runs of one target and seed
(scratch, frozen, fine-tuned; n10 and n50) start their un-loaded tensors from the same
draw, so they differ by their data and what they loaded, not by a start draw.

A start is recorded as a JSON-able mapping, part -> {"kind": "independent", "seed": s}
or {"kind": "shared" | "file", "file": path, "sha256": hex}; `prrmse.models.start_model.build_start`
rebuilds the exact tensors from it (checking the file's hash), which is how the sweep's reinit
control reproduces a model's own start. Checkpoints written before start regimes
existed record none: `legacy_start(seed)` is what they started from (torch seeded with
the run seed, the whole model drawn at once).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.naming import ModelSpec

PARTS = ("encoder", "rest")
ENCODER_MODULE = "encoder"
INDEPENDENT, SHARED, FILE = "independent", "shared", "file"
DEFAULT_START = {"encoder": INDEPENDENT, "rest": INDEPENDENT}
Start = dict[str, dict[str, Any]]


def model_identity(spec: ModelSpec) -> str:
    """What a start draw is keyed by, besides the seed: `<network>-<task>-<dataset>`."""
    return f"{spec.network}-{spec.task}-{spec.dataset}"


def start_seed(identity: str, seed: int) -> int:
    """A stable 31-bit seed from (identity, seed): the same on every machine and Python.

    31 bits because torch's CPU generator keeps only a seed's low 32 bits: a longer
    seed would record more than decides the draw.
    """
    digest = hashlib.sha256(f"prrmse start|{identity}|s{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def start_config(network: dict[str, Any]) -> dict[str, str]:
    """The network's `start` entry with defaults filled in."""
    return {**DEFAULT_START, **(network.get("start") or {})}


def resolve_start(
    network: dict[str, Any],
    spec: ModelSpec,
    shared_encoder: Path | None = None,
    where: str = "config networks",
) -> Start:
    """The start record of `spec` under its network's config (`networks.<net>`).

    `shared_encoder` is the file a `shared` encoder start loads (the workflow passes
    `results/encoders/<network>.safetensors`); it is refused where the config does not
    say `shared`, so a file never silently goes unused.
    """
    choice = start_config(network)
    key = f"{where}.{spec.network}.start"
    if choice["rest"] != INDEPENDENT:
        raise PrrmseError(key + ".rest", f"must be 'independent', got {choice['rest']!r}")
    seed = start_seed(model_identity(spec), spec.seed)
    independent = {"kind": INDEPENDENT, "seed": seed}
    encoder_option = (network.get("options") or {}).get("encoder_weights")
    encoder: dict[str, Any]
    if choice["encoder"] == SHARED:
        if shared_encoder is None:
            raise PrrmseError(
                key + ".encoder",
                "is 'shared': pass the shared encoder file (made by `prrmse encoder`)",
            )
        encoder = _file_part(SHARED, Path(shared_encoder))
    elif shared_encoder is not None:
        raise PrrmseError(
            shared_encoder, f"a shared encoder file was given but {key}.encoder is not 'shared'"
        )
    elif choice["encoder"] == INDEPENDENT:
        encoder = dict(independent)
        if encoder_option is not None:  # the builder loads it: record it as a file start
            encoder = {**_file_part(FILE, Path(encoder_option)), "via": "options.encoder_weights"}
    else:
        encoder = _file_part(FILE, Path(choice["encoder"]))
    if encoder["kind"] != INDEPENDENT and encoder.get("via") is None and encoder_option is not None:
        raise PrrmseError(
            key + ".encoder",
            "and options.encoder_weights both give the encoder a file; keep one",
        )
    return {"encoder": encoder, "rest": independent}


def _file_part(kind: str, path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PrrmseError(path, "encoder start file not found")
    return {"kind": kind, "file": str(path), "sha256": sha256_file(path)}


def legacy_start(seed: int) -> Start:
    """The start of a checkpoint that records none: every part drawn with the run seed."""
    return {part: {"kind": INDEPENDENT, "seed": int(seed)} for part in PARTS}


def rerandom_start(start: Start, offset: int) -> Start:
    """Every part a fresh independent draw (the rerandom control): the start's seed + offset."""
    return {part: {"kind": INDEPENDENT, "seed": independent_seed(start) + offset} for part in PARTS}


def independent_seed(start: Start, where: str = "start") -> int:
    """The one seed every independent part of a start is drawn with."""
    seeds = {int(part["seed"]) for part in start.values() if part.get("kind") == INDEPENDENT}
    if len(seeds) != 1:
        raise PrrmseError(where, f"independent parts need exactly one seed, found {sorted(seeds)}")
    return seeds.pop()


def check_start(start: Any, where: str | Path) -> Start:
    """A start record read from a file, checked to have every part in a known form."""
    if not isinstance(start, dict) or set(start) != set(PARTS):
        raise PrrmseError(where, f"start record must name the parts {', '.join(PARTS)}: {start!r}")
    for name, part in start.items():
        kind = part.get("kind") if isinstance(part, dict) else None
        if kind == INDEPENDENT and isinstance(part.get("seed"), int):
            continue
        if name == "encoder" and kind in (SHARED, FILE) and isinstance(part.get("file"), str):
            continue
        raise PrrmseError(where, f"start of part {name} is not understood: {part!r}")
    independent_seed(start, str(where))
    return start


def describe(start: Start) -> str:
    """One line: how each part started (for logs and provenance)."""
    words = []
    for name, part in start.items():
        if part["kind"] == INDEPENDENT:
            words.append(f"{name} independent (seed {part['seed']})")
        else:
            words.append(f"{name} {part['kind']} ({part['file']}, sha256 {part['sha256'][:12]})")
    return ", ".join(words)


def regime(start: Start) -> dict[str, Any]:
    """What two models must agree on to be compared under one start regime: per part, the
    kind, and for a file start the file's hash (independent seeds differ by design)."""
    return {
        name: part["kind"] if part["kind"] == INDEPENDENT else f"{part['kind']}:{part['sha256']}"
        for name, part in start.items()
    }
