"""Reading and writing images: PNG, JPEG, TIFF, BMP, PGM/PPM and NumPy ``.npy``.

Pixels are float32 ``[H, W, C]`` (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).  Integer samples
are divided by their maximum, so they lie in [0, 1]; float samples (TIFF, ``.npy``) are kept
as they are, out-of-range values included.  Every failure the user can cause surfaces as an
:class:`ImageError` with a one-line message naming the file; warnings are returned, never printed.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import PIL.Image
import tifffile

from .atomic import atomic_write_bytes, is_stream, write_all
from .png import WIDE_COLOUR_TYPES, colour_key_alpha, decode_wide_colour, encode_png, parse_png
from .pnm import decode_pnm, encode_pnm

# tifffile logs recoverable oddities of damaged files; without a handler of its own, Python's
# last-resort handler would print them to stderr behind the CLI's back.  Records still reach
# any handler the application installs.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

SUPPORTED_FORMATS: tuple[str, ...] = ("png", "jpeg", "tiff", "bmp", "pnm", "npy")

_NAMES = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP", "pnm": "PNM", "npy": "NPY"}
_EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
               ".bmp": "bmp", ".pgm": "pnm", ".ppm": "pnm", ".pnm": "pnm", ".npy": "npy"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"II*\0", "tiff"),
          (b"MM\0*", "tiff"), (b"II+\0", "tiff"), (b"MM\0+", "tiff"), (b"BM", "bmp"),
          (b"\x93NUMPY", "npy"))
_DEPTHS = {"png": ("8", "16"), "jpeg": ("8",), "tiff": ("8", "16", "32f"), "bmp": ("8",),
           "pnm": ("8", "16"), "npy": ("8", "16", "32f")}
_DEPTH_LABELS = {"8": "8-bit", "16": "16-bit", "32f": "32-bit float"}
_HAS_ALPHA = ("png", "tiff", "npy")
_KEEPS_ICC = ("png", "jpeg", "tiff")
_KEEPS_EXIF = ("png", "jpeg")
_EXIF_PREFIX = b"Exif\0\0"  # JPEG's APP1 marker and Pillow put it before the TIFF-structured data
_PILLOW_MODES = ("L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "F")
TTY_REFUSAL = "refusing to write binary image data to a terminal; redirect stdout or use -o FILE"


class ImageError(Exception):
    """A problem with an image file or stream; the message is one user-facing line."""


@dataclass
class Image:
    """Pixels plus what is needed to write them back faithfully.

    ``pixels`` is float32 ``[H, W, C]``: C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA, nominally in
    [0, 1] (float sources may exceed it).  ``depth`` is the source's bit depth ("8", "16" or
    "32f"), ``format`` its format, ``icc`` its ICC profile, ``exif`` its EXIF block
    (TIFF-structured, starting 'II*\\0' or 'MM\\0*', without the 'Exif\\0\\0' prefix) and
    ``source`` its path or "-" (empty for in-memory bytes).
    """

    pixels: np.ndarray
    depth: str = "8"
    format: str = "png"
    icc: bytes | None = None
    exif: bytes | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or not 1 <= self.pixels.shape[2] <= 4:
            raise ValueError(f"pixels must be [H, W, C] with C in 1..4, got shape {self.pixels.shape}")

    @property
    def has_alpha(self) -> bool:
        """True for gray+alpha and RGBA."""
        return self.pixels.shape[2] in (2, 4)

    @property
    def color(self) -> np.ndarray:
        """The colour channels, ``[H, W, 1 or 3]``, without alpha (a view)."""
        return self.pixels[..., :1] if self.pixels.shape[2] <= 2 else self.pixels[..., :3]

    @property
    def alpha(self) -> np.ndarray | None:
        """The alpha channel, ``[H, W, 1]`` (a view), or None."""
        return self.pixels[..., -1:] if self.has_alpha else None

    def with_color(self, color: np.ndarray) -> Image:
        """A copy with new colour channels (same shape as :attr:`color`); alpha, metadata, depth
        and format are kept."""
        if color.shape != self.color.shape:
            raise ValueError(f"colour shape {color.shape} does not match {self.color.shape}")
        alpha = self.alpha
        pixels = color if alpha is None else np.concatenate([color, alpha], axis=2)
        return dataclasses.replace(self, pixels=pixels.astype(np.float32, copy=False))


def format_from_path(path: str | Path) -> str:
    """The format name for ``path``'s extension (case-insensitive); ImageError for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        what = f"'{suffix}'" if suffix else "(no file extension)"
        raise ImageError(f"{path}: unsupported image format {what}")
    return _EXTENSIONS[suffix]


