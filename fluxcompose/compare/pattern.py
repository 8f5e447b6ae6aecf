"""Finding the pattern (the print) in the output by its features: SIFT, Lowe's ratio test
and a RANSAC homography (DESIGN.md section 8), against the pattern at several sizes.

A print 0.1 of the output wide is ~80 pixels across; against a 512-pixel pattern most of
the pattern's keypoints have no counterpart at that size. So the pattern is matched as a
pyramid (:data:`PATTERN_SIDES`), and the output is searched at its own resolution, in a
region (where it changed, around the chest) rather than shrunk as a whole. The pattern's
features are computed once per pyramid level and kept by content hash across calls.

Boxes and corners are normalised 0..1 in the output's frame; ``[x0, y0, x1, y1]``;
regions are normalised the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..prints import PrintLayer, print_layer
from .imaging import Array, ContentCache, ImageLike, fit_side, gray8, resize, rgb_array
from .metrics import phash

__all__ = [
    "MIN_INLIERS",
    "PatternModel",
    "locate_pattern",
    "not_found",
    "pattern_layer",
    "pattern_model",
]

PATTERN_SIDES = (512, 256, 128)  # long sides of the pattern's pyramid levels, matched in turn
PRINT_WORK_SIDE = 256  # long side of the pattern when finding its design's box
SCENE_MIN_SIDE = 768  # an output smaller than this (long side) is upsampled to it for matching
SCENE_MAX_PIXELS = 1_600_000  # a search region larger than this is shrunk to it
SCENE_QUICK_SIDE = 640  # long side (pixels) of the region in the first, quick look
SCENE_FEATURES = 4000  # keypoints kept in the searched region
PATTERN_FEATURES = 1500  # keypoints kept per pyramid level
RATIO_TEST = 0.75  # Lowe's ratio test
MIN_INLIERS = 10  # RANSAC inliers needed to call a pattern found
ENOUGH_INLIERS = 40  # a level with this many inliers ends the search early
RANSAC_REPROJ = 4.0  # pixels at the matching scale
CACHE_SIZE = 16  # patterns whose features are kept (by content hash)


def _detector(features: int = SCENE_FEATURES) -> tuple[Any, int]:
    """SIFT with L2 matching, or ORB with Hamming matching when SIFT is unavailable;
    keeping at most ``features`` keypoints."""
    if hasattr(cv2, "SIFT_create"):
        try:
            return cv2.SIFT_create(nfeatures=features), cv2.NORM_L2
        except cv2.error:
            pass
    return cv2.ORB.create(nfeatures=features), cv2.NORM_HAMMING


def not_found(inliers: int = 0, **extra: Any) -> dict[str, Any]:
    """A pattern result saying "not found" (``inliers`` the best count seen)."""
    return {
        "found": False,
        "inliers": int(inliers),
        "box": None,
        "width_fraction": None,
        "center_offset": None,
        "corners": None,
        "design_box": None,
        **extra,
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
    pat_rgb = pattern if isinstance(pattern, np.ndarray) else rgb_array(pattern)
    work = fit_side(pat_rgb.shape[1], pat_rgb.shape[0], PRINT_WORK_SIDE)
    small = np.ascontiguousarray(resize(rgb_array(pat_rgb), work))
    return print_layer(small, unmix=False)


@dataclass(frozen=True)
class _Level:
    """One pyramid level: its size (w, h) in pixels, keypoint positions (n x 2, float32,
    pixels of this level) and descriptors (n x d)."""

    size: tuple[int, int]
    points: Array
    descriptors: Array | None


@dataclass(frozen=True)
class PatternModel:
    """What matching needs of a pattern, computed once: its design (:func:`pattern_layer`)
    and its features at each pyramid level (largest first). ``detector`` names the
    feature type ("SIFT" or "ORB"); ``phash`` is the pattern's :func:`~.metrics.phash`.
    ``derived`` holds what the modules below derive from the model (the colour search's
    design), kept with it: computed on first use, by key."""

    layer: PrintLayer
    levels: tuple[_Level, ...]
    detector: str
    phash: int = 0
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


_MODELS: ContentCache[PatternModel] = ContentCache(CACHE_SIZE)


def pattern_model(pattern: ImageLike, layer: PrintLayer | None = None) -> PatternModel:
    """The :class:`PatternModel` of ``pattern``, kept by content (its own pixels) and
    detector, so a batch with one pattern computes its features once (the shrink to the
    largest level included). ``layer`` reuses a :func:`pattern_layer` already computed."""
    rgb = rgb_array(pattern)
    det, _ = _detector(PATTERN_FEATURES)
    kind = type(det).__name__

    def build() -> PatternModel:
        top = resize(rgb, fit_side(rgb.shape[1], rgb.shape[0], PATTERN_SIDES[0]))
        levels: list[_Level] = []
        grey = gray8(top)
        for side in PATTERN_SIDES:
            size = fit_side(grey.shape[1], grey.shape[0], side)
            if levels and size == levels[-1].size:
                continue
            kps, des = det.detectAndCompute(resize(grey, size), None)
            pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
            levels.append(_Level(size, pts, des))
        return PatternModel(layer or pattern_layer(top), tuple(levels), kind, phash(rgb))

    return _MODELS.get(rgb, kind, build)


def _pixel_region(region: Sequence[float] | None, w: int, h: int) -> tuple[int, int, int, int]:
    """A normalised region as whole pixels (x0, y0, x1, y1) inside a w x h image."""
    if region is None:
        return 0, 0, w, h
    x0 = min(max(0, int(np.floor(region[0] * w))), w - 1)
    y0 = min(max(0, int(np.floor(region[1] * h))), h - 1)
    x1 = max(x0 + 1, min(w, int(np.ceil(region[2] * w))))
    y1 = max(y0 + 1, min(h, int(np.ceil(region[3] * h))))
    return x0, y0, x1, y1


def _scene_scale(full: tuple[int, int], crop: tuple[int, int]) -> float:
    """Matching scale for a crop of a ``full``-size output: 1 (native), up for small
    outputs (SIFT then sees small prints), down only for a region past SCENE_MAX_PIXELS."""
    s = max(1.0, SCENE_MIN_SIDE / max(full))
    area = crop[0] * crop[1] * s * s
    if area > SCENE_MAX_PIXELS:
        s *= float(np.sqrt(SCENE_MAX_PIXELS / area))
    return s


def _integral_bytes(des: Array) -> bool:
    """Whether descriptors are float32 holding whole numbers 0..255, as OpenCV's SIFT
    stores them (its descriptor is rounded to bytes)."""
    return bool(
        des.dtype == np.float32
        and des.size
        and float(des.min()) >= 0.0
        and float(des.max()) <= 255.0
        and np.array_equal(des, np.rint(des))
    )


def _nearest_two(query: Array, train: Array) -> tuple[Array, Array, Array]:
    """For each query descriptor, the nearest train descriptor's index and its L2
    distance, and the second-nearest distance; exactly what cv2.BFMatcher(NORM_L2)
    .knnMatch(query, train, k=2) gives for byte-valued float descriptors (at least two
    train descriptors), from one matrix product instead of a loop over the pairs.

    Exact, not approximate: with whole numbers 0..255 in 128 (or fewer) dimensions every
    squared distance, dot product and squared norm is a whole number below 2**24, so
    float32 holds each of them, and every partial sum, exactly, in any order of
    summation; the distances are then the same float32 square roots OpenCV takes. Ties
    go to the lower train index, as OpenCV keeps the first of equal distances.
    """
    # OpenCV's product (its own threads, as set by cv2.setNumThreads), not numpy's: a
    # multi-threaded BLAS would spend more CPU than it saves on a product this small.
    dots = cv2.gemm(query, train, 1.0, np.empty((0, 0), np.float32), 0.0, flags=cv2.GEMM_2_T)
    sq = (query * query).sum(axis=1)[:, None] + (train * train).sum(axis=1)[None, :]
    dist = np.sqrt(sq - 2.0 * dots)  # stays float32 (a Python float scalar is weak)
    rows = np.arange(len(query))
    first = np.argmin(dist, axis=1)
    d0 = dist[rows, first]
    dist[rows, first] = np.inf
    return first, d0, dist.min(axis=1)


def _match(level: _Level, scene_pts: Array, scene_des: Array, norm: int) -> tuple[Array, int]:
    """Homography (3 x 3, level pixels to scene pixels) of the best RANSAC fit, and its
    inlier count; (None-like empty array, count) when there is none."""
    if level.descriptors is None or len(level.points) < 2:
        return np.empty(0), 0
    # Lowe's ratio test, then one pattern point per scene point: many pattern points
    # piling onto one scene point is how degenerate (collapsed) homographies arise.
    # ``best``: scene index -> (pattern index, distance), in the order first claimed.
    best: dict[int, tuple[int, float]] = {}
    des = level.descriptors
    if (
        norm == cv2.NORM_L2
        and len(scene_des) >= 2
        and des.shape[1] <= 128
        and _integral_bytes(des)
        and _integral_bytes(scene_des)
    ):
        nearest, d0, d1 = _nearest_two(des, scene_des)
        # The ratio test in double precision, as on the matches' Python floats.
        passed = d0.astype(np.float64) < RATIO_TEST * d1.astype(np.float64)
        for q in np.flatnonzero(passed).tolist():
            t, d = int(nearest[q]), float(d0[q])
            prev = best.get(t)
            if prev is None or d < prev[1]:
                best[t] = (q, d)
    else:
        for m in cv2.BFMatcher(norm).knnMatch(des, scene_des, k=2):
            if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance:
                prev = best.get(m[0].trainIdx)
                if prev is None or m[0].distance < prev[1]:
                    best[m[0].trainIdx] = (m[0].queryIdx, m[0].distance)
    if len(best) < 4:
        return np.empty(0), 0
    src = level.points[[q for q, _ in best.values()]].reshape(-1, 1, 2)
    dst = scene_pts[list(best)].reshape(-1, 1, 2)
    H, mask = cv2.findHomography(
        src, dst, cv2.RANSAC, RANSAC_REPROJ, maxIters=2000, confidence=0.995
    )
    if H is None or mask is None:
        return np.empty(0), 0
    return H, int(mask.sum())


def _fit(scene8: Array, model: PatternModel, min_inliers: int) -> tuple[int, Array, _Level] | int:
    """The best homography of a pyramid level onto ``scene8`` (uint8 grey): (inliers,
    H from level pixels to scene pixels, level), or the most inliers seen when no level
    reaches ``min_inliers`` with a sane quad. Stops at a level with ENOUGH_INLIERS."""
    det, norm = _detector()
    kps, des = det.detectAndCompute(scene8, None)
    if des is None or len(kps) < 2:
        return 0
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    best: tuple[int, Array, _Level] | None = None
    seen = 0
    for level in model.levels:
        H, inliers = _match(level, pts, des, norm)
        seen = max(seen, inliers)
        if inliers < min_inliers:
            continue
        pw, ph = level.size
        corners = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32).reshape(-1, 1, 2)
        quad = cv2.perspectiveTransform(corners, H).reshape(4, 2).astype(np.float64)
        if not _quad_ok(quad, scene8.shape[1], scene8.shape[0]):
            continue
        if best is None or inliers > best[0]:
            best = (inliers, H, level)
        if inliers >= ENOUGH_INLIERS:
            break
    return seen if best is None else best


def locate_pattern(
    output: ImageLike,
    pattern: ImageLike,
    *,
    min_inliers: int = MIN_INLIERS,
    layer: PrintLayer | None = None,
    region: Sequence[float] | None = None,
    model: PatternModel | None = None,
    luma: Array | None = None,
) -> dict[str, Any]:
    """Find ``pattern`` in ``output`` by SIFT, Lowe's ratio test and a RANSAC homography,
    the pattern matched at each size of its pyramid and the best fit (most inliers) kept.

    ``region`` (normalised ``[x0, y0, x1, y1]``, default the whole output) is where to
    search, at the output's own resolution (upsampled when the output's long side is
    under 768 pixels). Returns ``{"found", "inliers", "box", "width_fraction",
    "center_offset", "corners", "design_box", "method"}``. The print is the pattern's
    design (:func:`pattern_layer`: a plain border colour dropped; the whole rectangle
    when there is none), so a logo on a white square is measured by the logo.
    ``design_box`` is that design's box in the pattern, normalised 0..1; ``corners`` are
    its four projected corners (normalised, clockwise from top-left, not clipped);
    ``box`` is their axis-aligned bounding box clipped to the image, ``[x0, y0, x1, y1]``
    normalised 0..1; ``width_fraction`` = x1 - x0; ``center_offset`` = ``[dx, dy]`` from
    the image centre to the box centre in units of the image's width and height
    (-0.5..0.5). When not found, all but ``found`` and ``inliers`` are None. ``layer``
    and ``model`` reuse a :func:`pattern_layer` / :func:`pattern_model` already computed;
    ``luma``, the output's :func:`~.imaging.luma` (same size), its luminance.
    """
    scene_rgb = output if isinstance(output, np.ndarray) else rgb_array(output)
    if model is None:
        model = pattern_model(pattern, layer)
    sh, sw = scene_rgb.shape[:2]
    rx0, ry0, rx1, ry1 = _pixel_region(region, sw, sh)
    full = _scene_scale((sw, sh), (rx1 - rx0, ry1 - ry0))
    quick = min(full, SCENE_QUICK_SIDE / max(rx1 - rx0, ry1 - ry0))
    crop = scene_rgb if luma is None else luma  # luminance is per pixel: crop either
    grey = gray8(crop[ry0:ry1, rx0:rx1])
    best: tuple[int, Array, _Level, tuple[int, int]] | None = None
    seen = 0
    # A quick look first, at a long side of SCENE_QUICK_SIDE: a large print is plain
    # there; anything short of ENOUGH_INLIERS is looked for again at full resolution.
    for s in [quick, full] if quick < 0.8 * full else [full]:
        size = (max(1, round((rx1 - rx0) * s)), max(1, round((ry1 - ry0) * s)))
        fit = _fit(resize(grey, size), model, min_inliers)
        if isinstance(fit, int):
            seen = max(seen, fit)
            continue
        seen = max(seen, fit[0])
        if best is None or fit[0] > best[0]:
            best = (*fit, size)
        if fit[0] >= ENOUGH_INLIERS:
            break
    if best is None:
        return not_found(seen, method="features")
    inliers, H, level, size = best
    lay = model.layer
    lh, lw = lay.alpha.shape
    dx0, dy0, dx1, dy1 = lay.box
    # The layer is the pattern at its own working size: scale its box to the level's,
    # the homography's source frame; then from the matching scale back to the output's
    # pixels, and normalise.
    sx, sy = level.size[0] / lw, level.size[1] / lh
    design = np.array(
        [[dx0 * sx, dy0 * sy], [dx1 * sx, dy0 * sy], [dx1 * sx, dy1 * sy], [dx0 * sx, dy1 * sy]],
        dtype=np.float32,
    ).reshape(-1, 1, 2)
    design_quad = cv2.perspectiveTransform(design, H).reshape(4, 2).astype(np.float64)
    scale = np.array([size[0] / (rx1 - rx0), size[1] / (ry1 - ry0)])
    pixels = design_quad / scale + np.array([rx0, ry0], dtype=np.float64)
    norm_quad = pixels / np.array([sw, sh], dtype=np.float64)
    return pattern_result(
        norm_quad, [dx0 / lw, dy0 / lh, dx1 / lw, dy1 / lh], inliers=inliers, method="features"
    )


def pattern_result(
    quad: Array, design_box: Sequence[float], *, inliers: int, method: str, **extra: Any
) -> dict[str, Any]:
    """A found pattern's result from its projected design ``quad`` (4 x 2, normalised,
    clockwise from top-left) and ``design_box`` (normalised in the pattern); not found
    when the quad's box has no area inside the image."""
    x0, y0 = np.clip(quad.min(axis=0), 0.0, 1.0)
    x1, y1 = np.clip(quad.max(axis=0), 0.0, 1.0)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return not_found(inliers, method=method)
    return {
        "found": True,
        "inliers": int(inliers),
        "box": [float(x0), float(y0), float(x1), float(y1)],
        "width_fraction": float(x1 - x0),
        "center_offset": [float((x0 + x1) / 2 - 0.5), float((y0 + y1) / 2 - 0.5)],
        "corners": [[float(u), float(v)] for u, v in quad],
        "design_box": [float(v) for v in design_box],
        "method": method,
        **extra,
    }
