"""DistributedDataParallel set-up from the environment ``torchrun`` provides.

Started plainly, training runs in one process; started by ``torchrun`` (``WORLD_SIZE`` > 1),
each process joins the group (NCCL on CUDA, gloo on CPU), uses its ``LOCAL_RANK`` GPU, and
only rank 0 logs, validates and writes checkpoints.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                   find_unused_parameters=find_unused_parameters)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one."""
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
        return bool(value.item())

    def close(self) -> None:
        if self.active:
            torch_dist.barrier()
            torch_dist.destroy_process_group()


_joined = False  # whether this process has joined a process group


def joined() -> bool:
    return _joined


def exit_process(code: int) -> NoReturn:
    """End a process that joined a process group without the interpreter's teardown.

    Gloo's C++ threads can abort a finished worker while the interpreter and the C++ statics are
    torn down ("terminate called without an active exception", SIGABRT; about one run in a
    hundred on a busy 2-core machine), which torchrun then reports as a failed job.  Every output
    has been written and renamed by now, so skipping that teardown loses nothing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank under torchrun (0 otherwise), known before the group is joined."""
    return int(os.environ.get("RANK", "0"))


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK."""
    if world_size() > 1 and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def context(device: torch.device) -> DistContext:
    global _joined
    if world_size() <= 1:
        return DistContext(device=device)
    if not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch_dist.init_process_group(backend=backend)
        _joined = True
    return DistContext(rank=torch_dist.get_rank(), world_size=torch_dist.get_world_size(), device=device)
