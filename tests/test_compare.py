"""Known-answer tests for fluxcompose.compare, .sheet and the ``compare`` command.

Expectations are independent of the code under test: SSIM against a hand-rolled
window loop and closed forms, pHash against an explicit DCT matrix, pattern and edit
boxes against where the test itself pasted the pattern.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from fluxcompose import compare as C
from fluxcompose.cli.compare_cmd import compare as compare_cmd
from fluxcompose.errors import ChecksFailed, InputError, RecipeError, exit_code_for
from fluxcompose.sheet import draw_sheet
from tests.paths import SHARED_IMAGES
from tests.people import iou

IMAGES = SHARED_IMAGES
if not IMAGES.is_dir():  # a checkout elsewhere: the copy next to the repo
    IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
needs_images = pytest.mark.skipif(
    not (IMAGES / "flower.jpg").exists(), reason="shared test images missing"
)


# ------------------------------------------------------------------------------ helpers


def textured(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like synthetic image: random shapes, lines and grain, lightly blurred."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    for _ in range(70):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(4, max(5, width // 7))), c, -1)
        elif kind == 1:
            x1, y1 = (
                x + int(rng.integers(4, max(5, width // 4))),
                y + int(rng.integers(4, max(5, height // 4))),
            )
            cv2.rectangle(img, (x, y), (x1, y1), c, -1)
        else:
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(img, (x, y), (x1, y1), c, int(rng.integers(1, 6)))
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(cv2.GaussianBlur(img, (0, 0), 0.7))


def jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def paste_warped(
    target: Image.Image,
    pattern: Image.Image,
    *,
    center: tuple[float, float],
    width_fraction: float,
    rotation_deg: float = 0.0,
    perspective: float = 0.0,
    seed: int = 0,
) -> tuple[Image.Image, list[float]]:
    """Paste ``pattern`` onto ``target`` with scale, rotation and a perspective jitter of
    the corners (as a fraction of the pattern's width). Returns (image, true box)."""
    t = np.asarray(target).astype(np.float64)
    H, W = t.shape[:2]
    p = np.asarray(pattern)
    ph, pw = p.shape[:2]
    bw = width_fraction * W
    bh = bw * ph / pw
    pts = np.array([[-bw / 2, -bh / 2], [bw / 2, -bh / 2], [bw / 2, bh / 2], [-bw / 2, bh / 2]])
    a = math.radians(rotation_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    jitter = np.random.default_rng(seed).uniform(-perspective, perspective, (4, 2)) * bw
    pts = pts @ rot.T + jitter + [center[0] * W, center[1] * H]
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    M = cv2.getPerspectiveTransform(src, np.float32(pts))
    warped = cv2.warpPerspective(p, M, (W, H), flags=cv2.INTER_LINEAR).astype(np.float64)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), M, (W, H))[:, :, None] / 255.0
    out = np.clip(np.rint(t * (1 - mask) + warped * mask), 0, 255).astype(np.uint8)
    box = [pts[:, 0].min() / W, pts[:, 1].min() / H, pts[:, 0].max() / W, pts[:, 1].max() / H]
    return Image.fromarray(out), [float(v) for v in box]


@pytest.fixture(scope="module")
def flower() -> Image.Image:
    if not (IMAGES / "flower.jpg").exists():
        pytest.skip("shared test images missing")
    return Image.open(IMAGES / "flower.jpg").convert("RGB")


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    if not (IMAGES / "hopper.jpg").exists():
        pytest.skip("shared test images missing")
    return Image.open(IMAGES / "hopper.jpg").convert("RGB")


PATTERN = textured(360, 300, 42)


# ------------------------------------------------------------------------------ SSIM


def _gauss_kernel() -> np.ndarray:
    ax = np.arange(-5, 6, dtype=np.float64)
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    k = np.outer(g, g)
    return k / k.sum()


def ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 with an explicit loop over every fully covered 11x11 window."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    k = _gauss_kernel()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(5, x.shape[0] - 5):
        for j in range(5, x.shape[1] - 5):
            wx = x[i - 5 : i + 6, j - 5 : j + 6]
            wy = y[i - 5 : i + 6, j - 5 : j + 6]
            mx, my = (k * wx).sum(), (k * wy).sum()
            vx = (k * (wx - mx) ** 2).sum()
            vy = (k * (wy - my) ** 2).sum()
            cxy = (k * (wx - mx) * (wy - my)).sum()
            vals.append(
                ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
    return float(np.mean(vals))


def test_ssim_identical_is_one() -> None:
    a = np.asarray(textured(64, 48, 1))
    assert C.ssim(a, a) == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(2.0, 60.0))
