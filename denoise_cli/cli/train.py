"""Train the denoiser on folders of clean images (supervised, synthetic Gaussian noise).

Random patches with flips/rotations; each patch gets a noise level drawn from --sigma-range
(0..255 scale); Adam with warm-up and cosine decay; validation PSNR on --val every
--validate-every steps. The output file is a checkpoint and a weights file at once: --resume
continues it exactly, 'dncli denoise --weights' uses it. Started by torchrun, training runs
data-parallel on every process (NCCL on GPUs, gloo on CPUs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import console, training
from .options import (CheckpointEvery, Device, Json, LearningRate, MaxSteps, MaxTime, TrainingPrecision, Resume,
    Seed, Threads, ValidateEvery)

NAME = "train"
NO_ARGS_IS_HELP = True


def command(
    data: Annotated[list[Path], typer.Argument(help="Directories of clean training images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint / weights file to write.")],
    channels: Annotated[int, typer.Option("--channels", help="1 trains a gray model, 3 a colour model.")] = 3,
    val: Annotated[Optional[Path], typer.Option("--val", help="Directory of clean validation images.")] = None,
    val_sigma: Annotated[float, typer.Option("--val-sigma", help="Noise level of validation.")] = 25.0,
    sigma_range: Annotated[str, typer.Option("--sigma-range", help="LOW,HIGH noise levels to train for.")] = "0,75",
    patch: Annotated[int, typer.Option("--patch", help="Training patch side in pixels (a multiple of 4).")] = 64,
    scales: Annotated[str, typer.Option(
        "--scales", help="Image scales to cut patches from, e.g. 1,0.9,0.8,0.7 (downscaled copies "
                         "are cleaner targets).")] = "1",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Patches per step and process.")] = 16,
    max_steps: MaxSteps = 10000,
    max_time: MaxTime = None,
    learning_rate: LearningRate = 5e-4,
    loss: Annotated[str, typer.Option("--loss", help="l1 or l2.")] = "l1",
    widths: Annotated[str, typer.Option("--widths", help="Channels at scales 1,2,3.")] = "64,128,192",
    blocks: Annotated[str, typer.Option("--blocks", help="Bottleneck blocks: encoder 2, encoder 3, decoder 2.")] = "2,4,1",
    validate_every: ValidateEvery = 500,
    checkpoint_every: CheckpointEvery = 300.0,
    init: Annotated[Optional[str], typer.Option(
        "--init", help="Start from these weights (a shipped name or a file) instead of random ones.")] = None,
    resume: Resume = False,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    precision: TrainingPrecision = "auto",
    json_output: Json = False,
) -> int:

    from ..engine import registry, weights
    from ..engine.training import ddp
    from ..engine.training.data import load_images, with_rescaled_copies
    from ..engine.training.supervised import LOSSES, SupervisedDenoising
    from ..engine.training.trainer import TrainConfig

    low, high = training.sigma_range(sigma_range, "--sigma-range")
    if channels not in (1, 3):
        raise UsageError("--channels must be 1 or 3")
    if loss not in LOSSES:
        raise UsageError(f"--loss {loss!r}: use {' or '.join(LOSSES)}")
    training.check_patch_side(patch, "--patch")
    image_scales = tuple(training.numbers(scales, scales.count(",") + 1, "--scales"))
    if any(not 0 < scale <= 1 for scale in image_scales):
        raise UsageError(f"--scales {scales!r}: every scale must lie in (0, 1]")
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)

    options = {"channels": channels, "widths": training.positive_integers(widths, "--widths", 3),
               "encoder_blocks": training.numbers(blocks, 3, "--blocks", int)[:2],
               "decoder_blocks": training.numbers(blocks, 3, "--blocks", int)[2]}
    if resume:
        record = weights.load_checkpoint(output)
        if record.get("arch") != "unet3" or record["options"].get("channels") != channels:
            raise UsageError(f"--resume: {output} holds no {channels}-channel unet3 denoiser; resume it with the "
                             "command and --channels that wrote it")
        initial_weights = record["meta"].get("initial_weights")
        model = weights.model_from_record(record, str(output))
    elif init:
        initial_weights = init
        _, model = training.starting_denoiser(init, "--init", channels)
    else:
        initial_weights = None
        model = registry.build("unet3", options)
    console.info(f"loading training images from {', '.join(map(str, data))}")
    sampler = training.patch_sampler(with_rescaled_copies(load_images(data, channels), image_scales, patch), patch)
    validation = load_images([val], channels) if val else []
    task = SupervisedDenoising(sampler, (low, high), loss, validation, (val_sigma,))
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size, learning_rate=learning_rate,
                         validate_every=validate_every if val else 0, checkpoint_every=checkpoint_every,
                         seed=seed, precision=precision)
    meta = {"training_data": [str(d) for d in data], "sigma_range": [low, high], "loss": loss, "patch": patch,
            "scales": list(image_scales),
            "initial_weights": initial_weights, "device": str(torch_device), "world_size": ddp.world_size()}

    result = training.run(model, task, config, output, meta, torch_device, resume)
    if json_output:
        training.print_summary(output, result)
    return 0

