"""The dilated blind-spot network, its Gaussian likelihood, training and the blindspot-train command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_dncli, synthetic_image, write_png
from denoise_cli.engine import registry
from denoise_cli.engine.inference import Runner
from denoise_cli.engine.metrics import psnr, quantize_uint8
from denoise_cli.engine.models.blindspot import BlindSpotConfig, gaussian_nll, posterior_mean
from denoise_cli.engine.training.blindspot import BlindSpotTraining, MaskedTraining
from denoise_cli.engine.training.data import PatchSampler
from denoise_cli.engine.training.trainer import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

# Small enough for CPU tests, with every structural feature of the layouts kept.
SMALL = {"trunk_depth": 3, "trunk_width": 12, "branch_width": 6, "head_widths": (16, 8), "noise_widths": (8, 8)}
SMALL_CLI = ["--depth", "2", "--widths", "8,4", "--head", "8", "--patch", "32", "--batch-size", "4", "--threads", "1"]


def build(arch: str = "figure", channels: int = 3, seed: int = 0, **options) -> torch.nn.Module:
    """A model with random weights and biases (so no tap is accidentally zero)."""
    torch.manual_seed(seed)
    model = registry.build("blindspot", BlindSpotConfig.preset(arch, channels=channels, **options).to_dict())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or name == "noise_logit" or name.startswith("noise_net"):
                parameter.normal_(0.0, 0.1)
    return model.eval()


def prior_at(model: torch.nn.Module, x: torch.Tensor, row: int, col: int) -> torch.Tensor:
    mean, factor = model.prior(x)
    return torch.cat([mean, factor], dim=1)[0, :, row, col]


@pytest.mark.parametrize("arch", ["figure", "code"])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_centre_pixel_is_never_seen(arch: str, channels: int):
    model = build(arch, channels)  # the full published widths
    size = 2 * model.receptive_radius + 3
    centre = size // 2
    x = torch.rand(1, channels, size, size)
    before = prior_at(model, x, centre, centre)
    changed = x.clone()
    changed[0, :, centre, centre] += torch.randn(channels) * 5  # only the centre pixel changes
    assert torch.equal(prior_at(model, changed, centre, centre), before)
    neighbour = x.clone()
    neighbour[0, :, centre, centre + 1] += 5
    assert not torch.allclose(prior_at(model, neighbour, centre, centre), before)

    # The gradient of the prediction wrt its own input pixel, and of a loss wrt every
    # blind-spot kernel's centre tap, are exactly zero.
    x.requires_grad_(True)
    prior_at(model, x, centre, centre).sum().backward()
    assert torch.count_nonzero(x.grad[0, :, centre, centre]) == 0
    assert torch.count_nonzero(x.grad) > 0
    model.zero_grad()
    parts = model(x.detach(), 0.1, parts=True)
    gaussian_nll(x.detach(), parts.mean, parts.factor, parts.sigma).mean().backward()
    for branch in model.branches:
        assert torch.count_nonzero(branch.weight.grad[..., 1, 1]) == 0
        assert torch.count_nonzero(branch.weight.grad) > 0


@pytest.mark.parametrize("arch,options", [("figure", {}), ("figure", SMALL), ("code", {"trunk_depth": 4})])
def test_receptive_field_is_exactly_the_claimed_radius(arch: str, options: dict):
    model = build(arch, 1, **options)
    radius = model.receptive_radius
    size = 2 * radius + 7
    centre = size // 2
    x = torch.rand(1, 1, size, size, requires_grad=True)
    prior_at(model, x, centre, centre).sum().backward()
    reach = x.grad[0, 0].abs() > 0
    rows, cols = np.mgrid[0:size, 0:size]
    distance = np.maximum(np.abs(rows - centre), np.abs(cols - centre))
    # every pixel at 1..radius influences the output, nothing at radius + 1 or beyond, nor the centre
    assert np.array_equal(reach.numpy(), (distance >= 1) & (distance <= radius))
    if not options:
        assert radius == 21  # the 43 x 43 field of the paper's figure


def test_gray_posterior_is_the_closed_form():
    model = build("figure", 1, **SMALL)
    y = torch.rand(2, 1, 20, 24)
    sigma = torch.tensor([0.05, 0.2])
    parts = model(y, sigma, parts=True)
    a2, s2 = parts.factor.double() ** 2, sigma.double().view(-1, 1, 1, 1) ** 2
    expected = (y.double() * a2 + parts.mean.double() * s2) / (a2 + s2)
    assert torch.allclose(model(y, sigma).double(), expected, atol=1e-6)
    assert torch.allclose(model(y, sigma, posterior=False), parts.mean)
    nll = 0.5 * (y.double() - parts.mean.double()) ** 2 / (a2 + s2) + 0.5 * torch.log(a2 + s2)
    assert torch.allclose(gaussian_nll(y, parts.mean, parts.factor, parts.sigma), nll[:, 0], atol=1e-10)


def _reference_covariances(factor: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigma_x = A^T A and Sigma_n per pixel as [N, 3, 3] float64 matrices, built with torch.linalg."""
    entries = factor.double().permute(0, 2, 3, 1).reshape(-1, 6)
    a = torch.zeros(entries.shape[0], 3, 3, dtype=torch.float64)
    rows, cols = torch.triu_indices(3, 3)
    a[:, rows, cols] = entries
    return a.transpose(1, 2) @ a, torch.eye(3, dtype=torch.float64) * sigma**2


