"""Training the CNN MAP denoiser D with its auxiliary DAE R (Bigdeli et al., VISAPP 2020).

Per batch of clean patches v (0..255 noise levels below are divided by 255):

    L_R   = mean (R(v + n_R) - v)^2,                                    n_R ~ N(0, sigma_R^2)
    L_MAP = 1/sigma_R^2 mean (D(v') - sg(R(D(v') + n)))^2 + rho_t/2 mean (D(v') - v')^2,
                                                            n ~ N(0, sigma_R^2), rho_t = 2/sigma_R^2

where sg is stop-gradient and v' is D's input (``v`` itself, or ``v`` plus noise, see below).
Since ``R(x) - x ~ sigma_R^2 grad log p_sigmaR(x)``, the gradient of the first term with respect
to D(v') is, in expectation over n, ``-2 grad log p_sigmaR(D(v'))``; so at a stationary point D(v')
solves ``argmin_x -log p_sigmaR(x) + 1/(2 sigma_R^2) ||x - v'||^2``: D is the MAP denoiser for
noise sigma_R, the proximal step of ADMM with rho = 1/sigma_R^2.

Decisions on the points METHODS.md section 1 leaves open:

* **rho and sigma_R are one parameter.**  rho_t = 2/sigma_R^2 makes the effective rho 1/sigma_R^2,
  and ``dncli deblur`` runs ADMM with exactly ``MapDenoiserPair.rho = 1/sigma_R^2``; the
  authors' notebooks nudge it (1/(7^2 + 10), 1/(11^2 - 40)) "to help convergence", an untested
  tuning left out.  The data step sees only (sigma_n / sigma_R)^2, so the scale (0..255 in the
  authors' code, [0, 1] here) does not matter as long as it is the same for both.
* **The loss is sigma_R^2 L_MAP + L_R**, the paper's L_MAP scaled by sigma_R^2.  That changes
  neither D's stationary points nor what Adam does with D's own gradients, but keeps both terms
  on the scale of an MSE: the trainer clips the *joint* gradient norm of R and D, and an
  unscaled L_MAP (about 1300 times larger at sigma_R = 7) would make that clip shrink R's
  gradients at every step.
* **One step trains both.**  The authors alternate an R step and a D step per batch; here one
  backward pass gives R the gradient of L_R only (its output in the D term is computed without
  gradient) and D the gradient of L_MAP only, so one Adam step updates both with independent
  gradients -- a simultaneous (Jacobi) version of the alternation, half the optimiser calls.
* **D's inputs** are clean patches by default (``input_sigma = (0, 0)``), as in the authors'
  code; ``input_sigma = (low, high)`` adds Gaussian noise of a level drawn per patch from that
  range (0..255) to D's inputs, closer to what ADMM feeds D (x + u is a noisy, partly
  deblurred image).  R always trains on clean patches plus sigma_R noise, since it must model
  the smoothed prior of clean images.

A tiny CPU experiment checked these choices and ADMM's step order (``engine/algorithms/pnp.py``).
Gray pairs of 6 layers x 24 channels, sigma_R = 7, 800 steps of 16 patches of 32 x 32 from
Train400 (Adam 1e-3), one trained on clean inputs and one with input noise 0..14; ADMM
(circular, sigma_n = 2.55, at most 75 iterations) on 128 x 128 centre crops of the first 4
Set12 images with Levin kernels 1 and 4 (8 cases, mean PSNR; blurred input 18.07 dB, the
Wiener filter of ``benchmarks/deblur.py`` 26.67 dB):

=======================  ============  ============  ================================
D's inputs               x, z, u       x, u, z       x, z, u with rho = 1/(7^2 + 10)
=======================  ============  ============  ================================
clean (0, 0)             29.42 (66 it) 29.42 (65 it) 29.33
noisy (0, 14)            29.50 (67 it) 29.50 (66 it) 29.48
=======================  ============  ============  ================================

The two step orders give the same result; the authors' rho perturbation costs 0.02-0.09 dB;
noisy inputs gain 0.08 dB in ADMM and 0.23 dB in one pass of D on sigma_R noise (34.54 against
34.31 dB) -- consistent but small at this scale, so the default stays with the authors' clean
inputs and the full-size training should try ``--input-sigma 0,14``.  R scored the same
(37.12 dB) in both runs, as it must when D's loss does not reach R's parameters.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import psnr, quantize_uint8
from ..physics.noise import protocol_noisy
from .data import PatchSampler, device_generator


class MapDenoiserTraining:
    """A ``Task`` for the trainer, for a ``map-denoiser`` model (``engine/models/mapdenoiser.py``).

    ``sigma_r`` is the noise level of R and of D's MAP problem and ``input_sigma`` the range of
    noise levels added to D's inputs, both on the 0..255 scale.  Validation adds P1 noise of
    level sigma_R to ``validation_images`` (uint8 ``[H, W, C]``) and reports the PSNR of one
    pass of D (``psnr_map``) and of R (``psnr_aux``).
    """

    def __init__(self, sampler: PatchSampler, sigma_r: float, input_sigma: tuple[float, float] = (0.0, 0.0),
                 validation_images: list[np.ndarray] = ()) -> None:
        if sigma_r <= 0:
            raise ValueError(f"sigma_r must be positive, got {sigma_r}")
        low, high = input_sigma
        if not 0 <= low <= high:
            raise ValueError(f"input_sigma must be 0 <= low <= high, got {input_sigma}")
        self.sampler = sampler
        self.sigma_r = sigma_r / 255.0
        self.input_sigma = (low / 255.0, high / 255.0)
        self.validation_images = list(validation_images)

    def batch(self, size: int, generator: torch.Generator, device: torch.device):
        """``(clean, D's input, R's noise, noise added to D's output)``, each ``[size, C, P, P]``."""
        clean = self.sampler.sample(size, generator, device)
        low, high = self.input_sigma
        level = (low + (high - low) * torch.rand(size, generator=generator)).to(device)
        noise = torch.randn((3, *clean.shape), generator=device_generator(generator, device), device=device)
        inputs = clean + noise[0] * level.view(-1, 1, 1, 1)
        return clean, inputs, noise[1] * self.sigma_r, noise[2] * self.sigma_r

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        clean, inputs, aux_noise, probe_noise = batch
        estimate, aux_out = model(inputs, self.sigma_r, aux_input=clean + aux_noise)
        estimate, aux_out = estimate.float(), aux_out.float()
        pair = getattr(model, "module", model)  # under DistributedDataParallel, the wrapped pair
        with torch.no_grad():  # sg(.): R is a fixed critic in D's term, and gets no gradient from it
            target = pair.aux(estimate.detach() + probe_noise).float()
        loss_aux = F.mse_loss(aux_out, clean)
        loss_map = F.mse_loss(estimate, target) + F.mse_loss(estimate, inputs)
        return loss_aux + loss_map

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        sigma = self.sigma_r * 255.0
        scores: dict[str, list[float]] = {"psnr_map": [], "psnr_aux": []}
        for index, image in enumerate(self.validation_images):
            clean = image.astype(np.float32) / 255.0
            noisy = torch.from_numpy(protocol_noisy(clean, sigma, index)).permute(2, 0, 1)[None].to(device)
            for name, network in (("psnr_map", model.map), ("psnr_aux", model.aux)):
                out = network(noisy)[0].permute(1, 2, 0).float().cpu().numpy()
                scores[name].append(psnr(quantize_uint8(out), image))
        return {name: float(np.mean(values)) for name, values in scores.items() if values}
