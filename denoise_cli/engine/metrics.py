"""Image quality metrics of the evaluation protocol (``BENCHMARK.md``, P1).

Both take arrays ``[H, W]`` or ``[H, W, C]`` on one scale with its ``data_range`` (255 for
8-bit, 65535 for 16-bit, 1.0 for float images).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def quantize_uint8(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to 8 bits, as the protocol does to every output."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def psnr(estimate: np.ndarray, reference: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; ``inf`` when identical."""
    estimate, reference = _same_shape(estimate, reference)
    mse = np.mean((estimate - reference) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(estimate: np.ndarray, reference: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity with an 11x11 Gaussian window (sigma 1.5), mean over channels.

    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``: statistics with reflected borders,
    the mean taken over the image minus a 5-pixel border.
    """
    estimate, reference = _same_shape(estimate, reference)
    if estimate.ndim == 2:
        estimate, reference = estimate[..., None], reference[..., None]
    if min(estimate.shape[:2]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for channel in range(estimate.shape[2]):
        x, y = estimate[..., channel], reference[..., channel]

        def blur(a: np.ndarray) -> np.ndarray:
            return gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(index[5:-5, 5:-5].mean())
    return float(np.mean(scores))


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image sizes differ: {_describe(a.shape)} against {_describe(b.shape)}")
    return a, b


def _describe(shape: tuple[int, ...]) -> str:
    channels = shape[2] if len(shape) == 3 else 1
    return f"{shape[1]}x{shape[0]}x{channels}"


DATA_RANGE = {"8": 255.0, "16": 65535.0, "32f": 1.0}


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image in [0, 1], on [16/255, 235/255] as in MATLAB's rgb2ycbcr."""
    return (16.0 + image[..., :3] @ np.array([65.481, 128.553, 24.966])) / 255.0


def compare(estimate: np.ndarray, reference: np.ndarray, depth: str = "8", crop: int = 0,
            use_luma: bool = False) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``estimate`` against ``reference``, both ``[H, W, C]`` in [0, 1].

    ``depth`` is the reference's bit depth: 8- and 16-bit comparisons quantise both images to
    that depth (clipping the estimate), so a result saved to a file scores what it scores in
    memory; ``32f`` compares the float values with a data range of 1.  ``crop`` pixels are
    removed at every border first; ``use_luma`` compares the luma of colour images only.
    """
    if estimate.shape != reference.shape:
        _same_shape(estimate, reference)
    if use_luma and estimate.shape[-1] == 3:
        estimate, reference = luma(estimate)[..., None], luma(reference)[..., None]
    if crop:
        if 2 * crop >= min(estimate.shape[:2]):
            raise ValueError(f"--crop {crop} removes the whole image")
        estimate, reference = estimate[crop:-crop, crop:-crop], reference[crop:-crop, crop:-crop]
    data_range = DATA_RANGE[depth]
    if depth != "32f":
        estimate = np.clip(np.rint(np.asarray(estimate, np.float64) * data_range), 0, data_range)
        reference = np.clip(np.rint(np.asarray(reference, np.float64) * data_range), 0, data_range)
    channels_last = estimate if estimate.shape[-1] > 1 else estimate[..., 0]
    reference_last = reference if reference.shape[-1] > 1 else reference[..., 0]
    return {"psnr": psnr(channels_last, reference_last, data_range),
            "ssim": ssim(channels_last, reference_last, data_range)}


IGNORE_LABEL = 255  # a mask value that no class has: pixels left out of training and scoring


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    """``[classes, classes]`` counts of (true class, predicted class); ``IGNORE_LABEL`` and any
    other target outside ``0..classes-1`` is left out."""
    keep = (target >= 0) & (target < classes)
    pairs = target[keep].astype(np.int64) * classes + predicted[keep].astype(np.int64)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean over classes of intersection / union, classes absent from both target and
    prediction left out (the usual semantic segmentation score, in [0, 1])."""
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float(np.mean(intersection[present] / union[present])) if present.any() else float("nan")
