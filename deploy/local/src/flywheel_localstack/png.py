"""Just enough PNG decoding (8-bit RGB and RGBA, no interlacing) to check what a screenshot
shows, with zlib and struct alone."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}
"""Bytes per pixel of the supported colour types: RGB and RGBA, 8 bits each."""

Rgb = tuple[int, int, int]


def hex_rgb(colour: str) -> Rgb:
    """`#rrggbb` as the pixel value `Png.colours` counts."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class PngError(ValueError):
    """Not a PNG, or a kind this module does not decode."""


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    channels: int
    rows: tuple[bytes, ...]
    """The decoded (unfiltered) scanlines, from the top."""

    def colours(self) -> Counter[Rgb]:
        """How many pixels of each colour the decoded rows hold (alpha ignored)."""
        counts: Counter[Rgb] = Counter()
        step = self.channels
        for row in self.rows:
            counts.update(zip(row[0::step], row[1::step], row[2::step], strict=True))
        return counts


def read_png(path: Path) -> Png:
    """Decode `path`; about a second for a 1280x2400 screenshot."""
    data = path.read_bytes()
    if not data.startswith(_SIGNATURE):
        raise PngError(f"{path} is not a PNG")
    header: bytes | None = None
    compressed = bytearray()
    offset = len(_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError(f"{path} has no IHDR chunk")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise PngError(f"{path}: depth {depth}, colour type {colour}, interlace {interlace}")
    channels = _CHANNELS[colour]
    stride = width * channels
    raw = zlib.decompress(bytes(compressed))
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = raw[start + 1 : start + 1 + stride]
        if len(line) < stride:
            raise PngError(f"{path} ends at row {y} of {height}")
        previous = _unfilter(raw[start], line, previous, channels)
        rows.append(previous)
    return Png(width, height, channels, tuple(rows))


def _unfilter(kind: int, line: bytes, above: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, above, strict=True))
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((left + above[i]) >> 1)) & 0xFF
        elif kind == 4:
            upper_left = above[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + _paeth(left, above[i], upper_left)) & 0xFF
        else:
            raise PngError(f"unknown filter type {kind}")
    return bytes(out)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c
