"""Device, thread and precision policy shared by every command.

Inference runs the network in float32, or under autocast with ``bf16`` (CUDA and CPU) or
``fp16`` (CUDA only).  Training does the same, with ``auto`` (bf16 on CUDA, float32 on the CPU)
as its default.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys

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


def configure_cpu(threads: int | None) -> int:
    """Set the CPU thread count when given and keep freed memory for reuse (see
    :func:`keep_freed_memory`); returns the thread count in use."""
    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be at least 1")
        torch.set_num_threads(threads)
    keep_freed_memory()
    return torch.get_num_threads()


# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks in the heap instead of returning them to the system.

    A full-resolution activation of a CPU forward pass is hundreds of megabytes, above glibc's
    mmap threshold, so by default every layer maps fresh pages and faults them in (zero-filled)
    again; reusing the heap instead made unet3 1.5-1.7x faster on 2 cores (benchmarks/denoise.py).
    It is the effect of the caching allocators (jemalloc, tcmalloc) that PyTorch's CPU
    performance guides recommend, without a dependency.  The cost is a higher resident
    high-water mark, bounded by the tile size.  Only on Linux with glibc, once per process;
    returns whether it applies.  ``DNCLI_SYSTEM_MALLOC=1`` leaves malloc alone.
    """
    if not sys.platform.startswith("linux") or os.environ.get("DNCLI_SYSTEM_MALLOC") == "1":
        return False
    try:
        process = ctypes.CDLL(None)  # the symbols already loaded, libc's among them: no library search
        return bool(process.mallopt(_M_MMAP_MAX, 0) and process.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for inference and training: bf16 on CUDA and the CPU, fp16 on CUDA; float32
    otherwise."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def training_precision(device: torch.device, precision: str) -> str:
    """The precision a training run asks :func:`autocast` for on ``device``: ``auto`` is bf16 on
    CUDA and float32 on the CPU, where bf16 must be asked for because it halves a step's time only
    on CPUs with native bfloat16 (it doubles it on others)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use auto, {', '.join(PRECISIONS)})")
    return precision


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions in hardware (AVX512-BF16 or AMX); without it
    bf16 on the CPU is emulated and slower than float32."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


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
