"""The labelled photos of people (shared/images/people/) and harder cases made from them, with
the label carried through the same crop or placement (used by the tests and bench/locate.py).

The photos are read from the shared folder, never copied. Each label is the chest box a
person drew (``chest_boxes.json``, good to about 0.03): the torso's front from the shoulder
line to the waist (the top's hem, or the natural waist on a dress), without the arms.

Harder framings (:func:`case`):

- ``headless``: cut just above the shoulder line, at the chin (0.15 chest widths above it);
- ``half``: cut just below the labelled waist;
- ``small``: the photo at 0.4 of its size in the middle of a canvas of its corners' colour;
- ``offcentre``: at 0.6 of its size, against the canvas's left and bottom edges;
- ``busy``: its plain studio background replaced by starry_night.jpg (the person cut out
  with the pose model's own person mask: the label does not depend on it).

And :func:`recoloured`: the photo with its top recoloured (pink, beige, red) inside a mask,
for garments in skin-like colours.

    python -m tests.people /tmp/people   # writes every case as PNG with its label drawn
"""

from __future__ import annotations

import json
import math
import sys
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from tests.paths import SHARED_IMAGES

Box = tuple[float, float, float, float]
Arr = npt.NDArray[Any]

PEOPLE = SHARED_IMAGES / "people"
KINDS = ("photo", "headless", "half", "small", "offcentre", "busy")


@cache
def labels() -> dict[str, Box]:
    """``{"model_1", ...: chest box}`` from chest_boxes.json."""
    data = json.loads((PEOPLE / "chest_boxes.json").read_text())
    return {name.removesuffix(".png"): tuple(box) for name, box in data.items()}


NAMES = [f"model_{i}" for i in range(1, 10)]


@cache
def photo(name: str) -> Arr:
    """A labelled photo as an H x W x 3 uint8 RGB array (read-only)."""
    arr = np.asarray(Image.open(PEOPLE / f"{name}.png").convert("RGB")).copy()
    arr.setflags(write=False)
    return arr


def iou(a: Any, b: Any) -> float:
    """Intersection over union of two normalised ``[x0, y0, x1, y1]`` boxes (0 when either is
    None or they have no area): the one IoU of the tests and the benches."""
    if a is None or b is None:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def corner_colour(img: Arr) -> Arr:
    """The median colour of the two top corners (a studio photo's background)."""
    h, w = img.shape[:2]
    px = np.concatenate(
        [img[: h // 10, : w // 10].reshape(-1, 3), img[: h // 10, -(w // 10) :].reshape(-1, 3)]
    )
    out: Arr = np.median(px, axis=0).astype(np.uint8)
    return out


def crop_rows(img: Arr, box: Box, y0: float, y1: float) -> tuple[Arr, Box]:
    """Rows y0..y1 (normalised) of ``img``; the label moved and clipped with them."""
    h = img.shape[0]
    a, b = round(y0 * h), round(y1 * h)
    span = (b - a) / h
    x0, by0, x1, by1 = box
    return np.ascontiguousarray(img[a:b]), (
        x0,
        max(0.0, (by0 - a / h) / span),
        x1,
        min(1.0, (by1 - a / h) / span),
    )


def place(img: Arr, box: Box, scale: float, fx: float, fy: float) -> tuple[Arr, Box]:
    """``img`` at ``scale`` on a canvas of its size in its corners' colour, its top-left at
    (fx, fy) of the free space; the label moved with it."""
    h, w = img.shape[:2]
    sw, sh = round(w * scale), round(h * scale)
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    canvas = np.empty_like(img)
    canvas[:] = corner_colour(img)
    ox, oy = round(fx * (w - sw)), round(fy * (h - sh))
    canvas[oy : oy + sh, ox : ox + sw] = small
    x0, y0, x1, y1 = box
    return canvas, ((ox + x0 * sw) / w, (oy + y0 * sh) / h, (ox + x1 * sw) / w, (oy + y1 * sh) / h)


def background(img: Arr) -> npt.NDArray[np.bool_]:
    """The plain studio background, roughly: close to the corners' colour (Lab distance
    under 8) and connected to the image's border. A white top on a pale backdrop can leak
    into it: use it only inside a chest box, where it is a thin margin."""
    lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(corner_colour(img).reshape(1, 1, 3), cv2.COLOR_RGB2LAB).astype(np.float32)
    near = np.linalg.norm(lab - ref, axis=2) < 8
    _, comp = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    border = set(np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]).tolist()))
    border.discard(0)
    out: npt.NDArray[np.bool_] = np.isin(comp, sorted(border)) & near
    return out


@cache
def person_mask(name: str) -> npt.NDArray[np.float32]:
    """The person on photo ``name``, 0..1: the pose model's own segmentation, used only to
    cut the person out for the ``busy`` case (whose label, the chest box, it cannot move)."""
    from fluxcompose.locate.pose import detect

    pose = detect(np.ascontiguousarray(photo(name)))
    assert pose is not None, name
    return pose.mask


