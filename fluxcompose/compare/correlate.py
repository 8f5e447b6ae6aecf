"""Finding the print by its colours: normalised cross-correlation of the pattern's design,
at a range of sizes, against where the output changed.

Features (:mod:`.pattern`) need texture: an all-over photographic print of smooth colour
gradients has few stable keypoints in its luminance, and a print 0.1 of the output wide
has few at all. Its colours still show it plainly. The design is compared in CIE Lab
with luminance at half weight (a fabric's folds shade the luminance far more than the
hue), upright, at template widths from CORR_MIN_WIDTH of the image up to the searched
region's, a step of CORR_STEP apart; then at finer steps around the best places, and at
the best one turned a few degrees either way (CORR_ANGLES). A match counts only at a
correlation of CORR_MIN_SCORE or more, and a design with little colour structure beyond
a smooth ramp (CORR_MIN_CONTRAST) is not looked for this way: a studio backdrop or a
shirt's own shading would correlate with it.

Boxes and regions are ``[x0, y0, x1, y1]`` normalised 0..1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..prints import PrintLayer
from .imaging import Array, lab, resize
from .pattern import PatternModel, not_found, pattern_layer, pattern_result

__all__ = ["CORR_MIN_SCORE", "correlate_pattern"]

CORR_MIN_SCORE = 0.8  # normalised cross-correlation (-1..1) that counts as the print
CORR_MIN_CONTRAST = 8.0  # weighted Lab std beyond a plane: flatter designs are not looked for
CORR_MIN_WIDTH = 0.05  # smallest template width, as a share of the image's width
CORR_MIN_SIDE = 8  # pixels: no template side smaller than this
CORR_STEP = 1.15  # ratio of successive template widths in the coarse pass
CORR_FINE_STEP = 1.03  # and in the fine pass, three either side of a coarse candidate
CORR_COARSE_SIDE = 96  # long side (pixels) of the searched region in the coarse pass
CORR_FINE_SIDE = 64  # long side (pixels) of the design in the fine pass, native at most
CORR_CANDIDATES = 2  # places from the coarse pass looked at again
CORR_MIN_SEEN = 0.5  # share of the design on changed pixels to judge it by that part
CORR_ANGLES = (-8.0, -4.0, 4.0, 8.0)  # degrees the best upright place is also tried turned
CORR_L_WEIGHT = 0.5  # weight of L* against a*, b*


def _weighted_lab(rgb: Array) -> Array:
    out = lab(rgb)
    out[:, :, 0] *= CORR_L_WEIGHT
    return out


@dataclass(frozen=True)
class _Design:
    """The design cut to its box: ``lab`` its weighted Lab (float32; where it is not
    the design, the design's mean colour) and ``mask`` (float32 0/1, None when the whole
    box is the design)."""

    lab: Array
    mask: Array | None

    @property
    def aspect(self) -> float:
        return float(self.lab.shape[1] / self.lab.shape[0])


def _design(layer: PrintLayer) -> _Design:
    x0, y0, x1, y1 = layer.box
    alpha = layer.alpha[y0:y1, x0:x1]
    colour = layer.premultiplied[y0:y1, x0:x1] / np.maximum(alpha, 1e-3)[:, :, None]
    weighted = _weighted_lab(np.clip(np.rint(colour), 0, 255).astype(np.uint8))
    inside = alpha >= 0.5
    if bool(inside.all()):
        return _Design(weighted, None)
    weighted[~inside] = weighted[inside].mean(axis=0)
    return _Design(weighted, inside.astype(np.float32))


def _design_of(layer: PrintLayer, model: PatternModel | None) -> tuple[_Design, float]:
    """The layer's :func:`_design` and its :func:`_contrast`, kept with ``model`` (the
    pattern's, computed once per pattern) when ``layer`` is the model's own."""
    if model is None or layer is not model.layer:
        design = _design(layer)
        return design, _contrast(design)
    kept: tuple[_Design, float] | None = model.derived.get(_DESIGN_KEY)
    if kept is None:
        design = _design(layer)
        kept = (design, _contrast(design))
        model.derived[_DESIGN_KEY] = kept
    return kept


_DESIGN_KEY = "correlate.design"


def _contrast(design: _Design) -> float:
    """How much colour structure the design has beyond a ramp: the largest per-channel
    standard deviation (weighted Lab units) of the design's pixels about the best plane
    ``a + b x + c y`` through them. (Sums, not BLAS: no threads beyond the one core.)"""
    h, w = design.lab.shape[:2]
    inside = np.ones((h, w), bool) if design.mask is None else design.mask >= 0.5
    yy, xx = np.nonzero(inside)
    if yy.size < 3:
        return 0.0
    x, y = xx / w - 0.5, yy / h - 0.5
    values = design.lab[inside].astype(np.float64)
    gram = np.array(
        [
            [x.size, x.sum(), y.sum()],
            [x.sum(), (x * x).sum(), (x * y).sum()],
            [y.sum(), (x * y).sum(), (y * y).sum()],
        ]
    )
    worst = 0.0
    for c in range(values.shape[1]):
        v = values[:, c]
        a, b, k = np.linalg.solve(gram, [v.sum(), (x * v).sum(), (y * v).sum()])
        worst = max(worst, float((v - a - b * x - k * y).std()))
    return worst


def _score(window: Array, design: _Design, width: int, masked: bool) -> tuple[float, int, int]:
    """Best correlation of the design at ``width`` pixels in ``window`` (weighted Lab), and
    where (x, y, top-left); (-1, 0, 0) when it does not fit. ``masked``: only the
    design's own pixels count (slower); else the box, its plain part as the mean colour."""
    h = max(1, round(width / design.aspect))
    if width < CORR_MIN_SIDE or h < CORR_MIN_SIDE:
        return -1.0, 0, 0
    if width > window.shape[1] or h > window.shape[0]:
        return -1.0, 0, 0
    tmpl = resize(design.lab, (width, h))
    if masked and design.mask is not None:
        m = resize(design.mask, (width, h))
        m3 = np.repeat((m >= 0.5).astype(np.float32)[:, :, None], 3, axis=2)
        res = cv2.matchTemplate(window, tmpl, cv2.TM_CCOEFF_NORMED, mask=m3)
    else:
        res = cv2.matchTemplate(window, tmpl, cv2.TM_CCOEFF_NORMED)
    res = np.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)
    _, best, _, loc = cv2.minMaxLoc(res)
    return float(best), int(loc[0]), int(loc[1])


