"""Device, thread and precision policy shared by every command.

float32 on the CPU; on CUDA, ``fp16``/``bf16`` run the network under autocast.
"""
from __future__ import annotations

import contextlib
import os

import torch

from ..errors import UsageError

PRECISIONS = ("fp32", "fp16", "bf16")


def select_device(spec: str | None = None) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; default ``$DNCLI_DEVICE`` or auto."""
    spec = (spec or os.environ.get("DNCLI_DEVICE") or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} requested but CUDA is not available "
                             f"(torch {torch.__version__}, built for CUDA: {torch.version.cuda or 'no'})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {spec!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r} (use auto, cpu, cuda or cuda:N)")
    return device


def configure_threads(threads: int | None) -> int:
    """Set the CPU thread count when given; returns the count in use."""
    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be at least 1")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA for fp16/bf16; float32 everywhere else."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


def free_memory_bytes(device: torch.device) -> int:
    """Memory a run may plan with: free GPU memory, or available RAM on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
