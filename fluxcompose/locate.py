"""The subject: where the wearer's torso garment and chest are in a photo (DESIGN.md s. 10).

Every box is ``(x0, y0, x1, y1)`` normalised 0..1 on the upright image. Classical computer
vision only (Haar cascades shipped in ``cv2.data``, GrabCut, colour and skin models).

This module's public surface is the contract the rest of the package codes against:

- :class:`Subject` and :func:`locate` (detection, or a given chest box);
- :func:`parse_box` (``"x0,y0,x1,y1"`` -> a validated box, InputError otherwise);
- :func:`placement_point` (placement words -> a point in the chest box) and
  :func:`point_in_box` (that point on the image).

How :func:`locate` works (every step at a reduced scale; 1 MP in ~0.07 s on one core):

1. Faces: the frontal-face cascade (alt2) on a grey copy 320 px long; when nothing plausible
   turns up, each face-sized skin blob is searched again on a crop enlarged so it is 48 px
   across (small, far-away people). A face counts when its centre is skin-coloured and at
   least 1.15 face heights of the image lie below it (a head-only close-up has no torso).
2. "face": a crop around the body, resized so the face is 30 px wide, goes to GrabCut
   seeded by the body's geometry in face units (the head surely not garment, the middle of
   the chest surely garment); skin (a chromaticity model learnt from the face, which shading
   does not move) is removed; the garment is cut at its hem where the colour leaves the
   chest's. The chest box's sides are the garment's median extent across the chest rows
   (small gaps bridged, arms being skin and apart); its top is the shoulder line from the
   face, its bottom the hem, the waist from the face, or the image's edge.
3. "garment" (no face): on a copy 160 px long, what differs from both top corners' colours,
   minus skin, cut at the hem, is the garment when it is large, one colour, solid down its
   middle, with a neck (skin narrower than the shoulders) above it; the chest box runs from
   the shoulder line (where the garment first spans the torso) down, between the torso's
   sides below the sleeves.
4. Otherwise "none", with the reason. A confident wrong box is worse than none.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InputError

__all__ = [
    "PLACEMENT_WORDS",
    "Box",
    "Subject",
    "locate",
    "parse_box",
    "placement_point",
    "point_in_box",
]

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1), normalised 0..1, x0 < x1 and y0 < y1."""

Mask = npt.NDArray[np.bool_]
Array = npt.NDArray[Any]  # OpenCV images (its stubs do not keep dtypes)


