"""Where to look for the print, and whether what was found is the print that was
transferred (DESIGN.md section 8).

The print is looked for where the output differs from the target (the edit mask), at
the output's own resolution; when that is most of the picture (a generative re-render)
and the chest box is known, around the chest. A print found where the output equals the
target is not a transferred print: an unchanged target never has one. Features
(:mod:`.pattern`) are tried first; a print they cannot pin down (smooth all-over colour
with little texture, or very small) is then looked for by its colours
(:mod:`.correlate`).

Boxes and regions are ``[x0, y0, x1, y1]`` normalised 0..1 in the aligned frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..prints import PrintLayer
from .correlate import correlate_pattern
from .imaging import Array
from .pattern import PatternModel, locate_pattern, not_found

__all__ = ["changed_share", "find_print", "search_region"]

REGION_MARGIN = 0.25  # the changed box is grown by this share of its size on each side
REGION_PAD = 0.03  # and by this share of the image
REGION_MAX_AREA = 0.4  # a changed box larger than this share of the image is cut to the chest's
CHEST_REACH_X = 0.6  # around the chest: this many chest widths either side
CHEST_REACH_Y = 0.35  # and this many chest heights above and below
CHANGED_MIN_SHARE = 0.3  # share of the found print's area that must differ from the target
UNCHANGED_REASON = "the output does not differ from the target"
STATIC_REASON = "what matched lies where the output equals the target"


def _grow(box: Sequence[float], fx: float, fy: float, pad: float) -> list[float]:
    w, h = box[2] - box[0], box[3] - box[1]
    return [
        max(0.0, box[0] - fx * w - pad),
        max(0.0, box[1] - fy * h - pad),
        min(1.0, box[2] + fx * w + pad),
        min(1.0, box[3] + fy * h + pad),
    ]


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def search_region(
    changed_box: Sequence[float] | None, chest_box: Sequence[float] | None
) -> list[float] | None:
    """Where to search: the changed box grown by REGION_MARGIN of its size plus
    REGION_PAD of the image; when that covers more than REGION_MAX_AREA of the image and
    the chest box is known, its overlap with the chest grown by CHEST_REACH_X widths and
    CHEST_REACH_Y heights (the whole chest area when they do not overlap). None when
    nothing changed."""
    if changed_box is None:
        return None
    region = _grow(changed_box, REGION_MARGIN, REGION_MARGIN, REGION_PAD)
    if _area(region) > REGION_MAX_AREA and chest_box is not None:
        reach = _grow(chest_box, CHEST_REACH_X, CHEST_REACH_Y, 0.0)
        cut = [
            max(region[0], reach[0]),
            max(region[1], reach[1]),
            min(region[2], reach[2]),
            min(region[3], reach[3]),
        ]
        region = cut if _area(cut) > 0 else reach
    return region


def changed_share(corners: Sequence[Sequence[float]], changed: Array) -> float:
    """Share (0..1) of the quad ``corners`` (normalised) inside the frame that lies on
    ``changed`` (boolean, any size); 0 when none of it is inside."""
    h, w = changed.shape
    poly = np.rint(np.asarray(corners, np.float64) * np.array([w, h])).astype(np.int32)
    quad = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(quad, poly, 1)
    inside = int(np.count_nonzero(quad))
    if inside == 0:
        return 0.0
    return float(np.count_nonzero(changed[quad > 0]) / inside)


def find_print(
    output: Array,
    pattern: Array,
    changed: Array,
    *,
    changed_box: Sequence[float] | None,
    chest_box: Sequence[float] | None = None,
    layer: PrintLayer | None = None,
    model: PatternModel | None = None,
    luma: Array | None = None,
) -> dict[str, Any]:
    """The transferred print in ``output`` (uint8 RGB at its own resolution): a
    :func:`~.pattern.locate_pattern` result (``method`` "features" or "colour"), not
    found when nothing changed, or when what matched lies mostly (over 1 -
    CHANGED_MIN_SHARE) where the output equals the target (``reason`` says which).

    ``changed`` is the edit mask (any size, True where the output differs from the
    target), ``changed_box`` its box; ``chest_box`` the subject's, when known; ``luma``
    the output's luminance when the caller has it (:func:`~.pattern.locate_pattern`).
    """
    region = search_region(changed_box, chest_box)
    if region is None:
        return not_found(reason=UNCHANGED_REASON)
    found = locate_pattern(output, pattern, layer=layer, region=region, model=model, luma=luma)
    if found["found"] and changed_share(found["corners"], changed) < CHANGED_MIN_SHARE:
        found = not_found(found["inliers"], method=found["method"], reason=STATIC_REASON)
    if found["found"]:
        return found
    by_colour = correlate_pattern(
        output, pattern, region=region, layer=layer, changed=changed, model=model
    )
    if by_colour["found"] and changed_share(by_colour["corners"], changed) >= CHANGED_MIN_SHARE:
        by_colour["inliers"] = found["inliers"]
        return by_colour
    found["colour_score"] = by_colour.get("score")
    return found
