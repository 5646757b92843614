"""Denoising density estimators (Bigdeli, Lin, Portenier, Dunbar & Zwicker, arXiv 2001.02728).

A DDE is a scalar network ``f(x)`` trained so that ``x~ + sigma^2 grad f(x~)`` denoises
``x~ = x + n``, ``n ~ N(0, sigma^2 I)`` (``engine/training/dde.py``); at the optimum
``f = log p_sigma + const`` where ``p_sigma = p * N(0, sigma^2 I)`` is the data density smoothed
by the noise.  The network is used through its input gradient, so it must be twice
differentiable: every activation here is smooth (softplus, swish or tanh, never ReLU).

:class:`DDEModel` (architecture ``dde``) holds what one training run produces:

* ``real``: the DDE of the data, ``f_real``;
* optionally a generator ``g(z)``, ``z ~ N(0, I)``, and ``fake``, a second DDE that tracks the
  generator's samples; the generator is trained to minimise ``KL(q_sigma || p_sigma)`` with the
  score difference of the two DDEs.  Or (``generator_training="distilled"``, no ``fake``) the
  generator of a conditional model is regressed onto ``real``'s probability flow, which maps
  ``z`` deterministically to a sample (``engine/training/dde_distill.py``);
* buffers ``data_mean`` and ``data_var`` (per dimension), the moments of the training data, from
  which ``engine/algorithms/sampling.py`` builds the importance-sampling proposal of log Z;
* with ``base="gaussian"``, ``f = log N(x; m, C + s^2 I) - softplus(-g(z))``: the Gaussian with
  the training data's mean and covariance smoothed to the level ``s``, times a factor at most 1
  that a network ``g`` of the whitened input ``z`` learns (buffers ``base_mean``, ``base_basis``,
  ``base_variances``: the eigendecomposition of ``C``, so every level costs the same).  Why:
  the network is trained only where noisy data land, in more than a few dimensions a thin
  shell.  Outside it a network grows freely: on 8x8 patches (d = 64), with the same base but
  ``+ g(z)`` unbounded, the estimates of log Z kept rising with the effort spent (annealed
  importance sampling, 300 / 1000 / 3000 levels: 121 / 148 / 163 nats), so ``exp f`` had no
  usable integral (a plain network on the pixels was worse still).  With the factor bounded by 1, ``Z <= 1`` whatever the network does,
  the estimates converge (the same three: -301 / -293.4 / -293.0), and the base is a proposal
  that covers the density.  Whitening gives the network unit-scale inputs in every direction
  (patch variances span four decades); without it the network barely moved the DDE loss.

Inputs are flattened: vectors are ``[B, D]``, images ``[B, C, H, W]`` in [0, 1] (an MLP on the
pixels, as the authors' MNIST model; ``energy="conv"`` and ``energy="unet"`` keep images on their
pixel grid for :class:`ConvEnergyNet` and :class:`UNetEnergyNet`).  A *conditional* model takes
the noise level as an extra input and covers every level in ``[sigma, sigma_max]``, which
annealed Langevin sampling uses, and so does its likelihood at ``sigma``
(``sampling.probability_flow``).
Levels are in data units throughout (images: the [0, 1] scale, so 0.5 is 127.5 on the 0..255
scale).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..registry import register

ACTIVATIONS: dict[str, type[nn.Module]] = {"softplus": nn.Softplus, "swish": nn.SiLU, "tanh": nn.Tanh}
GENERATOR_OUTPUTS = ("linear", "sigmoid")
GENERATOR_TRAININGS = ("kl", "distilled")
BASES = ("none", "gaussian")
ENERGIES = ("mlp", "conv", "unet")
MAX_BASE_DIM = 4096  # a Gaussian base stores a D x D eigenbasis


@dataclass(frozen=True)
class DDEConfig:
    """Architecture options; stored in checkpoints and the weights manifest."""

    shape: tuple[int, ...] = (2,)  # one sample: (D,) for vectors, (C, H, W) for images in [0, 1]
    sigma: float = 0.2  # smoothing noise level of the density (data units), > 0
    width: int = 64  # hidden units of each DDE (conv: channels at full resolution)
    depth: int = 4  # residual hidden layers of each DDE (conv: residual blocks per resolution)
    energy: str = "mlp"  # "conv": a convolutional energy network; "unet": a denoiser energy (images only)
    activation: str = "softplus"  # softplus, swish or tanh (smooth: the loss differentiates twice)
    conditional: bool = False  # f(x, s) for every level s in [sigma, sigma_max]
    sigma_max: float | None = None  # highest level of a conditional model (data units)
    generator: bool = True  # also a generator g(z) and the DDE ``fake`` that tracks it
    latent: int = 2  # dimension of z ~ N(0, I)
    generator_width: int = 64
    generator_depth: int = 4  # hidden layers of the generator
    generator_residual: bool = True  # residual hidden layers (2-D toys); False: a plain dense MLP
    generator_output: str = "linear"  # linear (vectors) or sigmoid (images in [0, 1])
    base: str = "none"  # "gaussian": f = log N(x; data mean, data covariance + s^2 I) - softplus(-g(z))
    # "kl": trained on KL(q || p) beside the DDE ``fake``; "distilled": regressed onto the
    # probability flow of ``real`` from latents of dimension D (no ``fake``; dncli dde-distill)
    generator_training: str = "kl"

    def __post_init__(self) -> None:
        if not self.shape or min(self.shape) < 1 or len(self.shape) not in (1, 3):
            raise ValueError(f"shape must be (D,) or (C, H, W), got {self.shape}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r}: use one of {', '.join(ACTIVATIONS)}")
        if self.generator_output not in GENERATOR_OUTPUTS:
            raise ValueError(f"generator_output {self.generator_output!r}: use {' or '.join(GENERATOR_OUTPUTS)}")
        if self.energy not in ENERGIES:
            raise ValueError(f"energy {self.energy!r}: use {' or '.join(ENERGIES)}")
        if self.energy != "mlp" and len(self.shape) != 3:
            kind = "convolutional" if self.energy == "conv" else "unet"
            raise ValueError(f"a {kind} energy network needs images, shape (C, H, W)")
        if self.energy == "unet" and self.base != "none":
            raise ValueError("a unet energy network is its own base: use base 'none'")
        if self.base not in BASES:
            raise ValueError(f"base {self.base!r}: use {' or '.join(BASES)}")
        if self.generator_training not in GENERATOR_TRAININGS:
            raise ValueError(f"generator_training {self.generator_training!r}: use {' or '.join(GENERATOR_TRAININGS)}")
        if self.generator_training == "distilled" and not (self.conditional and self.latent == self.dim):
            raise ValueError("a distilled generator needs a conditional DDE and a latent of the data's dimension")
        if self.base == "gaussian" and self.dim > MAX_BASE_DIM:
            raise ValueError(f"a Gaussian base needs at most {MAX_BASE_DIM} dimensions, got {self.dim}")
        if self.conditional and not (self.sigma_max is not None and self.sigma_max > self.sigma):
            raise ValueError("a conditional DDE needs sigma_max > sigma")
        if min(self.width, self.depth + 1, self.latent, self.generator_width, self.generator_depth + 1) < 1:
            raise ValueError("widths and the latent dimension must be positive, depths non-negative")

    @classmethod
    def from_dict(cls, options: dict) -> "DDEConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def dim(self) -> int:
        """Dimension of one flattened sample."""
        return math.prod(self.shape)


class EnergyNet(nn.Module):
    """A scalar MLP ``g(x[, log s])``: a linear lift, ``depth`` pre-activation residual layers
    ``h + W act(h)``, and a linear read-out of ``act(h)``.

    Residual layers keep a deep stack (the authors use up to 25 layers) trainable without
    normalisation, which would make one sample's output depend on the rest of its batch; the
    residual weights start scaled by ``1/sqrt(depth)`` so the sum keeps its scale at any depth.
    """

    def __init__(self, dim: int, width: int, depth: int, activation: str, conditional: bool) -> None:
        super().__init__()
        self.lift = nn.Linear(dim + int(conditional), width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        # No bias: the loss sees f only through its gradient, so a constant would never be trained
        # (and a parameter that never gets a gradient stalls DistributedDataParallel).
        self.readout = nn.Linear(width, 1, bias=False)
        self.act = ACTIVATIONS[activation]()
        with torch.no_grad():
            for layer in self.hidden:
                layer.weight.mul_(depth ** -0.5)

    def forward(self, x: torch.Tensor, log_level: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` is ``[B, D]`` (or ``[B, *shape]``, flattened), ``log_level`` ``[B]`` (conditional
        nets only); returns ``[B]``."""
        x = x.flatten(1)
        if log_level is not None:
            x = torch.cat([x, log_level.to(x.dtype).unsqueeze(1)], dim=1)
        h = self.lift(x)
        for layer in self.hidden:
            h = h + layer(self.act(h))
        return self.readout(self.act(h)).squeeze(1)