@dataclass(frozen=True)
class Subject:
    """What :func:`locate` found on one upright image.

    ``mask`` is the garment mask (True on the garment's fabric) at ``mask.shape`` =
    (h, w) of the image it was computed on, possibly a reduced working size; use
    :meth:`garment_mask` for any other size. None when nothing was found.
    """

    found: bool
    method: str  # "face" | "garment" | "given" | "none"
    confidence: float  # 0..1
    chest_box: Box | None
    garment_box: Box | None
    face_box: Box | None
    mask: Mask | None = field(default=None, repr=False, compare=False)
    reason: str | None = None  # why nothing was found, for messages

    def garment_mask(self, size: tuple[int, int]) -> Mask | None:
        """The garment mask resized to ``size`` = (width, height), or None."""
        if self.mask is None:
            return None
        import cv2

        w, h = size
        if self.mask.shape == (h, w):
            return self.mask
        small = self.mask.astype(np.uint8) * 255
        big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        out: Mask = big >= 128
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"found", "method", "confidence", "chest_box", "garment_box", "face_box"}``
        (plus ``reason`` when not found); boxes rounded to 4 decimals."""

        def r(box: Box | None) -> list[float] | None:
            return None if box is None else [round(float(v), 4) + 0.0 for v in box]

        d: dict[str, Any] = {
            "found": bool(self.found),
            "method": self.method,
            "confidence": round(float(self.confidence), 4),
            "chest_box": r(self.chest_box),
            "garment_box": r(self.garment_box),
            "face_box": r(self.face_box),
        }
        if not self.found and self.reason:
            d["reason"] = self.reason
        return d


def parse_box(text: str | Box | list[float]) -> Box:
    """``"x0,y0,x1,y1"`` (normalised 0..1) or a 4-sequence -> a :data:`Box`.

    InputError, naming the problem, for anything else: not four numbers, a value
    outside 0..1, or x0 >= x1 or y0 >= y1.
    """
    if isinstance(text, str):
        parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(
                f"subject box {text!r} must be four numbers x0,y0,x1,y1 in 0..1"
            ) from None
    else:
        try:
            values = [float(v) for v in text]
        except (TypeError, ValueError):
            raise InputError(
                f"subject box {text!r} must be four numbers x0,y0,x1,y1 in 0..1"
            ) from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"subject box {text!r} must be four numbers x0,y0,x1,y1 in 0..1")
    x0, y0, x1, y1 = values
    if not all(0.0 <= v <= 1.0 for v in values):
        raise InputError(f"subject box {text!r} is outside 0..1 (normalised x0,y0,x1,y1)")
    if x0 >= x1 or y0 >= y1:
        raise InputError(f"subject box {text!r} needs x0 < x1 and y0 < y1")
    return (x0, y0, x1, y1)


PLACEMENT_WORDS: dict[str, tuple[float | None, float | None]] = {
    "middle": (None, None),
    "centre": (None, None),
    "center": (None, None),
    "chest": (None, None),
    "upper": (None, 0.25),
    "top": (None, 0.25),
    "lower": (None, 0.75),
    "bottom": (None, 0.75),
    "left": (0.25, None),
    "right": (0.75, None),
}
"""Each known word's (fx, fy) in the chest box; None leaves that axis at the middle."""


def placement_point(placement: object) -> tuple[tuple[float, float], list[str]]:
    """The point ``(fx, fy)`` (0..1 fractions of the chest box) that placement words name,
    and the words that were not understood (they mean the middle; callers warn).

    ``"middle"``/``"centre"``/``"center"`` -> (0.5, 0.5); ``"upper"``/``"top"`` -> fy 0.25;
    ``"lower"``/``"bottom"`` -> fy 0.75; ``"left"``/``"right"`` (as seen in the image) ->
    fx 0.25/0.75; combinations such as ``"upper left"`` -> (0.25, 0.25).
    """
    fx, fy = 0.5, 0.5
    unknown: list[str] = []
    if not isinstance(placement, str):
        return (fx, fy), unknown
    for word in re.findall(r"[a-z]+", placement.lower()):
        if word in ("the", "of", "in", "on", "at", "and"):
            continue
        if word not in PLACEMENT_WORDS:
            unknown.append(word)
            continue
        wx, wy = PLACEMENT_WORDS[word]
        if wx is not None:
            fx = wx
        if wy is not None:
            fy = wy
    return (fx, fy), unknown


def point_in_box(box: Box, fx: float, fy: float) -> tuple[float, float]:
    """The point at fractions ``(fx, fy)`` (0..1) of ``box``, normalised 0..1 on the image."""
    x0, y0, x1, y1 = box
    return (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))


# --------------------------------------------------------------------------- detection
#
# Working scales: faces are searched on a grey copy whose long side is DETECT_SIDE (and, when
# nothing plausible turns up, around skin blobs enlarged to SMALL_FACE pixels); the garment is
# segmented on a crop around the body, resized so that the face is about SEG_FACE pixels wide,
# or (no face) on a copy GARMENT_SIDE long. The stored mask lives on a copy of the whole image
# whose long side is at most MASK_SIDE.

DETECT_SIDE = 320
SMALL_FACE = 48
MAX_BLOBS = 5  # skin blobs searched again for a small face, largest first
SEG_FACE = 30
MASK_SIDE = 480
GARMENT_SIDE = 160

# Body geometry in face-box units (the Haar box: brows to chin, square), measured on
# grace_hopper.jpg and on tests/people.py's renders.
SHOULDER_BELOW_FACE = 0.12  # shoulder line = face bottom + this x face height
WAIST_BELOW_FACE = 2.4  # waist = face bottom + this x face height
CHEST_WIDTH = 2.2  # chest box width = this x face width
GRABCUT_SEED = 20240611
HEM_DELTA = 28.0  # Lab distance (OpenCV 8-bit units) that ends the garment at its hem

