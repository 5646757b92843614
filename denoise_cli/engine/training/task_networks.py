"""Training and scoring the high-level task networks (classifiers, segmenters) that a cascade
puts behind the denoiser.

Scores: top-1 accuracy for classification, mean intersection-over-union over the classes for
segmentation, both in [0, 1].  ``prepare`` hooks let the same scoring run on clean, noisy or
denoised inputs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import IGNORE_LABEL, confusion_matrix, mean_iou
from ..physics.noise import protocol_noisy
from .labelled import LabelledImages, LabelledSampler

# (images [B, C, H, W] in [0, 1], their indices in the data set) -> the task network's input
Prepare = Callable[[torch.Tensor, list[int]], torch.Tensor]

METRIC = {"classify": "accuracy", "segment": "miou"}


def task_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample (classification) or per labelled pixel (segmentation).
    ``targets`` are class indices (``IGNORE_LABEL`` pixels left out) or, as float tensors
    shaped like ``logits``, class probabilities."""
    if targets.is_floating_point():
        return F.cross_entropy(logits.float(), targets.float())
    return F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_LABEL)


def protocol_noise(sigma: float) -> Prepare:
    """The P1 noise of ``BENCHMARK.md`` at ``sigma`` (0..255), seeded by each image's index, so
    every method is scored on the same noisy images."""
    def add(images: torch.Tensor, indices: list[int]) -> torch.Tensor:
        noisy = [protocol_noisy(im.permute(1, 2, 0).cpu().numpy(), sigma, i) for im, i in zip(images, indices)]
        return torch.from_numpy(np.stack(noisy)).permute(0, 3, 1, 2).to(images.device)

    return add


def _same_shape_batches(images: list[np.ndarray], size: int):
    start = 0
    while start < len(images):
        stop = start + 1
        while stop < len(images) and stop - start < size and images[stop].shape == images[start].shape:
            stop += 1
        yield list(range(start, stop))
        start = stop


@torch.no_grad()
def score(network: nn.Module, data: LabelledImages, device: torch.device,
          prepare: Prepare | None = None, batch_size: int = 64) -> float:
    """Accuracy or mIoU of ``network`` on ``data``, whose images go through ``prepare`` first."""
    network.eval()
    correct, confusion = 0, None
    for indices in _same_shape_batches(data.images, batch_size):
        images = torch.from_numpy(np.stack([data.images[i] for i in indices])).permute(0, 3, 1, 2)
        inputs = images.to(device).float() / 255.0
        if prepare is not None:
            inputs = prepare(inputs, indices)
        predicted = network(inputs).argmax(1).cpu().numpy()
        if data.task == "classify":
            correct += int(np.sum(predicted == np.asarray([data.targets[i] for i in indices])))
        else:
            targets = np.stack([data.targets[i] for i in indices])
            counts = confusion_matrix(predicted, targets, data.classes)
            confusion = counts if confusion is None else confusion + counts
    return correct / len(data.images) if data.task == "classify" else mean_iou(confusion)


class TaskNetworkTraining:
    """A ``Task`` for the trainer: a classifier or segmenter learned from clean labelled images."""

    def __init__(self, sampler: LabelledSampler, validation: LabelledImages | None = None) -> None:
        self.sampler, self.validation = sampler, validation

    def batch(self, size: int, generator: torch.Generator, device: torch.device):
        images, targets = self.sampler.sample(size, generator)
        return images.to(device), targets.to(device)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        images, targets = batch
        return task_loss(model(images), targets)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.validation is None:
            return {}
        return {METRIC[self.validation.task]: score(model, self.validation, device)}
