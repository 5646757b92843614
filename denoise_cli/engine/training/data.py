"""Training data: clean images held in memory as uint8, random augmented patches on demand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm")


def to_gray_uint8(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma, rounded: how BSD68 was made from CBSD68."""
    luma = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def load_images(folders: list[Path], channels: int, min_size: int = 0) -> list[np.ndarray]:
    """All images under ``folders`` (recursively, sorted; a file stands for itself) as ``[H, W, channels]`` uint8 arrays.

    Colour images are converted to luma when ``channels`` is 1; gray images are repeated when
    ``channels`` is 3.  Images smaller than ``min_size`` on either side are skipped.
    """
    from ...imgio.codec import read_image

    missing = [str(folder) for folder in map(Path, folders) if not folder.exists()]
    if missing:
        raise UsageError(f"{', '.join(missing)}: no such file or directory")
    paths = [p for folder in map(Path, folders)
             for p in ([folder] if folder.is_file() else sorted(folder.rglob("*")))
             if p.suffix.lower() in IMAGE_SUFFIXES]
    images = []
    for path in paths:
        pixels = read_image(path).pixels  # float32 in [0, 1]
        array = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
        colour = array[..., :3] if array.shape[2] >= 3 else np.repeat(array[..., :1], 3, axis=2)
        array = to_gray_uint8(colour)[..., None] if channels == 1 else colour
        if min(array.shape[:2]) >= min_size:
            images.append(np.ascontiguousarray(array))
    if not images:
        smallest = f" of at least {min_size}x{min_size} pixels" if min_size else ""
        raise UsageError(f"no usable images{smallest} in {', '.join(map(str, folders))}")
    return images


def with_rescaled_copies(images: list[np.ndarray], scales: tuple[float, ...], min_side: int = 1) -> list[np.ndarray]:
    """uint8 ``images`` followed by a copy of each at every scale in ``scales`` below 1 (antialiased
    bicubic, rounded to uint8), DnCNN's multi-scale augmentation.  Copies smaller than ``min_side`` on
    either side are left out.

    Downscaling averages away the JPEG blocking and sensor noise of photos such as BSD's, so the
    network also learns from cleaner targets, closer to those of film scans like Kodak's.  With
    area-weighted sampling a copy at scale s is drawn s^2 times as often as its original.
    """
    if any(not 0 < scale <= 1 for scale in scales):
        raise ValueError(f"scales must lie in (0, 1]: {scales}")
    copies = []
    for scale in sorted({s for s in scales if s < 1}, reverse=True):
        for image in images:
            height, width = (round(side * scale) for side in image.shape[:2])
            if min(height, width) < min_side:
                continue
            pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
            small = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bicubic",
                                                    antialias=True, align_corners=False)
            copies.append(small[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
    return list(images) + copies


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from ``generator``, so that noise is drawn where the
    network runs (no host-to-device copy of it) and still follows the step's seed."""
    seeded = torch.Generator(device=device)
    seeded.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return seeded


class PatchSampler:
    """Random square patches with one of the 8 flips/rotations, as float tensors in [0, 1].

    Images are drawn with probability proportional to their area, so every pixel of the
    training set is equally likely to be seen.  ``images`` are uint8 ``[H, W, C]`` arrays
    (0..255, scaled to [0, 1]) or float32 ones already on the [0, 1] scale, which are used as
    they are: noisy training images keep their unclipped, unquantised values.
    """

    def __init__(self, images: list[np.ndarray], patch_size: int) -> None:
        small = [im.shape for im in images if min(im.shape[:2]) < patch_size]
        if small:
            raise ValueError(f"{len(small)} training images are smaller than the {patch_size}-pixel patch")
        if len({im.dtype for im in images}) > 1:
            raise ValueError("training images must all be uint8 or all float32")
        self.scale = 255.0 if images[0].dtype == np.uint8 else 1.0
        self.images = [torch.from_numpy(im).permute(2, 0, 1) for im in images]
        areas = torch.tensor([float(im.shape[0] * im.shape[1]) for im in images])
        self.weights = areas / areas.sum()
        self.patch_size = patch_size
        self._device_images: dict[torch.device, list[torch.Tensor]] = {}

    def sample(self, count: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """``count`` patches ``[count, C, P, P]`` on ``device``, moved there before their
        conversion to float.  The random draws come from ``generator`` (on the CPU) whatever
        the device, so a device gets the very patches the CPU would."""
        p = self.patch_size
        images = self._images_on(torch.device(device))
        picks = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        patches = []
        for index in picks.tolist():
            image = images[index]
            top = int(torch.randint(0, image.shape[1] - p + 1, (1,), generator=generator))
            left = int(torch.randint(0, image.shape[2] - p + 1, (1,), generator=generator))
            patch = image[:, top : top + p, left : left + p]
            turns = int(torch.randint(0, 4, (1,), generator=generator))
            patch = torch.rot90(patch, turns, dims=(1, 2))
            if int(torch.randint(0, 2, (1,), generator=generator)):
                patch = patch.flip(2)
            patches.append(patch)
        return torch.stack(patches).to(device).float() / self.scale

    def _images_on(self, device: torch.device) -> list[torch.Tensor]:
        """The images, copied once to a CUDA device when they take at most a quarter of its free
        memory.  Cropping there takes a hundred small host-side copies out of every step: with
        them, two blind-spot runs side by side on an H100 made 1.4 steps/s each; one cropping on
        the GPU makes 36 (benchmarks/gpu/README.md)."""
        if device.type != "cuda":
            return self.images
        if device not in self._device_images:
            size = sum(image.numel() * image.element_size() for image in self.images)
            free, _ = torch.cuda.mem_get_info(device)
            fits = size <= free // 4
            self._device_images[device] = [image.to(device) for image in self.images] if fits else self.images
        return self._device_images[device]
