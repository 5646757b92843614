"""What every training command shares: the output and device checks, progress on stderr, the
JSON summary, number lists."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from . import console, runner


def prepare(output: Path, resume: bool, device: str | None, threads: int | None, precision: str, seed: int,
            batch_size: int | None, learning_rate: float):
    """Check that --output can be written (or, with --resume, continued), --batch-size (None:
    the command's default) and --lr, and return this process's torch device (its own GPU under
    torchrun), with --threads applied and --precision checked (and warned about where the CPU
    cannot honour it) before any work.  Seeds torch with --seed, so that a new network's initial
    weights are the same in every run: the trainer seeds the batches and dropout itself."""
    import torch

    from ..engine import device as devices
    from ..engine.training import ddp

    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not learning_rate > 0:  # also refuses NaN
        raise UsageError("--lr must be positive")
    if resume and not output.is_file():
        raise UsageError(f"--resume: no checkpoint at {output}")
    if not resume and output.exists():
        raise UsageError(f"{output} exists: add --resume to continue it, or choose another name")
    torch_device = ddp.local_device(devices.select_device(device))
    devices.configure_cpu(threads)
    devices.training_precision(torch_device, precision)  # validates the name
    runner.warn_about_cpu_precision(torch_device, precision)
    torch.manual_seed(seed)
    return torch_device


def run(model, task, config, output: Path, meta: dict, device, resume: bool):
    """``engine.training.trainer.train`` with a progress bar and one stderr line per log,
    validation and checkpoint event; returns its ``TrainResult``."""
    from ..engine.training.trainer import train

    with console.progress("training", config.max_steps) as bar:
        return train(model, task, config, output, meta, device, resume=resume, on_event=_reporter(bar))


def is_main_process() -> bool:
    """False on every torchrun rank but 0, which alone prints and writes."""
    return int(os.environ.get("RANK", "0")) == 0


def print_summary(output: Path, result, **extra: object) -> None:
    """The ``--json`` summary of a finished training run, on stdout, from rank 0 only."""
    if is_main_process():
        console.print_json({"output": str(output), "step": result.step, "elapsed": result.elapsed,
                            "history": result.history, **extra})


def numbers(text: str, count: int, option: str, kind: type = float) -> list:
    """``count`` comma-separated numbers of ``kind`` from an option's value; UsageError otherwise."""
    try:
        values = [kind(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise UsageError(f"{option} {text!r}: expected {count} comma-separated numbers")
    return values


def positive_integers(text: str, option: str, count: int | None = None) -> list[int]:
    """Comma-separated integers of at least 1 (``count`` of them, when given), such as layer
    widths; UsageError otherwise."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or (count is not None and len(values) != count) or min(values) < 1:
        expected = f"{count} comma-separated" if count else "comma-separated"
        raise UsageError(f"{option} {text!r}: expected {expected} positive integers")
    return values


def _reporter(bar) -> Callable[[dict], None]:
    def on_event(event: dict) -> None:
        if event["kind"] == "log":
            bar.update(event["step"], event["max_steps"])
            console.info(f"step {event['step']}/{event['max_steps']}  loss {event['loss']:.5f}  "
                         f"lr {event['lr']:.2e}  {event['elapsed']:.0f}s")
        elif event["kind"] == "validate":
            scores = "  ".join(f"{k} {v:.3f}" for k, v in event.items() if k not in ("kind", "step"))
            console.info(f"step {event['step']}: validation {scores}")
        elif event["kind"] == "warning":
            console.warn(event["message"])
        elif event["kind"] == "checkpoint":
            console.info(f"step {event['step']}: checkpoint {event['path']}")

    return on_event


def sigma_range(text: str, option: str, single: bool = False) -> tuple[float, float]:
    """``LOW,HIGH`` noise levels on the 0..255 scale (or one level when ``single``), checked."""
    levels = numbers(text, text.count(",") + 1 if single else 2, option)
    if len(levels) > 2:
        raise UsageError(f"{option} {text!r}: expected a level or LOW,HIGH")
    low, high = levels[0], levels[-1]
    if not 0 <= low <= high <= 255:
        raise UsageError(f"{option}: need 0 <= LOW <= HIGH <= 255")
    return low, high


def check_patch_side(side: int, option: str) -> None:
    """A training patch side for the unet3 denoiser: a multiple of 4 (two 2x downsamplings), at
    least 16 pixels; UsageError naming ``option`` otherwise."""
    if side < 16 or side % 4:
        raise UsageError(f"{option} must be a multiple of 4, at least 16")


def starting_model(spec: str, option: str, arch: str, needed: str, channels: int | None = None):
    """``(record, model)`` a trainer starts from: a shipped name or a weights file, which must hold
    an ``arch`` model (of ``channels`` channels, when given); otherwise a UsageError
    ``"{option} {spec}: {needed}"``."""
    from ..engine import weights

    record = weights.load_checkpoint(weights.resolve(spec))
    if record.get("arch") != arch or (channels is not None and record["options"].get("channels") != channels):
        raise UsageError(f"{option} {spec}: {needed}")
    return record, weights.model_from_record(record, spec)


def starting_denoiser(spec: str, option: str, channels: int):
    """``(record, model)`` of the unet3 denoiser of ``channels`` channels a trainer starts from
    (:func:`starting_model`)."""
    kind, name = ("colour", "unet3-color") if channels == 3 else ("gray", "unet3-gray")
    return starting_model(spec, option, "unet3", f"a {kind} unet3 denoiser is needed, such as {name}", channels)


def patch_sampler(images: list, patch: int):
    """A ``PatchSampler`` of ``patch``-pixel patches of ``images``; images smaller than a patch
    are a usage error."""
    from ..engine.training.data import PatchSampler

    try:
        return PatchSampler(images, patch)
    except ValueError as exc:
        raise UsageError(f"--patch {patch}: {exc}") from None


def crop_and_pad(task: str, crop: int | None, pad: int | None) -> tuple[int, int]:
    """--crop and --pad of the labelled-data trainers, with their per-task defaults; checks
    --task too."""
    from ..engine.training.labelled import TASKS

    if task not in TASKS:
        raise UsageError(f"--task {task!r}: use {' or '.join(TASKS)}")
    crop = crop if crop is not None else (32 if task == "classify" else 128)
    pad = pad if pad is not None else (4 if task == "classify" else 0)
    if crop < 8 or pad < 0:
        raise UsageError("--crop must be at least 8 and --pad at least 0")
    return crop, pad


def labelled(task: str, folder: Path):
    """The labelled images of ``folder``, with a layout mistake reported as a usage error."""
    from ..engine.training.labelled import load_labelled

    console.info(f"loading labelled images from {folder}")
    try:
        return load_labelled(task, folder)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
