"""Train a classifier or a semantic segmenter on clean labelled images, for 'dncli cascade-train'.

--task classify reads one folder of images per class (DATA/<class>/<image>, classes numbered in
sorted name order); --task segment reads DATA/images/ and DATA/masks/ (8-bit class-index PNGs of
the same names, 255 = no label). Random crops with a random horizontal flip (classification
images padded by --pad first); Adam with warm-up and cosine decay; the accuracy or mean IoU on
--val every --validate-every steps. The output is a checkpoint and a weights file at once, like
every trainer's: --resume continues it, 'dncli cascade-train --task-model' uses it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from . import training
from .options import (CheckpointEvery, Crop, Device, Json, LabelledTask, LearningRate, MaxSteps, MaxTime,
    Pad, TrainingPrecision, Resume, Seed, Threads, ValidateEvery)

NAME = "task-train"
NO_ARGS_IS_HELP = True
ARCHITECTURE = {"classify": "classifier-cnn", "segment": "segmenter-unet"}


def command(
    data: Annotated[Path, typer.Argument(help="Directory of labelled training images (layout: see above).")],
    task: LabelledTask,
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint / weights file to write.")],
    val: Annotated[Optional[Path], typer.Option("--val", help="Directory of labelled validation images.")] = None,
    widths: Annotated[str, typer.Option("--widths", help="Channels of the three stages / scales.")] = "32,64,128",
    crop: Crop = None,
    pad: Pad = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Crops per step and process.")] = 64,
    max_steps: MaxSteps = 5000,
    max_time: MaxTime = None,
    learning_rate: LearningRate = 2e-3,
    validate_every: ValidateEvery = 500,
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
    from ..engine.training.labelled import LabelledSampler
    from ..engine.training.task_networks import TaskNetworkTraining
    from ..engine.training.trainer import TrainConfig

    crop, pad = training.crop_and_pad(task, crop, pad)
    torch_device = training.prepare(output, resume, device, threads, precision, seed, batch_size, learning_rate)
    train_data = training.labelled(task, data)
    validation = training.labelled(task, val) if val else None
    options = {"classes": train_data.classes, "widths": training.positive_integers(widths, "--widths", 3)}
    if resume:
        record = weights.load_checkpoint(output)
        if record.get("arch") != ARCHITECTURE[task] or record["options"].get("classes") != train_data.classes:
            raise UsageError(f"--resume: {output} holds no {ARCHITECTURE[task]} of {train_data.classes} classes; "
                             "resume it with the --task and data it was trained on")
        options = record["options"]
    model = registry.build(ARCHITECTURE[task], options)
    config = TrainConfig(max_steps=max_steps, max_time=max_time, batch_size=batch_size, learning_rate=learning_rate,
                         validate_every=validate_every if val else 0, checkpoint_every=checkpoint_every,
                         seed=seed, precision=precision)
    meta = {"task": task, "class_names": train_data.class_names, "training_data": str(data), "crop": crop,
            "pad": pad, "device": str(torch_device), "world_size": ddp.world_size()}
    task_definition = TaskNetworkTraining(LabelledSampler(train_data, crop, pad), validation)
    result = training.run(model, task_definition, config, output, meta, torch_device, resume)
    if json_output:
        training.print_summary(output, result)
    return 0