def test_colour_likelihood_and_posterior_match_float64_linear_algebra():
    torch.manual_seed(0)
    y, mean = torch.rand(2, 3, 5, 6), torch.rand(2, 3, 5, 6)
    factor = torch.randn(2, 6, 5, 6) * 0.1
    factor[0, 3:] = 0.0  # rank-1 Sigma_x: singular, as a network can output
    sigma = 3 / 255
    residual = (y.double() - mean.double()).permute(0, 2, 3, 1).reshape(-1, 3, 1)
    signal, noise = _reference_covariances(factor, sigma)
    observed = signal + noise
    quadratic = (residual.transpose(1, 2) @ torch.linalg.solve(observed, residual)).flatten()
    expected = 0.5 * quadratic + 0.5 * torch.linalg.slogdet(observed).logabsdet
    level = torch.tensor(sigma, dtype=torch.float64).view(1, 1, 1, 1)
    nll = gaussian_nll(y, mean, factor, level)
    assert torch.isfinite(nll).all()
    assert torch.allclose(nll.flatten(), expected, rtol=1e-9, atol=1e-9)

    # Posterior mean (Sigma_x^-1 + Sigma_n^-1)^-1 (Sigma_x^-1 mu + Sigma_n^-1 y), on the
    # invertible half of the batch (the literal formula needs Sigma_x^-1).
    n = 5 * 6
    inv_x, inv_n = torch.linalg.inv(signal[n:]), torch.linalg.inv(noise)
    mu = mean.double().permute(0, 2, 3, 1).reshape(-1, 3, 1)[n:]
    literal = torch.linalg.solve(inv_x + inv_n, inv_x @ mu + inv_n @ (residual[n:] + mu)).reshape(5, 6, 3)
    ours = posterior_mean(y, mean, factor, level)
    assert torch.allclose(ours[1].permute(1, 2, 0), literal, atol=1e-8)
    assert torch.isfinite(ours).all()


