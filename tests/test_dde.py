"""Denoising density estimators: log Z, the DDE loss, generator training, data, and the dde-* commands."""
from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, assert_clean_error, free_port, run_dncli
from denoise_cli.engine import registry, weights
from denoise_cli.engine.algorithms import sampling
from denoise_cli.engine.models.dde import DDEConfig, DDEModel
from denoise_cli.engine.training.dde import DDEObjective, DDESchedule, DDETraining
from denoise_cli.engine.training.dde_data import TOYS, DDEData, load_data, read_idx
from denoise_cli.engine.training.trainer import TrainConfig, train

TINY = {"width": 16, "depth": 2, "generator_width": 16, "generator_depth": 2}
TINY_CLI = ["--width", "16", "--depth", "2", "--gen-width", "16", "--gen-depth", "2", "--batch-size", "64",
            "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def blob(centre: tuple[float, float], std: float) -> DDEData:
    """A finite 2-D Gaussian data set of 4000 points."""
    generator = torch.Generator().manual_seed(0)
    values = torch.tensor(centre) + std * torch.randn(4000, 2, generator=generator)
    return DDEData("blob", (2,), values=values)


def fit(model, data: DDEData, schedule: DDESchedule, path: Path, steps: int, batch: int = 256,
        lr: float = 3e-3, on_event=lambda event: None):
    config = TrainConfig(max_steps=steps, batch_size=batch, learning_rate=lr, warmup_steps=10, log_every=10,
                         validate_every=0, checkpoint_every=1e9)
    return train(model, DDETraining(model, data, schedule), config, path, {}, torch.device("cpu"),
                 on_event=on_event)


# --- log Z and likelihood -------------------------------------------------------------------------

def gaussian(mean: torch.Tensor | float, std: float, dim: int) -> sampling.Proposal:
    return sampling.Proposal.diagonal(mean, std, dim)


@pytest.mark.parametrize("dim", [2, 8])
def test_log_z_of_an_exact_gaussian_is_zero_and_shifts_with_a_constant(dim: int):
    # f = the exact log-density of N(m, s^2 I): Z = 1.  A mean over dimensions instead of a sum in
    # log N, or an extra +1 in the log-mean-exp (METHODS.md section 3), would be off by nats here.
    exact = gaussian(torch.linspace(-0.5, 0.5, dim), 0.8, dim).log_density
    proposal = gaussian(0.0, math.sqrt(1 + 0.5 ** 2), dim)
    log_z = sampling.log_normalizer(exact, proposal, samples=65536, generator=torch.Generator().manual_seed(1))
    assert abs(log_z) < 0.03
    shifted = sampling.log_normalizer(lambda x: exact(x) + 3.0, proposal, samples=65536,
                                      generator=torch.Generator().manual_seed(1))
    assert shifted == pytest.approx(log_z + 3.0, abs=1e-9)


def test_proposal_densities_sum_over_dimensions_and_match_torch():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor([0.1, -0.2, 0.3]), torch.tensor([0.5, 1.0, 2.0])
    expected = torch.distributions.Normal(mean, std).log_prob(x).sum(1).double()
    assert torch.allclose(sampling.Proposal.diagonal(mean, std, 3).log_density(x), expected, atol=1e-6)
    scale = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]], dtype=torch.float64)
    full = torch.distributions.MultivariateNormal(mean.double(), scale_tril=scale).log_prob(x.double())
    assert torch.allclose(sampling.Proposal(mean.double(), scale).log_density(x), full, atol=1e-9)


def test_a_fitted_proposal_normalises_a_correlated_gaussian_in_64_dimensions():
    # An 8x8 patch whose pixels correlate as 0.9^distance, as in natural images.  The diagonal
    # proposal's estimate of this Z = 1 density is tens of nats low; the fitted one is exact.
    dim = 64
    generator = torch.Generator().manual_seed(2)
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    pixels = torch.stack([rows.flatten(), cols.flatten()], 1).double()
    covariance = 0.05 * 0.9 ** torch.cdist(pixels, pixels) + 1e-4 * torch.eye(dim, dtype=torch.float64)
    target = sampling.Proposal(torch.zeros(dim, dtype=torch.float64), torch.linalg.cholesky(covariance))
    data = target.sample(20000, generator)
    log_z = sampling.log_normalizer(target.log_density, sampling.fitted_proposal(data, 0.0), samples=32768,
                                    generator=generator)
    assert abs(log_z) < 0.1
    diagonal = sampling.Proposal.diagonal(data.mean(0), data.std(0), dim)
    assert sampling.log_normalizer(target.log_density, diagonal, samples=32768, generator=generator) < -10


def test_annealed_importance_sampling_normalises_where_plain_importance_sampling_fails():
    # A narrow Gaussian (log Z = 2) far inside a broad proposal, in 16 dimensions: the proposal's
    # draws almost never land on it, while annealing walks the chains there.
    dim = 16
    narrow = sampling.Proposal(torch.full((dim,), -1.0, dtype=torch.float64), 0.3 * torch.eye(dim, dtype=torch.float64))
    target = lambda x: narrow.log_density(x) + 2.0  # noqa: E731
    broad = gaussian(0.0, 1.5, dim)
    plain = sampling.log_normalizer(target, broad, samples=8192, generator=torch.Generator().manual_seed(0))
    annealed = sampling.annealed_log_normalizer(target, broad, chains=256, steps=1000,
                                                generator=torch.Generator().manual_seed(0))
    assert plain < -5
    assert annealed == pytest.approx(2.0, abs=0.1)


