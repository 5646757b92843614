"""Turn a training checkpoint into shipped weights and record it in ``manifest.json``.

    python benchmarks/release_weights.py CHECKPOINT NAME --hardware "2 CPU cores (...)" \
        [--benchmark benchmarks/results/denoise.json] [--sets CBSD68,Kodak24]
    python benchmarks/release_weights.py dde-rings.pt dde-rings --hardware "..." \
        --benchmark benchmarks/results/dde-toys.json
    python benchmarks/release_weights.py WORK/task-classify.pt classifier-cifar10 --hardware "..." \
        --benchmark benchmarks/results/cascade.json

Writes ``weights/NAME.pt`` (the checkpoint without optimizer state, float32) and its entry:
architecture and options, parameters, training data, steps, wall time, hardware, sha256 and
size, plus what the architecture is measured by: for the image denoisers MACs per pixel and the
P1 PSNR/SSIM of a ``benchmarks/denoise.py --json`` run, for density estimators (``dde``) the
test log-likelihoods (or MNIST sample scores) of a ``benchmarks/dde.py --json`` run, for MAP
denoiser pairs the P2 scores of ADMM in a ``benchmarks/deblur.py --json`` run, for task
networks and cascade-trained denoisers their scores in a ``benchmarks/cascade.py --json`` run, for
blind-spot denoisers the P1 scores and sweep of a ``benchmarks/blindspot.py --json`` run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "weights"
sys.path.insert(0, str(ROOT))

from denoise_cli.engine import weights  # noqa: E402
from denoise_cli.engine.cost import macs_per_pixel, parameter_count  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name")
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--benchmark", type=Path, help="JSON written by benchmarks/denoise.py or dde.py --json")
    parser.add_argument("--sets", help="sets of the benchmark that belong to this model, comma-separated")
    parser.add_argument("--notes", default="")
    parser.add_argument("--training-data", help="how the training data was made, in place of the paths the "
                                                "checkpoint recorded (e.g. for data synthesised by a script)")
    args = parser.parse_args()

    record = weights.load_checkpoint(args.checkpoint)
    model = weights.model_from_record(record, str(args.checkpoint))
    target = HERE / f"{args.name}.pt"
    training = {
        **record.get("meta", {}),
        "steps": int(record.get("step", 0)),
        "wall_time_s": round(float(record.get("elapsed", 0.0))),
        "hardware": args.hardware,
        "recipe": record.get("train_config", {}),
        "validation": record.get("history", [])[-1:],
    }
    if args.training_data:
        training["training_data"] = args.training_data
    weights.save_weights(target, model, {"training": training})
    entry = {
        "file": target.name,
        "arch": record["arch"],
        "options": record["options"],
        "parameters": parameter_count(model),
        "training": training,
        "sha256": weights.sha256_file(target),
        "bytes": target.stat().st_size,
    }
    results = json.loads(args.benchmark.read_text()) if args.benchmark else None
    if record["arch"] == "dde":
        measure = density_estimator_details
    elif record["arch"] in TASK_ARCHITECTURES or "cascade" in record.get("meta", {}):
        measure = cascade_details
    elif record["arch"] == "blindspot":
        measure = blindspot_details
    elif record["arch"] == "map-denoiser":
        measure = map_denoiser_details
    else:
        measure = denoiser_details
    entry.update(measure(model, record, results, args))
    if args.notes:
        entry["notes"] = args.notes
    manifest_path = HERE / weights.MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": {}}
    manifest["models"][args.name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"{target} sha256 {entry['sha256']}")


def chosen_sets(results: dict, args: argparse.Namespace) -> list[str]:
    """The sets of a benchmark run that belong to this model: --sets, else all of them."""
    return args.sets.split(",") if args.sets else list(results["sets"])


def denoiser_details(model, record: dict, results: dict | None, args: argparse.Namespace) -> dict:
    """MACs per pixel, and the P1 PSNR/SSIM and speed of a ``benchmarks/denoise.py`` run."""
    channels = model.config.channels
    details: dict = {"macs_per_pixel": macs_per_pixel(model, channels)}
    if results:
        details["metrics"] = p1_metrics({name: results["sets"][name] for name in chosen_sets(results, args)})
        details["speed"] = speed_record(results, "unet3-gray" if channels == 1 else "unet3-color")
    return details


def map_denoiser_details(model, record: dict, results: dict | None, args: argparse.Namespace) -> dict:
    """MACs per pixel of one network of the pair, and the P2 PSNR/SSIM and time of ADMM with the
    pair in a ``benchmarks/deblur.py --json`` run."""
    channels = model.config.channels
    details: dict = {"macs_per_pixel": macs_per_pixel(model, channels)}
    if results:
        rows = {name: {sigma: methods["ADMM + MAP"] for sigma, methods in results["sets"][name].items()}
                for name in chosen_sets(results, args)}

        def field(name: str, digits: int) -> dict:
            return {s: {sigma: round(row[name], digits) for sigma, row in by_sigma.items()} for s, by_sigma in rows.items()}

        details["metrics"] = {**p1_metrics(rows), "protocol": "P2", "method": "ADMM + MAP",
                              "kernels": results["kernels"], "runs": field("runs", 0)}
        details["speed"] = {"seconds_per_image": field("seconds_per_image", 2), "device": results["device"],
                            "threads": results["threads"]}
        details["summary"] = ", ".join(f"P2 ADMM {name} σ{sigma}: {psnr:.2f}"
                                       for name, by_sigma in details["metrics"]["psnr"].items()
                                       for sigma, psnr in by_sigma.items())
    return details


def p1_metrics(rows: dict[str, dict[str, dict]]) -> dict:
    """``rows[set][sigma]`` of a benchmark run as the manifest's rounded P1 PSNR/SSIM."""
    return {"protocol": "P1",
            "psnr": {name: {sigma: round(row["psnr"], 3) for sigma, row in by_sigma.items()}
                     for name, by_sigma in rows.items()},
            "ssim": {name: {sigma: round(row["ssim"], 4) for sigma, row in by_sigma.items()}
                     for name, by_sigma in rows.items()}}