# One classifier per thread: detectMultiScale keeps per-call scratch state in the object,
# so a classifier shared by batch's worker threads fails OpenCV's own assertions.
_local = threading.local()


def _cascade(name: str) -> Any:
    import cv2

    cache: dict[str, Any] = _local.__dict__.setdefault("cascades", {})
    c = cache.get(name)
    if c is None:
        c = cv2.CascadeClassifier(cv2.data.haarcascades + f"haarcascade_{name}.xml")  # type: ignore[attr-defined]
        if c.empty():  # pragma: no cover - the wheel ships them
            raise RuntimeError(f"OpenCV's {name} cascade is missing")
        cache[name] = c
    return c


def _as_rgb(image: Any) -> Array:
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


def _resize_long(arr: npt.NDArray[Any], side: int) -> tuple[npt.NDArray[Any], float]:
    """``arr`` shrunk (never enlarged) so its long side is at most ``side``; and the scale."""
    import cv2

    h, w = arr.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return arr, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA), s


def _skin_generic(ycrcb: Array) -> Mask:
    """A broad YCrCb skin test (Cr 133..180, Cb 77..130, not too dark; after Chai and Ngan)."""
    y = ycrcb[..., 0]
    cr = ycrcb[..., 1]
    cb = ycrcb[..., 2]
    out: Mask = (cr >= 133) & (cr <= 180) & (cb >= 77) & (cb <= 130) & (y >= 40)
    return out


def _chroma(rgb: Array) -> tuple[Array, Array, Array]:
    """Shading-invariant chromaticity r = R/S, g = G/S, and the brightness S = R+G+B (0..765)."""
    f = rgb.astype(np.float32)
    s = f.sum(axis=-1) + 1.0
    return f[..., 0] / s, f[..., 1] / s, s


@dataclass(frozen=True)
class _Skin:
    """A skin colour model: mean and spread of the chromaticity (r, g), which shading does
    not move (a shaded red shirt has the chroma of skin in YCrCb, not in r, g)."""

    r: float
    g: float
    sr: float
    sg: float

    def test(self, rgb: Array) -> Mask:
        """True where ``rgb`` (H x W x 3 uint8) is this skin."""
        r, g, s = _chroma(rgb)
        dr = (r - self.r) / self.sr
        dg = (g - self.g) / self.sg
        out: Mask = (dr * dr + dg * dg <= 9.0) & (s >= 45.0)
        return out


GENERIC_SKIN = _Skin(0.45, 0.31, 0.04, 0.015)


