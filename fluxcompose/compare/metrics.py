"""Pixel metrics of an output against its target: SSIM (Wang et al.), the edit region,
SSIM outside the edit region or off a mask, and the DCT perceptual hash.

Images are same-size (the output already aligned to the target's frame, see
:mod:`.layout`); boxes are ``[x0, y0, x1, y1]`` normalised 0..1; SSIM is on BT.601
luminance in 0..255.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .imaging import Array, ImageLike, fit_side, lab, luma, resize, rgb_array, small_luma

__all__ = [
    "edit_mask",
    "edit_region",
    "hamming",
    "phash",
    "region_from_mask",
    "ssim",
    "ssim_map",
    "ssim_outside_edit",
    "ssim_outside_mask",
]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # like skimage: radius int(3.5 * 1.5 + 0.5) = 5, an 11x11 window
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_L = 255.0
EDIT_WORK_SIDE = 320  # long side for the edit-region mask
SSIM_ROWS = 128  # rows of the SSIM map computed at a time (its temporaries fit the cache)


def _gauss(img: Array, sigma: float = SSIM_SIGMA) -> Array:
    radius = int(SSIM_TRUNCATE * sigma + 0.5)
    k = 2 * radius + 1
    out: Array = cv2.GaussianBlur(img, (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return out


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
    # Variances as E[x^2] - E[x]^2 cancel badly on raw 0..255 values; centred at a
    # common offset (added back to the means) float32 keeps them to ~1e-3 of a level^2,
    # far below C2 (58.5), at half the cost of float64.
    offset = np.float32(0.5 * (float(x.mean()) + float(y.mean())))
    h = x.shape[0]
    out: Array = np.empty(x.shape, np.float32)
    # A band of SSIM_ROWS rows at a time, with the window's radius of real rows above and
    # below it (the image's own border rows are reflected as for the whole image): every
    # value is computed exactly as on the whole image, while the dozen temporaries stay
    # in the cache (whole 1 MP planes made this ~2x slower, more on a busy machine).
    r = _border()
    for top in range(0, h, SSIM_ROWS):
        bottom = min(h, top + SSIM_ROWS)
        lo, hi = max(0, top - r), min(h, bottom + r)
        band = _ssim_band(x[lo:hi], y[lo:hi], offset, c1, c2)
        out[top:bottom] = band[top - lo : bottom - lo]
    return out


def _ssim_band(x: Array, y: Array, offset: np.float32, c1: float, c2: float) -> Array:
    """The SSIM map of luminance rows ``x`` and ``y`` (float32) with the images' common
    ``offset`` subtracted, by the formulas in the comments: the same float32 operations
    in the same order, in place."""
    x = np.subtract(x, offset, dtype=np.float32)  # new arrays: the inputs stay as they are
    y = np.subtract(y, offset, dtype=np.float32)
    mx = _gauss(x)
    my = _gauss(y)
    tmp = np.multiply(x, y)
    sxy = _gauss(tmp)  # sxy = G(x y) - mx my
    np.multiply(mx, my, out=tmp)
    sxy -= tmp
    np.multiply(x, x, out=tmp)
    sxx = _gauss(tmp)  # sxx = G(x x) - mx mx
    np.multiply(mx, mx, out=tmp)
    sxx -= tmp
    np.multiply(y, y, out=x)
    syy = _gauss(x)  # syy = G(y y) - my my
    np.multiply(my, my, out=tmp)
    syy -= tmp
    mx += offset
    my += offset
    # num = (2 mx my + c1) (2 sxy + c2)  (2 mx my: exact doubling, rounded once)
    num = np.multiply(mx, my, out=x)
    num *= 2
    num += c1
    sxy *= 2
    sxy += c2
    num *= sxy
    # den = (mx mx + my my + c1) (sxx + syy + c2)
    den = np.multiply(mx, mx, out=mx)
    np.multiply(my, my, out=my)
    den += my
    den += c1
    sxx += syy
    sxx += c2
    den *= sxx
    num /= den
    return num


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


def _edit_score(out_rgb: Array, tgt_rgb: Array, native_width: int | None = None) -> Array:
    """Per-pixel change score at the edit working size; >= 1 means clearly changed.

    The maximum of a blurred Lab difference (over 10 units) and local 1 - SSIM (over
    0.5). JPEG artefacts (blocking, 4:2:0 chroma bleeding on edges) live at a few
    native pixels, so the colour difference is blurred by ~3 native pixels (at least
    1 working pixel), and chroma 1.5x more. ``native_width``: the width the images were
    shrunk from, when they are given already shrunk (default: their own).
    """
    h, w = tgt_rgb.shape[:2]
    ws = fit_side(w, h, EDIT_WORK_SIDE)
    o = resize(out_rgb, ws)
    t = resize(tgt_rgb, ws)
    sigma = max(1.0, EDIT_BLUR_NATIVE * ws[0] / (native_width or w))
    # Each channel blurred on its own plane: OpenCV's two-channel float blur is ~4x slower
    # than two one-channel ones (which differ from it by rounding, ~1e-7 relative).
    dl, da, db = cv2.split(lab(o) - lab(t))
    dl = cv2.GaussianBlur(dl, (0, 0), sigma)
    da = cv2.GaussianBlur(da, (0, 0), sigma * EDIT_CHROMA_BLUR)
    db = cv2.GaussianBlur(db, (0, 0), sigma * EDIT_CHROMA_BLUR)
    de = np.sqrt(dl * dl + (da * da + db * db))
    # Structure term catches texture changes that keep the mean colour.
    s = ssim_map(cv2.GaussianBlur(o, (0, 0), 1.0), cv2.GaussianBlur(t, (0, 0), 1.0))
    score: Array = np.maximum(de / EDIT_DE_UNIT, (1.0 - s) / EDIT_SSIM_UNIT).astype(np.float32)
    return score


def _otsu(score: Array) -> float:
    """Otsu threshold of a non-negative score (quantised to 1/32 steps up to 8)."""
    q = np.clip(score * 32.0, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 32.0


def edit_mask(out_rgb: Array, tgt_rgb: Array, *, native_width: int | None = None) -> Array:
    """Boolean mask (edit working size, a long side of EDIT_WORK_SIDE) of the kept
    changed components. Images already at that size say the width they were shrunk
    from as ``native_width``, which sets the blur that hides JPEG artefacts."""
    score = _edit_score(out_rgb, tgt_rgb, native_width)
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


def region_from_mask(mask: Array) -> dict[str, Any]:
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
    o = rgb_array(output)
    t = rgb_array(target)
    if o.shape != t.shape:
        raise InputError(
            f"edit_region needs equal sizes, got {o.shape[1]}x{o.shape[0]} "
            f"and {t.shape[1]}x{t.shape[0]}"
        )
    return region_from_mask(edit_mask(o, t))


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
    changed = np.zeros((h, w), dtype=bool)
    x0 = max(0, math.floor(box[0] * w) - r)
    y0 = max(0, math.floor(box[1] * h) - r)
    x1 = min(w, math.ceil(box[2] * w) + r)
    y1 = min(h, math.ceil(box[3] * h) + r)
    changed[y0:y1, x0:x1] = True
    return _mean_off(m, changed)


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
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return _mean_off(smap, cv2.dilate(mask.astype(np.uint8), kernel) > 0)


def _mean_off(m: Array, excluded: Array) -> float | None:
    """Mean of an SSIM map over the pixels neither ``excluded`` nor in the window's
    border; None when fewer than max(16, 0.5 %) of the pixels are left (too few to say
    anything about preservation)."""
    h, w = m.shape
    r = _border()
    keep = ~excluded
    if h > 2 * r and w > 2 * r:
        keep[:r] = keep[-r:] = False
        keep[:, :r] = keep[:, -r:] = False
    if np.count_nonzero(keep) < max(16, 0.005 * h * w):
        return None
    # OpenCV sums the kept pixels in double precision in place, where m[keep] would
    # first copy them out (the same mean to ~1e-12).
    mean: float = cv2.mean(m.astype(np.float32, copy=False), mask=keep.view(np.uint8))[0]
    return float(mean)


def phash(image: ImageLike) -> int:
    """64-bit perceptual hash: 32 x 32 luminance (area-averaged), 2-D DCT-II, the top-left
    8 x 8 coefficients (DC included) thresholded at their median; bit 63 is
    coefficient (0, 0), row-major."""
    small = small_luma(image, (32, 32)).astype(np.float32)
    low = cv2.dct(small)[:8, :8].reshape(-1)
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two hashes (0..64 for :func:`phash`)."""
    return int(a ^ b).bit_count()
