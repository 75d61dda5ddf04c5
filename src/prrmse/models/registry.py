"""Build any network by name, and describe a built one well enough to match a checkpoint.

Names: the entries of `BUILDERS` (the paper's `unet` and `pspnet`) and
`smp:<Arch>:<encoder>` for any segmentation_models_pytorch architecture. Every model
takes 1 input channel and gives 4 output channels by default. The build name and the
resolved options are recorded on the module as `prrmse_arch`, so a checkpoint can store
them and `build_model(record["name"], **record["options"])` rebuilds the architecture.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from prrmse.core.errors import PrrmseError
from prrmse.models.layers import execution_order, get_tensor, index_layers, layer_label
from prrmse.models.pspnet import build_pspnet
from prrmse.models.unet import build_unet

ARCH_ATTR = "prrmse_arch"
SMP_PREFIX = "smp:"
SMP_PATTERN = "smp:<Arch>:<encoder>"
PROBE_SIZE = 64  # smallest side every registered network handles (PSPNet's stride is 32)

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "unet": build_unet,
    "pspnet": build_pspnet,
}


def model_names() -> list[str]:
    """The valid names: registered networks plus the smp pattern."""
    return [*BUILDERS, SMP_PATTERN]


def build_model(name: str, **options: Any) -> nn.Module:
    """A freshly initialised network; the caller seeds torch for reproducible weights."""
    if name.startswith(SMP_PREFIX):
        model = build_smp(name, **options)
        record = dict(options)
    elif name in BUILDERS:
        builder = BUILDERS[name]
        record = _resolve_options(name, builder, options)
        model = builder(**record)
    else:
        raise PrrmseError(name, f"unknown network; valid names: {', '.join(model_names())}")
    setattr(model, ARCH_ATTR, {"name": name, "options": _jsonable(record)})
    return model


def _resolve_options(
    name: str, builder: Callable[..., nn.Module], options: Mapping[str, Any]
) -> dict[str, Any]:
    """All of the builder's options with defaults filled in, so a record survives default changes."""
    signature = inspect.signature(builder)
    unknown = sorted(set(options) - set(signature.parameters))
    if unknown:
        raise PrrmseError(
            f"{name} option {unknown[0]}",
            f"unknown option; {name} takes {', '.join(signature.parameters)}",
        )
    bound = signature.bind(**options)
    bound.apply_defaults()
    return dict(bound.arguments)


def _smp_architectures() -> dict[str, type[nn.Module]]:
    return {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}


def build_smp(name: str, **options: Any) -> nn.Module:
    """`smp:<Arch>:<encoder>` with random weights (never smp's downloading default).

    Extra options go to the smp constructor (e.g. `encoder_depth`, `decoder_channels`).
    A model some of whose layers never run, or whose output is not the input's size,
    is refused: both would silently break layer-wise comparison.
    """
    parts = name.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise PrrmseError(name, f"smp networks are named {SMP_PATTERN}, e.g. smp:Unet:resnet18")
    _, arch, encoder = parts
    architectures = _smp_architectures()
    by_lower = {key.lower(): key for key in architectures}
    if arch.lower() not in by_lower:
        raise PrrmseError(
            name, f"unknown smp architecture {arch!r}; options: {', '.join(architectures)}"
        )
    encoders = smp.encoders.get_encoder_names()
    if not encoder.startswith("tu-") and encoder not in encoders:
        raise PrrmseError(
            name,
            f"unknown smp encoder {encoder!r}; options: {', '.join(encoders)} or tu-<timm model>",
        )
    if "encoder_weights" in options and options["encoder_weights"] is not None:
        raise PrrmseError(name, "smp encoder_weights would download; only None is allowed")
    model_class = architectures[by_lower[arch.lower()]]
    # smp constructors swallow unknown **kwargs; a misspelt option must not vanish.
    accepted = [
        key
        for key, parameter in inspect.signature(model_class.__init__).parameters.items()
        if key not in ("self", "encoder_name") and parameter.kind is not parameter.VAR_KEYWORD
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise PrrmseError(
            f"{name} option {unknown[0]}", f"unknown option; {arch} takes {', '.join(accepted)}"
        )
    kwargs = {"in_channels": 1, "classes": 4, **options, "encoder_weights": None}
    try:
        model = model_class(encoder_name=encoder, **kwargs)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise PrrmseError(name, f"smp could not build it: {err}") from err
    _check_every_layer_runs(name, model, (1, kwargs["in_channels"], PROBE_SIZE, PROBE_SIZE))
    return model


def _check_every_layer_runs(name: str, model: nn.Module, probe: tuple[int, ...]) -> None:
    """Refuse modules that never run (they would never train) and outputs of another size."""
    called, output_shape = execution_order(model, probe)
    used = set(called)
    unused = [
        module_name
        for module_name, module in model.named_modules()
        if module_name not in used and _owns_tensors(module)
    ]
    if unused:
        raise PrrmseError(
            name,
            f"{len(unused)} modules never run in forward (first: {', '.join(unused[:3])}); "
            "for smp PSPNet pass encoder_depth=5 and upsampling=32",
        )
    if tuple(output_shape[2:]) != tuple(probe[2:]):
        raise PrrmseError(
            name, f"output is {list(output_shape[2:])} for a {list(probe[2:])} input; it must match"
        )


def _owns_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    )


def arch_record(model: nn.Module) -> dict[str, Any]:
    """The {"name", "options"} a model was built with; PrrmseError if not built here."""
    record = getattr(model, ARCH_ATTR, None)
    if record is None:
        raise PrrmseError(
            type(model).__name__, "was not built by prrmse.models.registry.build_model"
        )
    return record


def model_signature(
    model: nn.Module, input_shape: tuple[int, int, int, int] | None = None
) -> dict[str, Any]:
    """JSON-ready description: arch name, options, and every (layer, kind, shape).

    Absent kinds appear with shape None, so "conv without bias" is part of the signature.
    """
    record = getattr(model, ARCH_ATTR, None) or {"name": type(model).__name__, "options": {}}
    if input_shape is None:
        channels = record["options"].get("in_channels", 1)
        input_shape = (1, channels, PROBE_SIZE, PROBE_SIZE)
    tensors = []
    for layer in index_layers(model, input_shape):
        for kind in (*layer.kinds, *layer.absent):
            shape = list(get_tensor(model, layer, kind).shape) if kind in layer.kinds else None
            tensors.append(
                {
                    "layer": layer_label(layer),
                    "module": layer.module_name,
                    "kind": kind,
                    "shape": shape,
                }
            )
    return {"arch": record["name"], "options": record["options"], "tensors": tensors}


def signature_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str | None:
    """The first difference in architecture or tensors as one sentence; None if they match.

    Options are not compared: weights files, dropout and the like do not change tensors.
    """
    if expected["arch"] != found["arch"]:
        return f"architecture {found['arch']!r}, expected {expected['arch']!r}"
    wanted, got = expected["tensors"], found["tensors"]
    for want, have in zip(wanted, got, strict=False):
        if want != have:
            return (
                f"{have['layer']} {have['kind']} is {_describe(have)}, expected {_describe(want)}"
            )
    if len(wanted) != len(got):
        return f"{len(got)} layer tensors, expected {len(wanted)}"
    return None


def _describe(entry: Mapping[str, Any]) -> str:
    shape = "absent" if entry["shape"] is None else f"shape {entry['shape']}"
    return f"{entry['module']} {shape}"


def _jsonable(value: Any) -> Any:
    """Options as JSON can store them (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value