def _skin_from_face(rgb_face: Array) -> tuple[_Skin, float]:
    """The skin model of a face crop (RGB, its centre), and the crop's generic-skin fraction."""
    import cv2

    h, w = rgb_face.shape[:2]
    core = np.ascontiguousarray(rgb_face[h // 4 : h - h // 8, w // 5 : w - w // 5])
    if core.size == 0:
        return GENERIC_SKIN, 0.0
    generic = _skin_generic(cv2.cvtColor(core, cv2.COLOR_RGB2YCrCb))
    frac = float(generic.mean())
    if generic.sum() < 10:
        return GENERIC_SKIN, frac
    r, g, _ = _chroma(core[generic])
    mr, mg = float(np.median(r)), float(np.median(g))
    sr = float(np.clip(r.std() * 1.2, 0.012, 0.04))
    sg = float(np.clip(g.std() * 1.2, 0.008, 0.025))
    return _Skin(mr, mg, sr, sg), frac


@dataclass(frozen=True)
class _Face:
    x: float  # pixels of the full image
    y: float
    w: float
    h: float
    skin: float  # generic-skin fraction of its centre
    score: float


def _find_faces(rgb: Array) -> tuple[list[_Face], int]:
    """Plausible frontal faces, best first (pixel boxes of the full image), and how many
    skin-coloured faces were rejected for having no torso in frame below them.

    Two passes: the whole image at DETECT_SIDE (faces of at least ~5 % of the long side);
    then, when that finds nothing plausible, skin-coloured blobs of face size, each searched
    again on a crop of the full image enlarged so the blob is SMALL_FACE pixels across (small
    and far-away people, and faces the first pass missed on busy backgrounds).
    """
    import cv2

    small, s = _resize_long(rgb, DETECT_SIDE)
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    boxes: list[tuple[float, ...]] = [
        (x / s, y / s, w / s, h / s) for x, y, w, h in _detect(grey, 16, None)
    ]
    faces, headless = _plausible(boxes, rgb)
    if faces:
        return faces, headless
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    skin = _skin_generic(ycc).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(skin, connectivity=8)
    long_side = max(small.shape[:2])
    blobs = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < 10 or max(w, h) > 0.25 * long_side:
            continue
        if not 0.5 <= h / w <= 3.0 or area < 0.3 * w * h:
            continue
        blobs.append((area, x, y, w, h))
    blobs.sort(reverse=True)
    H, W = rgb.shape[:2]
    boxes = []
    for _, x, y, w, h in blobs[:MAX_BLOBS]:
        d = max(w, h) / s  # full-image pixels
        cx, cy = (x + w / 2) / s, (y + h / 2) / s
        x0, y0 = max(0, int(cx - 1.3 * d)), max(0, int(cy - 1.3 * d))
        x1, y1 = min(W, int(cx + 1.3 * d) + 1), min(H, int(cy + 1.3 * d) + 1)
        z = SMALL_FACE / d
        crop = rgb[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) * z)), max(1, round((y1 - y0) * z)))
        if min(size) < 24:
            continue
        interp = cv2.INTER_AREA if z < 1 else cv2.INTER_LINEAR
        g = cv2.cvtColor(cv2.resize(crop, size, interpolation=interp), cv2.COLOR_RGB2GRAY)
        lo, hi = max(20, round(0.6 * SMALL_FACE)), round(1.7 * SMALL_FACE)
        for bx, by, bw, bh in _detect(g, lo, hi, 1.2):
            boxes.append((x0 + bx / z, y0 + by / z, bw / z, bh / z))
    more, headless2 = _plausible(boxes, rgb)
    return more, headless + headless2


def _detect(
    grey: Array, min_side: int, max_side: int | None, step: float = 1.15
) -> list[tuple[float, ...]]:
    """Frontal faces on a grey image (alt2 cascade: fewer false faces than the default one),
    as (x, y, w, h) pixel boxes, with window sides from ``min_side`` to ``max_side``."""
    kw: dict[str, Any] = {"minSize": (min_side, min_side)}
    if max_side is not None:
        kw["maxSize"] = (max_side, max_side)
    found = _cascade("frontalface_alt2").detectMultiScale(grey, step, 3, **kw)
    return [tuple(float(v) for v in b) for b in found]


def _plausible(boxes: list[tuple[float, ...]], rgb: Array) -> tuple[list[_Face], int]:
    """Faces (full-image pixel boxes) that are skin-coloured and have a torso in frame below
    them, best first; and the number of skin-coloured faces rejected for the latter."""

    H, W = rgb.shape[:2]
    out = []
    head_only = 0
    for x, y, w, h in boxes:
        crop = rgb[int(y) : int(y + h), int(x) : int(x + w)]
        if crop.size == 0:
            continue
        _, frac = _skin_from_face(crop)
        if frac < 0.3:
            continue
        if y + h + 1.15 * h > H:  # no torso in frame (a head-only close-up)
            head_only += 1
            continue
        cx = (x + w / 2) / W
        score = (w * h) / (W * H) * (1.0 - 0.5 * abs(cx - 0.5)) * frac
        out.append(_Face(x, y, w, h, frac, score))
    out.sort(key=lambda f: -f.score)
    return out, head_only


