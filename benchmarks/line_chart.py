"""A line chart drawn with numpy alone, for the benchmarks' PSNR-against-sigma plots.

``line_chart`` returns float32 ``[H, W, 3]`` pixels in [0, 1] for ``imgio.codec.write_image``.
Tick values are drawn with a built-in 3x5 digit font; the series have no text labels, so the
caption that goes with the picture names them by colour and line style (``PALETTE_NAMES``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PALETTE = np.array([[0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16],
                    [0.58, 0.4, 0.74], [0.55, 0.34, 0.29]], dtype=np.float32)
PALETTE_NAMES = ("blue", "orange", "green", "red", "purple", "brown")

_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
}


@dataclass
class Series:
    x: np.ndarray
    y: np.ndarray
    colour: int  # index into PALETTE
    dashed: bool = False


def _text(canvas: np.ndarray, text: str, top: int, left: int, scale: int = 2) -> None:
    for offset, char in enumerate(text):
        glyph = np.array([int(bit) for bit in _GLYPHS[char]], dtype=bool).reshape(5, 3)
        block = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        x0 = left + offset * 4 * scale
        region = canvas[top: top + block.shape[0], x0: x0 + block.shape[1]]
        region[block[: region.shape[0], : region.shape[1]]] = 0.0


def _text_width(text: str, scale: int = 2) -> int:
    return len(text) * 4 * scale - scale


def line_chart(series: list[Series], x_ticks: list[float], y_step: float = 1.0,
               width: int = 720, height: int = 480) -> np.ndarray:
    """Every series as a polyline with square markers over a grid at ``x_ticks`` and at every
    ``y_step`` of the value axis, whose range covers all points."""
    canvas = np.ones((height, width, 3), dtype=np.float32)
    left, right, top, bottom = 70, width - 20, 20, height - 40
    values = np.concatenate([s.y for s in series])
    y_low = np.floor(values.min() / y_step) * y_step
    y_high = np.ceil(values.max() / y_step) * y_step
    x_low, x_high = min(x_ticks), max(x_ticks)

    def to_pixel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        column = left + (np.asarray(x, float) - x_low) / (x_high - x_low) * (right - left)
        row = bottom - (np.asarray(y, float) - y_low) / max(y_high - y_low, 1e-9) * (bottom - top)
        return column, row

    grey = np.float32(0.85)
    for tick in x_ticks:
        column = int(round(float(to_pixel(tick, y_low)[0])))
        canvas[top:bottom + 1, column] = grey
        label = f"{tick:g}"
        _text(canvas, label, bottom + 8, column - _text_width(label) // 2)
    decimals = 0 if float(y_step).is_integer() else 1
    for value in np.arange(y_low, y_high + y_step / 2, y_step):
        row = int(round(float(to_pixel(x_low, value)[1])))
        canvas[row, left:right + 1] = grey
        label = f"{value:.{decimals}f}"
        _text(canvas, label, row - 5, left - 8 - _text_width(label))
    canvas[top:bottom + 1, left] = 0.0
    canvas[bottom, left:right + 1] = 0.0

    for line in series:
        colour = PALETTE[line.colour % len(PALETTE)]
        columns, rows = to_pixel(line.x, line.y)
        for (c0, r0), (c1, r1) in zip(zip(columns, rows), zip(columns[1:], rows[1:])):
            steps = int(max(abs(c1 - c0), abs(r1 - r0))) + 1
            for index, t in enumerate(np.linspace(0.0, 1.0, steps)):
                if line.dashed and (index // 6) % 2:
                    continue
                r, c = int(round(r0 + t * (r1 - r0))), int(round(c0 + t * (c1 - c0)))
                canvas[r - 1: r + 1, c - 1: c + 1] = colour
        for c, r in zip(columns, rows):
            r, c = int(round(r)), int(round(c))
            canvas[r - 3: r + 4, c - 3: c + 4] = colour
    return canvas
