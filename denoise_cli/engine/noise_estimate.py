"""Blind estimate of the additive white Gaussian noise level of one image (``dncli denoise -s auto``).

Both branches look at the eigenvalues of the covariance of the image's patches: white noise of
standard deviation sigma adds sigma^2 to every eigenvalue, while natural image content lives in a
few directions (and mostly in textured patches).

* Gray images (C = 1): weak-texture patches, after Liu, Tanaka & Okutomi, "Single-image noise
  level estimation for blind denoising", IEEE TIP 2013.  Patches whose gradient energy is
  compatible with pure noise at the current estimate are kept, and the smallest eigenvalue of their
  covariance is the next estimate; this is iterated.  The smallest sample eigenvalue of a
  covariance estimated from n samples in p dimensions sits at the lower edge of the
  Marchenko-Pastur law, sigma^2 (1 - sqrt(p / n))^2, so it is divided by that factor: without it the
  estimate falls short at high noise, by 1-2 % on BSD68 and about 5 % on 128 x 128 crops.
* Colour images (C > 1): the joint d x d x C patches of Chen, Zhu & Heng, "An efficient statistical
  method for image noise level estimation", ICCV 2015.  Noise is independent across channels while
  the channels of natural images are strongly correlated, so more than half of the eigenvalues are
  pure noise; sigma^2 is the mean of the largest set of smallest eigenvalues whose mean equals
  their median (the noise eigenvalues are spread symmetrically about sigma^2, signal ones are not).

Accuracy (``benchmarks/noise_estimate.py``, unclipped noise, sigma 5..75): mean absolute error
0.04-0.22 on CBSD68 and Kodak24 and 0.2-0.6 on Set12 and BSD68 (0..255 units), where texture that
passes for noise makes gray estimates read 0.2-0.6 high.  The other estimators tried, on the same
protocol, read texture as noise at low levels: at sigma 5 the wavelet median absolute deviation
(Donoho) and Immerkaer's Laplacian estimator give 6.4-7.3 on average over the four sets (single
images up to three times the truth), Chen's method on gray images 7.1-8.7 (its 64 dimensions mostly
carry texture).  The weak-texture method on joint colour patches was less accurate than Chen's
there, and several times slower.

Quantised, clipped input (what an image file holds) works but reads low at high noise.  Rounding
to 8 bits adds variance 1/12 (0..255 units), which matters only below sigma 1.  Clipping removes
noise near black and white, so patches holding a pixel at exactly 0 or 1 are left out; at high
noise nearly every patch holds one, and then all are used.  Measured with 8-bit clipped noisy
images (``--clip``): up to sigma 25 the mean estimates per set stay within 0.6 of the unclipped
ones (single images up to 4-7 low at sigma 25 where large areas are saturated); at sigma 50 they
are 5-11 % low, at sigma 75 16-17 % low.  Undoing that would need a censored-noise model (Foi,
"Clipped noisy images: heteroskedastic modeling and practical denoising", 2009).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import gamma

# Patch sides.  7 is Liu et al.'s choice; for colour, 6 x 6 x 3 = 108 dimensions measured as
# accurate as Chen et al.'s 8 x 8 x 3 = 192 with a third of the arithmetic (which grows as the
# square of the dimension).
_GRAY_PATCH = 7
_COLOUR_PATCH = 6
# Patch counts above which patches are taken on a coarser grid, to bound time and memory.  The
# gray branch needs many samples (its smallest eigenvalue is the estimate, whose spread shrinks with
# the count): stride 1 up to about 550 x 550 pixels.  The colour branch averages many eigenvalues
# and is as accurate with 30k patches (stride 3 at 500 x 500).
_GRAY_MAX_PATCHES = 300_000
_COLOUR_MAX_PATCHES = 30_000
# Fewer patches than this many per dimension make the covariance too noisy to estimate from.
_MIN_PATCHES_PER_DIMENSION = 10
# Quantile of the gradient energy of a pure-noise patch that a weak-texture patch stays below (Liu
# et al.'s value): so high that hardly any noise-only patch is rejected, which would bias low.
_CONFIDENCE = 1.0 - 1e-6
# The selection settles in 1-3 rounds (up to 6 on heavily textured images at low noise); the cap
# only guards against oscillation.
_MAX_ROUNDS = 10
# Relative change of the number of selected patches below which the selection counts as settled:
# the estimate would move by about 0.2 % more (measured on BSD68 images).
_SETTLED = 0.01


def estimate_sigma(image: np.ndarray) -> float:
    """Noise standard deviation on the 0..255 scale of a ``[H, W, C]`` float image in [0, 1].

    Values may exceed [0, 1]: noisy images are not clipped.  ``C = 1`` (gray) or 3 (colour; any
    ``C > 1`` is treated the same way); for colour the noise is assumed to have the same sigma in
    every channel, independent across channels, and one value is returned.  On natural images of
    a few hundred pixels a side with sigma 5..75 the error is typically below 0.5 and at most about
    2 (see the module docstring, also for the low bias of clipped 8-bit input); a noise-free image
    gives a value near 0.  The result is >= 0.

    Raises ``ValueError`` for other shapes, non-finite values, or images too small to estimate
    from: at least 29 x 29 pixels (gray) or 38 x 38 (colour).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] < 1:
        raise ValueError(f"expected an image [H, W, C], got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image has non-finite values")
    # Float32 makes the covariance products about twice as fast; removing the mean first keeps
    # their entries of the order of the image's variance, so float32 rounding stays far below
    # sigma^2 (estimates agree with float64 to 3e-5 relative at sigma 5, 3e-4 at sigma 1).
    centred = (image - image.mean()).astype(np.float32)
    # Pixels exactly at 0 or 1 are (almost surely) clipped: their noise is cut off.  Unclipped noisy
    # data goes past 0 and 1 but lands on them with probability 0, so it is left alone.
    clipped = np.any((image == 0.0) | (image == 1.0), axis=2)
    if image.shape[2] == 1:
        variance = _weak_texture_variance(centred[..., 0], clipped)
    else:
        variance = _joint_patch_variance(centred, clipped)
    return float(255.0 * np.sqrt(variance))


