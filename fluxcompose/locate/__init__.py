"""The subject: where the wearer's torso garment and chest are in a photo (DESIGN.md s. 10).

Every box is ``(x0, y0, x1, y1)`` normalised 0..1 on the upright image.

The public surface the rest of the package codes against:

- :class:`Subject` and :func:`locate` (detection, or a given chest box);
- :func:`parse_box` (``"x0,y0,x1,y1"`` -> a validated box, InputError otherwise);
- :func:`placement_point` (placement words -> a point in the chest box) and
  :func:`point_in_box` (that point on the image).

How :func:`locate` works, on a copy whose long side is DETECT_SIDE pixels:

1. ``pose``: MediaPipe's pose landmarker (:mod:`.pose`, the model shipped in the package)
   gives shoulders, hips, face and a person mask; :mod:`.body` turns them into a chest box
   calibrated on labelled photos and a garment mask (person minus skin, inside the torso,
   cut at the hem), when the pose is plausible. When it is not (a headless crop, where the
   shoulders can collapse onto one point), the image is padded above and searched again.
2. ``garment``: no plausible person, but a garment photographed alone (:mod:`.garment`).
3. Otherwise ``none``, with the reason. A confident wrong box is worse than none.

mediapipe is imported only when something is located (``fluxcompose --help``, ``size`` and
``compose`` never load it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .body import fit_body, person_mask_in_box
from .boxes import PLACEMENT_WORDS, Box, Mask, Subject, parse_box, placement_point, point_in_box
from .garment import (
    Array,
    as_rgb,
    by_garment,
    by_given_box,
    mask_box,
    not_found,
    resize_long,
)
from .pose import Pose, detect

__all__ = [
    "PLACEMENT_WORDS",
    "Box",
    "Subject",
    "locate",
    "parse_box",
    "placement_point",
    "point_in_box",
]

DETECT_SIDE = 512
"""Long side (pixels) of the copy the pose is searched on; the landmark model itself reads
a 256-pixel crop around the person."""
PAD_TOPS = (0.25, 0.5)
"""Further tries: space added above the image, as shares of its height (a headless crop)."""
PAD_SIDES = 0.15
"""Further tries: space added on each side, as a share of its width."""


def _corner_colour(rgb: Array) -> tuple[int, int, int]:
    """The median colour of the two top corners (the background, on a studio photo)."""
    h, w = rgb.shape[:2]
    ch, cw = max(1, h // 10), max(1, w // 10)
    px = np.concatenate([rgb[:ch, :cw].reshape(-1, 3), rgb[:ch, w - cw :].reshape(-1, 3)])
    r, g, b = (int(v) for v in np.median(px, axis=0))
    return r, g, b


def _padded(rgb: Array, top_share: float) -> tuple[Array, int, int]:
    """``rgb`` with ``top_share`` of its height added above and PAD_SIDES of its width on each
    side, in its corners' colour, and the offset (x, y) of the original in it."""
    import cv2

    h, w = rgb.shape[:2]
    top, side = round(top_share * h), round(PAD_SIDES * w)
    out = cv2.copyMakeBorder(
        rgb, top, 0, side, side, cv2.BORDER_CONSTANT, value=_corner_colour(rgb)
    )
    return np.ascontiguousarray(out), side, top


def _unpad(pose: Pose, ox: int, oy: int, size: tuple[int, int]) -> Pose:
    w, h = size
    points = pose.points.copy()
    points[:, 0] -= ox
    points[:, 1] -= oy
    return Pose(points, np.ascontiguousarray(pose.mask[oy : oy + h, ox : ox + w]), size)


def _head_in_frame(pose: Pose, size: tuple[int, int]) -> bool:
    """Whether the nose and both eyes (landmarks 0, 2, 5) lie inside the image."""
    w, h = size
    return all(0 <= pose.xy(k)[0] < w and 0 <= pose.xy(k)[1] < h for k in (0, 2, 5))


def _by_pose(work: Array, first: Pose | None = None) -> tuple[Subject | None, str]:
    """The subject from the pose on ``work``; else None and the reason.

    When the first pose is missing or implausible, or has its head out of the frame (the
    model card calls that out of scope: on a headless crop the shoulders drift and
    narrow), the image padded above by each of PAD_TOPS is tried too, and the most
    plausible pose (highest confidence) wins. ``first``: the pose already detected on
    ``work`` itself, when the caller has one (not detected again).
    """
    h, w = work.shape[:2]
    reason = "no person found"
    best: Subject | None = None
    for top_share in (0.0, *PAD_TOPS):
        img, ox, oy = _padded(work, top_share) if top_share else (work, 0, 0)
        pose = first if first is not None and not top_share else detect(img)
        if pose is None:
            continue
        if top_share:
            pose = _unpad(pose, ox, oy, (w, h))
        fit = fit_body(work, pose)
        if fit.subject is None:
            reason = fit.reason or reason
            continue
        if not top_share and _head_in_frame(pose, (w, h)):
            return fit.subject, ""
        if best is None or fit.subject.confidence > best.confidence:
            best = fit.subject
    if best is not None:
        return best, ""
    return None, reason


def _given(rgb: Array, box: Box) -> Subject:
    """The chest box is given: the garment mask inside it, from the person mask minus skin
    when the pose model sees this person there, else by GrabCut (:func:`by_given_box`)."""
    work, _ = resize_long(rgb, DETECT_SIDE)
    pose = detect(work)
    mask: Mask | None = None if pose is None else person_mask_in_box(pose, box, work)
    if mask is None:
        wearer, _ = _by_pose(work, first=pose)
        if wearer is None:
            return by_given_box(rgb, box)
        # A plausible wearer stands elsewhere: the box lies mostly off their body, so only
        # their garment inside it is garment. GrabCut in the box would invent fabric out of
        # the background, and a print there would pass as "on the garment".
        h, w = work.shape[:2]
        theirs = wearer.garment_mask((w, h))
        inside: Mask = np.zeros((h, w), bool)
        x0, y0 = round(box[0] * w), round(box[1] * h)
        x1, y1 = max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))
        if theirs is not None:
            inside[y0:y1, x0:x1] = theirs[y0:y1, x0:x1]
        mask = inside
    return Subject(True, "given", 1.0, box, mask_box(mask), None, mask)


def locate(image: Any, *, subject_box: Box | None = None) -> Subject:
    """Find the wearer's torso garment in ``image`` (an H x W x 3 uint8 RGB array, or a
    PIL image, upright). With ``subject_box`` the chest box is given (``method`` "given")
    and only the garment mask is estimated inside it.

    Order: a plausible pose ("pose"), else a garment standing out from a plain background
    with skin (a neck) above it ("garment"), else ``found`` is False with a reason ("none").
    """
    rgb = as_rgb(image)
    H, W = rgb.shape[:2]
    if subject_box is not None:
        return _given(rgb, parse_box(subject_box))
    if min(H, W) < 32:
        return not_found("the image is too small to find a person in")
    work, _ = resize_long(rgb, DETECT_SIDE)
    subject, reason = _by_pose(work)
    if subject is not None:
        return subject
    garment = by_garment(rgb)
    if garment.found:
        return garment
    if reason == "no person found":
        return not_found(garment.reason or reason)
    return not_found(f"{reason}; {garment.reason}")
