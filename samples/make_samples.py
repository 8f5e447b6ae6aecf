"""Write fluxcompose's sample inputs into this folder (deterministic, seeded).

Run ``python3 samples/make_samples.py``. It draws, with numpy, OpenCV and Pillow only:

- ``pattern.png``: a floral emblem on a transparent background (RGBA, 512x512),
  with uneven decoration so that feature matching (SIFT) can find it again;
- ``model.jpg``: a studio half-portrait of a person in a plain white T-shirt,
  768x1024 upright, stored rotated 90 degrees with EXIF orientation 6, the way
  phones store portrait photos;
- ``style.jpg``: a colourful painterly texture of brush strokes, 768x768;
- ``pairs.csv`` and ``pairs.txt``: sample PAIRS files for ``fluxcompose batch``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SEED = 20240611
EXIF_ORIENTATION = 0x0112

Float = np.ndarray  # float32 arrays in 0..1, (h, w) or (h, w, 3)


def hex_rgb(value: str) -> tuple[float, float, float]:
    """``#rrggbb`` as an (r, g, b) tuple of floats in 0..1."""
    v = value.lstrip("#")
    return int(v[0:2], 16) / 255, int(v[2:4], 16) / 255, int(v[4:6], 16) / 255


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> Float:
    """Smooth random field in 0..1: ``cells`` x ``cells`` random values, bicubic-upscaled."""
    h, w = shape
    small = rng.random((cells, cells)).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


# --------------------------------------------------------------------------- pattern


def petal(
    cx: float, cy: float, angle: float, r0: float, r1: float, width: float, tip: float = 1.0
) -> np.ndarray:
    """Polygon of a petal from radius ``r0`` to ``r1`` along ``angle`` (radians), in pixels.

    ``tip`` < 1 sharpens the point (the half-width follows sin(pi t) ** tip skewed outwards).
    """
    t = np.linspace(0.0, 1.0, 60)
    half = width / 2 * np.sin(np.pi * t**0.8) ** tip
    r = r0 + t * (r1 - r0)
    ux, uy = math.cos(angle), math.sin(angle)
    side = np.concatenate([half, -half[::-1]])
    rr = np.concatenate([r, r[::-1]])
    xs = cx + rr * ux - side * uy
    ys = cy + rr * uy + side * ux
    return np.stack([xs, ys], axis=1)