def _weak_texture_variance(image: np.ndarray, clipped: np.ndarray) -> float:
    """Noise variance of a gray ``[H, W]`` image (Liu et al. 2013, with the bias correction).

    ``clipped`` ``[H, W]`` marks pixels at the clipping limits; patches holding one are left out.
    """
    size = _GRAY_PATCH
    dimension = size * size
    stride = _stride(image.shape, size, _GRAY_MAX_PATCHES, dimension)
    patches = sliding_window_view(image, (size, size))[::stride, ::stride]
    energy = _gradient_energy(image, size)[::stride, ::stride]
    energy[~_unclipped(clipped, size, stride, dimension)] = np.inf  # never selected
    shape, scale_per_variance = _noise_energy_gamma(size)
    # gamma is a scale family: the quantile for noise variance v is v times this one
    quantile_per_variance = scale_per_variance * gamma.ppf(_CONFIDENCE, shape)

    # Liu et al. start from all patches; every other one on each axis gives the same start for a
    # quarter of the work (the start only sets the first, loose, threshold).
    variance = _smallest_eigenvalue_variance(patches[::2, ::2].reshape(-1, dimension))
    # The flattest patches always take part, so that images with few flat areas at low noise (or
    # none at all: a noise-free image) still get an estimate from their least textured parts.
    minimum = _MIN_PATCHES_PER_DIMENSION * dimension
    floor = np.partition(energy, minimum - 1, axis=None)[minimum - 1]
    count = 0
    for _ in range(_MAX_ROUNDS):
        threshold = max(quantile_per_variance * variance, floor)
        weak = energy <= threshold
        previous_count, count = count, np.count_nonzero(weak)
        # The selections are nested (one threshold or another on the same energies), so when the
        # count barely changes the covariance barely changes: stop without recomputing it.
        if abs(count - previous_count) <= _SETTLED * previous_count:
            break
        variance = _smallest_eigenvalue_variance(patches[weak].reshape(-1, dimension))
    return variance


def _smallest_eigenvalue_variance(patches: np.ndarray) -> float:
    """Noise variance from the smallest covariance eigenvalue of ``[n, p]`` patches."""
    count, dimension = patches.shape
    # clamped: rounding can push the eigenvalue of a noise-free image just below 0
    smallest = max(float(_covariance_eigenvalues(patches)[0]), 0.0)
    # Marchenko-Pastur lower edge: pure noise gives sigma^2 (1 - sqrt(p/n))^2, not sigma^2
    return smallest / (1.0 - np.sqrt(dimension / count)) ** 2


def _gradient_energy(image: np.ndarray, size: int) -> np.ndarray:
    """Sum of squared central differences inside each ``size x size`` patch, ``[H-size+1, W-size+1]``.

    The horizontal difference (x[i, j+1] - x[i, j-1]) / 2 exists for the inner ``size - 2``
    columns of a patch and the vertical one for its inner rows, as in Liu et al.'s gradient matrices.
    """
    horizontal = (0.5 * (image[:, 2:] - image[:, :-2])) ** 2  # column j holds the difference at j+1
    vertical = (0.5 * (image[2:] - image[:-2])) ** 2
    return _box_sum(horizontal, size, size - 2) + _box_sum(vertical, size - 2, size)


