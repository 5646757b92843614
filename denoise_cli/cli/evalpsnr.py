"""Measure PSNR and SSIM of images against references (BENCHMARK.md protocol).

OUTPUT and --ref are files, directories (matched by relative path) or '-' (one side at a
time). 8- and 16-bit references are compared after rounding both images to that depth, float
references on their values with a data range of 1. Prints a table, or --json / --csv.
Identical images have an infinite PSNR: inf in the table and CSV, null in JSON.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from . import console
from .options import Json, Recursive

NAME = "eval-psnr"
NO_ARGS_IS_HELP = True


def command(
    output: Annotated[str, typer.Argument(help="Image or directory to score, or '-'.")],
    ref: Annotated[str, typer.Option("--ref", help="Reference image or directory, or '-'.")],
    crop: Annotated[int, typer.Option("--crop", min=0, help="Pixels to ignore at every border.")] = 0,
    y: Annotated[bool, typer.Option("--y", help="Compare the luma (BT.601 Y) of colour images only.")] = False,
    recursive: Recursive = False,
    json_output: Json = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")] = False,
) -> int:
    import numpy as np

    from ..engine.metrics import compare
    from ..imgio.codec import ImageError, read_image

    if output == "-" and ref == "-":
        raise UsageError("only one of OUTPUT and --ref can be '-'")
    if json_output and csv:
        raise UsageError("--json and --csv exclude each other")
    pairs = _pairs(output, ref, recursive)
    rows, failed = [], []
    for name, out_path, ref_path in pairs:
        try:
            estimate, reference = read_image(out_path), read_image(ref_path)
            if estimate.color.shape != reference.color.shape:
                raise ValueError(f"size differs from its reference: {_shape(estimate.color)} "
                                 f"against {_shape(reference.color)}")
            scores = compare(estimate.color, reference.color, reference.depth, crop, y)
        except (ImageError, ValueError) as exc:
            message = str(exc) if str(exc).startswith(str(out_path)) else f"{name}: {exc}"
            failed.append(message)
            console.error(message)
            continue
        rows.append({"name": name, **scores})
    if not rows:
        raise typer.Exit(1)
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("psnr", "ssim")}
    if json_output:
        console.print_json({"images": rows, "mean": mean, "failed": failed, "crop": crop, "luma": y})
    elif csv:
        print("name,psnr,ssim")
        for row in rows + [{"name": "mean", **mean}]:
            print(f"{row['name']},{row['psnr']:.4f},{row['ssim']:.6f}")
    else:
        width = max(len(r["name"]) for r in rows + [{"name": "mean"}])
        print(f"{'image':<{width}}  {'PSNR (dB)':>9}  {'SSIM':>6}")
        for row in rows + [{"name": "mean", **mean}]:
            print(f"{row['name']:<{width}}  {row['psnr']:>9.2f}  {row['ssim']:>6.4f}")
    if failed:
        console.error(f"{len(failed)} of {len(pairs)} image(s) could not be compared")
        raise typer.Exit(1)
    return 0


def _shape(pixels) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}x{pixels.shape[2]}"


def _pairs(output: str, ref: str, recursive: bool) -> list[tuple[str, str, str]]:
    """(name, output path, reference path) for two files or two directories matched by relative path."""
    from ..batch import list_images

    for side in (output, ref):
        if side != "-" and not Path(side).exists():
            raise UsageError(f"{side}: no such file or directory")
    out_dir = output != "-" and Path(output).is_dir()
    ref_dir = ref != "-" and Path(ref).is_dir()
    if out_dir != ref_dir:
        raise UsageError("OUTPUT and --ref must both be files or both be directories")
    if not out_dir:
        return [(output if output != "-" else "<stdin>", output, ref)]
    pairs = []
    references = {p.relative_to(ref).with_suffix("").as_posix(): p for p in list_images(Path(ref), recursive, None)}
    for path in list_images(Path(output), recursive, None):
        relative = path.relative_to(output)
        match = Path(ref) / relative
        if not match.is_file():
            match = references.get(relative.with_suffix("").as_posix(), match)
        pairs.append((relative.as_posix(), str(path), str(match)))
    if not pairs:
        raise UsageError(f"{output}: no images found")
    return pairs
