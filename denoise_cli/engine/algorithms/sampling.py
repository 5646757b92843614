"""Sampling from, and normalising, denoising density estimators (``engine/models/dde.py``).

* :func:`generate` draws from a DDE model's generator: one pass, ``z ~ N(0, I)``.
* :func:`langevin` runs (annealed) Langevin dynamics on the DDE's score ``grad f``; for an
  unconditional model it runs at its one level, for a conditional one it anneals from
  ``sigma_max`` down to ``sigma`` (Song & Ermon's schedule, step ``eta * s^2`` at level ``s``).
* :func:`log_normalizer` estimates ``log Z = log integral exp f`` by importance sampling from
  a Gaussian proposal, and :func:`log_likelihood` turns an unnormalised ``f`` into the mean
  log-likelihood of test data, repeated to show the spread of the estimate.

The log-density of the proposal sums over all dimensions, and the estimator is a plain
log-mean-exp: ``log Z ~ logsumexp_i (f(x_i) - log N(x_i)) - log n``.  (METHODS.md section 3
warns of a released estimator that averages the squared norm over dimensions and adds 1 inside
the log-sum-exp; both bias log Z low, hence the log-likelihood high, by nats that grow with
the dimension.)  The estimate of log Z is unbiased for Z, so ``E[log Z_hat] <= log Z`` (Jensen):
with too few samples, or in high dimension, log-likelihoods come out too high.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

LogDensity = Callable[[torch.Tensor], torch.Tensor]  # [N, D] -> [N], nats


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor | float = 0.0,
                         std: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``log N(x; mean, diag(std^2))`` of each row of ``x`` (``[N, D]``), summed over the D dimensions.

    ``mean`` and ``std`` are floats or ``[D]`` tensors; computed in float64.
    """
    x = x.double()
    d = x.shape[1]
    mean = torch.as_tensor(mean, dtype=torch.float64, device=x.device).expand(d)
    std = torch.as_tensor(std, dtype=torch.float64, device=x.device).expand(d)
    z = (x - mean) / std
    return -0.5 * (z * z).sum(1) - std.log().sum() - 0.5 * d * math.log(2 * math.pi)


