"""A PNG line chart of one sensor metric, drawn and encoded in plain Python (zlib + struct).

Why not Pillow or matplotlib: the chart is one band (min..max per bucket), one line (the mean),
a grid and a few numbers; ~150 lines here cost less than a dependency of 10-50 MB, and encoding a
960x320 chart takes a few milliseconds.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Sequence

WIDTH, HEIGHT = 960, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 28

WHITE = (255, 255, 255)
GRID = (226, 230, 236)
AXIS = (120, 128, 140)
BAND = (190, 215, 245)
LINE = (20, 80, 170)
TEXT = (60, 64, 72)

# 3x5 glyphs, one string of 15 bits per character, rows top to bottom.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001111", "-": "000000111000000", ".": "000000000000010",
    ":": "000010000010000", " ": "000000000000000",
}

Point = tuple[float, float, float, float]  # (time, mean, min, max)


class Canvas:
    """An RGB raster with just the drawing the chart needs."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int] = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: tuple[int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def get(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * 3
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]

    def hline(self, x0: int, x1: int, y: int, color: tuple[int, int, int]) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.width - 1, max(x0, x1))
        if 0 <= y < self.height and x0 <= x1:
            i = (y * self.width + x0) * 3
            self.pixels[i:i + (x1 - x0 + 1) * 3] = bytes(color) * (x1 - x0 + 1)

    def vline(self, x: int, y0: int, y1: int, color: tuple[int, int, int]) -> None:
        """One slice assignment per colour channel (strided), not one per pixel."""
        y0, y1 = max(0, min(y0, y1)), min(self.height - 1, max(y0, y1))
        if 0 <= x < self.width and y0 <= y1:
            stride = self.width * 3
            count = y1 - y0 + 1
            start = (y0 * self.width + x) * 3
            for channel in range(3):
                begin = start + channel
                end = begin + (count - 1) * stride + 1
                self.pixels[begin:end:stride] = bytes([color[channel]]) * count

    def line(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        """Bresenham, two pixels thick so it reads on a small screen."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.set(x0, y0, color)
            self.set(x0, y0 + 1, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int], scale: int = 2) -> None:
        for n, char in enumerate(text):
            glyph = _GLYPHS.get(char, _GLYPHS[" "])
            for bit, on in enumerate(glyph):
                if on == "1":
                    left = x + n * 4 * scale + (bit % 3) * scale
                    top = y + (bit // 3) * scale
                    for sx in range(scale):
                        for sy in range(scale):
                            self.set(left + sx, top + sy, color)

    def png(self) -> bytes:
        raw = bytearray()
        stride = self.width * 3
        for y in range(self.height):
            raw.append(0)  # filter: none
            raw += self.pixels[y * stride:(y + 1) * stride]
        return encode_png(self.width, self.height, bytes(raw))


def encode_png(width: int, height: int, filtered_rgb: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(filtered_rgb, 6)) + chunk(b"IEND", b""))


def _label(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.1f}"


def line_chart(points: Sequence[Point], since: float, until: float, *, width: int = WIDTH,
               height: int = HEIGHT, gap_s: float | None = None) -> Canvas:
    """Draw ``points`` (sorted by time) between ``since`` and ``until``: a min..max band, the mean
    as a line (broken where consecutive points are more than ``gap_s`` apart), a grid with the
    value range on the left and the local hour below every few hours."""
    canvas = Canvas(width, height)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    span = max(until - since, 1e-9)
    if points:
        low = min(p[2] for p in points)
        high = max(p[3] for p in points)
    else:
        low, high = 0.0, 1.0
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad

    def px(t: float) -> int:
        return LEFT + round((t - since) / span * (plot_w - 1))

    def py(v: float) -> int:
        return TOP + round((high - v) / (high - low) * (plot_h - 1))

    for n in range(5):
        y = TOP + round(n * (plot_h - 1) / 4)
        canvas.hline(LEFT, LEFT + plot_w - 1, y, GRID)
        canvas.text(4, y - 5, _label(high - n * (high - low) / 4), TEXT)
    step_h = max(1, round(span / 3600 / 8))
    first_hour = int(since // 3600 + 1) * 3600
    for t in range(first_hour, int(until) + 1, 3600 * step_h):
        x = px(t)
        canvas.vline(x, TOP, TOP + plot_h - 1, GRID)
        canvas.text(x - 10, TOP + plot_h + 8, time.strftime("%H", time.localtime(t)),
                    TEXT)
    canvas.hline(LEFT, LEFT + plot_w - 1, TOP + plot_h - 1, AXIS)
    canvas.vline(LEFT, TOP, TOP + plot_h - 1, AXIS)

    gap = gap_s if gap_s is not None else span / 100
    for at, _mean, lo, hi in points:
        canvas.vline(px(at), py(lo), py(hi), BAND)
    previous: Point | None = None
    for point in points:
        if previous is not None and point[0] - previous[0] <= gap:
            canvas.line(px(previous[0]), py(previous[1]), px(point[0]), py(point[1]), LINE)
        else:
            canvas.set(px(point[0]), py(point[1]), LINE)
        previous = point
    return canvas


def chart_png(points: Sequence[Point], since: float, until: float, **kwargs: float) -> bytes:
    return line_chart(points, since, until, **kwargs).png()  # type: ignore[arg-type]


__all__ = ["BAND", "Canvas", "HEIGHT", "LINE", "WIDTH", "chart_png", "encode_png", "line_chart"]
