"""The classic UNet the paper used: milesial/Pytorch-UNet as of Dec 2019 (commit 2dceff8).

Pinned to that commit because later versions changed the tensors the paper compares:
from Dec 2021 (514f18e) the 3x3 convs lose their bias, and from Mar 2020 (07debeb)
the bilinear decoder gains a `mid_channels` squeeze. Here every 3x3 conv has a bias,
the two convs of an up block both output the block's width, and the module names are
the 2019 ones (`inc`, `down1`..`down4`, `up1`..`up4`, `outc`), so a 2019 state_dict
loads as is. Counts: 9 double convs = 18 conv3x3 + 18 BN, plus the 1x1 head `outc.conv`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prrmse.core.errors import PrrmseError


class DoubleConv(nn.Module):
    """(conv3x3 with bias -> BN -> ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Halve the resolution with a 2x2 max-pool, then a double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear x2 upsampling, pad to the skip's size, concat [skip, up], double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # align_corners=True as in the 2019 repo: it changes the interpolated values.
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # Odd sizes lose a pixel on the way down; pad the upsampled map back to the skip's.
        diff_y = skip.shape[2] - x.shape[2]
        diff_x = skip.shape[3] - x.shape[3]
        x = F.pad(x, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """The 1x1 prediction head (with bias)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """UNet with widths w, 2w, 4w, 8w, 8w (paper: w = 64) and bilinear upsampling.

    Encoder: `inc`, `down1`..`down4`; decoder: `up1`..`up4`; head: `outc`.
    In bilinear mode the bottom block keeps 8w channels (not 16w) and each up block
    outputs half its concatenated input, as in the 2019 repo:
    up1 16w -> 4w, up2 8w -> 2w, up3 4w -> w, up4 2w -> w.
    """

    def __init__(self, in_channels: int = 1, classes: int = 4, width: int = 64) -> None:
        super().__init__()
        w = width
        self.inc = DoubleConv(in_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 8 * w)
        self.up1 = Up(16 * w, 4 * w)
        self.up2 = Up(8 * w, 2 * w)
        self.up3 = Up(4 * w, w)
        self.up4 = Up(2 * w, w)
        self.outc = OutConv(w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def build_unet(in_channels: int = 1, classes: int = 4, width: int = 64) -> UNet:
    """The registry's `unet`: the paper's network at width `width` (64 in the paper)."""
    for key, value in {"in_channels": in_channels, "classes": classes, "width": width}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PrrmseError(f"unet option {key}", f"must be a positive integer, got {value!r}")
    return UNet(in_channels=in_channels, classes=classes, width=width)
