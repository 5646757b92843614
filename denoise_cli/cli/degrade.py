"""Synthesise degraded images: blur, then noise.

Noise: gaussian:SIGMA (0..255 scale, not clipped) or poisson:PEAK (photons at white).
Blur: a kernel file (.npy, .png, .txt) or gaussian:SIGMA, motion:LENGTH,ANGLE, box:N.
TIFF and .npy outputs are written as float32 by default, so noisy values stay exact and
unclipped; 8- and 16-bit outputs are clipped and rounded. Randomness comes from --seed and
the image's index in the sorted input list, so sharded runs draw the same noise.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import runner
from .options import Depth, Format, Glob, InPlace, Output, Recursive, Seed, Shard, SkipExisting

NAME = "degrade"
NO_ARGS_IS_HELP = True
MAX_POISSON_PEAK = 1e9  # far beyond any sensor, and within what the Poisson sampler draws from
FLOAT_FORMATS = ("tiff", "npy")


def command(
    input: Annotated[str, typer.Argument(help="Image, directory or '-' for stdin.")],
    output: Output = None,
    noise: Annotated[Optional[str], typer.Option(
        "--noise", help="gaussian:SIGMA (0..255 scale) or poisson:PEAK.")] = None,
    blur: Annotated[Optional[str], typer.Option(
        "--blur", help="Kernel file (.npy/.png/.txt) or gaussian:SIGMA, motion:LENGTH,ANGLE, box:N.")] = None,
    boundary: Annotated[str, typer.Option(
        "--boundary", help="Blur boundary: wrap (circular) or reflect.")] = "wrap",
    seed: Seed = 0,
    format: Format = None,
    depth: Depth = None,
    recursive: Recursive = False,
    glob: Glob = None,
    skip_existing: SkipExisting = False,
    shard: Shard = None,
    in_place: InPlace = False,
) -> int:
    import numpy as np

    from ..engine.physics.blur import KernelError, blur as apply_blur, parse_kernel
    from ..imgio.codec import default_output_format

    if noise is None and blur is None:
        raise UsageError("nothing to do: give --noise and/or --blur")
    if boundary not in ("wrap", "reflect"):
        raise UsageError(f"--boundary {boundary!r}: use wrap or reflect")
    add_noise = _noise_model(noise) if noise else None
    kernel = None
    if blur:
        try:
            kernel, warnings = parse_kernel(blur)
        except KernelError as exc:
            raise UsageError(f"--blur: {exc}") from None
        for warning in warnings:
            runner.console.warn(warning)

    def process(images, jobs):
        results = []
        for image, job in zip(images, jobs):
            color = image.color.astype(np.float64)
            if kernel is not None:
                color = apply_blur(color, kernel, boundary)
            if add_noise is not None:
                color = add_noise(color, np.random.default_rng([seed, job.index]))
            result = image.with_color(np.asarray(color, dtype=np.float32))
            dest_format = format or default_output_format(job.dest, image.format)
            if depth is None and dest_format in FLOAT_FORMATS:
                result = replace(result, depth="32f")  # keep the noisy values exact and unclipped
            results.append(result)
        return results

    return runner.run_images(input, output, process, format=format, depth=depth,
                             recursive=recursive, glob=glob, skip_existing=skip_existing, shard=shard,
                             in_place=in_place, description="degrading")


def _noise_model(spec: str):
    from ..engine.physics import noise as noise_models

    kind, _, value = spec.partition(":")
    try:
        level = float(value)
    except ValueError:
        raise UsageError(f"--noise {spec!r}: expected gaussian:SIGMA or poisson:PEAK") from None
    if kind == "gaussian":
        if not 0 <= level <= 255:
            raise UsageError(f"--noise {spec!r}: sigma must be in 0..255")
        return lambda image, rng: noise_models.gaussian(image, level, rng)
    if kind == "poisson":
        if not 0 < level <= MAX_POISSON_PEAK:
            raise UsageError(f"--noise {spec!r}: the peak (photons at the white level) must be in "
                             f"(0, {MAX_POISSON_PEAK:g}]")
        return lambda image, rng: noise_models.poisson(image, level, rng)
    raise UsageError(f"--noise {spec!r}: unknown noise {kind!r} (use gaussian or poisson)")