def test_log_likelihood_of_the_exact_model_is_the_gaussian_entropy():
    dim, std = 4, 0.7
    data = std * torch.randn(20000, dim, generator=torch.Generator().manual_seed(3))
    exact = lambda x: gaussian(0.0, std, dim).log_density(x) - 5.0  # noqa: E731  (unnormalised)
    result = sampling.log_likelihood(exact, data, gaussian(0.0, 1.2, dim), repeats=3, samples=32768)
    entropy = 0.5 * dim * (1 + math.log(2 * math.pi * std ** 2))
    assert result.mean == pytest.approx(-entropy, abs=0.05)
    assert len(result.log_z) == 3 and 0 < result.std < 0.05


class ExactMixture(torch.nn.Module):
    """The exact log-density, at every noise level, of two 2-D Gaussians of unequal mass five
    standard deviations apart: a conditional DDE that has learnt perfectly."""

    def __init__(self) -> None:
        super().__init__()
        self.config = DDEConfig(shape=(2,), sigma=0.05, sigma_max=2.0, conditional=True, generator=False)
        self.centres = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
        self.log_weights = torch.tensor([0.8, 0.2]).log()
        self.register_buffer("data_mean", torch.tensor([-0.6, 0.1]))  # the mixture's moments
        self.register_buffer("data_var", torch.tensor([0.68, 0.08]))

    def energy(self, x: torch.Tensor, level: float, network: str = "real") -> torch.Tensor:
        variance = 0.2 ** 2 + level ** 2
        squared = ((x.unsqueeze(1) - self.centres) ** 2).sum(-1)
        return torch.logsumexp(self.log_weights - squared / (2 * variance), 1) - math.log(2 * math.pi * variance)

    def score(self, x: torch.Tensor, level: float) -> torch.Tensor:
        with torch.enable_grad():
            point = x.detach().requires_grad_(True)
            return torch.autograd.grad(self.energy(point, level).sum(), point)[0]

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        choice = (torch.rand(count, generator=generator) < 0.2).long()
        return self.centres[choice] + 0.2 * torch.randn(count, 2, generator=generator)


def test_probability_flow_likelihood_of_an_exact_model_is_the_true_likelihood():
    # The flow carries test points from sigma 0.05 to 2, where the two modes have merged; its
    # log-density change plus the normalised top level must give back the exact likelihood.
    model = ExactMixture()
    test = model.sample(2000, torch.Generator().manual_seed(1))
    flowed, normaliser, proposal = sampling.normalisable_density(model, flow_steps=60)
    result = sampling.log_likelihood(flowed, test, proposal, repeats=2, normaliser=normaliser)
    exact = float(model.energy(test, model.config.sigma).mean())
    assert result.mean == pytest.approx(exact, abs=0.02)
    assert result.log_z[0] == pytest.approx(0.0, abs=0.01)


def test_flow_sampling_of_an_exact_mixture_keeps_the_mass_and_spread_of_each_mode():
    # Started from a Gaussian at sigma_max = 2, where the modes have merged, the flow must split
    # the mass 80 / 20 between them and end with the spread of the lowest level, sqrt(0.2^2 + 0.05^2).
    model = ExactMixture()
    latent = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2))
    samples = sampling.flow_sample(model, latent, steps=30, denoise=False)
    nearest = torch.cdist(samples, model.centres).argmin(1)
    assert float((nearest == 1).float().mean()) == pytest.approx(0.2, abs=0.02)
    for mode in (0, 1):
        spread = (samples[nearest == mode] - model.centres[mode]).std(0)
        assert torch.allclose(spread, torch.full((2,), math.hypot(0.2, 0.05)), rtol=0.1)
    again = sampling.flow_sample(model, latent[:10], steps=30, denoise=False)
    assert torch.equal(again, samples[:10])  # deterministic: a function of the latent


def test_probability_flow_needs_a_conditional_model():
    model = DDEModel(DDEConfig(generator=False))
    with pytest.raises(ValueError, match="conditional"):
        sampling.probability_flow(model, torch.zeros(4, 2))


