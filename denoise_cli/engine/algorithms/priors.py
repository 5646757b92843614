"""A trained network as the ``denoiser(x, sigma)`` callable of the plug-and-play solvers."""
from __future__ import annotations

import torch
from torch import nn

from .. import device as devices
from ..inference import Runner
from ..tiling import apply_tiled


class NetworkDenoiser:
    """Calls ``model(x, sigma)`` on ``[B, C, H, W]`` tensors already on ``device``.

    Large images are denoised in exact overlapping tiles chosen from free memory (or of side
    ``tile`` px), under the autocast of ``precision`` (``fp32``, ``fp16``, ``bf16``; CUDA only
    for the last two); the result is float32.  A gray model denoises colour images plane by
    plane and a colour model sees a gray image as RGB (the mean of its output is kept), so any
    model serves any image.  ``sigma`` is on the [0, 1] scale, a float or one per image.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32",
                 tile: int | None = None) -> None:
        self.runner = Runner(model, device, precision, tile)
        self.channels = int(model.config.channels)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        levels = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(batch)
        if channels == self.channels:
            return self._apply(x, levels)
        if self.channels == 1:
            planes = x.reshape(batch * channels, 1, height, width)
            return self._apply(planes, levels.repeat_interleave(channels)).reshape(x.shape)
        rgb = x.expand(batch, self.channels, height, width)
        return self._apply(rgb, levels).mean(dim=1, keepdim=True)

    def _apply(self, x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        runner = self.runner

        def network(window: torch.Tensor) -> torch.Tensor:
            with devices.autocast(runner.device, runner.precision):
                return runner.model(window, levels)

        x = x.contiguous(memory_format=torch.channels_last)
        return apply_tiled(network, x, runner.tile_size(x.shape[0]), runner.margin, runner.multiple).float()