def make_pattern(rng: np.random.Generator, size: int = 512) -> Image.Image:
    """A floral emblem on transparency (RGBA), drawn at 2x and shrunk for smooth edges."""
    ss = 2
    n = size * ss
    c = n / 2
    navy, coral, gold = hex_rgb("#1d2b53"), hex_rgb("#ff6f59"), hex_rgb("#f4b942")
    teal, cream, magenta = hex_rgb("#2a9d8f"), hex_rgb("#fdf0d5"), hex_rgb("#c0396b")
    green, sky = hex_rgb("#4c9a2a"), hex_rgb("#5fa8d3")
    # Transparent pixels carry the outline colour: every shape's outer edge is a
    # navy outline, so shrinking blends edges towards navy, never towards black.
    rgb = np.empty((n, n, 3), np.float32)
    rgb[:] = navy
    alpha = np.zeros((n, n), np.float32)
    line = 5 * ss

    def fill(poly: np.ndarray, color: tuple[float, float, float], outline: bool = True) -> None:
        pts = [np.round(poly * 16).astype(np.int32)]  # 4 fractional bits
        cv2.fillPoly(rgb, pts, color, cv2.LINE_AA, shift=4)
        cv2.fillPoly(alpha, pts, 1.0, cv2.LINE_AA, shift=4)
        if outline:
            cv2.polylines(rgb, pts, True, navy, line, cv2.LINE_AA, shift=4)
            cv2.polylines(alpha, pts, True, 1.0, line, cv2.LINE_AA, shift=4)

    def dot(x: float, y: float, r: float, color: tuple[float, float, float]) -> None:
        centre = (round(x * 16), round(y * 16))
        cv2.circle(rgb, centre, round(r * 16), color, -1, cv2.LINE_AA, shift=4)
        cv2.circle(alpha, centre, round(r * 16), 1.0, -1, cv2.LINE_AA, shift=4)

    # Leaves behind the outer petals, slightly off the petals' angles.
    for k in range(8):
        a = 2 * math.pi * (k + 0.5) / 8 + 0.06 * rng.standard_normal()
        fill(petal(c, c, a, 0.30 * n, 0.47 * n, 0.10 * n, tip=1.6), green)
        vein = petal(c, c, a, 0.33 * n, 0.44 * n, 0.006 * n)
        cv2.polylines(
            rgb, [np.round(vein * 16).astype(np.int32)], True, cream, 2 * ss, cv2.LINE_AA, 4
        )
    # Outer ring: 12 pointed petals, colours in an uneven order.
    outer_colors = [coral, teal, magenta, coral, sky, teal, coral, magenta, teal, gold, coral, sky]
    for k, col in enumerate(outer_colors):
        a = 2 * math.pi * k / 12 - math.pi / 2
        fill(petal(c, c, a, 0.16 * n, 0.44 * n, 0.14 * n, tip=1.3), col)
        # Each petal gets its own sprinkle of dots, so no two petals look alike.
        for _ in range(int(rng.integers(2, 7))):
            t = rng.uniform(0.35, 0.8)
            off = rng.uniform(-0.022, 0.022) * n * math.sin(math.pi * t)
            r = 0.16 * n + t * 0.28 * n
            x = c + r * math.cos(a) - off * math.sin(a)
            y = c + r * math.sin(a) + off * math.cos(a)
            dot(x, y, rng.uniform(0.006, 0.013) * n, cream if col != gold else navy)
    # Middle ring: 8 rounded gold petals with a varying number of stripes.
    for k in range(8):
        a = 2 * math.pi * k / 8 - math.pi / 2 + math.pi / 8
        fill(petal(c, c, a, 0.10 * n, 0.30 * n, 0.15 * n, tip=0.7), gold)
        for j in range(int(rng.integers(1, 4))):
            frac = 0.45 + 0.15 * j
            r = 0.10 * n + frac * 0.20 * n
            x, y = c + r * math.cos(a), c + r * math.sin(a)
            half = 0.045 * n * math.sin(math.pi * frac**0.8) ** 0.7
            p0 = (x - half * math.sin(a), y + half * math.cos(a))
            p1 = (x + half * math.sin(a), y - half * math.cos(a))
            cv2.line(
                rgb,
                (round(p0[0] * 16), round(p0[1] * 16)),
                (round(p1[0] * 16), round(p1[1] * 16)),
                coral,
                3 * ss,
                cv2.LINE_AA,
                4,
            )
    # Centre: navy disc, a ring of cream dots, an 8-point star and a core.
    dot(c, c, 0.125 * n, navy)
    for k in range(14):
        a = 2 * math.pi * k / 14
        dot(c + 0.095 * n * math.cos(a), c + 0.095 * n * math.sin(a), 0.011 * n, cream)
    star = []
    for k in range(16):
        r = (0.075 if k % 2 == 0 else 0.032) * n
        a = 2 * math.pi * k / 16 - math.pi / 2
        star.append((c + r * math.cos(a), c + r * math.sin(a)))
    fill(np.array(star), coral, outline=False)
    dot(c, c, 0.026 * n, gold)
    dot(c + 0.007 * n, c - 0.007 * n, 0.009 * n, cream)  # off-centre highlight

    # Shrink 2x by area averaging: antialiased edges for both colour and alpha.
    small_rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    small_a = cv2.resize(np.clip(alpha, 0, 1), (size, size), interpolation=cv2.INTER_AREA)
    out = np.dstack([small_rgb, small_a])
    return Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), "RGBA")


# --------------------------------------------------------------------------- model photo


def lambert(nx: Float, ny: Float, nz: Float, light: tuple[float, float, float]) -> Float:
    """Diffuse term for unit normals (x right, y down, z to viewer) and a light direction."""
    lx, ly, lz = light
    ln = math.sqrt(lx * lx + ly * ly + lz * lz)
    return np.clip((nx * lx + ny * ly + nz * lz) / ln, 0, 1)


