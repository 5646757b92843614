"""Benchmark of `dncli cascade-train`: the experiment of Liu et al. (IJCAI 2018) at our scale.

    python benchmarks/cascade_data.py WORK/data          # once: CIFAR-10 and CamVid laid out
    python benchmarks/cascade.py WORK                    # train what is missing, then measure
    python benchmarks/cascade.py WORK --seeds 0 --steps 100 --psnr-images 4   # a quick look

Everything trained goes to WORK and is reused when the script runs again: the classifier and
the segmenter (`dncli task-train` on clean images), and for every seed a cascade denoiser per
task (`dncli cascade-train --lambda L`) beside its control trained the same way with
`--lambda 0` (the MSE-only denoiser, same data, steps and seed).  All start from the shipped
unet3-color.  The classification runs take their squared error on crops of clean photos
(--photos, CBSD432) and their task loss on CIFAR: the CIFAR subset is 32x32 JPEGs, whose
artefacts a denoiser trained to reproduce them carries to every other image (--photo-tasks ''
turns this off).  Then, at every test sigma, with the P1 noise of BENCHMARK.md:

* top-1 accuracy on the CIFAR-10 subset's test split and mIoU on CamVid's test split for
  (a) clean, (b) noisy, (c0) the shipped denoiser, (c) the MSE-only control, (d) the cascade
  denoiser, (e) the cascade denoiser trained with the other task, and (e0) that task's MSE-only
  control: (e) against (e0) isolates what the other task's loss transfers, because both saw the
  same images (against (c), (e) also pays for having been trained on the other task's images);
  (d') and (e') are the label-free cascades (`cascade-train --no-labels` on the --photos, the
  task network's clean predictions as targets, --lambda-unlabelled) of this task and of the
  other, whose MSE-only control is the photo-trained (e0) of classification;
* PSNR of the denoisers on the first --psnr-images images of Kodak24 and CBSD68;
* mean and sample standard deviation over the seeds;
* speed of the shipped and a cascade-trained denoiser on a 512x512 colour image (same
  architecture, so the same cost: the cascade is free at inference);
* a side-by-side crop (noisy, MSE-only, cascade) of a Kodak24 image, `cascade_crops.png`.

Tables are printed as markdown and written to --json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from denoise import quality, speeds  # noqa: E402  (benchmarks/denoise.py, beside this script)
from denoise_cli.engine import device as devices  # noqa: E402
from denoise_cli.engine import weights  # noqa: E402
from denoise_cli.engine.cost import macs_per_pixel  # noqa: E402
from denoise_cli.engine.inference import Runner  # noqa: E402
from denoise_cli.engine.metrics import quantize_uint8  # noqa: E402
from denoise_cli.engine.physics.noise import protocol_noisy  # noqa: E402
from denoise_cli.engine.training.cascade import denoised_by  # noqa: E402
from denoise_cli.engine.training.data import load_images  # noqa: E402
from denoise_cli.engine.training.labelled import load_labelled  # noqa: E402
from denoise_cli.engine.training.task_networks import protocol_noise, score  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CPU = torch.device("cpu")
TASKS = {"classify": ("cifar10", "accuracy"), "segment": ("camvid", "miou")}
OTHER = {"classify": "segment", "segment": "classify"}
TASK_RECIPES = {  # dncli task-train options
    "classify": ["--max-steps", "3000", "--validate-every", "500"],
    "segment": ["--widths", "16,32,64", "--batch-size", "8", "--max-steps", "2000", "--validate-every", "500"],
}
CASCADE_RECIPES = {  # dncli cascade-train options beside --lambda, --seed and --max-steps
    "classify": ["--batch-size", "16"],
    "segment": ["--batch-size", "4", "--crop", "96"],
}
UNLABELLED_RECIPE = ["--batch-size", "16"]  # cascade-train --no-labels options, on 64x64 photo crops


def dncli(*args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "denoise_cli", "--quiet", *args, "--threads", str(threads)]
    print("$ dncli " + " ".join(args), file=sys.stderr)
    subprocess.run(command, check=True, env=env)


def trained(path: Path, *args: str, threads: int) -> Path:
    """``path``, first written by ``dncli ARGS -o path`` unless it exists already."""
    if not path.exists():
        dncli(*args, "-o", str(path), threads=threads)
    return path


def train_all(work: Path, data: Path, args) -> dict[str, Path]:
    """Every network of the experiment, trained unless WORK already holds it."""
    files = {}
    for task, (folder, _) in TASKS.items():
        files[f"task-{task}"] = trained(work / f"task-{task}.pt", "task-train", str(data / folder / "train"),
                                        "--task", task, "--val", str(data / folder / "val"), *TASK_RECIPES[task],
                                        threads=args.threads)

    def cascade(kind: str, task: str, weight: float, seed: int, *data_and_recipe: str) -> None:
        name = f"{kind}-{task}-seed{seed}"
        files[name] = trained(work / f"{name}.pt", "cascade-train", *data_and_recipe, "--task", task,
                              "--task-model", str(files[f"task-{task}"]), "--sigma", args.train_sigma,
                              "--lambda", str(weight), "--seed", str(seed), "--max-steps", str(args.steps),
                              threads=args.threads)

    photo_options = [option for photos in args.photos for option in ("--photos", str(photos))]
    for seed in args.seeds:
        for task, (folder, _) in TASKS.items():
            for kind, weight in (("mse", 0.0), ("cascade", args.weights[task])):
                cascade(kind, task, weight, seed, str(data / folder / "train"), *CASCADE_RECIPES[task],
                        *(photo_options if task in args.photo_tasks else []))
        for task in args.unlabelled_tasks:
            cascade("unlabelled", task, args.lambda_unlabelled, seed, *map(str, args.photos), "--no-labels",
                    *UNLABELLED_RECIPE)
    return files


def mean_spread(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def task_scores(networks: dict, denoisers: dict, data: Path, sigmas: list[float], seeds: list[int],
                unlabelled_tasks: list[str]) -> dict:
    """scores[task][sigma][setting] = [value per seed] (one value for seed-free settings)."""
    results: dict = {}
    for task, (folder, _) in TASKS.items():
        test = load_labelled(task, data / folder / "test")
        network = networks[task]
        results[task] = {"clean": score(network, test, CPU)}
        for sigma in sigmas:
            row = {"noisy": [score(network, test, CPU, protocol_noise(sigma))],
                   "shipped": [score(network, test, CPU, denoised_by(denoisers["shipped"], sigma))]}
            settings = [("mse", "mse", task), ("cascade", "cascade", task),
                        ("transfer_mse", "mse", OTHER[task]), ("transfer", "cascade", OTHER[task])]
            settings += [(label, "unlabelled", source) for label, source in
                         (("unlabelled", task), ("transfer_unlabelled", OTHER[task])) if source in unlabelled_tasks]
            for label, kind, source in settings:
                chosen = [denoisers[f"{kind}-{source}-seed{s}"] for s in seeds]
                row[label] = [score(network, test, CPU, denoised_by(d, sigma)) for d in chosen]
            results[task][f"{sigma:g}"] = row
            print(f"  {task} sigma {sigma:g}: " + ", ".join(f"{k} {np.mean(v):.4f}" for k, v in row.items()),
                  file=sys.stderr)
    return results


def psnr_scores(denoisers: dict, sigmas: list[float], limit: int) -> dict:
    """psnr[set][sigma][denoiser name] = mean PSNR over the set's first ``limit`` images (the P1
    measurement of benchmarks/denoise.py)."""
    runners = {label: Runner(denoiser, CPU) for label, denoiser in denoisers.items()}
    results: dict = {}
    for name in ("Kodak24", "CBSD68"):
        by_denoiser = {label: quality(runner, SHARED / "testsets" / name, sigmas, limit)
                       for label, runner in runners.items()}
        results[name] = {f"{sigma:g}": {label: scores[sigma]["psnr"] for label, scores in by_denoiser.items()}
                         for sigma in sigmas}
    return results


def pooled(row: dict, prefix: str, seeds: list[int]) -> list[float]:
    return [row[f"{prefix}-seed{s}"] for s in seeds]


@torch.no_grad()
def crops_figure(denoisers: dict, path: Path, seed: int, sigma: float = 25.0, image_index: int = 4) -> None:
    """Noisy | MSE-only | cascade (classification) | cascade (segmentation) | label-free cascade
    (classification), where trained: a 128x128 crop each."""
    import imageio.v3 as iio

    image = load_images([SHARED / "testsets" / "Kodak24"], 3)[image_index]
    noisy = protocol_noisy(image.astype(np.float32) / 255, sigma, image_index)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None]
    top, left, side = 180, 180, 128
    panels = [quantize_uint8(noisy)]
    names = [f"{kind}-seed{seed}" for kind in ("mse-classify", "cascade-classify", "cascade-segment",
                                                 "unlabelled-classify")]
    for name in (name for name in names if name in denoisers):
        panels.append(quantize_uint8(denoisers[name](x, sigma / 255)[0].permute(1, 2, 0).numpy()))
    gap = np.full((side, 4, 3), 255, np.uint8)
    row = []
    for panel in panels:
        row += [np.ascontiguousarray(panel[top:top + side, left:left + side]), gap]
    iio.imwrite(path, np.concatenate(row[:-1], axis=1))


def markdown(results: dict, seeds: list[int]) -> str:
    lines = [f"## Task scores (mean ± std over seeds {', '.join(map(str, seeds))})\n"]
    names = {"noisy": "(b) noisy", "shipped": "(c0) shipped unet3-color", "mse": "(c) MSE-only",
             "cascade": "(d) cascade", "transfer_mse": "(e0) other task's MSE-only",
             "transfer": "(e) other task's cascade", "unlabelled": "(d') cascade without labels",
             "transfer_unlabelled": "(e') other task's cascade without labels"}
    for task, (_, metric) in TASKS.items():
        scores = results["task_scores"][task]
        sigmas = [k for k in scores if k != "clean"]
        lines.append(f"\n### {task} ({metric}; (a) clean {scores['clean']:.4f})\n")
        lines.append("| setting | " + " | ".join(f"sigma {s}" for s in sigmas) + " |")
        lines.append("|---" * (len(sigmas) + 1) + "|")
        for key, label in names.items():
            if key not in scores[sigmas[0]]:
                continue
            cells = []
            for s in sigmas:
                mean, spread = mean_spread(scores[s][key])
                cells.append(f"{mean:.4f}" + (f" ± {spread:.4f}" if len(scores[s][key]) > 1 else ""))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("\n## PSNR of the denoisers (dB, P1 noise on the first "
                 f"{results['psnr_images']} images of each set, so not comparable to full-set P1 figures; "
                 "mean ± std over seeds)\n")
    for name, by_sigma in results["psnr"].items():
        sigmas = list(by_sigma)
        lines.append(f"\n### {name}\n")
        lines.append("| denoiser | " + " | ".join(f"sigma {s}" for s in sigmas) + " |")
        lines.append("|---" * (len(sigmas) + 1) + "|")
        shipped = " | ".join(f"{by_sigma[s]['shipped']:.2f}" for s in sigmas)
        lines.append(f"| shipped unet3-color | {shipped} |")
        for prefix in ("mse-classify", "cascade-classify", "mse-segment", "cascade-segment",
                       "unlabelled-classify", "unlabelled-segment"):
            if f"{prefix}-seed{seeds[0]}" not in by_sigma[sigmas[0]]:
                continue
            cells = ["{:.2f} ± {:.2f}".format(*mean_spread(pooled(by_sigma[s], prefix, seeds))) for s in sigmas]
            lines.append(f"| {prefix} | " + " | ".join(cells) + " |")
    cost = results["cost"]
    lines.append(f"\n## Cost\n\nMACs per pixel {cost['macs_per_pixel']:.0f} for every denoiser (one "
                 f"architecture). Speed on a 512x512 colour image, {cost['threads']} CPU thread(s): shipped "
                 f"{cost['shipped_mp_per_s']:.3f} MP/s, cascade-trained {cost['cascade_mp_per_s']:.3f} MP/s.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="folder for the trained networks (reused when present)")
    parser.add_argument("--data", type=Path, help="output of cascade_data.py [default: WORK/data]")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300, help="cascade-train steps per denoiser")
    parser.add_argument("--train-sigma", default="10,55", help="--sigma of cascade-train")
    parser.add_argument("--lambda-classify", type=float, default=0.002)
    parser.add_argument("--lambda-segment", type=float, default=0.002)
    parser.add_argument("--photos", type=Path, nargs="+",
                        default=[SHARED / "train" / "CBSD432" / "train", SHARED / "train" / "CBSD432" / "test"],
                        help="clean photos for the MSE term of the --photo-tasks runs (cascade-train --photos)")
    parser.add_argument("--photo-tasks", default="classify",
                        help="tasks whose runs take their MSE term from --photos ('' for none)")
    parser.add_argument("--unlabelled-tasks", default="classify,segment",
                        help="tasks that also get a label-free cascade on --photos ('' for none)")
    parser.add_argument("--lambda-unlabelled", type=float, default=0.01,
                        help="--lambda of the label-free runs (0.01: the recipe of benchmarks/results/cascade.md)")
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--psnr-images", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    parser.add_argument("--figure", type=Path, help="side-by-side crops PNG")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.weights = {"classify": args.lambda_classify, "segment": args.lambda_segment}
    args.photo_tasks = [task for task in args.photo_tasks.split(",") if task]
    args.unlabelled_tasks = [task for task in args.unlabelled_tasks.split(",") if task]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    data = args.data or args.work / "data"
    devices.configure_cpu(args.threads)

    files = train_all(args.work, data, args)
    networks = {task: weights.load_model(files[f"task-{task}"]) for task in TASKS}
    denoisers = {"shipped": weights.load_shipped("unet3-color")}
    denoisers.update({name: weights.load_model(path) for name, path in files.items()
                      if not name.startswith("task-")})
    results = {"device": "cpu", "threads": args.threads, "seeds": args.seeds, "steps": args.steps,
               "train_sigma": args.train_sigma, "lambda": args.weights, "psnr_images": args.psnr_images,
               "photos": [str(folder) for folder in args.photos], "photo_tasks": args.photo_tasks,
               "unlabelled_tasks": args.unlabelled_tasks, "lambda_unlabelled": args.lambda_unlabelled,
               "task_scores": task_scores(networks, denoisers, data, sigmas, args.seeds, args.unlabelled_tasks),
               "psnr": psnr_scores(denoisers, sigmas, args.psnr_images)}
    rates = speeds({"shipped": Runner(denoisers["shipped"], CPU),
                    "cascade": Runner(denoisers[f"cascade-classify-seed{args.seeds[0]}"], CPU)}, size=512)
    results["cost"] = {"macs_per_pixel": macs_per_pixel(denoisers["shipped"], 3), "threads": args.threads,
                       "shipped_mp_per_s": rates["shipped"], "cascade_mp_per_s": rates["cascade"]}
    table = markdown(results, args.seeds)
    print(table)
    if args.figure:
        crops_figure(denoisers, args.figure, args.seeds[0])
    if args.json:
        args.json.write_text(json.dumps({**results, "markdown": table}, indent=2))


if __name__ == "__main__":
    main()
