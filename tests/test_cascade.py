"""Task networks and the denoiser cascade: labelled layouts, task-train, cascade-train, plug-in models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, assert_clean_error, free_port, run_dncli, write_png
from denoise_cli.engine import registry, weights
from denoise_cli.engine.metrics import IGNORE_LABEL, confusion_matrix, mean_iou

SMALL = {"widths": (8, 8, 8)}


def stripes(size: int, vertical: bool, seed: int) -> np.ndarray:
    """Class 0: horizontal stripes, class 1: vertical stripes, random period, phase and tint."""
    rng = np.random.default_rng(seed)
    coordinate = np.arange(size)[None, :] if vertical else np.arange(size)[:, None]
    wave = 0.5 + 0.4 * np.sin(2 * np.pi * coordinate / rng.uniform(3, 6) + rng.uniform(0, 6))
    plane = np.broadcast_to(wave, (size, size))
    tint = rng.uniform(0.6, 1.0, 3)
    return np.clip(plane[..., None] * tint * 255, 0, 255).astype(np.uint8)


def classification_folder(root: Path, count: int, offset: int = 0) -> Path:
    for label, name in enumerate(("horizontal", "vertical")):
        for index in range(count):
            write_png(root / name / f"{index}.png", stripes(16, bool(label), offset + 2 * index + label))
    return root


def segmentation_folder(root: Path, count: int, offset: int = 0) -> Path:
    """Bright rectangles (class 1) on a dark textured ground (class 0), border unlabelled."""
    for index in range(count):
        rng = np.random.default_rng(offset + index)
        mask = np.zeros((24, 24), np.uint8)
        top, left = rng.integers(2, 12, 2)
        mask[top:top + rng.integers(6, 10), left:left + rng.integers(6, 10)] = 1
        image = 60 + 140 * mask[..., None] + rng.integers(0, 40, (24, 24, 3))
        mask[0, :] = IGNORE_LABEL
        write_png(root / "images" / f"{index}.png", image.astype(np.uint8))
        write_png(root / "masks" / f"{index}.png", mask[..., None])
    return root


def image_of_blobs(size: int, seed: int) -> np.ndarray:
    """A smooth colour image: a few Gaussian blobs of random colour (a stand-in for photos)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    image = np.zeros((size, size, 3))
    for _ in range(4):
        centre, width = rng.uniform(0, size, 2), rng.uniform(2, 6)
        blob = np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * width ** 2))
        image += blob[..., None] * rng.uniform(0.2, 0.8, 3)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def trained_classifier(folder: Path, output: Path) -> dict:
    result = run_dncli("task-train", str(folder / "train"), "--task", "classify", "-o", str(output),
                       "--val", str(folder / "val"), "--crop", "16", "--pad", "0", "--widths", "8,8,8",
                       "--batch-size", "16", "--max-steps", "100", "--validate-every", "100", "--lr", "5e-3",
                       "--json", env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("classify")
    classification_folder(root / "train", 12)
    classification_folder(root / "val", 6, offset=1000)
    summary = trained_classifier(root, root / "classifier.pt")
    return root, root / "classifier.pt", summary


def test_task_train_learns_to_classify(classifier):
    _, path, summary = classifier
    assert summary["history"][-1]["accuracy"] >= 0.9
    record = weights.load_checkpoint(path)
    assert record["meta"]["class_names"] == ["horizontal", "vertical"]


def test_task_train_learns_to_segment(tmp_path: Path):
    segmentation_folder(tmp_path / "train", 8)
    segmentation_folder(tmp_path / "val", 4, offset=100)
    result = run_dncli("task-train", str(tmp_path / "train"), "--task", "segment", "-o", str(tmp_path / "s.pt"),
                       "--val", str(tmp_path / "val"), "--crop", "24", "--widths", "8,8,8", "--batch-size", "8",
                       "--max-steps", "100", "--validate-every", "100", "--lr", "5e-3", "--json",
                       env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["history"][-1]["miou"] > 0.8


def test_mean_iou_ignores_unlabelled_pixels():
    target = np.array([[0, 0, 1, IGNORE_LABEL]])
    predicted = np.array([[0, 1, 1, 0]])
    confusion = confusion_matrix(predicted, target, 2)
    assert confusion.tolist() == [[1, 1], [0, 1]]
    assert mean_iou(confusion) == pytest.approx((1 / 2 + 1 / 2) / 2)


@pytest.mark.parametrize("mode", ["labelled-mse", "photo-mse", "no-labels"])
def test_cascade_lowers_the_task_loss_and_leaves_the_task_network_alone(classifier, one_thread, mode):
    """With --photos the squared error moves to other images; the task term must still act.  With
    no labels at all (the training images as photos, the classifier's clean predictions as
    targets) the denoised images must still come closer to their true labels."""
    from denoise_cli.engine.training.cascade import CascadeTraining
    from denoise_cli.engine.training.data import PatchSampler
    from denoise_cli.engine.training.labelled import LabelledSampler, load_labelled
    from denoise_cli.engine.training.task_networks import task_loss
    from denoise_cli.engine.training.trainer import TrainConfig, train

    root, path, _ = classifier
    data = load_labelled("classify", root / "train")
    generator = torch.Generator().manual_seed(123)
    clean, labels = LabelledSampler(load_labelled("classify", root / "val"), 16).sample(64, generator)
    sigma = 60.0
    noisy = clean + torch.randn(clean.shape, generator=generator) * sigma / 255
    photo_sampler = {"labelled-mse": None, "no-labels": PatchSampler(data.images, 16),
                     "photo-mse": PatchSampler([image_of_blobs(24, seed) for seed in range(4)], 16)}[mode]
    sampler = None if mode == "no-labels" else LabelledSampler(data, 16)
    losses = {}
    for weight in (0.0, 1.0):
        task_network = weights.load_model(path)
        before = {k: v.clone() for k, v in task_network.state_dict().items()}
        torch.manual_seed(0)
        denoiser = registry.build("unet3", {"channels": 3, **TINY})
        cascade = CascadeTraining(task_network, sampler, (sigma, sigma), weight, torch.device("cpu"), photos=photo_sampler)
        config = TrainConfig(max_steps=60, batch_size=16, learning_rate=3e-3, warmup_steps=5, validate_every=0)
        train(denoiser, cascade, config, root / f"cascade-{weight}.pt", {}, torch.device("cpu"))
        with torch.no_grad():
            losses[weight] = task_loss(task_network(denoiser.eval()(noisy, sigma / 255)), labels).item()
            clean_loss = task_loss(task_network(clean), labels).item()
        assert all(torch.equal(v, task_network.state_dict()[k]) for k, v in before.items())
    # the part of the loss that the noise adds is what the cascade is there to take away
    assert losses[1.0] - clean_loss < 0.6 * (losses[0.0] - clean_loss), (losses, clean_loss)


def test_cascade_cli_writes_denoiser_weights_that_resume_and_denoise(classifier, tmp_path: Path, tiny_weights):
    root, path, _ = classifier
    output = tmp_path / "cascade.pt"
    for seed in range(2):
        write_png(tmp_path / "photos" / f"{seed}.png", image_of_blobs(24, seed))
    args = ["cascade-train", str(root / "train"), "--task", "classify", "--task-model", str(path),
            "--denoiser", str(tiny_weights(3)), "-o", str(output), "--sigma", "20,40", "--lambda", "0.1",
            "--crop", "16", "--pad", "0", "--batch-size", "4", "--photos", str(tmp_path / "photos"),
            "--photo-crop", "16"]
    first = run_dncli(*args, "--max-steps", "6", "--max-time", "0", env={"OMP_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stderr.decode()
    assert weights.load_checkpoint(output)["step"] == 0
    resumed = run_dncli(*args, "--max-steps", "6", "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr.decode()
    record = weights.load_checkpoint(output)
    assert record["step"] == 6 and record["arch"] == "unet3"
    assert record["meta"]["cascade"]["lambda"] == 0.1
    assert record["meta"]["cascade"]["photos"] == [str(tmp_path / "photos")]
    noisy = write_png(tmp_path / "n.png", stripes(20, True, 7))
    denoised = run_dncli("denoise", str(noisy), "-s", "30", "--weights", str(output), "-o", str(tmp_path / "d.png"))
    assert denoised.returncode == 0, denoised.stderr.decode()

    unlabelled = tmp_path / "unlabelled.pt"
    result = run_dncli("cascade-train", str(tmp_path / "photos"), "--no-labels", "--task", "classify",
                       "--task-model", str(path), "--denoiser", str(tiny_weights(3)), "-o", str(unlabelled),
                       "--photo-crop", "16", "--batch-size", "4", "--max-steps", "2", env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()
    cascade = weights.load_checkpoint(unlabelled)["meta"]["cascade"]
    assert cascade["labels"] is False and cascade["lambda"] == 0.002
    assert cascade["photos"] == [str(tmp_path / "photos")]


def test_user_networks_plug_in_as_programs_or_state_dict(tmp_path: Path):
    torch.manual_seed(0)
    classifier = registry.build("classifier-cnn", {"classes": 4, **SMALL}).eval()
    images = torch.rand(2, 3, 16, 16)
    expected = classifier(images)

    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=8), 3: torch.export.Dim("width", min=8)}
    torch.export.save(torch.export.export(classifier, (images,), dynamic_shapes={"x": dims}), tmp_path / "m.pt2")
    exported = weights.load_network(str(tmp_path / "m.pt2"))
    assert torch.allclose(exported(images), expected, atol=1e-5)
    assert exported(torch.rand(3, 3, 24, 20)).shape == (3, 4)
    # Loading an export program unpickles: only a file named .pt2, and never one given as a state dict.
    (tmp_path / "m.pt").write_bytes((tmp_path / "m.pt2").read_bytes())
    with pytest.raises(weights.WeightsError, match="name it .pt2"):
        weights.load_network(str(tmp_path / "m.pt"))
    with pytest.raises(weights.WeightsError, match="not a readable state dict"):
        weights.load_network(str(tmp_path / "m.pt2"), "classifier-cnn", {"classes": 4, **SMALL})

    torch.jit.script(classifier).save(str(tmp_path / "scripted.pt"))
    torch.save(classifier.state_dict(), tmp_path / "state.pt")
    scripted = weights.load_network(str(tmp_path / "scripted.pt"))
    from_state = weights.load_network(str(tmp_path / "state.pt"), "classifier-cnn", {"classes": 4, **SMALL})
    assert torch.allclose(scripted(images), expected, atol=1e-5)
    assert torch.allclose(from_state(images), expected, atol=1e-6)

    class DictOutput(torch.nn.Module):  # the shape of torchvision's segmenters
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": x.mean(1, keepdim=True), "aux": x}

    torch.jit.script(DictOutput()).save(str(tmp_path / "dict.pt"))
    assert weights.load_network(str(tmp_path / "dict.pt"))(images).shape == (2, 1, 16, 16)


def test_wrong_layouts_and_models_are_clean_errors(tmp_path: Path, tiny_weights):
    write_png(tmp_path / "one_class" / "a" / "0.png", stripes(16, True, 0))
    result = run_dncli("task-train", str(tmp_path / "one_class"), "--task", "classify", "-o", str(tmp_path / "m.pt"))
    assert_clean_error(result, 2, "one folder of images per class")
    (tmp_path / "seg" / "images").mkdir(parents=True)
    result = run_dncli("task-train", str(tmp_path / "seg"), "--task", "segment", "-o", str(tmp_path / "m.pt"))
    assert_clean_error(result, 2, "images/ and masks/")
    write_png(tmp_path / "seg" / "images" / "0.png", stripes(16, True, 0))
    write_png(tmp_path / "seg" / "masks" / "0.png", np.zeros((8, 8, 1), np.uint8))
    result = run_dncli("task-train", str(tmp_path / "seg"), "--task", "segment", "-o", str(tmp_path / "m.pt"))
    assert_clean_error(result, 2, "mask is 8x8")
    classification_folder(tmp_path / "cls", 2)
    result = run_dncli("cascade-train", str(tmp_path / "cls"), "--task", "classify", "--task-model",
                       str(tmp_path / "missing.pt"), "-o", str(tmp_path / "c.pt"))
    assert_clean_error(result, 1, "missing.pt")
    result = run_dncli("cascade-train", str(tmp_path / "cls"), "--task", "classify", "--task-model",
                       str(tiny_weights(3)), "--denoiser", str(tiny_weights(1, "gray.pt")), "-o", str(tmp_path / "c.pt"))
    assert_clean_error(result, 2, "colour unet3 denoiser")
    # A task network that cannot score the task's classes is refused before any training.
    segmentation_folder(tmp_path / "segments", 2)
    for classes, task, message in ((1, "classify", "scores 1 classes and the data has 2"),
                                   (2, "segment", "needs [batch, classes, height, width] logits")):
        weights.save_weights(tmp_path / f"{classes}.pt", registry.build("classifier-cnn", {"classes": classes, **SMALL}))
        result = run_dncli("cascade-train", str(tmp_path / ("cls" if task == "classify" else "segments")), "--task", task,
                           "--task-model", str(tmp_path / f"{classes}.pt"), "--denoiser", str(tiny_weights(3)),
                           "-o", str(tmp_path / "c.pt"))
        assert_clean_error(result, 2, message)
    result = run_dncli("cascade-train", str(tmp_path / "cls"), "--task", "classify", "--task-model",
                       str(tiny_weights(3)), "--denoiser", str(tiny_weights(3)), "-o", str(tmp_path / "c.pt"))
    assert_clean_error(result, 2, "cannot run on a batch of RGB images")
    result = run_dncli("cascade-train", str(tmp_path / "cls"), "--task", "classify", "--task-model",
                       str(tmp_path / "2.pt"), "--denoiser", str(tiny_weights(3)), "--photos", str(tmp_path / "cls"),
                       "-o", str(tmp_path / "c.pt"))
    assert_clean_error(result, 2, "no usable images of at least 64x64")
    for extra, message in ((["--no-labels", "--photos", str(tmp_path / "cls")], "--photos"),
                           (["--no-labels", "--crop", "16"], "--crop"), ([str(tmp_path / "cls")], "one directory")):
        result = run_dncli("cascade-train", str(tmp_path / "cls"), *extra, "--task", "classify",
                           "--task-model", str(tiny_weights(3)), "-o", str(tmp_path / "c.pt"))
        assert_clean_error(result, 2, message)
    assert not (tmp_path / "c.pt").exists()


def test_cascade_trains_data_parallel_with_two_cpu_processes(classifier, tmp_path: Path, tiny_weights):
    import os
    import subprocess
    import sys

    root, path, _ = classifier
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", free_port(),
               "-m", "denoise_cli", "cascade-train", str(root / "train"), "--task", "classify",
               "--task-model", str(path), "--denoiser", str(tiny_weights(3)), "-o", str(tmp_path / "ddp.pt"),
               "--crop", "16", "--pad", "0", "--batch-size", "2", "--max-steps", "3"]
    result = subprocess.run(command, capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode()[:3000]
    record = weights.load_checkpoint(tmp_path / "ddp.pt")
    assert record["step"] == 3 and record["meta"]["world_size"] == 2


def test_denoise_refuses_a_task_network(classifier, tmp_path: Path):
    _, path, _ = classifier
    image = write_png(tmp_path / "n.png", stripes(16, True, 3))
    result = run_dncli("denoise", str(image), "-s", "25", "--weights", str(path), "-o", str(tmp_path / "d.png"))
    assert_clean_error(result, 2, "not a denoiser")
    assert not (tmp_path / "d.png").exists()
