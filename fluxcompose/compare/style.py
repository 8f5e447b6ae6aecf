"""Style: how far the output moved toward a style source, in colour (Lab statistics) and
in texture (contrast-normalised gradient statistics).

Lab is CIE L*a*b* (D65), L 0..100, a and b roughly -128..127.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .imaging import Array, ContentCache, ImageLike, fit_side, lab, luma, resize, rgb_array
from .metrics import phash

__all__ = [
    "StyleSource",
    "lab_stats",
    "lab_stats_distance",
    "style_metric",
    "style_source",
    "texture_distance",
    "texture_features",
]

STYLE_WORK_SIDE = 256  # long side for Lab statistics


def lab_stats(image: ImageLike) -> Array:
    """``[mean L, mean a, mean b, std L, std a, std b]`` in Lab units (float64)."""
    rgb = rgb_array(image)
    rgb = resize(rgb, fit_side(rgb.shape[1], rgb.shape[0], STYLE_WORK_SIDE))
    # One pass in double precision: the same values to ~1e-12 Lab units, without numpy's
    # column means and deviations of an N x 3 float64 copy (~4 ms of the 6 this took).
    mean, std = cv2.meanStdDev(lab(rgb))
    return np.concatenate([mean.reshape(3), std.reshape(3)]).astype(np.float64)


def lab_stats_distance(a: ImageLike, b: ImageLike) -> float:
    """Euclidean distance between the Lab statistics vectors of two images.

    ``d = sqrt(sum_c (mean_a[c] - mean_b[c])^2 + sum_c (std_a[c] - std_b[c])^2)`` over
    the channels c in (L, a, b), in Lab units, computed at a long side of 256 pixels.
    0 means the same colour distribution to first and second order.
    """
    return float(np.linalg.norm(lab_stats(a) - lab_stats(b)))


TEXTURE_WORK_SIDE = 320  # long side for the texture statistics
TEXTURE_SCALES = 3  # octaves: the working size, 1/2 and 1/4 of it
TEXTURE_BINS = 8  # gradient orientation bins over 0..180 degrees (a power of 2)
TEXTURE_WINDOW = 4.0  # sigma (pixels) of the local mean and contrast
TEXTURE_CONTRAST_FLOOR = 0.2  # x the image's luminance std: keeps flat areas from exploding
TEXTURE_MARGIN = 0.15  # the output must be this much (relative) closer in texture


def texture_features(image: ImageLike) -> Array:
    """Texture statistics of an image, blind to colour and to any global gain and offset
    of the luminance (so a colour cast or a Reinhard transfer leaves them unchanged).

    At a long side of 320 pixels and two further octaves (``pyrDown``), the luminance is
    normalised by its local contrast, ``n = (Y - mu) / (sigma + 0.2 std(Y))`` with mu and
    sigma a Gaussian (sigma 4 px) local mean and standard deviation. On ``n``, per scale:

    - an 8-bin histogram of gradient orientation (0..180 degrees) weighted by the
      gradient magnitude, summing to 1 (which way the strokes run);
    - ``log(0.05 + mean gradient magnitude)`` (high-frequency energy against local
      contrast: fine brush strokes raise it, smoothing lowers it);
    - the structure-tensor coherence (0..1, tensor sigma 2 px) averaged with the
      tensor's trace as weight (how stroke-like, i.e. oriented, the detail is).

    Returns a float64 vector of ``3 * (8 + 2)`` values, per scale in that order.
    """
    rgb = rgb_array(image)
    y = luma(resize(rgb, fit_side(rgb.shape[1], rgb.shape[0], TEXTURE_WORK_SIDE)))
    floor = TEXTURE_CONTRAST_FLOOR * float(y.std()) + 1e-3
    feats: list[float] = []
    for _ in range(TEXTURE_SCALES):
        mu = cv2.GaussianBlur(y, (0, 0), TEXTURE_WINDOW)
        d = y - mu
        sd = np.sqrt(cv2.GaussianBlur(d * d, (0, 0), TEXTURE_WINDOW))
        n = d / (sd + floor)
        gx = cv2.Sobel(n, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(n, cv2.CV_32F, 0, 1, ksize=3)
        mag = cv2.magnitude(gx, gy)
        bins = _orientation_bins(gx, gy)
        counts = np.bincount(bins.ravel(), weights=mag.ravel(), minlength=TEXTURE_BINS)
        hist = counts.astype(np.float64) / max(float(counts.sum()), 1e-9)
        jxx = cv2.GaussianBlur(gx * gx, (0, 0), 2.0)
        jyy = cv2.GaussianBlur(gy * gy, (0, 0), 2.0)
        jxy = cv2.GaussianBlur(gx * gy, (0, 0), 2.0)
        trace = jxx + jyy
        coh = np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy * jxy) / (trace + 1e-6)
        coherence = float((coh * trace).sum(dtype=np.float64) / max(float(trace.sum()), 1e-9))
        feats.extend(float(v) for v in hist)
        # + 0.05 bounds the log for flat images (normal photos are ~1..4 here).
        feats.append(math.log(float(mag.mean(dtype=np.float64)) + 0.05))
        feats.append(coherence)
        if min(y.shape) < 16:
            # Too small for another octave: repeat the last scale's statistics.
            feats.extend(feats[-(TEXTURE_BINS + 2) :])
            continue
        y = cv2.pyrDown(y)
    return np.asarray(feats[: TEXTURE_SCALES * (TEXTURE_BINS + 2)], dtype=np.float64)


# In bins (22.5 degrees each): OpenCV documents its phase as accurate to ~0.3 degrees (0.013
# bins; measured: 1e-2 degrees), so a gradient further than this from a bin's edge is binned
# the same by both.
ANGLE_SLACK = 0.02


def _orientation_bins(gx: Array, gy: Array) -> Array:
    """The orientation bin (0..TEXTURE_BINS - 1 over 0..180 degrees) of each gradient,
    ``min(floor(mod(arctan2(gy, gx), pi) * TEXTURE_BINS / pi), TEXTURE_BINS - 1)`` in
    float32: read off OpenCV's fast phase (~10x faster than numpy's arctan2), and by that
    formula itself for the few gradients within ANGLE_SLACK of a bin's edge, where the
    two could disagree. So the bins are exactly the formula's."""
    turns = cv2.phase(gx, gy) * np.float32(TEXTURE_BINS / np.pi)  # 0..2 * TEXTURE_BINS
    bins = turns.astype(np.int32) & (TEXTURE_BINS - 1)  # mod 8 of 0..16, as an AND
    edge = np.abs(turns - np.rint(turns)) < ANGLE_SLACK
    if edge.any():
        ang = np.mod(np.arctan2(gy[edge], gx[edge]), np.pi)
        bins[edge] = np.minimum((ang * (TEXTURE_BINS / np.pi)).astype(np.int64), TEXTURE_BINS - 1)
    return bins


