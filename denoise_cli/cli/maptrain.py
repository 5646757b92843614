"""Train a MAP denoiser for 'dncli deblur --prior map' on folders of clean images.

Two plain 17-layer CNNs are trained together (Bigdeli et al., VISAPP 2020): R, a denoiser for
the single noise level --sigma-r, and D, trained against R to give the MAP estimate for that
noise level, which is the proximal step of ADMM with rho = 1/sigma_R^2. Both are saved in one
file, a checkpoint and a weights file at once: --resume continues it exactly, 'dncli deblur
--weights FILE' uses it. The loop is the one of 'dncli train': Adam with warm-up and cosine
decay, validation PSNR of D and R at sigma_R on --val, data-parallel under torchrun.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import console, training
from .options import (CheckpointEvery, Device, Json, LearningRate, MaxSteps, MaxTime, TrainingPrecision, Resume,
    Seed, Threads, ValidateEvery)

NAME = "map-train"
NO_ARGS_IS_HELP = True
# The authors' levels: 7 for their gray model, 11 for the colour one (0..255 scale).
DEFAULT_SIGMA_R = {1: 7.0, 3: 11.0}


def command(
    data: Annotated[list[Path], typer.Argument(help="Directories of clean training images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint / weights file to write.")],
    channels: Annotated[int, typer.Option("--channels", help="1 trains a gray model, 3 a colour model.")] = 3,
    sigma_r: Annotated[Optional[float], typer.Option(
        "--sigma-r", help="Noise level of R and of D's MAP problem, 0..255 scale "
                          "[default: 7 gray, 11 colour].")] = None,
    input_sigma: Annotated[str, typer.Option(
        "--input-sigma", help="LOW,HIGH noise levels added to D's training inputs; 0,0 trains on clean "
                              "patches.")] = "0,0",
    val: Annotated[Optional[Path], typer.Option("--val", help="Directory of clean validation images.")] = None,
    patch: Annotated[int, typer.Option("--patch", help="Training patch side in pixels.")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Patches per step and process.")] = 128,
    max_steps: MaxSteps = 100000,
    max_time: MaxTime = None,
    learning_rate: LearningRate = 1e-4,
    layers: Annotated[int, typer.Option("--layers", help="3x3 convolution layers of each network.")] = 17,
    width: Annotated[int, typer.Option("--width", help="Feature channels of each network.")] = 64,
    validate_every: ValidateEvery = 1000,
    checkpoint_every: CheckpointEvery = 300.0,
    resume: Resume = False,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    precision: TrainingPrecision = "auto",
    json_output: Json = False,
) -> int:

    from ..engine import registry, weights
    from ..engine.training import ddp
    from ..engine.training.data import load_images
    from ..engine.training.map_denoiser import MapDenoiserTraining
    from ..engine.training.trainer import TrainConfig

    if channels not in (1, 3):
        raise UsageError("--channels must be 1 or 3")
    level = DEFAULT_SIGMA_R[channels] if sigma_r is None else sigma_r
    if not 0 < level <= 255:
        raise UsageError(f"--sigma-r {level:g}: use a level in (0, 255]")
    low, high = training.sigma_range(input_sigma, "--input-sigma")
    if patch < 16:
        raise UsageError("--patch must be at least 16 pixels")
    if layers < 2 or width < 1:
        raise UsageError("--layers must be at least 2 and --width at least 1")
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)

    options = {"channels": channels, "depth": layers, "width": width, "sigma_r": level}
    if resume:
        record = weights.load_checkpoint(output)
        if record["arch"] != "map-denoiser":
            raise UsageError(f"--resume: {output} holds a {record['arch']!r} model, not a map-denoiser")
        options = record["options"]
        if options.get("channels") != channels or (sigma_r is not None and options.get("sigma_r") != sigma_r):
            raise UsageError(f"--resume: {output} holds a model for {options.get('channels')} channel(s) "
                             f"and sigma_r {options.get('sigma_r')}; give the same --channels and --sigma-r")
        level = options["sigma_r"]
    model = registry.build("map-denoiser", options)
    console.info(f"loading training images from {', '.join(map(str, data))}")
    sampler = training.patch_sampler(load_images(data, channels), patch)
    validation = load_images([val], channels) if val else []
    task = MapDenoiserTraining(sampler, level, (low, high), validation)
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size, learning_rate=learning_rate,
                         validate_every=validate_every if val else 0, checkpoint_every=checkpoint_every,
                         seed=seed, precision=precision)
    meta = {"training_data": [str(d) for d in data], "sigma_r": level, "input_sigma": [low, high],
            "patch": patch, "device": str(torch_device), "world_size": ddp.world_size()}

    result = training.run(model, task, config, output, meta, torch_device, resume)
    if json_output:
        training.print_summary(output, result, sigma_r=level)
    return 0
