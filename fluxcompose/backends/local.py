"""The local backend: an offline, free, deterministic classical-CV preview.

It imitates each built-in recipe well enough to try the whole pipeline
without a key:

- ``pattern-transfer``: the pattern cell scaled to the recipe's width fraction
  of the target and Poisson-blended (``cv2.seamlessClone``) at the placement;
- ``style-fusion``: Reinhard colour-statistics transfer in Lab from the style
  cell to the target cell;
- ``side-by-side`` (and any other recipe): the canvas itself;
- text-to-image: a seeded gradient with noise.

The result is sized like the hosted models' output: the Kontext bucket of the
request's aspect ratio (16:9 gives 1392x752).

It reads ``request.context``, filled by the pipeline::

    {"recipe": str, "variables": {...}, "checks": {...},
     "layout": Composite.to_dict(),   # width, height, cells: [{x, y, w, h, ...}]
     "source_names": [...],           # the recipe's names for the cells, in order
     "target": name or index}         # the cell that is edited
"""

from __future__ import annotations

import io
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from ..errors import ConfigError, RatioError, RequestError
from ..geometry import MAX_ASPECT, MIN_ASPECT, bucket_for, fit_within
from .base import MODELS, GenerationRequest, GenerationResult, OnSubmitted

__all__ = [
    "NOTICE",
    "LocalBackend",
    "fit_to_bucket",
    "parse_fraction",
    "placement_center",
    "reinhard_transfer",
]

NOTICE = "local backend: an offline classical-CV preview, not a generative model"

RGB = NDArray[np.uint8]
"""An image as an (height, width, 3) uint8 RGB array."""

