"""Train a blind-spot denoiser on noisy images alone (self-supervised; no clean images).

The dilated blind-spot network (Honzátko et al., 2020) predicts each pixel from its
neighbours as a Gaussian; training maximises the likelihood of the noisy pixels (Laine et al.,
2019), and denoising combines that prediction with the pixel's own value (posterior mean).
NOISY is one large image or any number of images and directories: random patches are drawn
from them. Keep their noise as it was made: float TIFF or .npy hold it unclipped, and gray
and colour models need gray and colour inputs (converting noisy images changes the noise).

The noise level is known (--sigma, 0..255 scale) or learned: --sigma-mode global learns one
level for the data set, per-image a small network that estimates it for each image, so that
'dncli denoise -s auto' uses the model's own estimate. --val (clean images; with --val-noisy
their noisy versions, else seeded Gaussian noise of --val-sigma) only reports PSNR. The output
is a checkpoint and a weights file at once: --resume continues it, 'dncli denoise --weights'
uses it. Started by torchrun, training runs data-parallel. --masked trains the same network
without the blind spot by Noise2Void-style masking instead, as a baseline (no noise level
needed; it denoises with its plain mean).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import console, training
from .options import (CheckpointEvery, Device, Json, LearningRate, MaxSteps, MaxTime, Seed, Threads,
    ValidateEvery)

NAME = "blindspot-train"
NO_ARGS_IS_HELP = True
SIGMA_MODES = ("known", "global", "per-image")


def command(
    noisy: Annotated[list[Path], typer.Argument(help="Noisy training images: files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint / weights file to write.")],
    sigma: Annotated[Optional[float], typer.Option(
        "--sigma", "-s", help="Known noise level of the images (0..255 scale); needed by --sigma-mode known.")] = None,
    sigma_mode: Annotated[Optional[str], typer.Option(
        "--sigma-mode", help="known (--sigma), global (one learned level) or per-image (learned per image) "
                             "[default: known, or that of --init].")] = None,
    arch: Annotated[str, typer.Option(
        "--arch", help="figure (the paper's figure: 64 channels per branch) or code (the released code: 18).")] = "figure",
    channels: Annotated[int, typer.Option("--channels", help="1 trains a gray model, 3 a colour model.")] = 3,
    masked: Annotated[bool, typer.Option(
        "--masked", help="Noise2Void-style baseline: no blind spot, random pixels masked instead.")] = False,
    depth: Annotated[Optional[int], typer.Option(
        "--depth", help="Trunk convolutions; the receptive radius is 2*DEPTH+1 [default: 10].")] = None,
    widths: Annotated[Optional[str], typer.Option(
        "--widths", help="TRUNK,BRANCH channels [default: of --arch].")] = None,
    head: Annotated[Optional[str], typer.Option(
        "--head", help="Comma-separated hidden widths of the 1x1 head [default: of --arch].")] = None,
    patch: Annotated[int, typer.Option("--patch", help="Training patch side in pixels.")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Patches per step and process.")] = 16,
    max_steps: MaxSteps = 100000,
    max_time: MaxTime = None,
    learning_rate: LearningRate = 3e-4,
    val: Annotated[Optional[Path], typer.Option(
        "--val", help="Clean validation image or directory (PSNR is reported, never trained on).")] = None,
    val_noisy: Annotated[Optional[Path], typer.Option(
        "--val-noisy", help="Noisy versions of --val, paired in sorted order [default: seeded noise].")] = None,
    val_sigma: Annotated[Optional[float], typer.Option(
        "--val-sigma", help="Noise level of --val [default: --sigma, else 25]; a learned-level model "
                            "validates with its own estimate.")] = None,
    validate_every: ValidateEvery = 1000,
    checkpoint_every: CheckpointEvery = 300.0,
    init: Annotated[Optional[str], typer.Option(
        "--init", help="Fine-tune these blind-spot weights (a shipped name or a file; their architecture "
                       "is kept, and their noise mode unless --sigma-mode asks for another: then a new learned "
                       "level starts at the images' estimated one) instead of random ones; --resume ignores it.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the checkpoint in --output (its architecture and noise mode are kept).")] = False,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32, fp16 (CUDA only), bf16 (CUDA, and CPUs with AVX512-BF16 or AMX) or auto "
                            "(bf16 on CUDA, fp32 on the CPU); fp32 convolutions use TF32 on CUDA anyway.")] = "fp32",
    json_output: Json = False,
) -> int:

    from ..engine import registry, weights
    from ..engine.training import ddp
    from ..engine.training.blindspot import (BlindSpotTraining, MaskedTraining, estimated_noise_level,
        load_noisy_images, load_validation)
    from ..engine.training.data import PatchSampler
    from ..engine.training.trainer import TrainConfig

    if patch < 16:
        raise UsageError("--patch must be at least 16")
    if val_noisy is not None and val is None:
        raise UsageError("--val-noisy needs --val (the clean references)")
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)

    record, initial_weights = None, None
    if resume:  # wins over --init, as in 'dncli train'
        record = weights.load_checkpoint(output)
        if record.get("arch") != "blindspot":
            raise UsageError(f"{output} is not a blind-spot checkpoint")
        meta = record.get("meta", {})
        initial_weights, trained_sigma = meta.get("initial_weights"), meta.get("sigma")
        if sigma is not None and trained_sigma is not None and sigma != trained_sigma:
            raise UsageError(f"--sigma {sigma:g} differs from the checkpoint's {trained_sigma:g}")
        sigma = trained_sigma if sigma is None else sigma
        model = weights.model_from_record(record, str(output))
    elif init:
        record, model = training.starting_model(init, "--init", "blindspot",
                                                "not a blind-spot model (such as blindspot-color-s25)")
        initial_weights = init
    converted_from = None
    if record is None:
        mode = sigma_mode or "known"
        model = registry.build("blindspot", _architecture(arch, channels, depth, widths, head, mode, masked))
    else:
        mode = record["options"]["noise"]
        arch = weights.training_meta(record.get("meta", {})).get("arch", arch)
        masked = not record["options"].get("blind", True)
        if sigma_mode is not None and sigma_mode != mode:
            if resume:
                raise UsageError(f"--sigma-mode {sigma_mode} differs from the checkpoint's {mode}")
            if masked:
                raise UsageError(f"--init {init} has no blind spot, so no noise mode: drop --sigma-mode")
            converted_from, mode = mode, sigma_mode
    if not masked:
        _check_sigma(mode, sigma, None if resume or converted_from else init)
    elif sigma is not None or mode != "known":
        raise UsageError("--masked learns no noise level: drop --sigma and --sigma-mode")
    channels = model.config.channels

    console.info(f"loading noisy training images from {', '.join(map(str, noisy))}")
    try:
        images = load_noisy_images(noisy, channels)
        sampler = PatchSampler(images, patch)
        level = val_sigma if val_sigma is not None else (sigma if sigma is not None else 25.0)
        validation = load_validation([val], [val_noisy] if val_noisy else None, channels, level) if val else []
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    if converted_from is not None:
        model = _converted(model, mode, converted_from, estimated_noise_level(images) if mode != "known" else None)
    # A known-level model is scored at the validation level; a learned-level model at its own
    # estimate, unless --val-sigma asks for a given level.
    validation_sigma = level if (mode == "known" or val_sigma is not None) else None
    if masked:
        task = MaskedTraining(sampler, validation)
    else:
        task = BlindSpotTraining(sampler, sigma, validation, validation_sigma)
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size, learning_rate=learning_rate,
                         validate_every=validate_every if val else 0, checkpoint_every=checkpoint_every,
                         seed=seed, precision=precision)
    meta = {"method": "blindspot", "training_data": [str(d) for d in noisy], "sigma": sigma,
            "sigma_mode": "masked" if masked else mode, "arch": arch, "patch": patch,
            "initial_weights": initial_weights,
            "device": str(torch_device), "world_size": ddp.world_size()}

    result = training.run(model, task, config, output, meta, torch_device, resume)
    if json_output:
        training.print_summary(output, result)
    return 0


def _converted(model, mode: str, old_mode: str, start_level: float | None):
    """``model`` with noise mode ``mode``; a learned level starts at ``start_level`` (0..255)."""
    from ..engine.models.blindspot import with_noise_mode

    start = "" if start_level is None else f"; its level starts at the images' estimated {start_level:.1f}"
    console.info(f"noise mode {old_mode} -> {mode}: the prior is kept, the noise-level part is new{start}")
    return with_noise_mode(model, mode, None if start_level is None else start_level / 255)


def _check_sigma(mode: str, sigma: float | None, init: str | None = None) -> None:
    if mode not in SIGMA_MODES:
        raise UsageError(f"--sigma-mode {mode!r}: use {', '.join(SIGMA_MODES)}")
    if mode == "known" and sigma is None and init:
        raise UsageError(f"--init {init} is a model for a known noise level: give your images' level with --sigma")
    if mode == "known" and sigma is None:
        raise UsageError("--sigma-mode known needs --sigma (the noise level of the images, 0..255 scale); "
                         "or let the model learn it with --sigma-mode global or per-image")
    if mode != "known" and sigma is not None:
        raise UsageError(f"--sigma is for --sigma-mode known; --sigma-mode {mode} learns the level")
    if sigma is not None and not 0 < sigma <= 255:
        raise UsageError(f"--sigma {sigma:g}: use a level in (0, 255]")


def _architecture(arch: str, channels: int, depth: int | None, widths: str | None, head: str | None,
                  mode: str, masked: bool) -> dict:
    """The ``BlindSpotConfig`` options of the command line, validated."""
    from ..engine.models.blindspot import PRESETS, BlindSpotConfig

    if arch not in PRESETS:
        raise UsageError(f"--arch {arch!r}: use {' or '.join(PRESETS)}")
    if channels not in (1, 3):
        raise UsageError("--channels must be 1 or 3")
    overrides: dict = {"channels": channels, "noise": mode, "blind": not masked}
    if depth is not None:
        overrides["trunk_depth"] = depth
    if widths is not None:
        trunk, branch = training.positive_integers(widths, "--widths", count=2)
        overrides.update(trunk_width=trunk, branch_width=branch)
    if head is not None:
        overrides["head_widths"] = tuple(training.positive_integers(head, "--head"))
    try:
        return BlindSpotConfig.preset(arch, **overrides).to_dict()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
