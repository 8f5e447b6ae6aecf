"""From a pose to the subject: the chest box, the garment mask, and whether to believe it
(DESIGN.md s. 10, the ``pose`` method).

Units: pixels of the working image the pose was found on; ``S`` is the distance between the
shoulder landmarks (11, 12), ``T`` the torso's length from the shoulders' midpoint to the
hips' (23, 24).

The chest box is calibrated on ``shared/images/people/chest_boxes.json`` (nine labelled
photos): the landmarks sit on the joints, so a person's box is a little wider than the
shoulder landmarks (labels: 0.92..1.26 S, mean 1.05) and starts above them, at the top of
the shoulders' outline on the person mask (labels: 0.01..0.05 T above the mask's top read
15 % of the way in from each shoulder). Its bottom is the top's hem where the colours along
the torso change (a crop top ends at 0.6 T, a long tank at 0.9 T); with no hem, the image's
edge when the top runs out of it, else the natural waist (labels: 0.77..0.84 T; a dress).

The garment mask is the person mask, minus the person's skin (a chromaticity model learnt
on their face and bare arms, for pixels nearer that skin's colour than the garment's own,
read in the torso's core), inside the torso, cut at the hem. When the garment itself is
skin-coloured (pink, beige, tan), only skin connected to exposed skin (neck, arms) without
crossing an edge is taken away.

Believing it: shoulder width against torso length and against hip width, the torso's tilt,
the shoulders inside the frame and the torso inside the person mask. ``confidence`` is how
far inside those ranges the pose lies (0.5 at an edge, 1.0 at the typical value); outside
any of them nothing is found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .boxes import Box, Mask, Subject
from .garment import (
    GENERIC_SKIN,
    MASK_SIDE,
    TYPICAL_SKIN_LAB,
    SkinModel,
    chroma,
    clean,
    colour_distance,
    cut_at_hem,
    exposed_skin,
    lab_of,
    mask_box,
    norm_box,
    skin_generic,
    skin_not_garment,
)
from .pose import Pose

__all__ = ["BodyFit", "fit_body", "person_mask_in_box"]

Array = npt.NDArray[Any]

CHEST_WIDTH = 1.05
"""The chest box's width, in shoulder-landmark distances S."""
TOP_FALLBACK = 0.14
"""The shoulder line above the shoulder landmarks, in T, when the mask does not show it."""
TOP_RANGE = (0.05, 0.22)
"""Where the shoulder line may lie above the landmarks, in T."""
SHOULDER_INSET = 0.15
"""The shoulders' outline is read this far in from each shoulder landmark (share of S)."""
TOP_LIFT = 0.015
"""Added above the mask's shoulder outline, in T (labels sit ~0.015 T above it)."""
WAIST = 0.8
"""The natural waist, as a share of the shoulders-to-hips length T."""
HEM_RANGE = (0.5, 1.1)
"""A hem found between these shares of T is the chest box's bottom."""

SHOULDER_TO_TORSO = (0.38, 0.70, 1.2)
"""S / T: (lowest, typical, highest). The labelled photos: 0.66..0.75."""
HIP_TO_SHOULDER = (0.28, 0.565, 0.95)
"""Hip-landmark distance / S: (lowest, typical, highest). The labelled photos: 0.53..0.59."""
TILT = (0.0, 0.0, 35.0)
"""The torso's angle from vertical, degrees."""
IN_MASK = (0.7, 1.0, 1.0)
"""Share of the shoulder-hip quadrilateral (in the frame) on the person mask."""
MIN_SHOULDER = 0.04
"""The smallest plausible S, as a share of the image's long side."""
OPEN_PX = 2
"""Radius (working pixels) of the opening that drops specks of skin left in the mask."""
SKIN_GAP = 7
"""Gaps (working pixels) in the skin mask that are closed before it is taken away."""
SKIN_LIKE = 18.0
"""A garment whose colour is within this distance of the skin's (colour_distance) is
skin-like: then only skin connected to exposed skin (neck, arms) is taken away."""
MIN_HEIGHT = 0.35
"""The smallest chest box left in the frame, in S (a head-and-shoulders crop has none)."""