def test_toy_densities_are_normalised():
    # A Riemann sum over [-4, 4]^2 (every toy lives well inside it), plain and smoothed.
    centres = (torch.arange(120) + 0.5) / 120 * 8 - 4
    grid = torch.stack(torch.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
    for name in ("8-gaussians", "checkerboard", "rings"):
        for sigma in (0.0, 0.1):
            mass = float(TOYS[name].log_density(grid, sigma).exp().sum()) * (8 / 120) ** 2
            assert mass == pytest.approx(1.0, abs=0.01), (name, sigma)


def test_shipped_toy_models_verify_and_reproduce_their_manifest_likelihood():
    entries = weights.manifest()
    for name, toy in TOYS.items():
        entry = entries[f"dde-{name}"]
        model = weights.load_shipped(f"dde-{name}")  # checks the sha256 first
        assert model.arch_name == "dde" and model.config.conditional
        test = toy.sample(2000, torch.Generator().manual_seed(5))
        log_density, normaliser, proposal = sampling.normalisable_density(model, flow_steps=sampling.COARSE_FLOW_STEPS)
        result = sampling.log_likelihood(log_density, test, proposal, repeats=1, samples=16384, normaliser=normaliser)
        # 2000 other test points than the benchmark's 10000 (the per-point spread is about 1 nat),
        # and a coarser flow for a conditional model
        assert result.mean == pytest.approx(entry["metrics"]["test_log_likelihood"]["dde"]["mean"], abs=0.1), name


def test_the_shipped_mnist_model_scores_a_drawn_digit_far_above_noise(tmp_path: Path):
    """dde-density as an out-of-distribution flag: a hand-drawn 0 and 1 against uniform noise."""
    import imageio.v3 as iio

    rows, cols = np.mgrid[0:28, 0:28] - 13.5
    drawings = {"zero": np.abs(np.hypot(rows / 9, cols / 6) - 1) < 0.2,
                "one": (np.abs(cols - 0.2 * rows) < 1.5) & (np.abs(rows) < 10),
                "noise": np.random.default_rng(0).random((28, 28))}
    scores = {}
    for name, drawing in drawings.items():
        path = tmp_path / f"{name}.png"
        iio.imwrite(path, (255 * drawing).astype(np.uint8))
        result = run_dncli("dde-density", "--model", "mnist", str(path), "--no-normalize", "--json", "--threads", "1")
        assert result.returncode == 0, result.stderr
        scores[name] = json.loads(result.stdout)["mean"]
    assert min(scores["zero"], scores["one"]) > scores["noise"] + 1000, scores


def test_the_shipped_unet_mnist_dde_draws_distinct_digits_by_generator_and_flow(tmp_path: Path):
    """Its distilled generator by default (one pass), its probability flow on request (40 passes)."""
    for sampler, shown in ((), b"(generator)"), (("--sampler", "flow"), b"(flow)"):
        result = run_dncli("dde-sample", "--model", "mnist-unet", "-n", "12", "-o", str(tmp_path / "s.npy"),
                           "--threads", "1", *sampler)
        assert result.returncode == 0 and shown in result.stderr, result.stderr.decode()
        digits = torch.from_numpy(np.load(tmp_path / "s.npy")).flatten(1)
        assert digits.shape == (12, 784)
        assert 0.05 < float(digits.clamp(0, 1).mean()) < 0.3  # about the ink of real digits (13 %)
        assert float(torch.pdist(digits).min()) > 2.0  # no two alike (real digits: about 10 apart)


# --- training ---------------------------------------------------------------------------------------

def test_shipped_generators_draw_in_one_pass_close_to_the_data(tmp_path: Path):
    # The toys: the generator's samples, smoothed by the model's level, must score under the
    # true density within a few nats of the data's (a collapsed or scattered generator falls far below).
    toy, generator = TOYS["8-gaussians"], torch.Generator().manual_seed(3)
    model = weights.load_shipped("dde-8-gaussians")
    samples = sampling.generate(model, 4000, generator)
    data = toy.sample(4000, generator)
    level = model.config.sigma
    smoothed = [x + level * torch.randn(x.shape, generator=generator) for x in (samples, data)]
    scores = [float(toy.log_density(x, level).mean()) for x in smoothed]
    assert scores[0] > scores[1] - 1.0
    # MNIST: 64 different images in [0, 1] with about the ink of real digits (13 % mean intensity).
    result = run_dncli("dde-sample", "--model", "mnist", "-n", "64", "-o", str(tmp_path / "s.npy"), "--threads", "1")
    assert result.returncode == 0 and b"(generator)" in result.stderr, result.stderr.decode()
    digits = torch.from_numpy(np.load(tmp_path / "s.npy")).flatten(1)
    assert digits.shape == (64, 784) and 0 <= float(digits.min()) and float(digits.max()) <= 1
    assert 0.05 < float(digits.mean()) < 0.3
    assert float(torch.pdist(digits).min()) > 2.0  # no two alike (real digits: about 10 apart)


def test_dde_loss_falls_and_the_score_points_to_the_data(tmp_path: Path):
    torch.manual_seed(0)
    data = blob((1.0, -0.5), 0.3)
    model = registry.build("dde", {"shape": [2], "sigma": 0.3, "generator": False, **TINY})
    model.set_data_statistics(*data.statistics())
    losses: list[float] = []
    fit(model, data, DDESchedule(sigma=0.3, max_steps=300), tmp_path / "d.pt", 300,
        on_event=lambda e: losses.append(e["loss"]) if e["kind"] == "log" else None)
    # For Gaussian data the best normalised loss is 1 - sigma^2 / (std^2 + sigma^2) = 0.5.
    assert losses[0] > 0.8 and losses[-1] < 0.6
    centre = torch.tensor([1.0, -0.5])
    points = centre + torch.tensor([[0.6, 0.0], [0.0, 0.6], [-0.5, -0.4], [0.4, 0.5]])
    toward = centre - points
    cosine = torch.nn.functional.cosine_similarity(model.score(points), toward, dim=1)
    assert (cosine > 0.9).all(), cosine


def test_short_generator_training_moves_samples_to_the_data(tmp_path: Path):
    torch.manual_seed(0)
    data = blob((2.0, -1.0), 0.25)
    model = registry.build("dde", {"shape": [2], "sigma": 0.5, **TINY})
    # Pretend the data sat at the origin, so the generator starts about 2.2 away from them.
    model.set_data_statistics(torch.zeros(2), torch.full((2,), 0.25))
    generator = torch.Generator().manual_seed(1)
    before = sampling.generate(model, 2000, generator)
    fit(model, data, DDESchedule(sigma=0.5, max_steps=400, generator_every=2), tmp_path / "g.pt", 400)
    after = sampling.generate(model, 2000, generator)
    target = torch.tensor([2.0, -1.0])
    distance = lambda s: float((s - target).norm(dim=1).mean())  # noqa: E731
    assert distance(after) < 0.5 * distance(before), (distance(before), distance(after))


def test_each_network_gets_only_its_own_gradient():
    data = blob((0.0, 0.0), 1.0)
    model = registry.build("dde", {"shape": [2], "sigma": 0.2, **TINY})
    task = DDETraining(model, data, DDESchedule(sigma=0.2, max_steps=10, generator_every=2))
    generator = torch.Generator().manual_seed(0)

    def gradients(step: int, train_real: bool = True) -> dict[str, bool]:
        model.zero_grad(set_to_none=True)
        task.begin_step(step)
        batch = task.batch(32, generator, torch.device("cpu"))
        batch.train_real = train_real
        DDEObjective(model)(batch).backward()
        return {name: all(p.grad is not None for p in part.parameters())
                for name, part in (("real", model.real), ("fake", model.fake), ("generator", model.generator))}

    assert gradients(0) == {"real": True, "fake": True, "generator": False}
    assert gradients(1) == {"real": True, "fake": True, "generator": True}  # (step + 1) % 2 == 0
    # The generator's term alone must leave both DDEs untouched (they are frozen for it).
    model.zero_grad(set_to_none=True)
    task.begin_step(1)
    batch = task.batch(32, generator, torch.device("cpu"))
    batch.train_real, batch.fake_latent = False, None
    loss = DDEObjective(model)(batch)
    assert loss.item() == 0.0  # the KL term is zero-valued; only its gradient matters
    loss.backward()
    assert all(p.grad is None for p in [*model.real.parameters(), *model.fake.parameters()])
    assert any(p.grad.abs().sum() > 0 for p in model.generator.parameters())


def test_resume_is_exact_with_annealing_and_alternation(tmp_path: Path):
    data = blob((0.5, 0.5), 0.5)
    schedule = DDESchedule(sigma=0.2, max_steps=12, anneal_from=0.6, generator_every=3)

    def run(path: Path, resume: bool = False, stop_at: int | None = None) -> dict:
        torch.manual_seed(0)
        model = registry.build("dde", {"shape": [2], "sigma": 0.2, **TINY})

        def interrupt(event: dict) -> None:
            if stop_at is not None and event["kind"] == "log" and event["step"] == stop_at:
                raise KeyboardInterrupt

        config = TrainConfig(max_steps=12, batch_size=16, warmup_steps=2, log_every=1, validate_every=0,
                             checkpoint_every=0.0)
        try:
            train(model, DDETraining(model, data, schedule), config, path, {}, torch.device("cpu"),
                  resume=resume, on_event=interrupt)
        except KeyboardInterrupt:
            pass
        return weights.load_checkpoint(path)

    straight = run(tmp_path / "straight.pt")
    run(tmp_path / "resumed.pt", stop_at=7)
    resumed = run(tmp_path / "resumed.pt", resume=True)
    assert resumed["step"] == 12
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name


def test_schedule_levels():
    annealed = DDESchedule(sigma=0.1, max_steps=100, anneal_from=0.4, anneal_fraction=0.5)
    assert annealed.level(0) == pytest.approx(0.4)
    assert annealed.level(25) == pytest.approx(0.2)
    assert annealed.level(50) == annealed.level(99) == pytest.approx(0.1)
    conditional = DDESchedule(sigma=0.1, max_steps=100, anneal_from=0.4, conditional=True)
    levels = conditional.levels(0, 1000, torch.Generator().manual_seed(0))
    assert levels.min() >= 0.1 and levels.max() <= 0.4 and levels.std() > 0.05


def test_conditional_model_anneals_langevin_through_its_levels(tmp_path: Path):
    torch.manual_seed(0)
    data = blob((0.0, 1.0), 0.2)
    model = registry.build("dde", {"shape": [2], "sigma": 0.1, "conditional": True, "sigma_max": 0.8,
                                   "generator": False, **TINY})
    model.set_data_statistics(*data.statistics())
    fit(model, data, DDESchedule(sigma=0.1, max_steps=300, anneal_from=0.8, conditional=True),
        tmp_path / "c.pt", 300)
    levels = sampling.langevin_levels(model, 5)
    assert levels[0] == pytest.approx(0.8) and levels[-1] == pytest.approx(0.1)
    samples = sampling.langevin(model, 500, torch.Generator().manual_seed(0), steps=30,
                                init=torch.zeros(500, 2) + torch.tensor([2.0, -1.0]))
    assert float((samples.mean(0) - torch.tensor([0.0, 1.0])).norm()) < 0.3
    assert 0.1 < float(samples.std(0).mean()) < 0.4


def test_probability_flow_gets_the_mass_of_separated_modes_that_training_at_the_lowest_level_misses(tmp_path: Path):
    # Two blobs of std 0.05 holding 80 % and 20 % of the data, 40 lowest levels apart: noisy
    # samples at the lowest level never land between them, so f there knows nothing of the 4:1
    # ratio, while the flow brings it down from the highest level, where the blobs merge.
    generator = torch.Generator().manual_seed(0)
    heavy = torch.rand(4000, generator=generator) < 0.8
    values = torch.where(heavy[:, None], torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0]))
    data = DDEData("two blobs", (2,), values=values + 0.05 * torch.randn(4000, 2, generator=generator))
    torch.manual_seed(0)
    model = registry.build("dde", {"shape": [2], "sigma": 0.05, "conditional": True, "sigma_max": 2.0,
                                   "generator": False, **TINY})
    model.set_data_statistics(*data.statistics())
    fit(model, data, DDESchedule(sigma=0.05, max_steps=500, anneal_from=2.0, conditional=True), tmp_path / "c.pt", 500)
    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    flowed = sampling.normalisable_density(model, flow_steps=50)[0](centres)
    plain = sampling.model_log_density(model)(centres)
    flow_error = abs(float(flowed[0] - flowed[1]) - math.log(4))
    plain_error = abs(float(plain[0] - plain[1]) - math.log(4))
    assert flow_error < 0.25 * plain_error