@cache
def _starry() -> Arr:
    arr = np.asarray(Image.open(SHARED_IMAGES / "starry_night.jpg").convert("RGB"))
    return arr


def busy(name: str) -> Arr:
    """Photo ``name`` with its background (off :func:`person_mask`) replaced by
    starry_night.jpg (scaled to cover)."""
    img = photo(name)
    h, w = img.shape[:2]
    soft = cv2.GaussianBlur(1.0 - person_mask(name), (0, 0), 1.0)[..., None]
    starry = _starry()
    sh, sw = starry.shape[:2]
    s = max(w / sw, h / sh)
    size = (math.ceil(sw * s), math.ceil(sh * s))
    cover = cv2.resize(starry, size, interpolation=cv2.INTER_CUBIC)[:h, :w]
    out = img.astype(np.float32) * (1 - soft) + cover.astype(np.float32) * soft
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def case(name: str, kind: str) -> tuple[Arr, Box]:
    """The photo ``name`` framed as ``kind`` (one of KINDS) and its label."""
    img, box = photo(name), labels()[name]
    h, w = img.shape[:2]
    if kind == "photo":
        return img, box
    if kind == "headless":
        return crop_rows(img, box, box[1] - 0.15 * (box[2] - box[0]) * w / h, 1.0)
    if kind == "half":
        return crop_rows(img, box, 0.0, min(1.0, box[3] + 0.1 * (box[3] - box[1])))
    if kind == "small":
        return place(img, box, 0.4, 0.5, 0.5)
    if kind == "offcentre":
        return place(img, box, 0.6, 0.0, 1.0)
    if kind == "busy":
        return busy(name), box
    raise ValueError(f"unknown kind {kind!r}")


def recoloured(name: str, box: Box, colour: tuple[int, int, int]) -> tuple[Arr, Arr]:
    """The photo with its top (inside ``box``, normalised) recoloured to ``colour`` (RGB),
    keeping its shading; and the recoloured mask.

    The top is what inside the box has the colour of the box's middle (Lab, lightness
    weighted 0.3: shading moves lightness, not chroma; within 22), the largest piece: the
    white or yellow fabric, not the skin or the backdrop beside it."""
    img = photo(name)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
    lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2LAB).astype(np.float32)
    mx, my = (x1 - x0) // 5, (y1 - y0) // 5
    ref = np.median(lab[y0 + 2 * my : y1 - 2 * my, x0 + 2 * mx : x1 - 2 * mx].reshape(-1, 3), 0)
    d = lab - ref
    near = np.sqrt((0.3 * d[..., 0]) ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2) < 22
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    fabric = (inside & near & ~background(img)).astype(np.uint8)
    fabric = cv2.morphologyEx(fabric, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fabric, connectivity=8)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0
    mask = comp == keep
    lum = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY).astype(np.float32)
    shade = lum / max(1.0, float(np.percentile(lum[mask], 90)))
    out = img.copy()
    tinted = np.clip(np.asarray(colour, np.float32)[None, :] * shade[mask][:, None], 0, 255)
    out[mask] = tinted.astype(np.uint8)
    return out, mask


def garment_alone(name: str, background: int = 245) -> tuple[Arr, Box]:
    """The top of photo ``name`` alone, as a product shot: its fabric (:func:`recoloured`'s
    mask: the colour of the chest's middle) on a plain grey ``background`` (0..255), cropped
    to it with margins of 0.2 of its width and 0.15 of its height; and the chest label
    moved with the crop."""
    box = labels()[name]
    _, fabric = recoloured(name, box, (0, 0, 0))
    img = photo(name)
    h, w = img.shape[:2]
    ys, xs = np.nonzero(fabric)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    mx, my = round(0.2 * (x1 - x0)), round(0.15 * (y1 - y0))
    a, b = max(0, x0 - mx), min(w, x1 + mx)
    c, d = max(0, y0 - my), min(h, y1 + my)
    out = np.full_like(img, background)
    out[fabric] = img[fabric]
    cw, chh = b - a, d - c
    label = (
        (box[0] * w - a) / cw,
        (box[1] * h - c) / chh,
        (box[2] * w - a) / cw,
        (box[3] * h - c) / chh,
    )
    clipped: Box = (max(0.0, label[0]), max(0.0, label[1]), min(1.0, label[2]), min(1.0, label[3]))
    return np.ascontiguousarray(out[c:d, a:b]), clipped


def _write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        for kind in KINDS:
            img, box = case(name, kind)
            out = img.copy()
            h, w = out.shape[:2]
            p0 = (round(box[0] * w), round(box[1] * h))
            p1 = (round(box[2] * w), round(box[3] * h))
            cv2.rectangle(out, p0, p1, (255, 0, 0), 2)
            Image.fromarray(out).save(folder / f"{name}-{kind}.png")


if __name__ == "__main__":
    _write(Path(sys.argv[1] if len(sys.argv) > 1 else "people-cases"))
