"""The found pattern related to the subject (DESIGN.md sections 8 and 10): its width
against the chest box's, its offset from the placement point, and the share of it that
lies on the garment mask.

Boxes and corners are normalised 0..1 in the aligned output's (the target's) frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ..locate import Subject, placement_point
from .imaging import Array

__all__ = ["placement_warning", "print_on_mask", "relate_pattern"]

PRINT_CHANGED_SHARE = 0.25  # of the print's visible area that must differ to judge by it


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
    # Only the print's bounding box (and a pixel around it) can be on it: the warp, the
    # changed pixels and the counts are taken there, not over the whole frame.
    x0, y0 = (max(0, int(np.floor(v)) - 1) for v in dst.min(axis=0))
    x1 = min(w, int(np.ceil(dst[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(dst[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    warp = cv2.getPerspectiveTransform(src, dst - np.array([x0, y0], np.float32))
    size = (x1 - x0, y1 - y0)
    seen = cv2.warpPerspective(alpha, warp, size, flags=cv2.INTER_LINEAR, borderValue=0) >= 0.5
    total = int(np.count_nonzero(seen))
    if total == 0:
        return None
    if changed is not None:
        painted = seen & _window(changed, (w, h), (x0, y0, x1, y1))
        if np.count_nonzero(painted) >= PRINT_CHANGED_SHARE * total:
            seen = painted
            total = int(np.count_nonzero(seen))
    return float(np.count_nonzero(seen & mask[y0:y1, x0:x1]) / total)


def _window(mask: Array, size: tuple[int, int], box: tuple[int, int, int, int]) -> Array:
    """``box`` (x0, y0, x1, y1 pixels of a ``size`` = (w, h) frame) of boolean ``mask``
    resized to that frame by nearest neighbour, as cv2.resize's INTER_NEAREST picks:
    source index ``floor(i * src / dst)``, without resizing the rest of it."""
    w, h = size
    mh, mw = mask.shape
    x0, y0, x1, y1 = box
    if (mh, mw) == (h, w):
        return mask[y0:y1, x0:x1]
    cols = np.minimum(np.floor(np.arange(x0, x1) * (1.0 / (w / mw))).astype(np.intp), mw - 1)
    rows = np.minimum(np.floor(np.arange(y0, y1) * (1.0 / (h / mh))).astype(np.intp), mh - 1)
    out: Array = mask[rows[:, None], cols[None, :]]
    return out


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


def placement_warning(placement: str | None) -> str | None:
    _, unknown = placement_point(placement)
    if not unknown:
        return None
    words = ", ".join(repr(w) for w in unknown)
    return f"placement {placement!r}: unknown word(s) {words}; the middle is used for them"
