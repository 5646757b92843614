"""The shared engine: network contract, tiling, metrics, training, weights."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, assert_clean_error, free_port, run_dncli, synthetic_image, write_png
from denoise_cli.engine import registry, weights
from denoise_cli.engine.inference import Runner
from denoise_cli.engine.metrics import compare, psnr, ssim
from denoise_cli.engine.tiling import apply_tiled


def random_model(channels: int = 3, options: dict | None = None) -> torch.nn.Module:
    torch.manual_seed(1)
    model = registry.build("unet3", {"channels": channels, **(options or {})})
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.04)
    return model.eval()


def test_unet3_any_size_and_receptive_field_bound():
    model = random_model(3)
    for height, width in ((17, 23), (64, 64), (5, 9)):
        assert model(torch.rand(2, 3, height, width), 0.1).shape == (2, 3, height, width)
    x = torch.zeros(1, 3, 160, 160, requires_grad=True)
    model(x, 0.1)[0, :, 80, 80].sum().backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(1)[0], as_tuple=True)
    reach = max((rows - 80).abs().max().item(), (cols - 80).abs().max().item())
    assert 0 < reach <= model.receptive_radius


def test_sigma_is_an_input_and_per_image():
    model = random_model(1)
    x = torch.rand(2, 1, 32, 32)
    both = model(x, torch.tensor([0.05, 0.2]))
    assert torch.allclose(both[0], model(x[:1], 0.05)[0], atol=1e-6)
    assert torch.allclose(both[1], model(x[1:], 0.2)[0], atol=1e-6)
    assert not torch.allclose(both[0], model(x[:1], 0.2)[0])


@pytest.mark.parametrize("tile", [96, 128, 200])
def test_tiled_equals_untiled(tile: int):
    model = random_model(3)
    runner = Runner(model, torch.device("cpu"), tile=1024)
    image = np.random.default_rng(0).random((1, 203, 257, 3), dtype=np.float32)
    whole = runner(image, 0.1)
    runner.tile = tile
    assert np.abs(runner(image, 0.1) - whole).max() < 1e-4


def test_self_ensemble_is_exact_under_tiling_and_commutes_with_flips_and_turns():
    model = random_model(3, TINY)
    runner = Runner(model, torch.device("cpu"), tile=1024, ensemble=True)
    image = np.random.default_rng(0).random((1, 203, 257, 3), dtype=np.float32)
    whole = runner(image, 0.1)
    runner.tile = 96
    assert np.abs(runner(image, 0.1) - whole).max() < 1e-4
    assert np.abs(whole - Runner(model, torch.device("cpu"))(image, 0.1)).max() > 1e-3

    square = image[:, :96, :96]
    ensemble = runner(square, 0.1)
    for turned in (np.rot90, np.flipud, np.fliplr):
        moved = np.ascontiguousarray(turned(square[0]))[None]
        assert np.abs(runner(moved, 0.1)[0] - turned(ensemble[0])).max() < 1e-5


def test_tiles_blend_smoothly_when_margin_is_too_small():
    def network(x: torch.Tensor) -> torch.Tensor:  # a window-dependent response: shows seams
        return x + x.mean()

    x = torch.rand(1, 1, 100, 100)
    blended = apply_tiled(network, x, tile=48, margin=2, multiple=1, ramp=12)
    jumps = (blended[..., 1:] - blended[..., :-1]).abs().max()
    assert jumps < (x[..., 1:] - x[..., :-1]).abs().max() + 0.05


def test_metrics_against_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    assert psnr(noisy, clean) == pytest.approx(metrics.peak_signal_noise_ratio(clean, noisy, data_range=255))
    expected = metrics.structural_similarity(clean, noisy, data_range=255, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, channel_axis=-1)
    assert ssim(noisy, clean) == pytest.approx(expected, abs=1e-9)
    gray_expected = metrics.structural_similarity(clean[..., 0], noisy[..., 0], data_range=255,
                                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(noisy[..., 0], clean[..., 0]) == pytest.approx(gray_expected, abs=1e-9)


def test_compare_rounds_to_the_reference_depth():
    reference = np.full((16, 16, 1), 0.5, np.float32)
    estimate = reference + 0.4 / 255  # rounds to the same 8-bit value
    assert compare(estimate, reference, "8")["psnr"] == float("inf")
    assert compare(estimate, reference, "32f")["psnr"] < 100


def _train_cli(tmp_path: Path, output: Path, *extra: str) -> None:
    data = tmp_path / "data"
    if not data.exists():
        for index in range(4):
            write_png(data / f"{index}.png", synthetic_image(48, 48, 1, index))
    args = ["train", str(data), "-o", str(output), "--channels", "1", "--patch", "32", "--batch-size", "4",
            "--widths", "8,8,8", "--blocks", "1,1,1", "--seed", "5", "--lr", "2e-3", *extra]
    result = run_dncli(*args, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_lowers_the_loss(precision: str):
    from denoise_cli.engine.training.data import PatchSampler
    from denoise_cli.engine.training.supervised import SupervisedDenoising
    from denoise_cli.engine.training.trainer import TrainConfig, train

    images = [synthetic_image(48, 48, 1, i) for i in range(4)]
    task = SupervisedDenoising(PatchSampler(images, 32), (20, 30), "l2")
    model = registry.build("unet3", {"channels": 1, **TINY})
    losses: list[float] = []
    config = TrainConfig(max_steps=60, batch_size=8, learning_rate=3e-3, warmup_steps=5, log_every=10,
                         validate_every=0, precision=precision)

    def record(event: dict) -> None:
        if event["kind"] == "log":
            losses.append(event["loss"])

    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        train(model, task, config, Path(folder) / "c.pt", {}, torch.device("cpu"), on_event=record)
    assert losses[-1] < 0.6 * losses[0]


def _supervised_denoising():
    from denoise_cli.engine.training.data import PatchSampler
    from denoise_cli.engine.training.supervised import SupervisedDenoising

    images = [synthetic_image(48, 48, 3, i) for i in range(3)]
    return registry.build("unet3", {"channels": 3, **TINY}), SupervisedDenoising(PatchSampler(images, 32), (0, 50))


def _classifier_with_dropout():
    from denoise_cli.engine.training.labelled import LabelledImages, LabelledSampler
    from denoise_cli.engine.training.task_networks import TaskNetworkTraining

    data = LabelledImages("classify", [synthetic_image(12, 12, 3, i) for i in range(6)], [0, 1] * 3, ["a", "b"])
    model = registry.build("classifier-cnn", {"channels": 3, "classes": 2, "widths": [4, 8]})
    assert any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    return model, TaskNetworkTraining(LabelledSampler(data, 8))


@pytest.mark.parametrize("make", [_supervised_denoising, _classifier_with_dropout])
def test_resume_after_an_interruption_is_exact(tmp_path: Path, make):
    from denoise_cli.engine.training.trainer import TrainConfig, train

    config = TrainConfig(max_steps=10, batch_size=2, warmup_steps=2, log_every=1, validate_every=0,
                         checkpoint_every=0.0)

    def run(path: Path, resume: bool = False, stop_at: int | None = None) -> dict:
        torch.manual_seed(0)
        model, task = make()

        def interrupt(event: dict) -> None:
            if stop_at is not None and event["kind"] == "log" and event["step"] == stop_at:
                raise KeyboardInterrupt

        try:
            train(model, task, config, path, {}, torch.device("cpu"), resume=resume, on_event=interrupt)
        except KeyboardInterrupt:
            pass
        return weights.load_checkpoint(path)

    straight = run(tmp_path / "straight.pt")
    assert run(tmp_path / "resumed.pt", stop_at=6)["step"] == 5
    resumed = run(tmp_path / "resumed.pt", resume=True)
    assert resumed["step"] == 10
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name


def test_resuming_with_other_settings_or_nothing_left_is_said(tmp_path: Path):
    from dataclasses import replace

    from denoise_cli.engine.training.trainer import TrainConfig, train

    config = TrainConfig(max_steps=2, batch_size=2, warmup_steps=1, log_every=1, validate_every=0)
    train(*_supervised_denoising(), config, tmp_path / "c.pt", {}, torch.device("cpu"))
    warnings: list[str] = []

    def collect(event: dict) -> None:
        if event["kind"] == "warning":
            warnings.append(event["message"])

    longer = replace(config, max_steps=3)
    train(*_supervised_denoising(), longer, tmp_path / "c.pt", {}, torch.device("cpu"), resume=True, on_event=collect)
    assert len(warnings) == 1 and "max_steps 2 -> 3" in warnings[0]
    train(*_supervised_denoising(), longer, tmp_path / "c.pt", {}, torch.device("cpu"), resume=True, on_event=collect)
    assert len(warnings) == 2 and "step 3 of 3: nothing to train" in warnings[1]


def test_cpu_training_precision_is_float32_by_default_and_bf16_on_request(tmp_path: Path):
    runs = {}
    for precision in ("auto", "fp32", "bf16"):
        _train_cli(tmp_path, tmp_path / f"{precision}.pt", "--max-steps", "3", "--device", "cpu",
                   "--precision", precision)
        runs[precision] = weights.load_checkpoint(tmp_path / f"{precision}.pt")["state_dict"]
    differs = [name for name, tensor in runs["fp32"].items() if not torch.equal(tensor, runs["bf16"][name])]
    assert all(torch.equal(tensor, runs["fp32"][name]) for name, tensor in runs["auto"].items())
    assert differs  # bf16 autocast took effect: before, the CPU silently trained in float32
    result = run_dncli("train", str(tmp_path / "data"), "-o", str(tmp_path / "fp8.pt"), "--precision", "fp8")
    assert_clean_error(result, 2, "unknown precision 'fp8'", "auto")
    assert not (tmp_path / "fp8.pt").exists()


def test_init_fine_tunes_given_weights_and_checks_their_kind(tmp_path: Path):
    _train_cli(tmp_path, tmp_path / "start.pt", "--max-steps", "3")
    _train_cli(tmp_path, tmp_path / "tuned.pt", "--max-steps", "1", "--lr", "1e-12",
               "--init", str(tmp_path / "start.pt"))
    start, tuned = (weights.load_checkpoint(tmp_path / f"{n}.pt") for n in ("start", "tuned"))
    for name, tensor in start["state_dict"].items():
        torch.testing.assert_close(tuned["state_dict"][name], tensor, rtol=0, atol=1e-6)
    assert tuned["meta"]["initial_weights"] == str(tmp_path / "start.pt")
    result = run_dncli("train", str(tmp_path / "data"), "-o", str(tmp_path / "colour.pt"), "--channels", "3",
                       "--init", str(tmp_path / "start.pt"), "--max-steps", "1")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("dncli: error: --init") and not (tmp_path / "colour.pt").exists()


def test_multiscale_training_adds_downscaled_copies_that_fit_a_patch(tmp_path: Path):
    from denoise_cli.engine.training.data import with_rescaled_copies

    image = synthetic_image(48, 64, 3, 0)
    copies = with_rescaled_copies([image], (1.0, 0.5, 0.25), min_side=20)
    assert [copy.shape for copy in copies] == [(48, 64, 3), (24, 32, 3)]
    assert copies[1].dtype == np.uint8 and abs(copies[1].mean() - image.mean()) < 2

    _train_cli(tmp_path, tmp_path / "multiscale.pt", "--scales", "1,0.7", "--max-steps", "2")
    assert weights.load_checkpoint(tmp_path / "multiscale.pt")["meta"]["scales"] == [1.0, 0.7]
    result = run_dncli("train", str(tmp_path / "data"), "-o", str(tmp_path / "bad.pt"), "--scales", "1,0")
    assert result.returncode == 2 and result.stderr.decode().startswith("dncli: error: --scales")


def test_diverging_training_stops_without_checkpointing_it(tmp_path: Path):
    from denoise_cli.engine.training.trainer import TrainConfig, train

    class Diverging:
        def batch(self, size, generator, device):
            return torch.rand(size, 1, 16, 16)

        def loss(self, model, batch):
            return model(batch, 0.1).mean() * float("nan")

        def validate(self, model, device):
            return {}

    model = registry.build("unet3", {"channels": 1, **TINY})
    with pytest.raises(FloatingPointError, match="nan"):
        train(model, Diverging(), TrainConfig(max_steps=5, warmup_steps=1, validate_every=0),
              tmp_path / "c.pt", {}, torch.device("cpu"))
    assert not (tmp_path / "c.pt").exists()


def test_trained_file_is_usable_weights(tmp_path: Path):
    _train_cli(tmp_path, tmp_path / "model.pt", "--max-steps", "3")
    image = write_png(tmp_path / "n.png", synthetic_image(40, 40, 1))
    result = run_dncli("denoise", str(image), "-s", "20", "--weights", str(tmp_path / "model.pt"),
                       "-o", str(tmp_path / "d.png"))
    assert result.returncode == 0, result.stderr.decode()


def test_distributed_training_with_two_cpu_processes(tmp_path: Path):
    for index in range(4):
        write_png(tmp_path / "data" / f"{index}.png", synthetic_image(48, 48, 3, index))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", free_port(),
               "-m", "denoise_cli", "train", str(tmp_path / "data"), "-o", str(tmp_path / "ddp.pt"),
               "--patch", "32", "--batch-size", "2", "--widths", "8,8,8", "--blocks", "1,1,1", "--max-steps", "4"]
    result = subprocess.run(command, capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    record = weights.load_checkpoint(tmp_path / "ddp.pt")
    assert record["step"] == 4 and record["meta"]["world_size"] == 2


def test_a_wheel_install_finds_and_verifies_shipped_weights(tmp_path: Path, shipped_dir: Path):
    import shutil

    source = tmp_path / "source"
    shutil.copytree(Path(__file__).resolve().parent.parent, source,
                    ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__", "*.pt",
                                                  "manifest.json"))
    for item in shipped_dir.iterdir():
        shutil.copy(item, source / "weights" / item.name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=600)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True, timeout=600)
    code = ("import denoise_cli.engine.weights as w; assert w.weights_dir().name == '_weights', w.weights_dir(); "
            "w.load_shipped('unet3-color'); w.load_shipped('unet3-gray')")
    env = {k: v for k, v in os.environ.items() if k != "DNCLI_WEIGHTS_DIR"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            env={**env, "PYTHONPATH": str(target)}, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
