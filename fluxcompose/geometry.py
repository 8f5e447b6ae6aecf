"""Ratios, ~1 MP sizes, Kontext buckets and layout boxes.

Everything here is pure: numbers in, numbers out, no I/O. Sizes are in pixels,
areas in pixels, megapixels in units of 1024 x 1024 = 1,048,576 pixels (the
Kontext convention, so 1:1 at 1.0 MP is 1024x1024).

Over 500 lines because sizes, buckets, FLUX.2 sizes and the layouts are all pure and all
property-tested together; most of the length is their docstrings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from . import models as _models
from .errors import RatioError

__all__ = [
    "MAX_SOURCES",
    "BUCKETS",
    "LAYOUTS",
    "MAX_ASPECT",
    "MEGAPIXEL",
    "MIN_ASPECT",
    "Box",
    "LayoutPlan",
    "Ratio",
    "bucket_for",
    "clamp_aspect",
    "fit_within",
    "flux2_size",
    "parse_ratio",
    "plan_layout",
    "ratio_string",
    "reference_size",
    "size_for",
]

MAX_SOURCES = 9
"""Images per job and per canvas: compose, recipes, pairs files and run all check against this."""
MEGAPIXEL = 1024 * 1024
MIN_ASPECT = 3 / 7
MAX_ASPECT = 7 / 3
AREA_TOLERANCE = 0.05
ASPECT_TOLERANCE = 0.02  # on |ln(w/h) - ln(ratio)|
RANGE_TEXT = "3:7 to 7:3"

_KONTEXT_PORTRAIT = [
    (672, 1568),
    (688, 1504),
    (720, 1456),
    (752, 1392),
    (800, 1328),
    (832, 1248),
    (880, 1184),
    (944, 1104),
]
BUCKETS: tuple[tuple[int, int], ...] = tuple(
    sorted({*_KONTEXT_PORTRAIT, (1024, 1024), *((h, w) for w, h in _KONTEXT_PORTRAIT)})
)
"""Kontext's preferred resolutions (width, height): 17 of them."""

LayoutName = Literal["auto", "horizontal", "vertical", "grid"]
LAYOUTS: tuple[str, ...] = ("auto", "horizontal", "vertical", "grid")

_RATIO_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*[:xX/]\s*([0-9]*\.?[0-9]+)\s*$")
_NUMBER_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class Ratio:
    """An aspect ratio width:height with positive sides."""

    width: float
    height: float

    @property
    def value(self) -> float:
        """width / height."""
        return self.width / self.height

    @property
    def log(self) -> float:
        return math.log(self.value)

    def __str__(self) -> str:
        return f"{_fmt(self.width)}:{_fmt(self.height)}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def parse_ratio(
    value: str | float | tuple[float, float] | Ratio, *, check_range: bool = True
) -> Ratio:
    """Parse ``"16:9"``, ``"1.91:1"``, ``"16x9"``, ``1.777`` or ``(16, 9)`` into a :class:`Ratio`.

    Raises :class:`RatioError` for anything malformed, non-positive, or (when
    ``check_range``) outside 3:7..7:3.
    """
    if isinstance(value, Ratio):
        ratio = value
    elif isinstance(value, tuple):
        if len(value) != 2:
            raise RatioError(_invalid(repr(value), "expected two numbers W:H"))
        try:
            w, h = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            raise RatioError(_invalid(repr(value), "expected two numbers W:H")) from None
        ratio = _ratio_from_numbers(w, h, repr(value))
    elif isinstance(value, int | float):
        ratio = _ratio_from_numbers(float(value), 1.0, repr(value))
    elif isinstance(value, str):
        m = _RATIO_RE.match(value)
        if m:
            ratio = _ratio_from_numbers(float(m.group(1)), float(m.group(2)), repr(value))
        elif n := _NUMBER_RE.match(value):
            ratio = _ratio_from_numbers(float(n.group(1)), 1.0, repr(value))
        else:
            raise RatioError(_invalid(repr(value), "write it as W:H with positive numbers"))
    else:
        raise RatioError(_invalid(repr(value), "write it as W:H"))
    if check_range and not (MIN_ASPECT - 1e-9 <= ratio.value <= MAX_ASPECT + 1e-9):
        raise RatioError(
            f"ratio {ratio} is out of range: Kontext accepts {RANGE_TEXT} "
            f"(width/height between {MIN_ASPECT:.4f} and {MAX_ASPECT:.4f})"
        )
    return ratio