def _noisy_image(channels: int, sigma: float = 25.0, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    clean = synthetic_image(size, size, channels, seed=3)
    noise = np.random.default_rng(7).standard_normal(clean.shape) * sigma / 255.0
    return (clean / 255.0 + noise).astype(np.float32), clean


def _short_run(model, task, steps: int, tmp_path: Path, lr: float = 3e-3) -> list[dict]:
    events: list[dict] = []
    config = TrainConfig(max_steps=steps, batch_size=8, learning_rate=lr, warmup_steps=5, validate_every=0,
                         log_every=10, checkpoint_every=1e9)
    train(model, task, config, tmp_path / "run.pt", {}, torch.device("cpu"), on_event=events.append)
    return [e for e in events if e["kind"] == "log"]


def test_short_training_on_noisy_data_alone_denoises(tmp_path: Path):
    noisy, clean = _noisy_image(1)
    torch.manual_seed(0)
    model = registry.build("blindspot", BlindSpotConfig(channels=1, **SMALL).to_dict())
    sampler = PatchSampler([noisy], 32)
    task = BlindSpotTraining(sampler, sigma=25.0)  # no clean image anywhere
    # a training batch is exactly the noisy patches and the known level, nothing else
    patches, level = task.batch(4, torch.Generator().manual_seed(5), torch.device("cpu"))
    assert torch.equal(patches, sampler.sample(4, torch.Generator().manual_seed(5)))
    assert torch.allclose(level, torch.full((4,), 25 / 255))
    logs = _short_run(model, task, 80, tmp_path)
    assert logs[-1]["loss"] < logs[0]["loss"]
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(noisy).permute(2, 0, 1)[None]
        posterior = model(x, 25 / 255)[0].permute(1, 2, 0).numpy()
        blind = model(x, 25 / 255, posterior=False)[0].permute(1, 2, 0).numpy()
    noisy_psnr = psnr(quantize_uint8(noisy), clean)
    assert psnr(quantize_uint8(posterior), clean) > noisy_psnr + 5
    assert psnr(quantize_uint8(blind), clean) > noisy_psnr


@pytest.mark.parametrize("mode", ["global", "per-image"])
def test_learned_noise_level_moves_towards_the_truth(tmp_path: Path, mode: str):
    noisy, _ = _noisy_image(1, sigma=40.0, size=64)
    torch.manual_seed(0)
    model = registry.build("blindspot", BlindSpotConfig(channels=1, noise=mode, **SMALL).to_dict())
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None]
    with torch.no_grad():
        start = float(model.learned_sigma(x)) * 255
    logs = _short_run(model, BlindSpotTraining(PatchSampler([noisy], 32), sigma=None), 60, tmp_path)
    assert all(np.isfinite(e["loss"]) for e in logs)
    with torch.no_grad():
        learned = float(model.learned_sigma(x)) * 255
    assert start + 2 < learned < 60
    if mode == "per-image":  # a network, not one scalar: it gets there within these few steps
        assert abs(learned - 40) < 10


def test_tiled_equals_untiled_through_the_engine():
    image = np.random.default_rng(0).random((1, 150, 170, 3), dtype=np.float32)
    for options in ({"noise": "known"}, {"noise": "per-image"}):
        model = build("figure", 3, **{**SMALL, "trunk_depth": 5, **options})
        runner = Runner(model, torch.device("cpu"), tile=1024)
        whole = runner(image, 0.1)
        runner.tile = 96  # raised to the smallest exact tile, 2 * 11 + 5 + 64 pixels
        assert runner.tile_size(1) < 150
        assert np.abs(runner(image, 0.1) - whole).max() < 1e-5
        if model.estimates_sigma:
            tiled = runner.own_sigma(image)
            runner.tile = 1024
            assert np.allclose(tiled, runner.own_sigma(image), atol=1e-6)
            with torch.no_grad():
                untiled = model.learned_sigma(torch.from_numpy(image).permute(0, 3, 1, 2)).numpy()
            assert np.allclose(tiled, untiled, atol=1e-6)


