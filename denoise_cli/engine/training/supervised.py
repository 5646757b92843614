"""Supervised denoising: clean patches, synthetic Gaussian noise of a random level per patch."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import psnr, quantize_uint8
from ..physics.noise import protocol_noisy
from .data import PatchSampler, device_generator

LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


class SupervisedDenoising:
    """A ``Task`` for the trainer.

    ``sigma_range`` is on the 0..255 scale: each patch gets a level drawn uniformly from it,
    and the model is called as ``model(noisy, sigma)`` with sigma on the [0, 1] scale.
    Validation denoises ``validation_images`` (uint8 ``[H, W, C]``) at each of
    ``validation_sigmas`` with the P1 noise and reports the mean PSNR as ``psnr_<sigma>``.
    """

    def __init__(self, sampler: PatchSampler, sigma_range: tuple[float, float] = (0.0, 75.0),
                 loss: str = "l1", validation_images: list[np.ndarray] = (),
                 validation_sigmas: tuple[float, ...] = (25.0,)) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r} (choose from {', '.join(LOSSES)})")
        self.sampler = sampler
        self.sigma_range = sigma_range
        self.loss_fn = LOSSES[loss]
        self.validation_images = list(validation_images)
        self.validation_sigmas = validation_sigmas

    def batch(self, size: int, generator: torch.Generator, device: torch.device):
        clean = self.sampler.sample(size, generator, device)
        low, high = self.sigma_range
        sigma = ((low + (high - low) * torch.rand(size, generator=generator)) / 255.0).to(device)
        noise = torch.randn(clean.shape, generator=device_generator(generator, device), device=device)
        return clean + noise * sigma.view(-1, 1, 1, 1), sigma, clean

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        noisy, sigma, clean = batch
        return self.loss_fn(model(noisy, sigma).float(), clean)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        metrics = {}
        for sigma in self.validation_sigmas:
            scores = []
            for index, image in enumerate(self.validation_images):
                clean = image.astype(np.float32) / 255.0
                noisy = torch.from_numpy(protocol_noisy(clean, sigma, index)).permute(2, 0, 1)[None]
                out = model(noisy.to(device), sigma / 255.0)[0].permute(1, 2, 0).float().cpu().numpy()
                scores.append(psnr(quantize_uint8(out), image))
            if scores:
                metrics[f"psnr_{sigma:g}"] = float(np.mean(scores))
        return metrics
