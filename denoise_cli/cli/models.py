"""List the shipped models with their architecture, training and measured quality."""
from __future__ import annotations

from . import console
from .options import Json

NAME = "models"
NO_ARGS_IS_HELP = False


def command(json_output: Json = False) -> int:
    from ..engine.weights import manifest, weights_dir

    entries = manifest()
    if json_output:
        console.print_json({"weights_dir": str(weights_dir()), "models": entries})
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
        mnist = entry.get("metrics", {}).get("mnist")
        if "summary" in entry:  # measured by a benchmark of its own
            summary = entry["summary"]
        elif likelihood:  # a density estimator: its test log-likelihood instead of PSNR
            summary = f"test log-likelihood {likelihood['dde']['mean']:.3f} nats"
        elif mnist:  # a digit generator: how digit-like its samples are
            sampler = "generator" if "generator" in mnist["samplers"] else next(iter(mnist["samplers"]))
            scores = mnist["samplers"][sampler]
            summary = (f"MNIST {sampler}: classifier confidence {scores['mean_max_probability']:.3f} "
                       f"(real {mnist['real_test']['mean_max_probability']:.3f}), "
                       f"Fréchet distance {scores['frechet_distance']:.1f}")
        cost = f"{entry['macs_per_pixel'] / 1e3:.0f} k MAC/px  " if "macs_per_pixel" in entry else ""
        print(f"{name:<{name_width}}  {entry['arch']:<14} {entry.get('parameters', 0) / 1e6:.2f} M params  {cost}{summary}")
    return 0