@dataclass(frozen=True)
class BodyFit:
    """A pose judged: ``subject`` when plausible, else None with ``reason``."""

    subject: Subject | None
    reason: str | None


def _margin(value: float, low: float, typical: float, high: float) -> float:
    """How far inside [low, high] ``value`` lies: 1 at ``typical``, 0 at an edge, < 0 outside."""
    if value <= typical:
        return (value - low) / (typical - low) if typical > low else 1.0
    return (high - value) / (high - typical) if high > typical else 1.0


def _poly_mask(shape: tuple[int, int], pts: Array) -> Mask:
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    out: Mask = m > 0
    return out


def _patch(rgb: Array, x: float, y: float, r: float) -> Array:
    """The pixels (N x 3) of a square of half-side ``r`` around (x, y), clipped to the image."""
    h, w = rgb.shape[:2]
    x0, x1 = max(0, round(x - r)), min(w, round(x + r) + 1)
    y0, y1 = max(0, round(y - r)), min(h, round(y + r) + 1)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3), np.uint8)
    out: Array = rgb[y0:y1, x0:x1].reshape(-1, 3)
    return out


def _skin_of(rgb: Array, pose: Pose, S: float) -> tuple[SkinModel, Array]:
    """The person's skin: a chromaticity model and its Lab colour, learnt on the face (between
    nose and mouth) and on bare forearms and upper arms that agree with it. Without a face,
    arms that are mostly skin-coloured; without either, a generic skin model."""
    import cv2

    def skin_px(px: Array) -> Array:
        if len(px) == 0:
            return px
        ycc = cv2.cvtColor(px.reshape(-1, 1, 3), cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
        keep = skin_generic(ycc[:, None, :])[:, 0]
        out: Array = px[keep]
        return out

    h, w = rgb.shape[:2]
    eye = float(np.linalg.norm(pose.xy(2) - pose.xy(5)))
    face_pt = (pose.xy(0) + (pose.xy(9) + pose.xy(10)) / 2) / 2
    face = np.zeros((0, 3), np.uint8)
    if 0 <= face_pt[0] < w and 0 <= face_pt[1] < h and eye > 2:
        face = skin_px(_patch(rgb, face_pt[0], face_pt[1], max(1.0, 0.45 * eye)))
    arms = []
    for a, b in ((13, 15), (14, 16), (11, 13), (12, 14)):
        for t in (0.35, 0.6):
            p = pose.xy(a) + t * (pose.xy(b) - pose.xy(a))
            raw = _patch(rgb, p[0], p[1], max(1.0, 0.06 * S))
            sk = skin_px(raw)
            if len(raw) and len(sk) >= 0.6 * len(raw):
                arms.append(sk)
    samples = face
    if len(face) >= 12:
        r, g, _ = chroma(face)
        mr, mg = float(np.median(r)), float(np.median(g))
        sr = float(np.clip(r.std() * 1.5, 0.012, 0.04))
        sg = float(np.clip(g.std() * 1.5, 0.008, 0.025))
        for px in arms:
            ar, ag, _ = chroma(px)
            near = ((ar - mr) / sr) ** 2 + ((ag - mg) / sg) ** 2 <= 9.0
            samples = np.concatenate([samples, px[near]])
    elif arms:
        samples = np.concatenate(arms)
    if len(samples) < 12:
        return GENERIC_SKIN, TYPICAL_SKIN_LAB
    r, g, _ = chroma(samples)
    model = SkinModel(
        float(np.median(r)),
        float(np.median(g)),
        float(np.clip(r.std() * 1.5, 0.012, 0.04)),
        float(np.clip(g.std() * 1.5, 0.008, 0.025)),
    )
    lab = lab_of(samples.reshape(-1, 1, 3)).reshape(-1, 3)
    return model, np.median(lab, axis=0)


def _shoulder_line(person: Mask, pose: Pose, sm: Array, S: float, T: float) -> float:
    """The shoulder line's y: the top of the person mask read SHOULDER_INSET of S in from
    each shoulder landmark, lifted by TOP_LIFT, kept within TOP_RANGE above the landmarks."""
    h, w = person.shape
    tops = []
    for k in (11, 12):
        sx, sy = pose.xy(k)
        x = round(sx + (sm[0] - sx) * SHOULDER_INSET)
        y = round(sy)
        if not (0 <= x < w and 0 < y <= h):
            continue
        col = person[:y, x]
        off = np.flatnonzero(~col)
        tops.append(float(off[-1] + 1) if len(off) else 0.0)
    lo, hi = sm[1] - TOP_RANGE[1] * T, sm[1] - TOP_RANGE[0] * T
    if not tops:
        return float(sm[1] - TOP_FALLBACK * T)
    top = float(np.mean(tops)) - TOP_LIFT * T
    if top <= 0.0:  # the mask runs out of the frame: the outline is not seen
        return float(sm[1] - TOP_FALLBACK * T)
    return float(np.clip(top, lo, hi))


def fit_body(rgb: Array, pose: Pose) -> BodyFit:
    """Judge ``pose`` (found on ``rgb``, H x W x 3 uint8) and, when plausible, the subject:
    chest box, garment mask (at the working size, long side at most MASK_SIDE) and face box.
    """
    h, w = rgb.shape[:2]
    sl, sr, hl, hr = pose.xy(11), pose.xy(12), pose.xy(23), pose.xy(24)
    sm, hm = (sl + sr) / 2, (hl + hr) / 2
    S = float(np.linalg.norm(sl - sr))
    T = float(np.linalg.norm(hm - sm))
    Hw = float(np.linalg.norm(hl - hr))
    if MIN_SHOULDER * max(h, w) > S or T < 1.0:
        return BodyFit(None, "the person's shoulders are too close together to be a torso")
    for k in (11, 12):
        x, y = pose.xy(k)
        if not (-0.02 * w <= x <= 1.02 * w and -0.02 * h <= y <= 1.02 * h):
            return BodyFit(None, "a shoulder is outside the image")
    axis = (hm - sm) / T
    tilt = math.degrees(math.atan2(abs(axis[0]), axis[1]))
    person = pose.mask > 0.5
    quad = _poly_mask((h, w), np.array([sl, sr, hr, hl]))
    in_mask = float(person[quad].mean()) if quad.sum() >= 20 else 0.0
    checks = {
        "shoulder width against torso length": (S / T, SHOULDER_TO_TORSO),
        "hip width against shoulder width": (Hw / S, HIP_TO_SHOULDER),
        "torso tilt": (tilt, TILT),
        "torso inside the person mask": (in_mask, IN_MASK),
    }
    margins = {name: _margin(v, *rng) for name, (v, rng) in checks.items()}
    worst = min(margins, key=lambda k: margins[k])
    if margins[worst] < 0:
        value = checks[worst][0]
        return BodyFit(None, f"implausible pose: {worst} is {value:.2f}, out of range")
    confidence = 0.5 + 0.5 * min(1.0, margins[worst])

    # The chest box.
    top = _shoulder_line(person, pose, sm, S, T)
    eyes_y = (pose.xy(2)[1] + pose.xy(5)[1]) / 2
    mouth_y = (pose.xy(9)[1] + pose.xy(10)[1]) / 2
    if 0 <= mouth_y < h and mouth_y > eyes_y:  # never above the chin
        top = max(top, mouth_y + 0.8 * (mouth_y - eyes_y))
    cx = float((sm[0] + hm[0]) / 2)
    half = CHEST_WIDTH * S / 2
    skin_model, skin_lab = _skin_of(rgb, pose, S)
    bottom, mask = _garment(rgb, pose, person, skin_model, skin_lab, sm, T, S, top)
    top = max(0.0, top)
    bottom = min(float(h), bottom)
    if bottom - top < MIN_HEIGHT * S:
        return BodyFit(None, "the torso is out of frame below the shoulders")
    chest = norm_box((cx - half, top, cx + half, bottom), w, h)
    face = _face_box(pose, w, h)
    return BodyFit(Subject(True, "pose", confidence, chest, mask_box(mask), face, mask), None)


def _face_box(pose: Pose, w: int, h: int) -> Box | None:
    """The face from its landmarks (ears across, brows to chin), when the eyes and mouth
    are in the frame."""
    pts = [pose.xy(k) for k in (0, 2, 5, 9, 10)]
    if not all(0 <= p[0] < w and 0 <= p[1] < h for p in pts):
        return None
    eyes_y = (pose.xy(2)[1] + pose.xy(5)[1]) / 2
    mouth_y = (pose.xy(9)[1] + pose.xy(10)[1]) / 2
    d = mouth_y - eyes_y
    if d <= 0:
        return None
    xs = [pose.xy(7)[0], pose.xy(8)[0]]
    return norm_box((min(xs), eyes_y - 1.0 * d, max(xs), mouth_y + 0.9 * d), w, h)


def _garment(
    rgb: Array,
    pose: Pose,
    person: Mask,
    skin_model: SkinModel,
    skin_lab: Array,
    sm: Array,
    T: float,
    S: float,
    top: float,
) -> tuple[float, Mask]:
    """The chest box's bottom (y, pixels) and the garment mask on the whole working image:
    the person mask, minus skin nearer the person's skin than the garment's own colour
    (read in the torso's core; on a skin-like garment, only skin connected to exposed
    skin), inside the torso polygon, cut at the hem."""
    h, w = rgb.shape[:2]
    hm = (pose.xy(23) + pose.xy(24)) / 2
    axis = (hm - sm) / T
    across = np.array([axis[1], -axis[0]])
    half = 0.55 * CHEST_WIDTH * S
    lift = max(0.0, sm[1] - top)
    reach = HEM_RANGE[1] * T + 0.05 * T
    poly = np.array(
        [
            sm - lift * axis - half * across,
            sm - lift * axis + half * across,
            sm + reach * axis + half * across,
            sm + reach * axis - half * across,
        ]
    )
    x0 = int(max(0, math.floor(poly[:, 0].min())))
    x1 = int(min(w, math.ceil(poly[:, 0].max()) + 1))
    y0 = int(max(0, math.floor(poly[:, 1].min())))
    y1 = int(min(h, math.ceil(poly[:, 1].max()) + 1))
    full: Mask = np.zeros((h, w), bool)
    waist = float(sm[1] + WAIST * T)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return waist, full
    roi = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    off = np.array([x0, y0], float)
    inside = _poly_mask(roi.shape[:2], poly - off)
    pm = person[y0:y1, x0:x1]
    lab = lab_of(roi)
    # The garment's own colour: the torso's core, 0.25..0.5 T down, +-0.2 S across.
    core = _poly_mask(
        roi.shape[:2],
        np.array(
            [
                sm + 0.25 * T * axis - 0.2 * S * across,
                sm + 0.25 * T * axis + 0.2 * S * across,
                sm + 0.5 * T * axis + 0.2 * S * across,
                sm + 0.5 * T * axis - 0.2 * S * across,
            ]
        )
        - off,
    )
    core &= pm
    garment_lab = np.median(lab[core], axis=0) if core.sum() >= 8 else TYPICAL_SKIN_LAB
    skin = _closed(skin_not_garment(lab, skin_model.test(roi), skin_lab, garment_lab))
    if float(colour_distance(garment_lab, skin_lab)) < SKIN_LIKE:
        band = np.zeros_like(inside)
        band[: max(1, round(sm[1] - y0)), :] = True  # above the shoulder landmarks: neck
        skin = exposed_skin(skin, roi, ~inside | band)
    fg = pm & ~skin & inside
    # The hem: where the colours down the torso's middle stop being the core's.
    c = sm + 0.375 * T * axis - off
    r0, r1 = round(sm[1] + 0.2 * T - y0), round(sm[1] + 0.5 * T - y0)
    bottom = waist
    cut = sm[1] + HEM_RANGE[1] * T
    _, hem = cut_at_hem(fg, roi, round(c[0]), (r0, r1), lab=lab)
    if hem is not None and HEM_RANGE[0] <= (hem + y0 - sm[1]) / T <= HEM_RANGE[1]:
        bottom = cut = float(hem + y0)
    elif _runs_out(rgb, person, skin_model, round(c[0] + x0), round(waist)):
        # No hem, and the top runs out of the image's bottom edge: the box ends there
        # (a dress whose skirt ends in the frame keeps the natural waist).
        bottom = float(h)
    fg[max(0, round(cut - y0)) :] = False
    seed_y, seed_x = round(c[1]), round(c[0])
    in_roi = 0 <= seed_y < fg.shape[0] and 0 <= seed_x < fg.shape[1]
    fg = clean(fg, (seed_y, seed_x) if in_roi and fg[seed_y, seed_x] else None, open_px=OPEN_PX)
    full[y0:y1, x0:x1] = fg
    return bottom, _at_mask_side(full)


def _runs_out(rgb: Array, person: Mask, skin_model: SkinModel, x: int, y: int) -> bool:
    """Whether column ``x`` is clothed person (person mask, not skin) from row ``y`` to the
    image's bottom edge, give or take 5 %."""
    h, w = person.shape
    if not (0 <= x < w and 0 <= y < h - 2):
        return False
    column = np.ascontiguousarray(rgb[y:, x : x + 1])
    clothed = person[y:, x] & ~skin_model.test(column)[:, 0]
    return float(clothed.mean()) >= 0.95


def _closed(skin: Mask) -> Mask:
    """``skin`` with gaps of up to SKIN_GAP pixels closed: a shadow in a cleavage or a
    crease of the neck fails the skin test, yet sits in skin."""
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SKIN_GAP, SKIN_GAP))
    out: Mask = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_CLOSE, k) > 0
    return out