def _ratio_from_numbers(w: float, h: float, shown: str) -> Ratio:
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0:
        raise RatioError(_invalid(shown, "both sides must be positive numbers"))
    return Ratio(w, h)


def _invalid(shown: str, why: str) -> str:
    # The contract: every invalid ratio is an input error that names the allowed range.
    return f"invalid ratio {shown}: {why}, with W/H from {RANGE_TEXT} (e.g. 16:9)"


def clamp_aspect(aspect: float) -> float:
    """Clamp a width/height value into [3/7, 7/3]."""
    return min(MAX_ASPECT, max(MIN_ASPECT, aspect))


def ratio_string(width: int, height: int) -> str:
    """The reduced ``W:H`` string of a pixel size, e.g. 1392x752 -> ``"87:47"``."""
    if width <= 0 or height <= 0:
        raise RatioError(f"invalid size {width}x{height}")
    g = math.gcd(width, height)
    return f"{width // g}:{height // g}"


def simple_ratio_string(aspect: float, max_denominator: int = 32) -> str:
    """A short ``W:H`` approximating ``aspect`` (e.g. 1.3333 -> ``"4:3"``), kept in range."""
    frac = Fraction(aspect).limit_denominator(max_denominator)
    w, h = frac.numerator, frac.denominator
    if not MIN_ASPECT <= w / h <= MAX_ASPECT:
        frac = Fraction(clamp_aspect(aspect)).limit_denominator(max_denominator)
        w, h = frac.numerator, frac.denominator
        # limit_denominator may step just outside; nudge back inside.
        if w / h > MAX_ASPECT:
            w, h = 7, 3
        elif w / h < MIN_ASPECT:
            w, h = 3, 7
    return f"{w}:{h}"


def size_for(
    ratio: str | float | tuple[float, float] | Ratio,
    megapixels: float = 1.0,
    multiple: int = 16,
) -> tuple[int, int]:
    """The (width, height) for ``ratio`` at about ``megapixels``.

    Both sides are multiples of ``multiple``; the area is within +/-5 % of
    ``megapixels * 1,048,576``; ``|ln(w/h) - ln(ratio)| <= 0.02``. Among the
    pairs meeting the area bound it picks the smallest aspect error, then the
    area closest to the budget. Raises :class:`RatioError` if no pair fits
    (only possible for tiny budgets or huge multiples).
    """
    r = parse_ratio(ratio)
    if not (math.isfinite(megapixels) and megapixels > 0):
        raise RatioError(f"megapixels must be a positive number, got {megapixels!r}")
    if not isinstance(multiple, int) or multiple < 1:
        raise RatioError(f"multiple must be a positive whole number, got {multiple!r}")
    best = _best_size(r.value, megapixels, multiple, inside_range=False)
    if best is None:
        raise RatioError(
            f"no size with sides multiple of {multiple} is within 5% of {megapixels} MP "
            f"at ratio {r}; raise --megapixels or lower --multiple"
        )
    return best


def _best_size(
    aspect: float, megapixels: float, multiple: int, *, inside_range: bool
) -> tuple[int, int] | None:
    """The size_for search; with ``inside_range`` only sizes whose own aspect is in 3:7..7:3.

    For each width the admissible heights form an interval (area bound, and the
    range when asked); the best height in it is the one nearest the ideal, i.e.
    the floor or ceiling of the ideal clamped into the interval. So this is exact,
    not a neighbourhood search.
    """
    budget = megapixels * MEGAPIXEL
    lo_area, hi_area = budget * (1 - AREA_TOLERANCE), budget * (1 + AREA_TOLERANCE)
    log_aspect = math.log(aspect)
    slack = math.exp(ASPECT_TOLERANCE)
    w_min = math.sqrt(lo_area * aspect / slack)
    w_max = math.sqrt(hi_area * aspect * slack)
    best: tuple[float, float, int, int] | None = None
    k_lo = max(1, math.floor(w_min / multiple))
    k_hi = max(k_lo, math.ceil(w_max / multiple))
    for k in range(k_lo, k_hi + 1):
        w = k * multiple
        j_lo = max(1, math.ceil(lo_area / w / multiple))
        j_hi = math.floor(hi_area / w / multiple)
        if inside_range:
            j_lo = max(j_lo, math.ceil(w / MAX_ASPECT / multiple - 1e-9))
            j_hi = min(j_hi, math.floor(w / MIN_ASPECT / multiple + 1e-9))
        if j_lo > j_hi:
            continue
        ideal = w / aspect / multiple
        for j in {min(j_hi, max(j_lo, math.floor(ideal))), min(j_hi, max(j_lo, math.ceil(ideal)))}:
            h = j * multiple
            area = w * h
            if not lo_area <= area <= hi_area:
                continue
            if inside_range and not MIN_ASPECT <= w / h <= MAX_ASPECT:
                continue
            err = abs(math.log(w / h) - log_aspect)
            if err > ASPECT_TOLERANCE:
                continue
            key = (round(err, 12), abs(area - budget), w, h)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], best[3])


