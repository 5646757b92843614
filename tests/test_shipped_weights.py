"""The shipped denoisers themselves: they verify, and they denoise the bundled examples well.

These run the real weights in weights/ through the program, as the README's quick start does,
on the bundled example images (never the shared benchmark sets).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, run_dncli

EXAMPLES = ROOT / "examples"


def _psnr(path: Path, clean: Path) -> float:
    """PSNR of ``path`` against ``clean``, in dB, as ``dncli eval-psnr`` measures it."""
    result = run_dncli("eval-psnr", str(path), "--ref", str(clean), "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)["mean"]["psnr"]


def test_manifest_lists_a_gray_and_a_colour_model_that_verify():
    from denoise_cli.engine import weights

    entries = weights.manifest(ROOT / "weights")
    for name, channels in (("unet3-gray", 1), ("unet3-color", 3)):
        assert name in entries, f"{name} is not shipped"
        entry = entries[name]
        assert entry["options"]["channels"] == channels
        for field in ("training", "metrics", "sha256", "macs_per_pixel", "parameters"):
            assert field in entry, f"{name}: manifest entry lacks {field}"
        path = weights.verify(name, ROOT / "weights")
        assert weights.load_model(path).config.channels == channels


def test_every_shipped_model_verifies_and_loads():
    from denoise_cli.engine import weights

    entries = weights.manifest(ROOT / "weights")
    for name, entry in entries.items():
        model = weights.load_model(weights.verify(name, ROOT / "weights"))
        assert model.arch_name == entry["arch"], name
        assert entry["training"]["steps"] > 0 and entry["training"]["hardware"], name


@pytest.mark.parametrize("name", ["unet3-gray", "unet3-color", "blindspot-color", "map-gray"])
def test_manifest_cost_is_what_the_model_runs(name: str):
    from denoise_cli.engine import weights
    from denoise_cli.engine.cost import macs_per_pixel

    entry = weights.manifest(ROOT / "weights")[name]
    model = weights.load_model(weights.verify(name, ROOT / "weights")).eval()
    assert macs_per_pixel(model, model.config.channels) == pytest.approx(entry["macs_per_pixel"])


@pytest.mark.parametrize("example, sigma, gain, model", [
    ("astronaut.png", 25, 6.0, None),
    ("camera.png", 15, 4.0, None),
    ("astronaut.png", 25, 6.0, "unet3-color-cascade-classify"),
    ("astronaut.png", 25, 6.0, "unet3-color-cascade-classify-nolabels"),
    ("astronaut.png", 25, 6.0, "blindspot"),
    ("astronaut.png", 25, 6.0, "blindspot-color-s25"),
    ("camera.png", 15, 4.0, "blindspot"),
    ("camera.png", 25, 4.0, "blindspot-gray-s25"),
])
def test_quick_start_denoising_gains_psnr(tmp_path: Path, example: str, sigma: int, gain: float, model: str | None):
    clean = EXAMPLES / example
    noisy, denoised = tmp_path / "noisy.tif", tmp_path / "denoised.png"
    made = run_dncli("degrade", str(clean), "--noise", f"gaussian:{sigma}", "--seed", "0", "-o", str(noisy))
    assert made.returncode == 0, made.stderr.decode()
    chosen = ["--model", model] if model else []
    run = run_dncli("denoise", str(noisy), "-s", str(sigma), "-o", str(denoised), "--depth", "8", *chosen)
    assert run.returncode == 0, run.stderr.decode()

    assert _psnr(denoised, clean) > _psnr(noisy, clean) + gain


def test_bf16_on_the_cpu_denoises_as_well_as_float32(tmp_path: Path):
    noisy = tmp_path / "noisy.tif"
    made = run_dncli("degrade", str(EXAMPLES / "astronaut.png"), "--noise", "gaussian:25", "--seed", "0",
                     "-o", str(noisy))
    assert made.returncode == 0, made.stderr.decode()
    scores = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.png"
        run = run_dncli("denoise", str(noisy), "-s", "25", "--device", "cpu", "--precision", precision,
                        "-o", str(out), "--depth", "8")
        assert run.returncode == 0, run.stderr.decode()
        scores[precision] = _psnr(out, EXAMPLES / "astronaut.png")
    assert abs(scores["bf16"] - scores["fp32"]) < 0.05


def test_self_ensemble_denoises_better(tmp_path: Path):
    clean, noisy = EXAMPLES / "astronaut.png", tmp_path / "noisy.tif"
    made = run_dncli("degrade", str(clean), "--noise", "gaussian:25", "--seed", "0", "-o", str(noisy))
    assert made.returncode == 0, made.stderr.decode()
    scores = []
    for extra in ([], ["--ensemble"]):
        out = tmp_path / f"out{len(extra)}.png"
        run = run_dncli("denoise", str(noisy), "-s", "25", "-o", str(out), "--depth", "8", *extra)
        assert run.returncode == 0, run.stderr.decode()
        scores.append(_psnr(out, clean))
    assert scores[1] > scores[0] + 0.05


def test_the_shipped_blindspot_model_estimates_the_noise_level_itself(tmp_path: Path):
    noisy, denoised = tmp_path / "noisy.tif", tmp_path / "denoised.png"
    made = run_dncli("degrade", str(EXAMPLES / "astronaut.png"), "--noise", "gaussian:40", "--seed", "1",
                     "-o", str(noisy))
    assert made.returncode == 0, made.stderr.decode()
    run = run_dncli("denoise", str(noisy), "-s", "auto", "--model", "blindspot", "-o", str(denoised), "--json")
    assert run.returncode == 0, run.stderr.decode()
    assert "(by the model)" in run.stderr.decode()
    assert abs(json.loads(run.stdout)["images"][0]["sigma"] - 40) < 5


@pytest.mark.parametrize("example, model", [("astronaut.png", "blindspot-color-global"),
                                            ("camera.png", "blindspot-gray-global")])
def test_the_shipped_global_level_models_denoise_sigma_25_with_their_learned_level(tmp_path: Path, example: str,
                                                                                     model: str):
    clean, noisy, denoised = EXAMPLES / example, tmp_path / "noisy.tif", tmp_path / "denoised.png"
    made = run_dncli("degrade", str(clean), "--noise", "gaussian:25", "--seed", "0", "-o", str(noisy))
    assert made.returncode == 0, made.stderr.decode()
    run = run_dncli("denoise", str(noisy), "-s", "auto", "--model", model, "-o", str(denoised), "--json",
                    "--depth", "8")
    assert run.returncode == 0, run.stderr.decode()
    assert abs(json.loads(run.stdout)["images"][0]["sigma"] - 25) < 1.5  # one level, learned from sigma-25 data
    assert _psnr(denoised, clean) > _psnr(noisy, clean) + 4.0


@pytest.mark.parametrize("example", ["astronaut.png", "camera.png"])
def test_the_shipped_map_pair_of_each_colour_mode_deblurs_its_example(tmp_path: Path, example: str):
    import imageio.v3 as iio

    pixels = iio.imread(EXAMPLES / example)
    top, left = (pixels.shape[0] - 128) // 2, (pixels.shape[1] - 128) // 2
    clean, blurred, restored = tmp_path / "clean.png", tmp_path / "blurred.tif", tmp_path / "restored.png"
    iio.imwrite(clean, pixels[top : top + 128, left : left + 128])
    made = run_dncli("degrade", str(clean), "--blur", "gaussian:1.6", "--noise", "gaussian:2.55", "--seed", "0",
                     "-o", str(blurred))
    assert made.returncode == 0, made.stderr.decode()
    run = run_dncli("deblur", str(blurred), "-k", "gaussian:1.6", "-s", "2.55", "--prior", "map",
                    "--boundary", "circular", "-o", str(restored))
    assert run.returncode == 0, run.stderr.decode()
    assert "ships; using" not in run.stderr.decode()  # the pair of the image's own colour mode

    assert _psnr(restored, clean) > _psnr(blurred, clean) + 2.0
