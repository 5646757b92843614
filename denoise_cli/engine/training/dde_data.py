"""Data for density estimation: built-in 2-D toys, ``.npy`` vectors, MNIST idx files, image folders.

``load_data(spec)`` understands

* ``toy:NAME``: a 2-D toy distribution (:data:`TOYS`), sampled afresh for every batch from the
  trainer's seeded ``torch.Generator``; every toy also has its exact log-density, plain and
  smoothed by the DDE's noise, for benchmarks (closed forms, or quadrature where none exists);
* a ``.npy`` file of vectors ``[N, D]``;
* an MNIST-style idx file (``.gz`` or not) of uint8 images ``[N, H, W]``;
* a directory of images (searched recursively), centre-cropped to squares and resized to ``size``.

Vectors are in their own units; images are float ``[C, H, W]`` in [0, 1] (stored as uint8).
"""
from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

IDX_UINT8 = 0x08  # the idx type code of unsigned bytes; MNIST images and labels use it


@dataclass(frozen=True)
class Toy:
    """A 2-D toy: ``sample(n, generator) -> [n, 2]`` and its exact ``log_density(x, sigma)``
    (``x`` ``[n, 2]`` -> ``[n]`` nats, ``-inf`` off the support) of the toy smoothed by
    ``N(0, sigma^2 I)`` (``sigma = 0``: the toy itself), which is what a DDE of noise level
    ``sigma`` learns at its optimum.  ``extent`` is the half-width of a square that holds it;
    ``exact`` says how the density is known."""

    name: str
    sample: Callable[[int, torch.Generator], torch.Tensor]
    log_density: Callable[[torch.Tensor, float], torch.Tensor]
    extent: float
    exact: str


# --- the toys ---------------------------------------------------------------------------------
# Scales are chosen so every toy fits in [-3, 3]^2 with unit-order variance, and its finest
# structure (component width, ring gap, square side) is a few times the DDE's noise level.

def _log_normal_2d(d2: torch.Tensor, var: float) -> torch.Tensor:
    """log N of isotropic 2-D Gaussians of variance ``var`` at squared distances ``d2``."""
    return -d2 / (2 * var) - math.log(2 * math.pi * var)


_GAUSS_RADIUS, _GAUSS_STD = 2.0, 0.2
_GAUSS_CENTRES = torch.tensor([[_GAUSS_RADIUS * math.cos(k * math.pi / 4), _GAUSS_RADIUS * math.sin(k * math.pi / 4)]
                               for k in range(8)], dtype=torch.float64)


