"""Plug-and-play non-blind deblurring: y = K x + n, n ~ N(0, sigma_n^2), with a denoiser as prior.

Two solvers share one closed-form data step and one boundary model:

* :func:`admm` -- ADMM with a fixed penalty rho (scaled dual), for a MAP denoiser trained for one
  rho (Bigdeli et al., VISAPP 2020; ``engine/models/mapdenoiser.py``).  It minimises
  ``1/(2 sigma_n^2) ||K x - y||^2 - log p(x)`` by the splitting x = z::

      x <- argmin_x 1/(2 sigma_n^2) ||K x - y||^2 + rho/2 ||x - (z - u)||^2    (FFT, closed form)
      z <- D(x + u)                    (the MAP denoiser: the proximal step of -log p for this rho)
      u <- u + x - z

  The step order is the textbook one (x, z, u); the authors' code runs x, u, z, which gave the
  same PSNR in a small test (``engine/training/map_denoiser.py``).  rho belongs to the denoiser:
  a MAP denoiser trained with auxiliary noise sigma_R solves
  ``argmin -log p(x) + 1/(2 sigma_R^2) ||x - v||^2``, so ``rho = 1 / sigma_R^2``.
* :func:`hqs` -- half-quadratic splitting with a decreasing noise schedule for a noise-conditional
  MMSE denoiser (DPIR, Zhang et al., TPAMI 2021): ``x <- argmin ||K x - y||^2 + a_k ||x - z||^2``
  with ``a_k = lam sigma_n^2 / s_k^2``, then ``z <- D(x, s_k)``, the levels s_k log-spaced from
  49/255 down to the noise level.  It runs the whole schedule: stopping early would leave the
  last denoising step at a level far above the noise.

Scales: images in [0, 1], every sigma on the [0, 1] scale (``25/255`` for 25) and rho in
1/(that scale)^2.  Only the ratio ``rho sigma_n^2 = (sigma_n / sigma_R)^2`` enters the data
step, so any one scale gives the same result as long as it is used for both.

Boundaries.  ``boundary="circular"`` treats the blur as circular (the P2 protocol of
BENCHMARK.md), so the FFT solve is exact.  Real photographs are not periodic: there the
observation is the *valid* part of the blur of a larger scene, and a circular solve rings at
the borders.  ``boundary="valid"`` solves for the scene on the observation padded by the
kernel's reach (edge-replicated and edge-tapered towards its circular blur, so the periodic
extension has no seam), and before every data step replaces the padded part of the target by
the blur of the current estimate.  That makes the padded pixels cost nothing at the current
estimate -- a majorise-minimise step of the masked data term ``||M (K x - y)||^2`` -- while
the circular FFT solve still applies; the result is cropped back to the observation.

Every solver calls ``denoiser(x, sigma)`` on ``[B, C, H, W]`` tensors and nothing else, so it
works with any network (or any function) honouring that contract.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import scipy.fft
import torch

from ..geometry import dihedral, undo_dihedral

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None]

BOUNDARIES = ("valid", "circular")

# Noise floor on the [0, 1] scale for the data term: 8-bit rounding alone leaves white noise
# of 1/sqrt(12) grey levels, and a zero sigma would turn the data step into the inverse filter,
# which divides by the kernel's zeros.
MIN_NOISE_SIGMA = 1.0 / (255.0 * math.sqrt(12.0))

# DPIR's schedule: start at 49/255, where the denoiser removes the ringing of the first data
# step, end at the noise level but not below 1/255, and weigh the data term with lam = 0.23.
HQS_SIGMA_START = 49.0 / 255.0
HQS_SIGMA_END_MIN = 1.0 / 255.0
HQS_WEIGHT = 0.23

# ADMM stops when its relative change has not reached a new low for this many iterations.
ADMM_STALL_PATIENCE = 5


@dataclass
class PnPResult:
    """``image`` is the estimate ``[B, C, H, W]`` (size of the observation, not clipped);
    ``iterations`` how many were run; ``converged`` whether ADMM met its tolerance (None for
    HQS, which runs a schedule rather than seeking a fixed point)."""

    image: torch.Tensor
    iterations: int
    converged: Optional[bool]


def kernel_otf(kernel: np.ndarray, shape: tuple[int, int], device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The optical transfer function of ``kernel`` on an ``H x W`` periodic grid.

    ``kernel`` is a 2-D array of any size, used as given, its centre at ``(kh // 2, kw // 2)``
    (the convention of ``engine.physics.blur``); taps beyond the grid wrap around, so a kernel
    larger than the image is still a valid circular blur.  Returns the ``rfft2`` of the wrapped
    kernel, ``[H, W // 2 + 1]`` complex, such that ``irfft2(otf * rfft2(x))`` equals
    ``blur(x, kernel, "wrap")``.  Built in float64, then cast to the complex type of ``dtype``.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"kernel must be a non-empty 2-D array, got shape {k.shape}")
    h, w = shape
    psf = np.zeros((h, w))
    rows = (np.arange(k.shape[0]) - k.shape[0] // 2) % h
    cols = (np.arange(k.shape[1]) - k.shape[1] // 2) % w
    np.add.at(psf, (rows[:, None], cols[None, :]), k)
    otf = torch.fft.rfft2(torch.from_numpy(psf))
    return otf.to(device=device, dtype=torch.complex64 if dtype != torch.float64 else torch.complex128)


def circular_blur(x: torch.Tensor, otf: torch.Tensor) -> torch.Tensor:
    """``x`` ``[..., H, W]`` convolved circularly with the kernel whose :func:`kernel_otf` is ``otf``."""
    return torch.fft.irfft2(otf * torch.fft.rfft2(x), s=x.shape[-2:])


def fft_data_step(blurred_target_hat: torch.Tensor, otf_power: torch.Tensor, v: torch.Tensor,
                  alpha: float) -> torch.Tensor:
    """The exact minimiser of ``||K x - t||^2 + alpha ||x - v||^2`` for a circular blur K.

    ``blurred_target_hat`` is ``conj(otf) * rfft2(t)`` and ``otf_power`` is ``|otf|^2`` (both
    from :func:`kernel_otf`), ``v`` is ``[B, C, H, W]`` and ``alpha > 0`` is dimensionless.
    The normal equations ``(K^T K + alpha I) x = K^T t + alpha v`` are diagonal in the Fourier
    basis, so they are solved by one division per frequency.
    """
    numerator = blurred_target_hat + alpha * torch.fft.rfft2(v)
    return torch.fft.irfft2(numerator / (otf_power + alpha), s=v.shape[-2:])


class BlurProblem:
    """The observation, its kernel and boundary model, and the data step on them.

    ``y`` is ``[B, C, H, W]`` (float, [0, 1] nominal, noisy values unclipped), ``kernel`` a 2-D
    array (see :func:`kernel_otf`), ``boundary`` ``"valid"`` or ``"circular"`` (module docstring).
    The solvers work on the padded domain in ``valid`` mode; :meth:`crop` maps back.
    """

    def __init__(self, y: torch.Tensor, kernel: np.ndarray, boundary: str = "valid") -> None:
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
        if y.dim() != 4:
            raise ValueError(f"observation must be [B, C, H, W], got shape {tuple(y.shape)}")
        kh, kw = np.asarray(kernel).shape
        h, w = y.shape[-2:]
        if boundary == "valid":
            # Output pixel i of a convolution reads input pixels i - (kh - 1 - kh // 2) .. i + kh // 2.
            # The bottom and right pads also round the domain up to a fast FFT length (lengths
            # with a large prime factor are several times slower); extra padding is unobserved
            # like the rest, so it changes nothing but the speed.
            top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
            bottom = scipy.fft.next_fast_len(h + top + kh // 2) - h - top
            right = scipy.fft.next_fast_len(w + left + kw // 2) - w - left
            self.pads = (top, bottom, left, right)
        else:
            self.pads = (0, 0, 0, 0)
        top, bottom, left, right = self.pads
        self.height, self.width = h, w
        shape = (h + top + bottom, w + left + right)
        self.otf = kernel_otf(kernel, shape, y.device, y.dtype)
        self.otf_power = self.otf.abs().square()
        if boundary == "circular":
            self.observed = y
            self.mask = None
            self.initial = y
            self._fixed_target_hat = torch.conj(self.otf) * torch.fft.rfft2(y)
        else:
            padded = torch.nn.functional.pad(y, (left, right, top, bottom), mode="replicate")
            self.observed = padded
            self.mask = torch.zeros(shape, dtype=torch.bool, device=y.device)
            self.mask[top : top + h, left : left + w] = True
            weight = _taper(shape, self.pads, y.device, y.dtype)
            self.initial = weight * padded + (1 - weight) * circular_blur(padded, self.otf)
            self._fixed_target_hat = None

    def data_step(self, v: torch.Tensor, alpha: float, estimate: torch.Tensor | None) -> torch.Tensor:
        """``argmin_x ||K x - t||^2 + alpha ||x - v||^2`` on the working domain.

        ``t`` is the observation; in ``valid`` mode its padded part is the blur of ``estimate``
        (the current image estimate on the working domain), or the edge-tapered padding when
        ``estimate`` is None (the first step).
        """
        if self._fixed_target_hat is not None:
            target_hat = self._fixed_target_hat
        else:
            if estimate is None:
                target = self.initial
            else:
                target = torch.where(self.mask, self.observed, circular_blur(estimate, self.otf))
            target_hat = torch.conj(self.otf) * torch.fft.rfft2(target)
        return fft_data_step(target_hat, self.otf_power, v, alpha)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The part of a working-domain image that lies on the observation."""
        top, _, left, _ = self.pads
        return x[..., top : top + self.height, left : left + self.width]


