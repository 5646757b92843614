"""Self-supervised blind-spot training: noisy images only, Laine et al.'s Gaussian likelihood.

Each step draws random noisy patches (with flips and rotations) and maximises the likelihood
of every noisy pixel under ``N(mu, Sigma_x + sigma^2 I)``, where ``mu`` and ``Sigma_x`` come
from the pixel's neighbourhood (the blind-spot prior) and ``sigma`` is the known noise level or
the model's own estimate.  Nothing here reads a clean image for training; clean references,
when given, only score a validation set.

``MaskedTraining`` is the Noise2Void-style baseline (Krull et al., 2019) for the same trunk
without the blind spot: a few pixels of each patch are replaced by random neighbours and the
network learns to predict their noisy values, by squared error at those pixels only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..metrics import psnr, quantize_uint8
from ..models.blindspot import gaussian_nll, posterior_mean
from ..physics.noise import protocol_noisy
from ..tiling import apply_tiled
from .data import IMAGE_SUFFIXES, PatchSampler, to_gray_uint8

# The learned level's logit starts near 0 and must travel 2-3 units (to sigma 10..50); Adam moves
# a parameter by about the learning rate per step, so at the trunk's rate that takes 10^4 steps
# and a short run ends with the level stuck near its start.  The estimator learns this much faster.
NOISE_LR_SCALE = 20.0
NOISY_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")  # float32 .npy keeps unclipped noise exactly, like TIFF
VALIDATION_TILE = 256  # pixels: bounds validation memory for any image size (tiling is exact)
MASK_FRACTION = 1 / 64  # of the pixels masked per patch: about 64 of a 64x64 patch, as Krull et al.
NEIGHBOUR_RADIUS = 2  # a masked pixel takes the value of a random other pixel of its 5x5 window


def image_paths(sources: list[Path]) -> list[Path]:
    """Image files among ``sources``: files as given, directories searched recursively, sorted."""
    paths: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            paths += [p for p in sorted(source.rglob("*")) if p.suffix.lower() in NOISY_SUFFIXES and p.is_file()]
        elif source.is_file():
            paths.append(source)
        else:
            raise FileNotFoundError(f"{source}: no such file or directory")
    if not paths:
        raise ValueError(f"no images in {', '.join(map(str, sources))}")
    return paths


def load_noisy_images(sources: list[Path], channels: int) -> list[np.ndarray]:
    """Noisy images as float32 ``[H, W, channels]`` arrays on the [0, 1] scale, values kept as
    stored (float TIFF or .npy keep the unclipped noise; 8/16-bit files hold it clipped).

    Raises ``ValueError`` when an image has other colour channels than ``channels``: converting
    noisy colour to gray, or repeating noisy gray into RGB, would change the noise the
    likelihood assumes (independent between channels with one sigma).
    """
    from ...imgio.codec import read_image

    images = []
    for path in image_paths(sources):
        color = read_image(path).color
        if color.shape[-1] != channels:
            raise ValueError(f"{path}: {color.shape[-1]}-channel image for a {channels}-channel model "
                             f"(add the noise after converting the clean images, or change --channels)")
        images.append(np.ascontiguousarray(color, dtype=np.float32))
    return images


def estimated_noise_level(images: list[np.ndarray], max_images: int = 32) -> float | None:
    """Median blind noise estimate (:func:`~..noise_estimate.estimate_sigma`, 0..255 scale) of up
    to ``max_images`` of ``images``, spread evenly over them; None when every one is too small."""
    from ..noise_estimate import estimate_sigma

    levels = []
    for index in np.unique(np.linspace(0, len(images) - 1, min(len(images), max_images)).round().astype(int)):
        try:
            levels.append(estimate_sigma(images[index]))
        except ValueError:  # smaller than the estimator's patches
            continue
    return float(np.median(levels)) if levels else None


def load_validation(clean_sources: list[Path], noisy_sources: list[Path] | None, channels: int,
                    sigma: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(noisy float32, clean uint8)`` pairs, both ``[H, W, channels]``.

    Clean images are rounded to 8 bits (the P1 reference) and converted to luma for a gray model.
    Noisy partners are the images of ``noisy_sources`` in sorted order, or, when None, P1 noise
    of level ``sigma`` (0..255 scale) seeded by ``[int(sigma), index]``.
    """
    from ...imgio.codec import read_image

    clean = []
    for path in image_paths(clean_sources):
        pixels = np.clip(np.rint(read_image(path).color * 255.0), 0, 255).astype(np.uint8)
        if channels == 1 and pixels.shape[-1] == 3:
            pixels = to_gray_uint8(pixels)[..., None]
        elif channels == 3 and pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        clean.append(pixels)
    if noisy_sources is None:
        noisy = [protocol_noisy(image.astype(np.float64) / 255.0, sigma, index) for index, image in enumerate(clean)]
    else:
        noisy = load_noisy_images(noisy_sources, channels)
        if len(noisy) != len(clean):
            raise ValueError(f"{len(noisy)} noisy validation images for {len(clean)} clean ones")
        for index, (a, b) in enumerate(zip(noisy, clean)):
            if a.shape != b.shape:
                raise ValueError(f"validation pair {index}: noisy {a.shape} and clean {b.shape} differ in size")
    return list(zip(noisy, clean))


