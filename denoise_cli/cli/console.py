"""Messages and progress on stderr; results alone go to stdout.

Rich progress bars appear only when stderr is a terminal and ``--quiet`` is off; rich itself
honours ``NO_COLOR``.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
from typing import Iterator

quiet = False
debug = False


def info(message: str) -> None:
    if not quiet:
        print(f"dncli: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    if not quiet:
        print(f"dncli: warning: {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    one_line = " ".join(message.split())  # a library's multi-line message (torch's) too
    print(f"dncli: error: {one_line}", file=sys.stderr, flush=True)


def print_json(data: object) -> None:
    """``data`` as JSON on stdout.  A non-finite number (the infinite PSNR of identical images)
    becomes null: Infinity and NaN are not JSON, and strict parsers reject them."""
    print(json.dumps(_json_safe(data), indent=2, allow_nan=False))


def _json_safe(data: object) -> object:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(value) for value in data]
    return data


class _Progress:
    def __init__(self, bar, task) -> None:
        self._bar, self._task = bar, task

    def update(self, done: int, total: int | None = None, **fields) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, **fields)


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[_Progress]:
    """A progress bar on a terminal stderr; silent otherwise."""
    if quiet or not sys.stderr.isatty():
        yield _Progress(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Progress(bar, bar.add_task(description, total=total))