def _central_runs(
    mask: Mask, cx: int, bridge: int = 0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each row, the [left, right) of the run of True containing column ``cx``
    (or the nearest run within a few pixels); (-1, -1) where there is none. Gaps of at most
    ``bridge`` pixels inside a row (a shirt's V between a jacket's lapels) are bridged."""
    import cv2

    if bridge > 0:
        k = np.ones((1, bridge + 1), np.uint8)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, k).astype(bool)
    h, w = mask.shape
    left = np.full(h, -1, np.int64)
    right = np.full(h, -1, np.int64)
    cx = int(np.clip(cx, 0, w - 1))
    tol = max(2, w // 40)
    for r in range(h):
        row = mask[r]
        c = cx
        if not row[c]:
            near = np.flatnonzero(row[max(0, cx - tol) : cx + tol + 1])
            if not len(near):
                continue
            c = max(0, cx - tol) + int(near[np.argmin(np.abs(near + max(0, cx - tol) - cx))])
        off = np.flatnonzero(~row[:c])
        lo = int(off[-1]) + 1 if len(off) else 0
        off = np.flatnonzero(~row[c:])
        hi = c + int(off[0]) if len(off) else w
        left[r], right[r] = lo, hi
    return left, right


def _cut_at_hem(
    fg: Mask, rgb: Array, cx: int, core: tuple[int, int], threshold: float = HEM_DELTA
) -> tuple[Mask, int | None]:
    """Cut ``fg`` at the torso garment's hem (trousers, a skirt, a belt of skin below it).

    The garment's colours are learnt on the core rows ``core`` = (first, last): three Lab
    clusters, plus "other" for anything more than ``threshold`` from all of them. Scanning
    down, a window of rows (half the core's height) whose mix of those colours differs from
    the core's (total variation > 0.45) is off the garment: stripes keep their mix, trousers
    of one of the stripes' colours do not. Only the middle of each row's central run counts.
    Returns the cut mask and the hem row (None when the garment runs to the bottom)."""
    import cv2

    h, w = fg.shape
    c0, c1 = max(0, core[0]), min(h, core[1])
    if c1 - c0 < 2:
        return fg, None
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    left, right = _central_runs(fg, cx)
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
    d = np.linalg.norm(lab[:, :, None, :] - centres[None, None, :, :], axis=3)
    # Clusters closer than ``threshold`` are shades of one colour: one group.
    group = [0, 1, 2]
    for i in range(3):
        for j in range(i):
            if np.linalg.norm(centres[i] - centres[j]) <= threshold:
                group = [group[j] if g == group[i] else g for g in group]
    label = np.where(d.min(axis=2) <= threshold, np.asarray(group)[d.argmin(axis=2)], 3)
    counts = np.stack([((label == b) & inner).sum(axis=1) for b in range(4)], axis=1)
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


def _grabcut(img: Array, init: Array, iters: int = 3) -> Mask:
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


def _clean(mask: Mask, seed: tuple[int, int] | None = None, open_px: int = 1) -> Mask:
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


def _paste_mask(
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


def _norm(box: tuple[float, float, float, float], W: float, H: float) -> Box:
    x0, y0, x1, y1 = box
    return (
        float(np.clip(x0 / W, 0.0, 1.0)),
        float(np.clip(y0 / H, 0.0, 1.0)),
        float(np.clip(x1 / W, 0.0, 1.0)),
        float(np.clip(y1 / H, 0.0, 1.0)),
    )


def _mask_box(mask: Mask) -> Box | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    h, w = mask.shape
    return (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)


def _none(reason: str) -> Subject:
    return Subject(False, "none", 0.0, None, None, None, None, reason=reason)


def _by_face(rgb: Array, face: _Face) -> Subject | None:
    """Chest box and garment mask from a face: geometry from its size, refined by GrabCut."""
    import cv2

    H, W = rgb.shape[:2]
    fx, fy, fw, fh = face.x, face.y, face.w, face.h
    cx = fx + fw / 2
    fb = fy + fh
    # The geometric estimate, in full-image pixels.
    g_top = fb + SHOULDER_BELOW_FACE * fh
    g_bot = min(float(H), fb + WAIST_BELOW_FACE * fh)
    g_half = CHEST_WIDTH * fw / 2
    if g_bot - g_top < 0.5 * fh:
        return None
    # ROI around the body, resized so that the face is SEG_FACE pixels wide.
    rx0 = max(0, int(cx - 1.9 * fw))
    rx1 = min(W, int(cx + 1.9 * fw) + 1)
    ry0 = max(0, int(fy - 0.1 * fh))
    ry1 = min(H, int(fb + 3.0 * fh) + 1)
    s = min(1.0, SEG_FACE / fw)
    crop = rgb[ry0:ry1, rx0:rx1]
    cw, ch = max(8, round((rx1 - rx0) * s)), max(8, round((ry1 - ry0) * s))
    roi = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA) if s < 1.0 else crop.copy()
    sx, sy = cw / (rx1 - rx0), ch / (ry1 - ry0)

    def X(v: float) -> int:
        return int(np.clip(round((v - rx0) * sx), 0, cw - 1))

    def Y(v: float) -> int:
        return int(np.clip(round((v - ry0) * sy), 0, ch - 1))

    skin_model, _ = _skin_from_face(roi[Y(fy) : Y(fb) + 1, X(fx) : X(fx + fw) + 1])
    skin = skin_model.test(roi)

    init = np.full((ch, cw), cv2.GC_PR_BGD, np.uint8)
    # Probably garment: the torso's box from the geometry.
    init[Y(g_top) : Y(g_bot) + 1, X(cx - g_half) : X(cx + g_half) + 1] = cv2.GC_PR_FGD
    # Surely garment: a core in the middle of the chest, where no skin is.
    core = np.zeros((ch, cw), bool)
    core[
        Y(fb + 0.6 * fh) : Y(min(g_bot, fb + 1.8 * fh)) + 1,
        X(cx - 0.45 * fw) : X(cx + 0.45 * fw) + 1,
    ] = True
    init[core & ~skin] = cv2.GC_FGD
    # Surely not: the head, and the band beside the head above the shoulders.
    head = np.zeros((ch, cw), np.uint8)
    cv2.ellipse(
        head,
        (X(cx), Y(fy + fh * 0.5)),
        (max(1, round(fw * 0.6 * sx)), max(1, round(fh * 0.7 * sy))),
        0,
        0,
        360,
        1,
        -1,
    )
    init[head > 0] = cv2.GC_BGD
    init[: Y(fb - 0.1 * fh), : X(cx - 1.0 * fw)] = cv2.GC_BGD
    init[: Y(fb - 0.1 * fh), X(cx + 1.0 * fw) :] = cv2.GC_BGD
    fg = _grabcut(roi, init, 3)
    fg &= ~skin
    seed = (Y(fb + 1.2 * fh), X(cx))
    fg = _clean(fg, seed if fg[seed] else None, open_px=1)
    fg, hem = _cut_at_hem(fg, roi, X(cx), (Y(fb + 0.5 * fh), Y(fb + 0.9 * fh)))
    area = float(fg.mean())
    if area < 0.05:
        return None

    # Refine the chest box's sides with the garment's central run in the chest band.
    left, right = _central_runs(fg, X(cx), bridge=round(0.2 * fw * sx))
    band = np.arange(Y(fb + 0.9 * fh), Y(g_bot) + 1)
    band = band[(band >= 0) & (band < ch) & (left[band] >= 0)]
    conf = 0.5 + 0.4 * face.skin
    x0, x1 = cx - g_half, cx + g_half
    if len(band) < 3:
        return None
    ml = float(np.median(left[band])) / sx + rx0
    mr = float(np.median(right[band])) / sx + rx0
    # The garment's width decides; the face's size only rules out what no torso could be
    # (the Haar box's scale is off by up to ~25 %, more on small faces).
    if not (0.45 * 2 * g_half <= mr - ml <= 1.6 * 2 * g_half and ml < cx < mr):
        return None
    x0, x1 = ml, mr
    # A torso is under its face: when one side reaches much further than the other, one of
    # them is wrong (an arm merged in, or the garment split); keep the side whose reach is
    # closer to the face's estimate, mirrored.
    reach_l, reach_r = cx - ml, mr - cx
    if max(reach_l, reach_r) > 1.6 * min(reach_l, reach_r):
        half = min((reach_l, reach_r), key=lambda v: abs(v - g_half))
        x0, x1 = cx - half, cx + half
        conf -= 0.2
    # The bottom: the garment's lowest row wide enough to be torso, capped by the waist.
    rows = np.flatnonzero((right - left) >= 0.5 * (x1 - x0) * sx)
    y1 = g_bot
    if hem is not None:
        y1 = min(y1, max(hem / sy + ry0, g_top + 0.8 * fh))
    elif len(rows):
        low = float(rows.max() + 1) / sy + ry0
        if low < g_bot - 0.3 * fh:
            y1 = max(low, g_top + 0.8 * fh)
    mask = _paste_mask(fg, (rx0, ry0, rx1, ry1), (W, H), MASK_SIDE)
    chest = _norm((x0, g_top, x1, y1), W, H)
    gbox = _mask_box(mask)
    fbox = _norm((fx, fy, fx + fw, fy + fh), W, H)
    return Subject(True, "face", float(np.clip(conf, 0.0, 1.0)), chest, gbox, fbox, mask)


def _by_garment(rgb: Array) -> Subject:
    """No face: segment a garment against the background's border colours (a headless studio
    shot), remove skin, and read the chest box off the garment's shape."""
    import cv2

    H, W = rgb.shape[:2]
    small, _ = _resize_long(rgb, GARMENT_SIDE)
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
        return _none("no face found, and the background is too busy to find a garment without one")
    thr = max(18.0, 2.5 * spread)
    fg = d > thr
    skin = _skin_generic(ycc)
    garment = _clean(fg & ~skin, None, open_px=1)
    area = float(garment.mean())
    if area < 0.12:
        return _none("no face or garment found (nothing large stands out from the background)")
    ys, xs = np.nonzero(garment)
    gx0, gx1, gy0, gy1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    # Trousers or a skirt below the shirt stand out from the background too: cut at the hem.
    span = gy1 - gy0
    garment, _ = _cut_at_hem(
        garment, small, int((gx0 + gx1) // 2), (gy0 + span // 5, gy0 + span * 2 // 5)
    )
    garment = _clean(garment, None, open_px=0)
    ys, xs = np.nonzero(garment)
    gx0, gx1, gy0, gy1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    if gy0 < 0.03 * h:
        return _none("no face found, and the only large region reaches the top edge: not a garment")
    # Skin next to the garment: a neck above its top, or arms at its sides.
    neck = skin[
        max(0, gy0 - h // 8) : gy0 + h // 20, gx0 + (gx1 - gx0) // 4 : gx1 - (gx1 - gx0) // 4
    ]
    neck_frac = float(neck.mean()) if neck.size else 0.0
    if neck_frac < 0.05:
        return _none(
            "no face found, and no skin (neck) above the largest region: not a worn garment"
        )
    # Colour coherence: most of the garment is close to its median colour.
    med = np.median(lab[garment], axis=0)
    coherent = float((np.linalg.norm(lab[garment] - med, axis=1) < 25).mean())
    if coherent < 0.6:
        return _none("no face found, and the largest region is not one garment colour")
    cxm = int((gx0 + gx1) // 2)
    left, right = _central_runs(garment, cxm)
    widths = np.where(left >= 0, right - left, 0)
    rows = np.flatnonzero(widths > 0)
    lower = rows[rows >= (gy0 + gy1) // 2]
    if len(lower) < 3:
        return _none("no face found, and the region has no torso shape")
    tl = float(np.median(left[lower]))
    tr = float(np.median(right[lower]))
    tw = tr - tl
    if tw < 0.2 * w:
        return _none("no face found, and the region is too narrow for a torso")
    full = np.flatnonzero((left >= 0) & (left <= tl + 0.05 * tw) & (right >= tr - 0.05 * tw))
    top = float(full.min()) if len(full) else float(gy0)
    bottom = float(gy1)
    if bottom - top < 0.5 * tw:
        return _none("no face found, and the region is too short for a torso")
    # A torso is solid down its middle (a pair of trouser legs is not) ...
    mid = garment[int(top) : int(bottom), max(0, cxm - 1) : cxm + 2].any(axis=1)
    if mid.mean() < 0.85:
        return _none("no face found, and the region is not solid down its middle: not a torso")
    # ... and the skin above it is a neck, narrower than the shoulders (not a skin-coloured
    # shirt above trousers, nor a bare torso).
    above = skin[max(0, gy0 - h // 10) : gy0 + 1]
    neck_w = float(np.median(above.sum(axis=1))) if above.size else 0.0
    if neck_w > 0.6 * tw:
        return _none("no face found, and the skin above the region is wider than a neck")
    conf = float(np.clip(0.35 + 0.3 * coherent + 0.5 * neck_frac, 0.0, 0.85))
    sxf, syf = W / w, H / h
    chest = _norm((tl * sxf, top * syf, tr * sxf, bottom * syf), W, H)
    mask = garment
    s = min(1.0, MASK_SIDE / max(W, H))
    mw, mh = max(1, round(W * s)), max(1, round(H * s))
    if mask.shape != (mh, mw):
        mask = (
            cv2.resize(mask.astype(np.uint8) * 255, (mw, mh), interpolation=cv2.INTER_LINEAR) >= 128
        )
    return Subject(True, "garment", conf, chest, _mask_box(mask), None, mask)


def _given(rgb: Array, box: Box) -> Subject:
    """The chest box is given: estimate the garment mask inside it. GrabCut learns the garment
    from the box (its middle surely garment unless skin) and the rest from a margin around
    it (probably not garment: sleeves and shoulders of the same fabric may lie there, so
    only the margin's outer edge is surely background); skin is removed; the mask is then
    kept inside the box."""
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
    ycc = cv2.cvtColor(roi, cv2.COLOR_RGB2YCrCb)
    skin = _skin_generic(ycc)
    core = np.zeros((ch, cw), bool)
    core[by0 + ih // 4 : by1 - ih // 4, bx0 + iw // 4 : bx1 - iw // 4] = True
    init[core & ~skin] = cv2.GC_FGD
    fg = _grabcut(roi, init, 3) & ~skin
    inside = np.zeros_like(fg)
    inside[by0:by1, bx0:bx1] = True
    fg &= inside
    if fg[inside].mean() < 0.2:  # GrabCut lost it: the box minus skin
        fg = inside & ~skin
    mask = _paste_mask(fg, (rx0, ry0, rx1, ry1), (W, H), MASK_SIDE)
    return Subject(True, "given", 1.0, box, _mask_box(mask), None, mask)


def locate(image: Any, *, subject_box: Box | None = None) -> Subject:
    """Find the wearer's torso garment in ``image`` (an H x W x 3 uint8 RGB array, or a
    PIL image, upright). With ``subject_box`` the chest box is given (``method`` "given")
    and only the garment mask is estimated inside it.

    Order: a frontal face (Haar cascade, skin-verified, with torso room below) gives the
    body's scale ("face"); else a garment standing out from a plain background with skin
    (a neck) above it ("garment"); else ``found`` is False with a reason ("none").
    """
    rgb = _as_rgb(image)
    H, W = rgb.shape[:2]
    if subject_box is not None:
        return _given(rgb, parse_box(subject_box))
    if min(H, W) < 32:
        return _none("the image is too small to find a person in")
    faces, head_only = _find_faces(rgb)
    for face in faces[:2]:
        subject = _by_face(rgb, face)
        if subject is not None:
            return subject
    if faces:
        return _none("a face was found, but no garment could be told apart below it")
    subject = _by_garment(rgb)
    if not subject.found and head_only:
        return _none("a face was found, but no torso is in frame below it (a head-only close-up)")
    return subject
