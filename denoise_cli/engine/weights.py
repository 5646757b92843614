"""Weights files, training checkpoints and the shipped-weights manifest.

A weights file is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts):
``format``, ``arch``, ``options``, ``state_dict`` and free-form ``meta``.  A training
checkpoint is the same dict plus ``optimizer``, ``step``, ``elapsed``, ``history`` and
``train_config``, so any checkpoint can be used as weights.  Files are always read with
``torch.load(weights_only=True)``, which refuses to unpickle arbitrary objects; shipped files
are checked against the sha256 in ``manifest.json`` before they are read at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from . import registry

FORMAT = "dncli-weights/1"
MANIFEST = "manifest.json"


class WeightsError(Exception):
    """A weights file is missing, corrupt, unsafe, of the wrong kind or fails its checksum."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_save(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def weights_record(model: nn.Module, meta: dict | None = None) -> dict:
    return {"format": FORMAT, **registry.describe(model), "state_dict": model.state_dict(), "meta": meta or {}}


def save_weights(path: Path, model: nn.Module, meta: dict | None = None) -> None:
    _atomic_save(weights_record(model, meta), path)


def save_checkpoint(path: Path, model: nn.Module, meta: dict, *, optimizer: torch.optim.Optimizer,
                    step: int, elapsed: float, history: list[dict], train_config: dict,
                    grad_scaler: dict | None = None) -> None:
    record = weights_record(model, meta)
    record.update(optimizer=optimizer.state_dict(), step=step, elapsed=elapsed,
                  history=history, train_config=train_config, grad_scaler=grad_scaler or {})
    _atomic_save(record, path)


def load_checkpoint(path: Path) -> dict:
    """The dict of a weights file or checkpoint, read without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise WeightsError(f"{path}: refused to load (not a plain weights file: {first_line})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable weights file ({exc.__class__.__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a dncli weights file")
    return record


def model_from_record(record: dict, source: str) -> nn.Module:
    try:
        model = registry.build(record["arch"], record["options"])
        model.load_state_dict(record["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{source}: weights do not fit their architecture ({exc})") from None
    model.eval()
    model.meta = record.get("meta", {})
    return model


def training_meta(meta: dict) -> dict:
    """How a model was trained, from its ``meta``: shipped weights keep it under ``training``
    (``benchmarks/release_weights.py``), a checkpoint at the top level."""
    return meta.get("training", meta)


def load_model(path: Path) -> nn.Module:
    """A model in eval mode from a user's weights file or checkpoint."""
    return model_from_record(load_checkpoint(path), str(path))


# --- shipped weights -------------------------------------------------------------------------

def weights_dir() -> Path:
    """``$DNCLI_WEIGHTS_DIR``, else the installed package's weights, else the source tree's."""
    override = os.environ.get("DNCLI_WEIGHTS_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_weights", package.parent / "weights"):
        if (candidate / MANIFEST).is_file():
            return candidate
    return package.parent / "weights"


def manifest(directory: Path | None = None) -> dict[str, dict]:
    """Shipped models by name: each entry names its ``file``, ``sha256``, ``arch`` and metrics."""
    path = (directory or weights_dir()) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())["models"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise WeightsError(f"{path}: unreadable manifest ({exc})") from None


def verify(name: str, directory: Path | None = None) -> Path:
    """The path of shipped model ``name`` after its sha256 matched the manifest."""
    directory = directory or weights_dir()
    entries = manifest(directory)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise WeightsError(f"no shipped model named {name!r} (shipped: {known})")
    path = directory / entries[name]["file"]
    if not path.is_file():
        raise WeightsError(f"shipped weights missing: {path}")
    if sha256_file(path) != entries[name]["sha256"]:
        raise WeightsError(f"{path}: sha256 does not match the manifest (corrupt or replaced file)")
    return path


def load_shipped(name: str) -> nn.Module:
    return load_model(verify(name))


def resolve(spec: str) -> Path:
    """The file of ``spec``: a user's weights file, else a shipped model (checksum verified)."""
    path = Path(spec)
    if path.is_file() or spec not in manifest():
        return path
    return verify(spec)


# --- networks from elsewhere -------------------------------------------------------------------

class _FirstOutput(nn.Module):
    """Wraps a saved program so it returns one tensor: torchvision's segmenters return a dict
    with the logits under ``out``.  An exported program keeps the mode it was exported in,
    since it cannot switch between training and eval."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def train(self, mode: bool = True) -> "_FirstOutput":
        self.training = mode
        try:
            self.network.train(mode)
        except NotImplementedError:
            pass
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.network(x)
        if isinstance(output, dict):
            return output["out"]
        if isinstance(output, (tuple, list)):
            return output[0]
        return output


def why_not_a_denoiser(model: nn.Module) -> str | None:
    """None when ``model`` denoises images (``model(x, sigma)``, as ``dncli denoise`` and
    ``deblur`` run it); else what it is instead, to complete "NAME is ..."."""
    if getattr(model, "image_denoiser", False):
        return None
    if getattr(model, "task", None):
        return (f"a task network (--task {model.task}), not a denoiser "
                "(it goes behind one: 'dncli cascade-train --task-model')")
    return f"a {model.arch_name} model, not an image denoiser (see 'dncli models')"


def program_kind(path: Path) -> str | None:
    """``torchscript`` for an archive of ``torch.jit.save``, ``export`` for one of
    ``torch.export.save`` (a ``.pt2``), None for anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any(name.endswith("/archive_format") for name in names):
        return "export"
    if any("/code/" in name for name in names):
        return "torchscript"
    return None


def load_network(spec: str, arch: str | None = None, options: dict | None = None) -> nn.Module:
    """Any network a user may plug in, in eval mode.

    ``spec`` is a shipped model name, a dncli weights file, a program saved by
    ``torch.export.save`` (named ``.pt2``, exported with dynamic batch, height and width) or by
    ``torch.jit.save`` (TorchScript), whose loading runs code (``torch.export.load`` unpickles),
    so load only programs you trust; or, with ``arch`` (a built-in architecture name and its
    ``options``), a file holding a plain ``state_dict``, which is never taken for a program.
    """
    path = resolve(spec)
    if not path.is_file():
        raise WeightsError(f"model not found: {spec} (neither a file nor a shipped model name)")
    kind = None if arch is not None else program_kind(path)
    if kind == "export" and path.suffix != ".pt2":
        # Loading one unpickles arbitrary objects: only a name that says so may do that.
        raise WeightsError(f"{path}: a torch.export program; name it .pt2 to load it (only if you trust it)")
    if kind is not None:
        try:
            if kind == "export":
                network = torch.export.load(str(path)).module()
            else:
                network = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError, KeyError) as exc:
            raise WeightsError(f"{path}: not a loadable {kind} program ({exc.__class__.__name__})") from None
        return _FirstOutput(network).eval()
    if arch is None:
        return load_model(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable state dict ({exc.__class__.__name__})") from None
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state = state["state_dict"]
    return model_from_record({"arch": arch, "options": options or {}, "state_dict": state}, str(path))
