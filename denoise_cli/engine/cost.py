"""Cost of a network counted from its layer shapes: multiply-accumulates per pixel and parameters."""
from __future__ import annotations

import torch
from torch import nn


def macs_per_pixel(model: nn.Module, channels: int, size: int = 64, sigma: float = 0.1) -> float:
    """Multiply-accumulates of one ``forward(x, sigma)`` per input pixel (convolutions only)."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight
        if isinstance(module, nn.ConvTranspose2d):
            # every input element is scattered through out_channels/groups x kH x kW taps
            taps = weight.shape[1] * weight.shape[2] * weight.shape[3]
            total += inputs[0][0].numel() * taps
        else:
            taps = weight.shape[1] * weight.shape[2] * weight.shape[3]
            total += output[0].numel() * taps

    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    hooks = [m.register_forward_hook(count) for m in convs]
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size), sigma)
    finally:
        for hook in hooks:
            hook.remove()
    return total / (size * size)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
