"""Print the torch build, the devices it sees, the device dncli would use, the CPU features
that set its speed (native bfloat16, malloc tuning), and whether the shipped weights verify
against their manifest."""
from __future__ import annotations

from . import console
from .options import Device, Json

NAME = "doctor"
NO_ARGS_IS_HELP = False


def command(device: Device = None, json_output: Json = False) -> int:
    import os
    import platform

    import torch

    from .. import __version__
    from ..engine import device as devices
    from ..engine import weights

    report: dict = {
        "dncli": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(), "cpu_native_bf16": devices.cpu_has_native_bf16(),
        "malloc_keeps_freed_memory": devices.keep_freed_memory(), "DNCLI_DEVICE": os.environ.get("DNCLI_DEVICE"),
        "weights_dir": str(weights.weights_dir()), "weights": {},
    }
    try:
        report["device"] = str(devices.select_device(device))
    except Exception as exc:  # noqa: BLE001 - a doctor reports problems instead of stopping at them
        report["device"] = f"unavailable: {exc}"
    healthy = not report["device"].startswith("unavailable")
    for name in sorted(weights.manifest()):
        try:
            weights.verify(name)
            report["weights"][name] = "ok"
        except weights.WeightsError as exc:
            report["weights"][name] = f"FAILED: {exc}"
            healthy = False
    if json_output:
        console.print_json(report)
    else:
        rows = []
        for key, value in report.items():
            if key == "weights":
                rows += [(f"weights {name}", status)
                         for name, status in value.items() or [("(none)", "no shipped weights found")]]
            else:
                rows.append((key, value))
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            print(f"{label:<{width}}  {value}")
    return 0 if healthy else 1
