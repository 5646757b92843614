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
    name_width = max(map(len, entries))
    for name, entry in sorted(entries.items()):
        psnr = entry.get("metrics", {}).get("psnr", {})
        summary = ", ".join(f"{s} σ{sig}: {v:.2f}" for s, by_sigma in psnr.items() for sig, v in by_sigma.items()
                            if sig == "25")
        likelihood = entry.get("metrics", {}).get("test_log_likelihood")
        if "summary" in entry:  # measured by a benchmark of its own
            summary = entry["summary"]
        elif likelihood:  # a density estimator: its test log-likelihood instead of PSNR
            summary = f"test log-likelihood {likelihood['dde']['mean']:.3f} nats"
        cost = f"{entry['macs_per_pixel'] / 1e3:.0f} k MAC/px  " if "macs_per_pixel" in entry else ""
        print(f"{name:<{name_width}}  {entry['arch']:<14} {entry.get('parameters', 0) / 1e6:.2f} M params  {cost}{summary}")
    return 0
