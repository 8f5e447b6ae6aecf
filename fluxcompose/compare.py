"""Measure an output against its sources: SSIM, edit region, pattern, style, pHash, the
subject (DESIGN.md sections 8 and 10), and the recipe's checks.

The pattern is measured against the wearer's chest box and garment mask (from
:func:`fluxcompose.locate.locate` on the target, or a given box); checks defined relative to
the subject are not measured (``pass`` None, and ``passed`` false) when there is none,
never measured against the whole image instead.

Every box is ``[x0, y0, x1, y1]`` normalised 0..1 in the frame of the *aligned* output,
which is the target's frame (the output cut back to the target's cell when it kept the
canvas layout, then resized to the target's size). Pixel values are 8-bit (0..255);
luminance is ITU-R BT.601 ``Y = 0.299 R + 0.587 G + 0.114 B``; Lab is CIE L*a*b* (D65)
with L in 0..100 and a, b roughly -128..127 (OpenCV's float conversion).

Cost is bounded so that a 1 MP output takes under 0.5 s on one core, the subject's
detection included: SSIM runs at the target's size capped to about 1 MP, the edit region
and style statistics at a small working size, and feature matching at a long side of at
most 768 pixels and at most ~0.33 MP.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from .errors import ChecksFailed, ImageError, InputError, RecipeError
from .locate import Box, Subject, locate, parse_box, placement_point
from .prints import PrintLayer, print_layer

__all__ = [
    "CHECKS",
    "CheckSpec",
    "CompareReport",
    "LayoutView",
    "align_output",
    "aspect_mismatch",
    "compare",
    "default_target_index",
    "checks_verdict",
    "compare_files",
    "edit_region",
    "evaluate_checks",
    "find_canvas",
    "hamming",
    "lab_stats",
    "lab_stats_distance",
    "load_layout",
    "locate_pattern",
    "pattern_layer",
    "print_on_mask",
    "luma",
    "phash",
    "raise_for_checks",
    "require_target_frame",
    "relate_pattern",
    "ssim",
    "ssim_map",
    "ssim_outside_edit",
    "ssim_outside_mask",
    "style_metric",
    "texture_distance",
    "texture_features",
    "validate_checks",
]

Array = npt.NDArray[Any]
ImageLike = Image.Image | str | os.PathLike[str] | Array

# --- tunables (documented where they are used) ---------------------------------------
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # like skimage: radius int(3.5 * 1.5 + 0.5) = 5, an 11x11 window
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_L = 255.0
MAX_WORK_PIXELS = 1024 * 1024  # SSIM / alignment size cap (1 MP)
EDIT_WORK_SIDE = 320  # long side for the edit-region mask
STYLE_WORK_SIDE = 256  # long side for Lab statistics
MATCH_SCENE_SIDE = 768  # long side of the output when matching features
MATCH_SCENE_PIXELS = 768 * 432  # and at most this area (a 16:9 output's at 768): ~0.33 MP
MATCH_SCENE_MIN_SIDE = 384  # small outputs are upsampled to this long side for matching
MATCH_PATTERN_SIDE = 512  # long side of the pattern when matching features
PRINT_WORK_SIDE = 256  # long side of the pattern when finding its design's box
PRINT_CHANGED_SHARE = 0.25  # of the print's visible area that must differ to judge by it
RATIO_TEST = 0.75  # Lowe's ratio test
MIN_INLIERS = 10  # RANSAC inliers needed to call a pattern found
RANSAC_REPROJ = 4.0  # pixels at the matching working size
ASPECT_TOLERANCE = 0.12  # |ln aspect| difference that still "matches" (Kontext snaps ~0.08)


# ---------------------------------------------------------------------------------------
# Loading and conversions
# ---------------------------------------------------------------------------------------


def _load_pil(source: str | os.PathLike[str]) -> Image.Image:
    """Open an image path as EXIF-oriented 8-bit RGB (via fluxcompose.images when present)."""
    try:
        from . import images as _images
    except ImportError:
        _images = None  # type: ignore[assignment]
    if _images is not None and hasattr(_images, "load_image"):
        return _images.load_image(str(source)).image
    try:
        with Image.open(source) as opened:
            opened.load()
            upright = ImageOps.exif_transpose(opened) or opened
            return _flatten(upright)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read image {str(source)!r}: {exc}") from exc


def _flatten(im: Image.Image) -> Image.Image:
    """RGB, with any alpha composited onto white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def to_pil(image: ImageLike) -> Image.Image:
    """Any accepted image input as a PIL RGB image (paths are loaded, alpha flattened)."""
    if isinstance(image, Image.Image):
        return _flatten(image)
    if isinstance(image, np.ndarray):
        return Image.fromarray(_rgb_array(image))
    if isinstance(image, str | os.PathLike):
        return _load_pil(image)
    raise InputError(f"not an image: {type(image).__name__}")


def _rgb_array(image: ImageLike) -> Array:
    """H x W x 3 uint8 RGB array."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise InputError(f"expected an H x W x 3 image array, got shape {arr.shape}")
        arr = arr[:, :, :3]
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    return np.asarray(to_pil(image), dtype=np.uint8)


def luma(image: ImageLike) -> Array:
    """ITU-R BT.601 luminance as float32 in 0..255 (2-D arrays pass through as float32)."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return image.astype(np.float32, copy=False)
    # OpenCV's float RGB2GRAY uses exactly 0.299, 0.587, 0.114 (and is ~3x faster than numpy).
    return cv2.cvtColor(_rgb_array(image).astype(np.float32), cv2.COLOR_RGB2GRAY)


def _small_luma(image: ImageLike, size: tuple[int, int]) -> Array:
    """Luminance at ``size`` (w, h): shrink the 8-bit pixels first (area averaging is
    linear, so this equals shrinking the luminance up to 8-bit rounding), much cheaper."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return _resize(image.astype(np.float32, copy=False), size)
    return luma(_resize(_rgb_array(image), size))


def _resize(arr: Array, size: tuple[int, int]) -> Array:
    """Resize an array to (width, height): area averaging to shrink, bicubic to grow."""
    w, h = size
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    shrink = w * h < arr.shape[0] * arr.shape[1]
    return cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _fit_side(width: int, height: int, side: int) -> tuple[int, int]:
    """(w, h) scaled down so the long side is at most ``side`` (never up)."""
    s = min(1.0, side / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def _fit_area(width: int, height: int, pixels: int) -> tuple[int, int]:
    """(w, h) scaled down so the area is at most ``pixels`` (never up)."""
    s = min(1.0, math.sqrt(pixels / (width * height)))
    return max(1, round(width * s)), max(1, round(height * s))


def _lab(rgb: Array) -> Array:
    """float32 Lab (L 0..100) of a uint8 RGB array."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


# ---------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------


