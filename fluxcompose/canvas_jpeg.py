"""JPEG canvases put together from encoded vertical strips, so that a cell shared by many
canvases is encoded once.

A batch that puts one pattern on a thousand photos sends a thousand canvases whose left
part is the same pattern cell. Baseline JPEG allows encoding that part once. With a
restart interval of R blocks, the entropy coder starts afresh every R blocks of 8x8
pixels: the DC predictions are reset and the bits are padded to a byte. A vertical strip
whose edges are multiples of 8R pixels therefore codes to the same bytes alone as inside
the canvas.

The canvas is the strips' segments taken row of blocks by row of blocks, with the restart
markers renumbered. Byte for byte, that is what libjpeg writes for the whole canvas with
the same restart interval. The tests hold it to that, so the pixels sent are exactly those
of a plain quality-95 4:4:4 encoding. The markers add about 2.5 bytes per interval, and R
is at least ``MIN_RESTART_BLOCKS``, which keeps that under 2 % of a 1 MP canvas.

Only 4:4:4 canvases whose sides are multiples of 8 qualify, so that one block is one MCU.
Anything this module does not recognise in an encoded strip makes it encode the whole
canvas with the same settings instead. That gives the same bytes, only more slowly.
"""

from __future__ import annotations

import io
import itertools
import re
import struct
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from PIL import Image

from .lru import LruCache

__all__ = ["MIN_RESTART_BLOCKS", "StripPlan", "clear_strip_cache", "encode_jpeg", "plan_strips"]

BLOCK = 8  # pixels: one 4:4:4 MCU is one 8x8 block
MIN_RESTART_BLOCKS = 8

_RST = re.compile(rb"(\xff[\xd0-\xd7])")  # captured: one split gives segments and markers
_MARKERS = tuple(bytes((0xFF, 0xD0 + i)) for i in range(8))
_EOI = b"\xff\xd9"


@dataclass(frozen=True)
class StripPlan:
    """How a canvas is cut for encoding: the restart interval (blocks) and the strips as
    ``(x0, x1, key)``, left to right and covering the width. A strip's pixels are a
    function of its key; None marks a strip to encode afresh every time."""

    restart_blocks: int
    strips: tuple[tuple[int, int, Hashable | None], ...]


