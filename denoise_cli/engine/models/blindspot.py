"""Dilated blind-spot network (Honzátko et al., SDS 2020) with the Gaussian head of Laine et al. (2019).

A blind-spot network predicts each pixel from its neighbours only, so it can be trained on
noisy images alone: with noise that is independent between pixels and has zero mean, copying
the input is no solution.  The hole comes from dilations, in one fully convolutional pass:

* a trunk of 3x3 convolutions; trunk stage ``c`` (``c = 0`` is the input stream) sees a
  neighbourhood of radius ``c``;
* after every stage a *blind-spot* 3x3 convolution with dilation ``c + 1``, whose centre tap
  is structurally zero.  Its eight taps sit ``c + 1`` pixels away on at least one axis, farther
  than the stage's radius ``c``, so branch ``c`` covers the square of radius ``2c + 1`` minus
  exactly the centre pixel;
* the branches are concatenated and mixed by 1x1 convolutions only: anything that mixed
  positions after the concatenation would refill the hole.

The head outputs, per pixel, the mean ``mu`` of a Gaussian prior on the clean value given the
neighbourhood and an upper-triangular factor ``A`` of its covariance, ``Sigma_x = A^T A`` (1
entry for gray, 6 for colour), as in Laine et al.  With Gaussian noise of covariance
``Sigma_n = sigma^2 I`` the pixel's own noisy value ``y`` is then folded back in by the
posterior mean ``x_hat = mu + Sigma_x (Sigma_x + Sigma_n)^-1 (y - mu)``, which equals
``(Sigma_x^-1 + Sigma_n^-1)^-1 (Sigma_x^-1 mu + Sigma_n^-1 y)`` but never inverts
``Sigma_x`` (which may be singular).  Gray: ``x_hat = (y a^2 + mu sigma^2) / (a^2 + sigma^2)``.

Noise level: ``known`` (the caller gives sigma), ``global`` (one learned scalar for the data
set) or ``per-image`` (a small ordinary CNN whose output, averaged over the image, is the
level).  Learned levels are ``softplus(s - 4) + 1e-3`` on the [0, 1] scale, so they stay
positive and start near 0.019 (about 5 on the 0..255 scale).

Two layouts, chosen by ``BlindSpotConfig.preset``: ``figure`` (the paper's figure: 1x1 lift to
128 channels, 10 trunk convolutions of 128 channels with a residual addition every two, 11
branches of 64 channels, head 704->384->192->96->out) and ``code`` (the authors' released
``architecture.py``: no lift, so branch 0 reads the image, no residual additions, 11 branches
of 18 channels, head 198->198->99->99->out).  LeakyReLU(0.1) follows every convolution but
the last; padding is zero 'same' padding, which keeps the hole (it adds constants, not pixels).
With ``blind=False`` the branches are ordinary dilated convolutions: the same network without the
hole, for the Noise2Void-style masked-training baseline; it outputs its mean.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from .unet3 import sigma_map

NOISE_MODES = ("known", "global", "per-image")
# Learned noise levels: softplus(s - SHIFT) + FLOOR on the [0, 1] scale (Laine et al.'s choice).
SIGMA_SHIFT = 4.0
SIGMA_FLOOR = 1e-3
# Smallest pivot of the per-pixel Cholesky factorisation (variance in [0, 1]^2 units, far below
# one 8-bit step, (1/255)^2 = 1.5e-5): sigma = 0 with a singular Sigma_x stays finite, and any
# sigma >= 1e-3 (every learned level) never reaches it, so the likelihood is not biased.
PIVOT_FLOOR = 1e-12

PRESETS: dict[str, dict] = {
    "figure": {"trunk_width": 128, "branch_width": 64, "head_widths": (384, 192, 96),
               "lift": True, "residual": True},
    "code": {"trunk_width": 128, "branch_width": 18, "head_widths": (198, 99, 99),
             "lift": False, "residual": False},
}


@dataclass(frozen=True)
class BlindSpotConfig:
    """Architecture options; stored in checkpoints and weights files.  Defaults: ``figure``."""

    channels: int = 3  # image channels: 1 (gray) or 3 (colour)
    trunk_depth: int = 10  # 3x3 trunk convolutions; the receptive radius is 2 * depth + 1
    trunk_width: int = 128  # channels of every trunk stage
    branch_width: int = 64  # output channels of each of the trunk_depth + 1 blind-spot branches
    head_widths: tuple[int, ...] = (384, 192, 96)  # hidden 1x1 layers after the concatenation
    lift: bool = True  # a 1x1 convolution from the image to trunk_width before the trunk
    residual: bool = True  # add stage c - 2 to every even stage c >= 2 (needs lift)
    negative_slope: float = 0.1  # of the LeakyReLU after every convolution but the last
    noise: str = "known"  # known, global or per-image
    noise_widths: tuple[int, ...] = (32, 32, 32)  # 3x3 convolutions of the per-image estimator
    posterior: bool = True  # forward() returns the posterior mean (else the blind-spot mean mu)
    # False: the branches are ordinary dilated convolutions that also see the centre pixel, the
    # same network for Noise2Void-style masked training; it outputs its mean, never a posterior.
    blind: bool = True

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {', '.join(NOISE_MODES)}, not {self.noise!r}")
        if self.trunk_depth < 0 or min(self.trunk_width, self.branch_width, *self.head_widths, 1) < 1:
            raise ValueError("depths must be >= 0 and widths >= 1")
        if self.residual and not self.lift:
            raise ValueError("residual additions need the lift (stage 0 must have trunk_width channels)")
        if self.noise == "per-image" and not self.noise_widths:
            raise ValueError("the per-image noise estimator needs at least one layer")
        if not self.blind and self.noise != "known":
            raise ValueError("a network without the blind spot has no noise model: its noise must be 'known'")

    @classmethod
    def preset(cls, arch: str, **overrides: object) -> "BlindSpotConfig":
        """The ``figure`` or ``code`` layout, with any field replaced by ``overrides``."""
        if arch not in PRESETS:
            raise ValueError(f"unknown blind-spot layout {arch!r} (choose from {', '.join(PRESETS)})")
        return cls.from_dict({**PRESETS[arch], **overrides})

    @classmethod
    def from_dict(cls, options: dict) -> "BlindSpotConfig":
        tuples = {f.name for f in fields(cls) if f.name.endswith("widths")}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in options.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def factor_entries(self) -> int:
        """Entries of the upper-triangular covariance factor: 1 (gray) or 6 (colour)."""
        return self.channels * (self.channels + 1) // 2


class BlindSpotConv2d(nn.Conv2d):
    """A 3x3 convolution whose centre tap is zero by construction.

    The kernel is multiplied by a fixed mask in every forward pass, so the stored centre weight
    never contributes (whatever its value) and its gradient is exactly zero; ``dilation`` also
    sets the 'same' padding.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        mask = torch.ones(1, 1, 3, 3)
        mask[..., 1, 1] = 0.0
        self.register_buffer("mask", mask, persistent=False)  # not a weight: rebuilt, never saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class _DilatedConv2d(nn.Conv2d):
    """The ordinary 3x3 convolution in a branch's place when the network has no blind spot."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=dilation, dilation=dilation)


class BlindSpotOutput(NamedTuple):
    """What the likelihood needs: prior ``mean`` ``[B, C, H, W]``, covariance ``factor``
    ``[B, C(C+1)/2, H, W]`` (upper triangle of ``A``, row by row) and the noise standard
    deviation ``sigma`` on the [0, 1] scale, broadcastable to ``[B, 1, H, W]``."""

    mean: torch.Tensor
    factor: torch.Tensor
    sigma: torch.Tensor


@register("blindspot", BlindSpotConfig)
class BlindSpot(nn.Module):
    """Self-supervised blind-spot denoiser with a Gaussian prior head.

    ``forward(x, sigma=None)``: ``x`` is ``[B, C, H, W]`` on the [0, 1] scale (unclipped noisy
    values are fine); ``sigma`` is the noise standard deviation on the [0, 1] scale, a float, a
    ``[B]`` tensor or a ``[B, 1, H, W]`` map.  A ``known``-noise model needs it; a model that
    learned the level uses the given one when there is one, else its own estimate.
    """

    image_denoiser = True  # dncli denoise and deblur may run it

    size_multiple = 1  # no strides: outputs shift with the input pixel by pixel

    def __init__(self, config: BlindSpotConfig = BlindSpotConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.act = nn.LeakyReLU(c.negative_slope)
        self.lift = nn.Conv2d(c.channels, c.trunk_width, 1) if c.lift else None
        stage0 = c.trunk_width if c.lift else c.channels
        self.trunk = nn.ModuleList(
            nn.Conv2d(stage0 if i == 0 else c.trunk_width, c.trunk_width, 3, padding=1)
            for i in range(c.trunk_depth))
        branch = BlindSpotConv2d if c.blind else _DilatedConv2d
        self.branches = nn.ModuleList(
            branch(stage0 if i == 0 else c.trunk_width, c.branch_width, dilation=i + 1)
            for i in range(c.trunk_depth + 1))
        widths = [c.branch_width * (c.trunk_depth + 1), *c.head_widths, c.channels + c.factor_entries]
        self.head = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(widths[:-1], widths[1:]))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He initialisation for the LeakyReLU keeps the activations' scale through the
                # trunk; torch's default shrinks their variance several-fold per layer.
                nn.init.kaiming_normal_(module.weight, a=c.negative_slope, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

        self.noise_logit: nn.Parameter | None = None
        self.noise_net: nn.Sequential | None = None
        if c.noise == "global":
            self.noise_logit = nn.Parameter(torch.zeros(1))
        elif c.noise == "per-image":
            layers: list[nn.Module] = []
            previous = c.channels
            for width in c.noise_widths:
                layers += [nn.Conv2d(previous, width, 3, padding=1), nn.LeakyReLU(c.negative_slope)]
                previous = width
            last = nn.Conv2d(previous, 1, 1)
            # Zero output at the start: every image begins at the same small level, and the
            # estimator learns to tell levels apart from there (Laine et al.'s 'zero_last').
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.noise_net = nn.Sequential(*layers, last)

    # --- geometry the engine's tiling relies on -------------------------------------------

    @property
    def receptive_radius(self) -> int:
        """Exact radius (pixels) of the neighbourhood an output pixel depends on, sigma given:
        branch ``c`` reaches ``c + (c + 1)``, the deepest is ``c = trunk_depth``."""
        return 2 * self.config.trunk_depth + 1

    @property
    def bytes_per_pixel(self) -> int:
        """Peak float32 memory of a forward pass per pixel (bytes), for choosing tile sizes:
        the concatenated branches twice (pieces and result) plus three trunk stages, plus a
        quarter for the head and the posterior step."""
        c = self.config
        concatenated = c.branch_width * (c.trunk_depth + 1)
        return int(4 * (2 * concatenated + 3 * c.trunk_width) * 1.25)

    @property
    def estimates_sigma(self) -> bool:
        """True when the model learned the noise level itself (``global`` or ``per-image``)."""
        return self.config.noise != "known"

    @property
    def noise_radius(self) -> int:
        """Receptive radius of :meth:`noise_logits` (0 for a global level)."""
        return len(self.config.noise_widths) if self.config.noise == "per-image" else 0

    # --- the network ----------------------------------------------------------------------

    def prior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Blind-spot prior: ``mean`` ``[B, C, H, W]`` and factor ``[B, C(C+1)/2, H, W]``;
        neither depends on the input pixel at the same position."""
        stage = self.act(self.lift(x)) if self.lift is not None else x
        # Each branch runs as soon as its stage exists and only two stages are kept (for the
        # residual), so peak memory is the concatenation, not every stage of the trunk.
        branch_outputs = [self.act(self.branches[0](stage))]
        two_back: torch.Tensor | None = None
        for depth, conv in enumerate(self.trunk, start=1):
            new = self.act(conv(stage))
            if self.config.residual and depth % 2 == 0:
                new = new + two_back
            two_back, stage = stage, new
            branch_outputs.append(self.act(self.branches[depth](stage)))
        out = torch.cat(branch_outputs, dim=1)
        del branch_outputs  # the pieces are copied into ``out``; free them before the head
        for layer in self.head[:-1]:
            out = self.act(layer(out))
        out = self.head[-1](out)
        return out[:, : self.config.channels], out[:, self.config.channels :]

    def noise_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``[B, 1, H, W]`` values whose image mean ``s`` gives the learned level
        ``softplus(s - 4) + 1e-3``; a constant map for a global level."""
        if self.noise_net is not None:
            return self.noise_net(x)
        if self.noise_logit is not None:
            b, _, h, w = x.shape
            return self.noise_logit.view(1, 1, 1, 1).expand(b, 1, h, w)
        raise ValueError("this model was trained for a known noise level: it has no estimate of its own")

    @staticmethod
    def sigma_from_logit(logit: torch.Tensor) -> torch.Tensor:
        """The noise standard deviation (on the [0, 1] scale, >= 1e-3) for a mean logit."""
        return F.softplus(logit.float() - SIGMA_SHIFT) + SIGMA_FLOOR

    @staticmethod
    def logit_for_sigma(sigma: float) -> float:
        """The inverse of :meth:`sigma_from_logit`: the mean logit of a level ``sigma`` (on the
        [0, 1] scale, above 1e-3)."""
        return SIGMA_SHIFT + math.log(math.expm1(sigma - SIGMA_FLOOR))

    def learned_sigma(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own noise level for each image of ``x``, ``[B]`` on the [0, 1] scale."""
        return self.sigma_from_logit(self.noise_logits(x).float().mean(dim=(1, 2, 3)))

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None, *,
                posterior: bool | None = None, parts: bool = False) -> torch.Tensor | BlindSpotOutput:
        """The denoised ``[B, C, H, W]`` image, float32.

        ``posterior`` picks the posterior mean (True) or the blind-spot mean ``mu`` (False);
        None follows ``config.posterior``.  ``parts=True`` returns the :class:`BlindSpotOutput`
        the training loss needs instead of an image.
        """
        mean, factor = self.prior(x)
        if not self.config.blind:  # it has seen the pixel: its mean is the estimate (Noise2Void)
            return mean.float()
        if sigma is None:
            noise = self.learned_sigma(x).view(-1, 1, 1, 1)
        else:
            noise = sigma_map(sigma, x[:, :1]).float()
        if parts:
            return BlindSpotOutput(mean, factor, noise)
        if not (self.config.posterior if posterior is None else posterior):
            return mean.float()
        return posterior_mean(x, mean, factor, noise).float()