def _gauss(img: Array, sigma: float = SSIM_SIGMA) -> Array:
    radius = int(SSIM_TRUNCATE * sigma + 0.5)
    k = 2 * radius + 1
    return cv2.GaussianBlur(img, (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: ImageLike, b: ImageLike, *, data_range: float = SSIM_L) -> Array:
    """Per-pixel SSIM (Wang et al. 2004) of two same-size images, on BT.601 luminance.

    Gaussian window sigma 1.5 truncated at 3.5 sigma (11 x 11), K1 = 0.01, K2 = 0.03,
    population (not sample) covariances as in the paper. Borders are reflected; use
    :func:`ssim` for the scalar, which ignores the 5-pixel border like a 'valid' filter.
    """
    x = luma(a)
    y = luma(b)
    if x.shape != y.shape:
        raise InputError(f"ssim needs equal sizes, got {x.shape[::-1]} and {y.shape[::-1]}")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    # Variances as E[x^2] - E[x]^2 cancel badly in float32; float64 on values centred
    # at a common offset keeps them exact to ~1e-9 (the offset is added back to the means).
    offset = 0.5 * (float(x.mean()) + float(y.mean()))
    x = x.astype(np.float64) - offset
    y = y.astype(np.float64) - offset
    mx = _gauss(x)
    my = _gauss(y)
    sxx = _gauss(x * x) - mx * mx
    syy = _gauss(y * y) - my * my
    sxy = _gauss(x * y) - mx * my
    mx += offset
    my += offset
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    out: Array = (num / den).astype(np.float32)
    return out


def _border() -> int:
    return int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)


def _interior_mean(m: Array) -> float:
    r = _border()
    if m.shape[0] > 2 * r and m.shape[1] > 2 * r:
        m = m[r:-r, r:-r]
    return float(m.mean(dtype=np.float64))


def ssim(a: ImageLike, b: ImageLike, *, full: bool = False) -> Any:
    """Mean SSIM (-1..1, 1 = identical) of two same-size images on luminance.

    With ``full=True`` returns ``(mean, map)`` where ``map`` is :func:`ssim_map`.
    The mean excludes the 5-pixel border the window cannot fully cover.
    """
    m = ssim_map(a, b)
    value = _interior_mean(m)
    return (value, m) if full else value


# ---------------------------------------------------------------------------------------
# Edit region
# ---------------------------------------------------------------------------------------

EDIT_DE_UNIT = 10.0  # a blurred Lab difference of this many units counts as "changed"
EDIT_SSIM_UNIT = 0.5  # a local 1 - SSIM of this much counts as "changed"
EDIT_BLUR_NATIVE = 3.0  # blur sigma for the colour difference, in native pixels
EDIT_CHROMA_BLUR = 1.5  # chroma is blurred this much more (JPEG halves its resolution)
EDIT_STRONG = 1.0  # score that seeds a region
EDIT_WEAK = 0.5  # score a region may grow through
EDIT_MIN_AREA = 0.0015  # smallest component kept, as a fraction of the image
EDIT_KEEP_RATIO = 0.2  # keep components at least this fraction of the largest one


def _edit_score(out_rgb: Array, tgt_rgb: Array) -> Array:
    """Per-pixel change score at the edit working size; >= 1 means clearly changed.

    The maximum of a blurred Lab difference (over 10 units) and local 1 - SSIM (over
    0.5). JPEG artefacts (blocking, 4:2:0 chroma bleeding on edges) live at a few
    native pixels, so the colour difference is blurred by ~3 native pixels (at least
    1 working pixel), and chroma 1.5x more.
    """
    h, w = tgt_rgb.shape[:2]
    ws = _fit_side(w, h, EDIT_WORK_SIDE)
    o = _resize(out_rgb, ws)
    t = _resize(tgt_rgb, ws)
    sigma = max(1.0, EDIT_BLUR_NATIVE * ws[0] / w)
    d = _lab(o) - _lab(t)
    dl = cv2.GaussianBlur(d[:, :, 0], (0, 0), sigma)
    dab = cv2.GaussianBlur(d[:, :, 1:], (0, 0), sigma * EDIT_CHROMA_BLUR)
    de = np.sqrt(dl * dl + (dab * dab).sum(axis=2))
    # Structure term catches texture changes that keep the mean colour.
    s = ssim_map(cv2.GaussianBlur(o, (0, 0), 1.0), cv2.GaussianBlur(t, (0, 0), 1.0))
    score: Array = np.maximum(de / EDIT_DE_UNIT, (1.0 - s) / EDIT_SSIM_UNIT).astype(np.float32)
    return score


def _otsu(score: Array) -> float:
    """Otsu threshold of a non-negative score (quantised to 1/32 steps up to 8)."""
    q = np.clip(score * 32.0, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 32.0


def _edit_mask(out_rgb: Array, tgt_rgb: Array) -> Array:
    """Boolean mask (edit working size) of the kept changed components."""
    score = _edit_score(out_rgb, tgt_rgb)
    # Hysteresis: seeds above max(floor, Otsu) grow through pixels above half that.
    # The floor keeps noise-only images empty; Otsu keeps a global mild drift (a
    # generative re-render) from swallowing a strong local edit.
    strong_t = max(EDIT_STRONG, _otsu(score))
    weak_t = max(EDIT_WEAK, 0.5 * strong_t)
    weak: Array = (score > weak_t).astype(np.uint8)
    k3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    k7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, k3)
    weak = cv2.morphologyEx(weak, cv2.MORPH_CLOSE, k7)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    if n <= 1:
        return np.zeros(score.shape, dtype=bool)
    strong = score > strong_t
    seeded = np.zeros(n, dtype=bool)
    seeded[np.unique(labels[strong & (labels > 0)])] = True
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    areas[0] = 0
    areas[~seeded] = 0
    min_area = EDIT_MIN_AREA * score.size
    if areas.max() < min_area:
        return np.zeros(score.shape, dtype=bool)
    keep = areas >= max(min_area, EDIT_KEEP_RATIO * areas.max())
    mask = np.zeros(score.shape, dtype=bool)
    for label in np.flatnonzero(keep):
        comp = labels == label
        # The blur spreads a strong change ~1.3 sigma past its edge at the weak level; a
        # blurred step is at half its plateau exactly at the true edge, so re-threshold
        # each component at half its median score (never below the weak level).
        level = max(weak_t, 0.5 * float(np.median(score[comp])))
        mask |= comp & (score >= level)
    return mask


def _region_from_mask(mask: Array) -> dict[str, Any]:
    h, w = mask.shape
    if not mask.any():
        return {"box": None, "area_fraction": 0.0}
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = [xs[0] / w, ys[0] / h, (xs[-1] + 1) / w, (ys[-1] + 1) / h]
    return {"box": [float(v) for v in box], "area_fraction": float(mask.mean())}


