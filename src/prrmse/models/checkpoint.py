"""Checkpoints as safetensors: tensors plus a JSON record of what made them.

Model checkpoints hold the model's state_dict and, in metadata["prrmse"], the
architecture, its options, the resolved config, seed, code version and
metrics. Training-state files additionally hold the best model so far and the
optimizer state, so a killed run resumes where it stopped. Nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path

META_KEY = "prrmse"


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], record: dict[str, Any]
) -> None:
    """Write tensors atomically with `record` as JSON metadata."""
    payload = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    metadata = {META_KEY: json.dumps(record, sort_keys=True, default=str)}
    with atomic_path(path) as temp:
        try:
            save_file(payload, str(temp), metadata=metadata)
        except SafetensorError as exc:
            # safetensors reports a failed write (a full disk) as its own error type; as an
            # OSError, atomic_path removes the temp file and names the output in one line.
            raise OSError(str(exc)) from exc


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read every tensor and the JSON record; a missing, forged or truncated file is an error."""
    path = Path(path)
    if not path.is_file():
        raise PrrmseError(path, "checkpoint not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise PrrmseError(path, f"not a readable safetensors checkpoint ({exc})") from exc
    if META_KEY not in metadata:
        raise PrrmseError(path, "safetensors file lacks prrmse metadata (not a prrmse checkpoint)")
    try:
        record = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as exc:
        raise PrrmseError(path, f"checkpoint metadata is not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise PrrmseError(
            path, f"checkpoint metadata is a JSON {type(record).__name__}, not an object"
        )
    return tensors, record


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with `prefix.`, with the prefix removed."""
    cut = len(prefix) + 1
    return {name[cut:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors = {}
    for param_id, values in state["state"].items():
        for name, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{param_id}.{name}"] = tensor
    return tensors, state["param_groups"]


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: list
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in prefixed(tensors, "optim").items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def check_state_dict(
    path: str | Path, model: torch.nn.Module, tensors: dict[str, torch.Tensor], arch: str
) -> None:
    """One line, expected vs found, when tensors do not fit the model."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise PrrmseError(
            path,
            f"tensors do not match architecture '{arch}': {len(expected)} expected, "
            f"{len(tensors)} found; missing {missing[:3]}, unexpected {extra[:3]}",
        )
    for name, tensor in expected.items():
        if tuple(tensors[name].shape) != tuple(tensor.shape):
            raise PrrmseError(
                path,
                f"tensor {name}: expected shape {tuple(tensor.shape)} for '{arch}', "
                f"found {tuple(tensors[name].shape)}",
            )
        # load_state_dict would silently cast (a float16 file loses precision unnoticed).
        if tensors[name].dtype != tensor.dtype:
            raise PrrmseError(
                path,
                f"tensor {name}: expected dtype {_dtype_name(tensor)} for '{arch}', "
                f"found {_dtype_name(tensors[name])}",
            )


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def check_finite(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """A NaN or Inf weight would turn every later number (Dice, RMSE) into noise: refuse it."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise PrrmseError(path, f"tensor {name} holds NaN or Inf values")


def load_model(
    path: str | Path, expect: dict[str, Any] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint records and load its tensors.

    `expect` (e.g. {"arch": "pspnet", "options": {...}}) refuses a checkpoint of
    another architecture with one line naming both.
    """
    from prrmse.models.registry import build_model

    tensors, record = load_tensors(path)
    if record.get("kind") != "model" or not isinstance(record.get("arch"), str):
        raise PrrmseError(path, "not a model checkpoint (no architecture recorded)")
    if expect is not None:
        found = {key: record.get(key) for key in expect}
        if found != expect:
            raise PrrmseError(
                path, f"checkpoint of another architecture: expected {expect}, found {found}"
            )
    options = record.get("options", {})
    if not isinstance(options, dict):
        raise PrrmseError(
            path, f"recorded options are a JSON {type(options).__name__}, not an object"
        )
    try:
        model = build_model(record["arch"], **options)
    except PrrmseError as exc:  # names the architecture or option; say which file records it
        raise PrrmseError(path, f"records {exc.where}: {exc.problem}") from exc
    check_state_dict(path, model, tensors, record["arch"])
    check_finite(path, tensors)
    model.load_state_dict(tensors)
    model.eval()
    return model, record
