"""Benchmark of the blind-spot denoiser (`dncli blindspot-train`): P1 quality, speed and cost.

    python benchmarks/blindspot.py --weights-gray bs-gray.pt --weights-color bs-color.pt
    python benchmarks/blindspot.py --weights-color bs-color.pt --sets Kodak24 --limit 4
    python benchmarks/blindspot.py --fit-steps 2000 --sets Set12      # self-supervised on the test inputs
    python benchmarks/blindspot.py --weights-color bs-s25.pt bs-5-50.pt --sweep 5,10,15,20,25,30,40,50
    python benchmarks/blindspot.py ... --json benchmarks/results/blindspot.json
    python benchmarks/blindspot.py --weights-color bs-s25.pt --ensemble   # as 'dncli denoise --ensemble' runs

Quality follows protocol P1 of ../shared/design/BENCHMARK.md: clean = png / 255, Gaussian noise
seeded by [int(sigma), index in sorted order], not clipped; outputs rounded to uint8; PSNR over
all pixels and channels, skimage-style SSIM, mean over the set.  Each model is scored twice:
the posterior mean (the network's prediction combined with the noisy pixel, Laine et al.) and
the blind-spot mean alone.  A model that learned the noise level is given no sigma: it uses
its own estimate, whose mean is reported.

Models are loaded from --weights-gray/--weights-color, or, with --fit-steps, trained here on
each set's own noisy inputs (self-supervised: the trainer never sees the clean images, which
only score the result), which is how a blind-spot network is used on a single noisy batch.
--sweep draws the comparison of Honzatko et al.'s Figure 2: posterior PSNR on --sweep-set against
the test sigma for every given model of its channels, with sigma known and not known at inference
(then the model's own estimate, or for a known-sigma model the estimate of ``dncli denoise -s
auto``), beside the supervised model at the known sigma; a table, and a PNG (``line_chart.py``).
Speed is the median wall time on a random image of --speed-size pixels a side after a warm-up,
as megapixels per second with the device and thread count (with --ensemble, of the ensembled
posterior: 8 passes); cost is multiply-accumulates per pixel counted from the layer shapes, and
parameters.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from denoise import speeds  # noqa: E402  (the P1 timing of benchmarks/denoise.py)
from line_chart import PALETTE_NAMES, Series, line_chart  # noqa: E402

from denoise_cli.engine import device as devices  # noqa: E402
from denoise_cli.engine import registry  # noqa: E402
from denoise_cli.engine import weights as weight_files  # noqa: E402
from denoise_cli.engine.cost import macs_per_pixel, parameter_count  # noqa: E402
from denoise_cli.engine.inference import Runner  # noqa: E402
from denoise_cli.engine.metrics import compare  # noqa: E402
from denoise_cli.engine.models.blindspot import BlindSpotConfig  # noqa: E402
from denoise_cli.engine.physics.noise import protocol_noisy  # noqa: E402
from denoise_cli.engine.training.blindspot import BlindSpotTraining  # noqa: E402
from denoise_cli.engine.training.data import PatchSampler  # noqa: E402
from denoise_cli.engine.training.trainer import TrainConfig, train  # noqa: E402
from denoise_cli.engine.noise_estimate import estimate_sigma  # noqa: E402
from denoise_cli.imgio.codec import Image, read_image, write_image  # noqa: E402

SETS = {"Set12": 1, "BSD68": 1, "CBSD68": 3, "Kodak24": 3}
# Supervised reference at sigma 25 (FFDNet, BENCHMARK.md's published figures, P1).
FFDNET_25 = {"Set12": 30.43, "BSD68": 29.19, "CBSD68": 31.21, "Kodak24": 32.13}
# Laine et al.'s four-rotation blind-spot U-Net on RGB, multiply-accumulates per pixel (the issue's figure).
LAINE_MACS = 1.25e6
# Widths for quick CPU checks of the script with --fit-steps (not for reporting).
TINY = {"trunk_depth": 4, "trunk_width": 16, "branch_width": 8, "head_widths": (32, 16)}


class BlindSpotMean(torch.nn.Module):
    """The blind-spot mean of a model, with the attributes the engine's Runner reads."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.config = model.config
        self.receptive_radius = model.receptive_radius
        self.size_multiple = model.size_multiple

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.inner(x, sigma, posterior=False)