# --- data -------------------------------------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def digits(count: int = 24, side: int = 8) -> np.ndarray:
    """Tiny synthetic 'digits': a bright bar at a random row on black, uint8 [N, side, side]."""
    rng = np.random.default_rng(0)
    images = np.zeros((count, side, side), dtype=np.uint8)
    for image, row in zip(images, rng.integers(1, side - 1, count)):
        image[row, 1:-1] = 255
    return images


@pytest.mark.parametrize("energy", ["conv", "unet"])
def test_an_image_dde_learns_to_denoise_images(tmp_path: Path, energy: str):
    """Tweedie's step x + s^2 grad f of a conv DDE must denoise bars better after training than
    its Gaussian base alone (the Wiener filter of the data's covariance) does; that of a unet DDE
    better than its starting point, the linear denoiser of the data's mean and variance."""
    torch.manual_seed(0)
    images = torch.from_numpy(digits(count=64)).float().div(255).unsqueeze(1)
    data = DDEData("bars", (1, 8, 8), values=images)
    model = registry.build("dde", {"shape": [1, 8, 8], "sigma": 0.05, "conditional": True, "sigma_max": 1.0,
                                   "generator": False, "base": "gaussian" if energy == "conv" else "none",
                                   "energy": energy, "width": 8, "depth": 1})
    if energy == "conv":
        model.set_base(*data.moments(0))
    else:
        model.set_data_statistics(*data.statistics(0))
    level = 0.3
    clean = images[:16]
    noisy = clean + level * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))

    def error() -> float:
        return (noisy + level ** 2 * model.score(noisy, level) - clean).square().mean().item()

    base_only = error()
    fit(model, data, DDESchedule(sigma=0.05, max_steps=600, anneal_from=1.0, conditional=True), tmp_path / "c.pt",
        600, batch=64, lr=3e-3)
    assert error() < 0.6 * base_only, (error(), base_only)


