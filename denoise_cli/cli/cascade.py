"""Train a denoiser for the classifier or segmenter that comes after it (Liu et al., IJCAI 2018).

The frozen task network (--task-model) is put behind the denoiser (--denoiser, the starting
weights) and only the denoiser is updated, on the per-pixel mean squared error plus --lambda
times the task's cross-entropy (per image, or per labelled pixel). Gaussian noise of a level
drawn from --sigma is added on the fly to the clean labelled images of DATA (the layouts of
'dncli task-train'). --task-model is a shipped name, a dncli weights file, a torch.export
program (named .pt2) or TorchScript file (loading a program runs its code: use only ones you
trust), or a plain state dict with --task-arch (and --task-options), read without unpickling;
it takes RGB in [0, 1] and returns logits (or torchvision's {"out": logits}).
The output is an ordinary denoiser weights file (and checkpoint: --resume continues it) for
'dncli denoise --weights'. --lambda 0 trains the MSE-only control on the same data.
With --photos, the squared error is taken on noisy crops of those clean photos instead of the
labelled images, which then serve the task term only: use it when the labelled images are
small or compressed (such as 32x32 CIFAR JPEGs), whose artefacts a denoiser would learn.
With --no-labels, DATA is any folders of clean images (no labels, no layout), and the task term's
target is the task network's own prediction on the clean crop: the denoiser learns to give the
network what the clean image would.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import training
from .options import (CheckpointEvery, Crop, Device, Json, LabelledTask, LearningRate, MaxSteps, MaxTime,
    Pad, TrainingPrecision, Resume, Seed, Threads, ValidateEvery)

NAME = "cascade-train"
NO_ARGS_IS_HELP = True


def command(
    data: Annotated[list[Path], typer.Argument(
        help="Directory of clean labelled training images (with --no-labels: directories of any clean images).")],
    task: LabelledTask,
    task_model: Annotated[str, typer.Option("--task-model", help="The frozen classifier or segmenter.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Denoiser checkpoint / weights file to write.")],
    denoiser: Annotated[str, typer.Option(
        "--denoiser", help="Starting denoiser: a shipped name or a weights file.")] = "unet3-color",
    sigma: Annotated[str, typer.Option(
        "--sigma", help="Noise level to train for, or LOW,HIGH to draw one per image (0..255).")] = "25",
    weight: Annotated[float, typer.Option("--lambda", help="Weight of the task loss against the MSE.")] = 0.002,
    labels: Annotated[bool, typer.Option(
        "--labels/--no-labels",
        help="Task loss against DATA's labels, or against the task network's prediction on the clean crop.")] = True,
    task_arch: Annotated[Optional[str], typer.Option(
        "--task-arch",
        help="Built-in architecture of a --task-model state dict: classifier-cnn or segmenter-unet.")] = None,
    task_options: Annotated[str, typer.Option(
        "--task-options", help="JSON options of --task-arch, e.g. '{\"classes\": 20}'.")] = "{}",
    photos: Annotated[Optional[list[Path]], typer.Option(
        "--photos", help="Directories of clean photos for the MSE term [default: the labelled images].")] = None,
    photo_crop: Annotated[int, typer.Option(
        "--photo-crop", help="Side of the crops of --photos (with --no-labels: of DATA) in pixels.")] = 64,
    val: Annotated[Optional[Path], typer.Option("--val", help="Directory of labelled validation images.")] = None,
    val_sigma: Annotated[float, typer.Option("--val-sigma", help="Noise level of validation.")] = 25.0,
    crop: Crop = None,
    pad: Pad = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Crops per step and process.")] = 16,
    max_steps: MaxSteps = 2000,
    max_time: MaxTime = None,
    learning_rate: LearningRate = 1e-4,
    validate_every: ValidateEvery = 500,
    checkpoint_every: CheckpointEvery = 300.0,
    resume: Resume = False,
    seed: Seed = 0,
    device: Device = None,
    threads: Threads = None,
    precision: TrainingPrecision = "auto",
    json_output: Json = False,
) -> int:

    from ..engine import weights
    from ..engine.training import ddp
    from ..engine.training.cascade import CascadeTraining, check_task_network
    from ..engine.training.data import PatchSampler, load_images
    from ..engine.training.labelled import LabelledSampler
    from ..engine.training.trainer import TrainConfig

    if not labels and photos:
        raise UsageError("--photos: with --no-labels the images of DATA serve both loss terms")
    if not labels and (crop is not None or pad is not None):
        raise UsageError("--crop and --pad apply to labelled images: with --no-labels use --photo-crop")
    if labels and len(data) > 1:
        raise UsageError("one directory of labelled images, please (several are for --no-labels)")
    crop, pad = training.crop_and_pad(task, crop, pad)
    if weight < 0:
        raise UsageError("--lambda must be at least 0")
    training.check_patch_side(photo_crop, "--photo-crop")
    low, high = training.sigma_range(sigma, "--sigma", single=True)
    try:
        options = json.loads(task_options)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--task-options is not JSON: {exc.msg}") from None
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)

    network = weights.load_network(task_model, task_arch, options)
    record, model = training.starting_denoiser(str(output) if resume else denoiser, "--denoiser", 3)
    labelled_data = training.labelled(task, data[0]) if labels else None
    try:
        check_task_network(network, task, crop if labels else photo_crop, labelled_data.classes if labels else None)
    except ValueError as exc:
        raise UsageError(f"--task-model {task_model}: {exc}") from None
    sampler = LabelledSampler(labelled_data, crop, pad) if labels else None
    validation = training.labelled(task, val) if val else None
    photo_folders = (photos or []) if labels else data
    photo_sampler = PatchSampler(load_images(photo_folders, 3, min_size=photo_crop), photo_crop) if photo_folders else None
    cascade = CascadeTraining(network, sampler, (low, high), weight, torch_device, validation, val_sigma, photo_sampler)
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size,
                         learning_rate=learning_rate, warmup_steps=min(200, max_steps // 10),
                         validate_every=validate_every if val else 0,
                         checkpoint_every=checkpoint_every, seed=seed, precision=precision)
    meta = {**record.get("meta", {}),
            "cascade": {"task": task, "task_model": task_model, "lambda": weight, "sigma_range": [low, high],
                        "initial_denoiser": denoiser, "training_data": [str(folder) for folder in data],
                        "labels": labels,
                        "crop": crop if labels else None, "seed": seed,
                        "photos": [str(folder) for folder in photo_folders], "photo_crop": photo_crop},
            "device": str(torch_device), "world_size": ddp.world_size()}
    model.train()
    result = training.run(model, cascade, config, output, meta, torch_device, resume)
    if json_output:
        training.print_summary(output, result)
    return 0
