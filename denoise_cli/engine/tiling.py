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

from typing import Callable

import torch

Network = Callable[[torch.Tensor], torch.Tensor]


def _starts(length: int, tile: int, step: int, multiple: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    last = (length - tile) // multiple * multiple
    if last > starts[-1]:
        starts.append(last)
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


def tile_plan(height: int, width: int, tile: int, margin: int, multiple: int = 1,
              ramp: int | None = None) -> list[tuple[int, int, int, int]]:
    """``(top, bottom, left, right)`` windows covering the image; tile is the window side."""
    shared = overlap(margin, multiple, ramp)
    step = (tile - shared) // multiple * multiple
    if step <= 0:
        raise ValueError(f"tile size {tile} is too small for an overlap of {shared} pixels")
    rows = _starts(height, tile, step, multiple)
    cols = _starts(width, tile, step, multiple)

    def end(start: int, length: int) -> int:
        # the last window runs to the image edge, so it sees the same border as the whole image
        return length if start + tile >= length - multiple else start + tile

    return [(r, end(r, height), c, end(c, width)) for r in rows for c in cols]


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