def _lab_window(output: Array, box: Sequence[float], scale: float) -> Array:
    """Weighted Lab of ``output`` inside ``box`` (pixels x0, y0, x1, y1, clipped to the
    image), resized by ``scale``."""
    H, W = output.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(W, int(np.ceil(box[2]))), min(H, int(np.ceil(box[3])))
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    return _weighted_lab(resize(np.ascontiguousarray(output[y0:y1, x0:x1]), size))


def _search(
    output: Array,
    box: Sequence[float],
    scale: float,
    design: _Design,
    widths: Sequence[float],
    *,
    masked: bool,
) -> list[tuple[float, float, float, float]]:
    """Each template width (output pixels) scored in ``box`` (output pixels) at
    ``scale``: ``(score, x, y, width)`` with x, y the template's top-left in output
    pixels."""
    x0, y0 = max(0.0, float(int(box[0]))), max(0.0, float(int(box[1])))
    window = _lab_window(output, box, scale)
    found = []
    for tw in dict.fromkeys(max(1, round(w * scale)) for w in widths):
        score, bx, by = _score(window, design, tw, masked)
        if score > -1.0:
            found.append((score, x0 + bx / scale, y0 + by / scale, tw / scale))
    return found


def _turned(output: Array, design: _Design, corners: Array) -> tuple[float, Array] | None:
    """The design turned by each of CORR_ANGLES degrees about the centre of its best
    upright place (``corners``, output pixels), scored near there: (score, corners)
    of the best turn, or None when none fits."""
    centre = corners.mean(axis=0)
    tw = float(np.linalg.norm(corners[1] - corners[0]))
    th = float(np.linalg.norm(corners[3] - corners[0]))
    fine = min(1.0, CORR_FINE_SIDE / max(tw, th))
    w, h = max(1, round(tw * fine)), max(1, round(th * fine))
    lab_t = resize(design.lab, (w, h))
    inside = np.ones((h, w), np.float32) if design.mask is None else resize(design.mask, (w, h))
    reach = 0.5 * float(np.hypot(tw, th)) + 0.1 * tw + 2.0
    box = (centre[0] - reach, centre[1] - reach, centre[0] + reach, centre[1] + reach)
    window = _lab_window(output, box, fine)
    origin = np.array([max(0, int(box[0])), max(0, int(box[1]))], dtype=np.float64)
    best: tuple[float, Array] | None = None
    for angle in CORR_ANGLES:
        # Rotate about the template's centre onto a canvas that holds all of it.
        rad = np.deg2rad(angle)
        cw = int(np.ceil(abs(w * np.cos(rad)) + abs(h * np.sin(rad))))
        ch = int(np.ceil(abs(w * np.sin(rad)) + abs(h * np.cos(rad))))
        if cw > window.shape[1] or ch > window.shape[0]:
            continue
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[0, 2] += (cw - w) / 2
        m[1, 2] += (ch - h) / 2
        tmpl = cv2.warpAffine(lab_t, m, (cw, ch), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(inside, m, (cw, ch), flags=cv2.INTER_LINEAR) >= 0.5
        m3 = np.repeat(mask.astype(np.float32)[:, :, None], 3, axis=2)
        res = cv2.matchTemplate(window, tmpl, cv2.TM_CCOEFF_NORMED, mask=m3)
        res = np.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)
        _, score, _, loc = cv2.minMaxLoc(res)
        if best is not None and score <= best[0]:
            continue
        # The turned rectangle's corners, back in output pixels.
        at = origin + (np.array(loc, dtype=np.float64) + (cw / 2, ch / 2)) / fine
        half = np.array([[-tw, -th], [tw, -th], [tw, th], [-tw, th]], dtype=np.float64) / 2
        # OpenCV's positive angle turns the picture anticlockwise on screen (y down).
        rot = np.array([[np.cos(rad), np.sin(rad)], [-np.sin(rad), np.cos(rad)]])
        best = (float(score), at + half @ rot.T)
    return best


