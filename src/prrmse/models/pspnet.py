"""PSPNet on a full-depth ResNet-18: smp's encoder, the original PSPNet's pyramid pooling.

smp's own `PSPNet` does not give the paper's 25 BN / 25 conv: it defaults to
`encoder_depth=3` (layer3/layer4 exist but never run, so they never train) and its
bin-1 branch has no BN. So the encoder comes from smp (`get_encoder("resnet18",
depth=5, weights=None)`) and the decoder follows hszhao/semseg `model/pspnet.py`:
bins 1, 2, 3, 6, each avg-pool -> conv1x1 -> BN -> ReLU (bin 1 included), upsampled
back and concatenated with the feature map, then a conv3x3 -> BN -> ReLU bottleneck,
a 1x1 head and bilinear upsampling to the input size (align_corners=True, as there).

Forward order of the 25 convs: 1 stem, 2-5 layer1, 6-10 layer2, 11-15 layer3,
16-20 layer4 (in each of layer2-4: block 0 conv1, conv2, downsample, block 1 conv1,
conv2), 21-24 pyramid bins, 25 bottleneck; the head is conv 26.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
from torch import nn
from torchvision.models.resnet import BasicBlock

from prrmse.core.errors import PrrmseError

ENCODER_NAME = "resnet18"
ENCODER_DEPTH = 5  # full depth: layer3 and layer4 must run (smp's PSPNet defaults to 3)
STEM_KEY = "conv1.weight"
STEM_BIAS_KEY = "conv1.bias"


class PyramidPooling(nn.Module):
    """hszhao/semseg's PPM: concat [x, bin 1, bin 2, ...] along channels."""

    def __init__(self, in_channels: int, bin_channels: int, bins: Sequence[int], bias: bool):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                OrderedDict(
                    pool=nn.AdaptiveAvgPool2d(size),
                    conv=nn.Conv2d(in_channels, bin_channels, kernel_size=1, bias=bias),
                    bn=nn.BatchNorm2d(bin_channels),
                    relu=nn.ReLU(inplace=True),
                )
            )
            for size in bins
        )
        self.out_channels = in_channels + len(bins) * bin_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(x), size=size, mode="bilinear", align_corners=True)
            for stage in self.stages
        ]
        return torch.cat([x, *pooled], dim=1)


class PSPDecoder(nn.Module):
    """Pyramid pooling on the deepest feature, then the conv3x3 bottleneck."""

    def __init__(
        self,
        in_channels: int,
        bin_channels: int,
        bins: Sequence[int],
        bottleneck_channels: int,
        bias: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.ppm = PyramidPooling(in_channels, bin_channels, bins, bias)
        self.bottleneck = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(self.ppm.out_channels, bottleneck_channels, 3, padding=1, bias=bias),
                bn=nn.BatchNorm2d(bottleneck_channels),
                relu=nn.ReLU(inplace=True),
                dropout=nn.Dropout2d(p=dropout),
            )
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.bottleneck(self.ppm(features[-1]))


