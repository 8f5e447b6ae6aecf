"""The composition engine: sources in, one canvas (plus its layout) out.

The geometry comes from :func:`fluxcompose.geometry.plan_layout`; this module
reads the sources, decodes each straight to its cell size (JPEGs shrink on
load), pastes, draws the guides and describes the result as a
:class:`Composite` whose layout serialises to JSON.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import geometry
from .canvas_jpeg import StripPlan, plan_strips
from .errors import InputError
from .images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TIMEOUT,
    SourceImage,
    open_source,
    parse_color,
    save_image_atomic,
    write_bytes_atomic,
)

__all__ = ["MAX_SOURCES", "Cell", "Composite", "compose", "crop_cell"]

MAX_SOURCES = geometry.MAX_SOURCES  # re-exported: the limit is defined once, in geometry
LAYOUT_VERSION = 1


@dataclass
class Cell:
    """Where one source sits on the canvas, in canvas pixels."""

    index: int
    source: str
    x: int
    y: int
    w: int
    h: int
    scale: float  # canvas pixels per source pixel (after orientation)
    orientation_applied: int  # EXIF orientation that was undone (1 = none)
    name: str | None = None  # the recipe's name for this source, when known
    source_size: tuple[int, int] | None = None  # upright source size in pixels

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.w, self.y + self.h


@dataclass
class Composite:
    """A canvas and its layout. ``image`` is the canvas itself (not serialised)."""

    width: int
    height: int
    layout: str
    gutter: int
    background: str
    cells: list[Cell]
    megapixels: float = 1.0
    rows: int = 1
    cols: int = 1
    image: Image.Image | None = field(default=None, repr=False, compare=False)
    # Per cell, what its pixels on ``image`` are a function of (SourceImage.cell_key), or
    # None when something is drawn over it (an outline, a label). Equal keys, equal cells:
    # a batch putting one pattern on many photos makes that cell's thumbnail once.
    # Not serialised (the manifest describes the layout, not this process's pixels).
    pixel_keys: tuple[Hashable | None, ...] = field(default=(), repr=False, compare=False)

    @property
    def aspect_ratio(self) -> str:
        """The reduced ``W:H`` of the canvas, as sent to the API."""
        return geometry.ratio_string(self.width, self.height)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def cell(self, key: int | str) -> Cell:
        """A cell by index or by recipe name."""
        for c in self.cells:
            if c.index == key or (isinstance(key, str) and c.name == key):
                return c
        raise InputError(f"the layout has no cell {key!r}")

    def jpeg_strips(self) -> StripPlan | None:
        """How a JPEG of this canvas is cut so that a cell seen on an earlier canvas is not
        encoded again (:mod:`canvas_jpeg`); None when no cell could be reused. One row of
        cells only: in a grid, a cell's columns may also hold a gutter band, which its key
        does not describe."""
        if self.rows != 1 or len(self.pixel_keys) != len(self.cells):
            return None
        boxes = [
            ((c.x, c.y, c.w, c.h), k) for c, k in zip(self.cells, self.pixel_keys, strict=True)
        ]
        return plan_strips(self.size, boxes)

    def crop_cell(self, image: Image.Image, key: int | str) -> Image.Image:
        return crop_cell(image, self.cell(key), self.size)

    def to_dict(self) -> dict[str, Any]:
        cells = []
        for c in self.cells:
            d = asdict(c)
            d["source_size"] = list(c.source_size) if c.source_size else None
            cells.append(d)
        return {
            "version": LAYOUT_VERSION,
            "width": self.width,
            "height": self.height,
            "aspect_ratio": self.aspect_ratio,
            "layout": self.layout,
            "gutter": self.gutter,
            "background": self.background,
            "megapixels": self.megapixels,
            "rows": self.rows,
            "cols": self.cols,
            "cells": cells,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Composite:
        try:
            cells = [
                Cell(
                    index=int(c["index"]),
                    source=str(c["source"]),
                    x=int(c["x"]),
                    y=int(c["y"]),
                    w=int(c["w"]),
                    h=int(c["h"]),
                    scale=float(c.get("scale", 1.0)),
                    orientation_applied=int(c.get("orientation_applied", 1)),
                    name=c.get("name"),
                    source_size=_size_pair(c.get("source_size")),
                )
                for c in data["cells"]
            ]
            comp = cls(
                width=int(data["width"]),
                height=int(data["height"]),
                layout=str(data.get("layout", "horizontal")),
                gutter=int(data.get("gutter", 0)),
                background=str(data.get("background", "#ffffff")),
                cells=cells,
                megapixels=float(data.get("megapixels", 1.0)),
                rows=int(data.get("rows", 1)),
                cols=int(data.get("cols", len(cells))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a fluxcompose layout: {exc.__class__.__name__} {exc}") from None
        if comp.width < 1 or comp.height < 1:
            raise InputError("not a fluxcompose layout: canvas size must be positive")
        return comp

    @classmethod
    def from_json_file(cls, path: str | Path) -> Composite:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such layout file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable layout JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: not a fluxcompose layout")
        return cls.from_dict(data)

    def save(self, path: str | Path, *, layout_path: str | Path | None = None) -> tuple[Path, Path]:
        """Write the canvas (PNG or JPEG by extension) and ``<path>.layout.json``, both atomically.

        Not fsynced: a canvas and its layout are derived from the sources (the rename stays).
        """
        if self.image is None:
            raise ValueError("this Composite has no canvas image")
        out = Path(path)
        lay = Path(layout_path) if layout_path else out.with_name(out.name + ".layout.json")
        save_image_atomic(self.image, out, quality=95, durable=False)
        write_bytes_atomic(lay, (self.to_json() + "\n").encode(), durable=False)
        return out, lay


def _size_pair(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    w, h = value
    return int(w), int(h)


def crop_cell(image: Image.Image, cell: Cell, canvas_size: tuple[int, int]) -> Image.Image:
    """Cut ``cell`` out of ``image``, an image with the canvas's aspect at any size.

    The box is scaled by image size / canvas size, so this also cuts the edited
    panel out of a model output that kept the two-panel layout.
    """
    cw, ch = canvas_size
    sx, sy = image.width / cw, image.height / ch
    x0 = max(0, min(image.width - 1, round(cell.x * sx)))
    y0 = max(0, min(image.height - 1, round(cell.y * sy)))
    x1 = max(x0 + 1, min(image.width, round((cell.x + cell.w) * sx)))
    y1 = max(y0 + 1, min(image.height, round((cell.y + cell.h) * sy)))
    return image.crop((x0, y0, x1, y1))


def compose(
    sources: Sequence[str | Path | SourceImage],
    *,
    layout: str = "auto",
    gutter: int = 0,
    gutter_color: str | None = None,
    background: str = "white",
    labels: bool | Sequence[str] = False,
    outline: bool = False,
    megapixels: float = 1.0,
    upscale: bool = True,
    names: Sequence[str] | None = None,
    multiple: int = 16,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 1,
) -> Composite:
    """Compose 1 to 9 sources (paths, http(s) URLs or opened :class:`SourceImage`) into one canvas.

    Each picture is scaled uniformly (never squashed) into its cell; the canvas
    is padded with ``background`` into 3:7..7:3 (never cropped), sized to about
    ``megapixels`` with sides that are multiples of ``multiple``. ``gutter`` is
    in canvas pixels. ``labels`` draws "1", "2", ... (or the given texts).
    ``workers`` > 1 decodes sources in parallel threads, at most one per core this
    process may run on (none on one core).
    """
    if not sources:
        raise InputError("compose needs at least one image")
    if len(sources) > MAX_SOURCES:
        raise InputError(f"compose takes at most {MAX_SOURCES} images, got {len(sources)}")
    if layout not in geometry.LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(geometry.LAYOUTS)}")
    if gutter < 0:
        raise InputError(f"gutter must be 0 or more pixels, got {gutter}")
    if not (math.isfinite(megapixels) and 0.01 <= megapixels <= 16):
        raise InputError(f"megapixels must be between 0.01 and 16, got {megapixels}")
    if names is not None and len(names) != len(sources):
        names = list(names)[: len(sources)] + [None] * max(0, len(sources) - len(names))  # type: ignore[list-item]
    bg = parse_color(background)
    gutter_rgb = parse_color(gutter_color) if gutter_color else bg

    opened = [
        s
        if isinstance(s, SourceImage)
        else open_source(s, max_pixels=max_pixels, timeout=timeout, max_bytes=max_bytes)
        for s in sources
    ]
    try:
        plan = geometry.plan_layout(
            [s.size for s in opened],
            layout,
            gutter=gutter,
            megapixels=megapixels,
            multiple=multiple,
            upscale=upscale,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None

    # Each source is decoded and resized straight into its cell of one array.
    pixels = np.empty((plan.height, plan.width, 3), np.uint8)
    # One background row broadcast down the rows: a plain ``pixels[...] = bg`` takes
    # numpy's 3-element inner loop, about 100x slower (6 ms for 1 MP).
    pixels[:] = np.tile(np.array(bg, np.uint8), (plan.width, 1))

    def decode(i: int) -> None:
        box = plan.cells[i]
        cell = pixels[box.y : box.y + box.h, box.x : box.x + box.w]
        opened[i].decode_into(cell, background=bg)

    threads = min(workers, len(opened), available_cores())
    if threads > 1:  # never a pool on one core: it only adds switching
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(decode, range(len(opened))))
    else:
        for i in range(len(opened)):
            decode(i)

    canvas = Image.fromarray(pixels)
    if gutter > 0 and gutter_rgb != bg and len(opened) > 1:
        _paint_gutters(canvas, plan, gutter_rgb)  # bands between slots: never over a cell

    cells = [
        Cell(
            index=i,
            source=s.source,
            x=b.x,
            y=b.y,
            w=b.w,
            h=b.h,
            scale=round(b.w / s.size[0] if b.w >= b.h else b.h / s.size[1], 6),
            orientation_applied=s.orientation,
            name=(names[i] if names else None),
            source_size=s.size,
        )
        for i, (s, b) in enumerate(zip(opened, plan.cells, strict=True))
    ]
    drawn_over = bool(outline or labels)
    pixel_keys = tuple(
        None if drawn_over else s.cell_key((b.w, b.h), bg)
        for s, b in zip(opened, plan.cells, strict=True)
    )
    if outline:
        _draw_outlines(canvas, cells, bg)
    if labels:
        texts = [str(i + 1) for i in range(len(cells))] if labels is True else list(labels)
        if len(texts) < len(cells):
            texts += [str(i + 1) for i in range(len(texts), len(cells))]
        _draw_labels(canvas, cells, texts)
    return Composite(
        width=plan.width,
        height=plan.height,
        layout=plan.layout,
        gutter=gutter,
        background="#{:02x}{:02x}{:02x}".format(*bg),
        cells=cells,
        megapixels=megapixels,
        rows=plan.rows,
        cols=plan.cols,
        image=canvas,
        pixel_keys=pixel_keys,
    )


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _paint_gutters(
    canvas: Image.Image, plan: geometry.LayoutPlan, color: tuple[int, int, int]
) -> None:
    """Fill the bands between neighbouring slots (never the outer padding)."""
    draw = ImageDraw.Draw(canvas)
    slots = plan.slots
    x0, x1 = min(b.x for b in slots), max(b.x1 for b in slots)
    rows: dict[int, list[geometry.Box]] = {}
    for b in slots:
        rows.setdefault(b.y, []).append(b)
    tops = sorted(rows)
    for top in tops:
        row = sorted(rows[top], key=lambda b: b.x)
        for left, right in zip(row, row[1:], strict=False):
            draw.rectangle((left.x1, top, right.x - 1, top + max(b.h for b in row) - 1), fill=color)
    for upper, lower in zip(tops, tops[1:], strict=False):
        bottom = upper + max(b.h for b in rows[upper])
        draw.rectangle((x0, bottom, x1 - 1, lower - 1), fill=color)


def _contrast(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luma > 127 else (255, 255, 255)


def _draw_outlines(canvas: Image.Image, cells: Sequence[Cell], bg: tuple[int, int, int]) -> None:
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(min(canvas.size) / 512))
    for c in cells:
        if c.w > 2 * width and c.h > 2 * width:
            draw.rectangle(
                (c.x, c.y, c.x + c.w - 1, c.y + c.h - 1), outline=_contrast(bg), width=width
            )


def _draw_labels(canvas: Image.Image, cells: Sequence[Cell], texts: Sequence[str]) -> None:
    """A dark tag with white text in each cell's top-left corner, at most 10 % of its shorter side tall."""
    draw = ImageDraw.Draw(canvas)
    for c, text in zip(cells, texts, strict=False):
        limit = int(0.10 * min(c.w, c.h))
        if limit < 6 or not text:
            continue  # too small to carry a legible label
        pad = max(1, limit // 8)
        font = _font(max(4, limit - 2 * pad))
        left, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - left, b - t
        if th + 2 * pad > limit:  # some fonts report taller boxes than their size
            font = _font(max(4, int((limit - 2 * pad) * (limit - 2 * pad) / max(th, 1))))
            left, t, r, b = draw.textbbox((0, 0), text, font=font)
            tw, th = r - left, b - t
        tw = min(tw, c.w - 3 * pad)
        if tw < 1:
            continue
        # Drawn on its own tag, so a text too long for the cell is cut at the tag's
        # edge instead of running into the next cell.
        tag = Image.new("RGB", (math.ceil(tw) + 2 * pad, math.ceil(th) + 2 * pad), (20, 20, 20))
        ImageDraw.Draw(tag).text((pad - left, pad - t), text, fill=(255, 255, 255), font=font)
        canvas.paste(tag, (c.x + pad, c.y + pad))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()
