"""Tiled application of an image-to-image network with bounded memory and no seams.

Tiles overlap by ``2 * margin + ramp`` pixels.  Each tile's output is weighted by a
separable profile that is zero within ``margin`` pixels of an interior tile edge, rises
linearly over ``ramp`` pixels and is one in the core; neighbouring profiles sum to one.
When ``margin`` is at least the network's receptive radius, every weighted pixel was computed
from exactly the input the untiled network would have seen, so the tiled result equals the
untiled one up to float rounding; with a smaller margin the ramps still hide the seams.
Tile origins are multiples of ``multiple`` so strided networks see the same sampling phase.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Network = Callable[[torch.Tensor], torch.Tensor]


def _starts(length: int, window: int, step: int, multiple: int) -> list[int]:
    """Window origins, ``step`` apart, until a window reaches the image edge (see ``tile_plan``)."""
    starts = [0]
    while starts[-1] + window < length - multiple:
        starts.append(min(starts[-1] + step, (length - window) // multiple * multiple))
    return starts


def _profile(start: int, stop: int, length: int, margin: int, ramp: int,
             device: torch.device) -> torch.Tensor:
    """Blending weights along one axis for a tile covering [start, stop) of [0, length)."""
    position = torch.arange(start, stop, device=device, dtype=torch.float32)
    weight = torch.ones_like(position)
    if start > 0:
        weight = torch.minimum(weight, ((position - start - margin + 1) / (ramp + 1)).clamp(0, 1))
    if stop < length:
        weight = torch.minimum(weight, ((stop - margin - position) / (ramp + 1)).clamp(0, 1))
    return weight


def default_ramp(margin: int, multiple: int) -> int:
    return max(multiple, margin // 2)


def overlap(margin: int, multiple: int, ramp: int | None = None) -> int:
    """Pixels shared by neighbouring tiles: a margin on each side plus the blending ramp."""
    return 2 * margin + (default_ramp(margin, multiple) if ramp is None else ramp)


def _window(length: int, tile: int, shared: int, multiple: int) -> int:
    """The window side along an axis: as few windows as ``tile`` allows, each as small as that
    count permits, so that the windows overlap by little more than ``shared``."""
    if length <= tile:
        return tile
    count = math.ceil((length - shared) / (tile - shared))
    side = math.ceil((length + (count - 1) * shared) / count)
    return min(tile, math.ceil(side / multiple) * multiple + multiple)


def tile_plan(height: int, width: int, tile: int, margin: int, multiple: int = 1,
              ramp: int | None = None) -> list[tuple[int, int, int, int]]:
    """``(top, bottom, left, right)`` windows covering the image; ``tile`` is the largest
    window side."""
    shared = overlap(margin, multiple, ramp)
    if (tile - shared) // multiple <= 0:
        raise ValueError(f"tile size {tile} is too small for an overlap of {shared} pixels")

    def spans(length: int) -> list[tuple[int, int]]:
        window = _window(length, tile, shared, multiple)
        step = (window - shared) // multiple * multiple
        # the last window runs to the image edge, so it sees the same border as the whole image
        return [(start, length if start + window >= length - multiple else start + window)
                for start in _starts(length, window, step, multiple)]

    return [(top, bottom, left, right) for top, bottom in spans(height) for left, right in spans(width)]


def apply_tiled(network: Network, x: torch.Tensor, tile: int, margin: int,
                multiple: int = 1, ramp: int | None = None) -> torch.Tensor:
    """``network(x)`` computed tile by tile; ``x`` is ``[B, C, H, W]``, the output the same size.

    ``tile`` is the window side in pixels, ``margin`` the context each window carries past the
    pixels it contributes (use the network's receptive radius), ``multiple`` the alignment of
    window origins (4 for a network with two stride-2 stages).
    """
    _, _, height, width = x.shape
    if height <= tile and width <= tile:
        return network(x)
    ramp = default_ramp(margin, multiple) if ramp is None else ramp
    out: torch.Tensor | None = None
    total = torch.zeros(1, 1, height, width, device=x.device)
    for top, bottom, left, right in tile_plan(height, width, tile, margin, multiple, ramp):
        piece = network(x[:, :, top:bottom, left:right]).float()
        if out is None:
            out = torch.zeros(x.shape[0], piece.shape[1], height, width, device=x.device)
        weight = (_profile(top, bottom, height, margin, ramp, x.device)[:, None]
                  * _profile(left, right, width, margin, ramp, x.device)[None, :])
        out[:, :, top:bottom, left:right] += piece * weight
        total[:, :, top:bottom, left:right] += weight
    return out / total