def speed_record(results: dict, model: str) -> dict:
    """The measured speed of ``model`` in a benchmark run, with its device and threads."""
    speed = results.get("models", {}).get(model, {})
    return {"megapixels_per_s": speed.get("megapixels_per_s"), "device": results["device"],
            "threads": results["threads"]}


def density_estimator_details(model, record: dict, results: dict | None, args: argparse.Namespace) -> dict:
    """The ``benchmarks/dde.py`` results of the data this model was trained on: test
    log-likelihoods for a 2-D toy, sample scores for MNIST."""
    if not results:
        return {}
    meta = record.get("meta", {})
    data = meta.get("training_data") or meta.get("dde_training", {}).get("training_data", "")  # or distilled
    if data.startswith("toy:"):
        toy = results["toys"][data[4:]]
        metrics = {"test_log_likelihood": {
            "dde": {"mean": round(toy["dde"]["mean"], 4), "std": round(toy["dde"]["std"], 4),
                    "repeats": toy["dde"]["repeats"], "importance_samples": toy["dde"]["importance_samples"],
                    "flow_steps": toy["dde"].get("flow_steps")},
            "kde": {"mean": round(toy["kde"]["mean"], 4), "bandwidth": toy["kde"]["bandwidth"]},
            "true": round(toy["true"]["mean"], 4), "true_smoothed": round(toy["true_smoothed"]["mean"], 4),
            "test_points": toy["test_points"], "unit": "nats per sample"}}
        if "dde_without_flow" in toy:
            metrics["test_log_likelihood"]["dde_without_flow"] = round(toy["dde_without_flow"]["mean"], 4)
        metrics["samples_true_log_likelihood"] = {k: round(v, 4) for k, v in toy["samples"].items()}
        metrics["plot"] = toy["plot"]
    else:
        metrics = {"mnist": results["mnist"]}
    return {"metrics": metrics, "benchmark": {"device": results["device"], "threads": results["threads"]}}


