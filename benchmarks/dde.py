"""Benchmark of denoising density estimators (`dncli dde-train`): 2-D toys, MNIST, 8x8 patches.

    python benchmarks/dde.py toys                                   # the shipped toy models
    python benchmarks/dde.py toys --checkpoints runs/ --json benchmarks/results/dde-toys.json
    python benchmarks/dde.py toys --toys rings --quick              # a fast check of the script
    python benchmarks/dde.py mnist --model dde-mnist.pt --json benchmarks/results/dde-mnist.json
    python benchmarks/dde.py mnist --model dde-mnist.pt --limit 500  # a fast check of the script
    python benchmarks/dde.py patches --write-data runs/patches      # then benchmarks/dde_patches.sh
    python benchmarks/dde.py patches --data runs/patches --model runs/patches/dde-patches.pt

**Toys.**  Each toy's test set is 10000 fresh draws from a generator seeded apart from every
training stream.  Test log-likelihoods, in nats per sample, for

* the DDE: ``mean f(x) - log Z`` with log Z by importance sampling (65536 draws from the
  moment-matched proposal of ``engine/algorithms/sampling.dde_proposal``), repeated 5 times:
  mean and standard deviation over the repeats; beside it log Z by a quadrature over a grid,
  a check of the sampler that only two dimensions allow.  A conditional DDE (the shipped toys)
  is scored at its lowest level through the probability flow from its highest level, where
  log Z is estimated (``sampling.normalisable_density``), and also, as ``dde_without_flow``,
  by importance sampling of f at the lowest level alone;
* a Gaussian KDE on 10000 other draws, its isotropic bandwidth chosen by the log-likelihood of
  2000 validation draws over a log-spaced grid;
* the true density, plain and smoothed by the DDE's noise level (what the DDE learns at its
  optimum; ``engine/training/dde_data.py``).

``samples`` gives the mean true log-density, smoothed by the DDE's level, of the samples of each
sampler the model has (generator, probability flow, annealed Langevin on 2000 draws) smoothed by
the same noise, beside that of test data (``data``; higher than that means samples concentrate
on the modes); for a KL-trained generator ``generator_kl`` estimates ``KL(q_s || p_s)`` from
the two normalised DDEs.  Plots (test data | true | KDE | DDE | samples of the generator, else
the flow, each panel the same square) go to ``benchmarks/results/dde-<toy>.png`` (or
``--results DIR``).

**MNIST.**  The training images of MNIST are missing from ../shared/data (its README), so the
benchmark splits the 10000 test images: 0-7999 train (the DDE and the classifier), 8000-9999
test.  A small CNN classifier is trained here on the train part; its 64-d penultimate features
give the Frechet distance (FD) between generated and test images, with the FD between the
train and test images as the floor, and its softmax the confidence (mean max probability), the
class histogram and the classifier score exp(E KL(p(y|x) || p(y))) (10 at best).  Samples per
second time the generator (and the probability flow with --flow, Langevin with --langevin).  A grid of 64 samples of each sampler
goes to ``benchmarks/results/dde-mnist-<sampler>.png``.

**8x8 patches** (d = 64, ``benchmarks/dde_patches.sh``).  Gray (BT.601 luma) patches of the
BSDS500 photos in CBSD432, dequantised to densities on [0, 1]: 100000 from ``train/`` for
training, 5000 from ``val/`` to choose the KDE bandwidth, 10000 from ``test/`` to score, so the
splits share no photo.  Test log-likelihoods in nats per patch of the KDE, of a full-covariance
Gaussian (exact), and of the DDE, whose log Z is estimated by plain importance sampling from
its Gaussian base and by annealed importance sampling (AIS) from the base with 1000 and 3000
levels.  All are low in expectation; two AIS lengths that agree say the estimate has settled,
and the longest is the DDE's figure.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoise_cli.engine import device as devices  # noqa: E402
from denoise_cli.engine import plots  # noqa: E402
from denoise_cli.engine import weights as weight_files  # noqa: E402
from denoise_cli.engine.algorithms import sampling  # noqa: E402
from denoise_cli.engine.training.dde_data import TOYS, load_data  # noqa: E402
from denoise_cli.imgio.codec import Image, write_image  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MNIST = ROOT.parent / "shared" / "data" / "mnist"
TEST_SEED, KDE_SEED, VAL_SEED = 10_001, 10_002, 10_003  # far from the trainer's (seed, rank, step) streams
BANDWIDTHS = np.geomspace(0.02, 0.6, 16)
LANGEVIN_DRAWS = 2000  # 2000 gradient steps each


def load(spec: str) -> torch.nn.Module:
    """A DDE model from a file, or a shipped one by manifest name (sha256 verified)."""
    path = Path(spec)
    model = weight_files.load_model(path) if path.is_file() else weight_files.load_shipped(spec)
    if model.arch_name != "dde":
        raise SystemExit(f"{spec}: a {model.arch_name} model, not a DDE")
    return model


# --- toys ---------------------------------------------------------------------------------------

def kde_log_densities(train: torch.Tensor, x: torch.Tensor, bandwidths: np.ndarray) -> torch.Tensor:
    """``[len(bandwidths), N]``: the isotropic Gaussian KDE of ``train`` at each row of ``x``,
    every bandwidth from one pass over the squared distances (float64, nats)."""
    train, d = train.double(), train.shape[1]
    h = torch.as_tensor(bandwidths, dtype=torch.float64)
    constant = -math.log(len(train)) - 0.5 * d * torch.log(2 * math.pi * h ** 2)
    out = []
    for chunk in x.double().split(64):  # 64 x N x bandwidths doubles at a time
        d2 = torch.cdist(chunk, train) ** 2
        out.append(torch.logsumexp(-d2.unsqueeze(0) / (2 * h ** 2)[:, None, None], 2) + constant[:, None])
    return torch.cat(out, 1)


def grid_log_z(log_density, extent: float, pixels: int = 400) -> float:
    """log of the integral of exp(log_density) over [-extent, extent]^2 by the midpoint rule."""
    values = log_density(plots.grid_points(extent, pixels)).double()
    return float(torch.logsumexp(values, 0)) + 2 * math.log(2 * extent / pixels)


def benchmark_toy(name: str, model: torch.nn.Module, args: argparse.Namespace) -> dict:
    toy = TOYS[name]
    sigma = model.config.sigma
    test = toy.sample(args.test, torch.Generator().manual_seed(TEST_SEED))
    kde_train = toy.sample(args.kde_train, torch.Generator().manual_seed(KDE_SEED))
    kde_val = toy.sample(args.kde_val, torch.Generator().manual_seed(VAL_SEED))

    started = time.perf_counter()
    log_f, normaliser, proposal = sampling.normalisable_density(model)
    dde = sampling.log_likelihood(log_f, test, proposal, repeats=args.repeats, samples=args.samples, seed=0,
                                  normaliser=normaliser)
    log_z_grid = grid_log_z(normaliser, toy.extent + 1.5 + (model.config.sigma_max or 0))
    dde_seconds = time.perf_counter() - started

    scores = kde_log_densities(kde_train, kde_val, BANDWIDTHS).mean(1)
    best = float(BANDWIDTHS[int(scores.argmax())])
    kde = float(kde_log_densities(kde_train, test, np.array([best])).mean())

    result = {
        "sigma": sigma,
        "test_points": args.test,
        "dde": {"mean": dde.mean, "std": dde.std, "repeats": args.repeats, "importance_samples": args.samples,
                "log_z": dde.log_z, "log_z_grid": log_z_grid, "mean_energy": dde.mean_energy,
                "ll_with_grid_log_z": dde.mean_energy - log_z_grid, "seconds": dde_seconds,
                "flow_steps": sampling.FLOW_STEPS if model.config.conditional else None},
        "kde": {"mean": kde, "bandwidth": best, "train_points": args.kde_train, "validation_points": args.kde_val},
        "true": {"mean": float(toy.log_density(test, 0.0).mean()), "how": toy.exact},
        "true_smoothed": {"mean": float(toy.log_density(test, sigma).mean()), "sigma": sigma},
    }
    plotted = log_f
    if model.config.conditional:  # what the flow corrects: f alone at the lowest level
        f_alone, _, f_proposal = sampling.normalisable_density(model, flow_steps=0)
        plain = sampling.log_likelihood(f_alone, test, f_proposal, repeats=args.repeats, samples=args.samples, seed=0)
        result["dde_without_flow"] = {"mean": plain.mean, "std": plain.std}
        plotted = sampling.normalisable_density(model, flow_steps=sampling.COARSE_FLOW_STEPS)[0]
    panels = [plots.histogram_panel(test.numpy(), toy.extent),
              plots.density_panel(lambda x: toy.log_density(x, 0.0), toy.extent),
              plots.density_panel(lambda x: kde_log_densities(kde_train, x, np.array([best]))[0], toy.extent),
              plots.density_panel(plotted, toy.extent)]
    generator = torch.Generator().manual_seed(TEST_SEED + 1)
    kinds = (["generator"] if model.generator is not None else []) + (["flow"] if model.config.conditional else []) \
        + ["langevin"]
    draws = {kind: sampling.draw(model, kind, min(args.test, LANGEVIN_DRAWS) if kind == "langevin" else args.test,
                                 generator) for kind in kinds}
    smoothed = {kind: x + sigma * torch.randn(x.shape, generator=generator) for kind, x in draws.items()}
    noisy_test = test + sigma * torch.randn(test.shape, generator=generator)
    result["samples"] = {"data": float(toy.log_density(noisy_test, sigma).mean()),
                         **{kind: float(toy.log_density(x, sigma).mean()) for kind, x in smoothed.items()}}
    if model.fake is not None:  # a KL-trained generator: KL(q || p) from the two DDEs
        log_fake, fake_normaliser, fake_proposal = sampling.normalisable_density(model, "fake")
        log_z_fake = sampling.log_normalizer(fake_normaliser, fake_proposal, args.samples, generator=generator)
        x = smoothed["generator"]
        kl = log_fake(x).double() - log_z_fake - log_f(x).double() + float(np.mean(dde.log_z))
        result["samples"]["generator_kl"] = float(kl.mean())
    shown = "generator" if "generator" in draws else "flow" if "flow" in draws else "langevin"
    panels.append(plots.histogram_panel(draws[shown].numpy(), toy.extent))
    path = args.results / f"dde-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(Image(plots.side_by_side(panels)), path)
    result["plot"] = _shown(path)
    return result


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (as recorded in the manifest)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_toys(args: argparse.Namespace) -> dict:
    names = args.toys.split(",") if args.toys else list(TOYS)
    results = {}
    for name in names:
        if name not in TOYS:
            raise SystemExit(f"unknown toy {name!r} (choose from {', '.join(TOYS)})")
        spec = str(Path(args.checkpoints) / f"dde-{name}.pt") if args.checkpoints else f"dde-{name}"
        results[name] = benchmark_toy(name, load(spec), args)
        print_toy(name, results[name])
    return {"toys": results}


def print_toy(name: str, r: dict) -> None:
    samples = r["samples"]
    plain = r.get("dde_without_flow")
    print(f"{name:<13} DDE(s={r['sigma']:g}) {r['dde']['mean']:7.3f} ± {r['dde']['std']:.3f} "
          f"(grid log Z: {r['dde']['ll_with_grid_log_z']:7.3f}"
          + (f"; without the flow {plain['mean']:.3f}" if plain else "") + f")  KDE(h={r['kde']['bandwidth']:.3f}) "
          f"{r['kde']['mean']:7.3f}  true {r['true']['mean']:7.3f}  true smoothed {r['true_smoothed']['mean']:7.3f}"
          + "  samples' true LL: " + ", ".join(f"{kind} {value:.3f}" for kind, value in samples.items()), flush=True)


# --- MNIST --------------------------------------------------------------------------------------

class Classifier(torch.nn.Module):
    """A small MNIST CNN; ``features`` is the 64-d penultimate layer used for the Frechet distance."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 64), torch.nn.ReLU())
        self.head = torch.nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int, device: torch.device) -> Classifier:
    torch.manual_seed(0)
    net = Classifier().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for index in torch.randperm(len(images), generator=generator).split(64):
            loss = torch.nn.functional.cross_entropy(net(images[index].to(device)), labels[index].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


def classify(net: Classifier, images: torch.Tensor, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, 64], softmax [N, 10]) as float64 arrays."""
    features, probabilities = [], []
    with torch.no_grad():
        for chunk in images.split(512):
            f = net.features(chunk.to(device))
            features.append(f.double().cpu())
            probabilities.append(torch.softmax(net.head(f), 1).double().cpu())
    return torch.cat(features).numpy(), torch.cat(probabilities).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of Gaussians fitted to the rows."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    # A ReLU feature that never fires makes a covariance singular; a tiny ridge keeps the matrix
    # square root defined and moves the distance by about 1e-6 per feature.
    ridge = 1e-6 * np.eye(a.shape[1])
    cov_a, cov_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root = linalg.sqrtm(cov_a @ cov_b).real  # rounding leaves tiny imaginary parts
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def confidence(probabilities: np.ndarray) -> dict:
    marginal = probabilities.mean(0)
    kl = (probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    histogram = np.bincount(probabilities.argmax(1), minlength=10) / len(probabilities)
    return {"mean_max_probability": float(probabilities.max(1).mean()), "classifier_score": float(np.exp(kl.mean())),
            "class_histogram": [round(float(h), 4) for h in histogram]}


def run_mnist(args: argparse.Namespace) -> dict:
    from denoise_cli.engine.training.dde_data import read_idx

    device = torch.device(args.device)
    model = load(args.model).to(device)
    images = load_data(args.data).values.float() / 255.0
    labels = torch.from_numpy(read_idx(Path(args.labels)).astype(np.int64))
    split = args.split
    train_x, train_y = images[:split], labels[:split]
    test_x, test_y = images[split:], labels[split:]
    if args.limit:
        train_x, train_y, test_x, test_y = train_x[:args.limit], train_y[:args.limit], test_x[:args.limit], test_y[:args.limit]
    count = len(test_x)

    net = train_classifier(train_x, train_y, args.classifier_epochs, device)
    test_features, test_probabilities = classify(net, test_x, device)
    train_features, _ = classify(net, train_x, device)
    accuracy = float((test_probabilities.argmax(1) == test_y.numpy()).mean())

    generator = torch.Generator().manual_seed(TEST_SEED)
    result: dict = {"split": {"train": [0, split], "test": [split, len(images)], "limit": args.limit},
                    "classifier": {"test_accuracy": accuracy, "epochs": args.classifier_epochs},
                    "floor_frechet_distance_train_vs_test": frechet_distance(train_features, test_features),
                    "real_test": confidence(test_probabilities), "samplers": {}}
    samplers = (["generator"] if model.generator is not None else []) + (["flow"] if args.flow else []) \
        + (["langevin"] if args.langevin else [])
    steps = {"flow": args.flow_steps, "langevin": args.langevin_steps}
    for name in samplers:
        def draw(n: int) -> torch.Tensor:
            return sampling.draw(model, name, n, generator, steps.get(name), args.langevin_step_size, device=device)

        draw(min(count, 64))  # warm-up: first-call allocations and kernel choice are not the sampler's speed
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        samples = draw(count)
        seconds = time.perf_counter() - started
        features, probabilities = classify(net, samples.clamp(0, 1), device)
        result["samplers"][name] = {"frechet_distance": frechet_distance(features, test_features),
                                    **confidence(probabilities), "samples": count,
                                    "samples_per_s": count / seconds}
        path = args.results / f"dde-mnist-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(Image(plots.image_grid(samples[:64], 8)), path)
        result["samplers"][name]["grid"] = _shown(path)
        print(f"MNIST {name}: FD {result['samplers'][name]['frechet_distance']:.2f} (floor train-vs-test "
              f"{result['floor_frechet_distance_train_vs_test']:.2f}), confidence "
              f"{result['samplers'][name]['mean_max_probability']:.3f} (real {result['real_test']['mean_max_probability']:.3f}), "
              f"score {result['samplers'][name]['classifier_score']:.2f} (real {result['real_test']['classifier_score']:.2f}), "
              f"{count / seconds:.0f} samples/s", flush=True)
    print(f"classifier test accuracy {accuracy:.4f}")
    return {"mnist": result}


# --- 8x8 patches --------------------------------------------------------------------------------

PATCH_SPLITS = {"train": ("train", 100_000, 0), "val": ("val", 5_000, 1), "test": ("test", 10_000, 2)}
PATCH_BANDWIDTHS = np.geomspace(0.02, 0.2, 13)


def cut_patches(folder: Path, count: int, seed: int, side: int = 8) -> np.ndarray:
    """``count`` random ``side`` x ``side`` luma patches of the images in ``folder``, as float32
    rows in [0, 1]: the 8-bit values dequantised with uniform noise, ``(v + u) / 256``, so that a
    density (not a probability mass) is what every model is scored on."""
    from denoise_cli.engine.training.data import IMAGE_SUFFIXES, to_gray_uint8
    from denoise_cli.imgio.codec import read_image

    paths = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise SystemExit(f"{folder}: no images")
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(paths), count)
    rows = np.empty((count, side * side), dtype=np.float32)
    for index, path in enumerate(paths):
        picked = np.flatnonzero(which == index)
        if not len(picked):
            continue
        gray = to_gray_uint8(np.clip(np.rint(read_image(path).color * 255), 0, 255))
        tops = rng.integers(0, gray.shape[0] - side + 1, len(picked))
        lefts = rng.integers(0, gray.shape[1] - side + 1, len(picked))
        for row, top, left in zip(picked, tops, lefts):
            rows[row] = gray[top: top + side, left: left + side].ravel()
    return (rows + rng.random(rows.shape, dtype=np.float32)) / 256.0


def write_patches(source: Path, out: Path) -> None:
    """train/val/test.npy under ``out``, from the BSDS500 split folders of CBSD432 (``source``):
    the three splits come from disjoint images."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (folder, count, seed) in PATCH_SPLITS.items():
        np.save(out / f"{name}.npy", cut_patches(source / folder, count, seed))
        print(f"{out / name}.npy: {count} patches from {source / folder}", flush=True)