def test_ssim_matches_hand_rolled_reference(seed: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (22, 26))
    y = np.clip(x + rng.normal(0, noise, x.shape), 0, 255)
    assert C.ssim(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(
        ssim_reference(x, y), abs=1e-4
    )


def test_ssim_constant_offset_closed_form() -> None:
    # Flat images: variances are 0, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    c1 = (0.01 * 255) ** 2
    a = np.full((32, 32), 100.0, np.float32)
    b = a + 40.0
    expected = (2 * 100 * 140 + c1) / (100**2 + 140**2 + c1)
    assert C.ssim(a, b) == pytest.approx(expected, abs=1e-6)
    # A textured image plus a constant: contrast/structure are untouched, so only the
    # luminance term remains, with the local means of a.
    rng = np.random.default_rng(3)
    x = rng.uniform(20, 200, (24, 24))
    y = x + 30.0
    assert C.ssim(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(
        ssim_reference(x, y), abs=1e-4
    )
    assert C.ssim(x.astype(np.float32), y.astype(np.float32)) < 1.0


def test_ssim_uses_bt601_luma() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    ya = a @ np.array([0.299, 0.587, 0.114])
    yb = b @ np.array([0.299, 0.587, 0.114])
    assert C.ssim(a, b) == pytest.approx(ssim_reference(ya, yb), abs=1e-4)


def test_ssim_rejects_size_mismatch() -> None:
    with pytest.raises(InputError):
        C.ssim(np.zeros((10, 10)), np.zeros((10, 12)))


# ------------------------------------------------------------------------------ edit region


@needs_images
@pytest.mark.parametrize("name", ["flower.jpg", "hopper.jpg", "flower2.jpg"])
@pytest.mark.parametrize("quality", [50, 80])
def test_jpeg_noise_alone_gives_no_region(name: str, quality: int) -> None:
    target = Image.open(IMAGES / name).convert("RGB")
    region = C.edit_region(jpeg(target, quality), target)
    assert region == {"box": None, "area_fraction": 0.0}


def test_jpeg_and_mild_blur_on_synthetic_gives_no_region() -> None:
    target = textured(900, 640, 11)
    out = jpeg(target.filter(ImageFilter.GaussianBlur(0.7)), 75)
    assert C.edit_region(out, target)["box"] is None


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x0=st.floats(0.05, 0.5),
    y0=st.floats(0.05, 0.5),
    w=st.floats(0.15, 0.4),
    h=st.floats(0.15, 0.4),
    seed=st.integers(0, 1000),
)
def test_changed_region_is_found(x0: float, y0: float, w: float, h: float, seed: int) -> None:
    target = textured(800, 600, 7)
    out = np.asarray(target).copy()
    X0, Y0, X1, Y1 = round(x0 * 800), round(y0 * 600), round((x0 + w) * 800), round((y0 + h) * 600)
    out[Y0:Y1, X0:X1] = np.asarray(textured(X1 - X0, Y1 - Y0, seed + 100))
    out_img = jpeg(Image.fromarray(out), 85)
    truth = [X0 / 800, Y0 / 600, X1 / 800, Y1 / 600]
    report = C.compare(out_img, target)
    region = report.metrics["edit_region"]
    assert iou(region["box"], truth) >= 0.7
    assert region["area_fraction"] == pytest.approx(w * h, abs=0.1)
    assert report.metrics["ssim_outside_edit"] >= 0.9
    assert report.metrics["ssim"] < report.metrics["ssim_outside_edit"]


def test_ssim_outside_edit_edge_cases() -> None:
    a = np.asarray(textured(120, 90, 2))
    b = np.asarray(jpeg(Image.fromarray(a), 60))
    whole = C.ssim(a, b)
    assert C.ssim_outside_edit(a, b, {"box": None, "area_fraction": 0.0}) == pytest.approx(whole)
    assert C.ssim_outside_edit(a, b, {"box": [0.0, 0.0, 1.0, 1.0], "area_fraction": 1.0}) is None
    # Damage only inside the box: outside stays identical.
    c = a.copy()
    c[30:60, 40:80] = 0
    region = C.edit_region(c, a)
    assert iou(region["box"], [40 / 120, 30 / 90, 80 / 120, 60 / 90]) >= 0.7
    assert C.ssim_outside_edit(c, a, region) == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------------ pattern


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cx=st.floats(0.35, 0.65),
    cy=st.floats(0.4, 0.6),
    width_fraction=st.floats(0.25, 0.55),
    rotation=st.floats(-15.0, 15.0),
    seed=st.integers(0, 1000),
    photo=st.booleans(),
)
def test_pattern_is_located(
    flower: Image.Image,
    cx: float,
    cy: float,
    width_fraction: float,
    rotation: float,
    seed: int,
    photo: bool,
) -> None:
    target = (
        flower.resize((960, 720), Image.Resampling.LANCZOS) if photo else textured(960, 720, seed)
    )
    out, truth = paste_warped(
        target,
        PATTERN,
        center=(cx, cy),
        width_fraction=width_fraction,
        rotation_deg=rotation,
        perspective=0.05,
        seed=seed,
    )
    out = jpeg(out.filter(ImageFilter.GaussianBlur(0.6)), 80)
    p = C.locate_pattern(out, PATTERN)
    assert p["found"]
    assert p["inliers"] >= C.MIN_INLIERS
    assert iou(p["box"], truth) >= 0.8
    assert abs(p["width_fraction"] - (truth[2] - truth[0])) <= 0.05
    tc = [(truth[0] + truth[2]) / 2 - 0.5, (truth[1] + truth[3]) / 2 - 0.5]
    assert p["center_offset"] == pytest.approx(tc, abs=0.03)


