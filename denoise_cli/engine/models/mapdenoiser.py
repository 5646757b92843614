"""The CNN MAP denoiser of Bigdeli, Honzatko, Suesstrunk & Dunbar (VISAPP 2020) and its auxiliary DAE.

Both networks are the same DnCNN-like plain stack (as in the authors' code): a 3x3 convolution
with bias and ReLU, ``depth - 2`` bias-free 3x3 convolutions with ReLU, a bias-free 3x3
convolution back to the image channels, and a global residual (output = input + stack(input)).
No batch normalisation, so the output of a pixel does not depend on the batch or on tiling.

:class:`MapDenoiserPair` holds both, so one weights file ships both:

* ``aux`` (R) is an MMSE denoiser for one noise level sigma_R; by Alain & Bengio,
  ``R(x) - x ~ sigma_R^2 grad log p_sigmaR(x)``, which is what trains D;
* ``map`` (D) approximates ``argmin_x -log p(x) + 1/(2 sigma_R^2) ||x - v||^2``: the MAP denoiser
  for noise sigma_R, i.e. the proximal step of ADMM with ``rho = 1 / sigma_R^2``.

Training is ``engine/training/map_denoiser.py``; deblurring with it is ``engine/algorithms/pnp.admm``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..registry import register


@dataclass(frozen=True)
class MapDenoiserConfig:
    """Architecture options; stored in checkpoints and the weights manifest."""

    channels: int = 3  # image channels: 1 (gray) or 3 (colour)
    depth: int = 17  # 3x3 convolution layers of each network
    width: int = 64  # feature channels
    sigma_r: float = 11.0  # noise level of R and of D's MAP problem, 0..255 scale (authors: 7 gray, 11 colour)

    @classmethod
    def from_dict(cls, options: dict) -> "MapDenoiserConfig":
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)


class PlainCNN(nn.Module):
    """``x + stack(x)`` for ``[B, C, H, W]`` images; see the module docstring for the stack."""

    def __init__(self, channels: int, depth: int, width: int) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                # He initialisation keeps activations at scale through a deep stack without
                # normalisation layers.
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        # The last layer starts at zero: both networks begin as the identity, where D's
        # fidelity term is already minimal and R's loss is the noise variance.
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register("map-denoiser", MapDenoiserConfig)
class MapDenoiserPair(nn.Module):
    """The MAP denoiser D (``map``) with the auxiliary DAE R (``aux``) it was trained against.

    ``forward(x, sigma)`` returns ``D(x)`` for ``x`` ``[B, C, H, W]`` in [0, 1].  ``sigma`` is
    accepted for the denoiser contract of ``ARCHITECTURE.md`` and ignored: D is one MAP step for
    the fixed noise level ``config.sigma_r`` (``rho = 1 / sigma_R^2``), not a noise-conditional
    denoiser, and asking it for another level cannot change what it computes.
    With ``aux_input`` it returns ``(D(x), R(aux_input))``: training needs both networks in one
    call, so that DistributedDataParallel sees every parameter take part in the forward pass.
    """

    image_denoiser = True  # dncli denoise and deblur may run it

    size_multiple = 1  # no strides: outputs are equivariant to every shift

    def __init__(self, config: MapDenoiserConfig = MapDenoiserConfig()) -> None:
        super().__init__()
        if config.sigma_r <= 0:
            raise ValueError(f"sigma_r must be positive, got {config.sigma_r}")
        self.config = config
        self.map = PlainCNN(config.channels, config.depth, config.width)
        self.aux = PlainCNN(config.channels, config.depth, config.width)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that influence an output pixel: one per 3x3 layer."""
        return self.config.depth

    @property
    def rho(self) -> float:
        """The ADMM penalty D was trained for: ``1 / sigma_R^2``, sigma_R on the [0, 1] scale."""
        return (255.0 / self.config.sigma_r) ** 2

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None,
                aux_input: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if aux_input is None:
            return self.map(x)
        return self.map(x), self.aux(aux_input)
