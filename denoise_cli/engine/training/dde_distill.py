"""A one-pass generator distilled from a conditional DDE's probability flow.

``sampling.flow_sample`` maps a standard-normal latent ``z`` (one per data dimension)
deterministically to a sample of ``f_real``, in tens of network evaluations.  Regressing a plain
generator network onto that map (Luhman & Luhman, arXiv 2101.02388, did this for diffusion models)
gives a generator that samples in one pass, like the KL-trained generator of
``engine/training/dde.py``.

Why both: on MNIST the KL-trained generator collapsed (its latent got almost no signal from the
difference of two posterior means in 784 dimensions, and all samples came out alike), while the
flow is a fixed map of ``z``, so the regression has a target for every latent and no collapse to
fall into.

Decisions: the pairs ``(z, flow(z))`` are drawn once before training (each process draws its
own share from its own seed, so ``torchrun`` splits the cost) and reused for every epoch; the loss
is the mean squared error per dimension in the generator's own output units (images: [0, 1];
vectors: standardised by the training data's moments, as ``DDEModel.generate`` does); the
validation metric is that error on pairs held aside, with the fraction of the flow samples'
variance it leaves (``unexplained``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..algorithms import sampling
from ..models.dde import DDEModel

VALIDATION_FRACTION = 0.05  # of the pairs, held aside


@dataclass
class DistillBatch:
    latent: torch.Tensor  # [B, D], standard normal
    target: torch.Tensor  # [B, D], the flow's sample in the generator's output units


class GeneratorRegression(nn.Module):
    """The generator alone, with the regression loss as its forward: what DistributedDataParallel
    wraps, so the frozen DDE's parameters never enter gradient synchronisation."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        return (self.generator(batch.latent) - batch.target).pow(2).mean()


def flow_pairs(model: DDEModel, count: int, steps: int, seed: int, device: torch.device,
               batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` latents ``[count, D]`` and the generator-unit targets ``[count, D]`` of their
    probability-flow samples (``steps`` steps), latents from a CPU generator seeded ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(count, model.config.dim, generator=generator)
    targets = []
    for chunk in latents.split(batch):
        sample = sampling.flow_sample(model, chunk.to(device), steps).flatten(1)
        targets.append(generator_units(model, sample).cpu())
    return latents, torch.cat(targets)


def generator_units(model: DDEModel, samples: torch.Tensor) -> torch.Tensor:
    """Samples ``[N, D]`` in the units of the generator network's output (the inverse of the
    scaling in ``DDEModel.generate``); images are clamped into [0, 1], the sigmoid's range."""
    if model.is_image:
        return samples.clamp(0, 1)
    return (samples - model.data_mean) / model.data_var.sqrt()


class FlowDistillation:
    """A ``Task`` for the trainer: fit ``model.generator`` to ``pairs`` (from :func:`flow_pairs`),
    ``model.real`` frozen."""

    def __init__(self, model: DDEModel, pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
        if model.generator is None or model.config.generator_training != "distilled":
            raise ValueError("the model needs a generator to distil (generator_training='distilled')")
        latents, targets = pairs
        held = max(1, int(len(latents) * VALIDATION_FRACTION)) if len(latents) > 1 else 0
        self.latents, self.targets = latents[held:], targets[held:]
        self.validation = (latents[:held], targets[:held]) if held else None
        if not len(self.latents):
            raise ValueError("no pairs to train on")

    def parameter_groups(self, model: DDEModel) -> list[dict]:
        return [{"params": list(model.generator.parameters())}]

    def training_module(self, model: DDEModel) -> nn.Module:
        return GeneratorRegression(model.generator)

    def batch(self, size: int, generator: torch.Generator, device: torch.device) -> DistillBatch:
        index = torch.randint(len(self.latents), (size,), generator=generator)
        return DistillBatch(self.latents[index].to(device), self.targets[index].to(device))

    def loss(self, objective: nn.Module, batch: DistillBatch) -> torch.Tensor:
        return objective(batch)

    def validate(self, model: DDEModel, device: torch.device) -> dict[str, float]:
        if self.validation is None:
            return {}
        latents, targets = self.validation
        error = float((model.generator(latents.to(device)).cpu() - targets).pow(2).mean())
        return {"mse": error, "unexplained": error / max(float(targets.var(0).mean()), 1e-12)}
