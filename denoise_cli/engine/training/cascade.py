"""Training a denoiser for the high-level network behind it (Liu et al., IJCAI 2018).

The frozen task network H (a classifier or a segmenter) is put after the denoiser F and only
F is updated, on

    L = mean (F(y) - x)^2  +  lambda * CE(H(F(y)), label),         y = x + n, n ~ N(0, sigma^2)

Both terms are means: the squared error per pixel and channel on the [0, 1] scale, the
cross-entropy per image (classification) or per labelled pixel (segmentation); so lambda does
not depend on the image or batch size.  With ``photos``, x of the squared error is a crop of
clean photos instead of the labelled image (both noised the same way): the task term still
sees the task's images, but the reconstruction is anchored on photos, which matters when the
labelled images are small or compressed (32x32 JPEG CIFAR crops teach a denoiser their
artefacts).  Without labelled images, the task term too is taken on the photos, against H's own
prediction on the clean crop (class probabilities per image or per pixel):

    L = mean (F(y) - x)^2  +  lambda * CE(H(F(y)), softmax H(x))

which asks the denoiser for images that H sees as it sees the clean ones, and needs no labels.
H stays in eval mode (batch-norm statistics and dropout
frozen) and its parameters get no gradient; the gradient of the task term reaches F through H.
The result is an ordinary weights file of F's architecture: it costs nothing extra at inference.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import psnr, quantize_uint8
from .data import PatchSampler
from .labelled import LabelledImages, LabelledSampler
from .task_networks import METRIC, protocol_noise, score, task_loss


def check_task_network(network: nn.Module, task: str, side: int, classes: int | None) -> None:
    """ValueError unless ``network`` maps a batch of RGB images of ``side`` x ``side`` pixels to
    the logits ``task`` needs: ``[B, K]`` (classify) or ``[B, K, side, side]`` (segment), with
    K at least ``classes`` when that is known."""
    probe = torch.rand(1, 3, side, side)
    try:
        with torch.no_grad():
            logits = network(probe)
    except (TypeError, RuntimeError) as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise ValueError(f"cannot run on a batch of RGB images ({type(exc).__name__}: {first_line})") from None
    layout = (2, None) if task == "classify" else (4, (side, side))
    if not isinstance(logits, torch.Tensor) or logits.ndim != layout[0] or \
            (layout[1] is not None and tuple(logits.shape[2:]) != layout[1]):
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        needed = "[batch, classes]" if task == "classify" else "[batch, classes, height, width]"
        raise ValueError(f"returns {shape} for a {list(probe.shape)} batch where --task {task} needs {needed} logits")
    if classes is not None and logits.shape[1] < classes:
        raise ValueError(f"scores {logits.shape[1]} classes and the data has {classes}")


def freeze(network: nn.Module) -> nn.Module:
    """``network`` in eval mode with no trainable parameters."""
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


class CascadeTraining:
    """A ``Task`` for the trainer: the denoiser is the trained model, ``task_network`` is frozen.

    ``sigma_range`` is on the 0..255 scale (a level drawn per image); ``weight`` is lambda;
    ``photos``, when given, supplies the clean crops of the squared-error term, and of the
    task term too when ``sampler`` is ``None`` (targets: ``task_network`` on the clean crops).
    Validation reports the PSNR of the denoised ``validation`` images and the task score of
    ``task_network`` on them, at ``validation_sigma`` with the P1 noise.
    """

    def __init__(self, task_network: nn.Module, sampler: LabelledSampler | None, sigma_range: tuple[float, float],
                 weight: float, device: torch.device, validation: LabelledImages | None = None,
                 validation_sigma: float = 25.0, photos: PatchSampler | None = None) -> None:
        if sampler is None and photos is None:
            raise ValueError("a cascade needs labelled images, photos, or both")
        self.task_network = freeze(task_network).to(device)
        self.sampler, self.sigma_range, self.weight = sampler, sigma_range, weight
        self.validation, self.validation_sigma = validation, validation_sigma
        self.photos = photos

    def batch(self, size: int, generator: torch.Generator, device: torch.device):
        if self.sampler is None:
            return None, self._noised(self.photos.sample(size, generator), generator, device)
        clean, targets = self.sampler.sample(size, generator)
        labelled = (*self._noised(clean, generator, device), targets.to(device))
        if self.photos is None:
            return labelled, None
        return labelled, self._noised(self.photos.sample(size, generator), generator, device)

    def _noised(self, clean: torch.Tensor, generator: torch.Generator, device: torch.device):
        low, high = self.sigma_range
        sigma = (low + (high - low) * torch.rand(len(clean), generator=generator)) / 255.0
        noisy = clean + torch.randn(clean.shape, generator=generator) * sigma.view(-1, 1, 1, 1)
        return noisy.to(device), sigma.to(device), clean.to(device)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        labelled, photos = batch
        anchor_noisy, anchor_sigma, anchor_clean = photos if photos is not None else labelled[:3]
        reconstructed = model(anchor_noisy, anchor_sigma)
        reconstruction = F.mse_loss(reconstructed.float(), anchor_clean)
        if self.weight == 0:
            return reconstruction
        if labelled is None:
            with torch.no_grad():
                targets = self.task_network(anchor_clean).float().softmax(1)
            denoised = reconstructed
        else:
            noisy, sigma, _, targets = labelled
            denoised = reconstructed if photos is None else model(noisy, sigma)
        return reconstruction + self.weight * task_loss(self.task_network(denoised), targets)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.validation is None:
            return {}
        sigma = self.validation_sigma
        denoise = denoised_by(model, sigma)
        psnrs = []

        def denoise_and_measure(images: torch.Tensor, indices: list[int]) -> torch.Tensor:
            restored = denoise(images, indices)
            for index, output in zip(indices, restored.permute(0, 2, 3, 1).cpu().numpy()):
                psnrs.append(psnr(quantize_uint8(output), self.validation.images[index]))
            return restored

        value = score(self.task_network, self.validation, device, denoise_and_measure)
        metric = METRIC[self.validation.task]
        return {f"psnr_{sigma:g}": float(np.mean(psnrs)), f"{metric}_{sigma:g}": value}


def denoised_by(denoiser: nn.Module, sigma: float):
    """A ``prepare`` hook for ``task_networks.score``: P1 noise at ``sigma``, then ``denoiser``."""
    add_noise = protocol_noise(sigma)

    def prepare(images: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return denoiser(add_noise(images, indices), sigma / 255.0).float()

    return prepare
