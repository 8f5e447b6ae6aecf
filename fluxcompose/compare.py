"""Measure an output against its sources: SSIM, edit region, pattern, style, pHash, checks.

Every box is ``[x0, y0, x1, y1]`` normalised 0..1 in the frame of the *aligned* output,
which is the target's frame (the output cut back to the target's cell when it kept the
canvas layout, then resized to the target's size). Pixel values are 8-bit (0..255);
luminance is ITU-R BT.601 ``Y = 0.299 R + 0.587 G + 0.114 B``; Lab is CIE L*a*b* (D65)
with L in 0..100 and a, b roughly -128..127 (OpenCV's float conversion).

Cost is bounded so that a 1 MP output takes well under 0.5 s on one core: SSIM runs at
the target's size capped to about 1 MP, the edit region and style statistics at a
small working size, and feature matching at a long side of at most 768 pixels.
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

from .errors import ImageError, InputError, RecipeError

__all__ = [
    "CHECKS",
    "CheckSpec",
    "CompareReport",
    "LayoutView",
    "align_output",
    "aspect_mismatch",
    "compare",
    "default_target_index",
    "edit_region",
    "evaluate_checks",
    "hamming",
    "lab_stats",
    "lab_stats_distance",
    "load_layout",
    "locate_pattern",
    "luma",
    "phash",
    "ssim",
    "ssim_map",
    "ssim_outside_edit",
    "style_metric",
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
MATCH_SCENE_MIN_SIDE = 384  # small outputs are upsampled to this long side for matching
MATCH_PATTERN_SIDE = 512  # long side of the pattern when matching features
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


def locate_pattern(
    output: ImageLike, pattern: ImageLike, *, min_inliers: int = MIN_INLIERS
) -> dict[str, Any]:
    """Find ``pattern`` in ``output`` by SIFT, Lowe's ratio test and a RANSAC homography.

    Returns ``{"found", "inliers", "box", "width_fraction", "center_offset", "corners"}``:
    ``box`` is the axis-aligned bounding box of the projected pattern corners clipped to
    the image, ``[x0, y0, x1, y1]`` normalised 0..1; ``width_fraction`` = x1 - x0;
    ``center_offset`` = ``[dx, dy]`` from the image centre to the box centre in units
    of the image's width and height (-0.5..0.5); ``corners`` are the four projected
    corners (normalised, clockwise from top-left, not clipped). When not found, all
    but ``found`` and ``inliers`` are None.
    """
    scene_rgb = output if isinstance(output, np.ndarray) else _rgb_array(output)
    pat_rgb = pattern if isinstance(pattern, np.ndarray) else _rgb_array(pattern)
    sh, sw = scene_rgb.shape[:2]
    scene_ws = _fit_side(sw, sh, MATCH_SCENE_SIDE)
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
    norm_quad = quad / np.array([W, Hh], dtype=np.float64)
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
    }


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


def style_metric(output: ImageLike, target: ImageLike, style: ImageLike) -> dict[str, Any]:
    """``{"output_to_style", "target_to_style", "closer"}``: Lab-statistics distances
    (:func:`lab_stats_distance`) and whether the output is closer to the style than the
    target was."""
    s = lab_stats(style)
    d1 = float(np.linalg.norm(lab_stats(output) - s))
    d2 = float(np.linalg.norm(lab_stats(target) - s))
    return {"output_to_style": d1, "target_to_style": d2, "closer": bool(d1 < d2)}


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
    """One recipe check: what it reads, what its expected value looks like."""

    kind: str  # "bool" | "min" | "max" | "range"
    metric: str  # the metric it needs: "pattern", "ssim", ...
    description: str
    value: Callable[[Mapping[str, Any]], Any]


def _get(metrics: Mapping[str, Any], key: str, sub: str | None = None) -> Any:
    v = metrics.get(key)
    if sub is None or v is None:
        return v
    return v.get(sub) if isinstance(v, Mapping) else None


def _offset_len(metrics: Mapping[str, Any]) -> float | None:
    off = _get(metrics, "pattern", "center_offset")
    return None if off is None else float(math.hypot(off[0], off[1]))


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
        "the pattern's box width, as a fraction of the target's width",
        lambda m: _get(m, "pattern", "width_fraction"),
    ),
    "pattern_center_offset_max": CheckSpec(
        "max",
        "pattern",
        "distance |[dx, dy]| from the image centre to the pattern's centre",
        _offset_len,
    ),
    "target_ssim_outside_edit": CheckSpec(
        "min",
        "ssim_outside_edit",
        "SSIM outside the edit region (the target is preserved)",
        lambda m: _get(m, "ssim_outside_edit"),
    ),
    "ssim_min": CheckSpec("min", "ssim", "SSIM of output vs target", lambda m: _get(m, "ssim")),
    "ssim_max": CheckSpec("max", "ssim", "SSIM of output vs target", lambda m: _get(m, "ssim")),
    "style_closer": CheckSpec(
        "bool",
        "style",
        "the output's Lab statistics are closer to the style than the target's",
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
    """Apply recipe checks to metrics: ``{"checks": {name: {"pass", "value", "expected"}},
    "passed": bool}``. ``passed`` is True when every check passes (or there are none).
    A value that could not be measured (e.g. no pattern found, so no width) fails.
    RecipeError for an unknown key; InputError when a check needs an input not given."""
    checks = checks or {}
    validate_checks(checks)
    out: dict[str, Any] = {}
    for name, expected in checks.items():
        spec = CHECKS[name]
        if metrics.get(spec.metric, None) is None and spec.metric in _NEEDS_INPUT:
            raise InputError(f"check {name!r} needs {_NEEDS_INPUT[spec.metric]}")
        value = spec.value(metrics)
        if value is None:
            ok = False
        elif spec.kind == "bool":
            ok = bool(value) == expected
        elif spec.kind == "min":
            ok = value >= expected
        elif spec.kind == "max":
            ok = value <= expected
        else:
            ok = expected[0] <= value <= expected[1]
        exp = list(expected) if spec.kind == "range" else expected
        out[name] = {"pass": bool(ok), "value": _json_safe(value), "expected": exp}
    return {"checks": out, "passed": all(c["pass"] for c in out.values())}


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

    ``metrics`` holds ssim, edit_region, ssim_outside_edit, pattern, style, phash and
    aligned (which cell was cut out, and the size compared at). ``aligned_output`` is the
    output in the target's frame (what the boxes refer to); it is not serialised.
    """

    metrics: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    passed: bool = True
    aligned_output: Image.Image | None = field(default=None, repr=False, compare=False)
    aligned_target: Image.Image | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ssim, edit_region, ssim_outside_edit, pattern, style, phash,
        aligned, checks, passed (floats rounded to 4 decimals)."""
        d = {
            k: _json_safe(self.metrics.get(k))
            for k in (
                "ssim",
                "edit_region",
                "ssim_outside_edit",
                "pattern",
                "style",
                "phash",
                "aligned",
            )
        }
        d["checks"] = _json_safe(self.checks)
        d["passed"] = bool(self.passed)
        return d


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
) -> CompareReport:
    """Measure ``output`` against ``target`` (and the optional pattern, style and other
    named sources), then apply ``checks``. Images may be PIL images, arrays or paths.
    ``composite`` (a Composite, layout dict or layout JSON path) lets an output that kept
    the canvas layout be cut back to the target's cell (``target_index``, default per
    :func:`default_target_index`)."""
    if checks:
        validate_checks(checks)  # fail before the expensive part
    out_img = to_pil(output)
    tgt_img = to_pil(target)
    pat_img = to_pil(pattern) if pattern is not None else None
    sty_img = to_pil(style) if style is not None else None

    cut, cut_info = _cut_output(out_img, tgt_img, composite, target_index)
    # Compare at the target's size, capped to ~1 MP so a huge source costs no more.
    work = _fit_area(tgt_img.width, tgt_img.height, MAX_WORK_PIXELS)
    tgt = _resize(np.asarray(tgt_img, dtype=np.uint8), work)
    out = _resize(np.asarray(cut, dtype=np.uint8), work)

    ssim_value, smap = ssim(out, tgt, full=True)
    region = _region_from_mask(_edit_mask(out, tgt))
    metrics: dict[str, Any] = {
        "ssim": ssim_value,
        "edit_region": region,
        "ssim_outside_edit": ssim_outside_edit(None, None, region, smap=smap),
        "pattern": None,
        "style": None,
        "phash": None,
        "aligned": {
            **cut_info,
            "output_size": [out_img.width, out_img.height],
            "size": [work[0], work[1]],
        },
    }
    if pat_img is not None:
        # Match in the cut output at its own resolution (no up/down round trip).
        metrics["pattern"] = locate_pattern(np.asarray(cut, dtype=np.uint8), pat_img)
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
    )
