"""Benchmark of `dncli denoise`: protocol P1 quality, speed, memory and cost.

    python benchmarks/denoise.py                      # shipped models, all sets, sigma 15/25/50
    python benchmarks/denoise.py --limit 4 --sets Kodak24 --sigmas 25
    python benchmarks/denoise.py --weights-color run.pt --json results.json
    python benchmarks/denoise.py --ensemble --no-memory   # as 'dncli denoise --ensemble' runs

Quality follows ../shared/design/BENCHMARK.md (P1): seeded unclipped Gaussian noise, output
rounded to uint8, PSNR over all pixels and channels, skimage-style SSIM, mean over the set.
Speed is the median wall time of a 1-megapixel image after a warm-up (model loading
excluded), the models taking turns; memory is the largest peak resident size of three fresh
processes denoising a 4-megapixel colour image, and how much that exceeds the process after
loading the model.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoise_cli.engine import device as devices  # noqa: E402
from denoise_cli.engine import weights as weight_files  # noqa: E402
from denoise_cli.engine.cost import macs_per_pixel, parameter_count  # noqa: E402
from denoise_cli.engine.inference import Runner  # noqa: E402
from denoise_cli.engine.metrics import compare  # noqa: E402
from denoise_cli.engine.physics.noise import protocol_noisy  # noqa: E402
from denoise_cli.imgio.codec import read_image  # noqa: E402

SETS = {"Set12": 1, "BSD68": 1, "CBSD68": 3, "Kodak24": 3}
# P1 targets of the issue (at or above FFDNet / DnCNN) and DRUNet, the state of the art.
TARGETS = {"CBSD68": (33.9, 31.25, 28.0), "Kodak24": (34.7, 32.2, 29.0),
           "BSD68": (31.7, 29.25, 26.3), "Set12": (32.9, 30.5, 27.35)}
DRUNET = {"Set12": (33.25, 30.94, 27.90), "BSD68": (31.91, 29.48, 26.59),
          "CBSD68": (34.30, 31.69, 28.51), "Kodak24": (35.31, 32.89, 29.86)}
TARGET_SIGMAS = (15, 25, 50)

MEMORY_PROBE = """
import resource, sys, numpy as np, torch
sys.path.insert(0, {root!r})
from denoise_cli.engine import weights
from denoise_cli.engine.inference import Runner
from denoise_cli.engine import device
device.configure_cpu({threads})
model = weights.load_model({path!r}) if {path!r} else weights.load_shipped("unet3-color")
runner = Runner(model, torch.device({device!r}), {precision!r}, tile={tile}, ensemble={ensemble})
image = np.random.default_rng(0).random((1, 2048, 2048, 3), dtype=np.float32)


def peak_kib():
    # VmHWM is this process's own peak; ru_maxrss also counts the parent's resident memory at the
    # fork, which is large once the benchmark has run a model with malloc keeping freed memory.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


before = peak_kib()
runner(image, 25 / 255)
after = peak_kib()
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
print(before * 1024, after * 1024, cuda)
"""


class FFDNetShape(torch.nn.Module):
    """FFDNet's architecture with random weights, only to time it on the same machine: pixel
    unshuffle to half resolution plus a noise map, a plain conv/ReLU stack (colour 12 layers of
    96 channels, gray 15 of 64), pixel shuffle back."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        depth, width = (12, 96) if channels == 3 else (15, 64)
        # In-place activations, as in the authors' and KAIR's implementations.
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(4 * channels + 1, width, 3, padding=1),
                                         torch.nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(inplace=True)]
        layers.append(torch.nn.Conv2d(width, 4 * channels, 3, padding=1))
        self.body = torch.nn.Sequential(*layers)
        self.config = SimpleNamespace(channels=channels)  # what Runner reads
        self.receptive_radius = 2 * depth + 2
        self.size_multiple = 2

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        half = torch.nn.functional.pixel_unshuffle(x, 2)
        level = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *half.shape[2:])
        return torch.nn.functional.pixel_shuffle(self.body(torch.cat([half, level], 1)), 2)


def load_model(channels: int, path: str | None):
    if path:
        return weight_files.load_model(Path(path))
    return weight_files.load_shipped("unet3-gray" if channels == 1 else "unet3-color")


def quality(runner: Runner, folder: Path, sigmas: list[int], limit: int | None) -> dict[int, dict]:
    paths = sorted(folder.glob("*.png"))[:limit]
    results = {}
    for sigma in sigmas:
        scores = []
        for index, path in enumerate(paths):
            clean = read_image(path).color
            noisy = protocol_noisy(clean.astype(np.float64), sigma, index)
            out = runner(noisy[None], sigma / 255.0)[0]
            scores.append(compare(out, clean, "8"))
        results[sigma] = {"psnr": float(np.mean([s["psnr"] for s in scores])),
                          "ssim": float(np.mean([s["ssim"] for s in scores])), "images": len(scores)}
    return results


