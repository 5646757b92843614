"""Image-to-image jobs over a file, a stream or a folder: planning, sharding, batching, reporting.

Every per-image command (``denoise``, ``degrade``, ...) plans its jobs here and hands a
function that maps a list of same-size images to their results.  A bad input is recorded
and the run goes on; outputs are written atomically by ``imgio``, so an interrupted run never
leaves a partial file and ``skip_existing`` resumes it.
"""
from __future__ import annotations

import fnmatch
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import UsageError
from .imgio.atomic import is_stream
from .imgio.codec import Image, ImageError, check_depth, format_from_path, read_image, write_image

IMAGE_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff", "*.bmp", "*.pgm", "*.ppm", "*.pnm", "*.npy")
SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "pnm": ".pnm", "npy": ".npy"}
PREFETCH = 4


@dataclass(frozen=True)
class Job:
    source: str  # a path or "-"
    dest: str  # a path or "-"
    index: int  # position in the sorted list before sharding: seeds per-image randomness
    name: str  # what messages call it


@dataclass
class Report:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``K/N`` with 0 <= K < N; with no spec, ``RANK``/``WORLD_SIZE`` when set (torchrun)."""
    if spec is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
        return None
    try:
        k, n = (int(part) for part in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard {spec!r}: expected K/N, e.g. 0/4") from None
    if not 0 <= k < n:
        raise UsageError(f"--shard {spec!r}: K must be in 0..N-1")
    return k, n


def list_images(folder: Path, recursive: bool, pattern: str | None) -> list[Path]:
    """Image files in ``folder`` in sorted order of their relative paths."""
    patterns = (pattern,) if pattern else IMAGE_PATTERNS
    walk = folder.rglob("*") if recursive else folder.glob("*")
    found = [p for p in walk if p.is_file() and not p.name.startswith(".")
             and any(fnmatch.fnmatch(p.name.lower(), pat.lower()) for pat in patterns)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def plan(source: str, output: str | None, *, recursive: bool = False, pattern: str | None = None,
         shard: tuple[int, int] | None = None, skip_existing: bool = False, in_place: bool = False,
         out_format: str | None = None, depth: str | None = None) -> tuple[list[Job], int]:
    """Jobs for an input file, ``-`` or folder; returns (jobs, number skipped as existing).

    A file or ``-`` writes to ``output`` (a file, ``-`` or an existing folder), stdout when
    ``output`` is None.  A folder writes to the ``output`` folder, mirroring relative paths.
    UsageError, before any work, when an output would overwrite its input, two inputs would
    write one output, or an output's format is unknown or cannot store ``depth``.
    """
    if in_place:
        if output is not None:
            raise UsageError("--in-place and -o/--output exclude each other")
        if skip_existing:
            raise UsageError("--in-place and --skip-existing exclude each other (every output exists)")
        output = source
    if source == "-":
        return [Job("-", output or "-", 0, "<stdin>")], 0
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source}: no such file or directory")
    if path.is_dir():
        if output is None or output == "-":
            raise UsageError(f"{source} is a directory: give an output directory with -o DIR")
        if Path(output).is_file():
            raise UsageError(f"{output} is a file: the output of a directory must be a directory")
        files = list_images(path, recursive, pattern)
        if not files:
            raise UsageError(f"{source}: no images found" + ("" if recursive else " (add --recursive for subfolders)"))
        jobs = []
        for index, file in enumerate(files):
            relative = file.relative_to(path)
            if out_format:
                relative = relative.with_suffix(SUFFIX[out_format])
            jobs.append(Job(str(file), str(Path(output) / relative), index, str(file)))
    else:
        dest = output or "-"
        if dest != "-" and Path(dest).is_dir():
            name = path.name if not out_format else path.with_suffix(SUFFIX[out_format]).name
            dest = str(Path(dest) / name)
        jobs = [Job(source, dest, 0, source)]
    writers: dict[str, str] = {}
    for job in jobs:
        if job.dest != "-" and not in_place and _same_file(job.source, job.dest):
            raise UsageError(f"{job.dest}: output would overwrite the input (use --in-place to allow it)")
        if job.dest in writers:  # --format gave a.png and a.bmp one name
            raise UsageError(f"{writers[job.dest]} and {job.source} would both be written to {job.dest}")
        writers[job.dest] = job.source
        _check_output_format(job.dest, out_format, depth)
    if shard:
        k, n = shard
        jobs = [job for job in jobs if job.index % n == k]
    skipped = 0
    if skip_existing:
        kept = [job for job in jobs if job.dest == "-" or is_stream(job.dest) or not Path(job.dest).exists()]
        skipped, jobs = len(jobs) - len(kept), kept
    return jobs, skipped


def _check_output_format(dest: str, out_format: str | None, depth: str | None) -> None:
    """UsageError when ``dest`` gets an unknown format, or one that cannot store ``depth``; a
    stream without --format takes its input's format, known only once the image is read."""
    try:
        format = out_format or (None if dest == "-" or is_stream(dest) else format_from_path(dest))
    except ImageError as exc:
        raise UsageError(str(exc)) from None
    if depth is not None and format is not None:
        try:
            check_depth(format, depth)
        except ImageError as exc:
            raise UsageError(f"--depth {depth}: {exc}") from None


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _read_ahead(jobs: list[Job]) -> Iterator[tuple[Job, Image | ImageError]]:
    """Decode up to PREFETCH images ahead in a thread, so reading overlaps computing."""
    def load(job: Job) -> Image | ImageError:
        try:
            return read_image(job.source)
        except ImageError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque[tuple[Job, Future]] = deque()
        queue = iter(jobs)
        for job in queue:
            pending.append((job, pool.submit(load, job)))
            if len(pending) >= PREFETCH:
                break
        while pending:
            job, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(load, following)))
            yield job, future.result()


