"""The subject's vocabulary: boxes, :class:`Subject`, placement words (DESIGN.md s. 10).

Every box is ``(x0, y0, x1, y1)`` normalised 0..1 on the upright image. Pure: no I/O, and
no detector is imported here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError

__all__ = [
    "PLACEMENT_WORDS",
    "Box",
    "Mask",
    "Subject",
    "parse_box",
    "placement_point",
    "point_in_box",
]

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1), normalised 0..1, x0 < x1 and y0 < y1."""

Mask = npt.NDArray[np.bool_]
"""A boolean image, True on the garment."""


@dataclass(frozen=True)
class Subject:
    """What :func:`locate` found on one upright image.

    ``mask`` is the garment mask (True on the garment's fabric) at ``mask.shape`` =
    (h, w) of the image it was computed on, possibly a reduced working size; use
    :meth:`garment_mask` for any other size. None when nothing was found.
    """

    found: bool
    method: str  # "pose" | "garment" | "given" | "none"
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
