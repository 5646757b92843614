"""Accuracy and speed of the blind noise-level estimate behind `dncli denoise -s auto`.

    python benchmarks/noise_estimate.py                   # all sets, sigma 5/15/25/50/75
    python benchmarks/noise_estimate.py --limit 4 --sets Kodak24
    python benchmarks/noise_estimate.py --clip            # noisy images rounded to 8-bit files

Noise follows protocol P1 (../shared/design/BENCHMARK.md): clean = png / 255, plus Gaussian noise
seeded by [int(sigma), index of the image in sorted order], not clipped.  With --clip the noisy
image is then clipped to [0, 1] and rounded to 8 bits, as a real noisy file would be, to show the
bias that clipping brings.  Prints a markdown table per set and sigma: mean estimate, mean and
largest absolute error (0..255 units), and the mean time per image.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoise_cli.engine.metrics import quantize_uint8  # noqa: E402
from denoise_cli.engine.noise_estimate import estimate_sigma  # noqa: E402
from denoise_cli.engine.physics.noise import protocol_noisy  # noqa: E402
from denoise_cli.imgio.codec import read_image  # noqa: E402

SETS = ("Set12", "BSD68", "CBSD68", "Kodak24")


def measure(folder: Path, sigma: int, limit: int | None, clip: bool) -> dict[str, float]:
    """Estimates for every image of ``folder`` at one noise level, summarised."""
    estimates, seconds = [], 0.0
    for index, path in enumerate(sorted(folder.glob("*.png"))[:limit]):
        clean = read_image(path).color.astype(np.float64)
        noisy = protocol_noisy(clean, sigma, index)
        if clip:
            noisy = quantize_uint8(noisy) / 255.0
        start = time.perf_counter()
        estimates.append(estimate_sigma(noisy))
        seconds += time.perf_counter() - start
    errors = np.abs(np.asarray(estimates) - sigma)
    return {"images": len(estimates), "mean": float(np.mean(estimates)), "mae": float(errors.mean()),
            "max": float(errors.max()), "ms": 1000.0 * seconds / len(estimates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "testsets",
                        help="folder holding one folder of PNG files per test set")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated test sets")
    parser.add_argument("--sigmas", default="5,15,25,50,75", help="comma-separated noise levels, 0..255 scale")
    parser.add_argument("--limit", type=int, help="images per set (quick runs)")
    parser.add_argument("--clip", action="store_true", help="clip and round the noisy images to 8 bits")
    args = parser.parse_args()
    sigmas = [int(s) for s in args.sigmas.split(",")]

    print(f"Noise-level estimate, P1 noise, {'8-bit clipped' if args.clip else 'unclipped float'} noisy input\n")
    print("| set | sigma | images | mean estimate | mean abs error | max abs error | ms / image |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.sets.split(","):
        folder = args.data / name
        if not any(folder.glob("*.png")):
            print(f"skipping {name}: no PNG files in {folder}", file=sys.stderr)
            continue
        for sigma in sigmas:
            r = measure(folder, sigma, args.limit, args.clip)
            print(f"| {name} | {sigma} | {r['images']} | {r['mean']:.2f} | {r['mae']:.2f} | {r['max']:.2f} "
                  f"| {r['ms']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
