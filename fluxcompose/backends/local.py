"""The local backend: an offline, free, deterministic classical-CV preview.

It imitates each built-in recipe well enough to try the whole pipeline
without a key:

- ``pattern-transfer``: a print mock-up (DESIGN.md s. 10): the subject is found on
  the target (:func:`fluxcompose.locate.locate`, or the given ``subject_box``), the
  pattern's plain background is dropped, the print is scaled to the recipe's ``size``
  of the chest width, centred on the ``placement`` point in the chest box, clipped to
  the garment mask and shaded by the fabric; off the garment nothing changes. With no
  subject the print is placed by the whole image, and the result says so;
- ``style-fusion``: Reinhard colour-statistics transfer in Lab from the style
  cell to the target cell, then the style's texture: its fine detail, at its own
  energy, takes the place of most of the target's (:func:`style_preview`);
- ``side-by-side`` (and any other recipe): the canvas itself;
- text-to-image: a seeded gradient with noise.

The result is sized like the hosted models' output: exactly ``width`` x ``height`` when
the request asks for a size (FLUX.2), else the Kontext bucket of the request's aspect
ratio (16:9 gives 1392x752). Any model name is accepted: the model only changes the
estimated price, never the preview. With separate references (``context["references"]``,
no layout) the images themselves are the cells, in order.

It reads ``request.context``, filled by the pipeline::

    {"recipe": str, "variables": {...}, "checks": {...},
     "layout": Composite.to_dict(),   # width, height, cells: [{x, y, w, h, ...}]; None
                                      # with separate references
     "references": [...],             # separate references: their names, in order
     "source_names": [...],           # the recipe's names for the cells, in order
     "target": name or index,         # the cell that is edited
     "subject_box": [x0, y0, x1, y1]} # optional: the chest box, normalised on the target

``GenerationResult.extra`` says what was done: always ``notice``, ``recipe``, ``method``
and ``size``; for pattern-transfer also ``subject`` (``Subject.to_dict()``, on the
target), ``placed_by`` ("chest" or "image"), ``chest_box`` and ``pattern_box`` (the
print's foreground as placed; both [x0, y0, x1, y1] normalised in the OUTPUT; chest_box
None without a subject), ``width_fraction`` and ``width_fraction_from``, ``placement``
and ``placement_point`` (fractions of the chest box, or of the image), the dropped
``pattern_background`` colour (None: printed whole), ``shade_median`` (the garment's
median luminance, 0..255) and ``warnings`` (a list of sentences: no subject found,
placement words not understood, ...).

Over 500 lines because it is three previews (the print mock-up, style fusion, the canvas)
with their own image helpers, behind the one backend protocol; the mock-up's steps share
its mask and shading helpers, so splitting them would only move imports around.
"""

from __future__ import annotations

import io
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Unpack

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from ..errors import RatioError, RequestError
from ..geometry import ASPECT_TOLERANCE, MAX_ASPECT, MIN_ASPECT, bucket_for, fit_within
from ..locate import Subject, locate, placement_point
from ..prints import Color, PrintLayer, print_layer
from .base import GenerationRequest, GenerationResult, TaskHooks

__all__ = [
    "NOTICE",
    "LocalBackend",
    "Mockup",
    "PrintLayer",
    "fit_to_bucket",
    "fit_to_size",
    "model_notice",
    "parse_fraction",
    "placement_center",
    "print_layer",
    "print_mockup",
    "reinhard_transfer",
    "style_preview",
]

NOTICE = "local backend: an offline classical-CV preview, not a generative model"


def model_notice(model: str) -> str:
    """What the local preview says about the model it was given."""
    return f"local preview: the model ({model}) only changes the estimated price"


RGB = NDArray[np.uint8]
"""An image as an (height, width, 3) uint8 RGB array."""

