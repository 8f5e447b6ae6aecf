"""Alignment: the canvas layout an output may have kept, cutting the target's cell back
out of it, and the aspect checks (DESIGN.md section 8).

Boxes are ``[x0, y0, x1, y1]`` normalised 0..1; sizes ``(width, height)`` in pixels;
cells are in canvas pixels.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from PIL import Image

from ..compose import crop_cell
from ..errors import InputError
from .imaging import ImageLike, resize, rgb_array, to_pil
from .metrics import ssim

__all__ = [
    "CellView",
    "LayoutView",
    "align_output",
    "aspect_mismatch",
    "cut_output",
    "default_target_index",
    "find_canvas",
    "load_layout",
    "require_target_frame",
]

ASPECT_TOLERANCE = 0.12  # |ln aspect| difference that still "matches" (Kontext snaps ~0.08)


@dataclass(frozen=True)
class CellView:
    """A cell's box in canvas pixels, plus its optional recipe name."""

    index: int
    x: float
    y: float
    w: float
    h: float
    name: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class LayoutView:
    """The parts of a Composite layout that compare needs."""

    width: int
    height: int
    cells: tuple[CellView, ...]


def _find_layout_dict(data: Any) -> Mapping[str, Any] | None:
    """The layout dict: the object itself, or one level down (a run sidecar)."""
    if isinstance(data, Mapping):
        if "cells" in data:
            return data
        for key in ("layout", "canvas", "composite"):
            sub = data.get(key)
            if isinstance(sub, Mapping) and "cells" in sub:
                return sub
    return None


