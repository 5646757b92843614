"""Where a blind-spot training step spends its time on a GPU, before a long run is paid for.

    python3 benchmarks/gpu/profile_blindspot.py [--batch-size 32] [--patch 128] [--channels 3]

For the quarter-cost layout (trunk,branch widths 32,16) and the figure's, in channels-last and
contiguous memory and in fp32 and bf16, it times whole training steps (sampling, forward,
likelihood, backward, Adam) and the network alone, printing steps/s and the achieved TFLOP/s;
for one case also the likelihood and the sampler alone and the operators that take the most
host and device time.  Synthetic images stand in for the training set.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from denoise_cli.engine.models.blindspot import BlindSpot, BlindSpotConfig, gaussian_nll  # noqa: E402
from denoise_cli.engine.training.blindspot import BlindSpotTraining  # noqa: E402
from denoise_cli.engine.training.data import PatchSampler  # noqa: E402
from denoise_cli.engine.cost import macs_per_pixel  # noqa: E402

LAYOUTS = {"32,16": {"trunk_width": 32, "branch_width": 16},
           "figure": {}}


def build(layout: str, channels: int, device: torch.device, memory_format: torch.memory_format) -> BlindSpot:
    config = BlindSpotConfig.preset("figure", channels=channels, **LAYOUTS[layout])
    return BlindSpot(config).to(device, memory_format=memory_format)


def timed(step, count: int) -> float:
    """Seconds per call of ``step``, after three calls of warm-up (and cuDNN's search)."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(count):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    images = [rng.random((400, 400, args.channels), dtype=np.float32) for _ in range(8)]
    sampler = PatchSampler(images, args.patch)
    generator = torch.Generator().manual_seed(0)
    batch, pixels = args.batch_size, args.batch_size * args.patch ** 2
    sigma = torch.full((batch,), 25 / 255, device=device)
    fixed = sampler.sample(batch, generator, device)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"batch {batch} x {args.patch}^2, cudnn.benchmark on")
    print("| layout | MAC/pixel | memory format | precision | part | s/step | steps/s | TFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")

    def report(layout: str, macs: float, memory: str, precision: str, part: str, seconds: float) -> None:
        flops = 6 * macs * pixels / seconds / 1e12  # forward 2 FLOP per MAC, backward twice that
        print(f"| {layout} | {macs / 1e3:.0f} k | {memory} | {precision} | {part} | {seconds:.4f} | "
              f"{1 / seconds:.1f} | {flops:.1f} |", flush=True)

    cases = [("32,16", torch.channels_last, "fp32"), ("32,16", torch.contiguous_format, "fp32"),
             ("32,16", torch.channels_last, "bf16"), ("32,16", torch.contiguous_format, "bf16"),
             ("figure", torch.channels_last, "fp32"), ("figure", torch.contiguous_format, "fp32")]
    task = BlindSpotTraining(sampler, sigma=25.0)  # the trainer's own batches and likelihood
    cost = {layout: macs_per_pixel(build(layout, args.channels, torch.device("cpu"), torch.contiguous_format),
                                   args.channels) for layout in LAYOUTS}
    for layout, memory_format, precision in cases:
        model = build(layout, args.channels, device, memory_format)
        macs = cost[layout]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        memory = "channels_last" if memory_format is torch.channels_last else "contiguous"
        amp = dict(device_type="cuda", dtype=torch.bfloat16, enabled=precision == "bf16")

        def whole_step() -> None:
            with torch.autocast(**amp):
                loss = task.loss(model, task.batch(batch, generator, device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        def network_only() -> None:
            with torch.autocast(**amp):
                parts = model(fixed, sigma, parts=True)
            (parts.mean.float().sum() + parts.factor.float().sum()).backward()

        report(layout, macs, memory, precision, "whole step", timed(whole_step, args.steps))
        report(layout, macs, memory, precision, "network fwd+bwd", timed(network_only, args.steps))
        if layout == "32,16" and memory_format is torch.channels_last and precision == "fp32":
            mean = fixed.clone().requires_grad_()
            factor = torch.rand(batch, args.channels * (args.channels + 1) // 2, args.patch, args.patch,
                                device=device, requires_grad=True)

            def loss_only() -> None:
                gaussian_nll(fixed, mean, factor, sigma.view(-1, 1, 1, 1)).mean().backward()

            report(layout, macs, memory, precision, "likelihood fwd+bwd", timed(loss_only, args.steps))
            report(layout, macs, memory, precision, "sampler", timed(lambda: sampler.sample(batch, generator, device),
                                                                     args.steps))
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                    torch.profiler.ProfilerActivity.CUDA]) as profile:
                for _ in range(3):
                    whole_step()
                torch.cuda.synchronize()
            print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
            print(profile.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