def test_edm_weighting_trains_the_high_levels_faster(tmp_path: Path):
    """Where the noise exceeds the data's spread, denoising after the same steps is closer to the
    best possible with --weighting edm than with the default, which barely weighs those levels."""
    images = torch.from_numpy(digits(count=64)).float().div(255).unsqueeze(1)
    data = DDEData("bars", (1, 8, 8), values=images)
    level, clean, steps = 1.5, images.repeat(4, 1, 1, 1), 200
    noisy = clean + level * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    gains = {}
    for weighting in ("noise", "edm"):
        torch.manual_seed(0)
        model = registry.build("dde", {"shape": [1, 8, 8], "sigma": 0.05, "conditional": True, "sigma_max": 3.0,
                                       "generator": False, "energy": "unet", "width": 8, "depth": 1})
        model.set_data_statistics(*data.statistics(0))

        def error() -> float:
            return (noisy + level ** 2 * model.score(noisy, level) - clean).square().mean().item()

        start = error()  # the linear denoiser of the data's mean and variance
        schedule = DDESchedule(sigma=0.05, max_steps=steps, anneal_from=3.0, conditional=True, weighting=weighting)
        fit(model, data, schedule, tmp_path / f"{weighting}.pt", steps, batch=64, lr=3e-3)
        gains[weighting] = start - error()
    assert gains["edm"] > 1.5 * max(gains["noise"], 0.0), gains  # 2.0-3.2 times over seeds 0-2


def test_idx_round_trip_and_subset(tmp_path: Path):
    images = digits()
    path = write_idx(tmp_path / "imgs-idx3-ubyte.gz", images)
    assert np.array_equal(read_idx(path), images)
    data = load_data(str(path), subset=(4, 20))
    assert data.shape == (1, 8, 8) and len(data) == 16
    assert torch.equal(data.values[0, 0], torch.from_numpy(images[4]))
    labels = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(10), compress=False)
    with pytest.raises(ValueError, match="labels"):
        load_data(str(labels))


# --- the commands -----------------------------------------------------------------------------------