def load_layout(layout: Any) -> LayoutView:
    """A :class:`LayoutView` from a Composite, a layout dict, or a path to its JSON
    (``OUT.layout.json``, or a run sidecar holding it). Raises InputError if malformed."""
    if isinstance(layout, LayoutView):
        return layout
    shown = "layout"
    if isinstance(layout, str | os.PathLike):
        shown = str(layout)
        try:
            data: Any = json.loads(Path(layout).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read layout {shown!r}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise InputError(f"layout {shown!r} is not valid JSON: {exc}") from exc
    elif hasattr(layout, "to_dict"):
        data = layout.to_dict()
    else:
        data = layout
    d = _find_layout_dict(data)
    if d is None:
        raise InputError(f"{shown!r} is not a canvas layout: no 'cells' list")
    try:
        width, height = int(d["width"]), int(d["height"])
        cells = tuple(
            CellView(
                index=int(c.get("index", i)),
                x=float(c["x"]),
                y=float(c["y"]),
                w=float(c["w"]),
                h=float(c["h"]),
                name=c.get("name"),
                source=None if c.get("source") is None else str(c.get("source")),
            )
            for i, c in enumerate(d["cells"])
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{shown!r} is not a canvas layout: bad or missing {exc}") from exc
    if width <= 0 or height <= 0 or not cells:
        raise InputError(f"{shown!r} is not a canvas layout: empty canvas or no cells")
    for c in cells:
        if (
            c.w <= 0
            or c.h <= 0
            or c.x < 0
            or c.y < 0
            or c.x + c.w > width + 0.5
            or c.y + c.h > height + 0.5
        ):
            raise InputError(f"{shown!r}: cell {c.index} lies outside the {width}x{height} canvas")
    return LayoutView(width, height, cells)


def default_target_index(layout: Any, source_names: Sequence[str] | None = None) -> int:
    """The target cell's ``index``: the cell named "target", else the position of
    "target" in the recipe's ``source_names`` (cells are in source order), else the
    last cell."""
    view = load_layout(layout)
    for c in view.cells:
        if c.name == "target":
            return c.index
    if source_names and "target" in source_names and len(source_names) == len(view.cells):
        return view.cells[list(source_names).index("target")].index
    return view.cells[-1].index


def _crop_cell(image: Image.Image, cell: CellView, canvas: tuple[int, int]) -> Image.Image:
    """Cut a cell out of an image with the canvas's aspect (compose.crop_cell's arithmetic:
    the box scaled by image.size / canvas size)."""
    return crop_cell(image, cast(Any, cell), canvas)


def _cell_box(cell: CellView, canvas: tuple[int, int]) -> list[float]:
    """The cell's box normalised 0..1 in the canvas (and so in an output that kept it)."""
    cw, ch = canvas
    return [cell.x / cw, cell.y / ch, (cell.x + cell.w) / cw, (cell.y + cell.h) / ch]


def _aspect_gap(a: tuple[int | float, int | float], b: tuple[int | float, int | float]) -> float:
    return abs(math.log(a[0] / a[1]) - math.log(b[0] / b[1]))


def aspect_mismatch(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (width, height) sizes differ in aspect by more than a model's snapping."""
    return _aspect_gap(a, b) > ASPECT_TOLERANCE


def require_target_frame(output: tuple[int, int], target: tuple[int, int]) -> None:
    """With no canvas layout to cut from (separate references, FLUX.2 sizes), the output
    must show the target's frame: InputError when the (width, height) sizes differ in
    aspect by more than a model's snapping, since resizing one onto the other would
    measure a squashed picture."""
    if aspect_mismatch(output, target):
        raise InputError(
            f"the output ({output[0]}x{output[1]}) does not have the target's aspect "
            f"({target[0]}x{target[1]}) and there is no canvas to cut it from: it cannot be "
            "aligned; ask for the target's ratio (match:target)"
        )


def cut_output(
    output: Image.Image,
    target: Image.Image,
    layout: Any = None,
    target_index: int | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """The part of ``output`` that shows the target: the target's cell when the output
    kept the canvas layout, else the whole output. Returns (image, info) where info is
    ``{"cell": index or None, "cell_box": normalised box in the output or None}``."""
    none: dict[str, Any] = {"cell": None, "cell_box": None}
    if layout is None:
        return output, none
    view = load_layout(layout)
    canvas = (view.width, view.height)
    idx = default_target_index(view) if target_index is None else target_index
    cell = next((c for c in view.cells if c.index == idx), None)
    if cell is None:
        raise InputError(
            f"no cell with index {idx} in the layout (indices: {[c.index for c in view.cells]})"
        )
    gap_canvas = _aspect_gap(output.size, canvas)
    gap_target = _aspect_gap(output.size, target.size)
    canvas_ok = gap_canvas <= ASPECT_TOLERANCE
    target_ok = gap_target <= ASPECT_TOLERANCE
    if not canvas_ok and not target_ok:
        raise InputError(
            f"the layout does not match the output: output {output.width}x{output.height}, "
            f"canvas {view.width}x{view.height}, target {target.width}x{target.height}"
        )
    if canvas_ok and target_ok:
        # Ambiguous (e.g. a 2 x 2 grid of squares): take whichever looks like the target.
        cut = _crop_cell(output, cell, canvas)
        small = (64, 64)
        t = resize(rgb_array(target), small)
        s_cut = ssim(resize(rgb_array(cut), small), t)
        s_whole = ssim(resize(rgb_array(output), small), t)
        cut_info = {"cell": cell.index, "cell_box": _cell_box(cell, canvas)}
        return (cut, cut_info) if s_cut > s_whole else (output, none)
    if canvas_ok:
        return _crop_cell(output, cell, canvas), {
            "cell": cell.index,
            "cell_box": _cell_box(cell, canvas),
        }
    return output, none


def align_output(
    output: ImageLike,
    target: ImageLike,
    composite: Any = None,
    target_index: int | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """The output in the target's frame: the target's cell cut out first when the output
    kept the canvas layout (``composite`` a Composite, layout dict or JSON path), then
    resized to the target's size (or ``size``). InputError if the layout's canvas matches
    neither the output's aspect nor the target's."""
    out = to_pil(output)
    tgt = to_pil(target)
    cut, _ = cut_output(out, tgt, composite, target_index)
    w, h = size or tgt.size
    return Image.fromarray(resize(rgb_array(cut), (w, h)))


def find_canvas(layout_path: str | os.PathLike[str]) -> Path | None:
    """The canvas image next to a layout file, if there is one: ``OUT.layout.json`` ->
    ``OUT``; a run sidecar ``<job>.json`` -> ``<job>.canvas.<any ext>`` (PNG or JPEG
    preferred, in that order). None otherwise."""
    p = Path(layout_path)
    if p.name.endswith(".layout.json"):
        c = p.with_name(p.name[: -len(".layout.json")])
        return c if c.is_file() else None
    if p.suffix != ".json":
        return None
    stem = p.name[: -len(".json")]
    preferred = [p.with_name(f"{stem}.canvas.{ext}") for ext in ("png", "jpg", "jpeg", "webp")]
    for c in preferred:
        if c.is_file():
            return c
    others = sorted(c for c in p.parent.glob(f"{_glob_escape(stem)}.canvas.*") if c.is_file())
    return others[0] if others else None


def _glob_escape(text: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[]" else ch for ch in text)
