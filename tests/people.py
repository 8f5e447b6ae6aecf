"""Deterministic renders of people in a T-shirt, with the ground truth ``locate`` should find.

Each render pastes a REAL face (cut from grace_hopper.jpg, so the Haar cascade has a real
face to find) on a drawn body: skin-coloured neck and arms (so skin exclusion matters), a
shaded, textured T-shirt with short sleeves, trousers; on a plain, busy or two-panel
background. The truth:

- ``chest_box``: the torso's front, from the shoulder line (chin + 0.3 face widths) down to
  the shirt's hem (or the image's bottom edge), side to side between the armpits;
- ``garment``: the shirt's pixels (sleeves included), True where the fabric shows.

Body proportions are in units of the face's width ``fw`` (the Haar box of grace_hopper's face
is 220 px wide on its 512 px width) and measured from the chin.

    python -m tests.people /tmp/people   # writes every render as PNG, with its truth drawn
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from tests.paths import ROOT, SHARED_IMAGES

Box = tuple[float, float, float, float]
Float = npt.NDArray[Any]  # float32 images in 0..1 (OpenCV's stubs do not keep dtypes)

# grace_hopper.jpg: the head cut out (x0, y0, x1, y1) and where its face and chin are.
HEAD_CROP = (146, 92, 388, 350)
FACE_W = 220.0  # Haar box width on the 512 px original
CHIN_Y = 332.0  # the chin, on the original


@dataclass(frozen=True)
class Render:
    """One rendered person and what is true about it."""

    name: str
    image: npt.NDArray[np.uint8]  # H x W x 3 RGB
    chest_box: Box  # normalised 0..1
    garment: npt.NDArray[np.bool_]  # H x W
    has_face: bool

    @property
    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


@lru_cache(maxsize=1)
def _head() -> tuple[Float, Float]:
    """The head crop (RGB 0..1) and its soft elliptical alpha."""
    src = np.asarray(Image.open(SHARED_IMAGES / "grace_hopper.jpg").convert("RGB"))
    x0, y0, x1, y1 = HEAD_CROP
    rgb = src[y0:y1, x0:x1].astype(np.float32) / 255
    h, w = rgb.shape[:2]
    alpha: Float = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (w // 2, h // 2 + 4), (w // 2 - 4, h // 2 - 4), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3)
    return rgb, alpha


def _skin_rgb() -> tuple[float, float, float]:
    """The median colour of the pasted face's cheeks (0..1), so neck and arms match it."""
    src = np.asarray(Image.open(SHARED_IMAGES / "grace_hopper.jpg").convert("RGB"))
    cheeks = src[250:300, 200:330].reshape(-1, 3)
    med = np.median(cheeks, axis=0) / 255
    return float(med[0]), float(med[1]), float(med[2])


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> Float:
    h, w = shape
    small = rng.random((cells, cells)).astype(np.float32)
    f = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    f -= f.min()
    return f / max(float(f.max()), 1e-6)


def _fill(
    canvas: Float, poly: list[tuple[float, float]], colour: Float | tuple[float, ...]
) -> Float:
    """Fill ``poly`` (pixel points) on ``canvas`` with ``colour`` (a colour or an image);
    returns the polygon's coverage (0..1, antialiased)."""
    h, w = canvas.shape[:2]
    cover = np.zeros((h, w), np.float32)
    pts = np.round(np.array(poly) * 16).astype(np.int32)
    cv2.fillPoly(cover, [pts], 1.0, cv2.LINE_AA, shift=4)
    c = cover[..., None]
    canvas *= 1 - c
    canvas += c * (colour if isinstance(colour, np.ndarray) else np.array(colour, np.float32))
    return cover


def _limb(
    a: tuple[float, float], b: tuple[float, float], width: float
) -> list[tuple[float, float]]:
    """A quadrilateral of ``width`` from point a to point b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = math.hypot(dx, dy) or 1.0
    ox, oy = -dy / n * width / 2, dx / n * width / 2
    return [
        (a[0] + ox, a[1] + oy),
        (b[0] + ox, b[1] + oy),
        (b[0] - ox, b[1] - oy),
        (a[0] - ox, a[1] - oy),
    ]


def _shirt_polygon(cx: float, chin: float, fw: float) -> list[tuple[float, float]]:
    """The T-shirt's outline: neckline, shoulders, short sleeves, straight sides to the hem."""
    pts: list[tuple[float, float]] = []
    left = [
        (cx - 0.42 * fw, chin + 0.02 * fw),  # neck
        (cx - 1.22 * fw, chin + 0.26 * fw),  # shoulder point
        (cx - 1.42 * fw, chin + 0.45 * fw),
        (cx - 1.62 * fw, chin + 1.02 * fw),  # sleeve, outside
        (cx - 1.18 * fw, chin + 1.16 * fw),  # sleeve, inside
        (cx - 1.10 * fw, chin + 0.98 * fw),  # armpit
        (cx - 1.06 * fw, chin + 2.6 * fw),  # hem
    ]
    pts += left
    pts += [(2 * cx - x, y) for x, y in reversed(left)]
    # The neckline: a curve from the right neck point down to the chest and up again.
    for t in np.linspace(0.0, math.pi, 15):
        pts.append((cx + 0.42 * fw * math.cos(t), chin + 0.02 * fw + 0.28 * fw * math.sin(t)))
    return pts