def _at_mask_side(mask: Mask) -> Mask:
    """``mask`` shrunk so its long side is at most MASK_SIDE."""
    import cv2

    h, w = mask.shape
    s = min(1.0, MASK_SIDE / max(h, w))
    if s >= 1.0:
        return mask
    size = (max(1, round(w * s)), max(1, round(h * s)))
    out: Mask = cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) >= 128
    return out


def person_mask_in_box(pose: Pose, box: Box, rgb: Array) -> Mask | None:
    """For a chest box given by hand: the person mask minus the person's skin inside ``box``
    (normalised), on the working image; None when the person mask covers too little of the
    box to be this person's torso (under half)."""
    h, w = rgb.shape[:2]
    x0, y0 = round(box[0] * w), round(box[1] * h)
    x1, y1 = max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))
    person = pose.mask > 0.5
    inside = person[y0:y1, x0:x1]
    if inside.size == 0 or inside.mean() < 0.5:
        return None
    sl, sr = pose.xy(11), pose.xy(12)
    S = max(1.0, float(np.linalg.norm(sl - sr)))
    skin_model, skin_lab = _skin_of(rgb, pose, S)
    roi = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    lab = lab_of(roi)
    ch, cw = roi.shape[:2]
    core = inside[ch // 4 : ch - ch // 4, cw // 4 : cw - cw // 4]
    core_lab = lab[ch // 4 : ch - ch // 4, cw // 4 : cw - cw // 4][core]
    garment_lab = np.median(core_lab, axis=0) if len(core_lab) >= 8 else TYPICAL_SKIN_LAB
    skin = _closed(skin_not_garment(lab, skin_model.test(roi), skin_lab, garment_lab))
    if float(colour_distance(garment_lab, skin_lab)) < SKIN_LIKE:
        ring = np.ones((ch, cw), bool)  # the box's edge: neck above, arms beside
        e = max(1, min(ch, cw) // 30)
        ring[e : ch - e, e : cw - e] = False
        skin = exposed_skin(skin, roi, ring)
    full: Mask = np.zeros((h, w), bool)
    full[y0:y1, x0:x1] = inside & ~skin
    return _at_mask_side(full)
