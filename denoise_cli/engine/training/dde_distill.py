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

Drawing the pairs dominates the cost on a CPU (hours for 100,000 MNIST pairs), so they can be kept
in a cache file written as they are drawn: an interrupted draw continues where it stopped, a
second generator (another size, a longer schedule) is fitted to the same pairs without drawing them
again, and asking for more pairs draws only the ones not yet in the file.  The latents are not
stored, since the seed gives them again (drawn in fixed blocks of rows, so the first N latents of a
seed are the same whatever the count); the file holds the targets drawn so far and the key of what
they are pairs of (the teacher's weights, steps, seed).
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ...imgio.atomic import atomic_write_bytes
from ..algorithms import sampling
from ..models.dde import DDEModel

VALIDATION_FRACTION = 0.05  # of the pairs, held aside
CACHE_SAVE_EVERY = 60.0  # seconds between saves of the pairs cache while drawing
LATENT_BLOCK = 1024  # rows of latents per draw from the seeded generator


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


def flow_pairs(model: DDEModel, count: int, steps: int, seed: int, device: torch.device, batch: int = 1024,
               cache: Path | None = None, report: Callable[[int, int], None] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` latents ``[count, D]`` and the generator-unit targets ``[count, D]`` of their
    probability-flow samples (``steps`` steps), latents from a CPU generator seeded ``seed``.

    With ``cache`` (an ``.npz`` path) the targets drawn so far are saved there about every
    ``CACHE_SAVE_EVERY`` seconds and at the end, and read back first when the file holds pairs of
    the same teacher, steps and seed (otherwise it is overwritten): its first ``count`` pairs are
    used, and only those it lacks are drawn.  ``report(done, count)`` is called after every read
    and save.
    """
    latents = _seeded_latents(count, model.config.dim, seed)
    cached = torch.zeros(0, model.config.dim)
    if cache is not None:
        key = _pairs_key(model, steps, seed)
        cached = _cached_targets(cache, key, model.config.dim)[:count]
        if len(cached) and report is not None:
            report(len(cached), count)
    targets = [cached]
    saved_at = time.monotonic()
    for start in range(len(cached), count, batch):
        sample = sampling.flow_sample(model, latents[start:start + batch].to(device), steps).flatten(1)
        targets.append(generator_units(model, sample).cpu())
        finished = start + batch >= count
        if cache is not None and (finished or time.monotonic() - saved_at > CACHE_SAVE_EVERY):
            targets = [torch.cat(targets)]
            _save_targets(cache, key, targets[0])
            saved_at = time.monotonic()
            if report is not None:
                report(len(targets[0]), count)
    return latents, torch.cat(targets)


def _seeded_latents(count: int, dim: int, seed: int) -> torch.Tensor:
    """``count`` standard-normal latents ``[count, dim]`` from a CPU generator seeded ``seed``, the
    first N the same for every ``count`` >= N (``torch.randn`` of another shape may draw its numbers
    in another order)."""
    generator = torch.Generator().manual_seed(seed)
    blocks = [torch.randn(LATENT_BLOCK, dim, generator=generator) for _ in range(-(-count // LATENT_BLOCK))]
    return torch.cat(blocks)[:count] if blocks else torch.zeros(0, dim)


def _pairs_key(model: DDEModel, steps: int, seed: int) -> str:
    """What a pairs cache must match: the teacher's weights (its DDE, not the generator being
    fitted), the flow steps and the seed."""
    digest = hashlib.sha256()
    for name, value in sorted(model.density_state().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return json.dumps({"teacher": digest.hexdigest(), "steps": steps, "seed": seed})


def _cached_targets(cache: Path, key: str, dim: int) -> torch.Tensor:
    """The targets ``[N, dim]`` in ``cache`` when its key is ``key``, else none (``[0, dim]``):
    a missing, stale or unreadable cache is drawn again, never trusted."""
    try:
        stored = np.load(cache, allow_pickle=False)
        if isinstance(stored, np.lib.npyio.NpzFile):
            with stored:
                if str(stored["key"]) == key:
                    return torch.from_numpy(stored["targets"].astype(np.float32))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    return torch.zeros(0, dim)


def _save_targets(cache: Path, key: str, targets: torch.Tensor) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, key=np.array(key), targets=targets.numpy())
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cache, buffer.getvalue())


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
