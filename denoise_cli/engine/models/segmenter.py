"""A small U-Net semantic segmenter: the frozen task network of the segmentation cascade.

Three scales (two 3x3 convolutions with batch norm and ReLU each), max-pooling down,
bilinear upsampling and concatenation up, and a 1x1 classifier per pixel.  Inputs are RGB in
[0, 1] of any size (padded to a multiple of 4 inside ``forward``); the output has one logit
map per class at the input's resolution.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .classifier import conv_bn_relu


@dataclass(frozen=True)
class SegmenterConfig:
    channels: int = 3  # image channels
    classes: int = 11
    widths: tuple[int, int, int] = (32, 64, 128)  # feature channels at full, 1/2 and 1/4 resolution

    @classmethod
    def from_dict(cls, options: dict) -> "SegmenterConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def _double(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(inputs, outputs), *conv_bn_relu(outputs, outputs))


@register("segmenter-unet", SegmenterConfig)
class UNetSegmenter(nn.Module):
    """``forward(x)``: ``x`` is ``[B, C, H, W]`` in [0, 1]; returns ``[B, classes, H, W]`` logits."""

    task = "segment"  # a task network, not a denoiser

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        super().__init__()
        self.config = config
        w1, w2, w3 = config.widths
        self.enc1 = _double(config.channels, w1)
        self.enc2 = _double(w1, w2)
        self.enc3 = _double(w2, w3)
        self.dec2 = _double(w3 + w2, w2)
        self.dec1 = _double(w2 + w1, w1)
        self.head = nn.Conv2d(w1, config.classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        x = F.pad((x - 0.5) / 0.25, (0, (-w) % 4, 0, (-h) % 4), mode="replicate")
        f1 = self.enc1(x)
        f2 = self.enc2(F.max_pool2d(f1, 2))
        f3 = self.enc3(F.max_pool2d(f2, 2))
        up = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([f2, up], dim=1))
        up = F.interpolate(d2, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([f1, up], dim=1))
        return self.head(d1)[:, :, :h, :w]