def plan_strips(
    size: tuple[int, int],
    cells: Sequence[tuple[tuple[int, int, int, int], Hashable | None]],
) -> StripPlan | None:
    """The plan that reuses the most encoded pixels, or None when no strip could be reused.

    ``size`` is the canvas (w, h). ``cells`` are ``((x, y, w, h), key)``: the boxes of the
    canvas's cells and their pixel keys (None for a cell with something drawn over it).
    Everything outside the cells must be plain background, and the background must be
    part of each key. A keyed cell yields a reusable strip over the columns that hold
    only that cell, cut at multiples of 8R. Its key adds where the cell sits in the
    strip, because the strip's pixels also hold the background above and below it.
    """
    width, height = size
    if width % BLOCK or height % BLOCK or width <= 0 or height <= 0:
        return None
    blocks = width // BLOCK
    alone = []
    for i, ((x, y, w, h), key) in enumerate(cells):
        if key is None or w <= 0 or h <= 0:
            continue
        shared = any(
            j != i and ox < x + w and x < ox + ow for j, ((ox, _, ow, _), _) in enumerate(cells)
        )
        if not shared:
            alone.append((x, y, w, h, key))
    if not alone:
        return None
    best: tuple[int, int, list[tuple[int, int, Hashable]]] | None = None
    for r in range(MIN_RESTART_BLOCKS, blocks + 1):
        if blocks % r:
            continue
        step = BLOCK * r
        cut: list[tuple[int, int, Hashable]] = []
        for x, y, w, h, key in alone:
            x0 = -(-x // step) * step
            x1 = (x + w) // step * step
            if x1 > x0:
                cut.append((x0, x1, (key, x0 - x, x1 - x0, y, h, height)))
        covered = sum(x1 - x0 for x0, x1, _ in cut)
        if covered and (best is None or (covered, r) > (best[0], best[1])):
            best = (covered, r, cut)
    if best is None:
        return None
    _, r, chosen = best
    strips: list[tuple[int, int, Hashable | None]] = []
    at = 0
    for x0, x1, key in sorted(chosen, key=lambda c: c[0]):
        if x0 > at:
            strips.append((at, x0, None))
        strips.append((x0, x1, key))
        at = x1
    if at < width:
        strips.append((at, width, None))
    return StripPlan(r, tuple(strips))


def _encode(image: Image.Image, quality: int, restart_blocks: int) -> bytes:
    buf = io.BytesIO()
    image.save(
        buf,
        "JPEG",
        quality=quality,
        subsampling=0,
        optimize=False,
        restart_marker_blocks=restart_blocks,
    )
    return buf.getvalue()


@dataclass(frozen=True)
class _Coded:
    """One strip, encoded: the header up to the scan, and the scan's restart intervals."""

    header: bytes
    sof_at: int  # offset of the SOF0 marker in ``header``
    segments: tuple[bytes, ...]
    nbytes: int


def _split(data: bytes, size: tuple[int, int], restart_blocks: int) -> _Coded | None:
    """A strip's JPEG cut into its header and restart intervals; None for anything but
    baseline 8-bit three-component 4:4:4 of ``size`` with ``restart_blocks``."""
    if not data.startswith(b"\xff\xd8") or not data.endswith(_EOI):
        return None
    pos, sof_at, dri = 2, -1, -1
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker == 0xC0:
            sof_at = pos
            precision, h, w, n = struct.unpack_from(">BHHB", data, pos + 4)
            samplings = data[pos + 11 : pos + 11 + 3 * n : 3]  # after each component id
            if (precision, (w, h), n, samplings) != (8, size, 3, b"\x11\x11\x11"):
                return None
        elif marker == 0xDD:
            (dri,) = struct.unpack_from(">H", data, pos + 4)
        elif marker in (0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB):
            return None  # not baseline
        pos += 2 + length
        if marker == 0xDA:
            break
    if sof_at < 0 or dri != restart_blocks:
        return None
    pieces = _RST.split(data[pos:-2])  # segment, marker, segment, ..., segment
    segments = tuple(pieces[0::2])
    expected = (size[0] // BLOCK) * (size[1] // BLOCK) // restart_blocks
    if len(segments) != expected:
        return None
    if pieces[1::2] != _markers(len(segments) - 1):
        return None  # RST0..RST7 in turn, as a decoder expects them
    return _Coded(data[:pos], sof_at, segments, len(data))


def _markers(n: int) -> list[bytes]:
    """The first ``n`` restart markers of a scan: RST0, RST1, ..., RST7, RST0, ..."""
    return list(itertools.islice(itertools.cycle(_MARKERS), n))


# Encoded strips by (key, restart interval, quality): the pattern of a batch is coded once.
_STRIPS: LruCache[_Coded] = LruCache(32 * 1024 * 1024, lambda c: c.nbytes, largest=4)


def clear_strip_cache() -> None:
    """Forget every encoded strip (benchmarks measuring a cold encode; tests)."""
    _STRIPS.clear()


def encode_jpeg(image: Image.Image, plan: StripPlan, *, quality: int) -> bytes:
    """``image`` (RGB) as baseline JPEG at ``quality``, 4:4:4, with a restart marker every
    ``plan.restart_blocks`` blocks: the bytes libjpeg writes for the whole image with
    those settings, put together from the plan's strips, keyed ones from the cache."""
    width, height = image.size
    r = plan.restart_blocks
    coded: list[_Coded] = []
    for x0, x1, key in plan.strips:
        cache_key = None if key is None else (key, r, quality)
        got = None if cache_key is None else _STRIPS.get(cache_key)
        if got is None:
            size = (x1 - x0, height)
            got = _split(_encode(image.crop((x0, 0, x1, height)), quality, r), size, r)
            if got is None:  # an encoder this module does not know: the whole canvas
                return _encode(image, quality, r)
            if cache_key is not None:
                _STRIPS.put(cache_key, got)
        coded.append(got)
    per_row = [(x1 - x0) // BLOCK // r for x0, x1, _ in plan.strips]
    header = bytearray(coded[0].header)
    struct.pack_into(">H", header, coded[0].sof_at + 7, width)
    order: list[bytes] = []  # the canvas's intervals in scan order: row by row, strip by strip
    for row in range(height // BLOCK):
        for strip, k in zip(coded, per_row, strict=True):
            order.extend(strip.segments[row * k : (row + 1) * k])
    parts = [b""] * (2 * len(order) - 1)
    parts[0::2] = order
    parts[1::2] = _markers(len(order) - 1)
    return bytes(header) + b"".join(parts) + _EOI
