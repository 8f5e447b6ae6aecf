"""The print: a pattern's design without its plain background.

A pattern is often a logo or an emblem on a plain border colour (white, or a flat navy).
What a print "2/3 of the chest wide" means is the design's width, not the rectangle's,
so both the local preview (which paints the print) and compare (which measures it) cut
the design out here, the same way. Colours are 8-bit RGB (0..255); alpha is 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Color", "PrintLayer", "print_layer"]

RGB = NDArray[np.uint8]
"""An image as an (height, width, 3) uint8 RGB array."""

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels, x1/y1 exclusive."""

PRINT_RING = 0.03
"""Width of the pattern's outer ring, as a fraction of its shorter side, read for its border colour."""

PLAIN_BORDER_SHARE = 0.85
"""Share of the ring within BORDER_TOLERANCE of one colour for the pattern to have a plain background."""

BORDER_TOLERANCE = 24
"""Largest channel difference (0..255) from the border colour that still counts as border."""

ALPHA_RAMP = 24.0
"""Channel-difference span (0..255) over which the print's alpha rises from 0 to 1."""

EDGE_BAND = 2
"""Pixels of a print's edge, next to the dropped background, whose colour is unmixed."""

Color = tuple[int, int, int]


@dataclass(frozen=True)
class PrintLayer:
    """The print cut from a pattern cell.

    ``premultiplied`` is alpha times the print's own colour (0..255 scale, float32, h x w x 3),
    with the plain background's colour unmixed from its edges; ``alpha`` is 0..1
    (float32, h x w). ``background`` is the dropped plain colour, or None when the whole
    rectangle is kept (a photo-like pattern). ``box`` is the foreground (alpha >= 0.5) in
    the layer's pixels; ``note`` says why the whole rectangle was kept, if it was.
    """

    premultiplied: NDArray[np.float32]
    alpha: NDArray[np.float32]
    background: Color | None
    box: Box
    note: str | None = None


def _ring(h: int, w: int) -> NDArray[np.bool_]:
    r = max(1, min(round(PRINT_RING * min(h, w)), min(h, w) // 4))
    ring = np.ones((h, w), dtype=bool)
    if h > 2 * r and w > 2 * r:
        ring[r : h - r, r : w - r] = False
    return ring


def _bbox(mask: NDArray[np.bool_]) -> Box | None:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _without_specks(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask`` without connected specks smaller than 1/2000 of the image (at least 4
    pixels): JPEG noise or dust on a plain background is not the print."""
    import cv2

    h, w = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    keep = stats[:, cv2.CC_STAT_AREA] >= max(4, (h * w) // 2000)
    keep[0] = False
    out: NDArray[np.bool_] = keep[labels]
    return out


def print_layer(pattern: RGB, hint: Color | None = None, *, unmix: bool = True) -> PrintLayer:
    """Drop ``pattern``'s plain background: the colour of its outer ring (the median, or
    ``hint``, the canvas background, whichever more of the ring matches).

    Pixels that differ from it by more than the ring's own noise get alpha rising to 1
    over ALPHA_RAMP channel units; gaps inside the print that show the background stay
    gaps; specks (under 1/2000 of the pattern) are dropped. With no plain border (under
    PLAIN_BORDER_SHARE of the ring matches one colour) or nothing but border, the whole
    rectangle is the print. ``unmix`` takes the background out of the print's edge
    colours (:func:`_defringe`): what painting needs, and measuring does not.
    """
    import cv2

    h, w = pattern.shape[:2]
    img = pattern.astype(np.float32)
    whole = PrintLayer(img, np.ones((h, w), dtype=np.float32), None, (0, 0, w, h))
    ring_px = pattern[_ring(h, w)].astype(np.int16)
    candidates: list[Color] = [
        (int(v[0]), int(v[1]), int(v[2])) for v in [np.median(ring_px, axis=0).round()]
    ]
    if hint is not None:
        candidates.append(hint)
    best: tuple[float, Color, NDArray[np.int16]] | None = None
    for colour in candidates:
        dev = np.abs(ring_px - np.array(colour, dtype=np.int16)).max(axis=1)
        share = float((dev <= BORDER_TOLERANCE).mean())
        if best is None or share > best[0]:
            best = (share, colour, dev)
    assert best is not None
    share, bg, dev = best
    if share < PLAIN_BORDER_SHARE:
        return whole
    noise = float(np.percentile(dev[dev <= BORDER_TOLERANCE], 95))
    lo = min(max(noise + 6.0, 10.0), 30.0)
    bg_arr = np.array(bg, dtype=np.float32)
    diff = np.abs(img - bg_arr).max(axis=2)
    alpha = np.clip((diff - lo) / ALPHA_RAMP, 0.0, 1.0).astype(np.float32)
    solid = _without_specks(alpha >= 0.5)
    alpha = np.where(cv2.dilate(solid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0, alpha, 0)
    alpha = alpha.astype(np.float32)
    box = _bbox(solid)
    if box is None:
        return PrintLayer(
            whole.premultiplied, whole.alpha, None, whole.box, "the pattern is all background"
        )
    if not unmix:
        return PrintLayer(img * alpha[..., None], alpha, bg, box)
    alpha, own = _defringe(img, alpha, bg_arr)
    return PrintLayer(own * alpha[..., None], alpha, bg, box)


def _defringe(
    img: NDArray[np.float32], alpha: NDArray[np.float32], bg: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Alpha and the print's own colour F, with the background taken out of its edges.

    An anti-aliased edge pixel is c = a*F + (1-a)*B. Within EDGE_BAND pixels of the
    background, F is the colour of the nearest solid print pixel and a is c - B projected
    on F - B; elsewhere F is the pixel itself. So a dark outline flattened on white does
    not leave a pale fringe on a dark garment.
    """
    import cv2

    colour = img.copy()
    background = (alpha <= 0).astype(np.uint8)
    if not background.any():
        return alpha, colour
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE_BAND + 1, 2 * EDGE_BAND + 1))
    near = cv2.dilate(background, k) > 0
    core = ~near & (alpha >= 1.0)
    band = near & (alpha > 0)
    if not core.any() or not band.any():
        return alpha, colour
    _, labels = cv2.distanceTransformWithLabels(
        (~core).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lut = np.zeros((int(labels.max()) + 1, 3), np.float32)
    lut[labels[core]] = img[core]
    f = lut[labels[band]]
    d = f - bg
    d2 = (d * d).sum(axis=1)
    a = ((img[band] - bg) * d).sum(axis=1) / np.maximum(d2, 1.0)
    usable = d2 >= 30.0**2  # a solid colour too close to the background says nothing
    new_alpha = alpha.copy()
    band_alpha = np.where(usable, np.clip(a, 0.0, 1.0), alpha[band])
    new_alpha[band] = band_alpha
    colour[band] = np.where(usable[:, None], f, colour[band])
    return new_alpha.astype(np.float32), colour