class BlindSpotTraining:
    """A ``Task`` for the trainer: blind-spot denoising learned from noisy patches.

    ``sigma`` is the known noise level on the 0..255 scale, or None for a model that learns it
    (``global`` or ``per-image`` noise).  ``validation`` holds ``(noisy, clean)`` pairs from
    :func:`load_validation`, scored at ``validation_sigma`` (0..255; None: the model's own
    estimate).  The sampler must hold noisy images: the loss compares the model's prediction
    with the very patch it was given, never with a clean image.
    """

    scored = ("psnr", "psnr_mean")  # validation PSNR of each of ``estimates``

    def __init__(self, sampler: PatchSampler, sigma: float | None,
                 validation: list[tuple[np.ndarray, np.ndarray]] = (),
                 validation_sigma: float | None = None) -> None:
        if sigma is not None and not sigma > 0:
            raise ValueError("the known noise level must be positive (the likelihood divides by it)")
        self.sampler = sampler
        self.sigma = sigma
        self.validation = list(validation)
        self.validation_sigma = validation_sigma

    def parameter_groups(self, model: nn.Module) -> list[dict]:
        """The noise level's parameters (a learned level's) in a group of their own, at
        ``NOISE_LR_SCALE`` times the learning rate."""
        named = list(model.named_parameters())
        noise = [p for name, p in named if name.startswith(("noise_net.", "noise_logit"))]
        rest = [p for name, p in named if not name.startswith(("noise_net.", "noise_logit"))]
        return [{"params": rest}] + ([{"params": noise, "lr_scale": NOISE_LR_SCALE}] if noise else [])

    def batch(self, size: int, generator: torch.Generator, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        noisy = self.sampler.sample(size, generator, device)
        sigma = None if self.sigma is None else torch.full((size,), self.sigma / 255.0, device=device)
        return noisy, sigma

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """Mean negative log-likelihood per pixel (float64 maths, returned as float32)."""
        noisy, sigma = batch
        parts = model(noisy, sigma, parts=True)
        return gaussian_nll(noisy, parts.mean, parts.factor, parts.sigma).mean().float()

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """PSNR (dB, P1 rounding) of the posterior mean and of the blind-spot mean, and for a
        model that estimates sigma its mean estimate (0..255)."""
        if not self.validation:
            return {}
        scores: dict[str, list[float]] = {"psnr": [], "psnr_mean": [], "sigma_estimate": []}
        for noisy, clean in self.validation:
            x = torch.from_numpy(noisy).permute(2, 0, 1)[None].to(device)
            if self.validation_sigma is not None:
                sigma = torch.tensor([self.validation_sigma / 255.0], device=device)
            elif model.estimates_sigma:
                sigma = model.learned_sigma(x)  # over the whole image, before tiling
                scores["sigma_estimate"].append(float(sigma[0]) * 255.0)
            else:
                sigma = None  # a network without the blind spot has no use for the level

            def outputs(window: torch.Tensor, sigma: torch.Tensor | None = sigma) -> torch.Tensor:
                return torch.cat(self.estimates(model, window, sigma), dim=1)

            out = apply_tiled(outputs, x, VALIDATION_TILE, model.receptive_radius)[0].permute(1, 2, 0).cpu().numpy()
            c = clean.shape[-1]
            for index, name in enumerate(self.scored):
                scores[name].append(psnr(quantize_uint8(out[..., index * c: (index + 1) * c]), clean))
        return {name: float(np.mean(values)) for name, values in scores.items() if values}

    @staticmethod
    def estimates(model: nn.Module, window: torch.Tensor, sigma: torch.Tensor | None) -> list[torch.Tensor]:
        """Posterior mean and blind-spot mean, from one pass."""
        parts = model(window, sigma, parts=True)
        return [posterior_mean(window, parts.mean, parts.factor, parts.sigma).float(), parts.mean.float()]


class MaskedTraining(BlindSpotTraining):
    """A ``Task`` for the Noise2Void-style baseline: the network without the blind spot
    (``blind=False``) learns to predict masked pixels of noisy patches from their neighbours."""

    scored = ("psnr",)

    def __init__(self, sampler: PatchSampler, validation: list[tuple[np.ndarray, np.ndarray]] = (),
                 fraction: float = MASK_FRACTION) -> None:
        super().__init__(sampler, None, validation)
        self.fraction = fraction

    def batch(self, size: int, generator: torch.Generator, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(inputs, noisy, mask)``: the noisy patches with the masked pixels replaced."""
        noisy = self.sampler.sample(size, generator)
        b, c, h, w = noisy.shape
        mask = torch.rand((b, 1, h, w), generator=generator) < self.fraction
        side = 2 * NEIGHBOUR_RADIUS + 1
        choice = torch.randint(0, side * side - 1, (b, 1, h, w), generator=generator)
        choice = choice + (choice >= side * side // 2).long()  # skip the centre of the window
        rows = _reflect(torch.arange(h).view(1, 1, h, 1) + choice // side - NEIGHBOUR_RADIUS, h)
        cols = _reflect(torch.arange(w).view(1, 1, 1, w) + choice % side - NEIGHBOUR_RADIUS, w)
        index = (rows * w + cols).flatten(1)[:, None].expand(b, c, h * w)
        replaced = noisy.flatten(2).gather(2, index).view(b, c, h, w)
        inputs = torch.where(mask, replaced, noisy)
        return inputs.to(device), noisy.to(device), mask.to(device)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean squared error at the masked pixels."""
        inputs, noisy, mask = batch
        error = (model(inputs).float() - noisy) ** 2 * mask
        return error.sum() / (mask.sum() * noisy.shape[1]).clamp_min(1)

    @staticmethod
    def estimates(model: nn.Module, window: torch.Tensor, sigma: torch.Tensor | None) -> list[torch.Tensor]:
        return [model(window).float()]


def _reflect(position: torch.Tensor, size: int) -> torch.Tensor:
    """Positions mirrored into ``0..size-1`` without repeating the edge, so a neighbour is
    never the pixel itself."""
    position = position.abs()
    return torch.where(position > size - 1, 2 * (size - 1) - position, position)