def _box_sum(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sums of all ``height x width`` windows (valid positions) via a summed-area table."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(axis=0, dtype=np.float64).cumsum(axis=1)
    return table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]


def _noise_energy_gamma(size: int) -> tuple[float, float]:
    """Gamma ``(shape, scale / sigma^2)`` matching the gradient energy of a pure-noise patch.

    The energy is n^T W n sigma^2 for white unit noise n, W = D^T D over the patch's difference
    operators D: mean sigma^2 tr(W), variance 2 sigma^4 tr(W^2).  Matching the two moments gives
    shape tr(W)^2 / (2 tr(W^2)) and scale 2 sigma^2 tr(W^2) / tr(W).  (Liu et al. take the shape
    from the rank of W, which is exact only if W's non-zero eigenvalues are equal; they are not.)
    """
    inner = np.arange(size - 2)
    difference = np.zeros((size - 2, size))  # central difference along one axis of a patch side
    difference[inner, inner] = -0.5
    difference[inner, inner + 2] = 0.5
    identity = np.eye(size)
    operators = np.vstack([np.kron(identity, difference), np.kron(difference, identity)])
    weights = operators.T @ operators
    trace, trace_of_square = np.trace(weights), np.sum(weights * weights)
    return trace**2 / (2.0 * trace_of_square), 2.0 * trace_of_square / trace


def _joint_patch_variance(image: np.ndarray, clipped: np.ndarray) -> float:
    """Noise variance of a colour ``[H, W, C]`` image (Chen et al. 2015 on joint patches).

    ``clipped`` ``[H, W]`` marks pixels at the clipping limits; patches holding one are left out.
    """
    size = _COLOUR_PATCH
    dimension = size * size * image.shape[2]
    stride = _stride(image.shape, size, _COLOUR_MAX_PATCHES, dimension)
    patches = sliding_window_view(image, (size, size), axis=(0, 1))[::stride, ::stride]
    usable = _unclipped(clipped, size, stride, dimension)
    eigenvalues = _covariance_eigenvalues(patches[usable].reshape(-1, dimension))
    # Largest k such that the k smallest eigenvalues have as many above their mean as below it
    # (mean = median); k = 1 always qualifies.
    for count in range(len(eigenvalues), 1, -1):
        tail = eigenvalues[:count]
        mean = tail.mean()
        if np.count_nonzero(tail > mean) == np.count_nonzero(tail < mean):
            return max(float(mean), 0.0)
    return max(float(eigenvalues[0]), 0.0)


def _stride(shape: tuple[int, ...], size: int, max_patches: int, dimension: int) -> int:
    """Grid step for ``size``-sided patches: 1 unless that gives more than ``max_patches``.

    Raises ``ValueError`` when even step 1 gives fewer than the minimum number of patches.
    """
    rows, columns = shape[0] - size + 1, shape[1] - size + 1
    if rows < 1 or columns < 1 or rows * columns < _MIN_PATCHES_PER_DIMENSION * dimension:
        raise ValueError(f"image {shape[0]}x{shape[1]} is too small to estimate its noise level")
    return max(1, int(np.ceil(np.sqrt(rows * columns / max_patches))))


def _unclipped(clipped: np.ndarray, size: int, stride: int, dimension: int) -> np.ndarray:
    """Patch positions on the ``stride`` grid without a clipped pixel; all of them if too few are.

    Too few happens at high noise (at sigma 50 most 6 x 6 x 3 patches of a typical photograph hold
    a clipped pixel): the estimate is then biased low rather than drawn from a handful of patches.
    """
    usable = (_box_sum(clipped.astype(np.float64), size, size) < 0.5)[::stride, ::stride]
    if np.count_nonzero(usable) < _MIN_PATCHES_PER_DIMENSION * dimension:
        return np.ones_like(usable)
    return usable


def _covariance_eigenvalues(patches: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the covariance of ``[n, p]`` float32 patch vectors."""
    # a matrix-vector product (BLAS) is about twice as fast as numpy's reduction along the long axis
    mean = np.dot(np.ones(len(patches), np.float32), patches).astype(np.float64) / len(patches)
    second_moment = (patches.T @ patches).astype(np.float64) / len(patches)
    return np.linalg.eigvalsh(second_moment - np.outer(mean, mean))