Process = Callable[[list[Image], list[Job]], list[Image]]


def run(jobs: list[Job], process: Process, *, batch_size: int = 1, out_format: str | None = None,
        depth: str | None = None, on_event: Callable[[dict], None] = lambda event: None,
        report: Report | None = None) -> Report:
    """Read, ``process`` in batches of same-size images, and write every job.

    ``process`` gets the images and their jobs and returns one image per input.  Errors of
    one image (``ImageError``, ``ValueError`` from the method) are recorded in the report;
    ``on_event`` receives ``progress``, ``warning`` and ``failed`` events.
    """
    report = report or Report()
    total = len(jobs)
    batch: list[tuple[Job, Image]] = []

    def fail(job: Job, message: str) -> None:
        report.failed.append((job.name, message))
        on_event({"kind": "failed", "name": job.name, "message": message})

    def flush() -> None:
        if not batch:
            return
        items = list(batch)
        batch.clear()
        try:
            results = process([image for _, image in items], [job for job, _ in items])
        except (ImageError, ValueError) as exc:
            for job, _ in items:
                fail(job, str(exc) if str(exc).startswith(job.name) else f"{job.name}: {exc}")
            return
        for (job, _), result in zip(items, results):
            try:
                if job.dest != "-":
                    Path(job.dest).parent.mkdir(parents=True, exist_ok=True)
                for warning in write_image(result, job.dest, out_format, depth):
                    on_event({"kind": "warning", "name": job.name, "message": warning})
                report.done += 1
            except ImageError as exc:
                fail(job, str(exc))
            except BrokenPipeError:
                raise
            except OSError as exc:
                fail(job, f"{job.dest}: {exc.strerror or exc}")
        on_event({"kind": "progress", "done": report.done + len(report.failed), "total": total})

    for job, image in _read_ahead(jobs):
        if isinstance(image, ImageError):
            fail(job, str(image))
            on_event({"kind": "progress", "done": report.done + len(report.failed), "total": total})
            continue
        if batch and (image.pixels.shape != batch[0][1].pixels.shape or len(batch) >= batch_size):
            flush()
        batch.append((job, image))
    flush()
    return report
