"""Image I/O: every format and depth round-trips exactly, failures are one-line ImageErrors."""
from __future__ import annotations

import io
import os
import signal
import stat
import struct
import sys
import zlib

import numpy as np
import PIL.Image
import pytest
import tifffile

from denoise_cli.imgio import atomic
from denoise_cli.imgio.atomic import atomic_write_bytes
from denoise_cli.imgio.codec import (SUPPORTED_FORMATS, Image, ImageError, encode_image, format_from_path,
                                     read_image, sniff_format, write_image)
from denoise_cli.imgio.png import SIGNATURE, parse_png

EXTENSION = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "pnm": ".pnm", "npy": ".npy"}
ICC = b"\0\0\2\x0cfake ICC profile for tests " * 8


def make_exif() -> bytes:
    """A real EXIF block (Make = 'dncli'), TIFF-structured, without the 'Exif\\0\\0' prefix."""
    exif = PIL.Image.Exif()
    exif[0x010F] = "dncli"
    return exif.tobytes()[6:]


def make_samples(depth: str, channels: int, seed: int = 0, shape=(5, 7)):
    """Stored samples and the float32 pixels they must decode to (extremes included)."""
    rng = np.random.default_rng(seed)
    if depth == "32f":
        samples = rng.uniform(-0.5, 1.5, (*shape, channels)).astype(np.float32)
        samples.flat[:2] = (-0.2, 1.3)
        return samples, samples
    top, dtype = (255, np.uint8) if depth == "8" else (65535, np.uint16)
    samples = rng.integers(0, top + 1, (*shape, channels), dtype=dtype)
    samples.flat[:2] = (0, top)
    return samples, samples.astype(np.float32) / np.float32(top)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png16(samples: np.ndarray, interlaced: bool = False) -> bytes:
    """A 16-bit PNG made without dncli or Pillow: unfiltered rows, optionally Adam7-interlaced."""
    height, width, channels = samples.shape
    passes = ([(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
              if interlaced else [(0, 0, 1, 1)])
    raw = b"".join(b"\0" + row.astype(">u2").tobytes()
                   for y0, x0, dy, dx in passes for row in samples[y0::dy, x0::dx] if row.size)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlaced))
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def reference_unfilter(data: bytes) -> np.ndarray:
    """Bytes of a non-interlaced PNG's rows, unfiltered by the PNG specification, pixel by pixel."""
    png = parse_png(data)
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[png.colour_type]
    bpp = channels * png.bit_depth // 8
    stride = png.width * bpp
    raw = zlib.decompress(png.idat)
    rows, prior = [], [0] * stride
    for y in range(png.height):
        kind, line = raw[y * (stride + 1)], list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prior[i], prior[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[i] = (line[i] + (0, a, b, (a + b) // 2, paeth)[kind]) % 256
        rows.append(line)
        prior = line
    return np.array(rows, np.uint8)


# Every lossless format with each depth and channel count it stores.
LOSSLESS = [(fmt, depth, channels)
            for fmt, depths, channel_counts in [("png", ("8", "16"), (1, 2, 3, 4)),
                                                ("tiff", ("8", "16", "32f"), (1, 2, 3, 4)),
                                                ("npy", ("8", "16", "32f"), (1, 2, 3, 4)),
                                                ("pnm", ("8", "16"), (1, 3)),
                                                ("bmp", ("8",), (1, 3))]
            for depth in depths for channels in channel_counts]


@pytest.mark.parametrize("via", ["file", "bytes"])
@pytest.mark.parametrize("fmt,depth,channels", LOSSLESS)
def test_lossless_round_trip_is_exact(tmp_path, fmt, depth, channels, via):
    _, pixels = make_samples(depth, channels)
    image = Image(pixels, depth=depth)
    if via == "file":
        path = tmp_path / f"x{EXTENSION[fmt]}"
        assert write_image(image, path) == []
        back = read_image(path)
        assert back.source == str(path)
    else:
        data, warnings = encode_image(image, fmt)
        assert warnings == []
        back = read_image(data)
    assert (back.format, back.depth, back.pixels.dtype) == (fmt, depth, np.float32)
    np.testing.assert_array_equal(back.pixels, pixels)


@pytest.mark.parametrize("via", ["file", "bytes"])
@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path, channels, via):
    y, x = np.mgrid[0:16, 0:24] / 24.0
    pixels = np.stack([x, y, (x + y) / 2][:channels], axis=2).astype(np.float32)
    if via == "file":
        write_image(Image(pixels), tmp_path / "x.jpeg")
        back = read_image(tmp_path / "x.jpeg")
    else:
        back = read_image(encode_image(Image(pixels), "jpeg")[0])
    assert (back.format, back.depth, back.pixels.shape) == ("jpeg", "8", pixels.shape)
    assert np.abs(back.pixels - pixels).max() < 0.03


@pytest.mark.parametrize("fmt", ["tiff", "npy"])
def test_float_samples_are_kept_unclipped(tmp_path, fmt):
    pixels = np.full((5, 7, 1), 0.5, np.float32)
    pixels[0, 0], pixels[0, 1] = -0.2, 1.3
    write_image(Image(pixels, depth="32f"), tmp_path / f"x{EXTENSION[fmt]}")
    back = read_image(tmp_path / f"x{EXTENSION[fmt]}")
    assert back.depth == "32f" and back.pixels[0, 0, 0] == np.float32(-0.2) and back.pixels[0, 1, 0] == np.float32(1.3)


def test_integer_output_is_clipped_and_rounded():
    pixels = np.array([[[-0.5], [1.5], [np.nan], [0.5 / 255], [0.49 / 255], [2.51 / 255]]], np.float32)
    back = read_image(encode_image(Image(pixels), "png", "8")[0])
    np.testing.assert_array_equal(np.rint(back.pixels[0, :, 0] * 255), [0, 255, 0, 0, 0, 3])


@pytest.mark.parametrize("channels,photometric", [(1, "minisblack"), (3, "rgb"), (4, "rgb")])
def test_16bit_tiff_from_bytes_keeps_16_bits(monkeypatch, channels, photometric):
    samples, pixels = make_samples("16", channels, seed=3)
    stream = io.BytesIO()
    tifffile.imwrite(stream, samples[..., 0] if channels == 1 else samples, photometric=photometric)
    for source in (stream.getvalue(), "-"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stream.getvalue())))
        back = read_image(source)
        assert (back.format, back.depth) == ("tiff", "16")
        np.testing.assert_array_equal(back.pixels, pixels)


