"""Benchmark of `dncli deblur`: protocol P2 quality and time, and a real-boundary table.

    python benchmarks/deblur.py                                  # all of P2, HQS with the shipped unet3
    python benchmarks/deblur.py --map-weights map-gray.pt map-color.pt --json
    python benchmarks/deblur.py --limit 1 --kernels 1 --sigmas 2.55 --device cpu   # a quick check

P2 (../shared/design/BENCHMARK.md): the first 8 Kodak24 images in colour and Set12 in gray, the
8 Levin et al. kernels normalised to sum 1, circular blur (scipy.ndimage.convolve, mode='wrap'),
unclipped Gaussian noise seeded by [int(sigma * 100), image index, kernel index] (0-based), output
rounded to uint8, PSNR and SSIM as in P1 on the full image, mean over images and kernels.

Methods, all on the circular model P2 assumes:
* Wiener: the Wiener filter for an image spectrum A / |G(f)|^2 (G: the gradient's transfer
  function), i.e. x = conj(K) Y / (|K|^2 + lam |G|^2) with lam = sigma_n^2 / A, where A is fitted
  to the observation's gradient energy: mean |grad y|^2 = A sum(k^2) + 4 sigma_n^2.
* Richardson-Lucy: RL_ITERATIONS multiplicative updates with circular FFT convolutions (our
  own: scikit-image's version convolves with zero padding, which does not match a circular
  blur), started from the observation clipped to be positive.
* HQS + MMSE: `pnp.hqs` with the noise-conditional unet3 (--hqs-iters iterations, default 8
  as DPIR, on the DPIR schedule).
* ADMM + MAP: `pnp.admm` with a MAP denoiser pair (rho = 1/sigma_R^2, at most 75 iterations):
  the shipped map-gray/map-color, or the --map-weights files.

Time is the median wall time per image after one warm-up run, model loading excluded.  Cost is
the mean number of denoiser calls per image times the denoiser's MAC per pixel (the FFT data
steps are not counted: a few hundred operations per pixel).  A last table times each method on
a 1-megapixel colour photo, the size the speed goal names.

The real-boundary table blurs with reflection instead (a scene larger than the frame), keeps
the valid part of the blurred image as the observation, adds noise of the first sigma, and
compares `boundary="valid"` with the plain circular solve on the same crop: PSNR on the whole
crop and on its outer BORDER pixels, where circular solves ring.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import scipy.ndimage
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoise_cli.engine import device as devices  # noqa: E402
from denoise_cli.engine import weights as weight_files  # noqa: E402
from denoise_cli.engine.algorithms import pnp  # noqa: E402
from denoise_cli.engine.cost import macs_per_pixel  # noqa: E402
from denoise_cli.engine.inference import Runner  # noqa: E402
from denoise_cli.engine.metrics import compare  # noqa: E402
from denoise_cli.engine.physics.blur import validate_kernel  # noqa: E402
from denoise_cli.imgio.codec import read_image  # noqa: E402

SETS = {"Kodak24": (3, 8), "Set12": (1, None)}  # channels, images used (None: all)
METHODS = ("wiener", "rl", "hqs", "admm")
SIGMAS = (2.55, 7.65)
RL_ITERATIONS = 30
BORDER = 16  # pixels at each edge scored separately in the real-boundary table


def load_kernels(folder: Path) -> list[np.ndarray]:
    paths = sorted(folder.glob("levin09_k*.npy"), key=lambda p: int(p.stem.rsplit("k", 1)[1]))
    if len(paths) != 8:
        raise SystemExit(f"expected the 8 Levin kernels in {folder}, found {len(paths)}")
    return [validate_kernel(np.load(p), p.name)[0] for p in paths]


def blur_circular(image: np.ndarray, kernel: np.ndarray, mode: str = "wrap") -> np.ndarray:
    return np.stack([scipy.ndimage.convolve(image[..., c], kernel, mode=mode) for c in range(image.shape[2])], -1)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).double().cpu().numpy()


def wiener(y: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient-Tikhonov Wiener filter (module docstring); ``sigma`` on the [0, 1] scale."""
    h, w = y.shape[:2]
    x = torch.from_numpy(y).permute(2, 0, 1)
    otf = pnp.kernel_otf(kernel, (h, w), dtype=torch.float64)
    differences = (np.array([[1.0, -1.0]]), np.array([[1.0], [-1.0]]))
    dx, dy = (pnp.kernel_otf(d, (h, w), dtype=torch.float64) for d in differences)
    gradient_power = dx.abs() ** 2 + dy.abs() ** 2
    # With the spectrum S(f) = A / |G(f)|^2, Parseval gives mean |grad y|^2 = A sum(k^2) + 4 sigma^2
    # (each first difference doubles the noise variance); the Wiener weight is sigma^2 / A.
    observed = float(np.mean(np.diff(y, axis=0) ** 2) + np.mean(np.diff(y, axis=1) ** 2))
    level = max(sigma, pnp.MIN_NOISE_SIGMA)
    scale = max(observed - 4 * level**2, 1e-8) / float(np.sum(kernel**2))
    lam = level**2 / scale
    spectrum = torch.conj(otf) * torch.fft.rfft2(x) / (otf.abs() ** 2 + lam * gradient_power)
    return torch.fft.irfft2(spectrum, s=(h, w)).permute(1, 2, 0).numpy()