def run_patches(args: argparse.Namespace) -> dict:
    data = {name: torch.from_numpy(np.load(args.data / f"{name}.npy")) for name in PATCH_SPLITS}
    train, val, test = data["train"], data["val"], data["test"]
    result: dict = {"data": {name: len(values) for name, values in data.items()}, "dim": train.shape[1]}

    kde_train = train[:args.kde_train]
    scores = kde_log_densities(kde_train, val, PATCH_BANDWIDTHS).mean(1)
    best = float(PATCH_BANDWIDTHS[int(scores.argmax())])
    result["kde"] = {"mean": float(kde_log_densities(kde_train, test, np.array([best])).mean()), "bandwidth": best,
                     "train_points": len(kde_train), "validation": [round(float(v), 3) for v in scores]}

    gaussian = sampling.fitted_proposal(train, 0.0)
    result["gaussian"] = {"mean": float(gaussian.log_density(test).mean())}

    model = load(args.model)
    sigma = model.config.sigma
    result["gaussian_smoothed"] = {"mean": float(sampling.fitted_proposal(train, sigma).log_density(test).mean()),
                                   "sigma": sigma}
    log_f = sampling.model_log_density(model)
    proposal = sampling.dde_proposal(model)
    started = time.perf_counter()
    plain = sampling.log_likelihood(log_f, test, proposal, repeats=args.repeats, samples=args.samples, seed=0)
    estimates = {"importance": {**plain.to_dict(), "samples": args.samples, "seconds": time.perf_counter() - started}}
    for steps in args.ais_steps:
        started = time.perf_counter()
        log_zs = [sampling.annealed_log_normalizer(model.energy, proposal, args.ais_chains, steps,
                                                   generator=torch.Generator().manual_seed(repeat))
                  for repeat in range(args.repeats)]
        values = np.array([plain.mean_energy - z for z in log_zs])
        estimates[f"annealed-{steps}"] = {"mean": float(values.mean()),
                                          "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                                          "log_z": log_zs, "chains": args.ais_chains, "levels": steps,
                                          "seconds": time.perf_counter() - started}
    # Every estimate of log Z is low in expectation; AIS with the most levels is the least so.
    result["dde"] = {"mean": estimates[f"annealed-{max(args.ais_steps)}"]["mean"] if args.ais_steps else plain.mean,
                     "sigma": sigma, "base": model.config.base, "estimates": estimates}
    print(f"8x8 patches, d = {result['dim']}, {len(test)} test patches (nats per patch):")
    print(f"  KDE (h = {best:.3f}, {len(kde_train)} points)    {result['kde']['mean']:9.2f}")
    print(f"  Gaussian, full covariance            {result['gaussian']['mean']:9.2f}")
    print(f"  Gaussian smoothed by sigma = {sigma:g}    {result['gaussian_smoothed']['mean']:9.2f}")
    for label, estimate in estimates.items():
        print(f"  DDE (sigma = {sigma:g}), log Z by {label:<15} {estimate['mean']:9.2f} ± {estimate['std']:.2f}")
    return {"patches": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="benchmark", required=True)
    toys = commands.add_parser("toys", help="2-D toys: DDE vs KDE vs true log-likelihood, plots")
    toys.add_argument("--checkpoints", help="directory of dde-<toy>.pt files [default: the shipped models]")
    toys.add_argument("--toys", help="comma-separated toy names [default: all]")
    toys.add_argument("--repeats", type=int, default=5)
    toys.add_argument("--samples", type=int, default=65536, help="importance samples per log Z estimate")
    toys.add_argument("--test", type=int, default=10000)
    toys.add_argument("--kde-train", type=int, default=10000)
    toys.add_argument("--kde-val", type=int, default=2000)
    toys.add_argument("--quick", action="store_true", help="small sizes for a fast check (numbers not for reporting)")
    mnist = commands.add_parser("mnist", help="MNIST: samples, Frechet distance, classifier confidence, speed")
    mnist.add_argument("--model", default="dde-mnist", help="weights file or shipped name")
    mnist.add_argument("--data", default=str(MNIST / "t10k-images-idx3-ubyte.gz"))
    mnist.add_argument("--labels", default=str(MNIST / "t10k-labels-idx1-ubyte.gz"))
    mnist.add_argument("--split", type=int, default=8000, help="images before this index train, the rest test")
    mnist.add_argument("--limit", type=int, help="use at most N train and N test images (a quick check)")
    mnist.add_argument("--classifier-epochs", type=int, default=3)
    mnist.add_argument("--flow", action="store_true", help="also time and score probability-flow sampling")
    mnist.add_argument("--flow-steps", type=int, default=sampling.FLOW_SAMPLE_STEPS, help="dde-sample's --steps, flow")
    mnist.add_argument("--langevin", action="store_true", help="also time and score Langevin sampling")
    mnist.add_argument("--langevin-steps", type=int, default=sampling.LANGEVIN_STEPS, help="Langevin steps per noise level")
    mnist.add_argument("--langevin-step-size", type=float, default=0.1, help="dde-sample's --step-size")
    mnist.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    patches = commands.add_parser("patches", help="8x8 gray patches (d = 64): DDE vs KDE vs Gaussian log-likelihood")
    patches.add_argument("--write-data", type=Path, metavar="DIR",
                         help="cut the patches from --source into DIR/{train,val,test}.npy and stop")
    patches.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "train" / "CBSD432")
    patches.add_argument("--data", type=Path, help="directory written by --write-data")
    patches.add_argument("--model", help="the DDE trained on DATA/train.npy")
    patches.add_argument("--kde-train", type=int, default=100_000, help="training patches the KDE keeps")
    patches.add_argument("--repeats", type=int, default=2, help="estimates of log Z per estimator")
    patches.add_argument("--samples", type=int, default=65536, help="importance samples per log Z estimate")
    patches.add_argument("--ais-steps", type=lambda text: [int(v) for v in text.split(",") if v], default=[1000, 3000],
                         help="comma-separated numbers of AIS levels, each a log Z estimator [default: 1000,3000]")
    patches.add_argument("--ais-chains", type=int, default=512, help="AIS chains per estimate")
    for sub in (toys, mnist, patches):
        sub.add_argument("--threads", type=int, default=1)
        sub.add_argument("--json", type=Path, help="write the results here")
        sub.add_argument("--results", type=Path, default=RESULTS, help="directory for the plots")
    args = parser.parse_args()
    devices.configure_cpu(args.threads)
    if args.benchmark == "toys" and args.quick:
        args.repeats, args.samples, args.test, args.kde_train, args.kde_val = 2, 8192, 2000, 2000, 500
    if args.benchmark == "patches" and args.write_data:
        write_patches(args.source, args.write_data)
        return
    if args.benchmark == "patches" and not (args.data and args.model):
        parser.error("patches: give --data and --model, or --write-data")
    runs = {"toys": run_toys, "mnist": run_mnist, "patches": run_patches}
    results = runs[args.benchmark](args)
    results.update(device=str(getattr(args, "device", "cpu")), threads=torch.get_num_threads(),
                   torch=torch.__version__)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
