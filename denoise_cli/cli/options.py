"""Option definitions shared by the commands, so every command spells them the same way."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..errors import UsageError

MAX_SEED = 2**63 - 1  # what every random generator dncli seeds accepts

Output = Annotated[Optional[str], typer.Option(
    "--output", "-o", help="Output file, directory (for a directory input) or '-' for stdout [default: stdout].")]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Include images in subdirectories.")]
Glob = Annotated[Optional[str], typer.Option(
    "--glob", help="Only files whose name matches this pattern, e.g. '*.png' [default: all image types].")]
SkipExisting = Annotated[bool, typer.Option(
    "--skip-existing", help="Skip inputs whose output already exists (resume a batch).")]
Shard = Annotated[Optional[str], typer.Option(
    "--shard", metavar="K/N",
    help="Process every N-th file of the sorted list, starting at K (0-based); "
         "defaults to RANK/WORLD_SIZE under torchrun.")]
InPlace = Annotated[bool, typer.Option("--in-place", help="Allow overwriting the input files with the results.")]
Format = Annotated[Optional[str], typer.Option(
    "--format", "-f", help="Output format: png, tiff, jpeg, bmp, pnm or npy [default: from the output name, "
                           "else the input's type].")]
Depth = Annotated[Optional[str], typer.Option(
    "--depth", help="Output bit depth: 8, 16 or 32f [default: the input's].")]
Device = Annotated[Optional[str], typer.Option(
    "--device", help="auto, cpu, cuda or cuda:N [default: $DNCLI_DEVICE, else auto].")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="CPU threads [default: torch's choice].")]
Precision = Annotated[str, typer.Option(
    "--precision", help="fp32, fp16 (CUDA only) or bf16 (CUDA, and CPUs with AVX512-BF16 or AMX, "
                        "where it is about 2x faster than fp32).")]
TrainingPrecision = Annotated[str, typer.Option(
    "--precision", help="auto (bf16 on CUDA, fp32 on the CPU), fp32, fp16 (CUDA only) or bf16 (CUDA, and CPUs "
                        "with AVX512-BF16 or AMX, where a step takes about half the time of fp32).")]
Tile = Annotated[Optional[int], typer.Option(
    "--tile", help="Tile side in pixels for large images [default: chosen from free memory].")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Same-size images processed together.")]
Seed = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of everything random.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

# The trainers' options (each command sets its own defaults).
MaxSteps = Annotated[int, typer.Option("--max-steps", help="Total optimiser steps (sets the schedule).")]
MaxTime = Annotated[Optional[float], typer.Option("--max-time", help="Stop after this many seconds.")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate of Adam.")]
ValidateEvery = Annotated[int, typer.Option("--validate-every", help="Steps between validations.")]
CheckpointEvery = Annotated[float, typer.Option("--checkpoint-every", help="Seconds between checkpoints.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the checkpoint in --output.")]
LabelledTask = Annotated[str, typer.Option("--task", help="classify or segment.")]
Crop = Annotated[Optional[int], typer.Option(
    "--crop", help="Training crop side in pixels [default: 32 classify, 128 segment].")]
Pad = Annotated[Optional[int], typer.Option(
    "--pad", help="Pixels of padding before cropping [default: 4 classify, 0 segment].")]


def parse_sigma(text: str) -> float | None:
    """A ``--sigma`` value: a noise level on the 0..255 scale, or None for 'auto'."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--sigma {text!r}: expected a number on the 0..255 scale or 'auto'") from None
    if not 0 <= value <= 255:
        raise UsageError(f"--sigma {value:g} is out of range: use 0..255")
    return value
