"""Image inputs and the conversions every compare module shares.

Pixel values are 8-bit (0..255); luminance is ITU-R BT.601 ``Y = 0.299 R + 0.587 G +
0.114 B``; Lab is CIE L*a*b* (D65) with L in 0..100 and a, b roughly -128..127
(OpenCV's float conversion). Sizes are ``(width, height)`` in pixels.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from ..errors import InputError
from ..images import load_image, to_rgb
from ..lru import LruCache

__all__ = [
    "Array",
    "ContentCache",
    "ImageLike",
    "fit_area",
    "fit_side",
    "gray8",
    "lab",
    "luma",
    "resize",
    "rgb_array",
    "small_luma",
    "to_pil",
]

Array = npt.NDArray[Any]
ImageLike = Image.Image | str | os.PathLike[str] | Array

LUMA_ROWS = 64  # rows converted to luminance at a time


def to_pil(image: ImageLike) -> Image.Image:
    """Any accepted image input as a PIL RGB image: a path or URL through
    :func:`fluxcompose.images.load_image` (EXIF upright, ImageError when unreadable),
    alpha flattened onto white."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        return Image.fromarray(rgb_array(image))
    if isinstance(image, str | os.PathLike):
        return load_image(str(image)).image
    raise InputError(f"not an image: {type(image).__name__}")


def rgb_array(image: ImageLike) -> Array:
    """H x W x 3 uint8 RGB array."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise InputError(f"expected an H x W x 3 image array, got shape {arr.shape}")
        arr = arr[:, :, :3]
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    return np.asarray(to_pil(image), dtype=np.uint8)


def luma(image: ImageLike) -> Array:
    """ITU-R BT.601 luminance as float32 in 0..255 (2-D arrays pass through as float32)."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return image.astype(np.float32, copy=False)
    # OpenCV's float RGB2GRAY uses exactly 0.299, 0.587, 0.114 (and is ~3x faster than numpy),
    # converted LUMA_ROWS rows at a time through one small float buffer: per pixel the same,
    # without a float copy of the whole image (12 MB at 1 MP).
    rgb = rgb_array(image)
    h, w = rgb.shape[:2]
    grey: Array = np.empty((h, w), np.float32)
    buf = np.empty((min(h, LUMA_ROWS), w, 3), np.float32)
    for top in range(0, h, LUMA_ROWS):
        rows = buf[: min(h, top + LUMA_ROWS) - top]
        np.copyto(rows, rgb[top : top + len(rows)], casting="unsafe")
        cv2.cvtColor(rows, cv2.COLOR_RGB2GRAY, dst=grey[top : top + len(rows)])
    return grey


def gray8(image: ImageLike) -> Array:
    """BT.601 luminance rounded to uint8 (what feature detectors take)."""
    return np.clip(np.rint(luma(image)), 0, 255).astype(np.uint8)


def small_luma(image: ImageLike, size: tuple[int, int]) -> Array:
    """Luminance at ``size`` (w, h): shrink the 8-bit pixels first (area averaging is
    linear, so this equals shrinking the luminance up to 8-bit rounding), much cheaper."""
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return resize(image.astype(np.float32, copy=False), size)
    return luma(resize(rgb_array(image), size))


def resize(arr: Array, size: tuple[int, int]) -> Array:
    """Resize an array to (width, height): area averaging to shrink, bicubic to grow."""
    w, h = size
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    shrink = w * h < arr.shape[0] * arr.shape[1]
    out: Array = cv2.resize(
        arr, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )
    return out


def fit_side(width: int, height: int, side: int) -> tuple[int, int]:
    """(w, h) scaled down so the long side is at most ``side`` (never up)."""
    s = min(1.0, side / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def fit_area(width: int, height: int, pixels: int) -> tuple[int, int]:
    """(w, h) scaled down so the area is at most ``pixels`` (never up)."""
    s = min(1.0, math.sqrt(pixels / (width * height)))
    return max(1, round(width * s)), max(1, round(height * s))


def lab(rgb: Array) -> Array:
    """float32 Lab (L 0..100) of a uint8 RGB array."""
    scaled = rgb.astype(np.float32)
    scaled /= 255.0
    out: Array = cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab)
    return out


T = TypeVar("T")


class ContentCache(Generic[T]):
    """A small thread-safe LRU cache (:class:`~fluxcompose.lru.LruCache`, one entry each)
    of what is computed from an image, keyed by the image's pixels (a BLAKE2b hash of the
    uint8 array and its shape) and a tag, so a batch with one pattern or style source
    computes its features once."""

    def __init__(self, size: int) -> None:
        self._lru: LruCache[T] = LruCache(size)

    def get(self, pixels: Array, tag: str, compute: Callable[[], T]) -> T:
        """The value for ``pixels`` (uint8 array) and ``tag``, computed by ``compute``
        (outside the lock) when it is not kept."""
        # The array's own buffer: the same bytes as ``tobytes()``, without copying them.
        digest = hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=16)
        digest.update(repr(pixels.shape).encode())
        key = (digest.hexdigest(), tag)
        kept = self._lru.get(key)
        if kept is not None:
            return kept
        value = compute()
        self._lru.put(key, value)
        return value