FLUX2_MULTIPLE = _models.SIZE_MULTIPLE
"""FLUX.2 output sides are multiples of this many pixels (16)."""
FLUX2_MIN_SIDE = _models.MIN_SIDE
"""FLUX.2 output sides are at least this many pixels (64)."""
FLUX2_MAX_MEGAPIXELS = _models.MAX_OUTPUT_PIXELS / MEGAPIXEL
"""FLUX.2 outputs are at most this many megapixels (4, in units of 1,048,576 pixels)."""


def flux2_size(
    ratio: str | float | tuple[float, float] | Ratio, megapixels: float = 1.0
) -> tuple[int, int]:
    """The FLUX.2 output (width, height) for ``ratio`` at about ``megapixels`` (0 < mp <= 4).

    ``ratio`` is clamped into 3:7..7:3 first (a source may be narrower than the model
    allows). Both sides are multiples of 16 and at least 64, the area is at most 4 MP,
    and ``|ln(w/h) - ln(clamped ratio)| <= 0.02``. It is :func:`size_for`'s pick (area
    within +/-5 % of the budget) whenever that fits under 4 MP; otherwise, and for
    budgets too small for the +/-5 % band, the size of area nearest the budget within
    those bounds. Raises :class:`RatioError` for a budget outside (0, 4].
    """
    r = parse_ratio(ratio, check_range=False)
    aspect = clamp_aspect(r.value)
    if not (math.isfinite(megapixels) and 0 < megapixels <= FLUX2_MAX_MEGAPIXELS):
        raise RatioError(
            f"the output size must be more than 0 and at most {FLUX2_MAX_MEGAPIXELS:g} MP, "
            f"got {megapixels!r}"
        )
    max_area = FLUX2_MAX_MEGAPIXELS * MEGAPIXEL
    for mp in (megapixels, megapixels / (1 + AREA_TOLERANCE)):
        best = _best_size(aspect, mp, FLUX2_MULTIPLE, inside_range=False)
        if best is not None and best[0] * best[1] <= max_area and min(best) >= FLUX2_MIN_SIDE:
            return best
    found = _nearest_area_size(aspect, megapixels * MEGAPIXEL, max_area)
    if found is None:  # pragma: no cover - every ratio in range has 224x96-ish sizes
        raise RatioError(f"no FLUX.2 size fits ratio {r} at {megapixels} MP")
    return found


def _nearest_area_size(aspect: float, budget: float, max_area: float) -> tuple[int, int] | None:
    """The multiple-of-16 size (sides >= 64, area <= ``max_area``) within the aspect
    tolerance whose area is nearest ``budget`` (pixels)."""
    m = FLUX2_MULTIPLE
    best: tuple[float, float, int, int] | None = None
    k_max = math.isqrt(int(max_area * MAX_ASPECT)) // m + 1
    for k in range(FLUX2_MIN_SIDE // m, k_max + 1):
        w = k * m
        ideal = w / aspect / m
        for j in {math.floor(ideal), math.ceil(ideal)}:
            h = j * m
            if h < FLUX2_MIN_SIDE or w * h > max_area:
                continue
            err = abs(math.log(w / h) - math.log(aspect))
            if err > ASPECT_TOLERANCE:
                continue
            key = (abs(w * h - budget), round(err, 12), w, h)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], best[3])