def load_set(folder: Path, sigma: int, limit: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(clean, noisy)`` float pairs of protocol P1 for the first ``limit`` images."""
    pairs = []
    for index, path in enumerate(sorted(folder.glob("*.png"))[:limit]):
        clean = read_image(path).color
        pairs.append((clean, protocol_noisy(clean.astype(np.float64), sigma, index)))
    return pairs


def fit(pairs: list[tuple[np.ndarray, np.ndarray]], channels: int, args: argparse.Namespace,
        device: torch.device) -> torch.nn.Module:
    """A model trained on the noisy halves of ``pairs`` only, for ``args.fit_steps`` steps."""
    options = {"channels": channels, "noise": args.fit_mode, **(TINY if args.tiny else {})}
    torch.manual_seed(args.seed)
    model = registry.build("blindspot", BlindSpotConfig.preset(args.arch, **options).to_dict())
    sigma = float(args.sigmas[0]) if args.fit_mode == "known" else None
    patch = min(args.fit_patch, *(min(noisy.shape[:2]) for _, noisy in pairs))
    task = BlindSpotTraining(PatchSampler([noisy for _, noisy in pairs], patch), sigma)
    config = TrainConfig(max_steps=args.fit_steps, batch_size=args.fit_batch, learning_rate=3e-4,
                         warmup_steps=min(200, args.fit_steps // 10), validate_every=0, seed=args.seed,
                         checkpoint_every=float("inf"))
    with tempfile.TemporaryDirectory() as scratch:
        train(model, task, config, Path(scratch) / "fit.pt", {}, device)
    return model.eval()


def noise_levels(model: torch.nn.Module, runner: Runner, pairs: list[tuple[np.ndarray, np.ndarray]],
                 sigma: int | None) -> list[float]:
    """The level (0..1 scale) each noisy image is denoised with: ``sigma`` when it is known,
    else the model's own estimate, or for a model that has none the estimate of ``-s auto``."""
    if sigma is not None:
        return [sigma / 255.0] * len(pairs)
    if model.estimates_sigma:
        return [float(runner.own_sigma(noisy[None])[0]) for _, noisy in pairs]
    return [estimate_sigma(noisy) / 255.0 for _, noisy in pairs]


def scores(runner: Runner, pairs: list[tuple[np.ndarray, np.ndarray]], levels: list[float]) -> tuple[float, float]:
    """Mean PSNR and SSIM of ``runner``'s outputs, rounded to 8 bits, against the clean images."""
    results = [compare(runner(noisy[None], level)[0], clean, "8") for (clean, noisy), level in zip(pairs, levels)]
    return float(np.mean([r["psnr"] for r in results])), float(np.mean([r["ssim"] for r in results]))


def quality(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]], sigma: int,
            device: torch.device, precision: str, ensemble: bool = False) -> dict:
    """Mean PSNR/SSIM of the posterior mean (self-ensembled with ``ensemble``) and of the plain
    blind-spot mean over ``pairs``; a model that learned the noise level uses its own estimate
    (reported as ``sigma_est``)."""
    posterior = Runner(model, device, precision, ensemble=ensemble)
    levels = noise_levels(model, posterior, pairs, None if model.estimates_sigma else sigma)
    summary = {"images": len(pairs)}
    if model.estimates_sigma:
        summary["sigma_est"] = float(np.mean(levels)) * 255.0
    summary["psnr"], summary["ssim"] = scores(posterior, pairs, levels)
    summary["psnr_mean"], summary["ssim_mean"] = scores(Runner(BlindSpotMean(model), device, precision), pairs,
                                                        levels)
    return summary


def sweep(models: dict[str, torch.nn.Module], supervised: tuple[str, torch.nn.Module], folder: Path,
          sigmas: list[int], limit: int | None, device: torch.device, precision: str, ensemble: bool = False
          ) -> tuple[dict[str, list[float]], int]:
    """Posterior PSNR against the test sigma: every blind-spot model with sigma known and not
    known at inference, and the supervised model with sigma known (Honzatko et al.'s Figure 2),
    all self-ensembled with ``ensemble``; returns the curves and the number of images."""
    runners = {label: Runner(model, device, precision, ensemble=ensemble) for label, model in models.items()}
    name, network = supervised
    reference = Runner(network, device, precision, ensemble=ensemble)
    curves: dict[str, list[float]] = {}
    for sigma in sigmas:
        pairs = load_set(folder, sigma, limit)
        for label, model in models.items():
            for known in (True, False):
                key = f"{label}, sigma {'known' if known else 'unknown'}"
                levels = noise_levels(model, runners[label], pairs, sigma if known else None)
                curves.setdefault(key, []).append(scores(runners[label], pairs, levels)[0])
        curves.setdefault(f"{name} (supervised), sigma known", []).append(
            scores(reference, pairs, [sigma / 255.0] * len(pairs))[0])
        print(f"sweep: sigma {sigma} done", file=sys.stderr, flush=True)
    return curves, len(pairs)