def log_normalizer(log_density: LogDensity, dim: int, mean: torch.Tensor | float = 0.0,
                   std: torch.Tensor | float = 1.0, samples: int = 65536, batch: int = 1024,
                   generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> float:
    """One importance-sampling estimate of ``log integral exp(log_density(x)) dx`` (nats).

    The proposal is ``N(mean, diag(std^2))`` in ``dim`` dimensions (``mean``, ``std``: floats or
    ``[D]`` tensors); ``samples`` draws from the CPU ``generator`` are evaluated in chunks of
    ``batch`` on ``device``.
    """
    if samples < 1 or batch < 1:
        raise ValueError("samples and batch must be positive")
    mean_t = torch.as_tensor(mean, dtype=torch.float32).expand(dim)
    std_t = torch.as_tensor(std, dtype=torch.float32).expand(dim)
    log_weights = []
    for start in range(0, samples, batch):
        count = min(batch, samples - start)
        x = mean_t + std_t * torch.randn(count, dim, generator=generator)
        value = log_density(x.to(device)).double().cpu()
        log_weights.append(value - gaussian_log_density(x, mean_t, std_t))
    weights = torch.cat(log_weights)
    return float(torch.logsumexp(weights, 0) - math.log(weights.numel()))


def dde_proposal(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The proposal for a DDE model: ``N(m, diag(v + sigma^2))`` with ``m``, ``v`` the per-dimension
    mean and variance of its training data, i.e. the Gaussian with the moments of the smoothed data.

    For standardised data (``m = 0``, ``v = 1``) this is exactly the ``N(0, (1 + sigma^2) I)`` of
    the authors' protocol; for data that are not standardised (the 2-D toys, images) the
    moment-matched version keeps the proposal over the data instead of at the origin.
    Returns ``(mean, std)``, ``[D]`` each, on the CPU.
    """
    mean = model.data_mean.detach().float().cpu()
    std = (model.data_var.detach().float().cpu() + model.config.sigma ** 2).sqrt()
    return mean, std


def model_log_density(model: torch.nn.Module, network: str = "real", level: float | None = None,
                      batch: int = 4096) -> LogDensity:
    """``x [N, D] -> f(x) [N]`` for a DDE model, in chunks of ``batch``, without gradients."""
    shape = model.config.shape

    def evaluate(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            parts = [model.energy(chunk.reshape(-1, *shape), level, network).float()
                     for chunk in x.split(batch)]
        return torch.cat(parts)

    return evaluate


@dataclass
class LogLikelihood:
    """Mean test log-likelihood (nats per sample) over repeated estimates of log Z."""

    mean: float
    std: float
    log_z: list[float]
    mean_energy: float  # mean f over the test data, before normalisation

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "log_z": self.log_z, "mean_energy": self.mean_energy}


def log_likelihood(log_density: LogDensity, data: torch.Tensor, mean: torch.Tensor | float,
                        std: torch.Tensor | float, repeats: int = 5, samples: int = 65536, seed: int = 0,
                        device: torch.device | str = "cpu") -> LogLikelihood:
    """Mean of ``f(x) - log Z`` over test rows ``data`` (``[N, D]``), with log Z estimated
    ``repeats`` times (proposal ``N(mean, diag(std^2))``, ``samples`` draws each, seeds
    ``seed, seed + 1, ...``); returns the mean and standard deviation over the repeats."""
    energy = float(torch.cat([log_density(chunk.to(device)).double().cpu()
                              for chunk in data.flatten(1).split(4096)]).mean())
    log_zs = []
    for repeat in range(repeats):
        generator = torch.Generator().manual_seed(seed + repeat)
        log_zs.append(log_normalizer(log_density, data[0].numel(), mean, std, samples,
                                     generator=generator, device=device))
    values = torch.tensor([energy - z for z in log_zs], dtype=torch.float64)
    spread = float(values.std()) if repeats > 1 else 0.0
    return LogLikelihood(mean=float(values.mean()), std=spread, log_z=log_zs, mean_energy=energy)


def generate(model: torch.nn.Module, count: int, generator: torch.Generator,
             device: torch.device | str = "cpu", batch: int = 4096) -> torch.Tensor:
    """``count`` samples ``[count, *shape]`` of a DDE model's generator, latents drawn from the CPU
    ``generator`` (so a seed gives the same samples on every device), returned on the CPU."""
    out = []
    for start in range(0, count, batch):
        z = torch.randn(min(batch, count - start), model.config.latent, generator=generator)
        with torch.no_grad():
            out.append(model.generate(z.to(device)).float().cpu())
    return torch.cat(out)


def langevin_levels(model: torch.nn.Module, count: int = 10) -> list[float]:
    """The noise levels of annealed sampling: ``count`` geometric steps from ``sigma_max`` down to
    ``sigma`` for a conditional model, else the model's one level."""
    c = model.config
    if not c.conditional:
        return [c.sigma]
    ratio = (c.sigma / c.sigma_max) ** (1.0 / max(1, count - 1))
    return [c.sigma_max * ratio ** i for i in range(count)]


def langevin(model: torch.nn.Module, count: int, generator: torch.Generator, steps: int = 200,
             step_size: float = 0.1, levels: list[float] | None = None, denoise: bool = True,
             device: torch.device | str = "cpu", init: torch.Tensor | None = None) -> torch.Tensor:
    """Langevin samples ``[count, *shape]`` (on the CPU) from a DDE model's ``f_real``.

    At each level ``s`` of ``levels`` (default :func:`langevin_levels`), ``steps`` updates
    ``x <- x + eps/2 grad f(x, s) + sqrt(eps) xi`` with ``eps = step_size * s^2`` (``step_size``
    is dimensionless; below 1 keeps the steps inside the density's own length scale, which is at
    least ``s``).  They start from ``init`` or from the log Z proposal.  The chain samples the
    *smoothed* density; ``denoise`` ends with one step ``x + sigma^2 grad f(x)``, the posterior
    mean of the clean point given the last state (Tweedie), which removes that blur.
    """
    shape = model.config.shape
    levels = levels or langevin_levels(model)
    if init is None:
        mean, std = dde_proposal(model)
        x = mean + std * torch.randn(count, mean.numel(), generator=generator)
        x = x.reshape(count, *shape)
    else:
        x = init.detach().clone().float()
    x = x.to(device)
    for level in levels:
        eps = step_size * level ** 2
        for _ in range(steps):
            noise = torch.randn(x.shape, generator=generator).to(device)
            x = x + 0.5 * eps * model.score(x, level) + math.sqrt(eps) * noise
    if denoise:
        x = x + levels[-1] ** 2 * model.score(x, levels[-1])
    return x.detach().float().cpu()