def reference_size(width: int, height: int, max_pixels: float) -> tuple[int, int]:
    """(width, height) scaled uniformly (never up) so the area is at most ``max_pixels``.

    Sides are floored, and at least 1 pixel; the aspect changes only by that rounding.
    """
    if width < 1 or height < 1:
        raise RatioError(f"invalid size {width}x{height}")
    if max_pixels <= 0:
        raise RatioError(f"the pixel budget must be positive, got {max_pixels!r}")
    if width * height <= max_pixels:
        return width, height
    s = math.sqrt(max_pixels / (width * height))
    w, h = max(1, math.floor(width * s)), max(1, math.floor(height * s))
    while w * h > max_pixels and (w > 1 or h > 1):  # float rounding at the edge
        if w >= h:
            w -= 1
        else:
            h -= 1
    return w, h


def bucket_for(ratio: str | float | tuple[float, float] | Ratio) -> tuple[int, int]:
    """The Kontext preferred resolution nearest to ``ratio`` by |ln aspect| difference."""
    r = parse_ratio(ratio)
    return min(BUCKETS, key=lambda b: (abs(math.log(b[0] / b[1]) - r.log), -b[0] * b[1]))


def fit_within(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Scale (width, height) uniformly to fit inside (box_w, box_h); sides at least 1."""
    s = min(box_w / width, box_h / height)
    return max(1, min(box_w, round(width * s))), max(1, min(box_h, round(height * s)))


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Box:
    """A rectangle in canvas pixels: left x, top y, width w, height h."""

    x: int
    y: int
    w: int
    h: int

    @property
    def x1(self) -> int:
        return self.x + self.w

    @property
    def y1(self) -> int:
        return self.y + self.h


@dataclass(frozen=True)
class LayoutPlan:
    """Where each source goes on the canvas.

    ``cells[i]`` is the box of source ``i`` (its whole picture, uniformly
    scaled); ``slots[i]`` is the space reserved for it (equal to the cell for
    horizontal and vertical; the grid cell it is centred in for grid);
    ``scales[i]`` is canvas pixels per source pixel.
    """

    layout: str
    width: int
    height: int
    cells: tuple[Box, ...]
    scales: tuple[float, ...]
    gutter: int
    rows: int
    cols: int
    slots: tuple[Box, ...] = ()

    @property
    def aspect_ratio(self) -> str:
        return ratio_string(self.width, self.height)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` cells: as square as possible, wider than tall."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return rows, cols


def _natural(layout: str, aspects: Sequence[float]) -> tuple[float, float, int, int, float]:
    """Unit-scale arrangement: (content width, content height, rows, cols, fill fraction).

    Horizontal: heights 1, widths = aspects. Vertical: widths 1. Grid: every
    cell has the geometric-mean aspect; each picture is letterboxed inside.
    The fill fraction is the share of the content area covered by pictures.
    """
    n = len(aspects)
    if layout == "horizontal":
        return sum(aspects), 1.0, 1, n, 1.0
    if layout == "vertical":
        return 1.0, sum(1 / a for a in aspects), n, 1, 1.0
    if layout == "grid":
        rows, cols = grid_shape(n)
        cell = math.exp(sum(math.log(a) for a in aspects) / n)
        covered = sum(min(a / cell, cell / a) for a in aspects)
        return cols * cell, float(rows), rows, cols, covered / (rows * cols)
    raise ValueError(f"unknown layout {layout!r}")


def padding_needed(layout: str, aspects: Sequence[float]) -> float:
    """Fraction of the canvas that padding takes for ``layout`` (0 = none), ignoring gutters."""
    cw, ch, _, _, fill = _natural(layout, aspects)
    a = cw / ch
    c = clamp_aspect(a)
    fit = min(a, c) / max(a, c)
    return 1 - fit * fill


def choose_layout(aspects: Sequence[float]) -> str:
    """``auto``: the layout that needs the least padding; ties go to horizontal."""
    candidates = ["horizontal", "vertical"] + (["grid"] if len(aspects) > 2 else [])
    scores = {name: padding_needed(name, aspects) for name in candidates}
    best = min(scores.values())
    for name in candidates:  # order gives the tie-break
        if scores[name] <= best + 1e-9:
            return name
    return "horizontal"  # pragma: no cover


def plan_layout(
    sizes: Sequence[tuple[int, int]],
    layout: str = "auto",
    *,
    gutter: int = 0,
    megapixels: float = 1.0,
    multiple: int = 16,
    upscale: bool = True,
) -> LayoutPlan:
    """Place sources of pixel ``sizes`` (width, height) on one canvas.

    The canvas aspect lies in 3:7..7:3 (padding, never cropping), both sides are
    multiples of ``multiple``, and its area is within 5 % of ``megapixels`` --
    unless ``upscale`` is False and the sources are smaller than that, in which
    case pictures keep their native scale and the canvas is just big enough.
    ``gutter`` is the space between cells, in canvas pixels.
    """
    if not sizes:
        raise ValueError("at least one source is needed")
    if any(w < 1 or h < 1 for w, h in sizes):
        raise ValueError(f"source sizes must be positive, got {list(sizes)}")
    if gutter < 0:
        raise ValueError("gutter must be >= 0")
    if layout == "auto":
        layout = choose_layout([w / h for w, h in sizes])
    if layout not in ("horizontal", "vertical", "grid"):
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")

    aspects = [w / h for w, h in sizes]
    unit_w, unit_h, rows, cols, _ = _natural(layout, aspects)
    gaps_x = gutter * (cols - 1)
    gaps_y = gutter * (rows - 1)

    budget = megapixels * MEGAPIXEL
    # Content scale s (pixels per unit) so that (unit_w*s + gaps_x)(unit_h*s + gaps_y) = budget.
    qa = unit_w * unit_h
    qb = unit_w * gaps_y + unit_h * gaps_x
    qc = gaps_x * gaps_y - budget
    s = (-qb + math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))) / (2 * qa)
    s = max(s, 1e-9)

    natural_aspect = (unit_w * s + gaps_x) / (unit_h * s + gaps_y)
    # Like size_for, but the canvas's own aspect must stay inside 3:7..7:3: at the
    # ends of the range size_for's 0.02 tolerance could step just outside it.
    target = clamp_aspect(natural_aspect)
    found = _best_size(target, megapixels, multiple, inside_range=True)
    if found is None:
        raise RatioError(
            f"no canvas with sides multiple of {multiple} is within 5% of {megapixels} MP "
            f"at ratio {simple_ratio_string(target)}; raise --megapixels"
        )
    canvas = found
    if not upscale:
        native = _native_scale(layout, sizes, aspects)
        # Compare with the scale the budget canvas actually gives the content: when
        # the canvas is padded into 3:7..7:3 the content gets less than ``s``, and a
        # native-scale picture would then make a canvas far over the budget.
        fit = min((canvas[0] - gaps_x) / unit_w, (canvas[1] - gaps_y) / unit_h)
        if native < fit:
            return _place(layout, sizes, aspects, rows, cols, gutter, None, native, multiple)
    return _place(layout, sizes, aspects, rows, cols, gutter, canvas, None, multiple)


def _native_scale(layout: str, sizes: Sequence[tuple[int, int]], aspects: Sequence[float]) -> float:
    """Largest content scale at which no picture is enlarged."""
    if layout == "horizontal":
        return min(h for _, h in sizes)
    if layout == "vertical":
        return min(w for w, _ in sizes)
    n = len(aspects)
    cell = math.exp(sum(math.log(a) for a in aspects) / n)
    # A picture of aspect a in a cell (cell*s x s) is drawn at min(cell*s/w, s/h) * its size.
    return min(max(w / cell, h) for w, h in sizes)


def _content_size(
    layout: str, aspects: Sequence[float], rows: int, cols: int, gutter: int, s: float
) -> tuple[int, int, list[tuple[int, int]], tuple[int, int]]:
    """Pixel sizes of the pictures at content scale ``s``, the grid cell, and the content extent."""
    sizes: list[tuple[int, int]] = []
    # Below one pixel per unit the shared side is clamped to 1 px; the other side
    # must then follow s itself, not the clamped side, or very wide (tall) pictures
    # would be drawn at full source size and overflow the canvas.
    along = math.floor(s) if s >= 1 else s
    if layout == "horizontal":
        h = max(1, math.floor(s))
        sizes = [(max(1, round(a * along)), h) for a in aspects]
        cw = sum(w for w, _ in sizes) + gutter * (len(sizes) - 1)
        return cw, h, sizes, (0, 0)
    if layout == "vertical":
        w = max(1, math.floor(s))
        sizes = [(w, max(1, round(along / a))) for a in aspects]
        ch = sum(h for _, h in sizes) + gutter * (len(sizes) - 1)
        return w, ch, sizes, (0, 0)
    cell_aspect = math.exp(sum(math.log(a) for a in aspects) / len(aspects))
    cell_h = max(1, math.floor(s))
    cell_w = max(1, math.floor(cell_aspect * s))
    for a in aspects:
        if a >= cell_w / cell_h:
            w = cell_w
            h = max(1, min(cell_h, round(w / a)))
        else:
            h = cell_h
            w = max(1, min(cell_w, round(h * a)))
        sizes.append((w, h))
    return (
        cols * cell_w + gutter * (cols - 1),
        rows * cell_h + gutter * (rows - 1),
        sizes,
        (cell_w, cell_h),
    )


def _place(
    layout: str,
    sizes: Sequence[tuple[int, int]],
    aspects: Sequence[float],
    rows: int,
    cols: int,
    gutter: int,
    canvas: tuple[int, int] | None,
    scale: float | None,
    multiple: int,
) -> LayoutPlan:
    unit_w, unit_h, *_ = _natural(layout, aspects)
    gaps_x = gutter * (cols - 1)
    gaps_y = gutter * (rows - 1)
    if canvas is not None:
        cw_px, ch_px = canvas
        avail_w, avail_h = cw_px - gaps_x, ch_px - gaps_y
        if avail_w < cols or avail_h < rows:
            raise ValueError(
                f"gutter {gutter}px leaves no room for the pictures on a {cw_px}x{ch_px} canvas"
            )
        s = min(avail_w / unit_w, avail_h / unit_h)
        # Rounding each picture (and the 1-px floor) may overshoot: shrink until it
        # fits. Every picture is at least 1 px and avail >= cols/rows, so a small
        # enough s always fits; usually one or two steps do.
        for _ in range(200):
            content_w, content_h, pics, cell = _content_size(layout, aspects, rows, cols, gutter, s)
            if content_w <= cw_px and content_h <= ch_px:
                break
            over = max((content_w - gaps_x) / avail_w, (content_h - gaps_y) / avail_h)
            # s / over never undershoots what fits (1-px pictures do not shrink with s);
            # otherwise step the whole-pixel side down by one, so nothing is lost to rounding.
            if s >= 2:
                s = min(s / over, math.floor(s) - 1.0)
            else:
                s = min(s / over, s * 0.99 if s < 1 else 0.999)
        else:  # pragma: no cover - guarded by the room check above
            raise ValueError(f"cannot fit the pictures on a {cw_px}x{ch_px} canvas")
    else:
        assert scale is not None
        s = scale
        content_w, content_h, pics, cell = _content_size(layout, aspects, rows, cols, gutter, s)
        # Pad to the allowed range and up to the multiple: never crop.
        a = content_w / content_h
        c = clamp_aspect(a)
        cw_f, ch_f = (content_h * c, content_h) if c > a else (content_w, content_w / c)
        cw_px = max(multiple, math.ceil(max(cw_f, content_w) / multiple) * multiple)
        ch_px = max(multiple, math.ceil(max(ch_f, content_h) / multiple) * multiple)
        # Rounding up to the multiple can step just outside the range on tiny canvases.
        while cw_px / ch_px > MAX_ASPECT:
            ch_px += multiple
        while cw_px / ch_px < MIN_ASPECT:
            cw_px += multiple

    off_x = (cw_px - content_w) // 2
    off_y = (ch_px - content_h) // 2
    boxes: list[Box] = []
    slots: list[Box] = []
    if layout == "horizontal":
        x = off_x
        for w, h in pics:
            boxes.append(Box(x, off_y, w, h))
            x += w + gutter
    elif layout == "vertical":
        y = off_y
        for w, h in pics:
            boxes.append(Box(off_x, y, w, h))
            y += h + gutter
    else:
        cell_w, cell_h = cell
        for i, (w, h) in enumerate(pics):
            r, c = divmod(i, cols)
            # A short last row is centred, as people lay out photos.
            in_row = min(cols, len(pics) - r * cols)
            row_off = (cols - in_row) * (cell_w + gutter) // 2
            cx = off_x + row_off + c * (cell_w + gutter)
            cy = off_y + r * (cell_h + gutter)
            slots.append(Box(cx, cy, cell_w, cell_h))
            boxes.append(Box(cx + (cell_w - w) // 2, cy + (cell_h - h) // 2, w, h))
    scales = tuple(
        b.w / sw if b.w >= b.h else b.h / sh for b, (sw, sh) in zip(boxes, sizes, strict=True)
    )
    return LayoutPlan(
        layout, cw_px, ch_px, tuple(boxes), scales, gutter, rows, cols, tuple(slots or boxes)
    )
