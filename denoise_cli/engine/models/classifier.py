"""A small VGG-style image classifier: the frozen task network of the classification cascade.

Three stages of two 3x3 convolutions (batch norm, ReLU), each stage but the last followed by
2x2 max pooling, then global average pooling and a linear layer.  Any input size works, so the
same network classifies 32x32 CIFAR images and larger crops.  Inputs are RGB (or gray) in
[0, 1]; the network normalises them itself, so a denoiser in front of it needs no glue.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register


@dataclass(frozen=True)
class ClassifierConfig:
    channels: int = 3  # image channels
    classes: int = 10
    widths: tuple[int, int, int] = (32, 64, 128)  # feature channels of the three stages

    @classmethod
    def from_dict(cls, options: dict) -> "ClassifierConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn_relu(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]


@register("classifier-cnn", ClassifierConfig)
class ConvClassifier(nn.Module):
    """``forward(x)``: ``x`` is ``[B, C, H, W]`` in [0, 1]; returns ``[B, classes]`` logits."""

    task = "classify"  # a task network, not a denoiser

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        previous = config.channels
        for stage, width in enumerate(config.widths):
            layers += conv_bn_relu(previous, width) + conv_bn_relu(width, width)
            if stage < len(config.widths) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(previous, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(self.features((x - 0.5) / 0.25), 1).flatten(1)
        return self.head(self.dropout(pooled))