def test_train_sample_density_from_the_command_line(tmp_path: Path):
    model, plot = tmp_path / "m.pt", tmp_path / "plot.png"
    result = run_dncli("dde-train", "toy:8-gaussians", "--max-steps", "30", "-o", str(model), "--plot", str(plot),
                       "--validate-every", "30", "--json", *TINY_CLI)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["step"] == 30 and set(report["history"][-1]) >= {"dde_loss", "log_likelihood", "kl"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    samples = tmp_path / "s.npy"
    result = run_dncli("dde-sample", "--model", str(model), "-n", "16", "-o", str(samples), "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert np.load(samples).shape == (16, 2)

    result = run_dncli("dde-density", str(samples), "--model", str(model), "--json", "--samples", "4096",
                       "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["count"] == 16 and all(math.isfinite(v) for v in report["log_density"])
    plain = run_dncli("dde-density", "-", "--model", str(model), "--no-normalize", "--threads", "1",
                      input=samples.read_bytes())
    energies = [float(line) for line in plain.stdout.decode().split()]
    assert np.allclose(np.array(energies) - report["log_z"], report["log_density"], atol=1e-4)

    scatter = run_dncli("dde-sample", "--model", str(model), "-n", "200", "--sampler", "langevin", "--steps", "5",
                        "-o", "-", "--format", "png", "--threads", "1")
    assert scatter.returncode == 0 and scatter.stdout[:8] == b"\x89PNG\r\n\x1a\n", scatter.stderr.decode()


def test_conditional_model_from_the_command_line_is_scored_through_the_flow(tmp_path: Path):
    model = tmp_path / "c.pt"
    result = run_dncli("dde-train", "toy:rings", "--sigma", "0.05", "--anneal", "1", "--conditional", "--max-steps",
                       "20", "--validate-every", "20", "-o", str(model), "--json", *TINY_CLI)
    assert result.returncode == 0, result.stderr.decode()
    assert set(json.loads(result.stdout)["history"][-1]) >= {"log_likelihood", "kl"}
    reports = {}
    for steps in ("5", "0"):
        result = run_dncli("dde-density", "toy:rings", "--limit", "20", "--model", str(model), "--flow-steps", steps,
                           "--samples", "4096", "--json", "--threads", "1")
        assert result.returncode == 0, result.stderr.decode()
        reports[steps] = json.loads(result.stdout)
        assert all(math.isfinite(v) for v in reports[steps]["log_density"])
    assert reports["5"]["flow_steps"] == 5 and reports["0"]["flow_steps"] is None
    assert reports["5"]["log_density"] != reports["0"]["log_density"]


def test_a_generator_distilled_from_the_flow_samples_in_one_pass(tmp_path: Path):
    teacher, student = tmp_path / "c.pt", tmp_path / "g.pt"
    result = run_dncli("dde-train", "toy:8-gaussians", "--sigma", "0.05", "--anneal", "3", "--conditional",
                       "--no-generator", "--max-steps", "100", "--validate-every", "0", "-o", str(teacher), *TINY_CLI)
    assert result.returncode == 0, result.stderr.decode()
    flow = run_dncli("dde-sample", "--model", str(teacher), "-n", "8", "-o", str(tmp_path / "f.npy"), "--threads", "1")
    assert flow.returncode == 0 and b"(flow)" in flow.stderr, flow.stderr.decode()
    result = run_dncli("dde-distill", "--model", str(teacher), "-o", str(student), "--pairs", "2000", "--gen-width",
                       "64", "--max-steps", "300", "--validate-every", "100", "--json", "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    history = json.loads(result.stdout)["history"]
    assert history[-1]["unexplained"] < min(0.5, history[0]["unexplained"])
    distilled, original = weights.load_model(student), weights.load_model(teacher)
    assert distilled.fake is None and distilled.config.generator_training == "distilled"
    assert torch.equal(distilled.state_dict()["real.lift.weight"], original.state_dict()["real.lift.weight"])
    sample = run_dncli("dde-sample", "--model", str(student), "-n", "8", "-o", str(tmp_path / "g.npy"),
                       "--threads", "1")
    assert sample.returncode == 0 and b"(generator)" in sample.stderr, sample.stderr.decode()
    assert np.load(tmp_path / "g.npy").shape == (8, 2)
    again = tmp_path / "g2.pt"  # distilled anew from the distilled model: its training record is still the DDE's
    result = run_dncli("dde-distill", "--model", str(student), "-o", str(again), "--pairs", "100", "--gen-width", "8",
                       "--max-steps", "1", "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert weights.load_model(again).meta["dde_training"] == distilled.meta["dde_training"]
    assert distilled.meta["dde_training"]["method"] == "dde"
    plain = tmp_path / "plain.pt"
    assert run_dncli("dde-train", "toy:rings", "--no-generator", "--max-steps", "2", "-o", str(plain),
                     *TINY_CLI).returncode == 0
    refused = run_dncli("dde-distill", "--model", str(plain), "-o", str(tmp_path / "x.pt"))
    assert_clean_error(refused, 2, "needs a conditional DDE")
    assert not (tmp_path / "x.pt").exists()
    clobbering = run_dncli("dde-distill", "--model", str(teacher), "-o", str(student), "--pairs-cache", str(student))
    assert_clean_error(clobbering, 2, "name a .npz file")
    assert weights.load_model(student).generator is not None


def test_an_interrupted_draw_of_distillation_pairs_continues_from_its_cache(tmp_path: Path, monkeypatch):
    from denoise_cli.engine.training import dde_distill

    monkeypatch.setattr(dde_distill, "CACHE_SAVE_EVERY", -1.0)  # save after every batch
    torch.manual_seed(0)
    model = registry.build("dde", {"shape": [2], "sigma": 0.05, "sigma_max": 3.0, "conditional": True,
                                   "generator": False, **TINY}).eval()
    cache, cpu = tmp_path / "pairs.npz", torch.device("cpu")
    fresh = dde_distill.flow_pairs(model, 50, 3, seed=7, device=cpu, batch=20)

    def interrupt(done: int, count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dde_distill.flow_pairs(model, 50, 3, seed=7, device=cpu, batch=20, cache=cache, report=interrupt)
    reported: list[int] = []
    resumed = dde_distill.flow_pairs(model, 50, 3, seed=7, device=cpu, batch=20, cache=cache,
                                     report=lambda done, count: reported.append(done))
    assert reported == [20, 40, 50]  # read 20, then drew the rest
    assert all(torch.equal(a, b) for a, b in zip(resumed, fresh))
    reported.clear()
    other = dde_distill.flow_pairs(model, 50, 3, seed=8, device=cpu, batch=50, cache=cache,
                                   report=lambda done, count: reported.append(done))
    assert reported == [50] and not torch.equal(other[1], fresh[1])  # another seed: drawn anew
    reported.clear()
    dde_distill.flow_pairs(model, 50, 3, seed=7, device=cpu, batch=50, cache=cache)
    more = dde_distill.flow_pairs(model, 70, 3, seed=7, device=cpu, batch=20, cache=cache,
                                  report=lambda done, count: reported.append(done))
    assert reported == [50, 70]  # read 50, drew the 20 more asked for
    fresh_more = dde_distill.flow_pairs(model, 70, 3, seed=7, device=cpu, batch=70)
    assert all(torch.equal(a, b) for a, b in zip(more, fresh_more))
    assert all(torch.equal(a[:50], b) for a, b in zip(more, fresh))
    reported.clear()
    fewer = dde_distill.flow_pairs(model, 30, 3, seed=7, device=cpu, batch=20, cache=cache,
                                   report=lambda done, count: reported.append(done))
    assert reported == [30] and all(torch.equal(a, b[:30]) for a, b in zip(fewer, fresh))  # read, none drawn
    for junk in (b"PK\x03\x04 truncated", b"", None):
        if junk is None:
            np.save(cache.with_suffix(".npy"), np.zeros(3))
            cache.with_suffix(".npy").replace(cache)
        else:
            cache.write_bytes(junk)
        again = dde_distill.flow_pairs(model, 50, 3, seed=7, device=cpu, batch=50, cache=cache)
        assert torch.equal(again[1], fresh[1])


def test_vectors_get_a_gaussian_base_so_their_log_densities_are_normalised(tmp_path: Path):
    # 24 correlated dimensions, as pixels of a patch.  The default Gaussian base keeps exp f
    # integrable, and the log-densities dde-density prints match the true density smoothed by
    # sigma; without it a short run's f is far from normalisable in this many dimensions.
    dim, sigma = 24, 0.05
    generator = torch.Generator().manual_seed(0)
    index = torch.arange(dim, dtype=torch.float64)
    covariance = 0.04 * 0.9 ** (index[:, None] - index[None]).abs()
    truth = sampling.Proposal(torch.full((dim,), 0.5, dtype=torch.float64), torch.linalg.cholesky(covariance))
    train_path, test_path, model = tmp_path / "train.npy", tmp_path / "test.npy", tmp_path / "m.pt"
    np.save(train_path, truth.sample(5000, generator).float().numpy())
    test = truth.sample(500, generator)
    np.save(test_path, test.float().numpy())
    result = run_dncli("dde-train", str(train_path), "-o", str(model), "--sigma", str(sigma), "--no-generator",
                       "--max-steps", "100", *TINY_CLI)
    assert result.returncode == 0, result.stderr.decode()
    assert weights.load_model(model).config.base == "gaussian"

    result = run_dncli("dde-density", str(test_path), "--model", str(model), "--json", "--samples", "8192",
                       "--threads", "1")
    assert result.returncode == 0 and b"unreliable" not in result.stderr, result.stderr.decode()
    smoothed = sampling.Proposal(truth.mean, torch.linalg.cholesky(covariance + sigma ** 2 * torch.eye(dim)))
    expected = float(smoothed.log_density(test).mean())
    assert json.loads(result.stdout)["mean"] == pytest.approx(expected, abs=0.5)
    annealed = run_dncli("dde-density", str(test_path), "--model", str(model), "--json", "--ais", "200",
                         "--threads", "1")
    assert annealed.returncode == 0, annealed.stderr.decode()
    assert json.loads(annealed.stdout)["mean"] == pytest.approx(expected, abs=0.5)


def test_image_model_from_an_idx_file_writes_a_png_grid_to_stdout_and_scores_its_own_samples(tmp_path: Path):
    from denoise_cli.imgio.codec import read_image

    path = write_idx(tmp_path / "digits-idx3-ubyte.gz", digits())
    model = tmp_path / "digits.pt"
    result = run_dncli("dde-train", str(path), "--max-steps", "4", "-o", str(model), "--latent", "4",
                       "--sigma", "100", *TINY_CLI)
    assert result.returncode == 0, result.stderr.decode()
    result = run_dncli("dde-sample", "--model", str(model), "-n", "6", "--grid", "3", "-o", "-", "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    grid = read_image(result.stdout).pixels
    assert grid.shape == (2 * 8 + 2, 3 * 8 + 2 * 2, 1)  # 2 rows x 3 columns of 8x8, 2-pixel gaps
    # the .npy stack dde-sample writes is what dde-density reads, as a file and through a pipe
    samples = tmp_path / "samples.npy"
    result = run_dncli("dde-sample", "--model", str(model), "-n", "5", "-o", str(samples), "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    scores = [run_dncli("dde-density", "--model", str(model), *source, "--no-normalize", "--json", "--threads", "1",
                        input=stdin) for source, stdin in (([str(samples)], None), (["-"], samples.read_bytes()))]
    assert all(r.returncode == 0 for r in scores), [r.stderr.decode() for r in scores]
    from_file, from_pipe = (json.loads(r.stdout)["log_density"] for r in scores)
    assert len(from_file) == 5 and from_file == from_pipe
    np.save(tmp_path / "wrong.npy", np.zeros((2, 1, 6, 6), np.float32))
    wrong = run_dncli("dde-density", "--model", str(model), str(tmp_path / "wrong.npy"), "--no-normalize")
    assert_clean_error(wrong, 2, "samples of shape [1, 6, 6] for a model of shape [1, 8, 8]")


def test_usage_errors(tmp_path: Path, tiny_weights):
    missing = run_dncli("dde-train", str(tmp_path / "nothing.npy"), "-o", str(tmp_path / "x.pt"))
    assert_clean_error(missing, 2, "no such file")
    unknown = run_dncli("dde-train", "toy:moons", "-o", str(tmp_path / "x.pt"))
    assert_clean_error(unknown, 2, "unknown toy 'moons'", "toy:8-gaussians")
    denoiser = tiny_weights(1)
    wrong = run_dncli("dde-sample", "--model", str(denoiser), "-n", "4", "-o", str(tmp_path / "s.npy"))
    assert_clean_error(wrong, 2, "unet3 model, not a DDE model")
    not_shipped = run_dncli("dde-density", "toy:rings", "--model", "toy:nope")
    assert_clean_error(not_shipped, 2, "no such file, nor a shipped DDE model")
    conv_vectors = run_dncli("dde-train", "toy:rings", "--energy", "conv", "-o", str(tmp_path / "x.pt"))
    assert_clean_error(conv_vectors, 2, "convolutional energy network needs images")
    unet_vectors = run_dncli("dde-train", "toy:rings", "--energy", "unet", "-o", str(tmp_path / "x.pt"))
    assert_clean_error(unet_vectors, 2, "unet energy network needs images")


def test_mistakes_are_refused_before_any_work_and_inputs_are_kept(tmp_path: Path):
    data, other = tmp_path / "data.npy", tmp_path / "other.npy"
    np.save(data, np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    np.save(other, np.zeros((10, 3), np.float32))
    before = data.read_bytes()
    model = tmp_path / "m.pt"
    for extra, message in ((["--plot", str(data)], "name an image file"),
                           (["--plot", str(model)], "unsupported image format"),
                           (["--val", str(other)], "samples of shape [3]"),
                           (["--no-generator", "--real-until", "2"], "--real-until"),
                           (["--lr", "0"], "--lr must be positive"),
                           (["--batch-size", "0"], "--batch-size must be at least 1"),
                           (["--seed", "-1"], "--seed")):
        assert_clean_error(run_dncli("dde-train", str(data), "-o", str(model), "--max-steps", "2", *extra), 2, message)
    assert data.read_bytes() == before and not model.exists()

    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes((ROOT / "weights" / "dde-rings.pt").read_bytes())
    for cache, output, message in ((teacher, tmp_path / "g.pt", "name a .npz file"),
                                   (tmp_path / "g.npz", tmp_path / "g.npz", "must not be the --model or --output")):
        result = run_dncli("dde-distill", "--model", str(teacher), "-o", str(output), "--pairs-cache", str(cache))
        assert_clean_error(result, 2, message)
    assert teacher.read_bytes() == (ROOT / "weights" / "dde-rings.pt").read_bytes()

    result = run_dncli("dde-sample", "--model", "toy:rings", "-n", "4", "-o", "/dev/stdout", "--json")
    assert_clean_error(result, 2, "--json prints to stdout")


def test_density_scores_any_number_of_samples_and_refuses_none_or_nan(tmp_path: Path):
    np.save(tmp_path / "one.npy", np.array([[1.2, 0.0]], np.float32))
    one = run_dncli("dde-density", "--model", "toy:rings", str(tmp_path / "one.npy"), "--no-normalize")
    assert one.returncode == 0, one.stderr.decode()
    assert len(one.stdout.decode().split()) == 1
    for array, message in ((np.zeros((0, 2), np.float32), "no samples"),
                           (np.array([[np.nan, 0.0]], np.float32), "NaN")):
        buffer = tmp_path / "x.npy"
        np.save(buffer, array)
        result = run_dncli("dde-density", "--model", "toy:rings", "-", input=buffer.read_bytes())
        assert_clean_error(result, 2, message)
    # Rows of 784 values are MNIST images, one score each.
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).random((3, 784), np.float32))
    rows = run_dncli("dde-density", "--model", "mnist", str(tmp_path / "rows.npy"), "--no-normalize")
    assert rows.returncode == 0, rows.stderr.decode()
    assert len(rows.stdout.decode().split()) == 3


def test_distributed_dde_training_with_two_cpu_processes(tmp_path: Path):
    # Several parameter groups, one of them idle on most steps: DDP must be told to expect that.
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", free_port(),
               "-m", "denoise_cli", "dde-train", "toy:rings", "-o", str(tmp_path / "ddp.pt"), "--max-steps", "4",
               "--gen-every", "2", "--validate-every", "0", *TINY_CLI]
    result = subprocess.run(command, capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    record = weights.load_checkpoint(tmp_path / "ddp.pt")
    assert record["step"] == 4 and record["meta"]["world_size"] == 2
