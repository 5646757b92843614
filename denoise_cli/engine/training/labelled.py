"""Labelled training data for the task networks and the cascade: classification folders and
segmentation image/mask pairs, held in memory, with random augmented crops on demand.

Layouts (what users of classifiers and segmenters already have):

* classification: one folder per class, ``DATA/<class name>/<image>``; classes are numbered in
  sorted name order, as torchvision's ``ImageFolder`` does.
* segmentation: ``DATA/images/<name>.<ext>`` and ``DATA/masks/<name>.png`` with the same stem;
  a mask is an 8-bit image of class indices, 255 (``IGNORE_LABEL``) for pixels without a label.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import IGNORE_LABEL
from .data import IMAGE_SUFFIXES, load_images

TASKS = ("classify", "segment")


@dataclass
class LabelledImages:
    """Images (uint8 ``[H, W, C]``) with a class per image (``classify``) or a class-index mask
    per image (``segment``, uint8 ``[H, W]``)."""

    task: str
    images: list[np.ndarray]
    targets: list[int] | list[np.ndarray]
    class_names: list[str] = field(default_factory=list)

    @property
    def classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        labels = np.concatenate([np.unique(m) for m in self.targets])
        return int(labels[labels != IGNORE_LABEL].max()) + 1


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_labelled(task: str, folder: Path, channels: int = 3) -> LabelledImages:
    """The labelled images of ``folder`` in the layout of ``task``; ValueError when it is not
    that layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    if task == "classify":
        class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and _image_files(p))
        if len(class_dirs) < 2:
            raise ValueError(f"{folder}: expected one folder of images per class, found {len(class_dirs)}")
        images, labels = [], []
        for label, class_dir in enumerate(class_dirs):
            found = load_images([class_dir], channels)
            images += found
            labels += [label] * len(found)
        return LabelledImages(task, images, labels, [d.name for d in class_dirs])
    if task == "segment":
        image_dir, mask_dir = folder / "images", folder / "masks"
        if not image_dir.is_dir() or not mask_dir.is_dir():
            raise ValueError(f"{folder}: expected images/ and masks/ folders")
        masks_by_stem = {p.stem: p for p in _image_files(mask_dir)}
        image_paths = [p for p in _image_files(image_dir) if p.stem in masks_by_stem]
        if not image_paths:
            raise ValueError(f"{folder}: no image in images/ has a mask of the same name in masks/")
        images, masks = [], []
        for path in image_paths:
            image = load_images([path], channels)[0]
            mask = _read_mask(masks_by_stem[path.stem])
            if mask.shape != image.shape[:2]:
                raise ValueError(f"{masks_by_stem[path.stem]}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                                 f"its image {image.shape[1]}x{image.shape[0]}")
            images.append(image)
            masks.append(mask)
        return LabelledImages(task, images, masks)
    raise ValueError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")


def _read_mask(path: Path) -> np.ndarray:
    from ...imgio.codec import read_image

    image = read_image(path)
    if image.depth != "8" or image.pixels.shape[2] != 1:
        raise ValueError(f"{path}: a mask must be an 8-bit single-channel image of class indices")
    return np.rint(image.pixels[..., 0] * 255).astype(np.uint8)


class LabelledSampler:
    """Random crops of ``crop`` pixels with a random horizontal flip, as ``(images, targets)``:
    images float ``[B, C, crop, crop]`` in [0, 1]; targets int64 ``[B]`` or ``[B, crop, crop]``.

    Classification images are first padded by edge replication by ``pad`` pixels (the usual CIFAR
    augmentation); images smaller than ``crop`` are padded up to it (masks with the ignore label).
    """

    def __init__(self, data: LabelledImages, crop: int, pad: int = 0) -> None:
        self.data, self.crop, self.pad = data, crop, pad
        self.images = [torch.from_numpy(im).permute(2, 0, 1) for im in data.images]
        self.masks = [torch.from_numpy(m) for m in data.targets] if data.task == "segment" else None

    def sample(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(0, len(self.images), (count,), generator=generator).tolist()
        crops, targets = [], []
        for index in picks:
            mask = self.masks[index] if self.masks is not None else None
            image, mask = self._padded(self.images[index], mask)
            top = int(torch.randint(0, image.shape[1] - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, image.shape[2] - self.crop + 1, (1,), generator=generator))
            window = (slice(top, top + self.crop), slice(left, left + self.crop))
            flip = bool(torch.randint(0, 2, (1,), generator=generator))
            crop = image[(slice(None), *window)].float() / 255.0  # only the crop is converted
            crops.append(crop.flip(2) if flip else crop)
            if mask is None:
                targets.append(torch.tensor(self.data.targets[index]))
            else:
                target = mask[window].long()
                targets.append(target.flip(1) if flip else target)
        return torch.stack(crops), torch.stack(targets)

    def _padded(self, image: torch.Tensor, mask: torch.Tensor | None):
        _, h, w = image.shape
        pad_h = max(self.pad, (self.crop - h + 1) // 2)
        pad_w = max(self.pad, (self.crop - w + 1) // 2)
        if pad_h == pad_w == 0:
            return image, mask
        image = F.pad(image[None].float(), (pad_w, pad_w, pad_h, pad_h), mode="replicate")[0]  # 0..255
        if mask is not None:
            mask = F.pad(mask[None].long(), (pad_w, pad_w, pad_h, pad_h), value=IGNORE_LABEL)[0]
        return image, mask