def test_miniswhite_tiff_is_inverted():
    samples = np.arange(35, dtype=np.uint8).reshape(5, 7)
    stream = io.BytesIO()
    tifffile.imwrite(stream, samples, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(stream.getvalue()).pixels[..., 0], (255 - samples) / np.float32(255))


def test_lzw_tiff_without_imagecodecs():
    """LZW needs imagecodecs in tifffile; 8-bit data falls back to Pillow, 16-bit colour is refused."""
    if 5 in tifffile.TIFF.DECOMPRESSORS:
        pytest.skip("imagecodecs is installed")
    samples, pixels = make_samples("8", 3)
    stream = io.BytesIO()
    PIL.Image.fromarray(samples).save(stream, "TIFF", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(stream.getvalue()).pixels, pixels)

    stream = io.BytesIO()
    tifffile.imwrite(stream, make_samples("16", 3)[0], photometric="rgb")
    data = bytearray(stream.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        entry = tif.pages.first.tags["Compression"].offset
    data[entry + 8:entry + 10] = struct.pack("<H", 5)  # relabel as LZW
    with pytest.raises(ImageError, match="imagecodecs"):
        read_image(bytes(data))


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlaced", [False, True])
def test_16bit_colour_png_reads_exactly(channels, interlaced):
    samples, pixels = make_samples("16", channels, seed=5, shape=(11, 13))
    back = read_image(handmade_png16(samples, interlaced))
    assert back.depth == "16"
    np.testing.assert_array_equal(back.pixels, pixels)


@pytest.mark.parametrize("depth", ["8", "16"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_encoder_matches_the_specification(depth, channels):
    samples, pixels = make_samples(depth, channels, seed=7, shape=(9, 6))
    data = encode_image(Image(pixels, depth=depth), "png")[0]
    expected = np.ascontiguousarray(samples, ">u2" if depth == "16" else np.uint8).view(np.uint8).reshape(9, -1)
    np.testing.assert_array_equal(reference_unfilter(data), expected)


def test_png_encoder_uses_every_filter_type():
    samples, pixels = make_samples("16", 3, seed=0, shape=(12, 9))
    png = parse_png(encode_image(Image(pixels, depth="16"), "png")[0])
    raw = zlib.decompress(png.idat)
    assert {raw[y * (9 * 6 + 1)] for y in range(12)} == {0, 1, 2, 3, 4}


def test_pillow_made_pngs_read_exactly():
    gray16 = np.random.default_rng(1).integers(0, 65536, (5, 7), dtype=np.uint16)
    stream = io.BytesIO()
    PIL.Image.fromarray(gray16).save(stream, "PNG")
    back = read_image(stream.getvalue())
    assert back.depth == "16"
    np.testing.assert_array_equal(back.pixels[..., 0], gray16 / np.float32(65535))


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png_expands_to_rgb_or_rgba(transparent):
    palette = PIL.Image.new("P", (7, 5))
    palette.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    palette.putpixel((3, 2), 1)
    stream = io.BytesIO()
    palette.save(stream, "PNG", **({"transparency": 1} if transparent else {}))
    back = read_image(stream.getvalue())
    assert back.pixels.shape == (5, 7, 4 if transparent else 3) and back.depth == "8"
    np.testing.assert_array_equal(np.rint(back.color[2, 3] * 255), [200, 100, 0])
    np.testing.assert_array_equal(np.rint(back.color[0, 0] * 255), [10, 20, 30])
    if transparent:
        assert back.alpha[2, 3, 0] == 0 and back.alpha[0, 0, 0] == 1


def test_image_channels_and_with_color():
    _, pixels = make_samples("8", 4)
    image = Image(pixels, depth="16", format="tiff", icc=ICC, source="a.tif")
    assert image.has_alpha and image.color.shape == (5, 7, 3) and image.alpha.shape == (5, 7, 1)
    new = image.with_color(np.zeros((5, 7, 3)))
    assert new.pixels.dtype == np.float32 and (new.depth, new.format, new.icc, new.source) == ("16", "tiff", ICC, "a.tif")
    np.testing.assert_array_equal(new.alpha, image.alpha)
    assert not np.any(new.color)
    gray = Image(pixels[..., :1])
    assert not gray.has_alpha and gray.alpha is None and gray.with_color(pixels[..., 1:2]).pixels.shape == (5, 7, 1)
    with pytest.raises(ValueError):
        image.with_color(np.zeros((5, 7, 1)))
    with pytest.raises(ValueError):
        Image(np.zeros((5, 7, 5), np.float32))


@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg"])
def test_icc_profile_is_carried_from_png(tmp_path, fmt):
    _, pixels = make_samples("8", 3)
    write_image(Image(pixels, icc=ICC), tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").icc == ICC
    assert write_image(read_image(tmp_path / "a.png"), tmp_path / f"b{EXTENSION[fmt]}") == []
    assert read_image(tmp_path / f"b{EXTENSION[fmt]}").icc == ICC


def test_metadata_written_by_pillow_is_read():
    exif = make_exif()
    stream = io.BytesIO()
    PIL.Image.new("RGB", (7, 5)).save(stream, "PNG", icc_profile=ICC, exif=exif)
    back = read_image(stream.getvalue())
    assert (back.icc, back.exif) == (ICC, exif)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_exif_is_carried(tmp_path, fmt):
    exif = make_exif()
    write_image(Image(make_samples("8", 3)[1], exif=exif), tmp_path / f"a{EXTENSION[fmt]}")
    back = read_image(tmp_path / f"a{EXTENSION[fmt]}")
    assert back.exif == exif and PIL.Image.open(tmp_path / f"a{EXTENSION[fmt]}").getexif()[0x010F] == "dncli"


@pytest.mark.parametrize("fmt,dropped", [("npy", ["ICC", "EXIF"]), ("pnm", ["ICC", "EXIF"]),
                                         ("bmp", ["ICC", "EXIF"]), ("tiff", ["EXIF"])])
def test_dropped_metadata_is_warned(tmp_path, fmt, dropped):
    image = Image(make_samples("8", 3)[1], icc=ICC, exif=make_exif())
    path = tmp_path / f"a{EXTENSION[fmt]}"
    warnings = write_image(image, path)
    assert len(warnings) == len(dropped)
    for warning, what in zip(warnings, dropped):
        assert warning.startswith(f"{path}: {what}") and "dropped" in warning


@pytest.mark.parametrize("fmt", ["jpeg", "pnm", "bmp"])
def test_alpha_is_dropped_with_a_warning(fmt):
    for channels in (2, 4):
        data, warnings = encode_image(Image(make_samples("8", channels)[1]), fmt)
        assert warnings == [f"alpha channel dropped: {fmt.upper()} has no alpha"]
        assert read_image(data).pixels.shape[2] == channels - 1


def test_pnm_picks_pgm_or_ppm():
    assert encode_image(Image(make_samples("8", 1)[1]), "pnm")[0].startswith(b"P5\n7 5\n255\n")
    assert encode_image(Image(make_samples("16", 3)[1], depth="16"), "pnm")[0].startswith(b"P6\n7 5\n65535\n")


def test_plain_and_odd_maxval_pnm():
    back = read_image(b"P2\n# comment\n3 2 # trailing\n4\n0 1 2\n3 4 4\n")
    assert back.depth == "8"
    np.testing.assert_array_equal(back.pixels[..., 0] * 4, [[0, 1, 2], [3, 4, 4]])
    back = read_image(b"P3 1 1 1023 1023 0 511\n")
    assert back.depth == "16"
    np.testing.assert_array_equal(back.pixels[0, 0], np.array([1023, 0, 511], np.float32) / np.float32(1023))
    ten_bit = b"P5\n2 1\n1023\n" + np.array([1023, 256], ">u2").tobytes()
    np.testing.assert_array_equal(read_image(ten_bit).pixels[0, :, 0], np.array([1023, 256], np.float32) / 1023)


@pytest.mark.parametrize("dtype,depth", [(np.uint8, "8"), (np.uint16, "16"), (np.int16, "16"), (np.uint32, "16")])
def test_npy_integers_are_scaled_by_their_maximum(dtype, depth):
    top = np.iinfo(dtype).max
    array = np.array([[0, top], [top // 2, 1]], dtype)
    stream = io.BytesIO()
    np.save(stream, array[..., None])
    back = read_image(stream.getvalue())
    assert back.depth == depth and back.pixels.shape == (2, 2, 1)
    np.testing.assert_allclose(back.pixels[..., 0], array / top, rtol=1e-6)


def test_signed_tiff_is_scaled_like_signed_npy():
    array = np.array([[-1000, 0], [1000, 32767]], np.int16)
    tiff, npy = io.BytesIO(), io.BytesIO()
    tifffile.imwrite(tiff, array)
    np.save(npy, array[..., None])
    np.testing.assert_array_equal(read_image(tiff.getvalue()).pixels, read_image(npy.getvalue()).pixels)


def _with_trns(png: bytes, key: tuple[int, ...]) -> bytes:
    body = struct.pack(f">{len(key)}H", *key)
    chunk = struct.pack(">I", len(body)) + b"tRNS" + body + struct.pack(">I", zlib.crc32(b"tRNS" + body))
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


@pytest.mark.parametrize("depth,channels", [("8", 1), ("8", 3), ("16", 1), ("16", 3)])
def test_png_colour_key_becomes_an_alpha_channel(depth, channels):
    """A gray or RGB PNG's tRNS colour key marks its transparent pixels: they must not turn opaque."""
    samples, pixels = make_samples(depth, channels, shape=(6, 7))
    key = tuple(int(v) for v in samples[2, 3])
    data, _ = encode_image(Image(pixels), "png", depth)
    back = read_image(_with_trns(data, key))
    assert back.pixels.shape == (6, 7, channels + 1) and back.depth == depth
    np.testing.assert_array_equal(back.color, pixels)
    transparent = np.all(samples == np.array(key), axis=-1)
    np.testing.assert_array_equal(back.alpha[..., 0], np.where(transparent, 0.0, 1.0))
    assert transparent[2, 3]


@pytest.mark.parametrize("shape", [(3, 5, 7), (5, 7, 5), (5,), (0, 4)])
def test_npy_with_a_bad_shape_is_refused(tmp_path, shape):
    np.save(tmp_path / "a.npy", np.zeros(shape, np.float32))
    with pytest.raises(ImageError, match=r"^\S*a\.npy: (unsupported array shape|image has no pixels)"):
        read_image(tmp_path / "a.npy")


def test_depth_override_and_limits():
    image = Image(make_samples("8", 3)[1])
    assert encode_image(image, "png", "16")[0] != encode_image(image, "png")[0]
    assert read_image(encode_image(image, "tiff", "32f")[0]).depth == "32f"
    for fmt, depth in [("jpeg", "16"), ("bmp", "16"), ("jpeg", "32f"), ("png", "32f"), ("pnm", "32f"), ("bmp", "32f")]:
        with pytest.raises(ImageError, match="cannot store"):
            encode_image(image, fmt, depth)
    with pytest.raises(ImageError, match="unknown bit depth"):
        encode_image(image, "png", "12")
    with pytest.raises(ImageError, match="unsupported image format 'gif'"):
        encode_image(image, "gif")


def test_default_depth_is_lowered_with_a_warning(tmp_path):
    warnings = write_image(Image(make_samples("16", 3)[1], depth="16"), tmp_path / "a.jpg")
    assert warnings == [f"{tmp_path / 'a.jpg'}: JPEG cannot store 16-bit samples; writing 8-bit"]
    with pytest.raises(ImageError, match=r"a\.jpg: JPEG cannot store 16-bit samples"):
        write_image(Image(make_samples("16", 3)[1]), tmp_path / "a.jpg", depth="16")


def test_format_from_path():
    assert [format_from_path(f"a{ext}") for ext in (".png", ".JPG", ".jpeg", ".tif", ".TIFF", ".bmp",
                                                     ".pgm", ".ppm", ".pnm", ".npy")] == \
        ["png", "jpeg", "jpeg", "tiff", "tiff", "bmp", "pnm", "pnm", "pnm", "npy"]
    with pytest.raises(ImageError, match=r"^x\.gif: unsupported image format '\.gif'$"):
        format_from_path("x.gif")
    with pytest.raises(ImageError, match="no file extension"):
        format_from_path("x")


def test_sniff_format():
    heads = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff\xe0": "jpeg", b"II*\0": "tiff", b"MM\0*": "tiff",
             b"BM6\0": "bmp", b"P2\n": "pnm", b"P3 ": "pnm", b"P5\n": "pnm", b"P6\t": "pnm", b"\x93NUMPY\x01": "npy"}
    assert {head: sniff_format(head) for head in heads} == heads
    for head in (b"GIF89a", b"P7\n", b"P5", b"", b"\x89PN"):
        with pytest.raises(ImageError, match="unrecognised image data"):
            sniff_format(head)


def test_misnamed_file_is_read_by_its_content(tmp_path):
    (tmp_path / "a.jpg").write_bytes(encode_image(Image(make_samples("8", 3)[1]), "png")[0])
    assert read_image(tmp_path / "a.jpg").format == "png"


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_stdin_format_is_sniffed(monkeypatch, fmt):
    data = encode_image(Image(make_samples("8", 3)[1]), fmt)[0]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    back = read_image("-")
    assert (back.format, back.source, back.pixels.shape) == (fmt, "-", (5, 7, 3))


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_truncated_file_is_an_image_error(tmp_path, fmt):
    data = encode_image(Image(make_samples("8", 3, shape=(16, 16))[1]), fmt)[0]
    path = tmp_path / f"in{EXTENSION[fmt]}"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert str(caught.value) == f"{path}: truncated or corrupt {fmt.upper()} data"


def test_truncated_16bit_colour_png_is_an_image_error():
    data = handmade_png16(make_samples("16", 3, shape=(16, 16))[0])
    with pytest.raises(ImageError, match="^<bytes>: truncated or corrupt PNG data$"):
        read_image(data[:len(data) // 2])
    corrupt = bytearray(data)
    corrupt[40] ^= 0xFF  # inside IDAT: the CRC no longer matches
    with pytest.raises(ImageError, match="truncated or corrupt PNG data"):
        read_image(bytes(corrupt))


@pytest.mark.parametrize("name,content,message", [
    ("in.png", None, "in.png: no such file"),
    ("in.png", b"", "in.png: empty file"),
    ("in.png", b"this is not an image at all", "in.png: not a PNG file"),
    ("in.tif", b"\0" * 64, "in.tif: not a TIFF file"),
    ("x.gif", b"GIF89a\x01\0\x01\0\0\0\0;", "x.gif: unsupported image format '.gif'"),
    ("noext", b"garbage", "noext: unsupported image format (no file extension)"),
])
def test_bad_inputs_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert str(caught.value) == f"{tmp_path}/{message}"


def test_bad_streams_and_directories(tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="^<bytes>: unrecognised image data$"):
        read_image(b"garbage")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(ImageError, match="^stdin: no data$"):
        read_image("-")


def test_write_to_stdout(monkeypatch):
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    image = Image(make_samples("16", 3)[1], depth="16", format="tiff")
    assert write_image(image, "-") == []
    back = read_image(stdout.buffer.getvalue())
    assert (back.format, back.depth) == ("tiff", "16")
    stdout.buffer.seek(0)
    stdout.buffer.truncate()
    assert write_image(image, "-", format="jpeg") == ["stdout: JPEG cannot store 16-bit samples; writing 8-bit"]
    assert sniff_format(stdout.buffer.getvalue()) == "jpeg"


def test_refuses_to_write_to_a_terminal(monkeypatch):
    class Terminal(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    terminal = Terminal(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", terminal)
    with pytest.raises(ImageError) as caught:
        write_image(Image(make_samples("8", 1)[1]), "-")
    assert str(caught.value) == "refusing to write binary image data to a terminal; redirect stdout or use -o FILE"
    assert terminal.buffer.getvalue() == b""


def test_write_unsupported_extension_and_missing_directory(tmp_path):
    image = Image(make_samples("8", 1)[1])
    with pytest.raises(ImageError, match=r"out\.gif: unsupported image format '\.gif'"):
        write_image(image, tmp_path / "out.gif")
    with pytest.raises(ImageError, match=r"nope/out\.png: cannot write"):
        write_image(image, tmp_path / "nope" / "out.png")
    assert write_image(image, tmp_path / "out.gif", format="png") == []
    assert read_image(tmp_path / "out.gif").format == "png"


def test_atomic_write_names_the_target_in_its_errors(tmp_path):
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(tmp_path / "missing" / "a.npy", b"data")
    assert caught.value.filename == str(tmp_path / "missing" / "a.npy")


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.png"
    _, pixels = make_samples("8", 3)
    write_image(Image(pixels), target)
    write_image(Image(1 - pixels), target)
    np.testing.assert_allclose(read_image(target).pixels, 1 - pixels, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_failed_encoding_keeps_the_old_target(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    with pytest.raises(ImageError):
        write_image(Image(make_samples("8", 3)[1]), target, depth="32f")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_interrupted_write_keeps_the_old_target(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    temporaries = []

    def interrupt(fd: int) -> None:
        temporaries.extend(p.name for p in tmp_path.iterdir() if p.name != "a.png")
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_image(Image(make_samples("8", 3)[1]), target)
    assert len(temporaries) == 1 and temporaries[0].startswith(".dncli-") and temporaries[0].endswith(".tmp")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_ctrl_c_during_a_write_is_delivered_after_the_file_is_complete(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    real_fsync = atomic.os.fsync

    def ctrl_c_then_sync(fd: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", ctrl_c_then_sync)
    # A shell starts background jobs with SIGINT ignored; this test needs Python's usual handler.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write_bytes(target, b"complete")
    finally:
        signal.signal(signal.SIGINT, before)
    assert target.read_bytes() == b"complete" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_write_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"data")
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o644
        (tmp_path / "new.bin").chmod(0o600)
        atomic_write_bytes(tmp_path / "new.bin", b"more")
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o600
        assert (tmp_path / "new.bin").read_bytes() == b"more"
    finally:
        os.umask(umask)