def _taper(shape: tuple[int, int], pads: tuple[int, int, int, int], device: torch.device,
           dtype: torch.dtype) -> torch.Tensor:
    """Weights ``[H, W]``: one on the observation, falling linearly across each pad to near zero
    at the outer edge, where the padding is replaced by its blur (smooth across the wrap)."""
    top, bottom, left, right = pads

    def ramp(length: int, before: int, after: int) -> torch.Tensor:
        weight = torch.ones(length, dtype=dtype, device=device)
        weight[:before] = torch.arange(1, before + 1, dtype=dtype, device=device) / (before + 1)
        if after:
            weight[length - after :] = torch.arange(after, 0, -1, dtype=dtype, device=device) / (after + 1)
        return weight

    return ramp(shape[0], top, bottom)[:, None] * ramp(shape[1], left, right)[None, :]


def admm(y: torch.Tensor, kernel: np.ndarray, denoiser: Denoiser, noise_sigma: float, rho: float, *,
         max_iterations: int = 75, tolerance: float = 1e-4, boundary: str = "valid",
         callback: Callback | None = None) -> PnPResult:
    """Deblur ``y`` ``[B, C, H, W]`` by ADMM with a fixed ``rho`` (module docstring).

    ``noise_sigma`` is sigma_n on the [0, 1] scale (raised to ``MIN_NOISE_SIGMA``); ``rho`` > 0
    in 1/(the same scale)^2 -- ``1 / sigma_R^2`` for a MAP denoiser trained with sigma_R.  The
    denoiser is called as ``denoiser(x + u, 1 / sqrt(rho))``: the noise level whose MAP step it
    is asked to take.  Stops after ``max_iterations``, when the relative change of the
    estimate, ``||z_k - z_{k-1}|| / ||z_{k-1}||``, falls below ``tolerance`` (converged), or when
    it has not reached a new low for ``ADMM_STALL_PATIENCE`` iterations: the rounding of a
    reduced-precision denoiser (bf16) sets a floor near 1.5e-3, where the estimate has stopped
    improving (ADMM + map-color on kodim01 in bf16: 29.60 dB where it stalls, after 47
    iterations, as after 75; 29.59 dB at convergence in float32, also after 47).  ``callback(k,
    estimate)`` is called after iteration k = 1, 2, ... with the estimate on the observation.
    """
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    if max_iterations < 1:
        raise ValueError("max_iterations must be at least 1")
    problem = BlurProblem(y, kernel, boundary)
    alpha = rho * max(noise_sigma, MIN_NOISE_SIGMA) ** 2
    level = 1.0 / math.sqrt(rho)
    z = problem.initial
    u = torch.zeros_like(z)
    converged = False
    smallest_change, smallest_at = math.inf, 0
    for iteration in range(1, max_iterations + 1):
        x = problem.data_step(z - u, alpha, None if iteration == 1 else z)
        previous = z
        z = denoiser(x + u, level)
        u = u + x - z
        if callback is not None:
            callback(iteration, problem.crop(z))
        change = (torch.linalg.vector_norm(z - previous) / torch.linalg.vector_norm(previous).clamp_min(1e-12)).item()
        if change < tolerance:
            converged = True
            break
        if change < smallest_change:
            smallest_change, smallest_at = change, iteration
        elif iteration - smallest_at >= ADMM_STALL_PATIENCE:
            break
    return PnPResult(problem.crop(z), iteration, converged)


