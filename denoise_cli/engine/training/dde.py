"""Training denoising density estimators and their generator (METHODS.md section 3).

Per step, with ``x~ = x + n``, ``n ~ N(0, s^2 I)`` at the step's noise level ``s``:

* ``f_real`` learns the data: ``L_DDE = E || x~ + s^2 grad f(x~) - x ||^2``, the gradient taken
  with ``create_graph=True`` so the loss can be differentiated again with respect to the weights
  (double backprop);
* ``f_fake`` learns the generator's current samples ``g(z)`` (detached) with the same loss;
* every ``generator_every``-th step the generator takes a step on ``KL(q_s || p_s)``, whose
  gradient is ``E[(grad f_fake - grad f_real)(g(z) + n)^T dg/dphi]``.

Decisions on what the method leaves open:

* **Normalised loss.**  Each DDE loss is ``||x~ + s^2 grad f - x||^2 / (D s^2)`` averaged over
  the batch: the fraction of the noise variance left after denoising, 1 for ``grad f = 0``,
  whatever the dimension or level.  For one fixed level it is the authors' loss up to a
  constant factor; under annealing it weighs every level alike (as denoising score matching
  does with the weight s^2).  ``weighting="edm"`` multiplies it by ``(s^2 + v) / v``, ``v`` the
  data's mean variance per dimension: the squared error of the denoised point relative to the
  data's own spread at high levels (the weighting of Karras et al., 2022).  Why: where the noise
  exceeds the data's spread even the best denoiser leaves almost all of the noise, so the
  fraction left barely moves with the network, and those levels (which decide a sample's
  overall shape) learned far more slowly than the low ones.
* **One optimiser, three parameter groups.**  The task declares a parameter group per network;
  Adam keeps per-parameter statistics and skips parameters without a gradient, and the trainer
  clips each group's gradient norm on its own, so this is exactly three separate Adam optimisers.
  The generator only gets a gradient on its own steps, so its Adam state advances only then.
* **One backward pass per step.**  The two DDE losses touch disjoint parameters, so one backward
  of their sum is the same as two steps on the same batch.  The generator term is
  ``sum(sg(grad f_fake - grad f_real) * (x~ - sg(x~)))``: zero in value, and its gradient is the
  KL gradient above and reaches the generator only (the scores are computed without a graph, so
  both DDEs stay frozen for it).  Its value being zero keeps the logged loss the DDEs' alone.
  The generator step therefore sees the DDEs of the start of the step, not the freshly updated
  ones; with k = 10 that is a lag of one DDE step in ten.
* **Generator gradient scale.**  The KL term is weighted by ``s^2 / D`` per sample, the same
  weighting as the normalised DDE loss, so the clipping threshold means the same for all groups.

A schedule (``DDESchedule``) sets the noise level of every step (fixed, geometrically annealed
from ``anneal_from`` down to ``sigma``, or drawn per sample for a conditional model) and the
order of updates (``generator_every``, and ``real_until``: f_real is frozen from that step on,
as when it was trained beforehand).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..algorithms import sampling
from ..models.dde import DDEModel
from .dde_data import DDEData

VALIDATION_SAMPLES = 4096  # rows of the validation set used by validate()
LOG_Z_SAMPLES = 16384  # importance samples of log Z in validate() (low-dimensional data only)
MAX_LIKELIHOOD_DIM = 16  # above this, importance sampling with a diagonal proposal is unreliable
WEIGHTINGS = ("noise", "edm")


def plain_likelihood_is_reliable(model: DDEModel) -> bool:
    """Whether plain importance sampling from ``sampling.dde_proposal`` normalises ``model``: in
    at most ``MAX_LIKELIHOOD_DIM`` dimensions, or with a Gaussian base (then the proposal)."""
    return model.config.dim <= MAX_LIKELIHOOD_DIM or model.config.base == "gaussian"


@dataclass(frozen=True)
class DDESchedule:
    """Noise levels and update order; levels in data units, steps 0-based.

    ``anneal_from`` (> ``sigma``): an unconditional model trains at a level falling geometrically
    from it to ``sigma`` over the first ``anneal_fraction`` of ``max_steps``, then at ``sigma``; a
    conditional model draws each sample's level log-uniformly from ``[sigma, anneal_from]``.
    """

    sigma: float
    max_steps: int
    anneal_from: float | None = None
    anneal_fraction: float = 0.75
    conditional: bool = False
    generator_every: int = 10  # one generator step every k steps (k >= 1)
    real_until: int | None = None  # f_real trains on steps < real_until only (None: always)
    generator_lr_scale: float = 1.0  # generator learning rate / DDE learning rate
    weighting: str = "noise"  # of the levels in the DDE loss: "noise" or "edm" (module docstring)

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError("sigma must be positive")
        if self.anneal_from is not None and not self.anneal_from > self.sigma:
            raise ValueError("the annealing start level must exceed sigma")
        if self.conditional and self.anneal_from is None:
            raise ValueError("a conditional model needs a range of levels: give anneal_from")
        if self.generator_every < 1:
            raise ValueError("generator_every must be at least 1")
        if not self.generator_lr_scale > 0:
            raise ValueError("the generator learning rate must be positive")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting {self.weighting!r}: use {' or '.join(WEIGHTINGS)}")

    def level(self, step: int) -> float:
        """The noise level of an unconditional model at ``step``."""
        if self.anneal_from is None:
            return self.sigma
        progress = min(1.0, step / max(1.0, self.anneal_fraction * self.max_steps))
        return self.anneal_from * (self.sigma / self.anneal_from) ** progress

    def levels(self, step: int, count: int, generator: torch.Generator) -> torch.Tensor:
        """The ``[count]`` noise levels of a step's samples."""
        if not self.conditional:
            return torch.full((count,), self.level(step))
        low, high = math.log(self.sigma), math.log(self.anneal_from)
        return torch.exp(low + (high - low) * torch.rand(count, generator=generator))

    def level_weights(self, levels: torch.Tensor, data_variance: torch.Tensor | float) -> torch.Tensor:
        """The ``[B]`` weights of the DDE loss at ``levels`` for data of mean variance
        ``data_variance`` per dimension (a tensor on the levels' device stays there)."""
        if self.weighting == "noise":
            return torch.ones_like(levels)
        return (levels ** 2 + data_variance) / data_variance

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DDEBatch:
    """What one step consumes; noises are standard normal, scaled by ``levels`` in the loss."""

    data: torch.Tensor  # [B, *shape]
    levels: torch.Tensor  # [B]
    level_weights: torch.Tensor  # [B], of each sample's DDE loss
    data_noise: torch.Tensor  # [B, *shape]
    fake_latent: torch.Tensor | None  # [B, latent]: generator samples f_fake learns
    fake_noise: torch.Tensor | None
    generator_latent: torch.Tensor | None  # [B, latent], on generator steps only
    generator_noise: torch.Tensor | None
    train_real: bool


