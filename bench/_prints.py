"""Prints pasted onto real photos, with the truth of where they went: shared by
bench/compare.py and the recall tests (imported as ``bench._prints`` from the tests).

Two kinds of print, as real pattern-transfer jobs bring them:

- ``logo``: a drawn design on a plain (here transparent, so white) background,
  samples/pattern.png;
- ``photo``: an all-over photographic print with no plain border: smooth colour
  gradients with fine noise (:func:`all_over_print`), or a crop of a painting
  (starry_night.jpg).

:func:`paste_print` puts one on a target at a given width, shaded by the fabric's folds:
the print is multiplied by the target's local luminance over its median under the
print, so folds and light fall across it as on a real garment.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from tests.paths import SHARED_IMAGES
from tests.people import PEOPLE, labels

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = SHARED_IMAGES  # found where the tests find it (tests/paths.py): one rule for both

Array = npt.NDArray[Any]
Box = tuple[float, float, float, float]


def logo() -> Array:
    """samples/pattern.png as H x W x 4 uint8 RGBA (a logo on a transparent square)."""
    return np.asarray(Image.open(SAMPLES / "pattern.png").convert("RGBA"), dtype=np.uint8)


def all_over_print(seed: int, size: tuple[int, int] = (512, 512)) -> Array:
    """A photographic all-over print, H x W x 4 RGBA (opaque): smooth colour gradients (a
    few random colours on a coarse grid, bicubic-interpolated) with fine grain (noise of
    sigma 6 levels per pixel), and no plain border anywhere."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.uniform(20, 235, (5, 5, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    finer = cv2.resize(
        rng.uniform(-40, 40, (12, 12, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    grain = rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    rgb = np.clip(smooth + finer + grain, 0, 255).astype(np.uint8)
    return np.dstack([rgb, np.full((h, w), 255, np.uint8)])


def painting_crop(seed: int, size: tuple[int, int] = (480, 400)) -> Array:
    """A crop of starry_night.jpg (a busy photographic print), RGBA opaque."""
    rng = np.random.default_rng(seed)
    img = np.asarray(Image.open(SHARED / "starry_night.jpg").convert("RGB"), dtype=np.uint8)
    w, h = size
    x = int(rng.integers(0, img.shape[1] - w + 1))
    y = int(rng.integers(0, img.shape[0] - h + 1))
    crop = img[y : y + h, x : x + w]
    return np.dstack([crop, np.full((h, w), 255, np.uint8)])


def print_kinds(seed: int) -> dict[str, Array]:
    """The prints of each kind for one case: ``logo``, ``gradient`` (all-over, procedural)
    and ``painting`` (all-over, a crop of a painting)."""
    return {"logo": logo(), "gradient": all_over_print(seed), "painting": painting_crop(seed)}


def flat(print_rgba: Array) -> Image.Image:
    """The print as the user gives it: RGB, transparency flattened onto white."""
    a = print_rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = print_rgba[:, :, :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def people() -> list[tuple[str, Image.Image, Box]]:
    """(name, RGB image, labelled chest box) for each photo in shared/images/people."""
    return [
        (f"{name}.png", Image.open(PEOPLE / f"{name}.png").convert("RGB"), box)
        for name, box in sorted(labels().items())
    ]


def paste_print(
    target: Image.Image,
    print_rgba: Array,
    center: tuple[float, float],
    width: float,
    *,
    shade: bool = True,
    quality: int | None = 92,
) -> tuple[Image.Image, Box]:
    """``print_rgba`` pasted on ``target``: ``width`` of the image's width (the whole
    print's, border included), centred on ``center`` (normalised), shaded by the target's
    folds when ``shade``, then JPEG-encoded at ``quality`` (None: not). Returns the
    output and the truth: the design's box (alpha >= 0.5), normalised 0..1."""
    t = np.asarray(target, dtype=np.float32)
    H, W = t.shape[:2]
    pw = max(8, round(width * W))
    ph = max(8, round(pw * print_rgba.shape[0] / print_rgba.shape[1]))
    small = cv2.resize(print_rgba, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
    x0 = round(center[0] * W - pw / 2)
    y0 = round(center[1] * H - ph / 2)
    layer = np.zeros((H, W, 4), np.float32)
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(W, x0 + pw), min(H, y0 + ph)
    layer[dy0:dy1, dx0:dx1] = small[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    alpha = layer[:, :, 3:4] / 255.0
    rgb = layer[:, :, :3]
    if shade:
        y = cv2.cvtColor(t, cv2.COLOR_RGB2GRAY)
        y = cv2.GaussianBlur(y, (0, 0), 2.0)
        under = y[alpha[:, :, 0] > 0.5]
        ratio = y / max(float(np.median(under)) if under.size else 1.0, 1.0)
        rgb = rgb * np.clip(ratio, 0.3, 1.6)[:, :, None]
    out = np.clip(np.rint(t * (1 - alpha) + rgb * alpha), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha[:, :, 0] >= 0.5)
    truth = (xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H)
    img = Image.fromarray(out)
    return (jpeg(img, quality) if quality else img), truth


def jpeg(im: Image.Image, quality: int) -> Image.Image:
    """``im`` through a JPEG round trip at ``quality`` (4:2:0, as cameras and models send)."""
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")
