"""Running a conditional image network on images: device, precision, tiling, batching."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import device as devices
from .geometry import dihedral_mean
from .tiling import apply_tiled, overlap

# Peak bytes per pixel of a float32 forward pass of the shipped denoisers, measured with
# benchmarks/denoise.py (about 1.1 kB at 4 megapixels) and rounded up for safety; a model may
# declare its own with a ``bytes_per_pixel`` attribute.
BYTES_PER_PIXEL = 2048
MAX_AUTO_TILE = 2048
# On the CPU a forward pass over more than about a megapixel runs slower per pixel (0.45 MP/s
# at 1 MP, 0.40 at 1.6 MP, 0.12 at 4 MP for unet3 on 2 cores), more than the tiles' overlap costs.
MAX_AUTO_TILE_CPU = 1152
MIN_CORE = 64  # pixels each tile contributes beyond its overlap with the neighbours


@dataclass
class Runner:
    """Applies ``model(x, sigma)`` to ``[B, H, W, C]`` float32 arrays (``__call__``) or to
    ``[B, C, H, W]`` tensors (``apply``).

    ``tile`` is the tile side in pixels, or ``None`` to choose it from free memory;
    ``precision`` is ``fp32``, ``bf16`` (CUDA or CPU) or ``fp16`` (CUDA only; float32 elsewhere);
    ``ensemble`` averages the model over the 8 flips and quarter turns of each tile
    (``dihedral_mean``): 8 times the compute for a slightly better estimate.
    """

    model: nn.Module
    device: torch.device
    precision: str = "fp32"
    tile: int | None = None
    ensemble: bool = False

    def __post_init__(self) -> None:
        self.model.to(self.device, memory_format=torch.channels_last).eval()
        self.margin = int(getattr(self.model, "receptive_radius", 32))
        self.multiple = int(getattr(self.model, "size_multiple", 1))

    def tile_size(self, batch: int) -> int:
        """The requested tile, or one that fits a quarter of free memory; never smaller than
        the overlap that keeps tiles exact plus ``MIN_CORE``."""
        smallest = overlap(self.margin, self.multiple) + MIN_CORE
        if self.tile is not None:
            return max(self.tile, smallest)
        budget = devices.free_memory_bytes(self.device) // 4
        per_pixel = int(getattr(self.model, "bytes_per_pixel", BYTES_PER_PIXEL))
        side = int((budget / (per_pixel * max(1, batch))) ** 0.5)
        largest = MAX_AUTO_TILE_CPU if self.device.type == "cpu" else MAX_AUTO_TILE
        return max(smallest, min(largest, side // self.multiple * self.multiple))

    @torch.no_grad()
    def __call__(self, images: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
        """``images`` ``[B, H, W, C]``; ``sigma`` on the [0, 1] scale, a float or one per image."""
        return self.apply(self._tensor(images), sigma).permute(0, 2, 3, 1).cpu().numpy()

    @torch.no_grad()
    def apply(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """The model on a ``[B, C, H, W]`` tensor on ``device``, in exact tiles; float32 result.

        Any model serves any image (see ``_model_planes``): a gray model denoises a colour image
        plane by plane, and of a gray image seen as RGB by a colour model the mean is kept.
        ``sigma`` is on the [0, 1] scale, a float or one per image.  This is the
        ``denoiser(x, sigma)`` of the plug-and-play solvers.
        """
        batch, channels, height, width = x.shape
        levels = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(batch)
        planes = self._model_planes(x)
        out = self._tiled(planes, levels.repeat_interleave(planes.shape[0] // batch))
        out = out.reshape(batch, -1, height, width)
        return out if out.shape[1] == channels else out.mean(dim=1, keepdim=True)

    @torch.no_grad()
    def own_sigma(self, images: np.ndarray) -> np.ndarray:
        """The noise level a model that estimates it itself (``model.estimates_sigma``) gives each
        of the ``[B, H, W, C]`` images, on the [0, 1] scale; a gray model on a colour image
        gives the mean of its planes' levels.

        The model's per-pixel estimate (``noise_logits``) is computed tile by tile with its own
        receptive radius as the margin, so it is exact, and averaged over the whole image before
        ``sigma_from_logit``: tiling does not change the level.
        """
        x = self._model_planes(self._tensor(images)).contiguous(memory_format=torch.channels_last)

        def logits(window: torch.Tensor) -> torch.Tensor:
            with devices.autocast(self.device, self.precision):
                return self.model.noise_logits(window).float()

        per_pixel = apply_tiled(logits, x, self.tile_size(x.shape[0]), int(self.model.noise_radius))
        levels = self.model.sigma_from_logit(per_pixel.mean(dim=(1, 2, 3)))
        return levels.reshape(len(images), -1).mean(dim=1).cpu().numpy()

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        """``[B, H, W, C]`` arrays as a ``[B, C, H, W]`` tensor on ``device``."""
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)

    def _model_planes(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` as the model takes it: for a gray model a colour image becomes C gray
        images (``[B * C, 1, H, W]``), for a colour model a gray image becomes RGB."""
        batch, channels, height, width = x.shape
        model_channels = self.model.config.channels
        if channels == model_channels:
            return x
        if model_channels == 1:
            return x.reshape(batch * channels, 1, height, width)
        return x.expand(batch, model_channels, height, width)

    def _tiled(self, x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        def network(window: torch.Tensor) -> torch.Tensor:
            with devices.autocast(self.device, self.precision):
                return self.model(window, levels)

        def ensemble(window: torch.Tensor) -> torch.Tensor:
            return dihedral_mean(network, window, self.multiple)

        x = x.contiguous(memory_format=torch.channels_last)
        return apply_tiled(ensemble if self.ensemble else network, x, self.tile_size(x.shape[0]),
                           self.margin, self.multiple).float()