DEFAULT_WIDTH_FRACTION = 2 / 3
"""Used when neither variables["size"] nor checks["pattern_width_fraction"] says (the recipe default)."""

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels, x1/y1 exclusive."""

FloatBox = tuple[float, float, float, float]
"""x0, y0, x1, y1 in (fractional) pixels."""


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
    """The point (fx, fy) in 0..1 that a placement such as ``"middle"``, ``"top"``,
    ``"upper left"`` or ``"bottom right"`` names (:func:`fluxcompose.locate.placement_point`).
    Unknown words mean the centre."""
    return placement_point(placement)[0]


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
    elif output_format == "webp":
        pil.save(buf, format="WEBP", quality=95)
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
    h, w = image.shape[:2]
    return _fit(image, bucket, fills=_rounds_to(w / h, bucket))


def fit_to_size(image: RGB, size: tuple[int, int]) -> tuple[RGB, Box]:
    """Put ``image`` on a ``size`` (width, height) canvas, as a model asked for that exact
    size (FLUX.2) returns it: resized to fill when the aspects agree within 0.02 (in
    ``|ln(w/h)|``), else scaled to fit and centred as :func:`fit_to_bucket` does."""
    h, w = image.shape[:2]
    gap = abs(math.log(w / h) - math.log(size[0] / size[1]))
    return _fit(image, size, fills=gap <= ASPECT_TOLERANCE + 1e-9)


def _fit(image: RGB, size: tuple[int, int], *, fills: bool) -> tuple[RGB, Box]:
    import cv2

    bw, bh = size
    h, w = image.shape[:2]
    if fills:
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


STYLE_DETAIL_SIGMA = 0.006
"""Scale (Gaussian sigma, as a fraction of the image's width + height) below which the
preview's texture comes from the style and above which the structure is the target's."""

STYLE_DETAIL_GAIN = 0.7
"""At most this much of the style's fine detail is added (0..1): a little below the full
energy, for the target's structure (SSIM)."""

STYLE_KEEP_DETAIL = 0.7
"""At most this much of the target's own fine detail is kept (0..1)."""

STYLE_CONTENT_SHARE = 0.8
"""The kept target detail carries at most this share of the style's detail energy (std)."""

STYLE_TILES = 6
"""The style's detail is cut into STYLE_TILES x STYLE_TILES tiles and shuffled (a fixed
permutation), so its strokes come through but not its subject (no ghost of a village)."""


STYLE_EDGE_TRIM = 0.04
"""Share of the style's height and width left out on each side before its texture is read."""


def _cover(image: NDArray[Any], width: int, height: int) -> NDArray[Any]:
    """``image`` scaled uniformly to cover (width, height) and centre-cropped to it."""
    import cv2

    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    size = (max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    big = np.asarray(cv2.resize(image, size, interpolation=interp))
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[y0 : y0 + height, x0 : x0 + width]


def _shuffle_tiles(image: NDArray[np.float32], n: int) -> NDArray[np.float32]:
    """A zero-mean texture ``image`` cut into n x n tiles and put back in a fixed shuffled
    order. Tiles overlap by a quarter tile on each side and are cross-faded with weights
    normalised by their root sum of squares, which keeps the texture's energy (the tiles
    are uncorrelated) and leaves no seams."""
    import cv2

    h, w = image.shape[:2]
    if n < 2 or min(h, w) < 8 * n:
        return image
    tw, th = math.ceil(w / n), math.ceil(h / n)
    m = max(1, min(tw, th) // 4)
    # Reflect-pad to whole tiles plus the overlap margin (no resampling: it would blur).
    padded = np.asarray(
        cv2.copyMakeBorder(image, m, m + n * th - h, m, m + n * tw - w, cv2.BORDER_REFLECT),
        np.float32,
    )

    def ramp(size: int) -> NDArray[np.float32]:
        t = np.arange(size + 2 * m, dtype=np.float32) + 0.5
        up = np.clip(t / (2 * m), 0.0, 1.0)
        return np.asarray(up * up[::-1], dtype=np.float32)

    window = np.outer(ramp(th), ramp(tw)).astype(np.float32)
    acc = np.zeros(padded.shape, dtype=np.float32)
    energy = np.zeros(padded.shape, dtype=np.float32)
    order = np.random.default_rng(20011).permutation(n * n)
    for dst, src in enumerate(order):
        dy, dx = divmod(int(dst), n)
        sy, sx = divmod(int(src), n)
        tile = padded[sy * th : sy * th + th + 2 * m, sx * tw : sx * tw + tw + 2 * m]
        acc[dy * th : dy * th + th + 2 * m, dx * tw : dx * tw + tw + 2 * m] += window * tile
        energy[dy * th : dy * th + th + 2 * m, dx * tw : dx * tw + tw + 2 * m] += window**2
    out = (acc / np.sqrt(np.maximum(energy, 1e-6)))[m : m + h, m : m + w]
    return np.ascontiguousarray(out, dtype=np.float32)


def style_preview(content: RGB, style: RGB, strength: float = 1.0) -> RGB:
    """A style-fusion preview: ``content`` with ``style``'s colours and texture.

    Colours: :func:`reinhard_transfer` in Lab. Texture: in Lab lightness, below the
    scale STYLE_DETAIL_SIGMA the content keeps part of its own detail and gains the
    style's (the style scaled to cover the content's frame, high-passed, its tiles
    shuffled) so that the detail's energy is about the style's: brush strokes appear
    with the style's energy and orientations while the content's larger structure stays. ``strength``
    (0..1) blends from the content to the full preview.
    """
    import cv2

    h, w = content.shape[:2]
    coloured = reinhard_transfer(content, style, 1.0)
    lab = cv2.cvtColor(coloured.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    light = np.ascontiguousarray(lab[..., 0], dtype=np.float32)
    sigma = max(1.0, STYLE_DETAIL_SIGMA * (w + h))
    # Leave out the style's outer 4 %: a painting's frame or a scan's edge is not texture.
    sh, sw = style.shape[:2]
    my, mx = round(STYLE_EDGE_TRIM * sh), round(STYLE_EDGE_TRIM * sw)
    inner = style[my : sh - my, mx : sw - mx] if min(sh - 2 * my, sw - 2 * mx) >= 8 else style
    cover = _cover(inner, w, h).astype(np.float32) / 255.0
    s_light = np.ascontiguousarray(cv2.cvtColor(cover, cv2.COLOR_RGB2Lab)[..., 0], np.float32)
    s_detail = _shuffle_tiles(s_light - _gauss(s_light, sigma), STYLE_TILES)
    low = _gauss(light, sigma)
    c_detail = light - low
    # The output's fine detail gets the style's energy: keep some of the content's (for
    # its edges), at most STYLE_CONTENT_SHARE of that energy, and fill the rest with the
    # style's (the two are uncorrelated, so energies add).
    e_style = float(s_detail.std()) + 1e-6
    e_content = float(c_detail.std()) + 1e-6
    keep = min(STYLE_KEEP_DETAIL, STYLE_CONTENT_SHARE * e_style / e_content)
    gain = min(STYLE_DETAIL_GAIN, math.sqrt(max(0.0, 1.0 - (keep * e_content / e_style) ** 2)))
    texture = keep * c_detail + gain * s_detail
    lab[..., 0] = np.clip(low + texture, 0.0, 100.0)
    styled = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255.0, 0.0, 255.0)
    t = min(max(float(strength), 0.0), 1.0)
    out = content.astype(np.float32) + t * (styled - content.astype(np.float32))
    return np.asarray(np.clip(np.rint(out), 0, 255), dtype=np.uint8)


# --------------------------------------------------------------------------- print mock-up


FEATHER_SIGMA = 0.7
"""Gaussian sigma, in target pixels, softening the placed print's edge."""

MASK_FEATHER_SIGMA = 1.0
"""Gaussian sigma, in target pixels, softening the garment mask's edge (inside the mask only)."""

SHADE_FLOOR = 0.35
"""The darkest the fabric's shading makes the print: 0.35 of its colour."""

SHADE_OFFSET = 8.0
"""Added to luminance (0..255) on both sides of the shading ratio, so JPEG noise on dark
fabric (a navy jacket at luminance ~25) does not speckle the print."""


def _gauss(img: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    import cv2

    return np.asarray(
        cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), dtype=np.float32
    )


def _luminance(rgb: NDArray[Any]) -> NDArray[np.float32]:
    """Rec. 601 luma, 0..255, float32."""
    f = rgb.astype(np.float32)
    out: NDArray[np.float32] = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return out


def _axis_start(point: float, size: float, lo: float, hi: float, overhang: float) -> float:
    """Where a print of ``size`` starts on one axis of the box [lo, hi]: centred on
    ``point``, moved inward to stay in the box when it fits; when it does not fit, the
    share ``overhang`` (0..1) of the excess hangs over the low side."""
    if size <= hi - lo:
        return min(max(point - size / 2, lo), hi - size)
    return lo - overhang * (size - (hi - lo))


@dataclass(frozen=True)
class Mockup:
    """A pattern printed on a target (all in target pixels).

    ``image`` is the target with the print; ``print_box`` the print's foreground box as
    placed (x0, y0, x1, y1, floats, before clipping to the image or the garment);
    ``chest_box`` the box it was sized and placed in (the whole image when no subject);
    ``point`` the placement point as fractions of that box; ``shade_median`` the garment's
    median luminance (0..255) the shading is relative to, None when not shaded.
    """

    image: RGB
    print_box: tuple[float, float, float, float]
    chest_box: tuple[float, float, float, float]
    point: tuple[float, float]
    background: Color | None
    shade_median: float | None
    warnings: list[str] = field(default_factory=list)


def _shading(
    target: RGB,
    mask: NDArray[np.bool_],
    region: Box,
) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
    """Soft garment mask and fabric shading over ``region`` of ``target``, and the garment's
    median luminance.

    The soft mask is the garment mask blurred by MASK_FEATHER_SIGMA and cut back to the
    mask (exactly 0 off the garment). Shading is the slightly blurred luminance against
    the garment's median, (L + k) / (m + k), clipped to [SHADE_FLOOR, 1]: folds and shadows
    darken the print, but lighter-than-median fabric never bleaches it.
    """
    th, tw = target.shape[:2]
    x0, y0, x1, y1 = region
    step = max(1, round(math.sqrt(th * tw / 65536)))
    sub = mask[::step, ::step]
    lum_sub = _luminance(target[::step, ::step])[sub]
    if lum_sub.size == 0:
        lum_sub = _luminance(target)[mask]
    median = float(np.median(lum_sub))
    sigma = max(1.0, 0.0015 * (th + tw))
    margin = math.ceil(3 * sigma)
    mx0, my0 = max(0, x0 - margin), max(0, y0 - margin)
    mx1, my1 = min(tw, x1 + margin), min(th, y1 + margin)
    inner = (slice(y0 - my0, y1 - my0), slice(x0 - mx0, x1 - mx0))
    big_mask = mask[my0:my1, mx0:mx1]
    soft = _gauss(big_mask.astype(np.float32), MASK_FEATHER_SIGMA)
    soft = np.where(big_mask, soft, 0.0).astype(np.float32)[inner]
    lum = _gauss(_luminance(target[my0:my1, mx0:mx1]), sigma)[inner]
    shade = np.clip((lum + SHADE_OFFSET) / (median + SHADE_OFFSET), SHADE_FLOOR, 1.0)
    return soft, shade.astype(np.float32), median


def print_mockup(
    target: RGB,
    pattern: RGB,
    subject: Subject,
    width_fraction: float,
    point: tuple[float, float],
    *,
    background_hint: Color | None = None,
) -> Mockup:
    """Print ``pattern`` on the garment ``subject`` found in ``target`` (DESIGN.md s. 10).

    The pattern's plain background is dropped (:func:`print_layer`); the print's
    foreground is scaled to ``width_fraction`` of the chest box's width and centred on
    ``point`` (fractions of the chest box), moved inward to stay in the box where it fits;
    it is clipped to the garment mask and shaded by the fabric (:func:`_shading`).
    Pixels off the garment mask are returned unchanged, bit for bit. When the subject was
    not found the print is placed by the whole image, unclipped and unshaded.
    """
    import cv2

    th, tw = target.shape[:2]
    warnings: list[str] = []
    mask: NDArray[np.bool_] | None = None
    if subject.found and subject.chest_box is not None:
        bx = subject.chest_box
        chest = (bx[0] * tw, bx[1] * th, bx[2] * tw, bx[3] * th)
        mask = subject.garment_mask((tw, th))
        if mask is not None and not mask.any():
            mask = None
        if mask is None:
            warnings.append("no garment mask: the print is not clipped to the fabric nor shaded")
    else:
        chest = (0.0, 0.0, float(tw), float(th))
    layer = print_layer(pattern, background_hint)
    if layer.note:
        warnings.append(f"{layer.note}: the whole pattern rectangle is printed")

    # Scale so the foreground's width is width_fraction of the chest's.
    fx0, fy0, fx1, fy1 = layer.box
    scale = width_fraction * (chest[2] - chest[0]) / (fx1 - fx0)
    if (fy1 - fy0) * scale > 4 * th:  # a sliver of a print: keep it within reason
        scale = 4 * th / (fy1 - fy0)
        warnings.append("the print is too tall for its width: shrunk to 4 image heights")
    # The layer: the foreground box plus the soft edge around it.
    margin = max(2, math.ceil(2 / scale))
    ph0, pw0 = layer.alpha.shape
    sx0, sy0 = max(0, fx0 - margin), max(0, fy0 - margin)
    sx1, sy1 = min(pw0, fx1 + margin), min(ph0, fy1 + margin)
    lw = max(1, round((sx1 - sx0) * scale))
    lh = max(1, round((sy1 - sy0) * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    pre = cv2.resize(layer.premultiplied[sy0:sy1, sx0:sx1], (lw, lh), interpolation=interp)
    alpha = cv2.resize(layer.alpha[sy0:sy1, sx0:sx1], (lw, lh), interpolation=interp)
    pad = 2
    pre = cv2.copyMakeBorder(pre, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    pre = _gauss(np.asarray(pre, dtype=np.float32), FEATHER_SIGMA)
    alpha = np.clip(_gauss(np.asarray(alpha, dtype=np.float32), FEATHER_SIGMA), 0.0, 1.0)

    # Centre the foreground on the placement point.
    cw, ch = chest[2] - chest[0], chest[3] - chest[1]
    pw, ph = (fx1 - fx0) * scale, (fy1 - fy0) * scale
    px, py = chest[0] + point[0] * cw, chest[1] + point[1] * ch
    # Too wide: overhang both sides as the point leans; too tall: hang down from the
    # shoulder line (up is the neck and face).
    left = _axis_start(px, pw, chest[0], chest[2], 1.0 - point[0])
    top = _axis_start(py, ph, chest[1], chest[3], 0.0)
    ox = round(left - (fx0 - sx0) * scale) - pad
    oy = round(top - (fy0 - sy0) * scale) - pad
    print_box = (left, top, left + pw, top + ph)

    out = target.copy()
    ix0, iy0 = max(0, ox), max(0, oy)
    ix1, iy1 = min(tw, ox + alpha.shape[1]), min(th, oy + alpha.shape[0])
    median: float | None = None
    if ix1 <= ix0 or iy1 <= iy0:
        warnings.append("the print falls outside the image")
        return Mockup(out, print_box, chest, point, layer.background, None, warnings)
    a = alpha[iy0 - oy : iy1 - oy, ix0 - ox : ix1 - ox]
    p = pre[iy0 - oy : iy1 - oy, ix0 - ox : ix1 - ox]
    region = target[iy0:iy1, ix0:ix1].astype(np.float32)
    if mask is not None:
        soft, shade, median = _shading(target, mask, (ix0, iy0, ix1, iy1))
        a = a * soft
        p = p * (soft * shade)[..., None]
    mixed = region * (1.0 - a)[..., None] + p
    painted = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    out[iy0:iy1, ix0:ix1] = np.where((a > 0)[..., None], painted, target[iy0:iy1, ix0:ix1])
    return Mockup(out, print_box, chest, point, layer.background, median, warnings)


def _background(context: Mapping[str, Any]) -> Color | None:
    """The canvas background colour from the layout (``"#rrggbb"``, a name, or [r, g, b]),
    if the request carries one."""
    layout = context.get("layout")
    value = layout.get("background") if isinstance(layout, Mapping) else None
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) >= 3:
        try:
            r, g, b = (min(255, max(0, int(v))) for v in list(value)[:3])
        except (TypeError, ValueError):
            return None
        return r, g, b
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


def _to_output(
    box: FloatBox, content_hw: tuple[int, ...], placed: Box, out_hw: tuple[int, ...]
) -> list[float]:
    """``box`` in the content's pixels -> [x0, y0, x1, y1] normalised in the bucketed output,
    where the content occupies ``placed``."""
    ch, cw = content_hw[0], content_hw[1]
    oh, ow = out_hw[0], out_hw[1]
    px0, py0, px1, py1 = placed
    sx, sy = (px1 - px0) / cw, (py1 - py0) / ch
    x0, y0, x1, y1 = box
    return [
        round((px0 + x0 * sx) / ow, 4),
        round((py0 + y0 * sy) / oh, 4),
        round((px0 + x1 * sx) / ow, 4),
        round((py0 + y1 * sy) / oh, 4),
    ]


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


def _side_by_side(images: Sequence[RGB]) -> RGB:
    """The images left to right at the height of the first (a canvas for separate references)."""
    height = int(images[0].shape[0])
    row = [_resize(im, max(1, round(im.shape[1] * height / im.shape[0])), height) for im in images]
    return np.ascontiguousarray(np.concatenate(row, axis=1))


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

    def model_notice(self, model: str) -> str:
        """The line the CLI prints: any model gives the same preview."""
        return model_notice(model)

    def generate(self, request: GenerationRequest, **task: Unpack[TaskHooks]) -> GenerationResult:
        """Imitate ``request.context["recipe"]`` on the canvas (or on the separate
        references); returns encoded image bytes.

        Any model name is accepted (it only changes the price). ``on_submitted`` and
        ``resume_task_id`` are ignored: there is no remote task.
        """
        if not isinstance(request.model, str) or not request.model.strip():
            raise RequestError("the local backend needs a model name")
        exact = request.width is not None and request.height is not None
        try:
            bucket = bucket_for(request.aspect_ratio)
        except RatioError as exc:
            raise RequestError(f"bad aspect_ratio for the local backend: {exc}") from exc
        if request.width is not None and request.height is not None:
            if request.width < 1 or request.height < 1:
                raise RequestError(f"bad size {request.width}x{request.height}")
            bucket = (int(request.width), int(request.height))
        context: Mapping[str, Any] = request.context or {}
        recipe = str(context.get("recipe") or "")
        variables: Mapping[str, Any] = context.get("variables") or {}
        checks: Mapping[str, Any] = context.get("checks") or {}
        seed = 0 if request.seed is None else int(request.seed)
        extra: dict[str, Any] = {
            "notice": NOTICE,
            "model_notice": model_notice(request.model),
            "recipe": recipe or None,
        }

        boxes_px: dict[str, FloatBox] = {}
        if request.input_image is None:
            content = seeded_preview(bucket, seed, request.prompt)
            extra["method"] = "seeded preview (text-to-image)"
        elif context.get("references") is not None or request.more_images:
            images = [_decode(request.input_image)]
            images += [_decode(data) for data, _ in request.more_images]
            content, boxes_px, method = self._imitate(
                recipe, _side_by_side(images), images, context, variables, checks, extra
            )
            extra["method"] = method
            extra["references"] = len(images)
        else:
            canvas = _decode(request.input_image)
            boxes = cell_boxes(context.get("layout"), (canvas.shape[1], canvas.shape[0]))
            cells = None if boxes is None else [_crop(canvas, b) for b in boxes]
            content, boxes_px, method = self._imitate(
                recipe, canvas, cells, context, variables, checks, extra
            )
            extra["method"] = method

        out, placed = fit_to_size(content, bucket) if exact else fit_to_bucket(content, bucket)
        extra["size"] = [out.shape[1], out.shape[0]]
        for key, box in boxes_px.items():
            extra[key] = _to_output(box, content.shape[:2], placed, out.shape[:2])
        return GenerationResult(data=_encode(out, request.output_format), extra=extra)

    def _imitate(
        self,
        recipe: str,
        canvas: RGB,
        cells: list[RGB] | None,
        context: Mapping[str, Any],
        variables: Mapping[str, Any],
        checks: Mapping[str, Any],
        extra: dict[str, Any],
    ) -> tuple[RGB, dict[str, FloatBox], str]:
        """The picture before bucketing, boxes in its pixels to report in the output's
        coordinates (``pattern_box``, ``chest_box``), and what was done. ``cells`` are the
        sources' pictures in order (cut from the canvas, or the separate references);
        ``canvas`` is what side-by-side shows."""
        two_cells = cells is not None and len(cells) >= 2
        if recipe == "pattern-transfer" and cells is not None and two_cells:
            t, p = roles(context, len(cells), "pattern")
            target, pattern = cells[t], cells[p]
            return self._pattern_transfer(target, pattern, t, context, variables, checks, extra)
        if recipe == "style-fusion" and cells is not None and two_cells:
            t, s = roles(context, len(cells), "style")
            strength = parse_fraction(variables.get("strength"))
            out = style_preview(cells[t], cells[s], strength or 1.0)
            extra.update(target_index=t, style_index=s)
            return out, {}, "Reinhard colour transfer in Lab, then the style's texture"
        if recipe in ("pattern-transfer", "style-fusion"):
            return canvas, {}, "canvas (no usable two-cell layout in the request context)"
        if recipe == "side-by-side":
            return canvas, {}, "canvas"
        return canvas, {}, "canvas (no local imitation for this recipe)"

    def _pattern_transfer(
        self,
        target: RGB,
        pattern: RGB,
        target_index: int,
        context: Mapping[str, Any],
        variables: Mapping[str, Any],
        checks: Mapping[str, Any],
        extra: dict[str, Any],
    ) -> tuple[RGB, dict[str, FloatBox], str]:
        """The print mock-up of DESIGN.md s. 10 on the target cell."""
        given = context.get("subject_box")
        subject = locate(target, subject_box=None if given is None else tuple(given))
        frac, source = width_fraction(variables, checks)
        point, unknown = placement_point(variables.get("placement"))
        warnings: list[str] = []
        if unknown:
            warnings.append(
                f"placement words not understood ({' '.join(unknown)}): they mean the middle"
            )
        if not subject.found:
            why = f" ({subject.reason})" if subject.reason else ""
            warnings.append(
                f"no subject found on the target{why}: the print is placed by the whole image"
            )
        mock = print_mockup(
            target, pattern, subject, frac, point, background_hint=_background(context)
        )
        warnings.extend(mock.warnings)
        th, tw = target.shape[:2]
        x0, y0, x1, y1 = mock.print_box
        shown = (max(0.0, x0), max(0.0, y0), min(float(tw), x1), min(float(th), y1))
        boxes: dict[str, FloatBox] = {"pattern_box": shown}
        if subject.found:
            boxes["chest_box"] = mock.chest_box
        else:
            extra["chest_box"] = None
        extra.update(
            subject=subject.to_dict(),
            placed_by="chest" if subject.found else "image",
            width_fraction=round(frac, 4),
            width_fraction_from=source,
            placement=variables.get("placement"),
            placement_point=[round(point[0], 4), round(point[1], 4)],
            pattern_background=None if mock.background is None else list(mock.background),
            shade_median=None if mock.shade_median is None else round(mock.shade_median, 2),
            target_index=target_index,
            warnings=warnings,
        )
        if subject.found:
            method = f"print mock-up on the garment (subject: {subject.method})"
        else:
            method = "print mock-up placed by the image (no subject found)"
        return mock.image, boxes, method