def dde_loss(model: nn.Module, network: str, clean: torch.Tensor, noise: torch.Tensor,
             levels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised DDE loss (see the module docstring) of ``model``'s ``network`` on ``clean``
    samples ``[B, *shape]`` with standard-normal ``noise`` scaled by ``levels`` ``[B]``, each
    sample's loss times ``weights`` ``[B]`` (default 1)."""
    scale = levels.view(-1, *([1] * (clean.dim() - 1)))
    noisy = (clean + scale * noise).detach().requires_grad_(True)
    energy = model.energy(noisy, levels, network)
    (grad,) = torch.autograd.grad(energy.sum(), noisy, create_graph=True)
    residual = scale * noise + scale ** 2 * grad.float()  # = x~ + s^2 grad f(x~) - x
    per_sample = residual.flatten(1).pow(2).sum(1) / (residual[0].numel() * levels ** 2)
    return (per_sample if weights is None else per_sample * weights).mean()


def generator_kl_term(model: nn.Module, latent: torch.Tensor, noise: torch.Tensor,
                      levels: torch.Tensor) -> torch.Tensor:
    """Zero-valued term whose gradient (into the generator only) is the KL gradient."""
    scale = levels.view(-1, *([1] * (noise.dim() - 1)))
    noisy = model.generate(latent) + scale * noise
    point = noisy.detach()
    direction = model.score(point, levels, "fake") - model.score(point, levels, "real")
    weight = scale ** 2 / noisy[0].numel()
    return (weight * direction * (noisy - point)).flatten(1).sum(1).mean()


class DDEObjective(nn.Module):
    """A step's loss in one forward pass of one module: what DistributedDataParallel wraps."""

    def __init__(self, model: DDEModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: DDEBatch) -> torch.Tensor:
        model = self.model
        loss = torch.zeros((), device=batch.data.device)
        if batch.train_real:
            loss = loss + dde_loss(model, "real", batch.data, batch.data_noise, batch.levels, batch.level_weights)
        if batch.fake_latent is not None:
            with torch.no_grad():
                fake = model.generate(batch.fake_latent)
            loss = loss + dde_loss(model, "fake", fake, batch.fake_noise, batch.levels, batch.level_weights)
        if batch.generator_latent is not None:
            loss = loss + generator_kl_term(model, batch.generator_latent, batch.generator_noise, batch.levels)
        return loss


class DDETraining:
    """A ``Task`` for the trainer: a ``dde`` model (``engine/models/dde.py``) on ``data``.

    ``validation`` (optional) is held-out data of the same kind; every validation reports the
    normalised DDE loss on it at the final level (``dde_loss``), and where
    :func:`plain_likelihood_is_reliable`, the log-likelihood of the validation data
    (``log_likelihood``, nats) and, with a generator, the estimate ``kl`` of ``KL(q_s || p_s)``
    from the two normalised DDEs on generator samples; up to ``sampling.MAX_FLOW_DIM`` dimensions a
    conditional model's densities go through the probability flow (``sampling.normalisable_density``).
    """

    def __init__(self, model: DDEModel, data: DDEData, schedule: DDESchedule,
                 validation: DDEData | None = None, seed: int = 0) -> None:
        if model.generator is not None and model.fake is None:
            raise ValueError("a distilled generator is trained by dde-distill, not with the DDE")
        if tuple(model.config.shape) != tuple(data.shape):
            raise ValueError(f"data of shape {list(data.shape)} for a model of shape {list(model.config.shape)}")
        self.model = model
        self.data = data
        self.schedule = schedule
        self.validation = validation.all(VALIDATION_SAMPLES, seed=seed + 1) if validation is not None else None
        self.seed = seed
        self.step = 0

    # --- trainer hooks ------------------------------------------------------------------------

    def parameter_groups(self, model: DDEModel) -> list[dict]:
        groups = [{"params": list(model.real.parameters())}]
        if model.generator is not None:
            groups.append({"params": list(model.fake.parameters())})
            groups.append({"params": list(model.generator.parameters()),
                           "lr_scale": self.schedule.generator_lr_scale})
        return groups

    def training_module(self, model: DDEModel) -> nn.Module:
        return DDEObjective(model)

    def begin_step(self, step: int) -> None:
        self.step = step

    def batch(self, size: int, generator: torch.Generator, device: torch.device) -> DDEBatch:
        s, step = self.schedule, self.step
        has_generator = self.model.generator is not None
        data = self.data.sample(size, generator)
        levels = s.levels(step, size, generator)
        noise = torch.randn(data.shape, generator=generator)
        latent_dim = self.model.config.latent
        fake = (torch.randn(size, latent_dim, generator=generator), torch.randn(data.shape, generator=generator)) \
            if has_generator else (None, None)
        generator_step = has_generator and (step + 1) % s.generator_every == 0
        gen = (torch.randn(size, latent_dim, generator=generator), torch.randn(data.shape, generator=generator)) \
            if generator_step else (None, None)
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        levels = move(levels)
        # on the device, with the model's buffer: reading it to the host would wait for the GPU every step
        weights = s.level_weights(levels, self.model.data_var.mean())
        return DDEBatch(move(data), levels, weights, move(noise), move(fake[0]), move(fake[1]),
                        move(gen[0]), move(gen[1]), train_real=s.real_until is None or step < s.real_until)

    def loss(self, objective: nn.Module, batch: DDEBatch) -> torch.Tensor:
        return objective(batch)

    def validate(self, model: DDEModel, device: torch.device) -> dict[str, float]:
        if self.validation is None:
            return {}
        generator = torch.Generator().manual_seed(self.seed + 2)
        data = self.validation.to(device)
        levels = torch.full((len(data),), model.config.sigma, device=device)
        noise = torch.randn(data.shape, generator=generator).to(device)
        with torch.enable_grad():  # the trainer validates under no_grad; the loss needs grad f
            metrics = {"dde_loss": dde_loss(model, "real", data, noise, levels).item()}
        if plain_likelihood_is_reliable(model):
            flow_steps = sampling.affordable_flow_steps(model, sampling.COARSE_FLOW_STEPS)
            real, normaliser, proposal = sampling.normalisable_density(model, "real", flow_steps)
            log_z_real = sampling.log_normalizer(normaliser, proposal, LOG_Z_SAMPLES, generator=generator,
                                                 device=device)
            metrics["log_likelihood"] = float(real(data.flatten(1)).double().mean()) - log_z_real
            if model.generator is not None:
                fake, normaliser, proposal = sampling.normalisable_density(model, "fake", flow_steps)
                log_z_fake = sampling.log_normalizer(normaliser, proposal, LOG_Z_SAMPLES, generator=generator,
                                                     device=device)
                samples = sampling.generate(model, len(data), generator, device)
                samples = samples + model.config.sigma * torch.randn(samples.shape, generator=generator)
                x = samples.flatten(1).to(device)
                metrics["kl"] = float((fake(x).double() - log_z_fake - real(x).double() + log_z_real).mean())
        return metrics