def edit_region(output: ImageLike, target: ImageLike) -> dict[str, Any]:
    """Where ``output`` differs from ``target`` (same size, e.g. from :func:`align_output`).

    Returns ``{"box": [x0, y0, x1, y1] | None, "area_fraction": float}``: the box
    (normalised 0..1) around the significant changed components, and the fraction of the
    image those components cover (0..1). ``box`` is None when nothing changed beyond
    noise: JPEG re-encoding or a mild blur alone give no region.
    """
    o = _rgb_array(output)
    t = _rgb_array(target)
    if o.shape != t.shape:
        raise InputError(
            f"edit_region needs equal sizes, got {o.shape[1]}x{o.shape[0]} "
            f"and {t.shape[1]}x{t.shape[0]}"
        )
    return _region_from_mask(_edit_mask(o, t))


def ssim_outside_edit(
    output: ImageLike | None,
    target: ImageLike | None,
    region: Mapping[str, Any] | None,
    *,
    smap: Array | None = None,
) -> float | None:
    """Mean SSIM over the pixels outside the edit region's box (-1..1).

    The box is grown by the SSIM window radius so windows straddling its edge do not
    count. An empty region gives the SSIM over the whole image (1.0 for identical
    images); a box that leaves no pixel outside gives None (nothing was preserved).
    Pass ``smap`` to reuse a map already computed.
    """
    m = smap if smap is not None else ssim_map(output, target)  # type: ignore[arg-type]
    box = (region or {}).get("box")
    if not box:
        return _interior_mean(m)
    h, w = m.shape
    r = _border()
    keep = np.zeros((h, w), dtype=bool)
    if h > 2 * r and w > 2 * r:
        keep[r:-r, r:-r] = True
    else:
        keep[:] = True
    x0 = max(0, math.floor(box[0] * w) - r)
    y0 = max(0, math.floor(box[1] * h) - r)
    x1 = min(w, math.ceil(box[2] * w) + r)
    y1 = min(h, math.ceil(box[3] * h) + r)
    keep[y0:y1, x0:x1] = False
    # Too few pixels left to say anything about preservation.
    if keep.sum() < max(16, 0.005 * h * w):
        return None
    return float(m[keep].mean(dtype=np.float64))


def ssim_outside_mask(smap: Array, mask: Array | None) -> float | None:
    """Mean SSIM (-1..1) of an :func:`ssim_map` over the pixels off ``mask`` (a boolean
    array of the map's shape, True where changes are allowed, e.g. the garment).

    The mask is dilated by the SSIM window radius (5 pixels) so windows straddling its
    edge do not count, and the 5-pixel image border is ignored as in :func:`ssim`.
    None when ``mask`` is None (nothing to measure against) or when fewer than
    max(16, 0.5 %) of the pixels are left.
    """
    if mask is None:
        return None
    h, w = smap.shape
    if mask.shape != (h, w):
        raise InputError(f"mask {mask.shape[::-1]} and SSIM map {(w, h)} differ in size")
    r = _border()
    keep = np.zeros((h, w), dtype=bool)
    if h > 2 * r and w > 2 * r:
        keep[r:-r, r:-r] = True
    else:
        keep[:] = True
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    grown = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    keep &= ~grown
    if keep.sum() < max(16, 0.005 * h * w):
        return None
    return float(smap[keep].mean(dtype=np.float64))


# ---------------------------------------------------------------------------------------
# Pattern location
# ---------------------------------------------------------------------------------------


def _detector() -> tuple[Any, int]:
    """SIFT with L2 matching, or ORB with Hamming matching when SIFT is unavailable."""
    if hasattr(cv2, "SIFT_create"):
        try:
            return cv2.SIFT_create(nfeatures=3000), cv2.NORM_L2
        except cv2.error:
            pass
    return cv2.ORB.create(nfeatures=3000), cv2.NORM_HAMMING


def _not_found(inliers: int = 0) -> dict[str, Any]:
    return {
        "found": False,
        "inliers": int(inliers),
        "box": None,
        "width_fraction": None,
        "center_offset": None,
        "corners": None,
        "design_box": None,
    }


def _quad_ok(quad: Array, scene_w: int, scene_h: int) -> bool:
    """Sanity of a projected pattern quad (pixels): convex, unmirrored, sensible size."""
    if not np.all(np.isfinite(quad)):
        return False
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2).astype(np.float32)):
        return False
    # Signed area (shoelace): image corners go clockwise on screen, which is positive
    # here with y pointing down; a negative area means a mirrored (spurious) fit.
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    scene = float(scene_w * scene_h)
    if area <= 0 or not (0.0005 * scene <= area <= 4.0 * scene):
        return False
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    if sides.min() <= 1e-6:
        return False
    # Opposite sides of a plausible print differ by at most 3x (strong perspective).
    return bool(max(sides[0] / sides[2], sides[2] / sides[0]) <= 3.0) and bool(
        max(sides[1] / sides[3], sides[3] / sides[1]) <= 3.0
    )


def pattern_layer(pattern: ImageLike) -> PrintLayer:
    """The pattern's design (long side at most PRINT_WORK_SIDE) as a
    :class:`~fluxcompose.prints.PrintLayer`: the plain background dropped, the same cut
    the local preview prints. Its box and alpha are all compare needs, so its edge
    colours are not unmixed."""
    pat_rgb = pattern if isinstance(pattern, np.ndarray) else _rgb_array(pattern)
    work = _fit_side(pat_rgb.shape[1], pat_rgb.shape[0], PRINT_WORK_SIDE)
    small = np.ascontiguousarray(_resize(_rgb_array(pat_rgb), work))
    return print_layer(small, unmix=False)