def with_noise_mode(model: BlindSpot, noise: str, start_sigma: float | None = None) -> BlindSpot:
    """A copy of ``model`` with another noise mode: the prior (trunk, branches, head) is kept and
    the noise-level part is new.  A learned level starts at ``start_sigma`` ([0, 1] scale) when
    given, else near 5/255 as from scratch."""
    converted = BlindSpot(replace(model.config, noise=noise))
    prior = {k: v for k, v in model.state_dict().items() if not k.startswith(("noise_logit", "noise_net."))}
    converted.load_state_dict(prior, strict=False)  # only the new noise part is left as built
    if start_sigma is not None and noise != "known":
        start = converted.noise_logit if converted.noise_logit is not None else converted.noise_net[-1].bias
        with torch.no_grad():
            start.fill_(BlindSpot.logit_for_sigma(start_sigma))
    return converted


# --- Gaussian algebra, per pixel, in float64 ----------------------------------------------------
# Matrices are nested lists of [B, H, W] tensors (C <= 3), so every step is an elementwise
# operation: fast on any device, no batched LAPACK calls over millions of 3x3 matrices.

def upper_factor(factor: torch.Tensor, channels: int) -> list[list[torch.Tensor | None]]:
    """``A`` as nested lists from ``[B, C(C+1)/2, H, W]`` entries (upper triangle, row by row);
    entries below the diagonal are None."""
    rows: list[list[torch.Tensor | None]] = [[None] * channels for _ in range(channels)]
    index = 0
    for i in range(channels):
        for j in range(i, channels):
            rows[i][j] = factor[:, index]
            index += 1
    return rows


