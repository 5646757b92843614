"""List the shipped models with their architecture, training and measured quality."""
from __future__ import annotations

from .options import Json

NAME = "models"
NO_ARGS_IS_HELP = False


def command(json_output: Json = False) -> int:
    import json

    from ..engine.weights import manifest, weights_dir

    entries = manifest()
    if json_output:
        print(json.dumps({"weights_dir": str(weights_dir()), "models": entries}, indent=2))
        return 0
    if not entries:
        print(f"no shipped models in {weights_dir()}")
        return 0
    for name, entry in sorted(entries.items()):
        psnr = entry.get("metrics", {}).get("psnr", {})
        summary = ", ".join(f"{s} σ{sig}: {v:.2f}" for s, by_sigma in psnr.items() for sig, v in by_sigma.items()
                            if sig == "25")
        print(f"{name:<14} {entry['arch']:<8} {entry.get('parameters', 0) / 1e6:.2f} M params  "
              f"{entry.get('macs_per_pixel', 0) / 1e3:.0f} k MAC/px  {summary}")
    return 0