def speeds(runners: dict[str, Runner], size: int = 1024, rounds: int = 5) -> dict[str, float]:
    """Megapixels/s of each named runner on a ``size``-square image of its model's channels, the
    median of ``rounds`` timings after a warm-up.  The runners take turns within each round, so a
    slow moment of a shared machine falls on all of them rather than on one.  A model that
    estimates the noise level itself is timed with its estimate, as ``dncli denoise -s auto``
    runs it."""
    images = {name: np.random.default_rng(0).random((1, size, size, runner.model.config.channels), dtype=np.float32)
              for name, runner in runners.items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds + 1):
        for name, runner in runners.items():
            if runner.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            own = getattr(runner.model, "estimates_sigma", False)
            runner(images[name], runner.own_sigma(images[name]) if own else 25 / 255.0)
            if runner.device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: size * size / 1e6 / float(np.median(t)) for name, t in times.items()}


def memory(path: str | None, device: str, threads: int, tile: int | None, ensemble: bool = False,
           runs: int = 3, precision: str = "fp32") -> dict[str, float]:
    """The largest peak of ``runs`` fresh processes: on 2 CPU threads one run's peak varies by up to
    25 % (1.6-2.05 GB for the colour model), and the largest is what a user has to provide."""
    code = MEMORY_PROBE.format(root=str(ROOT), path=path or "", device=device, threads=threads, tile=tile,
                               precision=precision,
                               ensemble=ensemble)
    probes = [tuple(map(int, subprocess.check_output([sys.executable, "-c", code], text=True).split()))
              for _ in range(runs)]
    before, after, cuda = max(probes, key=lambda probe: probe[1])
    return {"peak_rss_mb": after / 2**20, "increase_mb": (after - before) / 2**20, "cuda_peak_mb": cuda / 2**20,
            "peak_rss_mb_per_run": [probe[1] / 2**20 for probe in probes]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "testsets")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--weights-color")
    parser.add_argument("--weights-gray")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--limit", type=int, help="images per set (quick runs)")
    parser.add_argument("--ensemble", action="store_true", help="our models as 'dncli denoise --ensemble' runs them")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    devices.configure_cpu(args.threads)
    device = torch.device(args.device)
    sigmas = [int(s) for s in args.sigmas.split(",")]
    paths = {1: args.weights_gray, 3: args.weights_color}
    runners = {c: Runner(load_model(c, paths[c]), device, args.precision, ensemble=args.ensemble) for c in (1, 3)}
    results: dict = {"protocol": "P1", "device": str(device), "threads": args.threads,
                     "precision": args.precision, "ensemble": args.ensemble, "sets": {}, "models": {}}
    ours = " (self-ensemble x8)" if args.ensemble else ""

    print(f"## P1 denoising quality (PSNR dB / SSIM), device {device}, {args.precision}{ours}\n")
    print("| set | sigma | ours PSNR | ours SSIM | target | DRUNet | images |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        folder = args.data / name
        if not folder.is_dir():
            print(f"| {name} | - | skipped: {folder} not found | | | | |")
            continue
        scores = quality(runners[SETS[name]], folder, sigmas, args.limit)
        results["sets"][name] = scores
        for sigma, row in scores.items():
            col = TARGET_SIGMAS.index(sigma) if sigma in TARGET_SIGMAS else None
            target = f"{TARGETS[name][col]:.2f}" if col is not None else "-"
            best = f"{DRUNET[name][col]:.2f}" if col is not None else "-"
            print(f"| {name} | {sigma} | {row['psnr']:.2f} | {row['ssim']:.4f} | {target} | {best} | {row['images']} |",
                  flush=True)

    print(f"\n## Speed and cost (device {device}, {args.threads} CPU threads, {args.precision})\n")
    print("| model | params | MAC/pixel | megapixels/s (1 Mpx) | peak RSS 4 Mpx (MB, max of 3 runs) | above loaded model (MB) |")
    print("|---|---|---|---|---|---|")
    timed = {("unet3-gray" if channels == 1 else "unet3-color") + ours: runner for channels, runner in runners.items()}
    for channels in (1, 3):
        name = f"FFDNet shape ({'gray' if channels == 1 else 'colour'}, timing only)"
        timed[name] = Runner(FFDNetShape(channels).eval(), device, args.precision)
    rates = speeds(timed)
    for name, runner in timed.items():
        model = runner.model
        row = {"parameters": parameter_count(model),
               "macs_per_pixel": macs_per_pixel(copy.deepcopy(model).cpu(), model.config.channels)
               * (8 if runner.ensemble else 1),
               "megapixels_per_s": rates[name]}
        measured = not args.no_memory and runner is runners[3]
        mem = memory(paths[3], args.device, args.threads, None, args.ensemble, precision=args.precision) \
            if measured else {}
        row.update(mem)
        results["models"][name] = row
        peak = f"{mem['peak_rss_mb']:.0f}" if mem else "-"
        above = f"{mem['increase_mb']:.0f}" if mem else "-"
        print(f"| {name} | {row['parameters'] / 1e6:.2f} M | {row['macs_per_pixel'] / 1e3:.0f} k | "
              f"{row['megapixels_per_s']:.3f} | {peak} | {above} |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
