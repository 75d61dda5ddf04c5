"""An ImageNet ResNet-18 as our encoder start, with nothing downloaded at run time.

`prrmse import-weights` turns a torchvision ResNet-18 state dict (a `.pth` the user saved
once on a machine with internet, e.g. from `ResNet18_Weights.IMAGENET1K_V1`) into the
safetensors file of encoder tensors that `networks.<net>.start.encoder: <path>` loads
(`prrmse.models.start_model.load_encoder_start` -> `prrmse.models.pspnet.load_encoder_weights`).

The `.pth` is read with `torch.load(..., weights_only=True)` only, so a pickle that holds
anything but tensors and plain containers is refused, never run. It must map tensor for
tensor: exactly torchvision ResNet-18's keys (its `fc.*` classifier aside, dropped), each
of ResNet-18's shape and dtype, all finite; the target network's encoder must be a
ResNet-18 as well (PSPNet: `options.encoder_width` 64; `output_stride` dilates convs
without changing a shape). One change is made, the usual grayscale adaptation: the RGB
stem `conv1.weight` [64, 3, 7, 7] becomes the network's `in_channels` stem as smp's
`patch_first_conv` makes it for pretrained weights (1 channel: summed over the three;
2 or more: the RGB channels repeated in turn, scaled by 3 / in_channels). torchvision's
stem has no bias: a PSPNet-b stem bias (`conv_bias: true`) keeps its own start draw.

The file holds the encoder's tensors under their encoder keys plus a prrmse record
(metadata "prrmse"): the source file's name, size and sha256, the mapping (stem rule,
dropped keys), the target network and the code's provenance stamp. It is written under
a temporary name, loaded back into the network's encoder, then renamed into place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import atomic_path, sha256_file
from prrmse.models.checkpoint import META_KEY
from prrmse.models.pspnet import RESNET18_WIDTH, STEM_KEY, load_encoder_weights
from prrmse.models.start import ENCODER_MODULE

SOURCE_FORMAT = "torchvision resnet18 state_dict"
SOURCE_IN_CHANNELS = 3  # torchvision's stem takes RGB
DROPPED_PREFIX = "fc."  # torchvision's ImageNet classifier: no part of an encoder
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def resnet18_reference() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """torchvision ResNet-18's tensors (name -> shape, dtype), classifier excluded, built on
    the meta device (no memory, no initialisation)."""
    from torchvision.models import resnet18

    with torch.device("meta"):
        model = resnet18()
    return {
        key: (tuple(value.shape), value.dtype)
        for key, value in model.state_dict().items()
        if not key.startswith(DROPPED_PREFIX)
    }


def read_state_dict(pth: Path) -> dict[str, torch.Tensor]:
    """A `.pth` of plain tensors, read with weights_only=True; anything else is refused."""
    if not pth.is_file():
        raise PrrmseError(pth, "weights file not found")
    try:
        loaded = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign bytes; one line
        raise PrrmseError(pth, _load_failure(exc)) from exc
    if not isinstance(loaded, dict):
        raise PrrmseError(
            pth,
            f"holds a {type(loaded).__name__}, not a state dict (a mapping of names to tensors)",
        )
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            hint = (
                " (a training checkpoint? save model.state_dict() itself)"
                if isinstance(value, dict)
                else ""
            )
            raise PrrmseError(
                pth,
                f"entry {key!r} is a {type(value).__name__}, not a tensor: not a plain state dict{hint}",
            )
    return {str(key): value for key, value in loaded.items()}


def _load_failure(exc: Exception) -> str:
    """torch.load's refusal in one line: the weights-only unpickler's own reason if given."""
    text = _ANSI.sub("", str(exc))
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            reason = line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
            return (
                f"not a file of plain tensors: torch.load(weights_only=True) refused it ({reason})"
            )
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"not a state dict torch.load(weights_only=True) can read ({type(exc).__name__}: {first[:200]})"


def check_resnet18(
    pth: Path, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
    """The encoder tensors of a torchvision ResNet-18 state dict (classifier split off and
    returned as name -> shape); anything that does not map tensor for tensor is refused."""
    reference = resnet18_reference()
    dropped = {
        key: list(value.shape) for key, value in state.items() if key.startswith(DROPPED_PREFIX)
    }
    tensors = {key: value for key, value in state.items() if not key.startswith(DROPPED_PREFIX)}
    missing = sorted(set(reference) - set(tensors))
    unexpected = sorted(set(tensors) - set(reference))
    if missing or unexpected:
        raise PrrmseError(
            pth,
            f"not a torchvision ResNet-18 state dict: {len(reference)} encoder tensors expected, "
            f"{len(tensors)} found; missing {_some(missing)}, unexpected {_some(unexpected)}",
        )
    for key, (shape, dtype) in reference.items():
        value = tensors[key]
        if tuple(value.shape) != shape:
            raise PrrmseError(
                pth, f"tensor {key} has shape {list(value.shape)}, ResNet-18's is {list(shape)}"
            )
        if value.dtype != dtype:
            raise PrrmseError(
                pth, f"tensor {key} is {_dtype(value.dtype)}, ResNet-18's is {_dtype(dtype)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise PrrmseError(pth, f"tensor {key} holds NaN or Inf values")
    return tensors, dropped


def target_encoder(network: dict[str, Any], where: str) -> nn.Module:
    """A freshly built encoder of the network (`networks.<net>` at `where`), checked to be a
    ResNet-18 whatever its stem's input channels; the config key is named otherwise."""
    from prrmse.models.registry import build_model

    arch = network.get("arch")
    options = {k: v for k, v in (network.get("options") or {}).items() if k != "encoder_weights"}
    if arch == "pspnet":
        width = options.get("encoder_width", RESNET18_WIDTH)
        if width != RESNET18_WIDTH:
            raise PrrmseError(
                f"{where}.options.encoder_width",
                f"is {width!r}: a ResNet-18 encoder has width {RESNET18_WIDTH}, the imported "
                "weights cannot start a narrower one",
            )
    elif not (isinstance(arch, str) and arch.startswith("smp:") and arch.endswith(":resnet18")):
        raise PrrmseError(
            f"{where}.arch",
            f"is {arch!r}: ResNet-18 weights start a pspnet or smp:<Arch>:resnet18 encoder",
        )
    try:
        model = build_model(arch, **options)
    except PrrmseError as exc:
        raise PrrmseError(f"{where}", f"cannot build the network ({exc})") from exc
    encoder = getattr(model, ENCODER_MODULE, None)
    if not isinstance(encoder, nn.Module):
        raise PrrmseError(f"{where}.arch", f"{arch!r} has no '{ENCODER_MODULE}' part")
    reference = resnet18_reference()
    expected = encoder.state_dict()
    optional = {f"{STEM_KEY.rsplit('.', 1)[0]}.bias"}  # PSPNet-b's stem bias: not in torchvision
    keys = set(expected) - optional
    wrong = sorted(keys ^ set(reference))
    wrong += sorted(
        key
        for key in keys & set(reference)
        if key != STEM_KEY and tuple(expected[key].shape) != reference[key][0]
    )
    stem = tuple(expected[STEM_KEY].shape) if STEM_KEY in expected else ()
    if (
        wrong
        or len(stem) != 4
        or stem[0] != reference[STEM_KEY][0][0]
        or stem[2:] != reference[STEM_KEY][0][2:]
    ):
        raise PrrmseError(
            where, f"its encoder is not a ResNet-18 (differs at {_some(wrong or [STEM_KEY])})"
        )
    return encoder