def observation_covariance(factor: torch.Tensor, sigma: torch.Tensor, channels: int
                           ) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """``Sigma_x = A^T A`` and ``Sigma_y = Sigma_x + sigma^2 I``, in float64.

    ``sigma`` broadcasts to ``[B, 1, H, W]``.  Returns both as symmetric nested lists.
    """
    a = upper_factor(factor.double(), channels)
    variance = sigma.double()[:, 0] ** 2
    signal = [[sum(a[k][i] * a[k][j] for k in range(min(i, j) + 1)) for j in range(channels)]
              for i in range(channels)]
    observed = [[signal[i][j] + variance if i == j else signal[i][j] for j in range(channels)]
                for i in range(channels)]
    return signal, observed


def cholesky(matrix: list[list[torch.Tensor]]) -> list[list[torch.Tensor | None]]:
    """Lower Cholesky factor of a symmetric positive semi-definite per-pixel matrix; pivots are
    floored at ``PIVOT_FLOOR`` so a singular matrix gives a finite, nearly exact factor."""
    n = len(matrix)
    low: list[list[torch.Tensor | None]] = [[None] * n for _ in range(n)]
    for j in range(n):
        diagonal = matrix[j][j] - sum(low[j][k] ** 2 for k in range(j))
        low[j][j] = diagonal.clamp_min(PIVOT_FLOOR).sqrt()
        for i in range(j + 1, n):
            low[i][j] = (matrix[i][j] - sum(low[i][k] * low[j][k] for k in range(j))) / low[j][j]
    return low