def _seen(design: _Design, changed: Array | None, box: Sequence[float]) -> _Design:
    """``design`` masked to the part that lies on ``changed`` when placed at ``box``
    (normalised), if that part is at least CORR_MIN_SEEN of the design; else as it is."""
    if changed is None:
        return design
    h, w = changed.shape
    x0, y0 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x1, y1 = min(w, int(np.ceil(box[2] * w))), min(h, int(np.ceil(box[3] * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return design
    dh, dw = design.lab.shape[:2]
    part = changed[y0:y1, x0:x1].astype(np.uint8)
    on = cv2.resize(part, (dw, dh), interpolation=cv2.INTER_NEAREST) > 0
    inside = np.ones((dh, dw), bool) if design.mask is None else design.mask >= 0.5
    seen = inside & on
    if seen.all() or np.count_nonzero(seen) < CORR_MIN_SEEN * np.count_nonzero(inside):
        return design
    return _Design(design.lab, seen.astype(np.float32))


def correlate_pattern(
    output: Array,
    pattern: Array,
    *,
    region: Sequence[float],
    layer: PrintLayer | None = None,
    changed: Array | None = None,
    model: PatternModel | None = None,
) -> dict[str, Any]:
    """Find the pattern's design in ``output`` (uint8 RGB) by its colours, searching
    ``region`` (normalised): coarse to fine, every size at a long side of
    CORR_COARSE_SIDE pixels, then the CORR_CANDIDATES best places again at a long side of
    CORR_FINE_SIDE for the design (native at most), at finer size steps. With
    ``changed`` (boolean, any size: where the output differs from the target), the fine
    pass compares only the part of the design that lies on changed pixels, when that is
    at least CORR_MIN_SEEN of it: a print the model clipped (at a collar, an arm, the
    garment's edge) is judged by what it painted. A
    :func:`~.pattern.locate_pattern`-shaped result with ``method`` "colour" and
    ``score`` (the best correlation, -1..1); found when the score reaches
    CORR_MIN_SCORE. ``inliers`` is 0: no features were matched. ``model``: the pattern's
    :func:`~.pattern.pattern_model`, which keeps the design's colours across calls."""
    if layer is None:
        layer = model.layer if model is not None else pattern_layer(pattern)
    design, contrast = _design_of(layer, model)
    if contrast < CORR_MIN_CONTRAST:
        # One colour, or one smooth ramp: any flat or evenly shaded patch (a studio
        # backdrop, a plain shirt's light) correlates with it, so it proves nothing.
        return not_found(method="colour")
    aspect = design.aspect
    H, W = output.shape[:2]
    rx0, ry0 = max(0.0, region[0] * W), max(0.0, region[1] * H)
    rx1, ry1 = min(float(W), region[2] * W), min(float(H), region[3] * H)
    widest = min(rx1 - rx0, (ry1 - ry0) * aspect)
    coarse = min(1.0, CORR_COARSE_SIDE / max(rx1 - rx0, ry1 - ry0, 1.0))
    widths: list[float] = []
    width = max(CORR_MIN_SIDE / coarse, CORR_MIN_WIDTH * W)
    while width <= widest:
        widths.append(width)
        width *= CORR_STEP
    if not widths:
        return not_found(method="colour")
    region_px = (rx0, ry0, rx1, ry1)
    ranked = sorted(_search(output, region_px, coarse, design, widths, masked=False), reverse=True)
    picked: list[tuple[float, float, float, float]] = []
    for cand in ranked:
        _, x, y, tw = cand
        if all(abs(x - px) + abs(y - py) > 0.5 * pw for _, px, py, pw in picked):
            picked.append(cand)
        if len(picked) == CORR_CANDIDATES:
            break
    best = (-1.0, 0.0, 0.0, 0.0)
    best_design = design
    for _, x, y, tw in picked:
        th = tw / aspect
        fine = min(1.0, CORR_FINE_SIDE / max(tw, th))
        pad = 0.15 * tw + 2.0 / coarse
        box = (x - pad, y - pad, x + tw + pad, y + th + pad)
        steps = [tw * CORR_FINE_STEP**k for k in range(-3, 4)]
        here = _seen(design, changed, (x / W, y / H, (x + tw) / W, (y + th) / H))
        for cand in _search(output, box, fine, here, steps, masked=True):
            if cand > best:
                best, best_design = cand, here
    score, x, y, tw = best
    th = tw / aspect
    corners = np.array([[x, y], [x + tw, y], [x + tw, y + th], [x, y + th]], dtype=np.float64)
    if score > -1.0:
        turned = _turned(output, best_design, corners)
        if turned is not None and turned[0] > score:
            score, corners = turned
    if score < CORR_MIN_SCORE:
        return not_found(method="colour", score=round(score, 4))
    quad = corners / np.array([W, H], dtype=np.float64)
    lh, lw = layer.alpha.shape
    dx0, dy0, dx1, dy1 = layer.box
    return pattern_result(
        quad,
        [dx0 / lw, dy0 / lh, dx1 / lw, dy1 / lh],
        inliers=0,
        method="colour",
        score=score,
    )