def _person(
    canvas: Float,
    rng: np.random.Generator,
    *,
    cx: float,
    chin: float,
    fw: float,
    shirt: tuple[float, float, float],
    head: bool = True,
    stripes: tuple[float, float, float] | None = None,
) -> tuple[Box, npt.NDArray[np.bool_]]:
    """Draw one person on ``canvas`` (H x W x 3, 0..1); return its chest box (pixels) and
    garment mask."""
    h, w = canvas.shape[:2]
    skin = np.array(_skin_rgb(), np.float32)
    shade = 0.8 + 0.25 * _smooth(rng, (h, w), 5)[..., None]
    skin_img = np.clip(skin * shade, 0, 1)
    # Trousers.
    trousers = np.array((0.16, 0.18, 0.26), np.float32) * (
        0.8 + 0.4 * _smooth(rng, (h, w), 9)[..., None]
    )
    hem = chin + 2.6 * fw
    feet = chin + 7.3 * fw
    for side in (-1, 1):
        _fill(
            canvas,
            _limb((cx + side * 0.55 * fw, hem - 0.2 * fw), (cx + side * 0.6 * fw, feet), 0.95 * fw),
            trousers,
        )
        _fill(
            canvas,
            _limb((cx + side * 0.6 * fw, feet - 0.1 * fw), (cx + side * 0.95 * fw, feet), 0.4 * fw),
            (0.1, 0.08, 0.07),
        )
    # Arms (skin), hanging just outside the torso.
    for side in (-1, 1):
        shoulder = (cx + side * 1.38 * fw, chin + 0.7 * fw)
        elbow = (cx + side * 1.5 * fw, chin + 2.0 * fw)
        wrist = (cx + side * 1.44 * fw, chin + 3.05 * fw)
        _fill(canvas, _limb(shoulder, elbow, 0.42 * fw), skin_img)
        _fill(canvas, _limb(elbow, wrist, 0.36 * fw), skin_img)
        hand = np.zeros((h, w), np.float32)
        cv2.ellipse(
            hand,
            (round(wrist[0]), round(wrist[1] + 0.2 * fw)),
            (max(1, round(0.2 * fw)), max(1, round(0.3 * fw))),
            0,
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
        canvas[:] = canvas * (1 - hand[..., None]) + skin_img * hand[..., None]
    # The shirt: its colour, light from the upper left, folds, a knit texture.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = (
        1.0
        - 0.18 * np.clip((xx - cx) / (2 * fw), -1, 1)
        - 0.08 * np.clip((yy - chin) / (3 * fw), 0, 1)
    )
    folds = (
        0.08
        * np.sin((xx - cx) / (0.35 * fw) + 3 * _smooth(rng, (h, w), 4))
        * _smooth(rng, (h, w), 3)
    )
    knit = rng.normal(0, 0.025, (h, w)).astype(np.float32)
    tone = np.clip(light + folds + knit, 0.55, 1.2)[..., None]
    base = np.empty((h, w, 3), np.float32)
    base[:] = shirt
    if stripes is not None:  # horizontal stripes 0.2 face widths apart
        band = (np.floor((yy - chin) / (0.2 * fw)) % 2 == 1)[..., None]
        base = np.where(band, np.array(stripes, np.float32), base)
    fabric = np.clip(base * tone, 0, 1)
    cover = _fill(canvas, _shirt_polygon(cx, chin, fw), fabric)
    # Neck (skin) over the neckline.
    neck = [
        (cx - 0.3 * fw, chin - 0.3 * fw),
        (cx + 0.3 * fw, chin - 0.3 * fw),
        (cx + 0.3 * fw, chin + 0.22 * fw),
        (cx - 0.3 * fw, chin + 0.22 * fw),
    ]
    neck_cover = np.zeros((h, w), np.float32)
    pts = np.round(np.array(neck) * 16).astype(np.int32)
    cv2.fillPoly(neck_cover, [pts], 1.0, cv2.LINE_AA, shift=4)
    # Only the part inside the neckline shows: above the shirt or where the neckline cuts it.
    neckline = np.zeros((h, w), np.float32)
    cv2.ellipse(
        neckline,
        (round(cx), round(chin + 0.02 * fw)),
        (max(1, round(0.42 * fw)), max(1, round(0.28 * fw))),
        0,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
    )
    above = (yy < chin + 0.02 * fw).astype(np.float32)
    show = neck_cover * np.maximum(above, neckline)
    canvas[:] = canvas * (1 - show[..., None]) + skin_img * show[..., None]
    garment = cover * (1 - show)
    if head:
        hr, ha = _head()
        s = fw / FACE_W
        x0, y0, x1, y1 = HEAD_CROP
        hw, hh = max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))
        hr = cv2.resize(hr, (hw, hh), interpolation=cv2.INTER_AREA)
        ha = cv2.resize(ha, (hw, hh), interpolation=cv2.INTER_AREA)
        # Place the crop so that its chin lands on ``chin`` and its centre on ``cx``.
        px = round(cx - hw / 2)
        py = round(chin - (CHIN_Y - y0) * s)
        a0, b0 = max(0, px), max(0, py)
        a1, b1 = min(w, px + hw), min(h, py + hh)
        if a1 > a0 and b1 > b0:
            sub_a = ha[b0 - py : b1 - py, a0 - px : a1 - px, None]
            sub_r = hr[b0 - py : b1 - py, a0 - px : a1 - px]
            canvas[b0:b1, a0:a1] = canvas[b0:b1, a0:a1] * (1 - sub_a) + sub_r * sub_a
            garment[b0:b1, a0:a1] *= 1 - sub_a[..., 0]
    chest = (cx - 1.10 * fw, chin + 0.3 * fw, cx + 1.10 * fw, min(float(h), hem))
    return chest, garment >= 0.5