def test_output_equal_to_target(flower: Image.Image) -> None:
    report = C.compare(flower, flower, pattern=PATTERN)
    m = report.metrics
    assert m["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert m["pattern"]["found"] is False
    assert m["pattern"]["box"] is None
    assert m["edit_region"]["box"] is None
    assert m["ssim_outside_edit"] == pytest.approx(1.0, abs=1e-6)
    assert m["phash"] == {"target": 0, "pattern": m["phash"]["pattern"]}
    assert m["phash"]["pattern"] > 10


def test_pattern_poisson_blended_like_the_local_backend(flower: Image.Image) -> None:
    target = np.asarray(flower.resize((960, 720)))
    patch = np.asarray(PATTERN.resize((384, 320)))
    out = cv2.seamlessClone(
        patch, target, np.full(patch.shape[:2], 255, np.uint8), (480, 380), cv2.NORMAL_CLONE
    )
    truth = [(480 - 192) / 960, (380 - 160) / 720, (480 + 192) / 960, (380 + 160) / 720]
    p = C.locate_pattern(out, PATTERN)
    assert p["found"] and iou(p["box"], truth) >= 0.8


def test_orb_fallback_without_sift(monkeypatch: pytest.MonkeyPatch, flower: Image.Image) -> None:
    monkeypatch.delattr(cv2, "SIFT_create", raising=False)
    _, norm = C._detector()
    assert norm == cv2.NORM_HAMMING
    out, truth = paste_warped(
        flower.resize((960, 720)), PATTERN, center=(0.5, 0.5), width_fraction=0.45, rotation_deg=8
    )
    p = C.locate_pattern(jpeg(out, 85), PATTERN)
    assert p["found"] and iou(p["box"], truth) >= 0.8


def test_unrelated_pattern_is_not_found() -> None:
    for seed in range(4):
        p = C.locate_pattern(textured(800, 600, 500 + seed), textured(300, 300, 900 + seed))
        assert p["found"] is False and p["box"] is None


# ------------------------------------------------------------------------------ style, pHash


def test_lab_distance_known_answers() -> None:
    white = Image.new("RGB", (40, 40), (255, 255, 255))
    black = Image.new("RGB", (40, 40), (0, 0, 0))
    assert C.lab_stats_distance(white, black) == pytest.approx(100.0, abs=0.1)  # L 100 vs 0
    # Half black, half white: mean L 50, std L 50; vs flat white: sqrt(50^2 + 50^2).
    half = np.zeros((40, 40, 3), np.uint8)
    half[:, :20] = 255
    assert C.lab_stats_distance(half, white) == pytest.approx(math.hypot(50, 50), abs=0.2)


def test_colours_moved_toward_style_are_closer(flower: Image.Image) -> None:
    target = flower
    style = textured(300, 300, 77).point(lambda v: min(255, int(v * 0.5) + 100))
    # Move the target's Lab mean and std halfway toward the style's.
    t = cv2.cvtColor(np.asarray(target).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    s = cv2.cvtColor(np.asarray(style).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    tm, ts = t.reshape(-1, 3).mean(0), t.reshape(-1, 3).std(0)
    sm, ss = s.reshape(-1, 3).mean(0), s.reshape(-1, 3).std(0)
    nm, ns = (tm + sm) / 2, (ts + ss) / 2
    moved = (t - tm) / ts * ns + nm
    rgb = np.clip(cv2.cvtColor(moved.astype(np.float32), cv2.COLOR_Lab2RGB) * 255, 0, 255).astype(
        np.uint8
    )
    m = C.compare(rgb, target, style=style).metrics["style"]
    assert m["colour_closer"] is True
    assert m["output_to_style"] < 0.75 * m["target_to_style"]
    # A colour move alone is not a restyle: the texture did not move, so not closer.
    assert m["texture_closer"] is False
    assert m["closer"] is False
    same = C.style_metric(target, target, style)
    assert same["closer"] is False and same["colour_closer"] is False


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2)
    return d


def test_phash_against_explicit_dct() -> None:
    img = np.asarray(textured(32, 32, 9))  # already 32x32: no resampling involved
    y = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    D = _dct_matrix(32)
    low = (D @ y @ D.T)[:8, :8].reshape(-1)
    bits = low > np.median(low)
    expected = int("".join("1" if b else "0" for b in bits), 2)
    assert C.phash(img) == expected
    assert 0 <= C.phash(img) < 2**64


@needs_images
def test_phash_distances() -> None:
    hop = Image.open(IMAGES / "hopper.jpg").convert("RGB")
    flw = Image.open(IMAGES / "flower.jpg").convert("RGB")
    assert C.hamming(C.phash(hop), C.phash(jpeg(hop, 60))) <= 6
    assert C.hamming(C.phash(hop), C.phash(flw)) >= 16
    assert C.hamming(0, 2**64 - 1) == 64


# ------------------------------------------------------------------------------ alignment


def _two_panel(target: Image.Image, left: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    """A [left | target] canvas and its layout (cells named like a recipe's sources)."""
    lw = round(left.width * target.height / left.height)
    canvas = Image.new("RGB", (lw + target.width, target.height), "white")
    canvas.paste(left.resize((lw, target.height)), (0, 0))
    canvas.paste(target, (lw, 0))
    layout = {
        "width": canvas.width,
        "height": canvas.height,
        "cells": [
            {
                "index": 0,
                "source": "left.png",
                "x": 0,
                "y": 0,
                "w": lw,
                "h": target.height,
                "name": "pattern",
            },
            {
                "index": 1,
                "source": "t.jpg",
                "x": lw,
                "y": 0,
                "w": target.width,
                "h": target.height,
                "name": "target",
            },
        ],
    }
    return canvas, layout


def test_two_panel_output_is_cut_back_through_the_layout(flower: Image.Image) -> None:
    target = flower.resize((480, 360))
    edited, truth = paste_warped(
        target, PATTERN, center=(0.55, 0.5), width_fraction=0.5, rotation_deg=6
    )
    canvas, layout = _two_panel(target, PATTERN)
    _, out_layout = _two_panel(edited, PATTERN)
    raw = Image.new("RGB", canvas.size, "white")
    raw.paste(PATTERN.resize((layout["cells"][0]["w"], 360)), (0, 0))
    raw.paste(edited, (layout["cells"][1]["x"], 0))
    # The model snapped the canvas to a slightly different size.
    raw = jpeg(raw.resize((1200, 500), Image.Resampling.LANCZOS), 90)
    aligned = C.align_output(raw, target, layout)
    assert aligned.size == target.size
    assert C.ssim(aligned, edited) > 0.8
    report = C.compare(raw, target, pattern=PATTERN, composite=layout)
    assert report.metrics["aligned"]["cell"] == 1
    assert report.metrics["aligned"]["output_size"] == [1200, 500]
    assert iou(report.metrics["pattern"]["box"], truth) >= 0.8
    assert iou(report.metrics["edit_region"]["box"], truth) >= 0.7
    # The same through a Composite object and an explicit index.
    from fluxcompose.compose import Composite

    comp = Composite.from_dict(layout)
    again = C.compare(raw, target, pattern=PATTERN, composite=comp, target_index=1)
    assert again.metrics["pattern"]["box"] == pytest.approx(
        report.metrics["pattern"]["box"], abs=1e-6
    )


def test_output_with_the_targets_aspect_is_not_cut(flower: Image.Image) -> None:
    target = flower.resize((480, 360))
    _, layout = _two_panel(target, PATTERN)
    out = jpeg(target.resize((1184, 880)), 90)  # Kontext bucket near 4:3
    report = C.compare(out, target, composite=layout)
    assert report.metrics["aligned"]["cell"] is None
    assert report.metrics["ssim"] > 0.9


def test_layout_matching_neither_is_an_input_error(flower: Image.Image) -> None:
    target = flower.resize((480, 360))
    _, layout = _two_panel(target, PATTERN)
    with pytest.raises(InputError, match="does not match"):
        C.align_output(Image.new("RGB", (300, 700)), target, layout)
    with pytest.raises(InputError, match="no cell with index 7"):
        C.align_output(Image.new("RGB", (1200, 500)), target, layout, target_index=7)
    with pytest.raises(InputError, match="not a canvas layout"):
        C.load_layout({"width": 10})


def test_default_target_index() -> None:
    cells = [
        {"index": i, "source": f"{i}.png", "x": 100 * i, "y": 0, "w": 100, "h": 100}
        for i in range(3)
    ]
    layout = {"width": 300, "height": 100, "cells": cells}
    assert C.default_target_index(layout) == 2  # no names: the last cell
    assert C.default_target_index(layout, ["target", "pattern", "style"]) == 0
    named = {
        **layout,
        "cells": [{**c, "name": n} for c, n in zip(cells, ["a", "target", "b"], strict=True)],
    }
    assert C.default_target_index(named) == 1


def test_layout_from_sidecar_file(tmp_path: Path) -> None:
    layout = {
        "width": 200,
        "height": 100,
        "cells": [
            {"index": 0, "x": 0, "y": 0, "w": 100, "h": 100},
            {"index": 1, "x": 100, "y": 0, "w": 100, "h": 100},
        ],
    }
    p = tmp_path / "job.json"
    p.write_text(json.dumps({"recipe": "x", "layout": layout}))
    view = C.load_layout(p)
    assert (view.width, view.height, len(view.cells)) == (200, 100, 2)
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(InputError):
        C.load_layout(bad)


# ------------------------------------------------------------------------------ checks


@pytest.fixture(scope="module")
def pasted(flower: Image.Image) -> dict[str, Any]:
    """Metrics for a few known placements of the pattern on the flower photo."""
    target = flower.resize((960, 720))

    # The chest box given as the whole image: the chest-relative checks then read the
    # image-relative numbers these known answers were made for.
    whole = (0.0, 0.0, 1.0, 1.0)

    def run(center: tuple[float, float], wf: float) -> dict[str, Any]:
        out, _ = paste_warped(target, PATTERN, center=center, width_fraction=wf, rotation_deg=4)
        return C.compare(jpeg(out, 85), target, pattern=PATTERN, subject_box=whole).metrics

    return {
        "good": run((0.5, 0.5), 0.55),
        "small": run((0.5, 0.5), 0.22),
        "off_centre": run((0.3, 0.35), 0.5),
        "missing": C.compare(jpeg(target, 85), target, pattern=PATTERN, subject_box=whole).metrics,
    }


RECIPE_CHECKS = {
    "pattern_found": True,
    "pattern_width_fraction": [0.45, 0.8],
    "pattern_center_offset_max": 0.1,
    "target_ssim_outside_edit": 0.6,
}


def test_checks_pass_for_a_good_transfer(pasted: dict[str, Any]) -> None:
    res = C.evaluate_checks(pasted["good"], RECIPE_CHECKS)
    assert res["passed"] is True
    assert set(res["checks"]) == set(RECIPE_CHECKS)
    assert res["checks"]["pattern_width_fraction"]["value"] == pytest.approx(0.55, abs=0.05)
    assert res["checks"]["pattern_width_fraction"]["expected"] == [0.45, 0.8]


def test_checks_fail_when_the_pattern_is_too_small(pasted: dict[str, Any]) -> None:
    res = C.evaluate_checks(pasted["small"], RECIPE_CHECKS)
    assert res["passed"] is False
    assert res["checks"]["pattern_found"]["pass"] is True
    assert res["checks"]["pattern_width_fraction"]["pass"] is False


def test_checks_fail_when_off_centre(pasted: dict[str, Any]) -> None:
    res = C.evaluate_checks(pasted["off_centre"], RECIPE_CHECKS)
    assert res["checks"]["pattern_center_offset_max"]["pass"] is False
    assert res["checks"]["pattern_center_offset_max"]["value"] == pytest.approx(
        math.hypot(0.2, 0.15), abs=0.03
    )
    assert res["checks"]["pattern_width_fraction"]["pass"] is True
    assert res["passed"] is False


def test_checks_fail_when_the_pattern_is_missing(pasted: dict[str, Any]) -> None:
    res = C.evaluate_checks(pasted["missing"], RECIPE_CHECKS)
    assert res["checks"]["pattern_found"] == {"pass": False, "value": False, "expected": True}
    assert res["checks"]["pattern_width_fraction"]["value"] is None
    assert res["checks"]["pattern_width_fraction"]["pass"] is False
    assert res["checks"]["target_ssim_outside_edit"]["pass"] is True
    assert res["passed"] is False


def test_other_checks_and_edge_cases(pasted: dict[str, Any]) -> None:
    m = pasted["good"]
    res = C.evaluate_checks(
        m,
        {
            "ssim_min": 0.2,
            "ssim_max": 0.99,
            "edit_area_min": 0.1,
            "edit_area_max": 0.6,
            "phash_max_to_target": 40,
            "phash_min_to_target": 1,
            "pattern_inliers_min": 20,
        },
    )
    assert res["passed"], res
    assert C.evaluate_checks(m, {"ssim_min": 0.999})["passed"] is False
    assert C.evaluate_checks(m, {}) == {"checks": {}, "passed": True}
    assert C.evaluate_checks(m, None) == {"checks": {}, "passed": True}


def test_unknown_or_malformed_checks_are_recipe_errors(pasted: dict[str, Any]) -> None:
    with pytest.raises(RecipeError, match="pattern_widht"):
        C.evaluate_checks(pasted["good"], {"pattern_widht": [0.1, 0.2]})
    with pytest.raises(RecipeError, match="pattern_width_fraction"):
        C.validate_checks({"pattern_width_fraction": 0.5})
    with pytest.raises(RecipeError):
        C.validate_checks({"pattern_found": "yes"})
    with pytest.raises(RecipeError):
        C.validate_checks({"ssim_min": True})


def test_check_needing_a_missing_input(flower: Image.Image) -> None:
    with pytest.raises(InputError, match="style"):
        C.compare(flower, flower, checks={"style_closer": True})


def test_builtin_recipes_use_only_known_checks() -> None:
    from fluxcompose.recipes import list_recipes

    for recipe in list_recipes():
        C.validate_checks(recipe.checks)


def test_report_to_dict_is_json_safe(pasted: dict[str, Any], flower: Image.Image) -> None:
    report = C.compare(
        flower, flower.resize((400, 300)), pattern=PATTERN, style=PATTERN, checks={"ssim_min": 0.5}
    )
    d = json.loads(json.dumps(report.to_dict()))
    assert list(d)[:6] == ["ssim", "edit_region", "ssim_outside_edit", "pattern", "style", "phash"]
    assert {"checks", "passed"} <= set(d)
    assert set(d["pattern"]) >= {"found", "inliers", "box", "width_fraction", "center_offset"}
    assert set(d["style"]) == {
        "output_to_style",
        "target_to_style",
        "colour_closer",
        "texture_output_to_style",
        "texture_target_to_style",
        "texture_closer",
        "closer",
    }
    assert {"subject", "ssim_outside_garment", "warnings"} <= set(d)


# ------------------------------------------------------------------------------ sheet


def test_sheet_is_drawn(tmp_path: Path, flower: Image.Image) -> None:
    target = flower.resize((480, 360))
    out, _ = paste_warped(target, PATTERN, center=(0.5, 0.5), width_fraction=0.5)
    report = C.compare(
        out, target, pattern=PATTERN, checks=RECIPE_CHECKS, subject_box=(0.0, 0.0, 1.0, 1.0)
    )
    path = draw_sheet(
        report,
        sources=[("pattern", PATTERN), ("target", target)],
        canvas=None,
        output=out,
        path=tmp_path / "s.png",
    )
    assert path == tmp_path / "s.png"
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= 900 and im.height >= 400
        px = np.asarray(im.convert("RGB"))
    # The pattern's green and the edit region's red were drawn.
    assert ((px[:, :, 1] > 180) & (px[:, :, 0] < 40) & (px[:, :, 2] < 100)).sum() > 100
    assert ((px[:, :, 0] > 200) & (px[:, :, 1] < 50) & (px[:, :, 2] < 50)).sum() > 100
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]  # no temp file left behind


# ------------------------------------------------------------------------------ CLI


def invoke(args: list[str]) -> tuple[int, Any]:
    """Run the command directly; map our exceptions to the exit code main() would give."""
    result = CliRunner().invoke(compare_cmd, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return exit_code_for(result.exception), result
    return result.exit_code, result


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, flower: Image.Image) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cmp")
    target = flower.resize((480, 360))
    out, _ = paste_warped(target, PATTERN, center=(0.5, 0.5), width_fraction=0.55, rotation_deg=5)
    paths = {"target": d / "target.jpg", "pattern": d / "pattern.png", "output": d / "out.png"}
    target.save(paths["target"], quality=95)
    PATTERN.save(paths["pattern"])
    out.save(paths["output"])
    body = (
        'name = "{n}"\nsources = ["pattern", "target"]\nprompt = "Put the pattern on the target."\n'
    )
    paths["pass"] = d / "ok.toml"
    paths["pass"].write_text(
        body.format(n="ok")
        + "[checks]\npattern_found = true\npattern_width_fraction = [0.45, 0.8]\n"
    )
    paths["fail"] = d / "strict.toml"
    paths["fail"].write_text(
        body.format(n="strict") + "[checks]\npattern_width_fraction = [0.9, 1.0]\n"
    )
    paths["none"] = d / "nochecks.toml"
    paths["none"].write_text(body.format(n="nochecks"))
    return paths


def test_cli_json_and_exit_0(files: dict[str, Path]) -> None:
    code, result = invoke(
        [
            str(files["output"]),
            "--target",
            str(files["target"]),
            "--pattern",
            str(files["pattern"]),
            "--recipe",
            str(files["pass"]),
            "--subject-box",
            "0,0,1,1",
            "--json",
        ]
    )
    assert code == 0, result.output
    d = json.loads(result.stdout)
    assert d["passed"] is True and d["pattern"]["found"] is True
    assert d["checks"]["pattern_width_fraction"]["pass"] is True


def test_cli_failing_checks_exit_1(files: dict[str, Path]) -> None:
    code, result = invoke(
        [
            str(files["output"]),
            "--target",
            str(files["target"]),
            "--pattern",
            str(files["pattern"]),
            "--recipe",
            str(files["fail"]),
            "--subject-box",
            "0,0,1,1",
        ]
    )
    assert code == 1
    assert isinstance(result.exception, ChecksFailed)
    assert "pattern_width_fraction" in str(result.exception)
    assert "FAIL" in result.stdout and "ssim" in result.stdout  # the summary was printed first


def test_cli_bad_input_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    code, _ = invoke([str(IMAGES / "broken.png"), "--target", str(files["target"])])
    assert code == 2
    code, _ = invoke(
        [str(files["output"]), "--target", str(files["target"]), "--recipe", "no-such-recipe"]
    )
    assert code == 2
    code, _ = invoke(
        [
            str(files["output"]),
            "--target",
            str(files["target"]),
            "--layout",
            str(tmp_path / "missing.json"),
        ]
    )
    assert code == 2
    code, result = invoke([str(files["output"])])  # --target missing: click usage error
    assert code == 2, result.output


def test_cli_recipe_without_checks_prints_metrics_then_exit_2(files: dict[str, Path]) -> None:
    code, result = invoke(
        [
            str(files["output"]),
            "--target",
            str(files["target"]),
            "--recipe",
            str(files["none"]),
            "--json",
        ]
    )
    assert code == 2
    assert isinstance(result.exception, RecipeError) and "no [checks]" in str(result.exception)
    assert json.loads(result.stdout)["ssim"] < 1.0


def test_cli_sheet(files: dict[str, Path], tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    code, result = invoke(
        [
            str(files["output"]),
            "--target",
            str(files["target"]),
            "--pattern",
            str(files["pattern"]),
            "--sheet",
            str(sheet),
        ]
    )
    assert code == 0, result.output
    with Image.open(sheet) as im:
        assert im.format == "PNG" and im.width >= 900 and im.height >= 400


def test_cli_through_main_gives_exit_codes(files: dict[str, Path]) -> None:
    from fluxcompose.cli import cli

    runner = CliRunner()
    args = [
        "compare",
        str(files["output"]),
        "--target",
        str(files["target"]),
        "--pattern",
        str(files["pattern"]),
        "--subject-box",
        "0,0,1,1",
    ]
    assert runner.invoke(cli, args).exit_code == 0
    failed = runner.invoke(cli, [*args, "--recipe", str(files["fail"])])
    assert failed.exit_code == 1
    assert "fluxcompose: error: recipe checks failed" in failed.stderr
    assert (
        runner.invoke(
            cli, ["compare", str(IMAGES / "broken.png"), "--target", str(files["target"])]
        ).exit_code
        == 2
    )


def test_cli_two_panel_with_layout(tmp_path: Path, flower: Image.Image) -> None:
    target = flower.resize((480, 360))
    edited, truth = paste_warped(target, PATTERN, center=(0.5, 0.5), width_fraction=0.5)
    canvas, layout = _two_panel(target, PATTERN)
    raw, _ = _two_panel(edited, PATTERN)
    (tmp_path / "canvas.png").write_bytes(b"")
    canvas.save(tmp_path / "canvas.png")
    (tmp_path / "canvas.png.layout.json").write_text(json.dumps(layout))
    raw.resize((1168, 480)).save(tmp_path / "out.png")
    target.save(tmp_path / "t.png")
    PATTERN.save(tmp_path / "p.png")
    code, result = invoke(
        [
            str(tmp_path / "out.png"),
            "--target",
            str(tmp_path / "t.png"),
            "--pattern",
            str(tmp_path / "p.png"),
            "--layout",
            str(tmp_path / "canvas.png.layout.json"),
            "--json",
            "--sheet",
            str(tmp_path / "s.png"),
        ]
    )
    assert code == 0, result.output
    d = json.loads(result.stdout)
    assert d["aligned"]["cell"] == 1
    assert iou(d["pattern"]["box"], truth) >= 0.8
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_grid_of_squares_ambiguity_is_resolved_by_content() -> None:
    # A 2x2 grid of squares has the target's aspect: the content decides whether to cut.
    tiles = [textured(200, 200, 300 + i) for i in range(4)]
    canvas = Image.new("RGB", (400, 400))
    cells = []
    for i, tile in enumerate(tiles):
        x, y = 200 * (i % 2), 200 * (i // 2)
        canvas.paste(tile, (x, y))
        cells.append({"index": i, "source": f"{i}.png", "x": x, "y": y, "w": 200, "h": 200})
    layout = {"width": 400, "height": 400, "cells": cells}
    target = tiles[3]
    kept_layout = C.compare(jpeg(canvas.resize((1024, 1024)), 90), target, composite=layout)
    assert kept_layout.metrics["aligned"]["cell"] == 3
    assert kept_layout.metrics["ssim"] > 0.8
    just_target = C.compare(jpeg(target.resize((1024, 1024)), 90), target, composite=layout)
    assert just_target.metrics["aligned"]["cell"] is None
    assert just_target.metrics["ssim"] > 0.8
