"""Noise models.  Sigma is on the 0..255 scale in every argument, images are in [0, 1]."""
from __future__ import annotations

import numpy as np


def protocol_noisy(clean: np.ndarray, sigma: float, index: int) -> np.ndarray:
    """The P1 noisy image of ``BENCHMARK.md``: seeded by ``[int(sigma), index]``, not clipped."""
    rng = np.random.default_rng([int(sigma), index])
    noisy = np.asarray(clean, dtype=np.float64) + rng.standard_normal(clean.shape) * sigma / 255.0
    return noisy.astype(np.float32)


def gaussian(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise of standard deviation ``sigma``/255, not clipped."""
    return (image + rng.standard_normal(image.shape) * (sigma / 255.0)).astype(np.float32)


def poisson(image: np.ndarray, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: photon counts with mean ``image * peak``, scaled back by ``peak``."""
    if peak <= 0:
        raise ValueError("the Poisson peak must be positive")
    counts = rng.poisson(np.clip(image, 0, None) * peak)
    return (counts / peak).astype(np.float32)
