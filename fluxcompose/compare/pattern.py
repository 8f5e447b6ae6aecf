"""Finding the pattern (the print) in the output: SIFT features, Lowe's ratio test and a
RANSAC homography (DESIGN.md section 8).

Boxes and corners are normalised 0..1 in the output's frame; ``[x0, y0, x1, y1]``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..prints import PrintLayer, print_layer
from .imaging import Array, ImageLike, fit_area, fit_side, resize, rgb_array, small_luma

__all__ = ["MIN_INLIERS", "locate_pattern", "pattern_layer"]

MATCH_SCENE_SIDE = 768  # long side of the output when matching features
MATCH_SCENE_PIXELS = 768 * 432  # and at most this area (a 16:9 output's at 768): ~0.33 MP
MATCH_SCENE_MIN_SIDE = 384  # small outputs are upsampled to this long side for matching
MATCH_PATTERN_SIDE = 512  # long side of the pattern when matching features
PRINT_WORK_SIDE = 256  # long side of the pattern when finding its design's box
RATIO_TEST = 0.75  # Lowe's ratio test
MIN_INLIERS = 10  # RANSAC inliers needed to call a pattern found
RANSAC_REPROJ = 4.0  # pixels at the matching working size


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
    pat_rgb = pattern if isinstance(pattern, np.ndarray) else rgb_array(pattern)
    work = fit_side(pat_rgb.shape[1], pat_rgb.shape[0], PRINT_WORK_SIDE)
    small = np.ascontiguousarray(resize(rgb_array(pat_rgb), work))
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
    scene_rgb = output if isinstance(output, np.ndarray) else rgb_array(output)
    pat_rgb = pattern if isinstance(pattern, np.ndarray) else rgb_array(pattern)
    sh, sw = scene_rgb.shape[:2]
    scene_ws = fit_side(sw, sh, MATCH_SCENE_SIDE)
    # A portrait output at 768 on its long side would cost SIFT half as much again as a
    # landscape one: cap the area too, so every 1 MP output costs about the same.
    scene_ws = min(scene_ws, fit_area(sw, sh, MATCH_SCENE_PIXELS), key=lambda s: s[0] * s[1])
    if max(sw, sh) < MATCH_SCENE_MIN_SIDE:
        # Small outputs: upsampling lets SIFT see a small print at all.
        up = MATCH_SCENE_MIN_SIDE / max(sw, sh)
        scene_ws = (round(sw * up), round(sh * up))
    pat_ws = fit_side(pat_rgb.shape[1], pat_rgb.shape[0], MATCH_PATTERN_SIDE)
    scene8 = np.clip(np.rint(small_luma(scene_rgb, scene_ws)), 0, 255).astype(np.uint8)
    pat8 = np.clip(np.rint(small_luma(pat_rgb, pat_ws)), 0, 255).astype(np.uint8)

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