def adapt_stem(weight: torch.Tensor, in_channels: int) -> tuple[torch.Tensor, str]:
    """The RGB stem for `in_channels` inputs, as smp's patch_first_conv adapts pretrained
    weights; and the rule applied, in words."""
    if in_channels == SOURCE_IN_CHANNELS:
        return weight.clone(), "unchanged (3 input channels)"
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True), (
            "summed over its 3 RGB input channels into 1 (smp patch_first_conv, in_channels=1)"
        )
    channels = [weight[:, i % SOURCE_IN_CHANNELS] for i in range(in_channels)]
    scaled = torch.stack(channels, dim=1) * (SOURCE_IN_CHANNELS / in_channels)
    return scaled, (
        f"RGB channels repeated in turn into {in_channels}, scaled by 3/{in_channels} "
        "(smp patch_first_conv)"
    )


def import_resnet18(
    pth: str | Path,
    network: dict[str, Any],
    out: str | Path,
    network_name: str = "pspnet",
    where: str | None = None,
) -> dict[str, Any]:
    """Write the encoder start file of `network` (a `networks.<name>` config entry) from a
    torchvision ResNet-18 state dict; return the record stored in its metadata."""
    pth, out = Path(pth), Path(out)
    where = where or f"config networks.{network_name}"
    encoder = target_encoder(network, where)
    state = read_state_dict(pth)
    tensors, dropped = check_resnet18(pth, state)
    in_channels = int(encoder.state_dict()[STEM_KEY].shape[1])
    tensors[STEM_KEY], stem_rule = adapt_stem(tensors[STEM_KEY], in_channels)
    has_stem_bias = f"{STEM_KEY.rsplit('.', 1)[0]}.bias" in encoder.state_dict()
    record = {
        "kind": "encoder",
        "recipe": "import",
        "network": network_name,
        "arch": network.get("arch"),
        "options": network.get("options", {}),
        "source": {
            "file": pth.name,
            "sha256": sha256_file(pth),
            "bytes": pth.stat().st_size,
            "format": SOURCE_FORMAT,
            "loaded_with": "torch.load(weights_only=True)",
            "tensors": len(state),
        },
        "mapping": {
            "tensors": len(tensors),
            "stem": f"{STEM_KEY} {stem_rule}",
            "dropped": dropped,
            "stem_bias": (
                "absent in torchvision: conv1.bias keeps the model's own start draw"
                if has_stem_bias
                else "none (the network's stem has no bias)"
            ),
        },
        "provenance": provenance.stamp(),
    }
    payload = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    metadata = {META_KEY: json.dumps(record, sort_keys=True, default=str)}
    with atomic_path(out) as temp:
        try:
            save_file(payload, str(temp), metadata=metadata)
        except SafetensorError as exc:  # a failed write (full disk): atomic_path names `out`
            raise OSError(str(exc)) from exc
        load_encoder_weights(encoder, temp)  # the file starts the network, or nothing is left
    return record


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _some(keys: list[str], shown: int = 4) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
