"""Remove additive white Gaussian noise with a trained network.

The shipped three-scale denoiser (Liu et al., IJCAI 2018, made noise-level conditional) has
a gray and a colour model, picked to match each image; --weights uses a model trained with
'dncli train' or 'dncli blindspot-train' (a blind-spot model that learned the noise level
gives its own estimate for 'auto'). SIGMA is the noise standard deviation on the 0..255 scale (the models were
trained for 0..75), or 'auto' to estimate it per image. Alpha is kept; float inputs (32-bit
TIFF, .npy) give float outputs, unclipped.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import console, runner
from .options import (BatchSize, Depth, Device, Format, Glob, InPlace, Json, Output, Precision, Recursive,
                      Shard, SkipExisting, Threads, Tile, parse_sigma)

NAME = "denoise"
NO_ARGS_IS_HELP = True
TRAINED_SIGMA_MAX = 75.0
# --model FAMILY picks the family's gray or colour model by each image's channels.
FAMILIES = {"unet3": {1: "unet3-gray", 3: "unet3-color"}, "blindspot": {1: "blindspot-gray", 3: "blindspot-color"}}


def command(
    input: Annotated[str, typer.Argument(help="Image, directory or '-' for stdin.")],
    sigma: Annotated[str, typer.Option(
        "--sigma", "-s", help="Noise level on the 0..255 scale, or 'auto' to estimate it per image.")],
    output: Output = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Shipped model (see 'dncli models'), or unet3 or blindspot for that family's gray or "
                        "colour model by the image's channels [default: unet3].")] = None,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", help="Weights file or checkpoint written by 'dncli train' or 'dncli blindspot-train'.")] = None,
    device: Device = None,
    threads: Threads = None,
    precision: Precision = "fp32",
    tile: Tile = None,
    ensemble: Annotated[bool, typer.Option(
        "--ensemble", help="Average the model over the 8 flips and quarter turns of the image: about "
                           "0.1 dB better, 8x slower.")] = False,
    batch_size: BatchSize = 1,
    format: Format = None,
    depth: Depth = None,
    recursive: Recursive = False,
    glob: Glob = None,
    skip_existing: SkipExisting = False,
    shard: Shard = None,
    in_place: InPlace = False,
    json_output: Json = False,
) -> int:
    fixed_sigma = _checked_sigma(sigma)
    if model and weights:
        raise UsageError("--model and --weights exclude each other")
    runner.check_json_destination(json_output, output, in_place)
    if tile is not None and tile < 64:
        raise UsageError("--tile must be at least 64 pixels")

    import numpy as np

    from ..engine import weights as weight_files
    from ..engine.inference import Runner
    from ..engine.noise_estimate import estimate_sigma

    torch_device = runner.compute_device(device, threads, precision)

    runners: dict[int, Runner] = {}

    def runner_for(channels: int) -> Runner:
        """The network for gray (1) or colour (3) images, loaded once."""
        if channels not in runners:
            network = (weight_files.load_model(weights) if weights
                       else weight_files.load_shipped(_shipped_name(model or "unet3", channels)))
            reason = weight_files.why_not_a_denoiser(network)
            if reason:
                raise UsageError(f"{weights or model} is {reason}")
            fixed_level = getattr(network.config, "sigma_r", None)  # a MAP denoiser: one level only
            if fixed_level is not None and fixed_sigma is not None and fixed_sigma != fixed_level:
                console.warn(f"{weights or model} denoises noise of level {fixed_level:g} only: "
                             f"-s {fixed_sigma:g} does not change what it does")
            runners[channels] = Runner(network, torch_device, precision, tile, ensemble)
        return runners[channels]

    records = []

    def process(images, jobs):
        color = np.stack([image.color for image in images])
        network = runner_for(color.shape[-1])
        # A model that learned the noise level (blind-spot global/per-image) estimates it itself.
        own = fixed_sigma is None and getattr(network.model, "estimates_sigma", False)
        if own:
            levels = list(network.own_sigma(color) * 255.0)
        else:
            levels = [fixed_sigma if fixed_sigma is not None else estimate_sigma(c) for c in color]
        if fixed_sigma is None:
            for job, level in zip(jobs, levels):
                console.info(f"{job.name}: estimated sigma {level:.2f}{' (by the model)' if own else ''}")
        denoised = network(color, np.asarray(levels, np.float32) / 255.0)
        records.extend({"input": job.name, "output": job.dest, "sigma": round(float(level), 3)}
                       for job, level in zip(jobs, levels))
        return [image.with_color(result) for image, result in zip(images, denoised)]

    code = runner.run_images(input, output, process, format=format, depth=depth, recursive=recursive, glob=glob,
                             skip_existing=skip_existing, shard=shard, in_place=in_place,
                             batch_size=batch_size, description="denoising")
    if json_output:
        console.print_json({"images": records})
    return code


def _shipped_name(model: str, channels: int) -> str:
    return FAMILIES[model][channels] if model in FAMILIES else model


def _checked_sigma(text: str) -> float | None:
    value = parse_sigma(text)
    if value is not None and value > TRAINED_SIGMA_MAX:
        console.warn(f"--sigma {value:g} is above the trained range 0..{TRAINED_SIGMA_MAX:g}: expect artefacts")
    return value