def dome_shading(
    mask: np.ndarray, radius: float, light: tuple[float, float, float], ambient: float = 0.45
) -> Float:
    """Shading of a pillow-shaped surface raised over ``mask`` (uint8 0..255).

    The height rises like a circle of ``radius`` pixels from the mask's edge, so
    flat shapes look rounded at their rims; 1.0 is fully lit.
    """
    dist = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 5)
    d = np.minimum(dist, radius)
    height = np.sqrt(np.maximum(radius**2 - (radius - d) ** 2, 0.0)).astype(np.float32)
    height = cv2.GaussianBlur(height, (0, 0), max(2.0, radius / 5))  # no creases on ridges
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8
    norm = np.sqrt(gx**2 + gy**2 + 1)
    return ambient + (1 - ambient) * lambert(-gx / norm, -gy / norm, 1 / norm, light)


def ellipsoid_shading(
    shape: tuple[int, int],
    centre: tuple[float, float],
    axes: tuple[float, float],
    light: tuple[float, float, float],
    ambient: float = 0.45,
) -> Float:
    """Shading of an ellipsoid seen face-on: smooth, with no ridge."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    nx = np.clip((xx - centre[0]) / axes[0], -1, 1)
    ny = np.clip((yy - centre[1]) / axes[1], -1, 1)
    r2 = np.minimum(nx**2 + ny**2, 1.0)
    nz = np.sqrt(1 - r2)
    s = np.sqrt(nx**2 + ny**2 + nz**2) + 1e-6
    return ambient + (1 - ambient) * lambert(nx / s, ny / s, nz / s, light)


def soft_polygon(
    shape: tuple[int, int], points: list[tuple[float, float]], round_px: float
) -> np.ndarray:
    """A filled polygon (uint8 0..255) with corners rounded over about ``round_px`` pixels."""
    mask = np.zeros(shape, np.float32)
    pts = [np.round(np.asarray(points) * 16).astype(np.int32)]
    cv2.fillPoly(mask, pts, 1.0, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), round_px)
    # Re-sharpen the blurred edge: corners stay round, edges stay about 1.5 px wide.
    k = round_px / 0.75
    mask = np.clip((mask - 0.5) * k + 0.5, 0, 1)
    return np.round(mask * 255).astype(np.uint8)


def ellipse_mask(
    shape: tuple[int, int],
    centre: tuple[float, float],
    axes: tuple[float, float],
    angle: float = 0,
    arc: tuple[float, float] = (0, 360),
    thickness: int = -1,
) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(
        mask,
        (round(centre[0] * 16), round(centre[1] * 16)),
        (round(axes[0] * 16), round(axes[1] * 16)),
        angle,
        arc[0],
        arc[1],
        255,
        thickness,
        cv2.LINE_AA,
        4,
    )
    return mask


def layer(canvas: Float, mask: np.ndarray, color: Float | np.ndarray, opacity: float = 1.0) -> None:
    """Paint ``color`` ((h, w, 3) or an rgb triple) over ``canvas`` where ``mask`` (uint8) is set."""
    a = (mask.astype(np.float32) * (opacity / 255))[..., None]
    canvas *= 1 - a
    canvas += a * color


def blurred(mask: np.ndarray, sigma: float) -> Float:
    """``mask`` (uint8 or float) as floats in 0..1, Gaussian-blurred by ``sigma`` pixels."""
    m = mask.astype(np.float32)
    if mask.dtype == np.uint8:
        m /= 255
    return cv2.GaussianBlur(m, (0, 0), sigma)


def make_model(rng: np.random.Generator, w: int = 768, h: int = 1024) -> Image.Image:
    """A studio apparel shot: a person in a plain white crew-neck T-shirt, chin to waist, upright RGB."""
    shape = (h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = (-0.5, -0.6, 1.0)  # key light from the upper left, in front
    cx = w / 2

    # Backdrop: a dusty blue paper sweep with a soft spotlight behind the sitter.
    top, bottom = np.array(hex_rgb("#46606e")), np.array(hex_rgb("#87a0ab"))
    t = (yy / h)[..., None]
    img = (top * (1 - t) + bottom * t).astype(np.float32)
    spot = np.exp(-(((xx - 0.42 * w) / (0.5 * w)) ** 2 + ((yy - 0.32 * h) / (0.55 * h)) ** 2))
    img *= (0.75 + 0.42 * spot)[..., None]
    img *= (0.975 + 0.05 * smooth_noise(rng, shape, 5))[..., None]  # uneven paper

    # Silhouettes (left half mirrored), in pixels of the 768x1024 frame.
    def mirrored(left: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return left + [(2 * cx - x, y) for x, y in reversed(left)]

    shirt = soft_polygon(
        shape,
        mirrored(
            [
                (cx - 4, 1080),
                (cx - 186, 1080),
                (cx - 184, 820),
                (cx - 190, 690),  # armpit
                (cx - 198, 676),
                (cx - 278, 648),  # sleeve hem, outer
                (cx - 252, 540),
                (cx - 226, 476),
                (cx - 180, 446),  # shoulder point
                (cx - 112, 424),
                (cx - 66, 414),  # neckline, dipping in front
                (cx - 50, 434),
                (cx - 26, 442),
            ]
        ),
        9,
    )
    arm_l = soft_polygon(
        shape,
        [
            (cx - 270, 600),
            (cx - 200, 600),
            (cx - 196, 800),
            (cx - 204, 1080),
            (cx - 272, 1080),
            (cx - 284, 820),
        ],
        8,
    )
    arm_r = cv2.flip(arm_l, 1)
    neck = soft_polygon(shape, [(cx - 46, 300), (cx + 46, 300), (cx + 54, 430), (cx - 54, 430)], 6)
    head_c, head_ax = (cx, 258.0), (90.0, 116.0)
    head = ellipse_mask(shape, head_c, head_ax)
    ears = cv2.max(
        ellipse_mask(shape, (cx - 88, 268), (14, 26), 8),
        ellipse_mask(shape, (cx + 88, 268), (14, 26), -8),
    )

    # Cast shadow on the backdrop: the figure, offset down-right and blurred.
    figure = cv2.max(cv2.max(shirt, cv2.max(arm_l, arm_r)), cv2.max(neck, head))
    shadow = cv2.warpAffine(figure, np.float32([[1, 0, 34], [0, 1, 20]]), (w, h))
    img *= (1 - 0.33 * blurred(shadow, 26))[..., None]

    skin = np.array(hex_rgb("#c48a66"), np.float32)
    skin_tex = (0.97 + 0.06 * smooth_noise(rng, shape, 12))[..., None]

    # Arms: rounded limbs, a little darker than the face (further from the light).
    for arm in (arm_l, arm_r):
        layer(img, arm, skin * skin_tex * 0.9 * dome_shading(arm, 34, light, 0.4)[..., None])
    # Neck: a vertical cylinder, shadowed under the jaw.
    nx = np.clip((xx - cx) / 54, -1, 1)
    neck_shade = 0.45 + 0.55 * lambert(nx, np.zeros_like(nx), np.sqrt(1 - nx**2), light)
    neck_shade *= 1 - 0.45 * blurred(ellipse_mask(shape, (cx, 352), (80, 34)), 12)
    layer(img, neck, skin * skin_tex * 0.92 * neck_shade[..., None])
    layer(img, ears, skin * 0.88 * dome_shading(ears, 10, light, 0.5)[..., None])
    head_shade = ellipsoid_shading(shape, head_c, head_ax, light, 0.42)
    layer(img, head, skin * skin_tex * head_shade[..., None])

    # Face: soft, simple features.
    white = np.array(hex_rgb("#ece6df"), np.float32)
    dark = np.array(hex_rgb("#2a1a12"), np.float32)
    for sgn in (-1, 1):
        ex, ey = cx + sgn * 34, 256.0
        eye = ellipse_mask(shape, (ex, ey), (15, 6.5))
        layer(img, cv2.GaussianBlur(eye, (0, 0), 0.8), white * 0.9)
        iris = ellipse_mask(shape, (ex + 2, ey), (6, 6))
        layer(img, cv2.bitwise_and(iris, eye), np.array(hex_rgb("#4a2e1c")))
        pupil = ellipse_mask(shape, (ex + 2, ey), (2.6, 2.6))
        layer(img, pupil, dark)
        lid = ellipse_mask(shape, (ex, ey + 1), (16, 8), 0, (185, 355), 2)
        layer(img, cv2.GaussianBlur(lid, (0, 0), 0.7), dark, 0.85)
        brow = ellipse_mask(
            shape, (ex, ey - 6), (22, 14), 0, (200 if sgn < 0 else 215, 325 if sgn < 0 else 340), 4
        )
        layer(img, cv2.GaussianBlur(brow, (0, 0), 1.0), np.array(hex_rgb("#33211a")), 0.9)
    nose_shadow = ellipse_mask(shape, (cx + 7, 296), (9, 22), 0, (-70, 110), 4)
    img *= (1 - 0.22 * blurred(nose_shadow, 3.5))[..., None]
    for sgn in (-1, 1):
        nostril = ellipse_mask(shape, (cx + sgn * 9, 314), (4, 2.5))
        img *= (1 - 0.35 * blurred(nostril, 1.2))[..., None]
    upper = ellipse_mask(shape, (cx, 340), (21, 4.5), 0, (180, 360))
    lower = ellipse_mask(shape, (cx, 340), (18, 6.5), 0, (0, 180))
    lip_col = np.array(hex_rgb("#9b5a4e"), np.float32)
    layer(img, cv2.GaussianBlur(upper, (0, 0), 1.0), lip_col * 0.85, 0.9)
    layer(img, cv2.GaussianBlur(lower, (0, 0), 1.2), lip_col * 1.05, 0.75)
    mouth_line = ellipse_mask(shape, (cx, 338), (21, 3), 0, (10, 170), 2)
    layer(img, cv2.GaussianBlur(mouth_line, (0, 0), 0.8), lip_col * 0.55, 0.8)

    # Hair: short and dark, over the top of the head, with fine streaks.
    hair = soft_polygon(
        shape,
        [
            (cx - 96, 262),
            (cx - 102, 196),
            (cx - 84, 160),
            (cx - 44, 140),
            (cx + 6, 136),
            (cx + 56, 144),
            (cx + 90, 170),
            (cx + 104, 214),
            (cx + 96, 262),
            (cx + 86, 214),
            (cx + 58, 190),
            (cx + 10, 180),
            (cx - 34, 186),
            (cx - 72, 204),
            (cx - 86, 226),
        ],
        7,
    )
    streaks = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigmaX=0.8, sigmaY=5)
    hair_col = np.array(hex_rgb("#2b1c13"), np.float32) * (0.8 + 0.8 * streaks)[..., None]
    layer(
        img,
        hair,
        hair_col * ellipsoid_shading(shape, (cx, 230), (110, 100), light, 0.55)[..., None],
    )

    # The T-shirt: white cotton over a cylinder-shaped torso, with a few soft folds.
    nx = np.clip((xx - cx) / 230, -0.98, 0.98)
    torso = 0.55 + 0.45 * lambert(nx, np.full_like(nx, -0.12), np.sqrt(1 - nx**2), light)
    sleeves = dome_shading(shirt, 40, light, 0.5)
    side = np.clip((np.abs(xx - cx) - 172) / 30, 0, 1)  # 0 on the torso, 1 on the sleeves
    cloth = torso * (1 - side) + sleeves * side
    cloth *= 0.9 + 0.1 * dome_shading(shirt, 18, light, 0.0)  # rolls off at the silhouette
    folds = np.zeros(shape, np.float32)
    lights = np.zeros(shape, np.float32)
    for x0, y0, x1, y1, wgt in [
        (-178, 700, -80, 640, 0.9),
        (178, 706, 84, 650, 0.8),
        (-170, 960, -60, 915, 0.6),
        (160, 985, 50, 940, 0.5),
        (-236, 560, -196, 520, 0.7),
        (236, 566, 200, 526, 0.7),
        (-30, 1010, 60, 1000, 0.4),
    ]:
        p0, p1 = (round(cx + x0), y0), (round(cx + x1), y1)
        cv2.line(folds, p0, p1, wgt, 10, cv2.LINE_AA)
        cv2.line(lights, (p0[0], p0[1] - 12), (p1[0], p1[1] - 12), wgt, 8, cv2.LINE_AA)
    cloth = (
        cloth
        - 0.11 * cv2.GaussianBlur(folds, (0, 0), 7)
        + 0.05 * cv2.GaussianBlur(lights, (0, 0), 7)
    )
    knit = 1 + 0.02 * (cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 0.6) - 0.5)
    layer(img, shirt, np.array(hex_rgb("#f1f0ec"), np.float32) * (cloth * knit)[..., None])
    # Crew neck: a ribbed band along the neckline.
    band = ellipse_mask(shape, (cx, 414), (64, 30), 0, (0, 180), 12)
    rib = 0.93 + 0.05 * np.sin(np.arctan2(yy - 414, xx - cx) * 90)
    band_shade = ellipsoid_shading(shape, (cx, 430), (120, 60), light, 0.6) * rib
    layer(img, band, np.array(hex_rgb("#e9e7e2"), np.float32) * band_shade[..., None])
    img *= (1 - 0.25 * blurred(ellipse_mask(shape, (cx, 414), (58, 26), 0, (10, 170), 3), 2))[
        ..., None
    ]
    seams = np.zeros(shape, np.float32)
    for sgn in (-1, 1):  # shoulder seams and sleeve hems
        cv2.line(
            seams, (round(cx + sgn * 178), 450), (round(cx + sgn * 202), 470), 1.0, 2, cv2.LINE_AA
        )
        cv2.line(
            seams, (round(cx + sgn * 268), 632), (round(cx + sgn * 200), 660), 1.0, 2, cv2.LINE_AA
        )
    img *= (1 - 0.13 * cv2.GaussianBlur(seams, (0, 0), 0.9))[..., None]

    # Frame it as apparel photos are: chin to waist, the chest in the middle, so a
    # print "in the middle" lands on the chest.
    x0, y0, cw, ch = 124, 322, 520, 693
    img = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_CUBIC)

    # Photographic finish: a slight lens softness, vignette and sensor grain.
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    vig = 1 - 0.32 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    img *= vig[..., None]
    grain = rng.normal(0, 0.011, (h, w, 1)).astype(np.float32)
    grain = grain + rng.normal(0, 0.004, (h, w, 3)).astype(np.float32)
    img += grain
    return Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- style image


def make_style(rng: np.random.Generator, size: int = 768) -> Image.Image:
    """A vivid, painterly field of swirling brush strokes (RGB)."""
    n = size
    palette = np.array(
        [
            hex_rgb(c)
            for c in (
                "#0b1d51",
                "#1f4e9c",
                "#3a7ca5",
                "#81c3d7",
                "#f2e8cf",
                "#ffca3a",
                "#ff8c42",
                "#d1495b",
            )
        ],
        np.float32,
    )

    def colour_at(v: Float) -> Float:
        pos = np.clip(v, 0, 1) * (len(palette) - 1)
        i = np.minimum(pos.astype(int), len(palette) - 2)
        f = (pos - i)[..., None]
        return palette[i] * (1 - f) + palette[i + 1] * f

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    base = 0.55 * smooth_noise(rng, (n, n), 4) + 0.3 * smooth_noise(rng, (n, n), 7)
    base += 0.15 * (np.sin(6 * xx + 3 * yy) * 0.5 + 0.5)
    base = (base - base.min()) / (base.max() - base.min())
    # The flow: rotate the gradient of a smooth potential, which gives swirls.
    pot = cv2.GaussianBlur(smooth_noise(rng, (n, n), 6), (0, 0), 8)
    gx = cv2.Sobel(pot, cv2.CV_32F, 1, 0, ksize=5)
    gy = cv2.Sobel(pot, cv2.CV_32F, 0, 1, ksize=5)
    angle = np.arctan2(gx, -gy)  # perpendicular to the gradient: along the contours

    canvas = colour_at(base)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 6)  # the underpainting
    canvas = np.ascontiguousarray(canvas[..., ::-1])  # OpenCV draws in BGR order
    for width, count, length in ((14, 2200, 34), (8, 5200, 26), (4, 7000, 16)):
        xs = rng.uniform(0, n, count)
        ys = rng.uniform(0, n, count)
        jitter = rng.normal(0, 0.06, count)
        shade = rng.normal(1.0, 0.08, count)
        for x, y, j, s in zip(xs, ys, jitter, shade, strict=True):
            col = colour_at(np.float32(base[int(y), int(x)] + j))[::-1] * s
            pts = [(x, y)]
            for _ in range(4):  # follow the flow for a curved stroke
                px, py = pts[-1]
                a = angle[min(int(py), n - 1), min(int(px), n - 1)]
                step = length / 4
                pts.append((px + step * math.cos(a), py + step * math.sin(a)))
                if not (0 <= pts[-1][0] < n and 0 <= pts[-1][1] < n):
                    break
            arr = np.round(np.array(pts) * 16).astype(np.int32)
            cv2.polylines(canvas, [arr], False, tuple(float(v) for v in col), width, cv2.LINE_AA, 4)
            # A lighter ridge on one side of the stroke, like paint catching the light.
            hi = tuple(float(min(v * 1.12 + 0.03, 1.0)) for v in col)
            cv2.polylines(
                canvas,
                [arr - 16 * max(1, width // 5)],
                False,
                hi,
                max(1, width // 4),
                cv2.LINE_AA,
                4,
            )
    canvas = canvas[..., ::-1]
    # Canvas weave: a faint cross-hatch texture over everything.
    weave = (np.sin(yy * n * 1.9) * np.sin(xx * n * 1.9)).astype(np.float32)
    canvas = canvas * (1 + 0.035 * weave[..., None]) + rng.normal(0, 0.01, (n, n, 1)).astype(
        np.float32
    )
    return Image.fromarray(np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- files


def save_rotated_jpeg(image: Image.Image, path: Path, quality: int = 88) -> None:
    """Store ``image`` (upright) rotated 90 degrees counter-clockwise, tagged EXIF orientation 6.

    Orientation 6 tells viewers to turn the stored pixels 90 degrees clockwise,
    which gives back the upright picture: what phone cameras do.
    """
    stored = image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored.save(path, "JPEG", quality=quality, exif=exif.tobytes(), optimize=True)


PAIRS_CSV = """\
id,left,right,prompt,seed,aspect_ratio,var.placement
tee-middle,pattern.png,model.jpg,,42,,middle
tee-left-chest,pattern.png,model.jpg,,7,,upper left of the chest
tee-defaults,pattern.png,model.jpg,,,,
"""

PAIRS_TXT = """\
pattern.png|model.jpg
style.jpg|model.jpg
"""


FILES = ("pattern.png", "model.jpg", "style.jpg", "pairs.csv", "pairs.txt")


def write_samples(out: Path = HERE) -> dict[str, int]:
    """Write every sample file into ``out``; returns their sizes in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    pattern = make_pattern(np.random.default_rng(SEED))
    pattern.save(out / "pattern.png", optimize=True)
    model = make_model(np.random.default_rng(SEED + 1))
    save_rotated_jpeg(model, out / "model.jpg")
    style = make_style(np.random.default_rng(SEED + 2))
    style.save(out / "style.jpg", "JPEG", quality=86, optimize=True)
    (out / "pairs.csv").write_text(PAIRS_CSV, encoding="utf-8")
    (out / "pairs.txt").write_text(PAIRS_TXT, encoding="utf-8")
    return {name: (out / name).stat().st_size for name in FILES}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write fluxcompose's sample inputs.")
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder (default: beside this script)"
    )
    args = parser.parse_args(argv)
    sizes = write_samples(args.out)
    for name, size in sizes.items():
        print(f"{name:12s} {size / 1024:7.1f} KiB")
    print(f"{'total':12s} {sum(sizes.values()) / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