def default_output_format(dest: str | Path, image_format: str | None) -> str:
    """The format ``dest`` gets when none is asked for: a file's extension decides; stdout
    (``-``), a pipe or a device gets the image's own format (PNG for a made image)."""
    if str(dest) == "-" or is_stream(dest):
        return image_format or "png"
    return format_from_path(dest)


def sniff_format(head: bytes) -> str:
    """The format whose magic number starts ``head`` (8 bytes suffice); ImageError when unknown."""
    head = bytes(head[:8])
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if len(head) >= 3 and head[0:1] == b"P" and head[1] in b"2356" and head[2:3].isspace():
        return "pnm"
    raise ImageError("unrecognised image data (expected PNG, JPEG, TIFF, BMP, PGM/PPM or NPY)")


def read_image(source: str | Path | bytes) -> Image:
    """Decode a file, "-" (all of stdin) or in-memory bytes; the format comes from the data's
    magic number, so a misnamed file still reads.  Raises ImageError naming the source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(bytes(source), "<bytes>", "")
    name = str(source)
    if name == "-":
        return _decode(_read_stdin(), "stdin", "-")
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    return _decode(data, name, name)


def encode_image(image: Image, format: str, depth: str | None = None) -> tuple[bytes, list[str]]:
    """Encode ``image`` as ``format`` at ``depth`` ("8", "16" or "32f"; default: the image's
    depth, lowered with a warning to the best the format offers).  Integer samples are clipped
    to [0, 1] and rounded.  Returns the bytes and warnings about what could not be kept;
    ImageError for an unknown format or a depth the format cannot store."""
    if format not in SUPPORTED_FORMATS:
        raise ImageError(f"unsupported image format '{format}' (choose from {', '.join(SUPPORTED_FORMATS)})")
    name, warnings = _NAMES[format], []
    depth = _output_depth(format, depth, image.depth, warnings)
    pixels = image.pixels
    if image.has_alpha and format not in _HAS_ALPHA:
        pixels = image.color
        warnings.append(f"alpha channel dropped: {name} has no alpha")
    icc = image.icc if format in _KEEPS_ICC else None
    exif = image.exif if format in _KEEPS_EXIF else None
    if image.icc and icc is None:
        warnings.append(f"ICC profile dropped: not written to {name}")
    if image.exif and exif is None:
        warnings.append(f"EXIF metadata dropped: not written to {name}")
    try:
        data = _ENCODERS[format](_quantise(pixels, depth), icc, exif)
    except Exception as exc:
        raise ImageError(f"cannot encode {name}: {exc}") from exc
    return data, warnings


def write_image(image: Image, dest: str | Path, format: str | None = None,
                depth: str | None = None) -> list[str]:
    """Write ``image`` to a file (atomically) or to stdout for "-".

    The format defaults to the file's extension, or for stdout, a pipe or a device to the
    image's own format.
    ``depth`` as in :func:`encode_image`.  Returns warnings, each prefixed with the destination;
    raises ImageError, and refuses to send binary data to a terminal; BrokenPipeError when the
    reader of a pipe has gone.
    """
    to_stdout = str(dest) == "-"
    if to_stdout and sys.stdout.isatty():
        raise ImageError(TTY_REFUSAL)
    name = "stdout" if to_stdout else str(dest)
    if format is None:
        format = default_output_format(dest, image.format)
    try:
        data, warnings = encode_image(image, format, depth)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from exc
    try:
        if to_stdout:
            write_all(sys.stdout.buffer, data)
            sys.stdout.buffer.flush()
        else:
            atomic_write_bytes(dest, data)
    except BrokenPipeError:
        raise  # the reader went away: not this image's failure, the command stops (exit 141)
    except OSError as exc:
        raise ImageError(f"{name}: cannot write ({exc.strerror or exc})") from exc
    return [f"{name}: {warning}" for warning in warnings]


def check_depth(format: str, depth: str) -> None:
    """ImageError unless ``format`` can store samples of ``depth`` ('8', '16' or '32f')."""
    _output_depth(format, depth, depth, [])


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise ImageError("stdin: refusing to read image data from a terminal; pipe an image in or give a file")
    return sys.stdin.buffer.read()


def _decode(data: bytes, name: str, source: str) -> Image:
    from_file = source not in ("", "-")
    if not data:
        raise ImageError(f"{name}: empty file" if from_file else f"{name}: no data")
    try:
        fmt = sniff_format(data)
    except ImageError:
        if not from_file:
            raise ImageError(f"{name}: unrecognised image data") from None
        # Unrecognised bytes: blame the extension if dncli does not know it, else the content.
        raise ImageError(f"{name}: not a {_NAMES[format_from_path(name)]} file") from None
    try:
        samples, maxval, icc, exif = _DECODERS[fmt](data)
        pixels, depth = _to_unit_float(_as_hwc(samples), maxval)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from exc
    except PIL.Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image too large to decode safely") from exc
    except Exception as exc:  # any decoder failure on bad bytes is the same thing to the user
        raise ImageError(f"{name}: truncated or corrupt {_NAMES[fmt]} data") from exc
    return Image(pixels, depth, fmt, icc or None, exif or None, source)


# A decoder returns (samples, maxval or None for the dtype's maximum, ICC profile, EXIF).
_Decoded = tuple[np.ndarray, int | None, bytes | None, bytes | None]


def _decode_png(data: bytes) -> _Decoded:
    png = parse_png(data)
    if png.bit_depth == 16 and png.colour_type in WIDE_COLOUR_TYPES:
        samples = decode_wide_colour(png)
    else:
        samples, _ = _pillow_samples(data, "PNG")
    if png.colour_key is not None:
        samples = colour_key_alpha(_as_hwc(samples), png)
    return samples, None, png.icc, png.exif


def _decode_with_pillow(fmt: str) -> Callable[[bytes], _Decoded]:
    def decode(data: bytes) -> _Decoded:
        samples, info = _pillow_samples(data, fmt)
        exif = info.get("exif")
        if exif and exif.startswith(_EXIF_PREFIX):
            exif = exif[len(_EXIF_PREFIX):]
        return samples, None, info.get("icc_profile"), exif
    return decode


def _decode_tiff(data: bytes) -> _Decoded:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        if page.compression not in tifffile.TIFF.DECOMPRESSORS:
            # tifffile needs the optional imagecodecs package for LZW, JPEG and others; Pillow
            # (libtiff) decodes them exactly except 16-bit colour, which it truncates to 8 bits.
            if page.bitspersample > 8 and page.samplesperpixel > 1:
                raise ImageError(f"TIFF compression {page.compression.name} of {page.bitspersample}-bit "
                                 "colour needs the optional 'imagecodecs' package")
            return _pillow_samples(data, "TIFF")[0], None, page.iccprofile, None
        photometric = page.photometric
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE,
                               tifffile.PHOTOMETRIC.RGB):
            raise ImageError(f"unsupported TIFF colour model {photometric.name}")
        if page.axes not in ("YX", "YXS", "SYX"):
            raise ImageError(f"unsupported TIFF layout '{page.axes}'")
        samples = page.asarray()
        if samples.dtype == bool:  # bilevel: as 0/1 integers, so MINISWHITE can be inverted
            samples = samples.view(np.uint8)
        if page.axes == "SYX":
            samples = np.moveaxis(samples, 0, -1)
        # Sub-byte and 12-bit samples arrive in wider integer types; scale by their own range.
        maxval = 2 ** page.bitspersample - 1 if samples.dtype.kind in "ui" else None
        if samples.dtype.kind == "i":  # signed: the positive half is the range, as for .npy
            maxval = 2 ** (page.bitspersample - 1) - 1
        if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            samples = (maxval if maxval else 1) - samples
        return samples, maxval, page.iccprofile, None


def _decode_pnm(data: bytes) -> _Decoded:
    samples, maxval = decode_pnm(data)
    return samples, maxval, None, None


def _decode_npy(data: bytes) -> _Decoded:
    return np.load(io.BytesIO(data), allow_pickle=False), None, None, None


def _pillow_samples(data: bytes, fmt: str) -> tuple[np.ndarray, dict]:
    with PIL.Image.open(io.BytesIO(data), formats=[fmt]) as image:
        image.load()
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode == "1":
            image = image.convert("L")
        elif image.mode in ("CMYK", "YCbCr"):
            image = image.convert("RGB")
        if image.mode not in _PILLOW_MODES:
            raise ImageError(f"unsupported {fmt} pixel mode '{image.mode}'")
        return np.asarray(image), image.info


def _as_hwc(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 2:
        samples = samples[..., None]
    if samples.ndim != 3 or not 1 <= samples.shape[2] <= 4:
        raise ImageError(f"unsupported array shape {samples.shape}: expected [H, W] or [H, W, C] with C in 1..4")
    if 0 in samples.shape:
        raise ImageError("image has no pixels")
    return samples


def _to_unit_float(samples: np.ndarray, maxval: int | None) -> tuple[np.ndarray, str]:
    """Float32 pixels and depth: integers divided by ``maxval`` (default: their type's maximum;
    signed values stay signed), booleans as 0/1, floats unchanged."""
    kind = samples.dtype.kind
    if kind == "f":
        return samples.astype(np.float32), "32f"
    if kind == "b":
        return samples.astype(np.float32), "8"
    if kind not in "ui":
        raise ImageError(f"unsupported sample type '{samples.dtype}'")
    maxval = maxval or np.iinfo(samples.dtype).max
    return samples.astype(np.float32) / np.float32(maxval), "8" if maxval <= 255 else "16"


def _output_depth(format: str, requested: str | None, source: str, warnings: list[str]) -> str:
    allowed = _DEPTHS[format]
    if requested is None:
        if source in allowed:
            return source
        warnings.append(f"{_NAMES[format]} cannot store {_DEPTH_LABELS.get(source, source)} samples; "
                        f"writing {_DEPTH_LABELS[allowed[-1]]}")
        return allowed[-1]
    if requested not in _DEPTH_LABELS:
        raise ImageError(f"unknown bit depth '{requested}' (choose 8, 16 or 32f)")
    if requested not in allowed:
        raise ImageError(f"{_NAMES[format]} cannot store {_DEPTH_LABELS[requested]} samples "
                         f"(supported: {', '.join(_DEPTH_LABELS[d] for d in allowed)})")
    return requested


def _quantise(pixels: np.ndarray, depth: str) -> np.ndarray:
    if depth == "32f":
        return pixels.astype(np.float32, copy=False)
    dtype, top = (np.uint8, 255) if depth == "8" else (np.uint16, 65535)
    # nan_to_num first: a NaN would otherwise turn into an arbitrary integer.
    return np.rint(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * top).astype(dtype)


def _encode_with_pillow(fmt: str, **options: object) -> Callable[..., bytes]:
    def encode(samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
        extra = dict(options)
        if icc:
            extra["icc_profile"] = icc
        if exif:
            extra["exif"] = _EXIF_PREFIX + exif
        stream = io.BytesIO()
        PIL.Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples).save(stream, fmt, **extra)
        return stream.getvalue()
    return encode


def _encode_tiff(samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    channels = samples.shape[2]
    stream = io.BytesIO()
    tifffile.imwrite(stream, samples[..., 0] if channels == 1 else samples,
                     photometric="rgb" if channels >= 3 else "minisblack",
                     planarconfig="contig" if channels > 1 else None,
                     extrasamples=("unassalpha",) if channels in (2, 4) else None,
                     compression="zlib", iccprofile=icc, metadata=None)
    return stream.getvalue()


def _encode_npy(samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    stream = io.BytesIO()
    np.save(stream, samples[..., 0] if samples.shape[2] == 1 else samples, allow_pickle=False)
    return stream.getvalue()


_DECODERS: dict[str, Callable[[bytes], _Decoded]] = {
    "png": _decode_png, "jpeg": _decode_with_pillow("JPEG"), "tiff": _decode_tiff,
    "bmp": _decode_with_pillow("BMP"), "pnm": _decode_pnm, "npy": _decode_npy}
# Quality 95 with full-resolution chroma (4:4:4): restored detail should not be re-blurred.
_ENCODERS: dict[str, Callable[[np.ndarray, bytes | None, bytes | None], bytes]] = {
    "png": encode_png,
    "jpeg": _encode_with_pillow("JPEG", quality=95, subsampling=0),
    "tiff": _encode_tiff, "bmp": _encode_with_pillow("BMP"),
    "pnm": lambda samples, icc, exif: encode_pnm(samples), "npy": _encode_npy}