class ConvEnergyNet(nn.Module):
    """A scalar convolutional network ``g(x[, log s])`` of images ``[B, C, H, W]``.

    Three resolutions (full, half, quarter; ``width``, ``2 width``, ``2 width`` channels), each
    with ``depth`` residual blocks ``h + conv(act(conv(act(h)) + e(log s)))``, stride-2
    convolutions between them, then the spatial mean of ``act(h)`` and a linear read-out.  The
    level enters every block as a per-channel offset ``e``; the residual branches start scaled by
    ``1/sqrt(3 depth)`` as in :class:`EnergyNet`.  Why convolutions: an MLP on 784 pixels must
    learn every stroke at every position separately; weights shared across positions need far
    fewer examples to learn what strokes look like.
    """

    def __init__(self, channels: int, width: int, depth: int, activation: str, conditional: bool) -> None:
        super().__init__()
        widths = (width, 2 * width, 2 * width)
        self.lift = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.ModuleList(_ConvBlock(w, int(conditional), (len(widths) * depth) ** -0.5) for _ in range(depth))
            for w in widths)
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.readout = nn.Linear(widths[-1], 1, bias=False)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, log_level: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` is ``[B, C, H, W]``, ``log_level`` ``[B]`` (conditional nets only); returns ``[B]``."""
        condition = None if log_level is None else log_level.to(x.dtype).unsqueeze(1)
        h = self.lift(x)
        for index, blocks in enumerate(self.blocks):
            if index:
                h = self.downs[index - 1](self.act(h))
            for block in blocks:
                h = block(h, condition, self.act)
        return self.readout(self.act(h).mean((2, 3))).squeeze(1)


class _ConvBlock(nn.Module):
    """``h + conv(act(conv(act(h)) + e(condition)))``; ``condition_features`` is the length of the
    condition vector (0: none)."""

    def __init__(self, width: int, condition_features: int, scale: float) -> None:
        super().__init__()
        self.first = nn.Conv2d(width, width, 3, padding=1)
        self.second = nn.Conv2d(width, width, 3, padding=1)
        self.level = nn.Linear(condition_features, width) if condition_features else None
        with torch.no_grad():
            self.second.weight.mul_(scale)

    def forward(self, h: torch.Tensor, condition: torch.Tensor | None, act: nn.Module) -> torch.Tensor:
        inner = self.first(act(h))
        if condition is not None:
            inner = inner + self.level(condition)[:, :, None, None]
        return h + self.second(act(inner))


class UNetEnergyNet(nn.Module):
    """The network ``F`` of a denoiser energy (``energy="unet"``): ``[B, C, H, W]`` images and
    ``log s`` ``[B]`` in, ``[B, C, H, W]`` out.

    :meth:`DDEModel.energy` makes it a scalar: ``f(x, s) = -||x - D(x, s)||^2 / (2 s^2)`` with the
    denoiser ``D = c_skip x + c_out F(c_in x, log s)`` (Salimans & Ho, "Should EBMs model the
    energy or the score?", 2021; the preconditioning of Karras et al., 2022).  Why: the energy of
    :class:`ConvEnergyNet` is a mean of local features, so every pixel's score comes out of one
    reduction; here each pixel's score has its own path through an encoder-decoder whose
    quarter-resolution level sees the whole image (on MNIST, 7x7), as in the score networks of
    diffusion models.

    Three resolutions (``width``, ``2 width``, ``2 width`` channels), ``depth`` residual blocks
    on each side of each, stride-2 convolutions down, nearest upsampling and a 1x1 convolution of
    the concatenated skip up.  The level enters every block through a learned embedding of
    ``log s``.  The last convolution starts at zero, so ``D`` starts as ``c_skip x``, the best
    linear denoiser of data with the training set's variance.
    """

    def __init__(self, channels: int, width: int, depth: int, activation: str, conditional: bool) -> None:
        super().__init__()
        widths = (width, 2 * width, 2 * width)
        features = 4 * width if conditional else 0
        self.act = ACTIVATIONS[activation]()
        self.embed = nn.Sequential(nn.Linear(1, features), ACTIVATIONS[activation](),
                                   nn.Linear(features, features)) if conditional else None
        scale = (2 * len(widths) * depth) ** -0.5
        self.lift = nn.Conv2d(channels, width, 3, padding=1)
        self.encoder = nn.ModuleList(
            nn.ModuleList(_ConvBlock(w, features, scale) for _ in range(depth)) for w in widths)
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.merges = nn.ModuleList(nn.Conv2d(a + b, a, 1) for a, b in zip(widths, widths[1:]))
        self.decoder = nn.ModuleList(
            nn.ModuleList(_ConvBlock(w, features, scale) for _ in range(depth)) for w in widths[:-1])
        self.readout = nn.Conv2d(width, channels, 3, padding=1)
        with torch.no_grad():
            self.readout.weight.zero_()
            self.readout.bias.zero_()

    def forward(self, x: torch.Tensor, log_level: torch.Tensor | None = None) -> torch.Tensor:
        condition = None if self.embed is None else self.embed(log_level.to(x.dtype).unsqueeze(1))
        h = self.lift(x)
        skips = []
        for index, blocks in enumerate(self.encoder):
            if index:
                skips.append(h)
                h = self.downs[index - 1](self.act(h))
            for block in blocks:
                h = block(h, condition, self.act)
        for index in reversed(range(len(self.decoder))):
            skip = skips[index]
            h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = self.merges[index](torch.cat([skip, h], dim=1))
            for block in self.decoder[index]:
                h = block(h, condition, self.act)
        return self.readout(self.act(h))


class Generator(nn.Module):
    """``g(z)``: an MLP from ``[B, latent]`` to ``[B, D]`` (residual or plain hidden layers),
    with a sigmoid output for images so samples lie in [0, 1]."""

    def __init__(self, latent: int, dim: int, width: int, depth: int, activation: str,
                 residual: bool, output: str) -> None:
        super().__init__()
        self.lift = nn.Linear(latent, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.readout = nn.Linear(width, dim)
        self.act = ACTIVATIONS[activation]()
        self.residual = residual
        self.sigmoid = output == "sigmoid"
        if residual:
            with torch.no_grad():
                for layer in self.hidden:
                    layer.weight.mul_(depth ** -0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.lift(z)
        for layer in self.hidden:
            h = h + layer(self.act(h)) if self.residual else layer(self.act(h))
        out = self.readout(self.act(h))
        return torch.sigmoid(out) if self.sigmoid else out


@register("dde", DDEConfig)
class DDEModel(nn.Module):
    """A DDE of the data, optionally with a generator and the DDE that tracks it.

    ``forward(x, level=None)`` is ``f_real``: the unnormalised log-density (nats) of the data
    smoothed by noise of std ``level``, for ``x`` of shape ``[B, *config.shape]``; returns ``[B]``.
    ``level`` (data units; a float or a ``[B]`` tensor) matters only for a conditional model
    (default: ``config.sigma``); an unconditional model is tied to the level it was trained at.
    """

    def __init__(self, config: DDEConfig = DDEConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.real = self._energy_net()
        self.fake = self._energy_net() if c.generator and c.generator_training == "kl" else None
        self.generator = (Generator(c.latent, c.dim, c.generator_width, c.generator_depth, c.activation,
                                    c.generator_residual, c.generator_output) if c.generator else None)
        self.register_buffer("data_mean", torch.zeros(c.dim))
        self.register_buffer("data_var", torch.ones(c.dim))
        if c.base == "gaussian":
            for net in (self.real, self.fake):
                if net is not None:  # the model starts as the base Gaussian
                    nn.init.zeros_(net.readout.weight)
            self.register_buffer("base_mean", torch.zeros(c.dim))
            self.register_buffer("base_basis", torch.eye(c.dim))
            self.register_buffer("base_variances", torch.ones(c.dim))

    def _energy_net(self) -> nn.Module:
        c = self.config
        if c.energy != "mlp":
            network = ConvEnergyNet if c.energy == "conv" else UNetEnergyNet
            return network(c.shape[0], c.width, c.depth, c.activation, c.conditional)
        return EnergyNet(c.dim, c.width, c.depth, c.activation, c.conditional)

    @property
    def is_image(self) -> bool:
        return len(self.config.shape) == 3

    def density_state(self) -> dict[str, torch.Tensor]:
        """The state of the density model alone: everything but the generator and the energy
        network that tracks its samples."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("generator.", "fake."))}

    def set_data_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Record the per-dimension mean and variance of the training data (``[D]`` each)."""
        self.data_mean.copy_(mean.reshape(-1))
        self.data_var.copy_(var.reshape(-1).clamp_min(1e-12))

    def set_base(self, mean: torch.Tensor, covariance: torch.Tensor) -> None:
        """The Gaussian base, and the data statistics, from the training data's mean ``[D]`` and
        covariance ``[D, D]``."""
        if self.config.base != "gaussian":
            raise ValueError("this DDE model has no Gaussian base")
        self.set_data_statistics(mean.float(), covariance.diagonal().float())
        variances, basis = torch.linalg.eigh(covariance.double())
        self.base_mean.copy_(mean.reshape(-1))
        self.base_basis.copy_(basis)
        self.base_variances.copy_(variances.clamp_min(0))

    def base_covariance(self, level: float | None = None) -> torch.Tensor:
        """``C + s^2 I``, the covariance of the Gaussian base at level ``s`` (default
        ``config.sigma``), float64."""
        level = self.config.sigma if level is None else level
        basis = self.base_basis.double()
        return (basis * (self.base_variances.double() + level ** 2)) @ basis.T

    def _whiten(self, x: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, D]`` in the base's eigenbasis, each coordinate divided by its smoothed standard
        deviation, and the base's log-density there ``[B]``."""
        with torch.autocast(x.device.type, enabled=False):  # half precision would round the quadratic form
            variances = self.base_variances + levels.float().unsqueeze(1) ** 2
            z = (x.float() - self.base_mean) @ self.base_basis / variances.sqrt()
            log_density = -0.5 * ((z * z).sum(1) + variances.log().sum(1) + z.shape[1] * math.log(2 * math.pi))
        return z, log_density

    def levels(self, level: float | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """The noise level of each of ``batch`` samples as a ``[B]`` float32 tensor."""
        value = self.config.sigma if level is None else level
        return torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1).expand(batch)

    def energy(self, x: torch.Tensor, level: float | torch.Tensor | None = None, network: str = "real"
               ) -> torch.Tensor:
        """``f_real`` (``network="real"``) or ``f_fake`` at ``x``; ``[B]`` nats, unnormalised.

        The network's output is divided by the noise level (the sample's own for a conditional
        model, ``config.sigma`` otherwise): near the data ``sigma^2 grad f`` has the size of the
        noise, ``sigma``, so the network itself then learns gradients of unit size at any level.
        With a Gaussian base (``config.base``, both DDEs) the network instead sees the whitened
        input ``z`` of :meth:`_whiten`, where the base's score is ``-z``: there too its gradients
        are of unit size, in every direction.
        """
        net = self.real if network == "real" else self.fake
        if net is None:
            raise ValueError("this DDE model has no 'fake' density (no generator, or a distilled one)")
        levels = self.levels(level if self.config.conditional else None, x.shape[0], x.device)
        log_levels = levels.log() if self.config.conditional else None
        if self.config.energy == "unet":
            return self._denoiser_energy(net, x, levels, log_levels)
        if self.config.base == "gaussian":
            z, base = self._whiten(x.flatten(1), levels)
            if self.config.energy == "conv":  # convolutions need the pixel grid, not the eigenbasis
                z = (x - self.base_mean.view(x.shape[1:])) / (self.data_var.view(x.shape[1:])
                                                             + levels.view(-1, 1, 1, 1) ** 2).sqrt()
            return base - nn.functional.softplus(-net(z, log_levels))
        out = net(x, log_levels)
        return out / levels.to(out.dtype)

    def _denoiser_energy(self, net: nn.Module, x: torch.Tensor, levels: torch.Tensor,
                         log_levels: torch.Tensor | None) -> torch.Tensor:
        """``-||x - D(x, s)||^2 / (2 s^2)`` for :class:`UNetEnergyNet`, with ``D`` preconditioned by
        the training data's mean image and mean variance ``v``: ``c_skip = v / (s^2 + v)``,
        ``c_out = s sqrt(v / (s^2 + v))``, ``c_in = 1 / sqrt(s^2 + v)``, so ``F`` sees and
        predicts unit-scale values at every level."""
        variance = levels.float().view(-1, *([1] * (x.dim() - 1))) ** 2
        data_variance = self.data_var.mean()
        total = variance + data_variance
        centred = x - self.data_mean.view(x.shape[1:])
        predicted = net(centred / total.sqrt(), log_levels).float()
        # x - D = (1 - c_skip) x - c_out F
        residual = variance / total * centred - (variance * data_variance / total).sqrt() * predicted
        return -0.5 * residual.flatten(1).pow(2).sum(1) / levels.float() ** 2

    def forward(self, x: torch.Tensor, level: float | torch.Tensor | None = None) -> torch.Tensor:
        return self.energy(x, level, "real")

    def score(self, x: torch.Tensor, level: float | torch.Tensor | None = None, network: str = "real",
              create_graph: bool = False) -> torch.Tensor:
        """``grad_x f`` at ``x`` (same shape as ``x``); works under ``torch.no_grad`` too."""
        with torch.enable_grad():
            point = x if create_graph else x.detach().requires_grad_(True)
            value = self.energy(point, level, network)
            (grad,) = torch.autograd.grad(value.sum(), point, create_graph=create_graph)
        return grad

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Generator samples ``[B, *shape]`` for latents ``z`` of shape ``[B, latent]``.

        A vector generator works in standardised units, ``g(z) = mean + std * net(z)`` with the
        training data's moments, so it starts where the data are: far from them a DDE's gradient
        is extrapolation and would send the generator anywhere.  (Image generators end in a
        sigmoid, so they start inside [0, 1] anyway.)
        """
        if self.generator is None:
            raise ValueError("this DDE model has no generator")
        out = self.generator(z)
        if not self.is_image:
            out = self.data_mean + self.data_var.sqrt() * out
        return out.reshape(z.shape[0], *self.config.shape)
