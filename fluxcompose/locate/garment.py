"""The classical computer-vision half of the subject (DESIGN.md s. 10): no learned model.

- :func:`by_garment`: a garment photographed without a person (or a torso the pose model
  cannot see): what differs from the background's corner colours, minus skin, cut at its
  hem, when it is large, one colour, solid down its middle, with a neck above it;
- :func:`by_given_box`: a chest box given by hand and no person mask to help: GrabCut inside
  the box, minus skin that is closer to the skin model than to the garment's own colour;
- the shared helpers (skin models, runs, the hem cut, mask plumbing) the pose path uses too.

Colours are 8-bit RGB; boxes normalised 0..1 unless a docstring says pixels.

Over 500 lines because it holds the classical path whole (no person) and the helpers the
pose path shares with it (skin models, runs, the hem cut, mask plumbing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .boxes import Box, Mask, Subject

__all__ = [
    "GENERIC_SKIN",
    "MASK_SIDE",
    "SkinModel",
    "as_rgb",
    "by_garment",
    "by_given_box",
    "central_runs",
    "chroma",
    "clean",
    "cut_at_hem",
    "exposed_skin",
    "colour_distance",
    "grabcut",
    "lab_of",
    "skin_not_garment",
    "mask_box",
    "norm_box",
    "not_found",
    "paste_mask",
    "resize_long",
    "skin_generic",
]

Array = npt.NDArray[Any]  # OpenCV images (its stubs do not keep dtypes)

MASK_SIDE = 512
"""Long side (pixels) of the stored garment mask, on the whole image."""
GARMENT_SIDE = 160
"""Long side (pixels) of the copy the no-person garment path works on."""
GRABCUT_SEED = 20240611
HEM_DELTA = 28.0
"""Lab distance (OpenCV 8-bit units) beyond which a colour is not the garment's (the hem)."""


def as_rgb(image: Any) -> Array:
    """An H x W x 3 uint8 RGB array from a PIL image or an array (grey is expanded)."""
    if hasattr(image, "convert") and getattr(image, "mode", "RGB") != "RGB":
        image = image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError(f"locate needs an RGB image, got an array of shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def resize_long(arr: npt.NDArray[Any], side: int) -> tuple[npt.NDArray[Any], float]:
    """``arr`` shrunk (never enlarged) so its long side is at most ``side``; and the scale."""
    import cv2

    h, w = arr.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return arr, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA), s


def skin_generic(ycrcb: Array) -> Mask:
    """A broad YCrCb skin test (Cr 133..180, Cb 77..130, not too dark; after Chai and Ngan)."""
    y = ycrcb[..., 0]
    cr = ycrcb[..., 1]
    cb = ycrcb[..., 2]
    out: Mask = (cr >= 133) & (cr <= 180) & (cb >= 77) & (cb <= 130) & (y >= 40)
    return out


def chroma(rgb: Array) -> tuple[Array, Array, Array]:
    """Shading-invariant chromaticity r = R/S, g = G/S, and the brightness S = R+G+B (0..765)."""
    f = rgb.astype(np.float32)
    r, g = f[..., 0], f[..., 1]
    s = r + g  # summed as ``f.sum(axis=-1)`` would, without a reduction over 3 values
    s += f[..., 2]
    s += 1.0
    return r / s, g / s, s


SKIN_SATURATION = 0.45
"""Share of the skin's own distance from grey (in chromaticity) a pixel needs to be skin."""


@dataclass(frozen=True)
class SkinModel:
    """A skin colour model: mean and spread of the chromaticity (r, g), which shading does
    not move (a shaded red shirt has the chroma of skin in YCrCb, not in r, g)."""

    r: float
    g: float
    sr: float
    sg: float

    def test(self, rgb: Array, saturation: float | None = None) -> Mask:
        """True where ``rgb`` (H x W x 3 uint8) is this skin: within 3 spreads of its
        chromaticity, and at least ``saturation`` (default SKIN_SATURATION) as far from grey
        along the skin's own direction (pale skin's chroma is near white's: a white shirt
        is not pale skin)."""
        r, g, s = chroma(rgb)
        dr = (r - self.r) / self.sr
        dg = (g - self.g) / self.sg
        ur, ug = self.r - 1 / 3, self.g - 1 / 3
        sat = ((r - 1 / 3) * ur + (g - 1 / 3) * ug) / max(ur * ur + ug * ug, 1e-6)
        out: Mask = (
            (dr * dr + dg * dg <= 9.0)
            & (s >= 45.0)
            & (sat >= (SKIN_SATURATION if saturation is None else saturation))
        )
        return out


