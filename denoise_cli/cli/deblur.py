"""Remove a known blur, and Gaussian noise, with a trained denoiser as the image prior.

--kernel is the blur: gaussian:SIGMA, motion:LENGTH,ANGLE, box:N (pixels, degrees) or a kernel
file. --prior mmse (the default) runs half-quadratic splitting with the shipped noise-level
conditional denoiser over a decreasing noise schedule (DPIR, Zhang et al. 2021); --prior map
runs ADMM with a MAP denoiser trained by 'dncli map-train' (Bigdeli et al., VISAPP 2020), whose
training noise level fixes the ADMM penalty. SIGMA is the noise level of the blurred image on
the 0..255 scale, or 'auto' to estimate it per image. --boundary valid treats the image as the
inner part of a blurred larger scene, as a photograph is, so the borders do not ring; circular
assumes the blur wrapped around the edges (synthetic tests such as BENCHMARK.md P2). Alpha is
kept; float inputs give float outputs, unclipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import console, runner
from .options import (Depth, Device, Format, Glob, InPlace, Json, Output, Precision, Recursive, Shard,
                      SkipExisting, Threads, parse_sigma)

NAME = "deblur"
NO_ARGS_IS_HELP = True
PRIORS = ("mmse", "map")
BOUNDARIES = ("valid", "circular")
SHIPPED_MMSE = {1: "unet3-gray", 3: "unet3-color"}
SHIPPED_MAP = {1: "map-gray", 3: "map-color"}
DEFAULT_ITERATIONS = {"mmse": 8, "map": 75}  # HQS: the schedule's length; ADMM: a cap


def command(
    input: Annotated[str, typer.Argument(help="Image, directory or '-' for stdin.")],
    kernel: Annotated[str, typer.Option(
        "--kernel", "-k", help="Blur kernel: gaussian:SIGMA, motion:LENGTH,ANGLE, box:N or a .npy/.png/.tif/.txt "
                               "file (normalised to sum 1).")],
    sigma: Annotated[str, typer.Option(
        "--sigma", "-s", help="Noise level of the blurred image on the 0..255 scale, or 'auto' to estimate it "
                              "per image.")] = "auto",
    output: Output = None,
    prior: Annotated[Optional[str], typer.Option(
        "--prior", help="mmse (HQS with a noise-conditional denoiser) or map (ADMM with a MAP denoiser) "
                        "[default: map for weights from 'dncli map-train', else mmse].")] = None,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", help="Weights file from 'dncli train' (mmse) or 'dncli map-train' (map) "
                          "[default: the shipped model].")] = None,
    iterations: Annotated[Optional[int], typer.Option(
        "--iters", help="Iterations: the schedule length for mmse, the most for map (which stops once the "
                        "estimate changes by less than 1e-4) [default: 8 mmse, 75 map].")] = None,
    boundary: Annotated[str, typer.Option(
        "--boundary", help="valid (the image is the inner part of a larger blurred scene) or circular "
                           "(the blur wrapped around).")] = "valid",
    save_iterates: Annotated[Optional[Path], typer.Option(
        "--save-iterates", help="Write every iteration's estimate to this directory as STEM_NNN.png (8-bit).")] = None,
    device: Device = None,
    threads: Threads = None,
    precision: Precision = "fp32",
    format: Format = None,
    depth: Depth = None,
    recursive: Recursive = False,
    glob: Glob = None,
    skip_existing: SkipExisting = False,
    shard: Shard = None,
    in_place: InPlace = False,
    json_output: Json = False,
) -> int:
    fixed_sigma = parse_sigma(sigma)
    if prior is not None and prior not in PRIORS:
        raise UsageError(f"--prior {prior!r}: use mmse or map")
    if boundary not in BOUNDARIES:
        raise UsageError(f"--boundary {boundary!r}: use valid or circular")
    if iterations is not None and iterations < 1:
        raise UsageError("--iters must be at least 1")
    runner.check_json_destination(json_output, output, in_place)
    if save_iterates is not None and save_iterates.exists() and not save_iterates.is_dir():
        raise UsageError(f"--save-iterates {save_iterates}: not a directory")

    import time

    import numpy as np
    import torch

    from ..engine import weights as weight_files
    from ..engine.algorithms import pnp
    from ..engine.inference import Runner
    from ..engine.noise_estimate import estimate_sigma
    from ..engine.physics.blur import KernelError, parse_kernel

    try:
        kernel_array, warnings = parse_kernel(kernel)
    except KernelError as exc:
        raise UsageError(f"--kernel: {exc}") from None
    for warning in warnings:
        console.warn(warning)

    torch_device = runner.compute_device(device, threads, precision)

    user_model = weight_files.load_model(weights) if weights else None
    if user_model is not None:
        reason = weight_files.why_not_a_denoiser(user_model)
        if reason:
            raise UsageError(f"{weights} is {reason}")
        kind = "map" if user_model.arch_name == "map-denoiser" else "mmse"
        if prior is not None and prior != kind:
            other = "a MAP denoiser from 'dncli map-train'" if kind == "map" else "a noise-conditional denoiser"
            raise UsageError(f"--prior {prior}: {weights} holds {other}; use --prior {kind}")
        prior = kind
    prior = prior or "mmse"
    shipped_map: list[str] = []
    if prior == "map" and user_model is None:
        shipped = weight_files.manifest()
        shipped_map = [name for name in SHIPPED_MAP.values() if name in shipped]
        if not shipped_map:
            raise UsageError("--prior map needs MAP denoiser weights and none are shipped yet: train them with "
                             "'dncli map-train CLEAN_DIR -o map.pt' and pass --weights map.pt")
    steps = iterations or DEFAULT_ITERATIONS[prior]
    if save_iterates is not None:
        save_iterates.mkdir(parents=True, exist_ok=True)

    denoisers: dict[int, Runner] = {}

    def denoiser_for(channels: int) -> Runner:
        """The prior for gray (1) or colour (3) images, loaded once."""
        if channels not in denoisers:
            if user_model is not None:
                network = user_model
            elif prior == "map":
                network = weight_files.load_shipped(_shipped_map(channels, shipped_map))
            else:
                network = weight_files.load_shipped(SHIPPED_MMSE[channels])
            denoisers[channels] = Runner(network, torch_device, precision)
        return denoisers[channels]

    records = []

    def process(images, jobs):
        results = []
        for image, job in zip(images, jobs):
            color = image.color
            level = fixed_sigma if fixed_sigma is not None else estimate_sigma(color)
            if fixed_sigma is None:
                console.info(f"{job.name}: estimated sigma {level:.2f}")
            denoiser = denoiser_for(color.shape[-1])
            y = torch.from_numpy(np.ascontiguousarray(color)).permute(2, 0, 1)[None].to(torch_device)
            callback = _iterate_writer(save_iterates, job, image) if save_iterates else None
            start = time.perf_counter()
            if prior == "map":
                rho = denoiser.model.rho
                result = pnp.admm(y, kernel_array, denoiser.apply, level / 255.0, rho, max_iterations=steps,
                                  boundary=boundary, callback=callback)
            else:
                result = pnp.hqs(y, kernel_array, denoiser.apply, level / 255.0, iterations=steps,
                                 boundary=boundary, callback=callback)
            record = {"input": job.name, "output": job.dest, "sigma": round(float(level), 3), "prior": prior,
                      "iterations": result.iterations, "seconds": round(time.perf_counter() - start, 3)}
            if result.converged is not None:
                record["converged"] = result.converged
            records.append(record)
            results.append(image.with_color(result.image[0].permute(1, 2, 0).cpu().numpy()))
        return results

    code = runner.run_images(input, output, process, format=format, depth=depth, recursive=recursive, glob=glob,
                             skip_existing=skip_existing, shard=shard, in_place=in_place, description="deblurring")
    if json_output:
        console.print_json({"kernel": kernel, "boundary": boundary, "images": records})
    return code


def _iterate_writer(directory: Path, job, image):
    """A solver callback writing iteration k as ``directory/STEM_kkk.png``, 8-bit, alpha kept."""
    from ..imgio.codec import write_image

    stem = "stdin" if job.source == "-" else Path(job.source).stem

    def write(iteration: int, estimate) -> None:
        pixels = estimate[0].permute(1, 2, 0).float().cpu().numpy()
        write_image(image.with_color(pixels), directory / f"{stem}_{iteration:03d}.png", "png", "8")

    return write


def _shipped_map(channels: int, shipped: list[str]) -> str:
    """The shipped MAP pair for the image's channels, else the other one, which the engine
    applies plane by plane (gray on each colour channel, colour on a gray image seen as RGB)."""
    if SHIPPED_MAP[channels] in shipped:
        return SHIPPED_MAP[channels]
    other = SHIPPED_MAP[4 - channels]
    console.warn(f"no {SHIPPED_MAP[channels]} model ships; using {other} "
                 f"{'on each colour channel' if channels == 3 else 'on the gray image seen as RGB'}")
    return other
