"""Blur kernels (point spread functions) and blurring.

Kernels are 2-D float64 arrays that sum to 1; every size, sigma and length is in pixels.
Used by ``dncli degrade --blur SPEC`` and ``dncli deblur --kernel SPEC``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.signal

# Largest side (px) of a parametric kernel; guards against specs such as gaussian:1e6
# allocating gigabytes before anything useful happens.
MAX_KERNEL_SIZE = 1025

# Above this side length (px) blur() switches from direct convolution to FFT, which wins
# once the kernel has more than a few hundred taps.
FFT_THRESHOLD = 15

# Relative tolerance on the kernel sum before validate_kernel() warns about normalising.
SUM_TOLERANCE = 1e-6

_IMAGE_SUFFIXES = {".png", ".tif", ".tiff"}
_TEXT_SUFFIXES = {".txt", ".csv"}
_SPEC_FORMS = "gaussian:SIGMA, motion:LENGTH,ANGLE, box:N or a .npy/.png/.tif/.txt file"

# np.pad mode equivalent to each scipy.ndimage boundary mode: numpy's 'symmetric'
# repeats the edge sample, exactly like scipy's 'reflect' (d c b a | a b c d | d c b a).
_PAD_MODES = {"wrap": "wrap", "reflect": "symmetric"}


class KernelError(ValueError):
    """A kernel spec, file or array is unusable; the message is a one-line user-facing error."""


def parse_kernel(spec: str) -> tuple[np.ndarray, list[str]]:
    """Build a kernel from a spec.

    ``spec`` is one of

    * ``gaussian:SIGMA`` -- isotropic Gaussian, SIGMA > 0 px, square side ``2*ceil(3*SIGMA)+1``;
    * ``motion:LENGTH,ANGLE`` -- straight line LENGTH >= 1 px long (Euclidean) through the
      centre, ANGLE degrees counter-clockwise from the +x axis (x right, y up on screen),
      anti-aliased, odd square support;
    * ``box:N`` -- N x N uniform, N a positive integer;
    * a file: ``.npy`` (2-D array), ``.png``/``.tif``/``.tiff`` (8/16-bit or float gray; colour
      is averaged over its channels, alpha dropped), ``.txt``/``.csv`` (one row per line, values
      separated by whitespace and/or commas, ``#`` starts a comment line).

    Returns ``(kernel, warnings)``: the kernel as float64 2-D normalised to sum 1, and
    human-readable warnings (e.g. that a file kernel was renormalised).
    Raises :class:`KernelError` for a malformed spec, missing/unreadable file or invalid kernel.
    """
    spec = spec.strip()
    kind, sep, args = spec.partition(":")
    builders = {"gaussian": _gaussian, "motion": _motion, "box": _box}
    if sep and kind.lower() in builders:
        return builders[kind.lower()](spec, args.strip()), []

    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in {".npy"} | _IMAGE_SUFFIXES | _TEXT_SUFFIXES:
        if sep:
            raise KernelError(f"kernel spec '{spec}': unknown kind '{kind}'; expected {_SPEC_FORMS}")
        raise KernelError(f"kernel spec '{spec}': expected {_SPEC_FORMS}")
    name = f"kernel file {spec}"
    if not path.is_file():
        raise KernelError(f"{name}: not found")
    try:
        if suffix == ".npy":
            # allow_pickle=False: a kernel file must never be able to run code.
            raw = np.load(path, allow_pickle=False)
        elif suffix in _IMAGE_SUFFIXES:
            raw = _image_to_gray(path, name)
        else:
            raw = _read_text(path, name)
    except KernelError:
        raise
    except Exception as exc:  # any reader failure (corrupt file, wrong format) is a user error
        raise KernelError(f"{name}: cannot read ({type(exc).__name__}: {exc})") from None
    return validate_kernel(raw, name)


def validate_kernel(kernel: np.ndarray, name: str = "kernel") -> tuple[np.ndarray, list[str]]:
    """Check a kernel and normalise it.

    The kernel must be 2-D, non-empty, finite and non-negative with a positive sum.
    Returns ``(kernel as a float64 copy summing to 1, warnings)``; a warning is added when
    the sum differed from 1 by more than ``SUM_TOLERANCE`` (relative).
    ``name`` prefixes error and warning messages (e.g. ``"kernel file k.npy"``).
    Raises :class:`KernelError` otherwise.
    """
    try:
        k = np.array(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise KernelError(f"{name}: not a numeric array") from None
    if k.ndim != 2:
        raise KernelError(f"{name}: must be a 2-D array, got shape {k.shape}")
    if k.size == 0:
        raise KernelError(f"{name}: is empty (shape {k.shape})")
    if not np.all(np.isfinite(k)):
        raise KernelError(f"{name}: contains NaN or infinite values")
    if np.any(k < 0):
        raise KernelError(f"{name}: contains negative values (min {k.min():.4g})")
    total = float(k.sum())
    if total <= 0:
        raise KernelError(f"{name}: sums to zero")
    warnings = []
    if abs(total - 1.0) > SUM_TOLERANCE:
        warnings.append(f"{name}: sum was {total:.6g}, normalised to 1")
    return k / total, warnings


def blur(image: np.ndarray, kernel: np.ndarray, boundary: str = "wrap") -> np.ndarray:
    """Convolve every channel of an image with ``kernel``.

    ``image`` is float ``[H, W, C]`` (or ``[H, W]``; the output keeps the input shape), any
    value range. ``kernel`` is any 2-D array, used as given (not normalised), its centre at
    ``(kh // 2, kw // 2)``. This is true convolution, identical to
    ``scipy.ndimage.convolve(channel, kernel, mode=boundary)``:

    * ``boundary='wrap'`` -- circular (periodic) image, the BENCHMARK.md P2 protocol;
    * ``boundary='reflect'`` -- half-sample symmetric extension (d c b a | a b c d | d c b a).

    Kernels wider or taller than ``FFT_THRESHOLD`` px are applied via FFT (agrees with scipy to
    well within 1e-5 for [0, 1] images). Returns float32.
    """
    if boundary not in _PAD_MODES:
        raise ValueError(f"boundary must be 'wrap' or 'reflect', got '{boundary}'")
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise KernelError(f"kernel: must be a non-empty 2-D array, got shape {k.shape}")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be [H, W] or [H, W, C], got shape {img.shape}")
    planar = img[:, :, None] if img.ndim == 2 else img

    kh, kw = k.shape
    if max(kh, kw) > FFT_THRESHOLD:
        # Extend the image exactly as scipy would, then keep only outputs whose support lies
        # inside the padded array ('valid'): with the centre at (kh//2, kw//2), output (i, j)
        # reads rows i+kh//2-(kh-1) .. i+kh//2, hence kh-1-kh//2 rows before and kh//2 after.
        pad = ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2), (0, 0))
        padded = np.pad(planar, pad, mode=_PAD_MODES[boundary])
        out = scipy.signal.fftconvolve(padded, k[:, :, None], mode="valid", axes=(0, 1))
    else:
        out = np.stack(
            [scipy.ndimage.convolve(planar[:, :, c], k, mode=boundary) for c in range(planar.shape[2])],
            axis=2,
        )
    return out.reshape(img.shape).astype(np.float32)


def _parse_numbers(spec: str, args: str, count: int, form: str) -> list[float]:
    """``count`` comma-separated numbers from ``args``, or KernelError naming ``form``."""
    parts = [p.strip() for p in args.split(",")]
    try:
        if len(parts) != count:
            raise ValueError
        return [float(p) for p in parts]
    except ValueError:
        raise KernelError(f"kernel spec '{spec}': expected {form}") from None


def _check_size(spec: str, side: int) -> None:
    if side > MAX_KERNEL_SIZE:
        raise KernelError(f"kernel {spec}: too large ({side} px on a side, at most {MAX_KERNEL_SIZE})")


def _gaussian(spec: str, args: str) -> np.ndarray:
    """Isotropic Gaussian sampled at pixel centres, side 2*ceil(3*sigma)+1 (covers +-3 sigma)."""
    (sigma,) = _parse_numbers(spec, args, 1, "gaussian:SIGMA")
    if not sigma > 0:  # also rejects NaN
        raise KernelError(f"kernel {spec}: sigma must be positive")
    if not math.isfinite(sigma):
        raise KernelError(f"kernel {spec}: sigma must be finite")
    radius = math.ceil(3 * sigma)
    _check_size(spec, 2 * radius + 1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)  # separable, so the outer product is exactly the 2-D Gaussian
    return k / k.sum()


def _motion(spec: str, args: str) -> np.ndarray:
    """Anti-aliased line segment, MATLAB fspecial('motion') style.

    The segment has Euclidean length ``length - 1`` between the centres of its end pixels, so
    an axis-aligned line covers exactly ``length`` pixels at full weight (odd lengths). Each
    pixel gets weight ``max(0, 1 - d)``, d its distance (px) to the segment, which spreads
    oblique lines over their two nearest pixel rows instead of staircasing.
    """
    length, angle = _parse_numbers(spec, args, 2, "motion:LENGTH,ANGLE")
    if not length >= 1:  # also rejects NaN
        raise KernelError(f"kernel {spec}: length must be at least 1 pixel")
    if not (math.isfinite(length) and math.isfinite(angle)):
        raise KernelError(f"kernel {spec}: length and angle must be finite")
    half = (length - 1) / 2
    radius = math.ceil(half) + 1  # weights vanish beyond 1 px from the segment's end points
    _check_size(spec, 2 * radius + 1)
    theta = math.radians(angle)
    dx, dy = math.cos(theta), math.sin(theta)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    # Columns run along +x; rows run down the screen, so counter-clockwise means y = -row.
    x = offsets[None, :]
    y = -offsets[:, None]
    t = np.clip(x * dx + y * dy, -half, half)
    dist = np.hypot(x - t * dx, y - t * dy)
    k = np.maximum(0.0, 1.0 - dist)
    # Drop float residue such as cos(90 deg) = 6e-17, which would otherwise leave 1e-16
    # weights next to an axis-aligned line and widen its support.
    k[k < 1e-9] = 0.0
    # Crop to the smallest centred odd square still holding every non-zero weight.
    rows, cols = np.nonzero(k)
    keep = int(max(np.abs(rows - radius).max(), np.abs(cols - radius).max()))
    k = k[radius - keep : radius + keep + 1, radius - keep : radius + keep + 1]
    return k / k.sum()


def _box(spec: str, args: str) -> np.ndarray:
    """N x N uniform kernel."""
    (n,) = _parse_numbers(spec, args, 1, "box:N")
    if not (math.isfinite(n) and n >= 1 and n == int(n)):
        raise KernelError(f"kernel {spec}: N must be a positive integer")
    _check_size(spec, int(n))
    return np.full((int(n), int(n)), 1.0 / (n * n))


def _image_to_gray(path: Path, name: str) -> np.ndarray:
    """Read an image kernel as float gray: integers scaled to [0, 1], colour averaged."""
    import imageio.v3 as iio  # deferred: only file kernels need the image stack

    img = np.asarray(iio.imread(path))
    scale = np.iinfo(img.dtype).max if np.issubdtype(img.dtype, np.integer) else 1.0
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[:, :, :-1]  # drop alpha: it is opacity, not kernel weight
    if img.ndim == 3 and img.shape[2] in (1, 3):
        img = img.astype(np.float64).mean(axis=2)
    if img.ndim != 2:
        raise KernelError(f"{name}: expected a single gray or colour image, got shape {img.shape}")
    return img.astype(np.float64) / scale


def _read_text(path: Path, name: str) -> np.ndarray:
    """Read rows of numbers separated by whitespace and/or commas; '#' lines are comments."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        values = line.replace(",", " ").split()
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            raise KernelError(f"{name}: line {lineno} is not a row of numbers: '{line}'") from None
        if len(rows[-1]) != len(rows[0]):
            raise KernelError(
                f"{name}: line {lineno} has {len(rows[-1])} values, the first row has {len(rows[0])}"
            )
    if not rows:
        raise KernelError(f"{name}: contains no numbers")
    return np.array(rows)
