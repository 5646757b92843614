"""Netpbm gray and colour maps: P2/P5 (PGM) and P3/P6 (PPM), 8 or 16 bits, samples big-endian."""
from __future__ import annotations

import re

import numpy as np

# Magic, then width, height and maxval separated by whitespace or '#' comments, then exactly one
# whitespace byte before the samples.
_HEADER = re.compile(rb"P([2356])" + rb"(?:\s|#[^\r\n]*[\r\n])+(\d+)" * 3 + rb"\s")


def decode_pnm(data: bytes) -> tuple[np.ndarray, int]:
    """Samples ``[H, W, 1 or 3]`` (uint8, or uint16 when maxval > 255) and the maxval.

    Raises ValueError for a malformed header, missing samples or samples above maxval.
    """
    match = _HEADER.match(data)
    if match is None:
        raise ValueError("malformed PNM header")
    kind = match.group(1)
    width, height, maxval = (int(match.group(i)) for i in (2, 3, 4))
    if not (width and height and 0 < maxval < 65536):
        raise ValueError("PNM size or maxval out of range")
    channels = 3 if kind in b"36" else 1
    count = width * height * channels
    if kind in b"56":
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        samples = np.frombuffer(data, dtype, count, offset=match.end())
    else:
        tokens = data[match.end():].split(maxsplit=count)[:count]
        if len(tokens) < count:
            raise ValueError("PNM data ends early")
        samples = np.array([int(token) for token in tokens], np.uint16 if maxval > 255 else np.uint8)
    if samples.max() > maxval:
        raise ValueError("PNM sample above maxval")
    return samples.reshape(height, width, channels), maxval


def encode_pnm(samples: np.ndarray) -> bytes:
    """Binary PGM (P5) for ``[H, W, 1]`` or PPM (P6) for ``[H, W, 3]`` uint8 or uint16 samples."""
    height, width, channels = samples.shape
    wide = samples.dtype == np.uint16
    header = b"%s\n%d %d\n%d\n" % (b"P5" if channels == 1 else b"P6", width, height, 65535 if wide else 255)
    return header + np.ascontiguousarray(samples, dtype=">u2" if wide else np.uint8).tobytes()