class PSPNet(nn.Module):
    """`encoder` (smp ResNet-18, depth 5) -> `decoder` (PPM + bottleneck) -> `head` (1x1)."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: PSPDecoder,
        head: nn.Conv2d,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            # The bin-1 BN sees one value per channel per image: batch statistics need two.
            raise PrrmseError(
                "pspnet", f"training needs a batch of at least 2 images, got {x.shape[0]}"
            )
        logits = self.head(self.decoder(self.encoder(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


RESNET18_WIDTH = 64  # stem and layer1 channels of ResNet-18; layers 2-4 double each time


def resnet18_encoder(in_channels: int, width: int, output_stride: int) -> nn.Module:
    """smp's ResNet-18 encoder (depth 5); at `width` != 64, the same blocks at widths
    width, 2 width, 4 width, 8 width, initialised as torchvision initialises ResNet-18.

    torchvision hard-codes ResNet-18's widths, so a narrow encoder rebuilds the stem and
    the four layers with its own `_make_layer`: the module tree, the forward order and
    the layer counts are those of ResNet-18; only the channel counts shrink (the demo's
    CPU budget, as UNet's `width`).
    """
    if width == RESNET18_WIDTH:
        return smp.encoders.get_encoder(
            ENCODER_NAME,
            in_channels=in_channels,
            depth=ENCODER_DEPTH,
            weights=None,
            output_stride=output_stride,
        )
    widths = [width, 2 * width, 4 * width, 8 * width]
    encoder = ResNetEncoder(
        out_channels=[in_channels, width, *widths],
        depth=ENCODER_DEPTH,
        block=BasicBlock,
        layers=[2, 2, 2, 2],
    )
    encoder.inplanes, encoder.dilation = width, 1
    encoder.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
    encoder.bn1 = nn.BatchNorm2d(width)
    encoder.layer1 = encoder._make_layer(BasicBlock, widths[0], 2)
    encoder.layer2 = encoder._make_layer(BasicBlock, widths[1], 2, stride=2)
    encoder.layer3 = encoder._make_layer(BasicBlock, widths[2], 2, stride=2)
    encoder.layer4 = encoder._make_layer(BasicBlock, widths[3], 2, stride=2)
    for module in encoder.modules():  # torchvision ResNet's own initialisation
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    encoder._in_channels = in_channels
    if output_stride != 32:
        encoder.make_dilated(output_stride)
    return encoder


def build_pspnet(
    conv_bias: bool = False,
    ppm_channels: int | None = None,
    bottleneck_channels: int = 512,
    bins: Sequence[int] = (1, 2, 3, 6),
    dropout: float = 0.0,
    encoder_weights: str | Path | None = None,
    in_channels: int = 1,
    classes: int = 4,
    output_stride: int = 8,
    encoder_width: int = RESNET18_WIDTH,
) -> PSPNet:
    """The registry's `pspnet`; paper defaults (bin width 512 / 4 bins = 128, bottleneck 512).

    `conv_bias` (paper Table 2 "PSPNet-b") gives the stem, the bin convs and the
    bottleneck a bias; the ResNet's own convs never have one and the head always has.
    `encoder_weights` names a local safetensors file of the encoder's tensors; nothing
    is ever downloaded. `output_stride` 8 is the original PSPNet's dilated ResNet
    (layer3/4 keep their resolution and dilate instead; every conv still runs): at
    stride 32 a 64x64 slice reaches the pyramid as 2x2 pixels and nothing is learned.
    `encoder_width` is ResNet-18's stem width (64); smaller keeps every layer and narrows
    all of them in proportion (`resnet18_encoder`), for CPU-sized demos.
    """
    _check_options(in_channels, classes, bottleneck_channels, encoder_width, ppm_channels, bins)
    if output_stride not in (8, 16, 32):
        raise PrrmseError(
            "pspnet option output_stride", f"must be 8, 16 or 32, got {output_stride!r}"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise PrrmseError("pspnet option dropout", f"must be in [0, 1), got {dropout!r}")

    encoder = resnet18_encoder(in_channels, encoder_width, output_stride)
    encoder.conv1 = _grayscale_stem(encoder.conv1, in_channels, conv_bias)
    if encoder_weights is not None:
        load_encoder_weights(encoder, encoder_weights)

    deepest = encoder.out_channels[-1]
    decoder = PSPDecoder(
        in_channels=deepest,
        bin_channels=ppm_channels if ppm_channels is not None else deepest // len(bins),
        bins=bins,
        bottleneck_channels=bottleneck_channels,
        bias=conv_bias,
        dropout=dropout,
    )
    head = nn.Conv2d(bottleneck_channels, classes, kernel_size=1)
    return PSPNet(encoder, decoder, head)


def _check_options(
    in_channels: int,
    classes: int,
    bottleneck_channels: int,
    encoder_width: int,
    ppm_channels: int | None,
    bins: Sequence[int],
) -> None:
    """Every channel count and bin size a positive integer, and at least one bin."""
    ints = {
        "in_channels": in_channels,
        "classes": classes,
        "bottleneck_channels": bottleneck_channels,
        "encoder_width": encoder_width,
    }
    if ppm_channels is not None:
        ints["ppm_channels"] = ppm_channels
    for index, size in enumerate(bins):
        ints[f"bins[{index}]"] = size
    for key, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PrrmseError(f"pspnet option {key}", f"must be a positive integer, got {value!r}")
    if not bins:
        raise PrrmseError("pspnet option bins", "needs at least one bin size")


def _grayscale_stem(stem: nn.Conv2d, in_channels: int, bias: bool) -> nn.Conv2d:
    """A fresh stem for grayscale input; smp's patched stem never has a bias, PSPNet-b's does."""
    return nn.Conv2d(
        in_channels,
        stem.out_channels,
        kernel_size=stem.kernel_size,
        stride=stem.stride,
        padding=stem.padding,
        bias=bias,
    )


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Copy a local safetensors file into `encoder`, strictly by key and shape.

    Accepted on top of the encoder's own keys, because real weight files carry them:
    an `encoder.` prefix on every key, torchvision's `fc.*` classifier (dropped), an RGB
    stem (summed over its 3 input channels, as smp does for grayscale), and files without
    `num_batches_tracked` counters or without a stem bias (those keep their fresh values).
    """
    path = Path(path)
    if not path.is_file():
        raise PrrmseError(path, "encoder weights file not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise PrrmseError(path, f"not a readable safetensors file ({err})") from err
    if state and all(key.startswith("encoder.") for key in state):
        state = {key.removeprefix("encoder."): value for key, value in state.items()}
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}

    expected = encoder.state_dict()
    stem = state.get(STEM_KEY)
    wanted_in = expected[STEM_KEY].shape[1] if STEM_KEY in expected else None
    if stem is not None and stem.ndim == 4 and stem.shape[1] == 3 and wanted_in == 1:
        state[STEM_KEY] = stem.sum(dim=1, keepdim=True)

    optional = {key for key in expected if key.endswith("num_batches_tracked")} | {STEM_BIAS_KEY}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PrrmseError(
            path,
            f"keys do not match the {type(encoder).__name__} encoder: missing {_some(missing)}, "
            f"unexpected {_some(unexpected)}",
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise PrrmseError(
                path,
                f"{key} has shape {list(value.shape)}, the encoder needs {list(expected[key].shape)}",
            )
    encoder.load_state_dict(state, strict=False)


def _some(keys: list[str], shown: int = 5) -> str:
    """At most `shown` keys, so the error stays one readable line."""
    if not keys:
        return "none"
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