def noise_schedule(noise_sigma: float, iterations: int, start: float = HQS_SIGMA_START,
                   end_min: float = HQS_SIGMA_END_MIN) -> list[float]:
    """Denoiser levels of :func:`hqs` ([0, 1] scale): ``iterations`` values log-spaced from
    ``start`` down to ``max(noise_sigma, end_min)`` (constant when the noise is above ``start``)."""
    end = max(noise_sigma, end_min)
    start = max(start, end)
    if iterations == 1:
        return [end]
    return [float(s) for s in np.geomspace(start, end, iterations)]


def hqs(y: torch.Tensor, kernel: np.ndarray, denoiser: Denoiser, noise_sigma: float, *,
        iterations: int = 8, weight: float = HQS_WEIGHT, boundary: str = "valid", ensemble: bool = True,
        callback: Callback | None = None) -> PnPResult:
    """Deblur ``y`` ``[B, C, H, W]`` by half-quadratic splitting over :func:`noise_schedule`.

    ``noise_sigma`` is sigma_n on the [0, 1] scale; ``iterations`` >= 1 is the length of the
    schedule; ``weight`` is DPIR's lam (dimensionless).  ``denoiser(x, s_k)`` must accept any
    level s_k in the schedule (a noise-conditional network).  With ``ensemble`` iteration k
    denoises the image flipped/rotated by the k-th of the 8 dihedral transforms and undoes it,
    a self-ensemble that costs nothing extra and averages away the network's orientation bias
    over the iterations.  ``callback`` as in :func:`admm`.
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    problem = BlurProblem(y, kernel, boundary)
    sigma_d = max(noise_sigma, MIN_NOISE_SIGMA)
    z = problem.initial
    for iteration, level in enumerate(noise_schedule(noise_sigma, iterations), start=1):
        x = problem.data_step(z, weight * sigma_d**2 / level**2, None if iteration == 1 else z)
        transform = (iteration - 1) % 8 if ensemble else 0
        z = undo_dihedral(denoiser(dihedral(x, transform), level), transform)
        if callback is not None:
            callback(iteration, problem.crop(z))
    return PnPResult(problem.crop(z), iterations, None)

