"""Denoising density estimators: ``dde-train``, ``dde-distill``, ``dde-sample`` and ``dde-density``.

One module, four commands (``COMMANDS``), since they share the model look-up and the units.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import console, runner, training
from .options import (CheckpointEvery, Device, Json, LearningRate, MaxSteps, MaxTime, Seed, Threads,
                      TrainingPrecision, ValidateEvery)

# Shipped DDE models: what users type -> the manifest entry.
SHIPPED = {"toy:two-spirals": "dde-two-spirals", "toy:8-gaussians": "dde-8-gaussians",
           "toy:checkerboard": "dde-checkerboard", "toy:rings": "dde-rings", "mnist": "dde-mnist",
           "mnist-unet": "dde-mnist-unet"}
LOG_EVERY = 100  # steps between progress lines: DDE steps are short, the trainer's default 20 floods stderr
# Defaults that differ between vectors and images (images follow the authors' MNIST model).
VECTOR_DEFAULTS = {"sigma": 0.1, "width": 64, "depth": 4, "latent": 2, "gen_width": 64, "gen_depth": 4, "batch": 512}
IMAGE_DEFAULTS = {"sigma": 127.5, "width": 256, "depth": 16, "latent": 16, "gen_width": 512, "gen_depth": 3,
                  "batch": 100}
CONV_DEFAULTS = {"width": 32, "depth": 2}  # --energy conv/unet: channels at full resolution, blocks per resolution

ModelOption = Annotated[str, typer.Option(
    "--model", "-m", help="DDE weights file from 'dncli dde-train', or a shipped model: "
                          "toy:two-spirals, toy:8-gaussians, toy:checkerboard, toy:rings, mnist, mnist-unet.")]


def train_command(
    data: Annotated[str, typer.Argument(
        help="toy:NAME (two-spirals, 8-gaussians, checkerboard, rings), an .npy array of vectors [N, D], "
             "an MNIST idx file (.gz or not) or a directory of images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint / weights file to write.")],
    sigma: Annotated[Optional[float], typer.Option(
        "--sigma", "-s", help="Noise level of the density: data units for vectors [default: 0.1], the 0..255 "
                              "scale for images [default: 127.5, i.e. 0.5].")] = None,
    anneal: Annotated[Optional[float], typer.Option(
        "--anneal", metavar="FROM", help="Anneal the noise level from FROM (units of --sigma) down to --sigma "
                                         "over the first 3/4 of the steps; with --conditional, train for every "
                                         "level in [--sigma, FROM].")] = None,
    conditional: Annotated[bool, typer.Option(
        "--conditional/--no-conditional", help="A noise-conditional DDE (needs --anneal): one network for every "
                                               "level, sampled along its probability flow (or by annealed "
                                               "Langevin dynamics).")] = False,
    generator: Annotated[bool, typer.Option(
        "--generator/--no-generator", help="Also train a generator (and the DDE that tracks its samples).")] = True,
    gen_every: Annotated[int, typer.Option(
        "--gen-every", help="One generator step every K steps; every step trains both DDEs.")] = 10,
    real_until: Annotated[Optional[int], typer.Option(
        "--real-until", help="Freeze the data DDE from this step on (the generator goes on learning).")] = None,
    weighting: Annotated[str, typer.Option(
        "--weighting", help="How the DDE loss weighs the noise levels: noise: by the fraction of the noise "
                            "left after denoising, every level alike; edm: high levels by the error relative "
                            "to the data's spread instead, so the levels that decide a sample's overall shape "
                            "learn as fast as the low ones (Karras et al., 2022).")] = "noise",
    energy: Annotated[str, typer.Option(
        "--energy", help="mlp: a residual MLP on the (whitened) values; conv: a convolutional network over "
                         "three resolutions; unet: f = -|x - D(x)|^2 / 2 sigma^2 with an encoder-decoder "
                         "denoiser D (images only; no Gaussian base).")] = "mlp",
    width: Annotated[Optional[int], typer.Option("--width", help="Hidden units of each DDE [default: 64 vectors, "
                                                                 "256 images; conv, unet: 32 channels].")] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Residual hidden layers of each DDE [default: 4 "
                                                                 "vectors, 16 images; conv, unet: 2 blocks per "
                                                                 "resolution (unet: on each side)].")] = None,
    activation: Annotated[str, typer.Option("--activation", help="softplus, swish or tanh.")] = "softplus",
    base: Annotated[Optional[str], typer.Option(
        "--base", help="gaussian: f is the log of the Gaussian with the data's mean and covariance times a "
                       "learned factor of at most 1, which keeps exp f integrable in many dimensions; none: the "
                       "network alone [default: gaussian for 3 to 4096 dimensions but with --energy unet, "
                       "none otherwise].")] = None,
    latent: Annotated[Optional[int], typer.Option("--latent", help="Generator latent dimension [default: 2 "
                                                                   "vectors, 16 images].")] = None,
    gen_width: Annotated[Optional[int], typer.Option("--gen-width", help="Generator hidden units [default: 64 "
                                                                         "vectors, 512 images].")] = None,
    gen_depth: Annotated[Optional[int], typer.Option(
        "--gen-depth", help="Generator hidden layers: residual for vectors [default: 4], plain for images with a "
                            "sigmoid output [default: 3].")] = None,
    size: Annotated[Optional[int], typer.Option(
        "--size", help="Images: centre-cropped to squares and resized to SIZE pixels [default: the smallest "
                       "side, idx files as they are].")] = None,
    channels: Annotated[Optional[int], typer.Option(
        "--channels", help="Images: 1 (gray) or 3 (colour) [default: colour if any image has colour].")] = None,
    subset: Annotated[Optional[str], typer.Option(
        "--subset", metavar="START:STOP", help="Train on samples START..STOP-1 of a finite data set, e.g. 0:8000.")
    ] = None,
    val: Annotated[Optional[str], typer.Option(
        "--val", help="Validation data, any kind DATA takes [default: fresh draws for a toy, none otherwise].")
    ] = None,
    val_subset: Annotated[Optional[str], typer.Option(
        "--val-subset", metavar="START:STOP", help="Samples of --val to use, e.g. 8000:10000.")] = None,
    validate_every: ValidateEvery = 1000,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Samples per step and process [default: 512 vectors, 100 images].")] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Total steps (sets the schedules).")] = 10000,
    max_time: MaxTime = None,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak learning rate of Adam for the DDEs.")] = 1e-3,
    gen_lr: Annotated[Optional[float], typer.Option(
        "--gen-lr", help="Peak learning rate of the generator [default: --lr].")] = None,
    checkpoint_every: CheckpointEvery = 300.0,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="2-D data: write a PNG of data, density and generator samples side by side.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the checkpoint in --output (its architecture and schedule are kept).")] = False,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32, fp16 (CUDA only), bf16 (CUDA, and CPUs with AVX512-BF16 or AMX) or auto "
                            "(bf16 on CUDA, fp32 on the CPU); the density's quadratic form stays float32.")] = "fp32",
    json_output: Json = False,
) -> int:
    """Train a denoising density estimator (DDE), and a generator, on vectors or images.

    A DDE (Bigdeli et al., 2020) is a scalar network f trained so that x + sigma^2 grad f(x)
    denoises x, which makes f the log-density of the data smoothed by Gaussian noise of level
    --sigma, up to a constant. With --generator (the default) a generator g(z), z ~ N(0, I), learns
    to sample that density by minimising KL(q || p), with a second DDE that tracks its samples.

    DATA is a built-in 2-D toy (toy:two-spirals, toy:8-gaussians, toy:checkerboard, toy:rings;
    drawn afresh for every batch), an .npy array of vectors, an MNIST idx file or a directory
    of images. The output is a checkpoint and a weights file at once: --resume continues it,
    'dncli dde-sample' and 'dncli dde-density' use it. Started by torchrun, training runs
    data-parallel.
    """

    from ..engine import registry, weights
    from ..engine.models.dde import MAX_BASE_DIM
    from ..engine.training import ddp
    from ..engine.training.dde import DDESchedule, DDETraining
    from ..engine.training.dde_data import load_data, parse_subset
    from ..engine.training.trainer import TrainConfig

    if gen_every < 1 or max_steps < 1:
        raise UsageError("--gen-every and --max-steps must be at least 1")
    if gen_lr is not None and not gen_lr > 0:
        raise UsageError("--gen-lr must be positive")
    if real_until is not None and not generator:
        raise UsageError("--real-until freezes the data DDE while the generator learns: it needs a generator")
    if plot is not None:
        _check_plot_path(plot, [data, val, str(output)])
    if channels not in (None, 1, 3):
        raise UsageError("--channels must be 1 or 3")
    if size is not None and size < 4:
        raise UsageError("--size must be at least 4")
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)

    try:
        dataset = load_data(data, size, channels, parse_subset(subset))
        validation = load_data(val, size or (dataset.shape[-1] if dataset.is_image else None),
                               dataset.shape[0] if dataset.is_image else None, parse_subset(val_subset)) \
            if val else (dataset if dataset.toy is not None else None)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    if validation is not None and tuple(validation.shape) != tuple(dataset.shape):
        raise UsageError(f"--val {val}: samples of shape {list(validation.shape)}, the data's are {list(dataset.shape)}")
    defaults = IMAGE_DEFAULTS if dataset.is_image else VECTOR_DEFAULTS
    if base is None:
        base = "gaussian" if 2 < math.prod(dataset.shape) <= MAX_BASE_DIM and energy != "unet" else "none"
    unit = 255.0 if dataset.is_image else 1.0  # images: options on the 0..255 scale, tensors in [0, 1]

    if resume:
        record = weights.load_checkpoint(output)
        if record.get("arch") != "dde":
            raise UsageError(f"{output} is not a DDE checkpoint")
        options = record["options"]
        schedule = DDESchedule(**{**record["meta"]["schedule"], "max_steps": max_steps})
    else:
        level = (sigma if sigma is not None else defaults["sigma"]) / unit
        start = anneal / unit if anneal is not None else None
        try:
            schedule = DDESchedule(sigma=level, max_steps=max_steps, anneal_from=start, conditional=conditional,
                                   generator_every=gen_every, real_until=real_until,
                                   generator_lr_scale=(gen_lr or learning_rate) / learning_rate,
                                   weighting=weighting)
        except ValueError as exc:
            raise UsageError(_option_message(str(exc))) from None
        sizes = CONV_DEFAULTS if energy != "mlp" else defaults
        options = {"shape": list(dataset.shape), "sigma": level, "activation": activation, "energy": energy,
                   "width": width or sizes["width"], "depth": sizes["depth"] if depth is None else depth,
                   "conditional": conditional, "sigma_max": start if conditional else None,
                   "generator": generator, "latent": latent or defaults["latent"],
                   "generator_width": gen_width or defaults["gen_width"],
                   "generator_depth": defaults["gen_depth"] if gen_depth is None else gen_depth,
                   "generator_residual": not dataset.is_image,
                   "generator_output": "sigmoid" if dataset.is_image else "linear", "base": base}
    try:
        model = registry.build("dde", options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if list(model.config.shape) != list(dataset.shape):
        raise UsageError(f"{data}: samples of shape {list(dataset.shape)}, but the checkpoint models "
                         f"{list(model.config.shape)}")
    if model.config.base == "gaussian":
        model.set_base(*dataset.moments(seed))
    else:
        model.set_data_statistics(*dataset.statistics(seed))
    task = DDETraining(model, dataset, schedule, validation, seed)
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size or defaults["batch"],
                         learning_rate=learning_rate, validate_every=validate_every if validation is not None else 0,
                         checkpoint_every=checkpoint_every, seed=seed, precision=precision,
                         log_every=LOG_EVERY)
    meta = {"method": "dde", "training_data": data, "subset": subset, "size": size,
            "schedule": schedule.to_dict(), "sigma_scale": "0..255" if dataset.is_image else "data units",
            "device": str(torch_device), "world_size": ddp.world_size()}

    console.info(f"training a DDE on {data}: {len(dataset) or 'fresh'} samples of shape {list(dataset.shape)}, "
                 f"sigma {model.config.sigma * unit:g}" + (", with a generator" if model.generator else ""))
    result = training.run(model, task, config, output, meta, torch_device, resume)
    if plot is not None and training.is_main_process():
        _write_plot(model.cpu().eval(), dataset, plot, seed)
        console.info(f"plot written to {plot}")
    if json_output:
        training.print_summary(output, result, plot=str(plot) if plot else None)
    return 0


def sample_command(
    model: ModelOption,
    count: Annotated[int, typer.Option("-n", "--count", help="Number of samples.")] = 64,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="A .npy file (the samples as an array), an image file (images: a grid; 2-D "
                               "vectors: a scatter plot), a directory (images: one PNG each) or '-' for stdout "
                               "[default: stdout].")] = None,
    sampler: Annotated[Optional[str], typer.Option(
        "--sampler", help="generator (one pass), flow (the probability flow of a conditional DDE: deterministic, "
                          "tens of passes) or langevin (noisy dynamics on the DDE's gradient) [default: generator "
                          "when the model has one, else flow for a conditional DDE, else langevin].")] = None,
    grid: Annotated[Optional[int], typer.Option(
        "--grid", metavar="COLUMNS", help="Columns of an image grid [default: about square].")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Langevin steps per noise level [default: 200], or probability-flow steps [default: 20].")
    ] = None,
    step_size: Annotated[float, typer.Option(
        "--step-size", help="Langevin step as a fraction of the squared noise level (dimensionless).")] = 0.1,
    denoise: Annotated[bool, typer.Option(
        "--denoise/--no-denoise", help="End Langevin or the flow with one denoising step x + sigma^2 grad f(x).")
    ] = True,
    format: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="png or npy for stdout or a pipe [default: png for images, npy for vectors].")] = None,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    json_output: Json = False,
) -> int:
    """Draw samples from a DDE model: its generator, its probability flow, or Langevin dynamics.

    The generator maps z ~ N(0, I) to a sample in one pass. The flow (conditional DDEs) moves
    a draw of the smoothed data's Gaussian at the highest noise level down to the lowest along
    the DDE's gradient, deterministically. Langevin dynamics follows the gradient with noise
    (annealed through the noise levels of a conditional DDE). Neither needs a generator. Images
    are written as a grid (an image file), one PNG each (a directory) or an array (.npy);
    vectors as .npy, and 2-D vectors also as a scatter plot.
    """
    import time

    import torch

    from ..engine import device as devices
    from ..engine.algorithms import sampling

    if count < 1:
        raise UsageError("-n must be at least 1")
    if format not in (None, "png", "npy"):
        raise UsageError(f"--format {format!r}: use png or npy")
    if grid is not None and grid < 1:
        raise UsageError("--grid must be at least 1")
    if (steps is not None and steps < 1) or not step_size > 0:
        raise UsageError("--steps must be at least 1 and --step-size positive")
    runner.check_json_destination(json_output, output, in_place=False, what="samples")
    torch_device = devices.select_device(device)
    devices.configure_cpu(threads)
    network = _load_model(model).to(torch_device)
    conditional = network.config.conditional
    sampler = sampler or sampling.default_sampler(network)
    if sampler not in sampling.SAMPLERS:
        raise UsageError(f"--sampler {sampler!r}: use generator, flow or langevin")
    if sampler == "generator" and network.generator is None:
        raise UsageError(f"{model} has no generator (trained with --no-generator): use --sampler "
                         + ("flow" if conditional else "langevin"))
    if sampler == "flow" and not conditional:
        raise UsageError(f"{model} is not a conditional DDE, which the flow needs: use --sampler langevin")
    kind = _output_kind(output, format, network)

    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    samples = sampling.draw(network, sampler, count, generator, steps, step_size, denoise, torch_device)
    seconds = time.perf_counter() - started
    _write_samples(samples, kind, output, network, grid)
    console.info(f"{count} samples ({sampler}) in {seconds:.2f}s")
    if json_output:
        console.print_json({"output": output, "count": count, "sampler": sampler, "seconds": seconds,
                            "samples_per_s": count / seconds if seconds > 0 else None})
    return 0


def distill_command(
    model: ModelOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write: the DDE with its new "
                                                                "generator.")],
    pairs: Annotated[int, typer.Option(
        "--pairs", help="Latents carried along the probability flow to their samples, the training set "
                        "(5 % held aside for validation).")] = 50000,
    flow_steps: Annotated[int, typer.Option("--flow-steps", help="Probability-flow steps per sample.")] = 20,
    gen_width: Annotated[int, typer.Option("--gen-width", help="Generator hidden units.")] = 1024,
    gen_depth: Annotated[int, typer.Option("--gen-depth", help="Generator hidden layers after the first.")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs per step and process.")] = 256,
    max_steps: MaxSteps = 10000,
    max_time: MaxTime = None,
    learning_rate: LearningRate = 1e-3,
    validate_every: ValidateEvery = 1000,
    checkpoint_every: CheckpointEvery = 300.0,
    pairs_cache: Annotated[Optional[Path], typer.Option(
        "--pairs-cache", help="Keep the pairs in this .npz file, saved every minute as they are drawn: a later "
                              "run with the same model, --flow-steps and --seed reads them instead of drawing "
                              "them again (an interrupted run, --resume, another generator size) and draws only "
                              "the pairs a larger --pairs adds; a file of other pairs is overwritten. Under "
                              "torchrun each process keeps its own, NAME.rankN.npz.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the checkpoint in --output (its pairs are drawn again, identically, unless "
                         "--pairs-cache has them).")] = False,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    precision: TrainingPrecision = "fp32",
    json_output: Json = False,
) -> int:
    """Distil a one-pass generator from a conditional DDE's probability flow.

    The probability flow carries a latent z ~ N(0, I), one number per data dimension, from the
    model's highest noise level down to its lowest, deterministically, to a sample
    ('dncli dde-sample --sampler flow'). This command draws --pairs latents, computes their
    samples, and trains a plain generator network to map each latent to its sample in one pass.
    The DDE itself is copied unchanged. The output is a DDE model whose generator 'dncli dde-sample'
    uses by default. Started by torchrun, every process draws its own share of the pairs.
    """
    from ..engine import registry
    from ..engine.training import ddp
    from ..engine.training.dde_distill import FlowDistillation, flow_pairs
    from ..engine.training.trainer import TrainConfig

    if min(pairs, flow_steps, gen_width, gen_depth + 1, batch_size, max_steps) < 1:
        raise UsageError("--pairs, --flow-steps, --gen-width, --batch-size and --max-steps must be at least 1, "
                         "--gen-depth at least 0")
    if pairs_cache is not None:
        # The cache is replaced when it holds other pairs: it must never name a model.
        if pairs_cache.suffix != ".npz":
            raise UsageError(f"--pairs-cache {pairs_cache}: name a .npz file")
        if pairs_cache.resolve() in (output.resolve(), Path(model).resolve()):
            raise UsageError("--pairs-cache must not be the --model or --output file")
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)
    if resume:
        network = _load_model(str(output))
        source = network.meta.get("source", str(output))
    else:
        teacher, record = _load_model_and_record(model)
        if not teacher.config.conditional:
            raise UsageError(f"{model}: the probability flow needs a conditional DDE (dde-train --anneal "
                             "--conditional)")
        c = teacher.config
        options = {**c.to_dict(), "generator": True, "generator_training": "distilled", "latent": c.dim,
                   "generator_width": gen_width, "generator_depth": gen_depth, "generator_residual": False,
                   "generator_output": "sigmoid" if teacher.is_image else "linear"}
        network = registry.build("dde", options)
        network.load_state_dict(teacher.density_state(), strict=False)
        network.meta = {"dde_training": _dde_training_record(teacher, record)}
        source = model
    network = network.to(torch_device)
    per_process = -(-pairs // ddp.world_size())
    console.info(f"carrying {per_process} latents along the probability flow of {source} ({flow_steps} steps)")
    if pairs_cache is not None and ddp.world_size() > 1:
        pairs_cache = pairs_cache.with_name(f"{pairs_cache.stem}.rank{ddp.rank()}{pairs_cache.suffix}")

    def report(done: int, count: int) -> None:
        console.info(f"{done}/{count} pairs in {pairs_cache}")

    drawn = flow_pairs(network.eval(), per_process, flow_steps, seed + ddp.rank(), torch_device,
                       cache=pairs_cache, report=report)
    task = FlowDistillation(network, drawn)
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size, learning_rate=learning_rate,
                         validate_every=validate_every, checkpoint_every=checkpoint_every, seed=seed,
                         precision=precision, log_every=LOG_EVERY)
    meta = {"method": "dde-distill", "source": source, "dde_training": network.meta.get("dde_training", {}),
            "pairs": pairs, "flow_steps": flow_steps, "device": str(torch_device), "world_size": ddp.world_size()}
    result = training.run(network, task, config, output, meta, torch_device, resume)
    if json_output:
        training.print_summary(output, result)
    return 0


def density_command(
    input: Annotated[str, typer.Argument(
        help="Samples to score: an .npy array of vectors [N, D] or of images [N, C, H, W] in [0, 1] (as "
             "dde-sample writes them), an image, a directory of images, an MNIST idx file, toy:NAME (seeded "
             "draws) or '-' (an .npy array or image on stdin).")],
    model: ModelOption,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", help="Score only the first N samples (a toy: draw N) [default: all; a toy: 1000].")] = None,
    samples: Annotated[Optional[int], typer.Option(
        "--samples", help="Importance samples for log Z (the normaliser); with --ais, chains [default: 65536; "
                          "with --ais, 512].")] = None,
    ais: Annotated[int, typer.Option(
        "--ais", metavar="LEVELS", help="Estimate log Z by annealed importance sampling through LEVELS levels "
                                        "(e.g. 1000; costs LEVELS times more, but stays accurate in many "
                                        "dimensions); 0: plain importance sampling.")] = 0,
    repeats: Annotated[int, typer.Option(
        "--repeats", help="Independent estimates of log Z; their spread is reported.")] = 1,
    normalize: Annotated[bool, typer.Option(
        "--normalize/--no-normalize", help="Subtract log Z; without it, print the unnormalised f(x).")] = True,
    flow_steps: Annotated[Optional[int], typer.Option(
        "--flow-steps", metavar="N", help="A conditional model: carry each sample along the probability flow from "
                                          "the lowest noise level to the highest in N steps, and normalise there "
                                          "(costs 2N(D+1) passes per sample); 0: normalise f at the lowest level "
                                          "[default: 100 up to 16 dimensions, else 0].", show_default=False)
    ] = None,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    json_output: Json = False,
) -> int:
    """Print the log-density (nats) of each sample under a DDE model, one per line.

    The density is the model's: the data density smoothed by its noise level sigma. It is
    normalised by importance sampling of log Z = log integral exp f from a Gaussian with the
    moments of the smoothed training data (its Gaussian base, for a model that has one). Plain
    importance sampling is reliable in low dimensions only (a warning says so above 16 without a
    base); --ais (annealed importance sampling) goes further, and --repeats shows the spread.
    A conditional model's density at its lowest level comes from its highest level through the
    probability flow (--flow-steps): at a low level, training never sees the space between
    separated modes, so f alone does not know their relative mass.
    """
    import torch

    from ..engine import device as devices
    from ..engine.algorithms import sampling
    from ..engine.training.dde import plain_likelihood_is_reliable
    from ..engine.training.dde_data import samples_for

    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    samples = samples if samples is not None else (512 if ais else 65536)
    if samples < 1 or repeats < 1 or ais < 0 or (flow_steps is not None and flow_steps < 0):
        raise UsageError("--samples and --repeats must be at least 1, --ais and --flow-steps at least 0")
    torch_device = devices.select_device(device)
    devices.configure_cpu(threads)
    network = _load_model(model).to(torch_device)
    shape = tuple(network.config.shape)
    if input != "-" and not input.startswith("toy:") and not Path(input).exists():
        raise UsageError(f"{input}: no such file or directory")
    try:
        source = _read_stdin() if input == "-" else input
        values = samples_for(source, shape, limit or (1000 if input.startswith("toy:") else None), seed)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None

    if flow_steps is None:
        flow_steps = sampling.affordable_flow_steps(network)
    flowing = network.config.conditional and flow_steps > 0
    log_density, normaliser, proposal = sampling.normalisable_density(network, flow_steps=flow_steps)
    energies = torch.cat([log_density(chunk.to(torch_device)).double().cpu() for chunk in values.flatten(1).split(4096)])
    log_z, spread = 0.0, 0.0
    if normalize:
        dim = network.config.dim
        if not (ais or plain_likelihood_is_reliable(network)):
            console.warn(f"log Z by importance sampling in {dim} dimensions is unreliable (biased low, so the "
                         "log-densities come out too high); try --ais 1000, or compare --no-normalize values")
        level = network.config.sigma_max if flowing else None

        def estimate(generator: torch.Generator) -> float:
            if ais:
                energy = lambda x: network.energy(x, level)  # noqa: E731  (differentiable, as AIS needs)
                return sampling.annealed_log_normalizer(energy, proposal, samples, ais, generator, torch_device)
            return sampling.log_normalizer(normaliser, proposal, samples, generator=generator, device=torch_device)

        estimates = [estimate(torch.Generator().manual_seed(seed + r)) for r in range(repeats)]
        log_z = float(torch.tensor(estimates).mean())
        spread = float(torch.tensor(estimates).std()) if repeats > 1 else 0.0
        console.info(f"log Z = {log_z:.4f}" + (f" ± {spread:.4f} over {repeats} estimates" if repeats > 1 else ""))
    result = (energies - log_z).tolist()
    if json_output:
        console.print_json({"model": model, "sigma": network.config.sigma, "dim": network.config.dim,
                            "flow_steps": flow_steps if flowing else None,
                            "normalized": normalize, "log_z": log_z if normalize else None,
                            "log_z_std": spread if normalize else None, "count": len(result),
                            "mean": sum(result) / len(result), "log_density": result})
    else:
        sys.stdout.write("".join(f"{value:.6f}\n" for value in result))
    return 0


COMMANDS = (("dde-train", train_command), ("dde-distill", distill_command), ("dde-sample", sample_command),
            ("dde-density", density_command))


# --- helpers ----------------------------------------------------------------------------------

def _option_message(message: str) -> str:
    """Engine wording -> option names."""
    return (message.replace("the annealing start level must exceed sigma", "--anneal must exceed --sigma")
            .replace("a conditional model needs a range of levels: give anneal_from",
                     "--conditional needs --anneal FROM (the highest noise level)")
            .replace("sigma must be positive", "--sigma must be positive")
            .replace("the generator learning rate must be positive", "--gen-lr must be positive"))


def _check_plot_path(plot: Path, inputs: list[str | None]) -> None:
    """--plot must name an image file that is none of the command's inputs and outputs: it is
    written after training, and must neither fail then nor overwrite them."""
    from ..imgio.codec import ImageError, format_from_path

    try:
        kind = format_from_path(plot)
    except ImageError as exc:
        raise UsageError(f"--plot: {exc}") from None
    if kind == "npy":
        raise UsageError(f"--plot {plot}: name an image file (.png)")
    if any(spec and Path(spec).resolve() == plot.resolve() for spec in inputs):
        raise UsageError(f"--plot {plot}: would overwrite an input or the --output file")


def _load_model(spec: str):
    """A DDE model in eval mode from a weights file or a shipped name; usage errors otherwise."""
    return _load_model_and_record(spec)[0]


def _load_model_and_record(spec: str):
    """``(model, record)``: :func:`_load_model`, with the checkpoint's record for a file (``None``
    for a shipped model)."""
    from ..engine import weights

    path = Path(spec)
    if path.is_file():
        record = weights.load_checkpoint(path)
        if record.get("arch") != "dde":
            raise UsageError(f"{spec} holds a {record.get('arch')} model, not a DDE model (train one with "
                             "'dncli dde-train')")
        return weights.model_from_record(record, spec), record
    name = SHIPPED.get(spec, spec)
    entries = weights.manifest()
    if name not in entries:
        shipped = sorted(alias for alias, entry in SHIPPED.items() if entry in entries)
        raise UsageError(f"--model {spec}: no such file, nor a shipped DDE model "
                         f"(shipped: {', '.join(shipped) or 'none'})")
    if entries[name].get("arch") != "dde":
        raise UsageError(f"--model {spec}: the shipped model {name} is a {entries[name].get('arch')} model, "
                         "not a DDE model")
    return weights.load_shipped(name), None


def _dde_training_record(network, record: dict | None) -> dict:
    """How a DDE model's density was trained: a shipped model's manifest record, or its
    checkpoint's ``record``'s meta with the steps and wall time; for a distilled model, the record
    of its DDE that it carries inside its own."""
    from ..engine import weights

    if record is None:
        training = weights.training_meta(network.meta)
    else:
        training = {**record.get("meta", {}), "steps": record.get("step"), "wall_time_s": record.get("elapsed")}
    return training.get("dde_training", training)


def _output_kind(output: str | None, format: str | None, model) -> str:
    """``npy``, ``grid`` (images), ``folder`` (images) or ``scatter`` (2-D vectors); refuses what the
    samples cannot become, before any work."""
    from ..imgio.atomic import is_stream
    from ..imgio.codec import ImageError, format_from_path

    if output in (None, "-") or is_stream(output):
        kind = format or ("png" if model.is_image else "npy")
        if output in (None, "-") and sys.stdout.isatty():
            raise UsageError("refusing to write binary data to a terminal; redirect stdout or use -o FILE")
    elif output.endswith("/") or Path(output).is_dir():
        if not model.is_image:
            raise UsageError(f"{output}: a directory takes image samples; write vectors to a .npy file")
        return "folder"
    else:  # a file: its extension decides (--format is for stdout)
        try:
            kind = format_from_path(output)
        except ImageError as exc:
            raise UsageError(f"{exc}; use .npy or an image type") from None
    if kind == "npy":
        return "npy"
    if model.is_image:
        return "grid"
    if model.config.dim != 2:
        raise UsageError(f"{model.config.dim}-D samples have no picture: write them to a .npy file")
    return "scatter"


def _write_samples(samples, kind: str, output: str | None, model, columns: int | None) -> None:
    import io

    import numpy as np

    from ..engine import plots
    from ..imgio.atomic import atomic_write_bytes, write_all
    from ..imgio.codec import Image, write_image

    dest = output or "-"
    if kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, samples.numpy().astype(np.float32))
        if dest == "-":
            write_all(sys.stdout.buffer, buffer.getvalue())
            sys.stdout.buffer.flush()
        else:
            atomic_write_bytes(dest, buffer.getvalue())
        return
    if kind == "folder":
        folder = Path(dest)
        folder.mkdir(parents=True, exist_ok=True)
        for index, sample in enumerate(samples):
            write_image(Image(sample.clamp(0, 1).permute(1, 2, 0).numpy()), folder / f"sample_{index:05d}.png")
        return
    if kind == "grid":
        pixels = plots.image_grid(samples, columns)
    else:
        extent = float(3 * (model.data_var.max().sqrt() + model.data_mean.abs().max()))
        pixels = plots.histogram_panel(samples.numpy(), extent, 256)
    for warning in write_image(Image(pixels), dest, "png" if dest == "-" else None):
        console.warn(warning)


def _write_plot(model, dataset, path: Path, seed: int) -> None:
    """Data | DDE density | generator samples (2-D data only), as one PNG."""
    import torch

    from ..engine import plots
    from ..engine.algorithms import sampling
    from ..imgio.codec import Image, write_image

    if tuple(dataset.shape) != (2,):
        console.warn(f"--plot needs 2-D data, not samples of shape {list(dataset.shape)}: no plot written")
        return
    points = dataset.all(20000, seed)
    extent = dataset.toy.extent if dataset.toy else float(points.abs().max()) * 1.1
    log_density = sampling.normalisable_density(model, flow_steps=sampling.COARSE_FLOW_STEPS)[0]
    panels = [plots.histogram_panel(points.numpy(), extent), plots.density_panel(log_density, extent)]
    if model.generator is not None:
        samples = sampling.generate(model, 20000, torch.Generator().manual_seed(seed))
        panels.append(plots.histogram_panel(samples.numpy(), extent))
    write_image(Image(plots.side_by_side(panels)), path)


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("stdin: refusing to read from a terminal; pipe an .npy array or image in, or give a file")
    return sys.stdin.buffer.read()
