"""PNG chunk parsing, 16-bit colour decoding and a complete PNG encoder.

Pillow decodes most PNGs, but it reduces 16-bit RGB, RGBA and gray+alpha to 8 bits and cannot
encode 16-bit colour at all, so those paths live here.  Samples in PNG are big-endian.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import PIL.Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDE_COLOUR_TYPES = (2, 4, 6)  # RGB, gray+alpha, RGBA: the 16-bit kinds Pillow truncates
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channel count -> PNG colour type
_ROWS_PER_BLOCK = 64  # bounds the filter search's memory on large images


@dataclass
class PngFile:
    """The parts of a PNG file dncli uses; ``idat`` is the concatenated compressed image data."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool
    idat: bytes
    icc: bytes | None
    exif: bytes | None
    colour_key: tuple[int, ...] | None = None  # tRNS of a gray or RGB image: the transparent colour


def parse_png(data: bytes) -> PngFile:
    """Walk the chunks of a PNG file, checking every CRC; ValueError when the structure is broken."""
    if not data.startswith(SIGNATURE):
        raise ValueError("missing PNG signature")
    view = memoryview(data)
    pos, header, idat, icc, exif, colour_key = len(SIGNATURE), None, [], None, None, None
    while True:
        if pos + 12 > len(data):
            raise ValueError("PNG data ends before IEND")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"PNG chunk {kind!r} is cut short")
        body = view[pos + 8:end - 4]
        if zlib.crc32(view[pos + 4:end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise ValueError(f"PNG chunk {kind!r} fails its CRC")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"iCCP":
            name_end = bytes(body).index(b"\0")  # profile name, NUL, compression method, data
            icc = zlib.decompress(body[name_end + 2:])
        elif kind == b"eXIf":
            exif = bytes(body)
        elif kind == b"tRNS" and header is not None and header[3] in (0, 2):  # a palette's is Pillow's
            colour_key = struct.unpack(f">{len(body) // 2}H", body)
        elif kind == b"IEND":
            break
        pos = end
    if header is None or not idat:
        raise ValueError("PNG lacks IHDR or IDAT")
    width, height, bit_depth, colour_type, _, _, interlace = header
    return PngFile(width, height, bit_depth, colour_type, interlace == 1, b"".join(idat), icc, exif, colour_key)


def colour_key_alpha(samples: np.ndarray, png: PngFile) -> np.ndarray:
    """``samples`` ``[H, W, C]`` of a gray or RGB PNG with its tRNS colour key made an alpha
    channel: transparent where a pixel equals the key, opaque elsewhere."""
    opaque = np.iinfo(samples.dtype).max
    # 1-, 2- and 4-bit gray arrive scaled to 0..255, and their key must be too.
    key = np.asarray(png.colour_key) * (opaque // (2 ** png.bit_depth - 1))
    alpha = np.where(np.any(samples != key, axis=-1, keepdims=True), opaque, 0).astype(samples.dtype)
    return np.concatenate([samples, alpha], axis=-1)


def decode_wide_colour(png: PngFile) -> np.ndarray:
    """Samples of a 16-bit RGB, gray+alpha or RGBA PNG as uint16 ``[H, W, C]``, exactly."""
    size, interlaced = (png.width, png.height), int(png.interlaced)
    if png.colour_type == 4:
        # Gray+alpha has 4 bytes per pixel like 8-bit RGBA, so Pillow's decoder hands back the
        # unfiltered big-endian bytes untouched.
        raw = np.asarray(PIL.Image.frombytes("RGBA", size, png.idat, "zip", "RGBA", interlaced))
        raw = raw.astype(np.uint16)
        return raw[..., 0::2] << 8 | raw[..., 1::2]
    mode = "RGB" if png.colour_type == 2 else "RGBA"
    # Pillow's decoder unfilters with the right 6 or 8 bytes per pixel but keeps one byte per
    # sample: ';16B' keeps the high byte, and ';16L', reading the same big-endian data as
    # little-endian, keeps the low byte.
    high = np.asarray(PIL.Image.frombytes(mode, size, png.idat, "zip", f"{mode};16B", interlaced))
    low = np.asarray(PIL.Image.frombytes(mode, size, png.idat, "zip", f"{mode};16L", interlaced))
    return high.astype(np.uint16) << 8 | low


def encode_png(samples: np.ndarray, icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """A non-interlaced PNG of uint8 or uint16 ``samples`` ``[H, W, C]``, C = 1..4.

    ``icc`` is stored in an iCCP chunk, ``exif`` (TIFF-structured, without the 'Exif\\0\\0'
    prefix) in an eXIf chunk.
    """
    height, width, channels = samples.shape
    wide = samples.dtype == np.uint16
    raw = np.ascontiguousarray(samples, dtype=">u2" if wide else np.uint8).view(np.uint8)
    rows = raw.reshape(height, -1)
    ihdr = struct.pack(">IIBBBBB", width, height, 16 if wide else 8, _COLOUR_TYPE[channels], 0, 0, 0)
    chunks = [_chunk(b"IHDR", ihdr)]
    if icc:
        chunks.append(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
    if exif:
        chunks.append(_chunk(b"eXIf", exif))
    filtered = _filter_rows(rows, channels * (2 if wide else 1))
    chunks += [_chunk(b"IDAT", zlib.compress(filtered.tobytes())), _chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Each row prefixed by its filter type and filtered, the filter picked per row as libpng does:
    the one whose output, read as signed bytes, has the smallest absolute sum."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    for start in range(0, rows.shape[0], _ROWS_PER_BLOCK):
        block = rows[start:start + _ROWS_PER_BLOCK].astype(np.int16)
        above = np.zeros_like(block)
        above[1:] = block[:-1]
        if start:
            above[0] = rows[start - 1]
        left = np.zeros_like(block)
        left[:, bpp:] = block[:, :-bpp]
        upper_left = np.zeros_like(block)
        upper_left[:, bpp:] = above[:, :-bpp]
        guess = left + above - upper_left
        to_left, to_above, to_corner = (np.abs(guess - p) for p in (left, above, upper_left))
        paeth = np.where((to_left <= to_above) & (to_left <= to_corner), left,
                         np.where(to_above <= to_corner, above, upper_left))
        predictions = (0, left, above, (left + above) >> 1, paeth)
        candidates = np.stack([(block - p).astype(np.uint8) for p in predictions])
        costs = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2)
        best = costs.argmin(axis=0)
        out[start:start + len(block), 0] = best
        out[start:start + len(block), 1:] = candidates[best, np.arange(len(block))]
    return out