def blindspot_details(model, record: dict, results: dict | None, args: argparse.Namespace) -> dict:
    """P1 PSNR/SSIM (posterior and blind-spot mean), the PSNR-against-sigma sweep and the speed
    of this checkpoint in a ``benchmarks/blindspot.py`` run, which labels models by file name."""
    channels = model.config.channels
    details: dict = {"macs_per_pixel": macs_per_pixel(model, channels)}
    if not results:
        return details
    label = args.checkpoint.name
    sets = {name: rows[label] for name, rows in results["sets"].items() if label in rows}
    details["metrics"] = {
        **p1_metrics(sets),
        "psnr_blind_spot_mean": {name: {sigma: round(row["psnr_mean"], 3) for sigma, row in rows.items()}
                                 for name, rows in sets.items()},
    }
    sweep = results.get("sweep")
    if sweep:
        details["metrics"]["psnr_against_sigma"] = {
            "set": sweep["set"], "sigmas": sweep["sigmas"],
            **{key.split(", ", 1)[1]: [round(v, 3) for v in values]
               for key, values in sweep["psnr"].items() if key.startswith(label + ",")}}
    details["speed"] = speed_record(results, f"{'gray' if channels == 1 else 'colour'}: {label}")
    return details


TASK_ARCHITECTURES = {"classifier-cnn": "classify", "segmenter-unet": "segment"}
METRIC = {"classify": "accuracy", "segment": "miou"}


def cascade_details(model, record: dict, results: dict | None, args: argparse.Namespace) -> dict:
    """A task network's clean test score, or a cascade denoiser's task scores (its own task's,
    and the other task's network behind it: the transfer) and PSNR, from a
    ``benchmarks/cascade.py`` run; the denoiser's seed picks its column."""
    if not results:
        return {}
    benchmark = {"device": results["device"], "threads": results["threads"], "script": "benchmarks/cascade.py"}
    if record["arch"] in TASK_ARCHITECTURES:
        task = TASK_ARCHITECTURES[record["arch"]]
        clean = results["task_scores"][task]["clean"]
        metric = METRIC[task]
        return {"metrics": {"task": task, f"test_{metric}": round(clean, 4)}, "benchmark": benchmark,
                "summary": f"{task}: clean test {metric} {clean:.3f}"}
    cascade = record["meta"]["cascade"]
    task, seed = cascade["task"], results["seeds"].index(cascade["seed"])
    kind = "unlabelled" if cascade.get("labels") is False else "cascade" if cascade["lambda"] else "mse"
    transfer_kind = {"cascade": "transfer", "mse": "transfer_mse", "unlabelled": "transfer_unlabelled"}[kind]
    other = next(t for t in METRIC if t != task)

    def by_sigma(scores: dict, row_name: str) -> dict:
        return {s: round(row[row_name][seed], 4) for s, row in scores.items() if s != "clean"}

    psnr = {name: {s: round(row[f"{kind}-{task}-seed{cascade['seed']}"], 3) for s, row in rows.items()}
            for name, rows in results["psnr"].items()}
    metric = METRIC[task]
    own = by_sigma(results["task_scores"][task], kind)
    return {"macs_per_pixel": macs_per_pixel(model, 3), "benchmark": benchmark,
            "metrics": {"task": task, f"{metric}_after_denoising": own,
                        f"{METRIC[other]}_after_denoising_transfer": by_sigma(results["task_scores"][other], transfer_kind),
                        f"psnr_first_{results['psnr_images']}_images": psnr},
            "summary": f"{metric} σ25 {own.get('25', float('nan')):.3f}, "
                       + ", ".join(f"{n} σ25: {v['25']:.2f}" for n, v in psnr.items() if "25" in v)}


if __name__ == "__main__":
    main()