def locate_pattern(
    output: ImageLike,
    pattern: ImageLike,
    *,
    min_inliers: int = MIN_INLIERS,
    layer: PrintLayer | None = None,
) -> dict[str, Any]:
    """Find ``pattern`` in ``output`` by SIFT, Lowe's ratio test and a RANSAC homography.

    Returns ``{"found", "inliers", "box", "width_fraction", "center_offset", "corners",
    "design_box"}``. The print is the pattern's design (:func:`pattern_layer`: a plain
    border colour dropped; the whole rectangle when there is none), so a logo on a white
    square is measured by the logo. ``design_box`` is that design's box in the pattern,
    normalised 0..1; ``corners`` are its four projected corners (normalised, clockwise
    from top-left, not clipped); ``box`` is their axis-aligned bounding box clipped to the
    image, ``[x0, y0, x1, y1]`` normalised 0..1; ``width_fraction`` = x1 - x0;
    ``center_offset`` = ``[dx, dy]`` from the image centre to the box centre in units of
    the image's width and height (-0.5..0.5). When not found, all but ``found`` and
    ``inliers`` are None. ``layer`` reuses a :func:`pattern_layer` already computed.
    """
    scene_rgb = output if isinstance(output, np.ndarray) else _rgb_array(output)
    pat_rgb = pattern if isinstance(pattern, np.ndarray) else _rgb_array(pattern)
    sh, sw = scene_rgb.shape[:2]
    scene_ws = _fit_side(sw, sh, MATCH_SCENE_SIDE)
    # A portrait output at 768 on its long side would cost SIFT half as much again as a
    # landscape one: cap the area too, so every 1 MP output costs about the same.
    scene_ws = min(scene_ws, _fit_area(sw, sh, MATCH_SCENE_PIXELS), key=lambda s: s[0] * s[1])
    if max(sw, sh) < MATCH_SCENE_MIN_SIDE:
        # Small outputs: upsampling lets SIFT see a small print at all.
        up = MATCH_SCENE_MIN_SIDE / max(sw, sh)
        scene_ws = (round(sw * up), round(sh * up))
    pat_ws = _fit_side(pat_rgb.shape[1], pat_rgb.shape[0], MATCH_PATTERN_SIDE)
    scene8 = np.clip(np.rint(_small_luma(scene_rgb, scene_ws)), 0, 255).astype(np.uint8)
    pat8 = np.clip(np.rint(_small_luma(pat_rgb, pat_ws)), 0, 255).astype(np.uint8)

    det, norm = _detector()
    kp_p, des_p = det.detectAndCompute(pat8, None)
    kp_s, des_s = det.detectAndCompute(scene8, None)
    if des_p is None or des_s is None or len(kp_p) < 2 or len(kp_s) < 2:
        return _not_found()
    matcher = cv2.BFMatcher(norm)
    # Lowe's ratio test, then one pattern point per scene point: many pattern points
    # piling onto one scene point is how degenerate (collapsed) homographies arise.
    best: dict[int, Any] = {}
    for m in matcher.knnMatch(des_p, des_s, k=2):
        if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance:
            prev = best.get(m[0].trainIdx)
            if prev is None or m[0].distance < prev.distance:
                best[m[0].trainIdx] = m[0]
    good = list(best.values())
    if len(good) < max(4, min_inliers):
        return _not_found()
    src = np.array([kp_p[m.queryIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    dst = np.array([kp_s[m.trainIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    H, mask = cv2.findHomography(
        src, dst, cv2.RANSAC, RANSAC_REPROJ, maxIters=2000, confidence=0.995
    )
    inliers = int(mask.sum()) if mask is not None else 0
    if H is None or inliers < min_inliers:
        return _not_found(inliers)
    pw, ph = pat_ws
    corners = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, H).reshape(4, 2).astype(np.float64)
    W, Hh = scene_ws
    if not _quad_ok(quad, W, Hh):
        return _not_found(inliers)
    if layer is None:
        layer = pattern_layer(pat_rgb)
    lh, lw = layer.alpha.shape
    dx0, dy0, dx1, dy1 = layer.box
    # The layer is the pattern at its own working size: scale its box to pat_ws, the
    # homography's source frame.
    sx, sy = pw / lw, ph / lh
    design = np.array(
        [[dx0 * sx, dy0 * sy], [dx1 * sx, dy0 * sy], [dx1 * sx, dy1 * sy], [dx0 * sx, dy1 * sy]],
        dtype=np.float32,
    ).reshape(-1, 1, 2)
    design_quad = cv2.perspectiveTransform(design, H).reshape(4, 2).astype(np.float64)
    norm_quad = design_quad / np.array([W, Hh], dtype=np.float64)
    x0, y0 = np.clip(norm_quad.min(axis=0), 0.0, 1.0)
    x1, y1 = np.clip(norm_quad.max(axis=0), 0.0, 1.0)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return _not_found(inliers)
    return {
        "found": True,
        "inliers": inliers,
        "box": [float(x0), float(y0), float(x1), float(y1)],
        "width_fraction": float(x1 - x0),
        "center_offset": [float((x0 + x1) / 2 - 0.5), float((y0 + y1) / 2 - 0.5)],
        "corners": [[float(u), float(v)] for u, v in norm_quad],
        "design_box": [dx0 / lw, dy0 / lh, dx1 / lw, dy1 / lh],
    }


def print_on_mask(
    corners: Sequence[Sequence[float]],
    mask: Array,
    *,
    design: Array | None = None,
    changed: Array | None = None,
) -> float | None:
    """Fraction (0..1) of the print's visible area that lies on ``mask`` (True on the
    garment), or None when no part of the print is in the frame.

    ``corners`` are the print's four projected corners (normalised, clockwise from
    top-left); ``design`` its alpha (0..1, the pattern's design box; None: the whole
    quad). The print is warped into ``mask``'s frame; the part outside the image is not
    seen and not counted. Where ``changed`` (any size, True where the output differs from
    the target) covers at least PRINT_CHANGED_SHARE of the visible print, only those
    pixels count: a print the model clipped at a collar is judged by what it painted,
    and a print painted over the face by the face.
    """
    h, w = mask.shape
    alpha = np.ones((2, 2), np.float32) if design is None else design.astype(np.float32)
    ah, aw = alpha.shape
    # Corners are pixel edges; OpenCV samples at pixel centres, half a pixel inside them.
    src = np.array([[0, 0], [aw, 0], [aw, ah], [0, ah]], dtype=np.float32) - 0.5
    dst = np.asarray(corners, dtype=np.float64) * np.array([w, h], dtype=np.float64) - 0.5
    dst = dst.astype(np.float32)
    warp = cv2.getPerspectiveTransform(src, dst)
    seen = cv2.warpPerspective(alpha, warp, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) >= 0.5
    total = int(np.count_nonzero(seen))
    if total == 0:
        return None
    if changed is not None:
        if changed.shape != (h, w):
            changed = (
                cv2.resize(changed.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            )
        painted = seen & changed
        if np.count_nonzero(painted) >= PRINT_CHANGED_SHARE * total:
            seen = painted
            total = int(np.count_nonzero(seen))
    return float(np.count_nonzero(seen & mask) / total)


def relate_pattern(
    pattern: Mapping[str, Any],
    subject: Subject | None,
    *,
    placement: str | None = None,
    size: tuple[int, int],
    mask: Array | None = None,
    design: Array | None = None,
    changed: Array | None = None,
) -> dict[str, Any]:
    """Express a :func:`locate_pattern` result relative to the subject (DESIGN.md s. 8, 10).

    ``size`` is the (width, height) in pixels of the frame the boxes are normalised in;
    ``mask`` the garment mask at any size (True on the fabric). Adds or replaces:

    - ``relative_to``: ``"chest"`` when ``subject`` was found, else ``"image"``;
    - ``width_fraction``: the pattern box's width over the chest box's width (else the
      image's width);
    - ``placement_point``: ``[x, y]`` normalised in the image: the point the placement
      words name in the chest box (else the image centre);
    - ``center_offset``: ``[dx, dy]`` from that point to the box centre, over the chest
      box's (else the image's) width and height;
    - ``placement_distance``: that distance in chest widths on both axes,
      ``hypot(dx_px, dy_px) / chest_width_px``; None without a subject;
    - ``on_garment``: the fraction (0..1) of the print's visible area on ``mask``
      (:func:`print_on_mask`, with the print's ``design`` alpha and the ``changed``
      pixels); None without a subject or mask.

    When the pattern was not found these are None (``relative_to`` is still set).
    """
    out = dict(pattern)
    has_subject = bool(subject is not None and subject.found and subject.chest_box is not None)
    out["relative_to"] = "chest" if has_subject else "image"
    for key in ("width_fraction", "center_offset", "placement_point"):
        out[key] = None
    out["placement_distance"] = None
    out["on_garment"] = None
    box = pattern.get("box")
    if not pattern.get("found") or not box:
        return out
    w, h = size
    bx, by = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if has_subject:
        assert subject is not None and subject.chest_box is not None
        x0, y0, x1, y1 = subject.chest_box
        cw, ch = x1 - x0, y1 - y0
        (fx, fy), _ = placement_point(placement)
        px, py = x0 + fx * cw, y0 + fy * ch
        out["width_fraction"] = float((box[2] - box[0]) / cw)
        out["center_offset"] = [float((bx - px) / cw), float((by - py) / ch)]
        out["placement_point"] = [float(px), float(py)]
        out["placement_distance"] = float(math.hypot((bx - px) * w, (by - py) * h) / (cw * w))
        corners = pattern.get("corners")
        if mask is not None and corners:
            out["on_garment"] = print_on_mask(corners, mask, design=design, changed=changed)
    else:
        out["width_fraction"] = float(box[2] - box[0])
        out["center_offset"] = [float(bx - 0.5), float(by - 0.5)]
        out["placement_point"] = [0.5, 0.5]
    return out


# ---------------------------------------------------------------------------------------
# Style and perceptual hash
# ---------------------------------------------------------------------------------------


def lab_stats(image: ImageLike) -> Array:
    """``[mean L, mean a, mean b, std L, std a, std b]`` in Lab units (float64)."""
    rgb = _rgb_array(image)
    rgb = _resize(rgb, _fit_side(rgb.shape[1], rgb.shape[0], STYLE_WORK_SIDE))
    lab = _lab(rgb).reshape(-1, 3).astype(np.float64)
    return np.concatenate([lab.mean(axis=0), lab.std(axis=0)])


def lab_stats_distance(a: ImageLike, b: ImageLike) -> float:
    """Euclidean distance between the Lab statistics vectors of two images.

    ``d = sqrt(sum_c (mean_a[c] - mean_b[c])^2 + sum_c (std_a[c] - std_b[c])^2)`` over
    the channels c in (L, a, b), in Lab units, computed at a long side of 256 pixels.
    0 means the same colour distribution to first and second order.
    """
    return float(np.linalg.norm(lab_stats(a) - lab_stats(b)))


TEXTURE_WORK_SIDE = 320  # long side for the texture statistics
TEXTURE_SCALES = 3  # octaves: the working size, 1/2 and 1/4 of it
TEXTURE_BINS = 8  # gradient orientation bins over 0..180 degrees
TEXTURE_WINDOW = 4.0  # sigma (pixels) of the local mean and contrast
TEXTURE_CONTRAST_FLOOR = 0.2  # x the image's luminance std: keeps flat areas from exploding
TEXTURE_MARGIN = 0.15  # the output must be this much (relative) closer in texture


def texture_features(image: ImageLike) -> Array:
    """Texture statistics of an image, blind to colour and to any global gain and offset
    of the luminance (so a colour cast or a Reinhard transfer leaves them unchanged).

    At a long side of 320 pixels and two further octaves (``pyrDown``), the luminance is
    normalised by its local contrast, ``n = (Y - mu) / (sigma + 0.2 std(Y))`` with mu and
    sigma a Gaussian (sigma 4 px) local mean and standard deviation. On ``n``, per scale:

    - an 8-bin histogram of gradient orientation (0..180 degrees) weighted by the
      gradient magnitude, summing to 1 (which way the strokes run);
    - ``log(0.05 + mean gradient magnitude)`` (high-frequency energy against local
      contrast: fine brush strokes raise it, smoothing lowers it);
    - the structure-tensor coherence (0..1, tensor sigma 2 px) averaged with the
      tensor's trace as weight (how stroke-like, i.e. oriented, the detail is).

    Returns a float64 vector of ``3 * (8 + 2)`` values, per scale in that order.
    """
    rgb = _rgb_array(image)
    y = luma(_resize(rgb, _fit_side(rgb.shape[1], rgb.shape[0], TEXTURE_WORK_SIDE)))
    floor = TEXTURE_CONTRAST_FLOOR * float(y.std()) + 1e-3
    feats: list[float] = []
    for _ in range(TEXTURE_SCALES):
        mu = cv2.GaussianBlur(y, (0, 0), TEXTURE_WINDOW)
        d = y - mu
        sd = np.sqrt(cv2.GaussianBlur(d * d, (0, 0), TEXTURE_WINDOW))
        n = d / (sd + floor)
        gx = cv2.Sobel(n, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(n, cv2.CV_32F, 0, 1, ksize=3)
        mag = cv2.magnitude(gx, gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi)
        bins = np.minimum((ang * (TEXTURE_BINS / np.pi)).astype(np.int64), TEXTURE_BINS - 1)
        counts = np.bincount(bins.ravel(), weights=mag.ravel(), minlength=TEXTURE_BINS)
        hist = counts.astype(np.float64) / max(float(counts.sum()), 1e-9)
        jxx = cv2.GaussianBlur(gx * gx, (0, 0), 2.0)
        jyy = cv2.GaussianBlur(gy * gy, (0, 0), 2.0)
        jxy = cv2.GaussianBlur(gx * gy, (0, 0), 2.0)
        trace = jxx + jyy
        coh = np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy * jxy) / (trace + 1e-6)
        coherence = float((coh * trace).sum(dtype=np.float64) / max(float(trace.sum()), 1e-9))
        feats.extend(float(v) for v in hist)
        # + 0.05 bounds the log for flat images (normal photos are ~1..4 here).
        feats.append(math.log(float(mag.mean(dtype=np.float64)) + 0.05))
        feats.append(coherence)
        if min(y.shape) < 16:
            # Too small for another octave: repeat the last scale's statistics.
            feats.extend(feats[-(TEXTURE_BINS + 2) :])
            continue
        y = cv2.pyrDown(y)
    return np.asarray(feats[: TEXTURE_SCALES * (TEXTURE_BINS + 2)], dtype=np.float64)


def texture_distance(a: Array, b: Array) -> float:
    """Distance (>= 0) between two :func:`texture_features` vectors: summed over the
    scales, the L1 distance of the orientation histograms (0..2 each) plus the absolute
    difference of the log energies plus that of the coherences (0..1 each)."""
    return float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def style_metric(output: ImageLike, target: ImageLike, style: ImageLike) -> dict[str, Any]:
    """How far the output moved toward the style source, in colour and in texture.

    Returns ``{"output_to_style", "target_to_style", "colour_closer",
    "texture_output_to_style", "texture_target_to_style", "texture_closer", "closer"}``:

    - colour: Lab-statistics distances (:func:`lab_stats_distance`, Lab units);
      ``colour_closer = output_to_style < target_to_style``;
    - texture: :func:`texture_distance` of :func:`texture_features`;
      ``texture_closer = texture_output_to_style < (1 - 0.15) * texture_target_to_style``
      (a margin: re-encoding or a colour change alone moves it a few per cent);
    - ``closer = colour_closer and texture_closer``: a colour transfer alone is not a
      restyle.
    """
    s = lab_stats(style)
    d1 = float(np.linalg.norm(lab_stats(output) - s))
    d2 = float(np.linalg.norm(lab_stats(target) - s))
    ts = texture_features(style)
    t1 = texture_distance(texture_features(output), ts)
    t2 = texture_distance(texture_features(target), ts)
    colour_closer = bool(d1 < d2)
    texture_closer = bool(t1 < (1.0 - TEXTURE_MARGIN) * t2)
    return {
        "output_to_style": d1,
        "target_to_style": d2,
        "colour_closer": colour_closer,
        "texture_output_to_style": t1,
        "texture_target_to_style": t2,
        "texture_closer": texture_closer,
        "closer": colour_closer and texture_closer,
    }


def phash(image: ImageLike) -> int:
    """64-bit perceptual hash: 32 x 32 luminance (area-averaged), 2-D DCT-II, the top-left
    8 x 8 coefficients (DC included) thresholded at their median; bit 63 is
    coefficient (0, 0), row-major."""
    small = _small_luma(image, (32, 32)).astype(np.float32)
    low = cv2.dct(small)[:8, :8].reshape(-1)
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two hashes (0..64 for :func:`phash`)."""
    return int(a ^ b).bit_count()


# ---------------------------------------------------------------------------------------
# Layout and alignment
# ---------------------------------------------------------------------------------------


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
    from .compose import crop_cell

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


def _cut_output(
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
        t = _resize(_rgb_array(target), small)
        s_cut = ssim(_resize(_rgb_array(cut), small), t)
        s_whole = ssim(_resize(_rgb_array(output), small), t)
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
    cut, _ = _cut_output(out, tgt, composite, target_index)
    w, h = size or tgt.size
    return Image.fromarray(_resize(_rgb_array(cut), (w, h)))


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    """One recipe check: what it reads, what its expected value looks like.

    ``needs_subject``: the check is defined relative to the subject (the chest box or
    the garment mask); without one it is not measured (``pass`` None), never measured
    against the whole image instead.
    """

    kind: str  # "bool" | "min" | "max" | "range"
    metric: str  # the metric it needs: "pattern", "ssim", ...
    description: str
    value: Callable[[Mapping[str, Any]], Any]
    needs_subject: bool = False


NO_SUBJECT_REASON = "no subject found on the target: give --subject-box x0,y0,x1,y1"
PATTERN_MISSING_REASON = "the pattern was not found in the output"


def _get(metrics: Mapping[str, Any], key: str, sub: str | None = None) -> Any:
    v = metrics.get(key)
    if sub is None or v is None:
        return v
    return v.get(sub) if isinstance(v, Mapping) else None


def _chest(metrics: Mapping[str, Any], sub: str) -> Any:
    """A pattern value only when it is relative to the chest (never the image's)."""
    if _get(metrics, "pattern", "relative_to") != "chest":
        return None
    return _get(metrics, "pattern", sub)


def _offset_len(metrics: Mapping[str, Any]) -> float | None:
    off = _chest(metrics, "center_offset")
    return None if off is None else float(math.hypot(off[0], off[1]))


def _subject_found(metrics: Mapping[str, Any]) -> bool:
    subject = metrics.get("subject")
    return bool(isinstance(subject, Mapping) and subject.get("found"))


CHECKS: dict[str, CheckSpec] = {
    "pattern_found": CheckSpec(
        "bool",
        "pattern",
        "the pattern is found in the output",
        lambda m: _get(m, "pattern", "found"),
    ),
    "pattern_inliers_min": CheckSpec(
        "min",
        "pattern",
        "at least this many RANSAC inliers",
        lambda m: _get(m, "pattern", "inliers"),
    ),
    "pattern_width_fraction": CheckSpec(
        "range",
        "pattern",
        "the pattern's box width, as a fraction of the chest's width",
        lambda m: _chest(m, "width_fraction"),
        needs_subject=True,
    ),
    "pattern_center_offset_max": CheckSpec(
        "max",
        "pattern",
        "|[dx, dy]| from the placement point to the pattern's centre, in chest width/height",
        _offset_len,
        needs_subject=True,
    ),
    "pattern_placement": CheckSpec(
        "max",
        "pattern",
        "distance from the placement point to the pattern's centre, in chest widths",
        lambda m: _chest(m, "placement_distance"),
        needs_subject=True,
    ),
    "pattern_on_garment": CheckSpec(
        "min",
        "pattern",
        "fraction of the pattern's area lying on the garment",
        lambda m: _chest(m, "on_garment"),
        needs_subject=True,
    ),
    "target_ssim_outside_edit": CheckSpec(
        "min",
        "ssim_outside_edit",
        "SSIM outside the edit region (the target is preserved)",
        lambda m: _get(m, "ssim_outside_edit"),
    ),
    "target_ssim_outside_garment": CheckSpec(
        "min",
        "ssim_outside_garment",
        "SSIM off the garment (face, skin and background preserved)",
        lambda m: _get(m, "ssim_outside_garment"),
        needs_subject=True,
    ),
    "ssim_min": CheckSpec("min", "ssim", "SSIM of output vs target", lambda m: _get(m, "ssim")),
    "ssim_max": CheckSpec("max", "ssim", "SSIM of output vs target", lambda m: _get(m, "ssim")),
    "style_closer": CheckSpec(
        "bool",
        "style",
        "the output is closer to the style than the target in colour AND texture",
        lambda m: _get(m, "style", "closer"),
    ),
    "edit_area_min": CheckSpec(
        "min",
        "edit_region",
        "changed area as a fraction of the image",
        lambda m: _get(m, "edit_region", "area_fraction"),
    ),
    "edit_area_max": CheckSpec(
        "max",
        "edit_region",
        "changed area as a fraction of the image",
        lambda m: _get(m, "edit_region", "area_fraction"),
    ),
    "phash_max_to_target": CheckSpec(
        "max",
        "phash",
        "pHash Hamming distance (0..64) to the target",
        lambda m: _get(m, "phash", "target"),
    ),
    "phash_min_to_target": CheckSpec(
        "min",
        "phash",
        "pHash Hamming distance (0..64) to the target",
        lambda m: _get(m, "phash", "target"),
    ),
}
"""Every supported recipe check key. recipes.py validates ``[checks]`` against this."""

_NEEDS_INPUT = {"pattern": "a pattern image (--pattern)", "style": "a style image (--style)"}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_checks(checks: Mapping[str, Any]) -> None:
    """Raise RecipeError naming the first unknown check key or malformed expected value."""
    if not isinstance(checks, Mapping):
        raise RecipeError("[checks] must be a table of check = expected value")
    for name, expected in checks.items():
        spec = CHECKS.get(name)
        if spec is None:
            raise RecipeError(f"unknown check {name!r} (known: {', '.join(sorted(CHECKS))})")
        if spec.kind == "bool" and not isinstance(expected, bool):
            raise RecipeError(f"check {name!r} expects true or false, got {expected!r}")
        if spec.kind in ("min", "max") and not _is_number(expected):
            raise RecipeError(f"check {name!r} expects a number, got {expected!r}")
        if spec.kind == "range" and not (
            isinstance(expected, Sequence)
            and not isinstance(expected, str)
            and len(expected) == 2
            and all(_is_number(v) for v in expected)
            and expected[0] <= expected[1]
        ):
            raise RecipeError(f"check {name!r} expects [low, high], got {expected!r}")


def evaluate_checks(metrics: Mapping[str, Any], checks: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply recipe checks to metrics: ``{"checks": {name: {"pass", "value", "expected"
    [, "reason"]}}, "passed": bool}``.

    ``pass`` is True or False, or None when the check needs the subject (the chest box
    or garment mask) and none was found or given: then ``reason`` tells the user to give
    ``--subject-box``. A pattern check fails (False) when the pattern was not found,
    subject or not. ``passed`` is True only when every check passes (or there are none):
    a value that could not be measured fails, and a check not measured (None) fails
    ``passed`` too. RecipeError for an unknown key; InputError when a check needs an
    input not given."""
    checks = checks or {}
    validate_checks(checks)
    has_subject = _subject_found(metrics)
    out: dict[str, Any] = {}
    for name, expected in checks.items():
        spec = CHECKS[name]
        if metrics.get(spec.metric, None) is None and spec.metric in _NEEDS_INPUT:
            raise InputError(f"check {name!r} needs {_NEEDS_INPUT[spec.metric]}")
        value = spec.value(metrics)
        exp = list(expected) if spec.kind == "range" else expected
        reason: str | None = None
        ok: bool | None
        pattern_missing = spec.metric == "pattern" and not _get(metrics, "pattern", "found")
        if spec.needs_subject and not has_subject and not pattern_missing:
            ok, reason = None, NO_SUBJECT_REASON
        elif value is None:
            ok = False
            if pattern_missing:
                reason = PATTERN_MISSING_REASON
            elif spec.metric == "ssim_outside_garment":
                reason = "too few pixels off the garment to measure"
            elif spec.metric == "ssim_outside_edit":
                reason = "the edit covers the whole image"
        elif spec.kind == "bool":
            ok = bool(value) == expected
        elif spec.kind == "min":
            ok = value >= expected
        elif spec.kind == "max":
            ok = value <= expected
        else:
            ok = expected[0] <= value <= expected[1]
        entry: dict[str, Any] = {
            "pass": None if ok is None else bool(ok),
            "value": _json_safe(value),
            "expected": exp,
        }
        if reason is not None:
            entry["reason"] = reason
        out[name] = entry
    return {"checks": out, "passed": all(c["pass"] is True for c in out.values())}


def checks_verdict(checks: Mapping[str, Any]) -> str | None:
    """The one-line failure message for evaluated ``checks`` (``{name: {"pass", ...}}``),
    or None when every check passed. Checks not measured are named with their reason."""
    failed = [n for n, c in checks.items() if c.get("pass") is False]
    unmeasured = [n for n, c in checks.items() if c.get("pass") is None]
    if not failed and not unmeasured:
        return None
    parts = []
    if failed:
        parts.append(f"recipe checks failed: {', '.join(failed)}")
    if unmeasured:
        reasons = sorted({str(checks[n].get("reason") or "not measured") for n in unmeasured})
        head = "not measured" if failed else "recipe checks not measured"
        parts.append(f"{head} ({'; '.join(reasons)}): {', '.join(unmeasured)}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------
# The whole comparison
# ---------------------------------------------------------------------------------------


def _json_safe(v: Any, digits: int = 4) -> Any:
    """Round floats and turn numpy scalars and tuples into plain JSON types."""
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        # + 0.0 turns a rounded -0.0 into 0.0
        return round(f, digits) + 0.0 if math.isfinite(f) else None
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x, digits) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x, digits) for x in v]
    return v


@dataclass
class CompareReport:
    """Metrics, check results and the overall verdict of one comparison.

    ``metrics`` holds ssim, edit_region, ssim_outside_edit, pattern, style, phash,
    subject, ssim_outside_garment and aligned (which cell was cut out, and the size
    compared at). ``aligned_output`` is the output in the target's frame (what the boxes
    refer to) and ``subject`` the :class:`~fluxcompose.locate.Subject` used (its garment
    mask draws the sheet); neither is serialised. ``warnings`` are one-line notes for
    the user (e.g. placement words not understood).
    """

    metrics: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    passed: bool = True
    aligned_output: Image.Image | None = field(default=None, repr=False, compare=False)
    aligned_target: Image.Image | None = field(default=None, repr=False, compare=False)
    subject: Subject | None = field(default=None, repr=False, compare=False)
    warnings: list[str] = field(default_factory=list)
    sheet_path: Path | None = None

    KEYS = (
        "ssim",
        "edit_region",
        "ssim_outside_edit",
        "pattern",
        "style",
        "phash",
        "subject",
        "ssim_outside_garment",
        "aligned",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ssim, edit_region, ssim_outside_edit, pattern, style, phash, subject,
        ssim_outside_garment, aligned, checks, passed, warnings (floats rounded to 4
        decimals)."""
        d = {k: _json_safe(self.metrics.get(k)) for k in self.KEYS}
        d["checks"] = _json_safe(self.checks)
        d["passed"] = bool(self.passed)
        d["warnings"] = list(self.warnings)
        return d

    def verdict(self) -> str | None:
        """The failure message (see :func:`checks_verdict`), or None when all passed."""
        return checks_verdict(self.checks)


def _placement_warning(placement: str | None) -> str | None:
    _, unknown = placement_point(placement)
    if not unknown:
        return None
    words = ", ".join(repr(w) for w in unknown)
    return f"placement {placement!r}: unknown word(s) {words}; the middle is used for them"


def compare(
    output: ImageLike,
    target: ImageLike,
    *,
    pattern: ImageLike | None = None,
    style: ImageLike | None = None,
    sources: Mapping[str, ImageLike] | None = None,
    composite: Any = None,
    target_index: int | None = None,
    checks: Mapping[str, Any] | None = None,
    subject_box: Box | str | Sequence[float] | None = None,
    placement: str | None = None,
    subject: Subject | None = None,
) -> CompareReport:
    """Measure ``output`` against ``target`` (and the optional pattern, style and other
    named sources), then apply ``checks``. Images may be PIL images, arrays or paths.
    ``composite`` (a Composite, layout dict or layout JSON path) lets an output that kept
    the canvas layout be cut back to the target's cell (``target_index``, default per
    :func:`default_target_index`).

    The subject (DESIGN.md s. 10) is ``subject`` when given (computed on the upright
    target; its boxes are normalised so any size works), else :func:`locate` runs on the
    aligned target with ``subject_box`` (``"x0,y0,x1,y1"`` or 4 numbers, normalised; an
    InputError when malformed). ``placement`` is the recipe's placement words (default
    the middle of the chest box).
    """
    if checks:
        validate_checks(checks)  # fail before the expensive part
    box = parse_box(subject_box) if subject_box is not None else None  # type: ignore[arg-type]
    out_img = to_pil(output)
    tgt_img = to_pil(target)
    pat_img = to_pil(pattern) if pattern is not None else None
    sty_img = to_pil(style) if style is not None else None

    cut, cut_info = _cut_output(out_img, tgt_img, composite, target_index)
    # Compare at the target's size, capped to ~1 MP so a huge source costs no more.
    work = _fit_area(tgt_img.width, tgt_img.height, MAX_WORK_PIXELS)
    tgt = _resize(np.asarray(tgt_img, dtype=np.uint8), work)
    out = _resize(np.asarray(cut, dtype=np.uint8), work)

    if subject is None:
        subject = locate(tgt, subject_box=box)
    gmask = subject.garment_mask(work) if subject.found else None

    ssim_value, smap = ssim(out, tgt, full=True)
    changed = _edit_mask(out, tgt)
    region = _region_from_mask(changed)
    metrics: dict[str, Any] = {
        "ssim": ssim_value,
        "edit_region": region,
        "ssim_outside_edit": ssim_outside_edit(None, None, region, smap=smap),
        "pattern": None,
        "style": None,
        "phash": None,
        "subject": subject.to_dict(),
        "ssim_outside_garment": ssim_outside_mask(smap, gmask) if gmask is not None else None,
        "aligned": {
            **cut_info,
            "output_size": [out_img.width, out_img.height],
            "size": [work[0], work[1]],
        },
    }
    warnings: list[str] = []
    if pat_img is not None:
        # Match in the cut output at its own resolution (no up/down round trip).
        layer = pattern_layer(np.asarray(pat_img, dtype=np.uint8))
        found = locate_pattern(np.asarray(cut, dtype=np.uint8), pat_img, layer=layer)
        x0, y0, x1, y1 = layer.box
        metrics["pattern"] = relate_pattern(
            found,
            subject,
            placement=placement,
            size=work,
            mask=gmask,
            design=layer.alpha[y0:y1, x0:x1],
            changed=changed,
        )
        warning = _placement_warning(placement)
        if warning:
            warnings.append(warning)
    if sty_img is not None:
        metrics["style"] = style_metric(out, tgt, sty_img)

    named: dict[str, Image.Image] = {}
    for name, img in (sources or {}).items():
        named[name] = to_pil(img)
    named.setdefault("target", tgt_img)
    if pat_img is not None:
        named.setdefault("pattern", pat_img)
    if sty_img is not None:
        named.setdefault("style", sty_img)
    h_out = phash(out)
    metrics["phash"] = {name: hamming(h_out, phash(img)) for name, img in named.items()}

    result = evaluate_checks(metrics, checks)
    return CompareReport(
        metrics=metrics,
        checks=result["checks"],
        passed=result["passed"],
        aligned_output=Image.fromarray(out),
        aligned_target=Image.fromarray(tgt),
        subject=subject,
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------
# Files in, report (and sheet) out: what the CLI and run/batch call
# ---------------------------------------------------------------------------------------


def _load_any(image: ImageLike) -> Image.Image:
    """A path or URL through fluxcompose.images (EXIF upright, ImageError when unreadable);
    PIL images and arrays as they are."""
    if isinstance(image, str | os.PathLike):
        from .images import load_image

        return load_image(str(image)).image
    return to_pil(image)


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


def compare_files(
    output: ImageLike,
    target: ImageLike,
    *,
    pattern: ImageLike | None = None,
    style: ImageLike | None = None,
    sources: Mapping[str, ImageLike] | None = None,
    source_order: Sequence[str] | None = None,
    layout: Any = None,
    target_index: int | None = None,
    checks: Mapping[str, Any] | None = None,
    subject_box: Box | str | Sequence[float] | None = None,
    placement: str | None = None,
    subject: Subject | None = None,
    sheet: str | os.PathLike[str] | None = None,
    canvas: ImageLike | None = None,
) -> CompareReport:
    """Load the images (paths or URLs; PIL images and arrays pass through), run
    :func:`compare`, and draw the sheet to ``sheet`` when given (``report.sheet_path``).

    ``sources`` are further named sources (as in :func:`compare`); ``source_order`` is
    the recipe's source names, which order the sheet's panels. ``layout`` is a layout
    JSON path, dict, LayoutView or Composite; ``target_index`` defaults per
    :func:`default_target_index` with ``source_order``. ``canvas`` defaults to the
    canvas image next to a layout path (:func:`find_canvas`) or a Composite's image.
    """
    if checks:
        validate_checks(checks)
    view = load_layout(layout) if layout is not None else None
    if view is not None and target_index is None:
        target_index = default_target_index(view, source_order)
    out_img = _load_any(output)
    tgt_img = _load_any(target)
    pat_img = _load_any(pattern) if pattern is not None else None
    sty_img = _load_any(style) if style is not None else None
    named = {name: _load_any(img) for name, img in (sources or {}).items()}
    report = compare(
        out_img,
        tgt_img,
        pattern=pat_img,
        style=sty_img,
        sources=named or None,
        composite=view,
        target_index=target_index,
        checks=checks or None,
        subject_box=subject_box,
        placement=placement,
        subject=subject,
    )
    if sheet is not None:
        from .sheet import draw_sheet

        panels: dict[str, Image.Image] = dict(named)
        for name, img in (("pattern", pat_img), ("style", sty_img), ("target", tgt_img)):
            if img is not None:
                panels.setdefault(name, img)
        order = [n for n in (source_order or []) if n in panels]
        order += [n for n in panels if n not in order]
        canvas_img: Image.Image | None = None
        if canvas is not None:
            canvas_img = _load_any(canvas)
        elif isinstance(layout, str | os.PathLike):
            found = find_canvas(layout)
            canvas_img = _load_any(found) if found is not None else None
        elif getattr(layout, "image", None) is not None:
            canvas_img = to_pil(layout.image)
        report.sheet_path = draw_sheet(
            report,
            sources=[(n, panels[n]) for n in order],
            canvas=canvas_img,
            output=out_img,
            path=Path(sheet),
        )
    return report


def raise_for_checks(report: CompareReport) -> None:
    """ChecksFailed (exit 1) with :meth:`CompareReport.verdict` when a check failed or
    could not be measured; nothing when all passed."""
    message = report.verdict()
    if message is not None:
        raise ChecksFailed(message)
