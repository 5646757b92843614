"""Pictures as arrays, with numpy alone: 2-D density maps, sample histograms, image grids.

Every function returns float32 ``[H, W, C]`` pixels in [0, 1], ready for
``imgio.codec.write_image``; nothing here needs a plotting library.  2-D panels show the square
``[-extent, extent]^2`` with x to the right and y upwards.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

# Anchors of a perceptually ordered ramp from black through violet and orange to pale yellow
# (chosen by hand: dark for empty space, so sparse structure stands out).
_RAMP = np.array([[0.0, 0.0, 0.02], [0.23, 0.06, 0.43], [0.62, 0.15, 0.47], [0.93, 0.38, 0.2], [0.99, 0.94, 0.65]],
                 dtype=np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map ``values`` (any shape, clipped to [0, 1]) through the ramp; adds a last axis of 3."""
    position = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.minimum(position.astype(int), len(_RAMP) - 2)
    frac = (position - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.float32)


def grid_points(extent: float, pixels: int) -> torch.Tensor:
    """Pixel centres ``[pixels^2, 2]`` of the panel in row-major order (top row first)."""
    centres = (np.arange(pixels) + 0.5) / pixels * 2 * extent - extent
    x, y = np.meshgrid(centres, centres[::-1])
    return torch.from_numpy(np.stack([x.ravel(), y.ravel()], 1).astype(np.float32))


def density_panel(log_density: Callable[[torch.Tensor], torch.Tensor], extent: float, pixels: int = 256
                  ) -> np.ndarray:
    """The density ``exp(log_density)`` over the panel, scaled so its maximum is white."""
    values = log_density(grid_points(extent, pixels)).double().cpu().numpy().reshape(pixels, pixels)
    finite = values[np.isfinite(values)]
    top = finite.max() if finite.size else 0.0
    density = np.exp(np.where(np.isfinite(values), values - top, -np.inf))
    return colorize(density)


def histogram_panel(points: torch.Tensor | np.ndarray, extent: float, pixels: int = 256) -> np.ndarray:
    """A 2-D histogram of ``points`` ``[N, 2]`` (square-root scaled, so sparse tails still show)."""
    points = np.asarray(points, dtype=np.float64)
    edges = np.linspace(-extent, extent, pixels + 1)
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=(edges, edges))
    counts = np.sqrt(counts[::-1])  # row 0 is the top of the panel: the largest y
    return colorize(counts / max(counts.max(), 1e-12))


def side_by_side(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Panels of equal height in a row, separated by ``gap`` white columns."""
    height, channels = panels[0].shape[0], panels[0].shape[2]
    spacer = np.ones((height, gap, channels), dtype=np.float32)
    parts = [part for panel in panels for part in (spacer, panel)][1:]
    return np.concatenate(parts, axis=1)


def image_grid(images: torch.Tensor | np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """``images`` ``[N, C, H, W]`` in [0, 1] tiled in rows of ``columns`` (default: about square),
    separated by ``pad`` black pixels; returns ``[rows*(H+pad)-pad, columns*(W+pad)-pad, C]``."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    n, c, h, w = images.shape
    columns = max(1, min(n, columns or math.ceil(math.sqrt(n))))
    rows = math.ceil(n / columns)
    out = np.zeros((rows * (h + pad) - pad, columns * (w + pad) - pad, c), dtype=np.float32)
    for index, image in enumerate(images):
        top, left = (index // columns) * (h + pad), (index % columns) * (w + pad)
        out[top: top + h, left: left + w] = image.transpose(1, 2, 0)
    return out