def sweep_report(curves: dict[str, list[float]], sigmas: list[int], set_name: str, images: int,
                 plot: Path) -> None:
    """The sweep as a table and a PNG; one colour per model, dashed where sigma was not known."""
    print(f"\n## Posterior PSNR (dB) against the test sigma, P1 noise, {set_name} ({images} images)\n")
    print("| model | " + " | ".join(str(s) for s in sigmas) + " |")
    print("|---|" + "---|" * len(sigmas))
    for key, values in curves.items():
        print(f"| {key} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    models = list(dict.fromkeys(key.rsplit(", sigma", 1)[0] for key in curves))
    series = [Series(np.array(sigmas), np.array(values), models.index(key.rsplit(", sigma", 1)[0]),
                     dashed=key.endswith("unknown")) for key, values in curves.items()]
    plot.parent.mkdir(parents=True, exist_ok=True)
    write_image(Image(line_chart(series, [float(s) for s in sigmas])), plot)
    legend = "; ".join(f"{PALETTE_NAMES[i % len(PALETTE_NAMES)]}: {m}" for i, m in enumerate(models))
    print(f"\nPlot {plot}: x test sigma, y PSNR (dB); {legend}; solid sigma known, dashed sigma unknown.")


def cost(model: torch.nn.Module, device: torch.device, precision: str, size: int, ensemble: bool = False) -> dict:
    """Parameters, MAC per pixel (network; plus the noise estimator where there is one) and speed."""
    channels = model.config.channels
    row = {"parameters": parameter_count(model),
           "macs_per_pixel": macs_per_pixel(model.cpu(), channels) * (8 if ensemble else 1)}
    if model.noise_net is not None:  # 'same' convolutions: in * out * taps per pixel each
        row["noise_macs_per_pixel"] = float(sum(m.weight[0].numel() * m.out_channels
                                                 for m in model.noise_net if isinstance(m, torch.nn.Conv2d)))
    row["megapixels_per_s"] = speeds({"model": Runner(model, device, precision, ensemble=ensemble)},
                                     size=size)["model"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "testsets")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--sigmas", default="25", help="P1 noise levels (0..255), comma-separated")
    parser.add_argument("--weights-gray", nargs="+", default=[], help="blind-spot weights for Set12 and BSD68")
    parser.add_argument("--weights-color", nargs="+", default=[], help="blind-spot weights for CBSD68 and Kodak24")
    parser.add_argument("--fit-steps", type=int, default=0, help="train on each set's noisy inputs instead")
    parser.add_argument("--fit-mode", default="known", choices=("known", "global", "per-image"))
    parser.add_argument("--fit-patch", type=int, default=128)
    parser.add_argument("--fit-batch", type=int, default=8)
    parser.add_argument("--arch", default="figure", choices=("figure", "code"))
    parser.add_argument("--tiny", action="store_true", help="tiny widths: only to check the script quickly")
    parser.add_argument("--sweep", help="test sigmas of the PSNR-against-sigma table and plot, e.g. 5,10,...,50")
    parser.add_argument("--sweep-set", default="Kodak24", help="set of the sweep (its channels pick the weights)")
    parser.add_argument("--sweep-limit", type=int, help="images of the sweep set [default: --limit]")
    parser.add_argument("--supervised", help="supervised model beside the sweep: shipped name or weights file "
                                             "[default: unet3-color or unet3-gray]")
    parser.add_argument("--plot", type=Path, help="PNG of the sweep [default: beside --json, else ./]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--ensemble", action="store_true",
                        help="posteriors as 'dncli denoise --ensemble' gives them (8 flips and quarter turns)")
    parser.add_argument("--limit", type=int, help="images per set (quick runs)")
    parser.add_argument("--speed-size", type=int, default=1024, help="side of the timed image (pixels)")
    parser.add_argument("--json", type=Path, help="also write the results here, e.g. benchmarks/results/")
    args = parser.parse_args()
    devices.configure_cpu(args.threads)
    device = torch.device(args.device)
    args.sigmas = [int(s) for s in args.sigmas.split(",")]
    paths = {1: args.weights_gray, 3: args.weights_color}
    if not args.fit_steps and not any(paths.values()):
        parser.error("give --weights-gray and/or --weights-color, or --fit-steps")
    if args.sweep and args.fit_steps:
        parser.error("--sweep scores shipped or trained weights, not --fit-steps")
    results: dict = {"protocol": "P1", "device": str(device), "threads": args.threads, "precision": args.precision,
                     "ensemble": args.ensemble,
                     "weights": {"gray": paths[1], "color": paths[3]}, "fit_steps": args.fit_steps, "sets": {}, "models": {}}

    ensembled = ", posterior self-ensemble x8" if args.ensemble else ""
    print(f"## P1 blind-spot denoising (PSNR dB / SSIM), device {device}, {args.threads} threads, "
          f"{args.precision}{ensembled}\n")
    print("| set | sigma | model | posterior PSNR | SSIM | blind-spot mean PSNR | SSIM | sigma estimate | "
          "FFDNet (supervised) | images |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    loaded = {c: {Path(p).name: weight_files.load_model(Path(p)) for p in files} for c, files in paths.items()}
    timed: dict[str, torch.nn.Module] = {}
    for name in args.sets.split(","):
        channels, folder = SETS[name], args.data / name
        if not folder.is_dir():
            print(f"| {name} | - | skipped: {folder} not found | | | | | | | |")
            continue
        for sigma in args.sigmas:
            pairs = load_set(folder, sigma, args.limit)
            if args.fit_steps:
                models = {f"fit {args.fit_steps} steps on the set": fit(pairs, channels, args, device)}
            else:
                models = loaded[channels]
            if not models:
                print(f"| {name} | {sigma} | skipped: no {'gray' if channels == 1 else 'colour'} weights | "
                      "| | | | | | |")
            for label, model in models.items():
                timed.setdefault(f"{'gray' if channels == 1 else 'colour'}: {label}", model)
                row = quality(model, pairs, sigma, device, args.precision, args.ensemble)
                results["sets"].setdefault(name, {}).setdefault(label, {})[sigma] = row
                estimate = f"{row['sigma_est']:.2f}" if "sigma_est" in row else "given"
                reference = f"{FFDNET_25[name]:.2f}" if sigma == 25 else "-"
                print(f"| {name} | {sigma} | {label} | {row['psnr']:.2f} | {row['ssim']:.4f} | "
                      f"{row['psnr_mean']:.2f} | {row['ssim_mean']:.4f} | {estimate} | {reference} | "
                      f"{row['images']} |", flush=True)

    folder = args.data / args.sweep_set
    if args.sweep and folder.is_dir() and loaded[SETS[args.sweep_set]]:
        channels = SETS[args.sweep_set]
        sigmas = [int(s) for s in args.sweep.split(",")]
        supervised_name = args.supervised or ("unet3-gray" if channels == 1 else "unet3-color")
        supervised = weight_files.load_model(weight_files.resolve(supervised_name))
        limit = args.sweep_limit or args.limit
        curves, images = sweep(loaded[channels], (Path(supervised_name).stem, supervised), folder, sigmas, limit,
                               device, args.precision, args.ensemble)
        plot = args.plot or (args.json.parent if args.json else Path(".")) / "blindspot_sweep.png"
        sweep_report(curves, sigmas, args.sweep_set, images, plot)
        results["sweep"] = {"set": args.sweep_set, "images": images, "sigmas": sigmas, "psnr": curves,
                            "plot": str(plot)}

    print(f"\n## Speed and cost (device {device}, {args.threads} CPU threads, {args.precision}, "
          f"{args.speed_size}x{args.speed_size} image{ensembled})\n")
    print("| model | params | MAC/pixel | noise estimator MAC/pixel | megapixels/s |")
    print("|---|---|---|---|---|")
    for label, model in timed.items():
        row = cost(model, device, args.precision, args.speed_size, args.ensemble)
        results["models"][label] = row
        noise = f"{row['noise_macs_per_pixel'] / 1e3:.1f} k" if "noise_macs_per_pixel" in row else "-"
        print(f"| {label} | {row['parameters'] / 1e6:.2f} M | {row['macs_per_pixel'] / 1e3:.0f} k | {noise} | "
              f"{row['megapixels_per_s']:.3f} |", flush=True)
    print(f"\nFor scale: Laine et al.'s blind-spot network costs about {LAINE_MACS / 1e6:.2f} M MAC per pixel "
          "(RGB); the cost target is a quarter of that.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
