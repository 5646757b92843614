"""Shared fixtures: synthetic images and tiny untrained-but-real models, never ../shared data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TINY = {"widths": (8, 8, 8), "encoder_blocks": (1, 1), "decoder_blocks": 1, "up_width": 4}


def synthetic_image(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A smooth image with edges, uint8 [H, W, C]: something a denoiser can work on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = []
    for _ in range(channels):
        a, b, c = rng.uniform(2, 8, 3)
        plane = 0.5 + 0.3 * np.sin(a * x + b * y) + 0.15 * np.cos(c * x * y * 4)
        plane += 0.2 * ((x - rng.uniform(0.2, 0.8)) > 0)
        planes.append(plane)
    return np.clip(np.stack(planes, -1) * 200, 0, 255).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    return path


def run_dncli(*args: str, input: bytes | None = None, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed program as a user runs it: a real process with real pipes."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "denoise_cli", *args], input=input, capture_output=True,
                          env=full_env, cwd=cwd, timeout=300)


def free_port() -> str:
    """A TCP port nobody listens on now, for a torchrun rendezvous: fixed ports collide when
    test runs overlap."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("dncli: error:")]
    assert lines, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


@pytest.fixture
def tiny_weights(tmp_path: Path):
    """Write a tiny gray or colour model (random weights) and return its path."""
    import torch

    from denoise_cli.engine import registry, weights

    def make(channels: int = 3, name: str = "tiny.pt", seed: int = 0) -> Path:
        torch.manual_seed(seed)
        model = registry.build("unet3", {"channels": channels, **TINY})
        for parameter in model.parameters():
            torch.nn.init.normal_(parameter, std=0.05)
        path = tmp_path / name
        weights.save_weights(path, model, {"note": "test model"})
        return path

    return make


@pytest.fixture
def shipped_dir(tmp_path: Path, tiny_weights):
    """A weights directory with a manifest, as shipped, holding tiny models."""
    from denoise_cli.engine.weights import sha256_file

    directory = tmp_path / "weights"
    directory.mkdir()
    models = {}
    for channels, name in ((1, "unet3-gray"), (3, "unet3-color")):
        path = tiny_weights(channels, f"{name}.pt", seed=channels)
        target = directory / path.name
        path.rename(target)
        models[name] = {"file": target.name, "sha256": sha256_file(target), "arch": "unet3"}
    (directory / "manifest.json").write_text(json.dumps({"models": models}))
    return directory


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, restored after: the tests share a small machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