def richardson_lucy(y: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """RL_ITERATIONS Richardson-Lucy updates with circular convolutions (``sigma`` unused: RL
    regularises only by stopping early)."""
    h, w = y.shape[:2]
    observed = torch.from_numpy(np.clip(y, 1e-3, None)).permute(2, 0, 1)
    otf = pnp.kernel_otf(kernel, (h, w), dtype=torch.float64)
    x = observed.clone()
    for _ in range(RL_ITERATIONS):
        ratio = observed / pnp.circular_blur(x, otf).clamp_min(1e-6)
        x = x * torch.fft.irfft2(torch.conj(otf) * torch.fft.rfft2(ratio), s=(h, w))
    return x.permute(1, 2, 0).numpy()


def load_priors(paths: list[str] | None, shipped: dict[int, str] | None, device: torch.device,
                precision: str) -> dict[int, Runner]:
    """Denoisers by image channels, from files (channels read from each) or the shipped models."""
    priors = {}
    for path in paths or []:
        model = weight_files.load_model(Path(path))
        priors[model.config.channels] = Runner(model, device, precision)
    if not paths and shipped:
        for channels, name in shipped.items():
            try:
                priors[channels] = Runner(weight_files.load_shipped(name), device, precision)
            except weight_files.WeightsError as exc:
                print(f"note: {exc}", file=sys.stderr)
    return priors


class Method(NamedTuple):
    available: Callable[[int], bool]  # channels -> can it run?
    solve: Callable[..., tuple[np.ndarray, int]]  # (y, kernel, sigma, channels, boundary) -> (x, denoiser calls)
    has_boundaries: bool  # honours boundary="valid"
    denoiser_macs: Callable[[int], float]  # channels -> MAC per pixel of one denoiser call


def solvers(mmse: dict[int, Runner], map_priors: dict[int, Runner], device: torch.device, hqs_iterations: int,
            chosen: list[str]) -> dict[str, Method]:
    """Display name -> :class:`Method` for the methods of METHODS in ``chosen``."""
    def hqs(y, kernel, sigma, channels, boundary):
        result = pnp.hqs(to_tensor(y, device), kernel, mmse[channels].apply, sigma, iterations=hqs_iterations,
                         boundary=boundary)
        return to_image(result.image), result.iterations

    def admm(y, kernel, sigma, channels, boundary):
        prior = map_priors[channels]
        result = pnp.admm(to_tensor(y, device), kernel, prior.apply, sigma, prior.model.rho, boundary=boundary)
        return to_image(result.image), result.iterations

    def cost(priors: dict[int, Runner]) -> Callable[[int], float]:
        return lambda channels: macs_per_pixel(priors[channels].model, channels)

    every = {
        "wiener": ("Wiener", Method(lambda c: True, lambda y, k, s, c, b: (wiener(y, k, s), 0), False,
                                    lambda c: 0.0)),
        "rl": ("Richardson-Lucy", Method(lambda c: True, lambda y, k, s, c, b: (richardson_lucy(y, k, s), 0), False,
                                         lambda c: 0.0)),
        "hqs": (f"HQS + MMSE (unet3, {hqs_iterations} iterations)",
                Method(lambda c: c in mmse, hqs, True, cost(mmse))),
        "admm": ("ADMM + MAP", Method(lambda c: c in map_priors, admm, True, cost(map_priors))),
    }
    return dict(every[key] for key in METHODS if key in chosen)


def timed(solve, *args) -> tuple[tuple[np.ndarray, int], float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = solve(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def protocol_p2(images: list[np.ndarray], kernels: list[tuple[int, np.ndarray]], sigmas: list[float],
                channels: int, methods: dict[str, Method]) -> dict:
    results: dict = {}
    for sigma in sigmas:
        for name, (available, solve, _, denoiser_macs) in methods.items():
            if not available(channels):
                continue
            scores, times, calls, pixels = [], [], [], []
            for index, clean in enumerate(images):
                for k, kernel in kernels:
                    rng = np.random.default_rng([int(sigma * 100), index, k])
                    noisy = blur_circular(clean, kernel) + rng.standard_normal(clean.shape) * sigma / 255
                    if not times:  # warm-up: first calls pay for allocation and kernel selection
                        solve(noisy, kernel, sigma / 255, channels, "circular")
                    (out, iterations), seconds = timed(solve, noisy, kernel, sigma / 255, channels, "circular")
                    scores.append(compare(out, clean, "8"))
                    times.append(seconds)
                    pixels.append(clean.shape[0] * clean.shape[1])
                    calls.append(iterations)
            results.setdefault(str(sigma), {})[name] = {
                "psnr": float(np.mean([s["psnr"] for s in scores])),
                "ssim": float(np.mean([s["ssim"] for s in scores])),
                "seconds_per_image": float(np.median(times)),
                # Set12 mixes 256- and 512-pixel images: the median of each run's own rate
                "megapixels_per_s": float(np.median(np.array(pixels) / 1e6 / np.array(times))), "runs": len(scores),
                "denoiser_calls": float(np.mean(calls)),
                "macs_per_pixel": float(np.mean(calls)) * denoiser_macs(channels)}
    return results


def real_boundary(images: list[np.ndarray], kernels: list[tuple[int, np.ndarray]], sigma: float, channels: int,
                  methods: dict[str, Method]) -> dict:
    results: dict = {}
    for name, (available, solve, has_boundaries, _) in methods.items():
        if not (available(channels) and has_boundaries):
            continue
        for boundary in ("valid", "circular"):
            whole, border = [], []
            for index, clean in enumerate(images):
                for k, kernel in kernels:
                    kh, kw = kernel.shape
                    rows = slice(kh - 1 - kh // 2, clean.shape[0] - kh // 2)
                    cols = slice(kw - 1 - kw // 2, clean.shape[1] - kw // 2)
                    observed = blur_circular(clean, kernel, "reflect")[rows, cols]
                    truth = clean[rows, cols]
                    rng = np.random.default_rng([int(sigma * 100), index, k, 1])
                    observed = observed + rng.standard_normal(observed.shape) * sigma / 255
                    out, _ = solve(observed, kernel, sigma / 255, channels, boundary)
                    mask = np.ones(truth.shape[:2], bool)
                    mask[BORDER:-BORDER, BORDER:-BORDER] = False
                    whole.append(compare(out, truth, "8")["psnr"])
                    border.append(_psnr_uint8(out[mask], truth[mask]))
            results.setdefault(name, {})[boundary] = {"psnr": float(np.mean(whole)),
                                                      "psnr_border": float(np.mean(border)), "runs": len(whole)}
    return results


def megapixel_seconds(image: np.ndarray, kernel: np.ndarray, sigma: float, channels: int,
                      methods: dict[str, Method]) -> dict[str, float]:
    """Seconds per method to deblur a 1024x1024 photo as `dncli deblur` does (valid boundary):
    ``image`` mirrored to that size, blurred with reflection, noise ``sigma`` (0..255); the
    median of three timed runs after a warm-up run (one run for a method slower than a minute)."""
    rows, cols = (max(0, 1024 - n) for n in image.shape[:2])
    scene = np.pad(image, ((0, rows), (0, cols), (0, 0)), mode="symmetric")[:1024, :1024]
    observed = blur_circular(scene, kernel, "reflect")
    observed = observed + np.random.default_rng(0).standard_normal(observed.shape) * sigma / 255
    seconds = {}
    for name, (available, solve, has_boundaries, _) in methods.items():
        if available(channels):
            boundary = "valid" if has_boundaries else "circular"
            solve(observed, kernel, sigma / 255, channels, boundary)
            times: list[float] = []
            while len(times) < 3 and sum(times) < 60:
                times.append(timed(solve, observed, kernel, sigma / 255, channels, boundary)[1])
            seconds[name] = float(np.median(times))
    return seconds


def _psnr_uint8(estimate: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of P1 (estimate rounded to uint8) over a set of pixels rather than a whole image."""
    a = np.clip(np.rint(estimate * 255), 0, 255)
    b = np.clip(np.rint(reference * 255), 0, 255)
    return float(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "testsets")
    parser.add_argument("--kernel-dir", type=Path, default=ROOT.parent / "shared" / "data" / "kernels" / "levin09")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--sigmas", default=",".join(map(str, SIGMAS)), help="noise levels, 0..255 scale")
    parser.add_argument("--kernels", help="comma-separated kernel numbers 1..8 [default: all]")
    parser.add_argument("--limit", type=int, help="images per set (quick runs)")
    parser.add_argument("--mmse-weights", nargs="+", help="unet3 weights files [default: the shipped models]")
    parser.add_argument("--map-weights", nargs="+",
                        help="map-denoiser weights files (gray and/or colour) [default: the shipped pairs]")
    parser.add_argument("--methods", default=",".join(METHODS), help="a subset of " + ",".join(METHODS))
    parser.add_argument("--hqs-iters", type=int, default=8, help="HQS schedule length [default: 8, as DPIR]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--no-real", action="store_true", help="skip the real-boundary table")
    parser.add_argument("--no-megapixel", action="store_true", help="skip the 1-megapixel colour timing")
    parser.add_argument("--json", type=Path, nargs="?", const=ROOT / "benchmarks" / "results" / "deblur_p2.json",
                        help="also write the results as JSON [default path: benchmarks/results/deblur_p2.json]")
    args = parser.parse_args()
    devices.configure_cpu(args.threads)
    device = torch.device(args.device)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    all_kernels = load_kernels(args.kernel_dir)
    numbers = [int(n) for n in args.kernels.split(",")] if args.kernels else list(range(1, 9))
    kernels = [(n - 1, all_kernels[n - 1]) for n in numbers]
    mmse = load_priors(args.mmse_weights, {1: "unet3-gray", 3: "unet3-color"}, device, args.precision)
    chosen = args.methods.split(",")
    if not set(chosen) <= set(METHODS):
        raise SystemExit(f"--methods: choose from {','.join(METHODS)}")
    map_priors = load_priors(args.map_weights, {1: "map-gray", 3: "map-color"}, device, args.precision) \
        if "admm" in chosen else {}
    methods = solvers(mmse, map_priors, device, args.hqs_iters, chosen)
    results: dict = {"protocol": "P2", "device": str(device), "threads": args.threads, "precision": args.precision,
                     "kernels": numbers, "sets": {}, "real_boundary": {}, "megapixel_seconds": {}}

    print(f"## P2 non-blind deblurring (PSNR dB / SSIM), kernels {','.join(map(str, numbers))}, "
          f"device {device}, {args.threads} CPU threads, {args.precision}\n")
    print("| set | sigma | method | PSNR | SSIM | s/image | Mpx/s | denoiser calls | M MAC/pixel | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    loaded: dict[str, tuple[int, list[np.ndarray]]] = {}
    for name in args.sets.split(","):
        channels, count = SETS[name]
        folder = args.data / name
        if not folder.is_dir():
            print(f"| {name} | - | skipped: {folder} not found | | | | | |")
            continue
        paths = sorted(folder.glob("*.png"))[:count][: args.limit]
        images = [read_image(p).color.astype(np.float64) for p in paths]
        images = [np.round(im * 255) / 255 for im in images]  # exactly the uint8 values, as P1 says
        loaded[name] = (channels, images)
        scores = protocol_p2(images, kernels, sigmas, channels, methods)
        results["sets"][name] = scores
        for sigma, rows in scores.items():
            for method, row in rows.items():
                print(f"| {name} | {sigma} | {method} | {row['psnr']:.2f} | {row['ssim']:.4f} | "
                      f"{row['seconds_per_image']:.3f} | {row['megapixels_per_s']:.3f} | "
                      f"{row['denoiser_calls']:.1f} | {row['macs_per_pixel'] / 1e6:.2f} | {row['runs']} |", flush=True)
    if "hqs" in chosen and not mmse:
        print("\nHQS + MMSE skipped: no unet3 weights (give --mmse-weights or install the shipped models).")
    if "admm" in chosen and not map_priors:
        print("ADMM + MAP skipped: no MAP denoiser weights (give --map-weights; train with 'dncli map-train').")

    if not args.no_real and (mmse or map_priors):
        print(f"\n## P2 images, real (non-circular) blur: reflect-blurred, valid part kept, sigma {sigmas[0]}; "
              f"PSNR on the whole crop / on its outer {BORDER} px\n")
        print("| set | method | valid boundary | circular | runs |")
        print("|---|---|---|---|---|")
        for name, (channels, images) in loaded.items():
            table = real_boundary(images, kernels, sigmas[0], channels, methods)
            results["real_boundary"][name] = table
            for method, row in table.items():
                print(f"| {name} | {method} | {row['valid']['psnr']:.2f} / {row['valid']['psnr_border']:.2f} | "
                      f"{row['circular']['psnr']:.2f} / {row['circular']['psnr_border']:.2f} | "
                      f"{row['valid']['runs']} |", flush=True)
    if not args.no_megapixel and "Kodak24" in loaded:
        sigma = sigmas[0]
        print(f"\n## Time to deblur a 1-megapixel colour photo (1024x1024, first P2 image mirrored, "
              f"kernel {numbers[0]}, sigma {sigma}, valid boundary), device {device}, {args.threads} CPU threads, "
              f"{args.precision}\n")
        print("| method | seconds |")
        print("|---|---|")
        image = loaded["Kodak24"][1][0]
        results["megapixel_seconds"] = megapixel_seconds(image, kernels[0][1], sigma, 3, methods)
        for method, seconds in results["megapixel_seconds"].items():
            print(f"| {method} | {seconds:.2f} |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