def test_blindspot_train_then_denoise_from_the_command_line(tmp_path: Path):
    noisy, clean = _noisy_image(1, size=64)
    np.save(tmp_path / "noisy.npy", noisy)
    write_png(tmp_path / "clean.png", clean)
    model = tmp_path / "model.pt"
    result = run_dncli("blindspot-train", str(tmp_path / "noisy.npy"), "-o", str(model), "--sigma", "25",
                       "--channels", "1", "--max-steps", "4", "--val", str(tmp_path / "clean.png"),
                       "--validate-every", "2", "--json", *SMALL_CLI)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["step"] == 4 and {"psnr", "psnr_mean"} <= set(report["history"][-1])
    assert "validation psnr" in result.stderr.decode()

    out = tmp_path / "out.npy"
    result = run_dncli("denoise", str(tmp_path / "noisy.npy"), "-s", "25", "--weights", str(model),
                       "-o", str(out), "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    denoised = np.load(out)
    assert denoised.shape == noisy.shape[:2] and np.isfinite(denoised).all()  # gray .npy is [H, W]


def test_learned_level_model_answers_sigma_auto_and_resumes(tmp_path: Path):
    from denoise_cli.cli.app import main

    noisy, _ = _noisy_image(3, size=48)
    np.save(tmp_path / "noisy.npy", noisy)
    model = tmp_path / "model.pt"
    common = [str(tmp_path / "noisy.npy"), "-o", str(model), "--channels", "3", "--quiet", *SMALL_CLI]
    assert main(["blindspot-train", *common, "--sigma-mode", "per-image", "--max-steps", "2"]) == 0
    assert main(["blindspot-train", *common, "--max-steps", "4", "--resume"]) == 0
    assert torch.load(model, weights_only=True)["step"] == 4

    result = run_dncli("denoise", str(tmp_path / "noisy.npy"), "-s", "auto", "--weights", str(model),
                       "-o", str(tmp_path / "out.npy"), "--json", "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert "(by the model)" in result.stderr.decode()
    level = json.loads(result.stdout)["images"][0]["sigma"]
    assert 0 < level < 255


def test_fine_tuning_starts_from_the_given_weights_and_keeps_their_architecture(tmp_path: Path, tiny_weights):
    from denoise_cli.cli.app import main

    noisy = tmp_path / "noisy.npy"
    np.save(noisy, _noisy_image(1, size=48)[0])
    first, tuned = tmp_path / "first.pt", tmp_path / "tuned.pt"
    common = ["--sigma", "25", "--channels", "1", "--quiet", *SMALL_CLI]
    assert main(["blindspot-train", str(noisy), "-o", str(first), "--max-steps", "3", *common]) == 0
    # other widths on the command line: the starting model's architecture wins, as with --resume
    assert main(["blindspot-train", str(noisy), "-o", str(tuned), "--init", str(first), "--max-steps", "2",
                 "--lr", "1e-9", *common, "--widths", "16,8"]) == 0
    start, end = (torch.load(path, weights_only=True) for path in (first, tuned))
    assert end["options"] == start["options"] and end["step"] == 2
    assert end["meta"]["initial_weights"] == str(first)
    assert max((end["state_dict"][k] - v).abs().max() for k, v in start["state_dict"].items()) < 1e-4

    unet = tiny_weights(channels=1)  # a supervised denoiser, not a blind-spot one
    refused = run_dncli("blindspot-train", str(noisy), "-o", str(tmp_path / "x.pt"), "--init", str(unet), *common)
    assert refused.returncode == 2 and "not a blind-spot model" in refused.stderr.decode()
    # resuming the fine-tune continues it (as timed_training.sh does with the same command line)
    assert main(["blindspot-train", str(noisy), "-o", str(tuned), "--init", str(first), "--resume",
                 "--max-steps", "3", *common]) == 0
    resumed = torch.load(tuned, weights_only=True)
    assert resumed["step"] == 3 and resumed["meta"]["initial_weights"] == str(first)
    unknown_level = run_dncli("blindspot-train", str(noisy), "-o", str(tmp_path / "x.pt"), "--init", str(first),
                              *common[2:])
    assert unknown_level.returncode == 2 and "known noise level" in unknown_level.stderr.decode()
    assert not (tmp_path / "x.pt").exists()
    masked = tmp_path / "masked.pt"  # a masked baseline learns no level, so it needs no --sigma either
    assert main(["blindspot-train", str(noisy), "-o", str(masked), "--masked", "--max-steps", "1", *common[2:]]) == 0
    assert main(["blindspot-train", str(noisy), "-o", str(tmp_path / "masked2.pt"), "--init", str(masked),
                 "--max-steps", "1", *common[2:]]) == 0


def test_fine_tuning_into_another_noise_mode_keeps_the_prior_and_starts_at_the_estimated_level(tmp_path: Path):
    from denoise_cli.cli.app import main
    from denoise_cli.engine.noise_estimate import estimate_sigma

    image = _noisy_image(1, size=64)[0]
    np.save(tmp_path / "noisy.npy", image)
    first, converted = tmp_path / "first.pt", tmp_path / "global.pt"
    common = [str(tmp_path / "noisy.npy"), "--channels", "1", "--quiet", *SMALL_CLI]
    assert main(["blindspot-train", *common, "-o", str(first), "--sigma-mode", "per-image", "--max-steps", "2"]) == 0
    assert main(["blindspot-train", *common, "-o", str(converted), "--init", str(first), "--sigma-mode", "global",
                 "--max-steps", "1", "--lr", "1e-9"]) == 0
    start, end = (torch.load(path, weights_only=True) for path in (first, converted))
    assert end["options"] == {**start["options"], "noise": "global"} and end["meta"]["sigma_mode"] == "global"
    assert max((end["state_dict"][k] - v).abs().max()
               for k, v in start["state_dict"].items() if not k.startswith("noise_net")) < 1e-4

    result = run_dncli("denoise", str(tmp_path / "noisy.npy"), "-s", "auto", "--weights", str(converted),
                       "-o", str(tmp_path / "out.npy"), "--json", "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["images"][0]["sigma"] == pytest.approx(estimate_sigma(image), abs=0.1)

    # a known level needs --sigma; a resumed run keeps its mode; a masked model has none to change
    assert main(["blindspot-train", *common, "-o", str(tmp_path / "x.pt"), "--init", str(first),
                 "--sigma-mode", "known", "--max-steps", "1"]) == 2
    assert main(["blindspot-train", *common, "-o", str(converted), "--init", str(first), "--sigma-mode", "per-image",
                 "--resume", "--max-steps", "2"]) == 2
    masked = tmp_path / "masked.pt"
    assert main(["blindspot-train", *common, "-o", str(masked), "--masked", "--max-steps", "1"]) == 0
    assert main(["blindspot-train", *common, "-o", str(tmp_path / "x.pt"), "--init", str(masked),
                 "--sigma-mode", "global", "--max-steps", "1"]) == 2
    assert not (tmp_path / "x.pt").exists()
    assert torch.load(converted, weights_only=True)["step"] == 1


def test_usage_errors(tmp_path: Path):
    from denoise_cli.cli.app import main

    gray = tmp_path / "gray.npy"
    np.save(gray, _noisy_image(1, size=40)[0])
    base = [str(gray), "-o", str(tmp_path / "m.pt"), *SMALL_CLI]
    assert main(["blindspot-train", *base, "--channels", "1"]) == 2  # known mode without --sigma
    assert main(["blindspot-train", *base, "--channels", "1", "--sigma", "25", "--sigma-mode", "global"]) == 2
    assert main(["blindspot-train", *base, "--channels", "3", "--sigma", "25"]) == 2  # gray data, colour model
    assert main(["blindspot-train", *base, "--channels", "1", "--sigma", "25", "--arch", "unet"]) == 2
    assert not (tmp_path / "m.pt").exists()


def test_masked_baseline_replaces_only_masked_pixels_by_neighbours_and_learns(tmp_path: Path):
    noisy, clean = _noisy_image(1)
    sampler = PatchSampler([noisy], 32)
    task = MaskedTraining(sampler, fraction=0.05)
    inputs, target, mask = task.batch(8, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert torch.equal(target, sampler.sample(8, torch.Generator().manual_seed(3)))
    assert 0.02 < mask.float().mean() < 0.08
    changed = inputs != target
    assert not changed[~mask.expand_as(changed)].any()
    for b, _, y, x in mask.nonzero()[:50].tolist():  # each masked value comes from its 5x5 window
        window = target[b, 0, max(y - 2, 0): y + 3, max(x - 2, 0): x + 3]
        assert (window == inputs[b, 0, y, x]).any()

    torch.manual_seed(0)
    model = registry.build("blindspot", BlindSpotConfig(channels=1, blind=False, **SMALL).to_dict())
    logs = _short_run(model, MaskedTraining(sampler), 80, tmp_path)
    assert logs[-1]["loss"] < logs[0]["loss"]
    with torch.no_grad():
        denoised = model.eval()(torch.from_numpy(noisy).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert psnr(quantize_uint8(denoised), clean) > psnr(quantize_uint8(noisy), clean) + 3


def test_masked_baseline_from_the_command_line(tmp_path: Path):
    noisy, clean = _noisy_image(1, size=64)
    np.save(tmp_path / "noisy.npy", noisy)
    write_png(tmp_path / "clean.png", clean)
    model = tmp_path / "n2v.pt"
    common = [str(tmp_path / "noisy.npy"), "-o", str(model), "--channels", "1", "--masked", *SMALL_CLI]
    result = run_dncli("blindspot-train", *common, "--max-steps", "2", "--val", str(tmp_path / "clean.png"),
                       "--validate-every", "2", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert set(json.loads(result.stdout)["history"][-1]) == {"step", "psnr"}
    assert run_dncli("blindspot-train", *common, "--max-steps", "3", "--resume").returncode == 0
    result = run_dncli("denoise", str(tmp_path / "noisy.npy"), "-s", "25", "--weights", str(model),
                       "-o", str(tmp_path / "out.npy"), "--threads", "1")
    assert result.returncode == 0, result.stderr.decode()
    refused = run_dncli("blindspot-train", *common[:-len(SMALL_CLI)], "-o", str(tmp_path / "x.pt"), "--sigma", "25")
    assert refused.returncode == 2 and b"--masked learns no noise level" in refused.stderr