def _gaussians_sample(n: int, generator: torch.Generator) -> torch.Tensor:
    picks = torch.randint(0, 8, (n,), generator=generator)
    return (_GAUSS_CENTRES[picks] + _GAUSS_STD * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def _gaussians_log_density(x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    d2 = ((x.double()[:, None, :] - _GAUSS_CENTRES[None]) ** 2).sum(-1)
    return torch.logsumexp(_log_normal_2d(d2, _GAUSS_STD ** 2 + sigma ** 2), 1) - math.log(8)


# A 4 x 4 board of unit squares on [-2, 2]^2; the 8 squares with an even index sum are filled.
_BOARD = torch.tensor([[i, j] for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0], dtype=torch.float64)


def _checkerboard_sample(n: int, generator: torch.Generator) -> torch.Tensor:
    picks = torch.randint(0, len(_BOARD), (n,), generator=generator)
    return (_BOARD[picks] + torch.rand(n, 2, generator=generator, dtype=torch.float64)).float()


def _checkerboard_log_density(x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    x = x.double()
    if sigma == 0:
        cell = torch.floor(x)
        filled = (cell >= -2).all(1) & (cell <= 1).all(1) & (cell.sum(1).remainder(2) == 0)
        # uniform on 8 unit squares: density 1/8 there, 0 elsewhere
        return torch.where(filled, torch.full_like(x[:, 0], -math.log(8)), torch.full_like(x[:, 0], -math.inf))
    # A unit square smoothed by N(0, sigma^2 I) is a product over the axes of
    # Phi((x - a) / sigma) - Phi((x - a - 1) / sigma); the board is the mean over its squares.
    def axis(t: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtr((t[:, None] - low) / sigma) - torch.special.ndtr((t[:, None] - low - 1) / sigma)

    mass = axis(x[:, 0], _BOARD[:, 0]) * axis(x[:, 1], _BOARD[:, 1])
    return mass.mean(1).clamp_min(1e-300).log()


_RING_RADII, _RING_STD = torch.tensor([0.6, 1.2, 1.8, 2.4], dtype=torch.float64), 0.06
_RING_WEIGHTS = _RING_RADII / _RING_RADII.sum()  # as many points per unit of arc length on every ring
_RING_NODES = 32  # Gauss-Hermite nodes per axis for the smoothed rings


def _rings_sample(n: int, generator: torch.Generator) -> torch.Tensor:
    picks = torch.multinomial(_RING_WEIGHTS, n, replacement=True, generator=generator)
    angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    radius = _RING_RADII[picks] + _RING_STD * torch.randn(n, generator=generator, dtype=torch.float64)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], 1).float()


def _rings_exact(x: torch.Tensor) -> torch.Tensor:
    # The signed radius R + s*e has a normal density; a negative one lands at |radius| on the
    # opposite side, so |x| = r has density phi(r - R) + phi(r + R).  The angle is uniform, so the
    # 2-D density divides the radial one by the circumference 2 pi r.
    r = x.double().norm(dim=1).clamp_min(1e-12)[:, None]
    var = _RING_STD ** 2
    log_phi = lambda t: -t ** 2 / (2 * var) - 0.5 * math.log(2 * math.pi * var)  # noqa: E731
    radial = torch.logaddexp(log_phi(r - _RING_RADII), log_phi(r + _RING_RADII)) + _RING_WEIGHTS.log()
    return torch.logsumexp(radial, 1) - torch.log(2 * math.pi * r[:, 0])


def _rings_log_density(x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    if sigma == 0:
        return _rings_exact(x)
    # No closed form once smoothed (the jitter is radial, the smoothing isotropic): E_n p(x + n)
    # by tensor-product Gauss-Hermite quadrature; the integrand is smooth at the scale of
    # sqrt(s^2 + sigma^2) > sigma, so 32 nodes per axis give many digits.
    from numpy.polynomial.hermite_e import hermegauss

    nodes, weights = hermegauss(_RING_NODES)  # for the weight exp(-t^2 / 2)
    t, log_w = torch.from_numpy(nodes), torch.from_numpy(weights / weights.sum()).log()
    offsets = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2) * sigma
    log_w = (log_w[:, None] + log_w[None, :]).reshape(-1)
    out = []
    for chunk in x.double().split(64):
        values = _rings_exact((chunk[:, None, :] + offsets[None]).reshape(-1, 2)).reshape(len(chunk), -1)
        out.append(torch.logsumexp(values + log_w, 1))
    return torch.cat(out)


_SPIRAL_TURNS, _SPIRAL_RADIUS, _SPIRAL_STD = 1.5, 2.5, 0.1
_SPIRAL_NODES = 4096  # quadrature nodes per arm for the density


def _spiral_points(u: torch.Tensor) -> torch.Tensor:
    """Points of the first arm at curve parameters ``u`` in [0, 1]: angle and radius grow like
    sqrt(u), so points are spread evenly along the arc (the arc length grows like the angle^2)."""
    angle = 2 * math.pi * _SPIRAL_TURNS * u.sqrt()
    radius = _SPIRAL_RADIUS * u.sqrt()
    return torch.stack([radius * angle.cos(), radius * angle.sin()], 1)


def _spirals_sample(n: int, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    arm = torch.randint(0, 2, (n, 1), generator=generator, dtype=torch.float64) * 2 - 1  # the second arm is mirrored
    points = arm * _spiral_points(u) + _SPIRAL_STD * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return points.float()


def _spirals_log_density(x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    # p(x) = 1/2 sum_arms integral_0^1 N(x; +-c(u), (s^2 + sigma^2) I) du, by the midpoint rule in u;
    # neighbouring nodes lie at most 2e-3 apart along the curve, 50 times closer than the jitter
    # s = 0.1, so the sum is exact to about 6 digits.
    u = (torch.arange(_SPIRAL_NODES, dtype=torch.float64) + 0.5) / _SPIRAL_NODES
    curve = _spiral_points(u)
    nodes = torch.cat([curve, -curve])
    var = _SPIRAL_STD ** 2 + sigma ** 2
    out = [torch.logsumexp(_log_normal_2d(torch.cdist(chunk, nodes) ** 2, var), 1) for chunk in x.double().split(512)]
    return torch.cat(out) - math.log(len(nodes))


TOYS: dict[str, Toy] = {
    "two-spirals": Toy("two-spirals", _spirals_sample, _spirals_log_density, 3.0, "quadrature along the curve"),
    "8-gaussians": Toy("8-gaussians", _gaussians_sample, _gaussians_log_density, 3.0, "closed form"),
    "checkerboard": Toy("checkerboard", _checkerboard_sample, _checkerboard_log_density, 2.5, "closed form"),
    "rings": Toy("rings", _rings_sample, _rings_log_density, 3.0,
                 "closed form; smoothed: Gauss-Hermite quadrature"),
}


# --- data sets --------------------------------------------------------------------------------

@dataclass
class DDEData:
    """Training or test data of a DDE: a toy sampled on demand, or a finite set in memory.

    ``values`` is ``[N, *shape]``: float32 vectors, or uint8 images ``[N, C, H, W]`` (0..255);
    ``shape`` is one sample's shape.  ``source`` names where it came from.
    """

    source: str
    shape: tuple[int, ...]
    values: torch.Tensor | None = None
    toy: Toy | None = None

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def __len__(self) -> int:
        return 0 if self.values is None else len(self.values)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` float32 samples: fresh toy draws, or rows drawn uniformly with replacement."""
        if self.toy is not None:
            return self.toy.sample(count, generator)
        picks = torch.randint(0, len(self.values), (count,), generator=generator)
        return self.as_float(self.values[picks])

    def as_float(self, values: torch.Tensor) -> torch.Tensor:
        """Stored rows as float32 (images divided by 255)."""
        return values.float() / 255.0 if values.dtype == torch.uint8 else values.float()

    def all(self, limit: int | None = None, seed: int = 0) -> torch.Tensor:
        """The whole finite set (or its first ``limit`` rows) as float32; for a toy, ``limit``
        draws (default 10000) from a generator seeded with ``seed``."""
        if self.toy is not None:
            return self.toy.sample(limit or 10000, torch.Generator().manual_seed(seed))
        return self.as_float(self.values[:limit])

    def statistics(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and variance ``[D]`` (toys: from 100000 seeded draws)."""
        values = self._rows(seed)
        return values.mean(0).float(), values.var(0, unbiased=False).float()

    def moments(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[D]`` and covariance ``[D, D]``, float64 (toys: from 100000 seeded draws)."""
        values = self._rows(seed)
        centred = values - values.mean(0)
        return values.mean(0), centred.T @ centred / len(values)

    def _rows(self, seed: int) -> torch.Tensor:
        return self.all(100000 if self.toy else None, seed).flatten(1).double()


def parse_subset(text: str | None) -> tuple[int, int | None] | None:
    """``"START:STOP"`` (0-based, STOP exclusive, either may be empty) as a tuple; ValueError if bad."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0] else 0
        stop = int(parts[1]) if parts[1] else None
    except ValueError:
        raise ValueError(f"--subset {text!r}: expected START:STOP, e.g. 0:8000") from None
    if start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"--subset {text!r}: need 0 <= START < STOP")
    return start, stop


def load_data(spec: str, size: int | None = None, channels: int | None = None,
              subset: tuple[int, int | None] | None = None, least: int = 2) -> DDEData:
    """The data named by ``spec`` (see the module docstring).

    ``size`` (pixels) resizes images to ``size x size``; ``channels`` (1 or 3) converts images to
    gray or colour (default: colour if any image has colour); ``subset`` keeps rows
    ``START:STOP`` of a finite set, which must hold at least ``least`` samples (training needs
    2, for the data's spread).  Raises FileNotFoundError or ValueError with a one-line message.
    """
    if spec.startswith("toy:"):
        name = spec[4:]
        if name not in TOYS:
            raise ValueError(f"unknown toy {name!r} (choose from {', '.join('toy:' + t for t in TOYS)})")
        if subset is not None:
            raise ValueError("--subset applies to finite data sets, not to toys (they are sampled afresh)")
        return DDEData(spec, (2,), toy=TOYS[name])
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such file or directory")
    if path.is_dir():
        values = _load_folder(path, size, channels)
    elif path.suffix.lower() == ".npy":
        values = _load_vectors(path)
    else:
        values = _load_idx(path)
        values = _resize_images(values, size, channels)
    if subset is not None:
        start, stop = subset
        if start >= len(values):
            raise ValueError(f"--subset starts at {start} but {spec} has {len(values)} samples")
        values = values[start:stop]
    if len(values) < least:
        raise ValueError(f"{spec}: need at least {least} samples, found {len(values)}")
    return DDEData(spec, tuple(values.shape[1:]), values=values)


def _load_vectors(path: Path) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path}: expected an [N, D] array of vectors, got shape {array.shape} ({array.dtype})")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def read_idx(path: Path) -> np.ndarray:
    """An idx array (LeCun's MNIST format: 2 zero bytes, a type code, the number of dimensions,
    big-endian int32 sizes, then the data), gzip-compressed or not.  Only uint8 data."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise ValueError(f"{path}: not an idx file, a .npy array or a directory of images")
    kind, ndim = raw[2], raw[3]
    if kind != IDX_UINT8:
        raise ValueError(f"{path}: idx data type 0x{kind:02x} is not supported (only unsigned bytes)")
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + math.prod(dims):
        raise ValueError(f"{path}: idx file truncated or padded ({len(raw)} bytes for dimensions {dims})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_idx(path: Path) -> torch.Tensor:
    array = read_idx(path)
    if array.ndim != 3:
        raise ValueError(f"{path}: an idx file of shape {list(array.shape)} holds no images "
                         "(a labels file?); give the images file")
    return torch.from_numpy(array.copy())[:, None]  # [N, 1, H, W] uint8


def _load_folder(folder: Path, size: int | None, channels: int | None) -> torch.Tensor:
    from ...imgio.codec import ImageError, read_image
    from .data import IMAGE_SUFFIXES, to_gray_uint8

    paths = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not paths:
        raise ValueError(f"{folder}: no images found")
    images = []
    for path in paths:
        try:
            pixels = read_image(path).color
        except ImageError as exc:
            raise ValueError(str(exc)) from None
        images.append(np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8))
    if channels is None:
        channels = 3 if any(im.shape[2] == 3 for im in images) else 1
    side = size or min(min(im.shape[:2]) for im in images)
    out = np.empty((len(images), channels, side, side), dtype=np.uint8)
    for index, image in enumerate(images):
        if channels == 1 and image.shape[2] == 3:
            image = to_gray_uint8(image)[..., None]
        elif channels == 3 and image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        out[index] = _square(image, side).transpose(2, 0, 1)
    return torch.from_numpy(out)


def _square(image: np.ndarray, side: int) -> np.ndarray:
    """The centred square crop of a uint8 ``[H, W, C]`` image, resized to ``side`` (Lanczos when
    shrinking keeps fine detail without aliasing)."""
    import PIL.Image

    h, w = image.shape[:2]
    edge = min(h, w)
    top, left = (h - edge) // 2, (w - edge) // 2
    crop = image[top: top + edge, left: left + edge]
    if edge == side:
        return crop
    mode = "L" if crop.shape[2] == 1 else "RGB"
    resized = PIL.Image.fromarray(crop[..., 0] if mode == "L" else crop, mode).resize((side, side), PIL.Image.LANCZOS)
    return np.asarray(resized).reshape(side, side, crop.shape[2])


def _resize_images(values: torch.Tensor, size: int | None, channels: int | None) -> torch.Tensor:
    """idx images ``[N, 1, H, W]`` at ``size`` and ``channels`` when asked for."""
    if channels == 3:
        values = values.repeat(1, 3, 1, 1)
    if size is None or size == values.shape[-1] == values.shape[-2]:
        return values
    images = values.permute(0, 2, 3, 1).numpy()
    return torch.from_numpy(np.stack([_square(im, size) for im in images]).transpose(0, 3, 1, 2).copy())


# --- samples to evaluate ----------------------------------------------------------------------

def samples_for(spec: str | bytes, shape: tuple[int, ...], limit: int | None = None, seed: int = 0) -> torch.Tensor:
    """Float32 samples ``[N, *shape]`` to score with a model of sample ``shape``.

    ``spec`` is anything :func:`load_data` reads (a toy gives ``limit`` seeded draws, default
    10000), a single image file, or the bytes of an ``.npy`` array or image (from stdin).  Images
    are converted to the model's channels and size; ``limit`` keeps the first rows.
    """
    is_image = len(shape) == 3
    name = "stdin" if isinstance(spec, bytes) else spec
    if isinstance(spec, bytes):
        values = _samples_from_bytes(spec, shape)
    elif is_image and Path(spec).is_file() and Path(spec).suffix.lower() != ".gz" and not _is_idx(Path(spec)):
        values = _image_samples(Path(spec).read_bytes(), shape, spec)
    else:
        images = is_image and not spec.startswith("toy:")
        data = load_data(spec, size=shape[-1], channels=shape[0], least=1) if images else load_data(spec, least=1)
        values = data.all(limit, seed)
    if tuple(values.shape[1:]) != tuple(shape):
        raise ValueError(f"samples of shape {list(values.shape[1:])} for a model of shape {list(shape)}")
    if len(values) == 0:
        raise ValueError(f"{name}: no samples")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return values[:limit]


def _is_idx(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return len(head) == 4 and head[:2] == b"\0\0" and head[2] == IDX_UINT8


def _samples_from_bytes(raw: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    if len(shape) == 1:
        array = _npy_array(raw, "stdin: expected an .npy array of vectors")
        array = array[None] if array.ndim == 1 else array
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"stdin: expected an [N, D] array of vectors, got shape {array.shape}")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return _image_samples(raw, shape, "stdin")


def _npy_array(raw: bytes, error: str) -> np.ndarray:
    """The array of ``.npy`` bytes (never unpickled); ValueError ``error`` where they are not one."""
    import io

    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise ValueError(error) from None


def _image_samples(raw: bytes, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """The ``[N, C, H, W]`` float samples of an ``.npy`` stack, as ``dncli dde-sample`` writes
    them, else one image (any format imgio reads, an ``.npy`` image of 2 or 3 dimensions
    included) as ``[1, C, H, W]`` at the model's shape."""
    if raw.startswith(np.lib.format.MAGIC_PREFIX):
        array = _npy_array(raw, f"{name}: not a readable .npy array")
        flat = array.ndim == 2 and array.shape[1] == math.prod(shape)  # [N, C*H*W] rows, as vectors
        if (array.ndim == 4 or flat) and np.issubdtype(array.dtype, np.number):
            values = np.ascontiguousarray(array, dtype=np.float32)
            return torch.from_numpy(values.reshape(-1, *shape) if flat else values)
    return _image_sample(raw, shape, name)


def _image_sample(raw: bytes, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """One image (any format imgio reads) as ``[1, C, H, W]`` float32 at the model's shape."""
    from ...imgio.codec import ImageError, read_image
    from .data import to_gray_uint8

    try:
        pixels = read_image(raw).color
    except ImageError as exc:
        raise ValueError(f"{name}: {exc}") from None
    image = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    channels, side = shape[0], shape[-1]
    if channels == 1 and image.shape[2] == 3:
        image = to_gray_uint8(image)[..., None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return torch.from_numpy(_square(image, side).transpose(2, 0, 1).copy())[None].float() / 255.0
