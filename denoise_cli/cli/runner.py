"""What every per-image command shares: the device it computes on, where --json may go, and the
loop that plans the jobs, runs them and reports on stderr."""
from __future__ import annotations

import os
import sys

from ..errors import UsageError
from . import console


def check_json_destination(json_output: bool, output: str | None, in_place: bool, what: str = "images") -> None:
    """--json owns stdout, so the images (or other results, ``what``) must go to files."""
    if json_output and not in_place and (output in (None, "-") or _names_stdout(output)):
        raise UsageError(f"--json prints to stdout: write the {what} to a file or directory with -o")


def _names_stdout(path: str) -> bool:
    """Whether ``path`` is the file stdout writes to (``/dev/stdout``, or stdout's redirection)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):  # no such file, or no stdout descriptor
        return False


def compute_device(device: str | None, threads: int | None, precision: str):
    """The torch device of --device, with --threads applied and --precision checked before any
    work; warns when the CPU cannot honour --precision at speed."""
    from ..engine import device as devices

    torch_device = devices.select_device(device)
    devices.configure_cpu(threads)
    devices.autocast(torch_device, precision)  # validates the name
    warn_about_cpu_precision(torch_device, precision)
    return torch_device


def warn_about_cpu_precision(device, precision: str) -> None:
    """Say so on stderr when the CPU cannot honour --precision, or not at speed."""
    from ..engine import device as devices

    if device.type == "cpu":
        if precision == "fp16":
            console.warn("--precision fp16 applies on CUDA only; the CPU computes in float32 (bf16 runs on CPUs)")
        elif precision == "bf16" and not devices.cpu_has_native_bf16():
            console.warn("this CPU has no native bfloat16: --precision bf16 runs slower than fp32 here")


def run_images(input: str, output: str | None, process, *, format: str | None, depth: str | None,
               recursive: bool = False, glob: str | None = None, skip_existing: bool = False,
               shard: str | None = None, in_place: bool = False, batch_size: int = 1,
               description: str = "processing") -> int:
    """Run ``process`` over every input; returns the exit code (1 when any image failed)."""
    from .. import batch
    from ..imgio.codec import SUPPORTED_FORMATS, TTY_REFUSAL

    if format is not None and format not in SUPPORTED_FORMATS:
        raise UsageError(f"--format {format!r}: use one of {', '.join(SUPPORTED_FORMATS)}")
    if depth is not None and depth not in ("8", "16", "32f"):
        raise UsageError(f"--depth {depth!r}: use 8, 16 or 32f")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    jobs, skipped = batch.plan(input, output, recursive=recursive, pattern=glob, shard=batch.parse_shard(shard),
                               skip_existing=skip_existing, in_place=in_place, out_format=format,
                               depth=depth)
    if any(job.dest == "-" for job in jobs) and sys.stdout.isatty():
        raise UsageError(TTY_REFUSAL)  # now, not after the work
    report = batch.Report(skipped=skipped)
    with console.progress(description, len(jobs)) as bar:
        def on_event(event: dict) -> None:
            if event["kind"] == "progress":
                bar.update(event["done"], event["total"])
            elif event["kind"] == "warning":
                console.warn(event["message"])  # imgio names the file in its warnings
            elif event["kind"] == "failed":
                console.error(event["message"])

        batch.run(jobs, process, batch_size=batch_size, out_format=format, depth=depth,
                  on_event=on_event, report=report)
    if len(jobs) > 1 or skipped:
        summary = f"{report.done} written, {report.skipped} skipped, {len(report.failed)} failed"
        console.info(summary)
    if report.failed:
        if len(jobs) > 1:
            console.error(f"{len(report.failed)} of {len(jobs)} image(s) failed: "
                          + ", ".join(name for name, _ in report.failed[:5])
                          + (" ..." if len(report.failed) > 5 else ""))
        return 1
    return 0
