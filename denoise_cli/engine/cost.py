"""Cost of a network: multiply-accumulates per pixel and parameters."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def macs_per_pixel(model: nn.Module, channels: int, size: int = 64, sigma: float = 0.1) -> float:
    """Multiply-accumulates of one ``forward(x, sigma)`` per input pixel, counted from the
    operators that run (convolutions, transposed or not, and matrix products), so layers called
    through ``torch.nn.functional`` count too; elementwise work is left out."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, channels, size, size), sigma)
    return counter.get_total_flops() / 2 / (size * size)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
