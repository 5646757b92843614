"""Turn a training checkpoint into shipped weights and record it in ``manifest.json``.

    python benchmarks/release_weights.py CHECKPOINT NAME --hardware "2 CPU cores (...)" \
        [--benchmark benchmarks/results/denoise.json] [--sets CBSD68,Kodak24]

Writes ``weights/NAME.pt`` (the checkpoint without optimizer state, float32) and its entry:
architecture and options, parameters, MACs per pixel, training data, steps, wall time,
hardware, the P1 PSNR/SSIM of the given benchmark run, sha256 and size.
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
    parser.add_argument("--benchmark", type=Path, help="JSON written by benchmarks/denoise.py --json")
    parser.add_argument("--sets", help="sets of the benchmark that belong to this model, comma-separated")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()

    record = weights.load_checkpoint(args.checkpoint)
    model = weights.model_from_record(record, str(args.checkpoint))
    channels = model.config.channels
    target = HERE / f"{args.name}.pt"
    training = {
        **record.get("meta", {}),
        "steps": int(record.get("step", 0)),
        "wall_time_s": round(float(record.get("elapsed", 0.0))),
        "hardware": args.hardware,
        "recipe": record.get("train_config", {}),
        "validation": record.get("history", [])[-1:] ,
    }
    weights.save_weights(target, model, {"training": training})
    entry = {
        "file": target.name,
        "arch": record["arch"],
        "options": record["options"],
        "parameters": parameter_count(model),
        "macs_per_pixel": macs_per_pixel(model, channels),
        "training": training,
        "sha256": weights.sha256_file(target),
        "bytes": target.stat().st_size,
    }
    if args.benchmark:
        results = json.loads(args.benchmark.read_text())
        chosen = args.sets.split(",") if args.sets else list(results["sets"])
        entry["metrics"] = {
            "protocol": "P1",
            "psnr": {s: {k: round(v["psnr"], 3) for k, v in results["sets"][s].items()} for s in chosen},
            "ssim": {s: {k: round(v["ssim"], 4) for k, v in results["sets"][s].items()} for s in chosen},
        }
        name = "unet3-gray" if channels == 1 else "unet3-color"
        speed = results.get("models", {}).get(name, {})
        entry["speed"] = {"megapixels_per_s": speed.get("megapixels_per_s"), "device": results["device"],
                          "threads": results["threads"]}
    if args.notes:
        entry["notes"] = args.notes
    manifest_path = HERE / weights.MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": {}}
    manifest["models"][args.name] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"{target} sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
