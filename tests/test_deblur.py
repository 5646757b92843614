"""Plug-and-play deblurring: the FFT data step, ADMM/HQS, boundaries, the MAP denoiser and `dncli deblur`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from conftest import assert_clean_error, run_dncli, synthetic_image, write_png
from denoise_cli.engine import registry, weights
from denoise_cli.engine.algorithms import pnp
from denoise_cli.engine.metrics import psnr
from denoise_cli.engine.physics.blur import blur, parse_kernel
from denoise_cli.imgio.codec import read_image

TINY_MAP = {"depth": 3, "width": 8, "sigma_r": 7.0}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # these small tensors run several times slower split over busy cores


pytestmark = pytest.mark.usefixtures("one_thread")


def blocks(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """Piecewise-constant 8x8 blocks in [0.1, 0.9]: sharp edges everywhere, so blur costs PSNR."""
    rng = np.random.default_rng(seed)
    levels = rng.uniform(0.1, 0.9, (height // 8 + 1, width // 8 + 1, channels))
    return np.repeat(np.repeat(levels, 8, 0), 8, 1)[:height, :width]


def smoother(floor: float, per_level: float = 20.0):
    """A stand-in denoiser: Gaussian smoothing of width max(floor, sigma*255/per_level) px.

    A crude prior, but a real one at every level, which is all the solvers need to be tested."""
    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        width = max(floor, float(sigma) * 255 / per_level)
        radius = int(np.ceil(3 * width))
        taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=x.dtype) ** 2 / (2 * width**2))
        taps = taps / taps.sum()
        c = x.shape[1]
        x = F.pad(x, (radius,) * 4, mode="replicate")
        x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    return denoise


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def as_image(x: torch.Tensor) -> np.ndarray:
    return np.clip(x[0].permute(1, 2, 0).double().numpy(), 0, 1)


# --- the data step ------------------------------------------------------------------------


@pytest.mark.parametrize("kernel_shape, image_shape", [((3, 3), (9, 8)), ((4, 6), (10, 11)), ((7, 9), (5, 6))])
def test_otf_is_the_circular_blur_of_physics_blur(kernel_shape, image_shape):
    rng = np.random.default_rng(1)
    kernel = rng.random(kernel_shape)
    image = rng.random((*image_shape, 2))
    otf = pnp.kernel_otf(kernel, image_shape, dtype=torch.float64)
    ours = pnp.circular_blur(torch.from_numpy(image).permute(2, 0, 1), otf).permute(1, 2, 0).numpy()
    reference = np.stack([scipy.ndimage.convolve(image[..., c], kernel, mode="wrap") for c in range(2)], -1)
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_fft_data_step_equals_a_dense_solve():
    rng = np.random.default_rng(2)
    height, width, alpha = 6, 7, 0.05
    kernel = rng.random((3, 4))
    kernel /= kernel.sum()
    columns = []
    for index in range(height * width):
        unit = np.zeros((height, width))
        unit.flat[index] = 1
        columns.append(scipy.ndimage.convolve(unit, kernel, mode="wrap").ravel())
    matrix = np.stack(columns, 1)
    target, v = rng.random((height, width)), rng.random((height, width))
    dense = np.linalg.solve(matrix.T @ matrix + alpha * np.eye(height * width),
                            matrix.T @ target.ravel() + alpha * v.ravel())
    otf = pnp.kernel_otf(kernel, (height, width), dtype=torch.float64)
    ours = pnp.fft_data_step(torch.conj(otf) * torch.fft.rfft2(torch.from_numpy(target)), otf.abs() ** 2,
                             torch.from_numpy(v)[None, None], alpha)
    np.testing.assert_allclose(ours.numpy().ravel(), dense, atol=1e-10)


def test_fft_data_step_zeroes_the_gradient_of_its_objective_in_colour():
    rng = np.random.default_rng(3)
    kernel = rng.random((5, 2))
    target = torch.from_numpy(rng.random((1, 3, 12, 10)))
    v = torch.from_numpy(rng.random((1, 3, 12, 10)))
    otf = pnp.kernel_otf(kernel, (12, 10), dtype=torch.float64)
    x = pnp.fft_data_step(torch.conj(otf) * torch.fft.rfft2(target), otf.abs() ** 2, v, 0.3)
    x = x.clone().requires_grad_(True)
    objective = (pnp.circular_blur(x, otf) - target).square().sum() + 0.3 * (x - v).square().sum()
    objective.backward()
    assert x.grad.abs().max() < 1e-10


# --- the solvers ----------------------------------------------------------------------------


def test_admm_and_hqs_improve_on_the_blurred_image():
    clean = blocks(64, 72, 3, seed=1)
    kernel, _ = parse_kernel("gaussian:1.5")
    noisy = blur(clean, kernel, "wrap") + np.random.default_rng(0).standard_normal(clean.shape) * 2 / 255
    start = psnr(np.clip(noisy, 0, 1), clean, 1.0)
    admm = pnp.admm(as_tensor(noisy), kernel, smoother(0.5, per_level=1e9), 2 / 255, 1 / 0.03**2,
                    boundary="circular")
    hqs = pnp.hqs(as_tensor(noisy), kernel, smoother(0.5), 2 / 255, boundary="circular")
    assert admm.image.shape == hqs.image.shape == (1, 3, 64, 72)
    assert admm.converged and admm.iterations < 75 and hqs.converged is None
    assert psnr(as_image(admm.image), clean, 1.0) > start + 2
    assert psnr(as_image(hqs.image), clean, 1.0) > start + 2


def test_valid_boundary_beats_circular_on_a_real_blur():
    # A larger scene blurred with reflection; the observation is its valid part, as in a photograph.
    kernel, _ = parse_kernel("motion:9,30")
    reach = kernel.shape[0] // 2
    scene = blocks(80, 88, 1, seed=2)
    observed = blur(scene, kernel, "reflect")[reach:-reach, reach:-reach]
    observed = observed + np.random.default_rng(4).standard_normal(observed.shape) / 255
    truth = scene[reach:-reach, reach:-reach]
    border = np.ones(truth.shape[:2], bool)
    border[8:-8, 8:-8] = False
    scores = {}
    for boundary in ("valid", "circular"):
        result = pnp.admm(as_tensor(observed), kernel, smoother(0.5, per_level=1e9), 1 / 255, 1 / 0.03**2,
                          boundary=boundary)
        assert result.image.shape == (1, 1, *truth.shape[:2])
        scores[boundary] = psnr(as_image(result.image)[border], truth[border], 1.0)
    assert scores["valid"] > scores["circular"] + 5
    assert scores["valid"] > psnr(observed[border], truth[border], 1.0) + 2
    hqs = {b: pnp.hqs(as_tensor(observed), kernel, smoother(0.5), 1 / 255, boundary=b) for b in ("valid", "circular")}
    assert psnr(as_image(hqs["valid"].image)[border], truth[border], 1.0) > \
        psnr(as_image(hqs["circular"].image)[border], truth[border], 1.0) + 3


def test_callback_sees_every_iteration_and_the_cap_holds():
    y = as_tensor(blocks(24, 32, 1, seed=3))
    kernel, _ = parse_kernel("box:3")
    seen = []
    result = pnp.admm(y, kernel, smoother(0.5, per_level=1e9), 0.01, 100.0, max_iterations=4, tolerance=0.0,
                      callback=lambda k, estimate: seen.append((k, tuple(estimate.shape))))
    assert result.iterations == 4 and not result.converged
    assert seen == [(k, (1, 1, 24, 32)) for k in range(1, 5)]
    levels = []
    pnp.hqs(y, kernel, lambda x, s: levels.append(s) or x, 2.55 / 255, iterations=5)
    assert levels == pytest.approx(pnp.noise_schedule(2.55 / 255, 5))
    assert levels[0] == pytest.approx(49 / 255) and levels[-1] == pytest.approx(2.55 / 255)
    assert pnp.noise_schedule(0.0, 3)[-1] == pytest.approx(1 / 255)


def test_admm_stops_when_a_rounding_denoiser_stalls_it():
    y = as_tensor(blocks(32, 40, 1, seed=6))
    kernel, _ = parse_kernel("gaussian:1.0")
    steady = smoother(0.5, per_level=1e9)
    generator = torch.Generator().manual_seed(0)

    def rounding(x: torch.Tensor, sigma: float) -> torch.Tensor:  # a relative error of 1e-3, as bf16 gives
        out = steady(x, sigma)
        return out * (1 + 1e-3 * torch.randn(out.shape, generator=generator, dtype=out.dtype))

    exact = pnp.admm(y, kernel, steady, 0.01, 1 / 0.03**2, boundary="circular")
    stalled = pnp.admm(y, kernel, rounding, 0.01, 1 / 0.03**2, boundary="circular")
    assert exact.converged
    assert not stalled.converged and stalled.iterations < 75
    assert psnr(as_image(stalled.image), as_image(exact.image), 1.0) > 45


def test_hqs_self_ensemble_undoes_its_transforms():
    y = as_tensor(blocks(16, 24, 3, seed=5))
    kernel = np.array([[1.0]])
    plain = pnp.hqs(y, kernel, lambda x, s: x, 0.01, iterations=8, ensemble=False)
    ensembled = pnp.hqs(y, kernel, lambda x, s: x, 0.01, iterations=8, ensemble=True)
    torch.testing.assert_close(plain.image, ensembled.image)


def test_a_runner_serves_any_image_channels(tiny_weights):
    from denoise_cli.engine.inference import Runner

    gray, colour = (weights.load_model(tiny_weights(c, f"m{c}.pt")) for c in (1, 3))
    x = torch.rand(2, 3, 20, 24)
    levels = torch.tensor([0.05, 0.1])
    with torch.no_grad():
        planes = torch.cat([gray(x[:, c : c + 1], levels) for c in range(3)], 1)
        torch.testing.assert_close(Runner(gray, torch.device("cpu")).apply(x, levels), planes)
        mean = colour(x[:, :1].expand(2, 3, 20, 24), 0.1).mean(1, keepdim=True)
        torch.testing.assert_close(Runner(colour, torch.device("cpu")).apply(x[:, :1], 0.1), mean)


# --- the MAP denoiser -----------------------------------------------------------------------


def test_map_pair_contract_and_weights_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    pair = registry.build("map-denoiser", {"channels": 3, **TINY_MAP})
    for parameter in pair.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    x = torch.rand(2, 3, 20, 20)
    with torch.no_grad():
        out = pair(x, 0.5)
        torch.testing.assert_close(out, pair(x, None))  # sigma is ignored: one fixed-rho MAP step
        torch.testing.assert_close(out, pair.map(x))
        d_out, r_out = pair(x, None, aux_input=x + 0.1)
        torch.testing.assert_close(r_out, pair.aux(x + 0.1))
        impulse = torch.zeros(1, 3, 21, 21)
        impulse[..., 10, 10] = 1
        response = (pair(impulse) - pair(torch.zeros_like(impulse))).abs().sum(1)[0]
    rows, cols = torch.nonzero(response > 0, as_tuple=True)
    assert (rows - 10).abs().max() <= pair.receptive_radius and (cols - 10).abs().max() <= pair.receptive_radius
    assert pair.rho == pytest.approx((255 / 7) ** 2)
    weights.save_weights(tmp_path / "map.pt", pair)
    loaded = weights.load_model(tmp_path / "map.pt")
    assert loaded.arch_name == "map-denoiser" and loaded.config == pair.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, None), out)


def test_map_training_lowers_its_loss(tmp_path: Path):
    from denoise_cli.engine.training.data import PatchSampler
    from denoise_cli.engine.training.map_denoiser import MapDenoiserTraining
    from denoise_cli.engine.training.trainer import TrainConfig, train

    torch.manual_seed(0)
    model = registry.build("map-denoiser", {"channels": 1, **TINY_MAP, "sigma_r": 25.0})
    images = [synthetic_image(48, 48, 1, i) for i in range(4)]
    task = MapDenoiserTraining(PatchSampler(images, 24), 25.0, (0.0, 10.0), images[:1])
    losses: list[float] = []
    history = []

    def record(event: dict) -> None:
        if event["kind"] == "log":
            losses.append(event["loss"])
        elif event["kind"] == "validate":
            history.append(event)

    config = TrainConfig(max_steps=40, batch_size=8, learning_rate=3e-3, warmup_steps=5, log_every=10,
                         validate_every=40)
    train(model, task, config, tmp_path / "map.pt", {}, torch.device("cpu"), on_event=record)
    assert losses[-1] < 0.7 * losses[0]
    assert set(history[-1]) >= {"psnr_map", "psnr_aux"}
    assert weights.load_model(tmp_path / "map.pt").arch_name == "map-denoiser"


# --- the command ----------------------------------------------------------------------------


def _tiny_map_weights(path: Path, channels: int = 3) -> Path:
    torch.manual_seed(1)
    pair = registry.build("map-denoiser", {"channels": channels, **TINY_MAP})
    weights.save_weights(path, pair)  # last layers start at zero: D and R are the identity
    return path


def test_deblur_streams_through_a_real_pipe(tmp_path: Path, tiny_weights):
    model = tiny_weights(3)
    clean = synthetic_image(40, 48, 3)
    blurred = (blur(clean / 255.0, parse_kernel("gaussian:1.5")[0], "reflect") * 255).round().astype(np.uint8)
    source = write_png(tmp_path / "blurred.png", blurred)
    with open(source, "rb") as stdin, open(tmp_path / "out.png", "wb") as stdout:
        result = subprocess.run([sys.executable, "-m", "denoise_cli", "deblur", "-", "--kernel", "gaussian:1.5",
                                 "-s", "2", "--weights", str(model), "--iters", "2"],
                                stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=300,
                                env={**os.environ, **ONE_THREAD})
    assert result.returncode == 0, result.stderr.decode()
    from denoise_cli.imgio.codec import read_image

    out = read_image(tmp_path / "out.png")
    assert out.pixels.shape == (40, 48, 3) and out.depth == "8"


def test_deblur_map_prior_with_iterates_and_json(tmp_path: Path):
    model = _tiny_map_weights(tmp_path / "map.pt", channels=1)
    source = write_png(tmp_path / "in.png", synthetic_image(32, 36, 3))  # colour image, gray model
    result = run_dncli("deblur", str(source), "-k", "box:3", "-s", "1", "--weights", str(model), "--iters", "3",
                       "--save-iterates", str(tmp_path / "steps"), "-o", str(tmp_path / "out.png"), "--json",
                       env=ONE_THREAD)
    assert result.returncode == 0, result.stderr.decode()
    record = json.loads(result.stdout)["images"][0]
    assert record["prior"] == "map" and 1 <= record["iterations"] <= 3 and "converged" in record
    steps = sorted(p.name for p in (tmp_path / "steps").iterdir())
    assert steps == [f"in_{k:03d}.png" for k in range(1, record["iterations"] + 1)]


@pytest.mark.parametrize("content, fragment", [(np.array([[0.2, np.nan], [0.1, 0.3]]), "NaN"),
                                               (np.zeros((0, 3)), "empty")])
def test_deblur_rejects_a_bad_kernel(tmp_path: Path, content: np.ndarray, fragment: str):
    np.save(tmp_path / "k.npy", content)
    source = write_png(tmp_path / "in.png", synthetic_image(32, 32, 1))
    result = run_dncli("deblur", str(source), "-k", str(tmp_path / "k.npy"), "-o", str(tmp_path / "o.png"))
    assert_clean_error(result, 2, "--kernel", fragment)


def test_deblur_map_prior_needs_weights(tmp_path: Path, tiny_weights):
    source = write_png(tmp_path / "in.png", synthetic_image(32, 32, 1))
    empty = tmp_path / "no-weights"
    empty.mkdir()
    result = run_dncli("deblur", str(source), "-k", "box:3", "--prior", "map", "-o", str(tmp_path / "o.png"),
                       env={"DNCLI_WEIGHTS_DIR": str(empty)})
    assert_clean_error(result, 2, "none are shipped yet", "dncli map-train")
    result = run_dncli("deblur", str(source), "-k", "box:3", "--prior", "map", "--weights", str(tiny_weights(1)),
                       "-o", str(tmp_path / "o.png"))
    assert_clean_error(result, 2, "--prior mmse")


def test_deblur_map_prior_uses_the_gray_pair_on_colour_when_only_it_ships(tmp_path: Path):
    shipped = tmp_path / "weights"
    shipped.mkdir()
    pair = _tiny_map_weights(shipped / "map-gray.pt", channels=1)
    manifest = {"map-gray": {"file": pair.name, "sha256": weights.sha256_file(pair), "arch": "map-denoiser"}}
    (shipped / "manifest.json").write_text(json.dumps({"models": manifest}))
    source = write_png(tmp_path / "in.png", synthetic_image(32, 32, 3))
    result = run_dncli("deblur", str(source), "-k", "box:3", "-s", "1", "--prior", "map", "--iters", "2",
                       "-o", str(tmp_path / "out.png"), env={"DNCLI_WEIGHTS_DIR": str(shipped), **ONE_THREAD})
    assert result.returncode == 0, result.stderr.decode()
    assert "using map-gray on each colour channel" in result.stderr.decode()
    assert read_image(tmp_path / "out.png").pixels.shape == (32, 32, 3)