GENERIC_SKIN = SkinModel(0.45, 0.31, 0.04, 0.015)


def central_runs(
    mask: Mask, cx: int, bridge: int = 0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each row, the [left, right) of the run of True containing column ``cx``
    (or the nearest run within a few pixels, the left one on a tie); (-1, -1) where there
    is none. Gaps of at most ``bridge`` pixels inside a row (a shirt's V between a
    jacket's lapels) are bridged."""
    import cv2

    if bridge > 0:
        k = np.ones((1, bridge + 1), np.uint8)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, k).astype(bool)
    h, w = mask.shape
    cx = int(np.clip(cx, 0, w - 1))
    tol = max(2, w // 40)
    # Every row at once: the True pixel nearest cx in the window (cx itself when set) ...
    lo, hi = max(0, cx - tol), min(w, cx + tol + 1)
    window = mask[:, lo:hi]
    dist = np.where(window, np.abs(np.arange(lo, hi) - cx), w + 1)
    c = lo + np.argmin(dist, axis=1)  # the first of equals: the left one
    rows = np.flatnonzero(window.any(axis=1))
    c = c[rows]
    # ... and the run around it: the last False before it, the first False after it.
    cols = np.arange(w)
    last_off = np.maximum.accumulate(np.where(mask[rows], -1, cols), axis=1)
    next_off = np.minimum.accumulate(np.where(mask[rows], w, cols)[:, ::-1], axis=1)[:, ::-1]
    left = np.full(h, -1, np.int64)
    right = np.full(h, -1, np.int64)
    left[rows] = last_off[np.arange(len(rows)), c] + 1
    right[rows] = next_off[np.arange(len(rows)), c]
    return left, right


def cut_at_hem(
    fg: Mask,
    rgb: Array,
    cx: int,
    core: tuple[int, int],
    threshold: float = HEM_DELTA,
    *,
    lab: Array | None = None,
) -> tuple[Mask, int | None]:
    """Cut ``fg`` at the torso garment's hem (trousers, a skirt, a belt of skin below it).

    The garment's colours are learnt on the core rows ``core`` = (first, last): three Lab
    clusters, plus "other" for anything more than ``threshold`` from all of them. Scanning
    down, a window of rows (half the core's height) whose mix of those colours differs from
    the core's (total variation > 0.45) is off the garment: stripes keep their mix, trousers
    of one of the stripes' colours do not. Only the middle of each row's central run counts.
    Returns the cut mask and the hem row (None when the garment runs to the bottom).
    ``lab`` is ``rgb``'s :func:`lab_of` when the caller has it already."""
    import cv2

    h, w = fg.shape
    c0, c1 = max(0, core[0]), min(h, core[1])
    if c1 - c0 < 2:
        return fg, None
    if lab is None:
        lab = lab_of(rgb)
    left, right = central_runs(fg, cx)
    span = (right - left)[:, None]
    cols = np.arange(w)[None, :]
    inner = (
        (left[:, None] >= 0)
        & (cols >= left[:, None] + span // 5)
        & (cols < right[:, None] - span // 5)
    )
    core_px = np.ascontiguousarray(lab[c0:c1][inner[c0:c1]])
    if len(core_px) < 12:
        return fg, None
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(GRABCUT_SEED)
    _, _, centres = cv2.kmeans(core_px, 3, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    centres = np.asarray(centres, np.float32)
    # Clusters closer than ``threshold`` are shades of one colour: one group.
    group = [0, 1, 2]
    for i in range(3):
        for j in range(i):
            if np.linalg.norm(centres[i] - centres[j]) <= threshold:
                group = [group[j] if g == group[i] else g for g in group]
    # Only the inner pixels are counted, so only they are labelled: each by its nearest
    # centre (the first of equals), "other" (3) beyond ``threshold`` of all of them.
    ys, xs = np.nonzero(inner)
    px = lab[ys, xs]
    near = np.full(len(px), np.inf, np.float32)
    label = np.zeros(len(px), np.int64)
    for i, centre in enumerate(centres):
        diff = px - centre
        sq = diff * diff
        dist = np.sqrt(sq[:, 0] + sq[:, 1] + sq[:, 2])
        closer = dist < near
        near[closer] = dist[closer]
        label[closer] = group[i]
    label[near > threshold] = 3
    counts = np.bincount(ys * 4 + label, minlength=4 * h).reshape(h, 4)
    ref = counts[c0:c1].sum(axis=0).astype(np.float64)
    ref /= ref.sum()
    k = max(2, (c1 - c0) // 2)
    cum = np.vstack([np.zeros((1, 4)), np.cumsum(counts, axis=0)])
    typical = float(counts[c0:c1].sum()) / (c1 - c0) * k  # pixels in a window of garment
    need = max(2, h // 60)
    run = 0
    for r in range(c1, h):
        win = cum[min(h, r + k)] - cum[r]
        total = float(win.sum())
        off = (
            total < 0.25 * typical or 0.5 * float(np.abs(win / max(total, 1.0) - ref).sum()) > 0.45
        )
        run = run + 1 if off else 0
        if run >= need:
            hem = min(h, max(c1, r - need + 1 + k // 2))
            out = fg.copy()
            out[hem:] = False
            return out, hem
    return fg, None


def grabcut(img: Array, init: Array, iters: int = 3) -> Mask:
    """GrabCut from an initial label mask (cv2.GC_* values); True on the foreground."""
    import cv2

    m = init.copy()
    if not ((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)).any():
        return np.zeros(m.shape, bool)
    if not ((m == cv2.GC_BGD) | (m == cv2.GC_PR_BGD)).any():
        return np.ones(m.shape, bool)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(img[..., ::-1])
    cv2.setRNGSeed(GRABCUT_SEED)  # GrabCut seeds its colour models by k-means: be repeatable
    try:
        cv2.grabCut(bgr, m, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    except cv2.error:
        m = init
    out: Mask = (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)
    return out


def clean(mask: Mask, seed: tuple[int, int] | None = None, open_px: int = 1) -> Mask:
    """Open away specks and keep the component at ``seed`` (else the largest)."""
    import cv2

    m: Array = mask.astype(np.uint8)
    if open_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * open_px + 1, 2 * open_px + 1))
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    keep = 0
    if seed is not None:
        sy, sx = seed
        if 0 <= sy < m.shape[0] and 0 <= sx < m.shape[1]:
            keep = int(labels[sy, sx])
    if keep == 0:
        keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out: Mask = labels == keep
    return out


def paste_mask(
    roi_mask: Mask, roi: tuple[int, int, int, int], full: tuple[int, int], side: int
) -> Mask:
    """Place a mask computed on the ROI (x0, y0, x1, y1 in full-image pixels) into a mask of the
    whole image at the stored working size (long side ``side``)."""
    import cv2

    W, H = full
    s = min(1.0, side / max(W, H))
    mw, mh = max(1, round(W * s)), max(1, round(H * s))
    out = np.zeros((mh, mw), bool)
    x0, y0, x1, y1 = roi
    a0, b0 = round(x0 * s), round(y0 * s)
    a1, b1 = max(a0 + 1, round(x1 * s)), max(b0 + 1, round(y1 * s))
    a1, b1 = min(a1, mw), min(b1, mh)
    small = cv2.resize(
        roi_mask.astype(np.uint8) * 255, (a1 - a0, b1 - b0), interpolation=cv2.INTER_LINEAR
    )
    out[b0:b1, a0:a1] = small >= 128
    return out


def norm_box(box: tuple[float, float, float, float], W: float, H: float) -> Box:
    x0, y0, x1, y1 = box
    return (
        float(np.clip(x0 / W, 0.0, 1.0)),
        float(np.clip(y0 / H, 0.0, 1.0)),
        float(np.clip(x1 / W, 0.0, 1.0)),
        float(np.clip(y1 / H, 0.0, 1.0)),
    )


def mask_box(mask: Mask) -> Box | None:
    """The box of the True pixels of ``mask``, normalised; None when there are none."""
    ys = np.flatnonzero(mask.any(axis=1))  # rows and columns, not every pixel's index
    if not len(ys):
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (xs[0] / w, ys[0] / h, (xs[-1] + 1) / w, (ys[-1] + 1) / h)


def not_found(reason: str) -> Subject:
    return Subject(False, "none", 0.0, None, None, None, None, reason=reason)


NECK_DIP = 0.05
"""A garment alone has a neck opening: the top of its middle lies at least this share of its
width below the tops of its shoulders."""


def _neck_opening(garment: Mask) -> bool:
    """Whether the region's top outline dips in its middle between two shoulders (a
    garment's neck opening; a disc or a blob peaks there instead)."""
    ys, xs = np.nonzero(garment)
    gx0, gx1 = int(xs.min()), int(xs.max()) + 1
    gw = gx1 - gx0
    if gw < 10:
        return False
    h = garment.shape[0]
    cols = garment[:, gx0:gx1]
    top = np.where(cols.any(axis=0), cols.argmax(axis=0), h).astype(np.float64)
    x = np.arange(gw) - (gw - 1) / 2
    middle = top[np.abs(x) <= 0.08 * gw]
    left = top[(x <= -0.2 * gw) & (x >= -0.35 * gw)]
    right = top[(x >= 0.2 * gw) & (x <= 0.35 * gw)]
    if not len(middle) or not len(left) or not len(right):
        return False
    shoulders = max(float(np.median(left)), float(np.median(right)))
    if shoulders >= h:
        return False
    return float(np.median(middle)) - shoulders >= NECK_DIP * gw


def by_garment(rgb: Array) -> Subject:
    """No person: segment a garment against the background's border colours (a headless studio
    shot, or a garment photographed alone), remove skin, and read the chest box off the
    garment's shape. It must have a neck above it (skin) or a neck opening."""
    import cv2

    H, W = rgb.shape[:2]
    small, _ = resize_long(rgb, GARMENT_SIDE)
    h, w = small.shape[:2]
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    # The background: the top corners (the head may touch the top edge's middle, the
    # garment or the arms the other edges).
    cw, chh = max(2, w // 5), max(2, h // 8)
    corners = [lab[:chh, :cw].reshape(-1, 3), lab[:chh, w - cw :].reshape(-1, 3)]
    # One colour per corner (the median: a sleeve reaching into a corner does not move it).
    centres = [np.median(c, axis=0) for c in corners]
    border = np.concatenate(corners)
    # Distance of every pixel to the nearest corner colour, and of corner pixels themselves.
    d = np.min(np.stack([np.linalg.norm(lab - c[None, None, :], axis=2) for c in centres]), axis=0)
    db = np.min(np.stack([np.linalg.norm(border - c[None, :], axis=1) for c in centres]), axis=0)
    spread = float(np.percentile(db, 80))
    if spread > 20.0 or np.linalg.norm(centres[0] - centres[1]) > 40.0:
        return not_found(
            "no person found, and the background is too busy to find a garment without one"
        )
    thr = max(18.0, 2.5 * spread)
    fg = d > thr
    skin = skin_generic(ycc)
    garment = clean(fg & ~skin, None, open_px=1)
    if float(garment.mean()) < 0.12:
        # A garment alone in a skin-like colour (yellow, tan, pink): the skin test took it.
        whole = clean(fg, None, open_px=1)
        if float((whole & skin).sum()) >= 0.5 * float(whole.sum()):
            garment = whole
    area = float(garment.mean())
    if area < 0.12:
        return not_found(
            "no person or garment found (nothing large stands out from the background)"
        )
    ys, xs = np.nonzero(garment)
    gx0, gx1, gy0, gy1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    # Trousers or a skirt below the shirt stand out from the background too: cut at the hem.
    span = gy1 - gy0
    garment, _ = cut_at_hem(
        garment, small, int((gx0 + gx1) // 2), (gy0 + span // 5, gy0 + span * 2 // 5)
    )
    garment = clean(garment, None, open_px=0)
    ys, xs = np.nonzero(garment)
    gx0, gx1, gy0, gy1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    if gy0 < 0.03 * h:
        return not_found(
            "no person found, and the only large region reaches the top edge: not a garment"
        )
    # Skin next to the garment: a neck above its top, or arms at its sides.
    neck = skin[
        max(0, gy0 - h // 8) : gy0 + h // 20, gx0 + (gx1 - gx0) // 4 : gx1 - (gx1 - gx0) // 4
    ]
    neck_frac = float(neck.mean()) if neck.size else 0.0
    if neck_frac < 0.05 and not _neck_opening(garment):
        return not_found(
            "no person found, and the largest region has neither a neck above it nor a "
            "neck opening: not a garment"
        )
    # Colour coherence: most of the garment is close to its median colour.
    med = np.median(lab[garment], axis=0)
    coherent = float((np.linalg.norm(lab[garment] - med, axis=1) < 25).mean())
    if coherent < 0.6:
        return not_found("no person found, and the largest region is not one garment colour")
    cxm = int((gx0 + gx1) // 2)
    left, right = central_runs(garment, cxm)
    widths = np.where(left >= 0, right - left, 0)
    rows = np.flatnonzero(widths > 0)
    lower = rows[rows >= (gy0 + gy1) // 2]
    if len(lower) < 3:
        return not_found("no person found, and the region has no torso shape")
    tl = float(np.median(left[lower]))
    tr = float(np.median(right[lower]))
    tw = tr - tl
    if tw < 0.2 * w:
        return not_found("no person found, and the region is too narrow for a torso")
    full = np.flatnonzero((left >= 0) & (left <= tl + 0.05 * tw) & (right >= tr - 0.05 * tw))
    top = float(full.min()) if len(full) else float(gy0)
    bottom = float(gy1)
    if bottom - top < 0.5 * tw:
        return not_found("no person found, and the region is too short for a torso")
    # A torso is solid down its middle (a pair of trouser legs is not) ...
    mid = garment[int(top) : int(bottom), max(0, cxm - 1) : cxm + 2].any(axis=1)
    if mid.mean() < 0.85:
        return not_found(
            "no person found, and the region is not solid down its middle: not a torso"
        )
    # ... and the skin above it is a neck, narrower than the shoulders (not a skin-coloured
    # shirt above trousers, nor a bare torso).
    above = skin[max(0, gy0 - h // 10) : gy0 + 1]
    neck_w = float(np.median(above.sum(axis=1))) if above.size else 0.0
    if neck_w > 0.6 * tw:
        return not_found("no person found, and the skin above the region is wider than a neck")
    # Surer with a neck (a worn garment) than with a neck opening only (0.65 at most).
    conf = float(np.clip(0.35 + 0.3 * coherent + 0.5 * neck_frac, 0.0, 0.85))
    sxf, syf = W / w, H / h
    chest = norm_box((tl * sxf, top * syf, tr * sxf, bottom * syf), W, H)
    mask = garment
    s = min(1.0, MASK_SIDE / max(W, H))
    mw, mh = max(1, round(W * s)), max(1, round(H * s))
    if mask.shape != (mh, mw):
        mask = (
            cv2.resize(mask.astype(np.uint8) * 255, (mw, mh), interpolation=cv2.INTER_LINEAR) >= 128
        )
    return Subject(True, "garment", conf, chest, mask_box(mask), None, mask)


def lab_of(rgb: Array) -> npt.NDArray[np.float32]:
    """OpenCV's 8-bit Lab of an RGB uint8 array (L 0..255, a and b centred on 128), float32."""
    import cv2

    return np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB), np.float32)


TYPICAL_SKIN_LAB = np.array([170.0, 145.0, 150.0], np.float32)
"""A typical skin colour in OpenCV's 8-bit Lab, when none can be sampled on the person."""
SHADE_WEIGHT = 0.35
"""Weight of lightness against chroma when a pixel is compared with skin and garment colours:
shading moves lightness across one fabric, much less its chroma."""


def colour_distance(lab: Array, ref: Array) -> npt.NDArray[np.float32]:
    """Per-pixel distance from ``lab`` (... x 3, OpenCV Lab) to the colour ``ref`` (3,),
    lightness weighted by SHADE_WEIGHT."""
    d = lab.astype(np.float32) - np.asarray(ref, np.float32)
    out: npt.NDArray[np.float32] = np.sqrt(
        (SHADE_WEIGHT * d[..., 0]) ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2
    )
    return out


def skin_not_garment(lab: Array, skin: Mask, skin_lab: Array, garment_lab: Array) -> Mask:
    """The pixels of ``skin`` (a skin-colour test's answer) that are nearer the person's skin
    colour ``skin_lab`` than the garment's own colour ``garment_lab`` (both OpenCV Lab): a
    pink, beige or tan shirt passes a skin test but stays garment."""
    out: Mask = np.zeros(skin.shape, bool)
    at = np.nonzero(skin)  # only the skin's pixels are compared
    px = lab[at]
    out[at] = colour_distance(px, skin_lab) < colour_distance(px, garment_lab)
    return out


def exposed_skin(skin: Mask, rgb: Array, seeds: Mask) -> Mask:
    """The parts of ``skin`` connected to ``seeds`` (where skin is surely exposed: the neck,
    the arms) without crossing an edge of ``rgb`` (Canny, on a lightly blurred grey copy):
    a top in the wearer's own skin tone is cut off from the arms by its seams and armholes,
    so it is not taken away with them."""
    import cv2

    grey = cv2.GaussianBlur(
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), (0, 0), 1.0
    )
    edges = cv2.dilate(cv2.Canny(grey, 40, 100), np.ones((3, 3), np.uint8)) > 0
    parts = skin & ~edges
    n, comp = cv2.connectedComponents(parts.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(skin)
    keep = np.zeros(n, bool)
    keep[np.unique(comp[parts & seeds])] = True
    keep[0] = False
    grown = cv2.dilate(keep[comp].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    out: Mask = grown & skin
    return out


def by_given_box(rgb: Array, box: Box) -> Subject:
    """The chest box is given and no person mask helps: estimate the garment mask inside it.

    GrabCut learns the garment from the box (its middle surely garment unless skin) and the
    rest from a margin around it (probably not garment: sleeves and shoulders of the same
    fabric may lie there, so only the margin's outer edge is surely background). Skin is
    removed where it is nearer the skin seen around the box (arms, neck; else a typical
    skin colour) than the garment's colour at the box's centre; the mask is kept inside
    the box."""
    import cv2

    H, W = rgb.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = 0.3 * (x1 - x0) * W, 0.3 * (y1 - y0) * H
    rx0, ry0 = max(0, int(x0 * W - mx)), max(0, int(y0 * H - my))
    rx1, ry1 = min(W, int(x1 * W + mx) + 1), min(H, int(y1 * H + my) + 1)
    crop = rgb[ry0:ry1, rx0:rx1]
    s = min(1.0, 140 / max(crop.shape[:2]))
    cw, ch = max(8, round(crop.shape[1] * s)), max(8, round(crop.shape[0] * s))
    roi = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA) if s < 1.0 else crop.copy()
    sx, sy = cw / (rx1 - rx0), ch / (ry1 - ry0)
    bx0, by0 = round((x0 * W - rx0) * sx), round((y0 * H - ry0) * sy)
    bx1, by1 = max(bx0 + 1, round((x1 * W - rx0) * sx)), max(by0 + 1, round((y1 * H - ry0) * sy))
    init = np.full((ch, cw), cv2.GC_PR_BGD, np.uint8)
    e = 2
    init[:e, :] = init[-e:, :] = init[:, :e] = init[:, -e:] = cv2.GC_BGD
    init[by0:by1, bx0:bx1] = cv2.GC_PR_FGD
    iw, ih = bx1 - bx0, by1 - by0
    inside = np.zeros((ch, cw), bool)
    inside[by0:by1, bx0:bx1] = True
    core = np.zeros((ch, cw), bool)
    core[by0 + ih // 4 : by1 - ih // 4, bx0 + iw // 4 : bx1 - iw // 4] = True
    lab = lab_of(roi)
    generic = skin_generic(cv2.cvtColor(roi, cv2.COLOR_RGB2YCrCb))
    garment_lab = np.median(lab[core], axis=0) if core.any() else lab[inside].mean(axis=0)
    around = generic & ~inside
    skin_lab = np.median(lab[around], axis=0) if around.sum() >= 20 else TYPICAL_SKIN_LAB
    skin = skin_not_garment(lab, generic, skin_lab, garment_lab)
    init[core & ~skin] = cv2.GC_FGD
    fg = grabcut(roi, init, 3) & ~skin
    fg &= inside
    if fg[inside].mean() < 0.2:  # GrabCut lost it: the box minus skin
        fg = inside & ~skin
    mask = paste_mask(fg, (rx0, ry0, rx1, ry1), (W, H), MASK_SIDE)
    return Subject(True, "given", 1.0, box, mask_box(mask), None, mask)