def texture_distance(a: Array, b: Array) -> float:
    """Distance (>= 0) between two :func:`texture_features` vectors: summed over the
    scales, the L1 distance of the orientation histograms (0..2 each) plus the absolute
    difference of the log energies plus that of the coherences (0..1 each)."""
    return float(np.abs(np.asarray(a) - np.asarray(b)).sum())


@dataclass(frozen=True)
class StyleSource:
    """What compare needs of a style source, computed once from its pixels: ``lab`` its
    :func:`lab_stats` and ``texture`` its :func:`texture_features` (both at the
    texture's working size), ``phash`` its :func:`~.metrics.phash` (at full size)."""

    lab: Array
    texture: Array
    phash: int


_SOURCES: ContentCache[StyleSource] = ContentCache(8)


def style_source(style: ImageLike) -> StyleSource:
    """The :class:`StyleSource` of ``style``, kept by content (its own pixels), so a batch
    with one style source shrinks and measures it once."""
    rgb = rgb_array(style)

    def compute() -> StyleSource:
        small = resize(rgb, fit_side(rgb.shape[1], rgb.shape[0], TEXTURE_WORK_SIDE))
        return StyleSource(lab_stats(small), texture_features(small), phash(rgb))

    return _SOURCES.get(rgb, "style", compute)


def style_metric(
    output: ImageLike, target: ImageLike, style: ImageLike, *, source: StyleSource | None = None
) -> dict[str, Any]:
    """How far the output moved toward the style source, in colour and in texture.

    Returns ``{"output_to_style", "target_to_style", "colour_closer",
    "texture_output_to_style", "texture_target_to_style", "texture_closer", "closer"}``:

    - colour: Lab-statistics distances (:func:`lab_stats_distance`, Lab units);
      ``colour_closer = output_to_style < target_to_style``;
    - texture: :func:`texture_distance` of :func:`texture_features`;
      ``texture_closer = texture_output_to_style < (1 - 0.15) * texture_target_to_style``
      (a margin: re-encoding or a colour change alone moves it a few per cent);
    - ``closer = colour_closer and texture_closer``: a colour transfer alone is not a
      restyle.

    ``source`` reuses the style's :func:`style_source` when the caller has it.
    """
    src = source if source is not None else style_source(style)
    d1 = float(np.linalg.norm(lab_stats(output) - src.lab))
    d2 = float(np.linalg.norm(lab_stats(target) - src.lab))
    t1 = texture_distance(texture_features(output), src.texture)
    t2 = texture_distance(texture_features(target), src.texture)
    colour_closer = bool(d1 < d2)
    texture_closer = bool(t1 < (1.0 - TEXTURE_MARGIN) * t2)
    return {
        "output_to_style": d1,
        "target_to_style": d2,
        "colour_closer": colour_closer,
        "texture_output_to_style": t1,
        "texture_target_to_style": t2,
        "texture_closer": texture_closer,
        "closer": colour_closer and texture_closer,
    }