def _plain(h: int, w: int, rng: np.random.Generator, colour: tuple[float, float, float]) -> Float:
    """A studio backdrop: one colour, a soft vignette and grain."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)
    bg = np.array(colour, np.float32) * (1.05 - 0.25 * r)[..., None]
    out: Float = np.clip(bg + rng.normal(0, 0.01, (h, w, 1)).astype(np.float32), 0, 1)
    return out


def _busy(h: int, w: int, rng: np.random.Generator) -> Float:
    """A busy background: part of starry_night.jpg with clutter (boxes, poles) on it."""
    art = np.asarray(Image.open(SHARED_IMAGES / "starry_night.jpg").convert("RGB"))
    bg = cv2.resize(art, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    for _ in range(14):
        c = rng.random(3).astype(np.float32)
        x, y = rng.integers(0, w), rng.integers(0, h)
        bw, bh = rng.integers(w // 20, w // 6), rng.integers(h // 20, h // 4)
        cv2.rectangle(bg, (int(x), int(y)), (int(x + bw), int(y + bh)), c.tolist(), -1)
    return bg


def _finish(canvas: Float) -> npt.NDArray[np.uint8]:
    out: npt.NDArray[np.uint8] = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def _make(
    name: str,
    size: tuple[int, int],
    *,
    cx: float,
    chin: float,
    fw: float,
    shirt: tuple[float, float, float],
    background: str = "plain",
    head: bool = True,
    seed: int = 0,
    stripes: tuple[float, float, float] | None = None,
) -> Render:
    """One person on a ``size`` = (width, height) canvas; cx, chin, fw as fractions of the width
    (cx, fw) and the height (chin)."""
    w, h = size
    rng = np.random.default_rng(seed)
    canvas = _busy(h, w, rng) if background == "busy" else _plain(h, w, rng, (0.55, 0.62, 0.68))
    chest, garment = _person(
        canvas, rng, cx=cx * w, chin=chin * h, fw=fw * w, shirt=shirt, head=head, stripes=stripes
    )
    x0, y0, x1, y1 = chest
    return Render(name, _finish(canvas), (x0 / w, y0 / h, x1 / w, y1 / h), garment, head)


def full_plain() -> Render:
    """Full length, centred, on a plain backdrop (red shirt)."""
    return _make(
        "full_plain", (480, 720), cx=0.5, chin=0.16, fw=0.16, shirt=(0.78, 0.16, 0.14), seed=1
    )


def full_busy() -> Render:
    """Full length on a busy background (starry_night and clutter), green shirt."""
    return _make(
        "full_busy",
        (480, 720),
        cx=0.5,
        chin=0.16,
        fw=0.16,
        shirt=(0.2, 0.6, 0.3),
        background="busy",
        seed=2,
    )


def off_centre() -> Render:
    """Full length, off to the left of a landscape frame (navy shirt)."""
    return _make(
        "off_centre", (900, 640), cx=0.27, chin=0.16, fw=0.08, shirt=(0.15, 0.2, 0.5), seed=3
    )


def small_in_frame() -> Render:
    """A person about a third of the image's height (mustard shirt)."""
    return _make(
        "small_in_frame", (900, 900), cx=0.58, chin=0.45, fw=0.036, shirt=(0.85, 0.65, 0.15), seed=4
    )


