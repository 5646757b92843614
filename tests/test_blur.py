"""Tests for denoise_cli.engine.physics.blur: kernel specs, files, validation and blur()."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.ndimage

from denoise_cli.engine.physics.blur import KernelError, blur, parse_kernel, validate_kernel


def _assert_normalised(k: np.ndarray) -> None:
    assert k.dtype == np.float64 and k.ndim == 2
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert (k >= 0).all()


# --- parametric specs -------------------------------------------------------------------


@pytest.mark.parametrize("sigma, side", [(0.5, 5), (1.0, 7), (2.2, 15)])
def test_gaussian_shape_sum_symmetry(sigma: float, side: int) -> None:
    k, warnings = parse_kernel(f"gaussian:{sigma}")
    assert warnings == []
    assert k.shape == (side, side)  # 2*ceil(3*sigma)+1
    _assert_normalised(k)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
    assert k.argmax() == k.size // 2  # peak at the centre


def test_motion_horizontal_is_centre_row() -> None:
    k, warnings = parse_kernel("motion:15,0")
    assert warnings == []
    assert k.shape == (15, 15)
    _assert_normalised(k)
    row_sums = k.sum(axis=1)
    assert row_sums[7] == pytest.approx(1.0)
    np.testing.assert_allclose(k[7], np.full(15, 1 / 15))  # 15 pixels at full weight


def test_motion_vertical_is_transpose() -> None:
    horizontal, _ = parse_kernel("motion:15,0")
    vertical, _ = parse_kernel("motion:15,90")
    assert vertical.shape == horizontal.shape
    np.testing.assert_allclose(vertical, horizontal.T, atol=1e-12)


def test_motion_oblique_is_anti_aliased_and_counter_clockwise() -> None:
    k, _ = parse_kernel("motion:9,45")
    _assert_normalised(k)
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    # Counter-clockwise from +x with rows running down: the line goes to the top-right.
    c = k.shape[0] // 2
    assert k[c - 2, c + 2] > 0 and k[c + 2, c + 2] == 0
    # Anti-aliasing: pixels beside the diagonal carry partial weight.
    assert 0 < k[c - 1, c] < k[c, c]
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-12)  # symmetric about the centre


def test_motion_length_one_is_identity() -> None:
    k, _ = parse_kernel("motion:1,30")
    np.testing.assert_array_equal(k, [[1.0]])


def test_box() -> None:
    k, warnings = parse_kernel("box:3")
    assert warnings == [] and k.shape == (3, 3)
    _assert_normalised(k)
    np.testing.assert_allclose(k, 1 / 9)


# --- file kernels -------------------------------------------------------------------------


def test_npy_file_normalised_with_warning(tmp_path) -> None:
    path = tmp_path / "k.npy"
    np.save(path, np.array([[0.0, 1.0], [2.0, 1.0]]))
    k, warnings = parse_kernel(str(path))
    np.testing.assert_allclose(k, [[0, 0.25], [0.5, 0.25]])
    assert len(warnings) == 1 and "normalised" in warnings[0] and "sum was 4" in warnings[0]


def test_npy_file_already_normalised_no_warning(tmp_path) -> None:
    path = tmp_path / "k.npy"
    np.save(path, np.full((3, 3), 1 / 9))
    k, warnings = parse_kernel(str(path))
    assert warnings == []
    _assert_normalised(k)


def test_txt_file_commas_and_spaces(tmp_path) -> None:
    path = tmp_path / "k.txt"
    path.write_text("# a comment\n1, 2 1\n\n2,4,2\n1 2 1\n")
    k, _ = parse_kernel(str(path))
    np.testing.assert_allclose(k, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)


def test_png_gray_and_colour(tmp_path) -> None:
    gray = np.array([[0, 255, 0], [255, 255, 255], [0, 255, 0]], dtype=np.uint8)
    iio.imwrite(tmp_path / "g.png", gray)
    k, _ = parse_kernel(str(tmp_path / "g.png"))
    np.testing.assert_allclose(k, gray / gray.astype(float).sum())

    colour = np.zeros((3, 3, 3), dtype=np.uint8)
    colour[1, 1] = (255, 0, 0)  # mean of channels -> 85
    colour[0, 1] = (0, 0, 255)
    iio.imwrite(tmp_path / "c.png", colour)
    k, _ = parse_kernel(str(tmp_path / "c.png"))
    assert k[1, 1] == pytest.approx(0.5) and k[0, 1] == pytest.approx(0.5)


def test_tif_16bit(tmp_path) -> None:
    img = np.zeros((5, 5), dtype=np.uint16)
    img[2, 1:4] = 60000
    iio.imwrite(tmp_path / "k.tif", img)
    k, _ = parse_kernel(str(tmp_path / "k.tif"))
    np.testing.assert_allclose(k[2, 1:4], 1 / 3)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ("motion:abc", "kernel spec 'motion:abc': expected motion:LENGTH,ANGLE"),
        ("motion:15", "kernel spec 'motion:15': expected motion:LENGTH,ANGLE"),
        ("motion:0.5,0", "kernel motion:0.5,0: length must be at least 1 pixel"),
        ("gaussian:-1", "kernel gaussian:-1: sigma must be positive"),
        ("gaussian:nan", "kernel gaussian:nan: sigma must be positive"),
        ("gaussian:inf", "kernel gaussian:inf: sigma must be finite"),
        ("gaussian:1000", "kernel gaussian:1000: too large"),
        ("box:2.5", "kernel box:2.5: N must be a positive integer"),
        ("box:0", "kernel box:0: N must be a positive integer"),
        ("disk:3", "kernel spec 'disk:3': unknown kind 'disk'"),
        ("kernel", "kernel spec 'kernel': expected"),
        ("missing.npy", "kernel file missing.npy: not found"),
    ],
)
def test_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(KernelError) as info:
        parse_kernel(spec)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_file_errors(tmp_path) -> None:
    ragged = tmp_path / "r.txt"
    ragged.write_text("1 2 3\n1 2\n")
    with pytest.raises(KernelError, match="line 2 has 2 values, the first row has 3"):
        parse_kernel(str(ragged))
    words = tmp_path / "w.txt"
    words.write_text("1 x 3\n")
    with pytest.raises(KernelError, match="line 1 is not a row of numbers"):
        parse_kernel(str(words))
    corrupt = tmp_path / "c.npy"
    corrupt.write_bytes(b"not numpy")
    with pytest.raises(KernelError, match=r"c\.npy: cannot read"):
        parse_kernel(str(corrupt))
    one_d = tmp_path / "v.npy"
    np.save(one_d, np.ones(3))
    with pytest.raises(KernelError, match=r"v\.npy: must be a 2-D array"):
        parse_kernel(str(one_d))


@pytest.mark.parametrize(
    "kernel, message",
    [
        (np.zeros((0, 3)), "kernel: is empty"),
        (np.array([[1.0, np.nan]]), "kernel: contains NaN or infinite values"),
        (np.array([[1.0, np.inf]]), "kernel: contains NaN or infinite values"),
        (np.zeros((3, 3)), "kernel: sums to zero"),
        (np.array([[1.0, -0.5]]), "kernel: contains negative values"),
        (np.ones(3), "kernel: must be a 2-D array"),
        (np.ones((2, 2, 2)), "kernel: must be a 2-D array"),
    ],
)
def test_validate_errors(kernel: np.ndarray, message: str) -> None:
    with pytest.raises(KernelError) as info:
        validate_kernel(kernel)
    assert str(info.value).startswith(message)


def test_validate_tolerance_and_name() -> None:
    k, warnings = validate_kernel(np.array([[0.5, 0.5 + 1e-8]]))
    assert warnings == []  # within 1e-6
    _, warnings = validate_kernel(np.array([[0.5, 0.6]]), name="kernel file k.npy")
    assert warnings == ["kernel file k.npy: sum was 1.1, normalised to 1"]


# --- blur ---------------------------------------------------------------------------------


def _reference(image: np.ndarray, kernel: np.ndarray, mode: str) -> np.ndarray:
    return np.stack(
        [scipy.ndimage.convolve(image[:, :, c], kernel, mode=mode) for c in range(image.shape[2])],
        axis=2,
    )


@pytest.mark.parametrize("mode", ["wrap", "reflect"])
@pytest.mark.parametrize("kernel_shape", [(3, 4), (21, 21), (20, 17)])  # direct; FFT odd/even
@pytest.mark.parametrize("channels", [1, 3])
def test_blur_matches_scipy(mode: str, kernel_shape: tuple[int, int], channels: int) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((24, 19, channels))
    kernel = rng.random(kernel_shape)  # asymmetric, so a flip or shift would show
    out = blur(image, kernel, boundary=mode)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, _reference(image, kernel, mode), atol=1e-5 * kernel.sum())


@pytest.mark.parametrize("mode", ["wrap", "reflect"])
def test_blur_fft_kernel_larger_than_image(mode: str) -> None:
    rng = np.random.default_rng(2)
    image = rng.random((6, 5, 1))
    kernel = rng.random((21, 21)) / 100
    np.testing.assert_allclose(blur(image, kernel, mode), _reference(image, kernel, mode), atol=1e-5)


def test_blur_identity_and_gray_2d() -> None:
    rng = np.random.default_rng(3)
    colour = rng.random((8, 9, 3)).astype(np.float32)
    np.testing.assert_array_equal(blur(colour, np.array([[1.0]])), colour)
    gray = colour[:, :, 0]
    out = blur(gray, np.array([[1.0]]), boundary="reflect")
    assert out.shape == gray.shape
    np.testing.assert_array_equal(out, gray)


def test_blur_bad_arguments() -> None:
    with pytest.raises(ValueError, match="boundary must be 'wrap' or 'reflect'"):
        blur(np.zeros((4, 4, 1)), np.ones((1, 1)), boundary="zero")
    with pytest.raises(KernelError, match="2-D"):
        blur(np.zeros((4, 4, 1)), np.ones(3))
    with pytest.raises(ValueError, match="image must be"):
        blur(np.zeros(4), np.ones((1, 1)))
