"""One training loop for every method; what is learned is decided by a pluggable ``Task``.

The loop owns what every trainer needs: Adam with warm-up and cosine decay, mixed precision,
DistributedDataParallel when started by ``torchrun``, exact resumption from checkpoints,
``max_steps``/``max_time`` limits, periodic validation and progress events.  A task supplies
the batches, the loss and the validation metric.

Randomness: the batch of step ``s`` on rank ``r`` comes from a generator seeded with
``(seed, r, s)``, and the global generators (dropout) are reseeded from it at every step, so a
resumed run draws exactly what the uninterrupted run would have.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from .. import device as devices
from .. import weights
from . import ddp


# The settings that shape a run's steps: a resumed run continues exactly only with the same ones.
RESUME_SETTINGS = ("max_steps", "batch_size", "learning_rate", "final_learning_rate", "warmup_steps", "seed",
                   "grad_clip", "precision")


@dataclass
class TrainConfig:
    """Options shared by every trainer.  Times are in seconds, learning rates absolute."""

    max_steps: int = 10000
    max_time: float | None = None  # stop (and checkpoint) after this many seconds of this run
    batch_size: int = 16  # per process
    learning_rate: float = 5e-4
    final_learning_rate: float = 1e-6
    warmup_steps: int = 200
    validate_every: int = 500
    checkpoint_every: float = 300.0  # seconds between checkpoints
    log_every: int = 20
    seed: int = 0
    grad_clip: float = 1.0
    precision: str = "auto"  # autocast: auto, fp32, fp16 or bf16 (engine.device.training_precision)

    def learning_rate_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.final_learning_rate + (self.learning_rate - self.final_learning_rate) * cosine


class Task(Protocol):
    """What a trainer learns: batches, a loss, and a validation metric.

    A task may also define these hooks (the trainer looks them up by name):

    * ``parameter_groups(model) -> list[dict]``: Adam parameter groups, each with ``params`` and
      optionally ``lr_scale`` (a factor on the scheduled learning rate).  Each group's gradient
      norm is clipped on its own.  Adam keeps per-parameter statistics and skips parameters
      without a gradient, so networks that separate losses update on separate steps keep
      separate optimiser states, as with one optimiser each.  Default: one group of everything.
    * ``training_module(model) -> nn.Module``: the module whose forward turns a batch into the
      loss; ``loss`` receives it (wrapped by DistributedDataParallel under torchrun, which needs
      one forward call per backward pass even when a step runs several networks).  Default: the
      model itself.
    * ``begin_step(step)``: called with the 0-based step index before its batch is drawn, for
      schedules (noise levels, alternating updates) that must resume exactly.
    """

    def batch(self, size: int, generator: torch.Generator, device: torch.device) -> object: ...

    def loss(self, model: nn.Module, batch: object) -> torch.Tensor: ...

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]: ...


@dataclass
class TrainResult:
    step: int
    elapsed: float
    history: list[dict] = field(default_factory=list)


_GLOBAL_STREAM = 1 << 62  # keeps the global generators' seeds apart from the batches'


def _step_seed(seed: int, rank: int, step: int) -> int:
    # Below 2**63 for any seed, rank and step, as torch's generators need (2**64 at most).
    return ((seed * 1_000_003 + rank) * 1_000_033 + step) % (1 << 63)


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_step_seed(seed, rank, step))
    return g


def train(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    checkpoint: Path,
    weights_meta: dict,
    device: torch.device,
    resume: bool = False,
    on_event: Callable[[dict], None] = lambda event: None,
) -> TrainResult:
    """Train ``model`` on ``task``; checkpoints (also loadable as weights) go to ``checkpoint``.

    ``weights_meta`` is the architecture record (``arch``, ``options``, ...) saved with the
    weights.  ``on_event`` receives dicts with a ``kind`` of ``log``, ``validate``,
    ``checkpoint`` or ``warning`` (with a ``message``); it is called on rank 0 only.
    """
    dist = ddp.context(device)
    model.to(device, memory_format=torch.channels_last)  # faster convolutions on CPU and GPU
    if device.type == "cuda":
        # Every step has the same shapes, so cuDNN's one-off search for the fastest algorithms
        # pays back from the first few steps on.
        torch.backends.cudnn.benchmark = True
    groups_of = getattr(task, "parameter_groups", None)
    groups = groups_of(model) if groups_of else [{"params": list(model.parameters())}]
    optimizer = torch.optim.Adam(groups, lr=config.learning_rate, betas=(0.9, 0.99))
    module_of = getattr(task, "training_module", None)
    begin_step = getattr(task, "begin_step", None)
    step, elapsed_before = 0, 0.0
    history: list[dict] = []
    precision = devices.training_precision(device, config.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device.type == "cuda")
    if resume:
        state = weights.load_checkpoint(checkpoint)
        if "optimizer" not in state:
            raise weights.WeightsError(f"{checkpoint}: weights without training state, which --resume needs; "
                                       "start from them with --init instead")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("grad_scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["grad_scaler"])
        step, elapsed_before = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history", []))
        stored = state.get("train_config", {})
        changed = ", ".join(f"{name} {stored[name]} -> {getattr(config, name)}" for name in RESUME_SETTINGS
                            if name in stored and stored[name] != getattr(config, name))
        if changed and dist.is_main:
            on_event({"kind": "warning", "message": f"resuming with other settings than the checkpoint's ({changed}): "
                                                    "the run goes on with the new ones, not exactly as it would have"})
        if step >= config.max_steps and dist.is_main:
            on_event({"kind": "warning", "message": f"the checkpoint is at step {step} of {config.max_steps}: "
                                                    "nothing to train (raise --max-steps)"})
    # With several groups some parameters go without a gradient on some steps, which DDP must
    # be told to expect.
    trained = dist.wrap(module_of(model) if module_of else model, find_unused_parameters=len(groups) > 1)

    start = time.monotonic()
    last_checkpoint = start
    # The running loss stays on the device and is read at log and checkpoint times only: a
    # read every step would make the host wait for the device and keep it from queueing work.
    running, running_count = torch.zeros((), device=device), 0

    def mean_loss() -> float:
        value = running.item() / max(1, running_count)
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} in the {running_count} steps before step {step}")
        return value

    def save() -> None:
        mean_loss()  # never checkpoint a diverged network
        if dist.is_main:
            weights.save_checkpoint(
                checkpoint, model, weights_meta, optimizer=optimizer, step=step,
                elapsed=elapsed_before + time.monotonic() - start, history=history,
                train_config=asdict(config), grad_scaler=scaler.state_dict(),
            )
            on_event({"kind": "checkpoint", "step": step, "path": str(checkpoint)})

    model.train()
    while step < config.max_steps:
        out_of_time = config.max_time is not None and time.monotonic() - start >= config.max_time
        if dist.any(out_of_time):  # every rank must stop at the same step
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate_at(step) * group.get("lr_scale", 1.0)
        if begin_step:
            begin_step(step)
        batch = task.batch(config.batch_size, _step_generator(config.seed, dist.rank, step), device)
        # Draws outside the batch (dropout) come from the global generators: seeded per step
        # too, on another stream, so that --resume continues exactly.
        torch.manual_seed(_step_seed(config.seed, dist.rank, step) ^ _GLOBAL_STREAM)
        with devices.autocast(device, precision):
            loss = task.loss(trained, batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        for group in optimizer.param_groups:
            nn.utils.clip_grad_norm_(group["params"], config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        running += loss.detach().float()
        running_count += 1
        if step % config.log_every == 0 or step == config.max_steps:
            loss_value = mean_loss()
            if dist.is_main:
                on_event({"kind": "log", "step": step, "max_steps": config.max_steps, "loss": loss_value,
                          "lr": config.learning_rate_at(step - 1), "elapsed": elapsed_before + time.monotonic() - start})
            running, running_count = torch.zeros((), device=device), 0
        if config.validate_every and step % config.validate_every == 0 and dist.is_main:
            model.eval()
            with torch.no_grad():
                metrics = task.validate(model, device)
            model.train()
            record = {"step": step, **metrics}
            history.append(record)
            on_event({"kind": "validate", **record})
        if time.monotonic() - last_checkpoint >= config.checkpoint_every:
            save()
            last_checkpoint = time.monotonic()
    save()
    dist.close()
    return TrainResult(step=step, elapsed=elapsed_before + time.monotonic() - start, history=history)