def forward_substitute(low: list[list[torch.Tensor | None]], vector: list[torch.Tensor]) -> list[torch.Tensor]:
    """``L^-1 v`` for a lower-triangular ``L``."""
    out: list[torch.Tensor] = []
    for i in range(len(vector)):
        out.append((vector[i] - sum(low[i][k] * out[k] for k in range(i))) / low[i][i])
    return out


def back_substitute(low: list[list[torch.Tensor | None]], vector: list[torch.Tensor]) -> list[torch.Tensor]:
    """``L^-T v`` for a lower-triangular ``L``."""
    n = len(vector)
    out: list[torch.Tensor | None] = [None] * n
    for i in reversed(range(n)):
        out[i] = (vector[i] - sum(low[k][i] * out[k] for k in range(i + 1, n))) / low[i][i]
    return out


def posterior_mean(y: torch.Tensor, mean: torch.Tensor, factor: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``mu + Sigma_x (Sigma_x + sigma^2 I)^-1 (y - mu)`` per pixel, float64 ``[B, C, H, W]``.

    ``y`` and ``mean`` are ``[B, C, H, W]``, ``factor`` ``[B, C(C+1)/2, H, W]``, ``sigma`` (the
    noise standard deviation on the [0, 1] scale) broadcasts to ``[B, 1, H, W]``.
    """
    channels = y.shape[1]
    signal, observed = observation_covariance(factor, sigma, channels)
    residual = [(y[:, i].double() - mean[:, i].double()) for i in range(channels)]
    low = cholesky(observed)
    weights = back_substitute(low, forward_substitute(low, residual))  # Sigma_y^-1 (y - mu)
    return torch.stack([mean[:, i].double() + sum(signal[i][k] * weights[k] for k in range(channels))
                        for i in range(channels)], dim=1)


def gaussian_nll(y: torch.Tensor, mean: torch.Tensor, factor: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under ``N(mu, Sigma_x + sigma^2 I)``, per pixel, float64.

    ``0.5 (y - mu)^T Sigma_y^-1 (y - mu) + 0.5 log det Sigma_y``, without the constant
    ``C/2 log(2 pi)``; returns ``[B, H, W]``.  Gray: ``0.5 (y - mu)^2 / (a^2 + sigma^2) +
    0.5 log(a^2 + sigma^2)``.  Computed through a Cholesky factor in float64, so it neither
    inverts a matrix explicitly nor loses the small eigenvalues of a near-singular ``Sigma_x``.
    """
    channels = y.shape[1]
    _, observed = observation_covariance(factor, sigma, channels)
    residual = [(y[:, i].double() - mean[:, i].double()) for i in range(channels)]
    low = cholesky(observed)
    whitened = forward_substitute(low, residual)
    return 0.5 * sum(w * w for w in whitened) + sum(torch.log(low[i][i]) for i in range(channels))