DEFAULT_WIDTH_FRACTION = 2 / 3
"""Used when neither variables["size"] nor checks["pattern_width_fraction"] says (the recipe default)."""

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels, x1/y1 exclusive."""


# --------------------------------------------------------------------------- parsing


_FRACTION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_NUMBER_RE = re.compile(r"\d*\.?\d+")


def parse_fraction(value: object) -> float | None:
    """A fraction in (0, 1] from ``"2/3"``, ``"0.5"``, ``"50%"``, ``0.5`` or text containing one.

    A bare number above 1 and at most 100 is read as a percentage. Returns None
    when nothing usable is found.
    """
    if value is None or isinstance(value, bool):
        return None
    result: float | None = None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if m := _FRACTION_RE.search(text):
            den = float(m.group(2))
            result = float(Fraction(m.group(1)) / Fraction(m.group(2))) if den else None
        elif m := _PERCENT_RE.search(text):
            result = float(m.group(1)) / 100
        elif m := _NUMBER_RE.search(text):
            result = float(m.group(0))
    if result is None or not math.isfinite(result) or result <= 0:
        return None
    if result > 1:
        if result > 100:
            return None
        result /= 100
    return result


def width_fraction(variables: Mapping[str, Any], checks: Mapping[str, Any]) -> tuple[float, str]:
    """The pattern width as a fraction of the target width, and where it came from."""
    frac = parse_fraction(variables.get("size"))
    if frac is not None:
        return frac, "variables.size"
    bounds = checks.get("pattern_width_fraction")
    if isinstance(bounds, Sequence) and not isinstance(bounds, str) and len(bounds) == 2:
        try:
            lo, hi = float(bounds[0]), float(bounds[1])
        except (TypeError, ValueError):
            pass
        else:
            mid = (lo + hi) / 2
            if 0 < mid <= 1:
                return mid, "checks.pattern_width_fraction"
    return DEFAULT_WIDTH_FRACTION, "default"


def placement_center(placement: object) -> tuple[float, float]:
    """The centre (fx, fy) in 0..1 of the target for a placement such as ``"middle"``,
    ``"top"``, ``"upper left"`` or ``"bottom right"``. Unknown words mean the centre."""
    fx, fy = 0.5, 0.5
    if not isinstance(placement, str):
        return fx, fy
    for word in re.findall(r"[a-z]+", placement.lower()):
        if word in ("top", "upper", "above"):
            fy = 0.25
        elif word in ("bottom", "lower", "below"):
            fy = 0.75
        elif word == "left":
            fx = 0.25
        elif word == "right":
            fx = 0.75
        # middle, center, centre, chest and anything else keep the centre.
    return fx, fy


# --------------------------------------------------------------------------- image helpers


def _decode(data: bytes) -> RGB:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB")
    except Exception as exc:  # PIL raises many types for bad data
        raise RequestError(f"the local backend could not decode the input image: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


def _encode(image: RGB, output_format: str) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(image, "RGB")
    if output_format == "jpeg":
        pil.save(buf, format="JPEG", quality=95)
    else:
        pil.save(buf, format="PNG")
    return buf.getvalue()


def _resize(image: RGB, width: int, height: int) -> RGB:
    import cv2

    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.copy()
    shrinking = width * height < w * h
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, (width, height), interpolation=interp), dtype=np.uint8)


def _rounds_to(aspect: float, bucket: tuple[int, int]) -> bool:
    """True when a picture of width/height ``aspect`` would be snapped to ``bucket``."""
    if not MIN_ASPECT - 1e-9 <= aspect <= MAX_ASPECT + 1e-9:
        return False
    return bucket_for(aspect) == bucket


def fit_to_bucket(image: RGB, bucket: tuple[int, int]) -> tuple[RGB, Box]:
    """Put ``image`` on a ``bucket`` (width, height) canvas, like the hosted models do.

    When the picture's aspect rounds to this bucket it is resized to fill it
    (squashed only by the bucket's rounding). Otherwise it is scaled uniformly
    to fit and centred on a blurred, enlarged copy of itself. Returns the new
    image and the box the picture occupies in it.
    """
    import cv2

    bw, bh = bucket
    h, w = image.shape[:2]
    if _rounds_to(w / h, bucket):
        return _resize(image, bw, bh), (0, 0, bw, bh)
    fw, fh = fit_within(w, h, bw, bh)
    scale = max(bw / w, bh / h)
    cover = _resize(image, max(bw, math.ceil(w * scale)), max(bh, math.ceil(h * scale)))
    cy0 = (cover.shape[0] - bh) // 2
    cx0 = (cover.shape[1] - bw) // 2
    background = cover[cy0 : cy0 + bh, cx0 : cx0 + bw]
    # Blur cheaply: shrink 16x, then enlarge again.
    small = _resize(background, max(1, bw // 16), max(1, bh // 16))
    background = np.asarray(
        cv2.resize(small, (bw, bh), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
    )
    ox, oy = (bw - fw) // 2, (bh - fh) // 2
    background[oy : oy + fh, ox : ox + fw] = _resize(image, fw, fh)
    return background, (ox, oy, ox + fw, oy + fh)


def reinhard_transfer(content: RGB, style: RGB, strength: float = 1.0) -> RGB:
    """Reinhard et al. (2001) colour transfer: give ``content`` the per-channel Lab mean and
    standard deviation of ``style``. ``strength`` in 0..1 blends from none to full."""
    import cv2

    c = cv2.cvtColor(content.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    s = cv2.cvtColor(style.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    mc, sc = c.reshape(-1, 3).mean(axis=0), c.reshape(-1, 3).std(axis=0)
    ms, ss = s.reshape(-1, 3).mean(axis=0), s.reshape(-1, 3).std(axis=0)
    moved = (c - mc) * (ss / np.maximum(sc, 1e-6)) + ms
    out = c + float(strength) * (moved - c)
    out[..., 0] = np.clip(out[..., 0], 0.0, 100.0)
    out[..., 1:] = np.clip(out[..., 1:], -127.0, 127.0)
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.asarray(np.clip(np.rint(rgb * 255.0), 0, 255), dtype=np.uint8)


def foreground_mask(patch: RGB, background: tuple[int, int, int] | None) -> Any:
    """255 where ``patch`` differs from the plain ``background`` colour, dilated by ~2 %.

    With no background colour known, or when nearly everything is foreground
    (a photo-like pattern), the whole patch is foreground.
    """
    import cv2

    h, w = patch.shape[:2]
    full = np.full((h, w), 255, dtype=np.uint8)
    if background is None:
        return full
    diff = np.abs(patch.astype(np.int16) - np.array(background, dtype=np.int16)).max(axis=2)
    fg = np.where(diff > 24, 255, 0).astype(np.uint8)
    if fg.mean() > 0.9 * 255:
        return full
    radius = max(2, round(0.02 * max(w, h)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(fg, kernel)


def poisson_paste(
    target: RGB,
    pattern: RGB,
    frac: float,
    center: tuple[float, float],
    background: tuple[int, int, int] | None = None,
) -> tuple[RGB, Box]:
    """Scale ``pattern`` to ``frac`` of the target's width and Poisson-blend it centred at
    ``center`` (fractions of the target), moved inward as needed to stay inside.

    Returns the blended image and the pattern's box in target pixels.
    """
    import cv2

    th, tw = target.shape[:2]
    ph0, pw0 = pattern.shape[:2]
    pw = max(3, round(frac * tw))
    ph = max(3, round(pw * ph0 / pw0))
    # seamlessClone needs the patch strictly inside the target: keep a 1 px margin.
    shrink = min(1.0, (tw - 2) / pw, (th - 2) / ph)
    if shrink < 1.0:
        pw, ph = max(3, math.floor(pw * shrink)), max(3, math.floor(ph * shrink))
    if pw > tw - 2 or ph > th - 2:
        return target.copy(), (0, 0, 0, 0)  # target too small to paste into
    patch = _resize(pattern, pw, ph)
    x0 = min(max(1, round(center[0] * tw - pw / 2)), tw - pw - 1)
    y0 = min(max(1, round(center[1] * th - ph / 2)), th - ph - 1)
    # A logo on a plain background should carry only the logo across: blend the
    # foreground (dilated a little so the seam falls on background) rather than
    # the whole rectangle, which would smear the background's tint onto the garment.
    fg = foreground_mask(patch, background)
    ys, xs = np.nonzero(fg)
    if len(xs) == 0:
        fg[:] = 255
        ys, xs = np.nonzero(fg)
    bx0, bx1 = int(xs.min()), int(xs.max()) + 1
    by0, by1 = int(ys.min()), int(ys.max()) + 1
    # OpenCV clears the mask's outer 1 px ring and centres the mask's bounding box on
    # the point, so pad the crop by 1 px to land it exactly where it belongs.
    src = cv2.copyMakeBorder(patch[by0:by1, bx0:bx1], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    mask = cv2.copyMakeBorder(fg[by0:by1, bx0:bx1], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    bw, bh = bx1 - bx0, by1 - by0
    point = (x0 + bx0 + bw // 2, y0 + by0 + bh // 2)
    blended = cv2.seamlessClone(src, target, mask, point, cv2.NORMAL_CLONE)
    return np.asarray(blended, dtype=np.uint8), (x0, y0, x0 + pw, y0 + ph)


def _background(context: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """The canvas background colour from the layout, if the request carries one."""
    layout = context.get("layout")
    value = layout.get("background") if isinstance(layout, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        from PIL import ImageColor

        r, g, b = ImageColor.getrgb(value)[:3]
    except ValueError:
        return None
    return r, g, b


def seeded_preview(size: tuple[int, int], seed: int, prompt: str = "") -> RGB:
    """A (width, height) image for text-to-image: a seeded two-colour gradient with noise.

    The same seed and prompt always give the same pixels.
    """
    w, h = size
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(prompt.encode("utf-8"))])
    c0, c1 = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx / max(w - 1, 1) - 0.5) * math.cos(angle) + (yy / max(h - 1, 1) - 0.5) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    img += rng.normal(0.0, 6.0, size=(h, w, 3)).astype(np.float32)
    return np.asarray(np.clip(np.rint(img), 0, 255), dtype=np.uint8)


# --------------------------------------------------------------------------- layout


def cell_boxes(layout: object, canvas_size: tuple[int, int]) -> list[Box] | None:
    """The cells' boxes in canvas pixels, scaled from the layout's size to ``canvas_size``
    (width, height); None when ``layout`` is not a usable ``Composite.to_dict()``."""
    if not isinstance(layout, Mapping):
        return None
    cells = layout.get("cells")
    if not isinstance(cells, Sequence) or not cells:
        return None
    cw, ch = canvas_size
    try:
        lw = float(layout.get("width") or cw)
        lh = float(layout.get("height") or ch)
        sx, sy = cw / lw, ch / lh
        ordered = sorted(
            enumerate(cells), key=lambda ic: int(ic[1].get("index", ic[0]))
        )  # the pipeline lists cells in order already; be safe
        boxes: list[Box] = []
        for _, cell in ordered:
            x0 = max(0, min(cw, round(float(cell["x"]) * sx)))
            y0 = max(0, min(ch, round(float(cell["y"]) * sy)))
            x1 = max(0, min(cw, round((float(cell["x"]) + float(cell["w"])) * sx)))
            y1 = max(0, min(ch, round((float(cell["y"]) + float(cell["h"])) * sy)))
            if x1 - x0 < 1 or y1 - y0 < 1:
                return None
            boxes.append((x0, y0, x1, y1))
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError):
        return None
    return boxes


def _index_of(value: object, names: Sequence[str], n: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < n else None
    if isinstance(value, str):
        if value.strip().isdigit():
            idx = int(value.strip())
            return idx if 0 <= idx < n else None
        if value in names:
            idx = list(names).index(value)
            return idx if idx < n else None
    return None


def roles(context: Mapping[str, Any], n: int, other_name: str) -> tuple[int, int]:
    """(target index, source index) among ``n`` cells.

    The target is ``context["target"]`` (name or index), else the cell named
    ``target``, else the last cell. The source is the cell named ``other_name``
    (``pattern`` or ``style``), else the first cell that is not the target.
    """
    names = [str(x) for x in context.get("source_names") or []]
    target = _index_of(context.get("target"), names, n)
    if target is None:
        target = _index_of("target", names, n)
    if target is None:
        target = n - 1
    other = _index_of(other_name, names, n)
    if other is None or other == target:
        other = next(i for i in range(n) if i != target)
    return target, other


def _crop(image: RGB, box: Box) -> RGB:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1].copy()


# --------------------------------------------------------------------------- backend


class LocalBackend:
    """Offline classical-CV imitation of the recipes. Deterministic and free."""

    name: ClassVar[str] = "local"
    resumable: ClassVar[bool] = False
    NOTICE: ClassVar[str] = NOTICE

    def __repr__(self) -> str:
        return "LocalBackend()"

    def max_concurrency(self, model: str) -> int:
        """One task per CPU core: the work is local computation."""
        return max(1, os.cpu_count() or 1)

    def generate(
        self,
        request: GenerationRequest,
        *,
        on_submitted: OnSubmitted | None = None,
        resume_task_id: str | None = None,
    ) -> GenerationResult:
        """Imitate ``request.context["recipe"]`` on the canvas; returns encoded image bytes.

        ``on_submitted`` and ``resume_task_id`` are ignored: there is no remote task.
        """
        if request.model not in MODELS:
            raise ConfigError(f"unknown model {request.model!r}; choose one of {', '.join(MODELS)}")
        try:
            bucket = bucket_for(request.aspect_ratio)
        except RatioError as exc:
            raise RequestError(f"bad aspect_ratio for the local backend: {exc}") from exc
        context: Mapping[str, Any] = request.context or {}
        recipe = str(context.get("recipe") or "")
        variables: Mapping[str, Any] = context.get("variables") or {}
        checks: Mapping[str, Any] = context.get("checks") or {}
        seed = 0 if request.seed is None else int(request.seed)
        extra: dict[str, Any] = {"notice": NOTICE, "recipe": recipe or None}

        if request.input_image is None:
            content = seeded_preview(bucket, seed, request.prompt)
            extra["method"] = "seeded preview (text-to-image)"
            region: Box | None = None
        else:
            canvas = _decode(request.input_image)
            boxes = cell_boxes(context.get("layout"), (canvas.shape[1], canvas.shape[0]))
            content, region, method = self._imitate(
                recipe, canvas, boxes, context, variables, checks, extra
            )
            extra["method"] = method

        out, placed = fit_to_bucket(content, bucket)
        extra["size"] = [out.shape[1], out.shape[0]]
        if region is not None and content.shape[0] and content.shape[1]:
            ch, cw = content.shape[:2]
            px0, py0, px1, py1 = placed
            sx, sy = (px1 - px0) / cw, (py1 - py0) / ch
            x0, y0, x1, y1 = region
            extra["pattern_box"] = [
                round((px0 + x0 * sx) / out.shape[1], 4),
                round((py0 + y0 * sy) / out.shape[0], 4),
                round((px0 + x1 * sx) / out.shape[1], 4),
                round((py0 + y1 * sy) / out.shape[0], 4),
            ]
        return GenerationResult(data=_encode(out, request.output_format), extra=extra)

    def _imitate(
        self,
        recipe: str,
        canvas: RGB,
        boxes: list[Box] | None,
        context: Mapping[str, Any],
        variables: Mapping[str, Any],
        checks: Mapping[str, Any],
        extra: dict[str, Any],
    ) -> tuple[RGB, Box | None, str]:
        """The picture before bucketing, the pattern box in it (or None), and what was done."""
        two_cells = boxes is not None and len(boxes) >= 2
        if recipe == "pattern-transfer" and boxes is not None and two_cells:
            t, p = roles(context, len(boxes), "pattern")
            target, pattern = _crop(canvas, boxes[t]), _crop(canvas, boxes[p])
            frac, source = width_fraction(variables, checks)
            center = placement_center(variables.get("placement"))
            out, box = poisson_paste(target, pattern, frac, center, _background(context))
            extra.update(width_fraction=round(frac, 4), width_fraction_from=source, target_index=t)
            return out, box, "pattern scaled and Poisson-blended (cv2.seamlessClone)"
        if recipe == "style-fusion" and boxes is not None and two_cells:
            t, s = roles(context, len(boxes), "style")
            strength = parse_fraction(variables.get("strength"))
            out = reinhard_transfer(
                _crop(canvas, boxes[t]), _crop(canvas, boxes[s]), strength or 1.0
            )
            extra.update(target_index=t, style_index=s)
            return out, None, "Reinhard colour transfer in Lab"
        if recipe in ("pattern-transfer", "style-fusion"):
            return canvas, None, "canvas (no usable two-cell layout in the request context)"
        if recipe == "side-by-side":
            return canvas, None, "canvas"
        return canvas, None, "canvas (no local imitation for this recipe)"
