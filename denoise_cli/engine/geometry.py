"""The image-axis geometry networks share: padding to a stride multiple, and the 8 flips and
quarter turns (the dihedral group) that self-ensembles average over."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """``[..., H, W]`` padded at the bottom and right to multiples of ``multiple``; ``reflect``
    falls back to ``replicate`` for an image too small to reflect."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not (pad_h or pad_w):
        return x
    if mode == "reflect" and not (height > pad_h and width > pad_w):
        mode = "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """The ``index``-th (0..7) of the 8 flips and quarter turns of the image axes; 0 is the identity."""
    x = torch.rot90(x, index % 4, dims=(-2, -1))
    return x.flip(-1) if index >= 4 else x


def undo_dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`."""
    if index >= 4:
        x = x.flip(-1)
    return torch.rot90(x, -(index % 4), dims=(-2, -1))


def dihedral_mean(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  multiple: int = 1) -> torch.Tensor:
    """The mean of ``network`` over the 8 flips and quarter turns of ``[B, C, H, W]`` ``x``, each
    output turned back ("self-ensemble", float32).

    For a network with stride-``multiple`` stages, ``x`` is first padded to a multiple of
    ``multiple`` as the network pads itself (:func:`pad_to_multiple`), so that every transform
    keeps the pixels' sampling phase: a tile's ensemble then equals the whole image's, and tiling
    stays exact.
    """
    height, width = x.shape[-2:]
    x = pad_to_multiple(x, multiple)

    def turned_back(index: int) -> torch.Tensor:
        view = dihedral(x, index).contiguous(memory_format=torch.channels_last)
        return undo_dihedral(network(view), index).float()

    return (sum(turned_back(index) for index in range(8)) / 8)[..., :height, :width]