def half_length() -> Render:
    """A half-length portrait: the hem is below the frame (teal shirt)."""
    return _make(
        "half_length", (640, 640), cx=0.5, chin=0.42, fw=0.27, shirt=(0.1, 0.5, 0.55), seed=5
    )


def headless() -> Render:
    """A headless studio shot of a white T-shirt (the head cut off by the top edge)."""
    return _make(
        "headless",
        (600, 800),
        cx=0.5,
        chin=0.1,
        fw=0.34,
        shirt=(0.92, 0.92, 0.9),
        head=False,
        seed=6,
    )


def two_panel() -> Render:
    """A canvas [pattern | person]: the pattern on the left half, a half-length person right."""
    w, h = 1000, 600
    person = _make(
        "two_panel", (500, 600), cx=0.5, chin=0.4, fw=0.26, shirt=(0.55, 0.3, 0.6), seed=7
    )
    pat = Image.open(ROOT / "samples" / "pattern.png").convert("RGBA").resize((460, 460))
    left = Image.new("RGB", (500, 600), (255, 255, 255))
    left.paste(pat, (20, 70), pat)
    canvas = np.concatenate([np.asarray(left), person.image], axis=1)
    garment = np.concatenate([np.zeros((h, 500), bool), person.garment], axis=1)
    x0, y0, x1, y1 = person.chest_box
    return Render(
        "two_panel", canvas, ((500 + x0 * 500) / w, y0, (500 + x1 * 500) / w, y1), garment, True
    )


def striped() -> Render:
    """Full length in a navy and white striped shirt (a pattern is not a hem)."""
    return _make(
        "striped",
        (560, 720),
        cx=0.45,
        chin=0.17,
        fw=0.13,
        shirt=(0.12, 0.15, 0.35),
        stripes=(0.92, 0.92, 0.9),
        seed=8,
    )


ALL = (
    full_plain,
    full_busy,
    off_centre,
    small_in_frame,
    half_length,
    headless,
    two_panel,
    striped,
)


def variant(seed: int) -> Render:
    """A random framing (full length, half length, small, headless), shirt colour, canvas size
    and background, drawn from ``seed``; the shirt always fits the frame's width."""
    rng = np.random.default_rng(seed)
    kind = str(rng.choice(["full", "half", "small", "headless"]))
    busy = bool(rng.random() < 0.5) and kind != "headless"
    shirt = (float(rng.random()), float(rng.random()), float(rng.random()))
    w, h = int(rng.integers(500, 1000)), int(rng.integers(500, 1000))
    if kind == "full":
        fw, chin = 0.085 * h / w, float(rng.uniform(0.12, 0.2))
    elif kind == "half":
        fw, chin = (
            float(rng.uniform(0.2, 0.3)) * min(1.0, 1.2 * h / w),
            float(rng.uniform(0.3, 0.45)),
        )
    elif kind == "small":
        fw, chin = 0.0375 * h / w, float(rng.uniform(0.1, 0.5))
    else:
        fw, chin = (
            float(rng.uniform(0.24, 0.3)) * min(1.0, 1.3 * h / w),
            float(rng.uniform(0.05, 0.12)),
        )
    fw = min(fw, 0.95 / 3.3)  # sleeve to sleeve is 3.24 face widths
    room = max(0.0, 0.5 - 1.7 * fw)
    cx = float(rng.uniform(0.5 - room, 0.5 + room))
    return _make(
        f"variant{seed}-{kind}",
        (w, h),
        cx=cx,
        chin=chin,
        fw=fw,
        shirt=shirt,
        background="busy" if busy else "plain",
        head=kind != "headless",
        seed=seed,
    )


def all_renders() -> list[Render]:
    return [f() for f in ALL]


def _write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in all_renders():
        img = r.image.copy()
        h, w = img.shape[:2]
        edge = r.garment ^ cv2.erode(r.garment.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(
            bool
        )
        img[edge] = (0, 255, 0)
        x0, y0, x1, y1 = r.chest_box
        cv2.rectangle(
            img,
            (round(x0 * w), round(y0 * h)),
            (round(x1 * w) - 1, round(y1 * h) - 1),
            (255, 0, 0),
            2,
        )
        Image.fromarray(img).save(folder / f"{r.name}.png")
        Image.fromarray(r.image).save(folder / f"{r.name}.raw.png")


if __name__ == "__main__":
    _write(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/people"))
