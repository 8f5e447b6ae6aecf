"""The local backend on pixels: pattern placement and size, style transfer, bucketing, determinism.

The target here is a smooth gradient with nobody in it, so pattern-transfer takes the
no-subject path (placed by the image); the checkerboard has no plain border, so it is
printed whole. The print mock-up on a garment is tested in tests/test_mockup.py.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.backends import BACKENDS, make_backend
from fluxcompose.backends.base import Backend, GenerationRequest
from fluxcompose.backends.local import (
    NOTICE,
    LocalBackend,
    fit_to_bucket,
    fit_to_size,
    parse_fraction,
    placement_center,
    reinhard_transfer,
)
from fluxcompose.geometry import bucket_for
from tests.paths import SHARED_IMAGES

IMAGES = SHARED_IMAGES

TW, TH = 256, 256  # target cell; 1:1 so the output bucket (1024x1024) is an exact 4x


def _target() -> np.ndarray:
    """A smooth, textured 'garment': gradients plus a low-frequency pattern, RGB uint8."""
    yy, xx = np.mgrid[0:TH, 0:TW].astype(np.float32)
    r = 90 + 60 * xx / TW
    g = 120 + 40 * np.sin(yy / 23.0)
    b = 150 + 30 * np.cos((xx + yy) / 31.0)
    return np.clip(np.dstack([r, g, b]), 0, 255).astype(np.uint8)


def _pattern(w: int = 120, h: int = 80) -> np.ndarray:
    """A high-contrast checkerboard with a cross: easy to find against the smooth target."""
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((xx // 10 + yy // 10) % 2).astype(np.uint8) * 255
    img = np.dstack([board, 255 - board, np.full_like(board, 40)])
    img[h // 2 - 3 : h // 2 + 3, :] = (250, 20, 20)
    img[:, w // 2 - 3 : w // 2 + 3] = (250, 20, 20)
    return img


def _canvas(left: np.ndarray, right: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """Two cells side by side on a white canvas, with the layout dict the pipeline sends."""
    lh, lw = left.shape[:2]
    rh, rw = right.shape[:2]
    height = max(lh, rh)
    canvas = np.full((height, lw + rw, 3), 255, dtype=np.uint8)
    ly, ry = (height - lh) // 2, (height - rh) // 2
    canvas[ly : ly + lh, :lw] = left
    canvas[ry : ry + rh, lw:] = right
    layout = {
        "width": lw + rw,
        "height": height,
        "aspect_ratio": f"{lw + rw}:{height}",
        "layout": "horizontal",
        "gutter": 0,
        "background": [255, 255, 255],
        "cells": [
            {"index": 0, "source": "pattern.png", "x": 0, "y": ly, "w": lw, "h": lh, "scale": 1.0},
            {"index": 1, "source": "target.png", "x": lw, "y": ry, "w": rw, "h": rh, "scale": 1.0},
        ],
    }
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return buf.getvalue(), layout


def _request(recipe: str, variables: dict[str, Any], **kw: Any) -> GenerationRequest:
    data, layout = _canvas(kw.pop("left", _pattern()), kw.pop("right", _target()))
    names = kw.pop("names", ["pattern", "target"])
    context = {
        "recipe": recipe,
        "variables": variables,
        "checks": kw.pop("checks", {}),
        "layout": layout,
        "source_names": names,
        "target": kw.pop("target", "target"),
    }
    return GenerationRequest(
        prompt="p",
        input_image=data,
        aspect_ratio=kw.pop("aspect_ratio", "1:1"),
        context=context,
        **kw,
    )


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _changed_box(
    out: np.ndarray, ref: np.ndarray, thresh: float = 40.0
) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of pixels that differ a lot from ``ref``."""
    diff = np.abs(out.astype(np.int16) - ref.astype(np.int16)).sum(axis=2)
    ys, xs = np.nonzero(diff > thresh)
    assert xs.size, "nothing changed"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _run_pattern(size: str, placement: str, **kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
    result = LocalBackend().generate(
        _request("pattern-transfer", {"size": size, "placement": placement}, **kw)
    )
    assert result.data is not None and result.url is None
    out = _decode(result.data)
    assert out.shape[:2] == (1024, 1024)  # bucket of 1:1
    # No subject on the gradient: placed by the image, and the result says so.
    assert result.extra["subject"]["found"] is False and result.extra["placed_by"] == "image"
    assert result.extra["pattern_background"] is None  # the checkerboard is printed whole
    # Back to the target's own size so it can be compared with the target pixel by pixel.
    small = cv2.resize(out, (TW, TH), interpolation=cv2.INTER_AREA)
    return small, result.extra


@pytest.mark.parametrize("size,expected", [("2/3", 2 / 3), ("0.5", 0.5), ("40%", 0.4)])
def test_pattern_transfer_width_fraction_and_centre(size: str, expected: float) -> None:
    out, extra = _run_pattern(size, "middle")
    x0, y0, x1, y1 = _changed_box(out, _target())
    width_fraction = (x1 - x0) / TW
    assert abs(width_fraction - expected) <= 0.04
    # The pattern keeps its aspect ratio (120x80 -> 3:2).
    assert abs((x1 - x0) / (y1 - y0) - 1.5) <= 0.12
    # Centred for "middle".
    assert abs((x0 + x1) / 2 - TW / 2) <= 0.03 * TW
    assert abs((y0 + y1) / 2 - TH / 2) <= 0.03 * TH
    assert extra["notice"] == NOTICE
    assert extra["width_fraction"] == pytest.approx(expected, abs=1e-3)
    box = extra["pattern_box"]
    assert box[2] - box[0] == pytest.approx(expected, abs=0.02)


def test_pattern_transfer_leaves_the_rest_of_the_target_alone() -> None:
    out, _ = _run_pattern("0.5", "middle")
    target = _target()
    x0, y0, x1, y1 = _changed_box(out, target)
    mask = np.ones((TH, TW), dtype=bool)
    margin = 8  # resampling to and from the bucket blurs a few pixels at the edge
    mask[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = False
    diff = np.abs(out.astype(np.int16) - target.astype(np.int16))[mask]
    assert diff.mean() < 1.5
    assert np.percentile(diff, 99) <= 6


def test_pattern_is_the_pattern() -> None:
    """Inside the box the checkerboard's structure survives the print (no garment, no shading)."""
    out, _ = _run_pattern("0.5", "middle")
    x0, y0, x1, y1 = _changed_box(out, _target())
    inside = cv2.cvtColor(out[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    ref = cv2.resize(cv2.cvtColor(_pattern(), cv2.COLOR_RGB2GRAY), (x1 - x0, y1 - y0)).astype(
        np.float32
    )
    corr = np.corrcoef(inside.ravel(), ref.ravel())[0, 1]
    assert corr > 0.6


@pytest.mark.parametrize(
    "placement,cx,cy",
    [
        ("top", 0.5, "<"),
        ("bottom", 0.5, ">"),
        ("upper left", "<", "<"),
        ("lower right", ">", ">"),
        ("chest", 0.5, 0.5),
    ],
)
def test_pattern_placement(placement: str, cx: float | str, cy: float | str) -> None:
    out, _ = _run_pattern("0.3", placement)
    x0, y0, x1, y1 = _changed_box(out, _target())
    mx, my = (x0 + x1) / 2 / TW, (y0 + y1) / 2 / TH
    for got, want in ((mx, cx), (my, cy)):
        if want == "<":
            assert got < 0.4
        elif want == ">":
            assert got > 0.6
        else:
            assert abs(got - float(want)) < 0.03


def test_size_falls_back_to_the_checks_midpoint() -> None:
    req = _request(
        "pattern-transfer", {"placement": "middle"}, checks={"pattern_width_fraction": [0.45, 0.8]}
    )
    result = LocalBackend().generate(req)
    out = cv2.resize(_decode(result.data or b""), (TW, TH), interpolation=cv2.INTER_AREA)
    x0, _, x1, _ = _changed_box(out, _target())
    assert abs((x1 - x0) / TW - 0.625) <= 0.04
    assert result.extra["width_fraction_from"] == "checks.pattern_width_fraction"


def test_target_by_index_and_swapped_cells() -> None:
    """The target is found by name or index wherever it sits on the canvas."""
    req = _request(
        "pattern-transfer",
        {"size": "0.5", "placement": "middle"},
        left=_target(),
        right=_pattern(),
        names=["garment", "logo"],
        target=0,
    )
    out = cv2.resize(
        _decode(LocalBackend().generate(req).data or b""), (TW, TH), interpolation=cv2.INTER_AREA
    )
    x0, _, x1, _ = _changed_box(out, _target())
    assert abs((x1 - x0) / TW - 0.5) <= 0.04


def _lab_stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return lab.mean(axis=0), lab.std(axis=0)


def _photo(name: str, size: tuple[int, int]) -> np.ndarray:
    with Image.open(IMAGES / name) as im:
        return np.asarray(im.convert("RGB").resize(size))


def test_style_fusion_moves_lab_statistics_toward_the_style() -> None:
    style = _photo("flower.jpg", (200, 150))
    content = _photo("hopper.jpg", (TW, TH))
    req = _request("style-fusion", {}, left=style, right=content, names=["style", "target"])
    result = LocalBackend().generate(req)
    out = cv2.resize(_decode(result.data or b""), (TW, TH), interpolation=cv2.INTER_AREA)
    m_out, s_out = _lab_stats(out)
    m_style, s_style = _lab_stats(style)
    m_in, s_in = _lab_stats(content)
    before = np.linalg.norm(m_in - m_style) + np.linalg.norm(s_in - s_style)
    after = np.linalg.norm(m_out - m_style) + np.linalg.norm(s_out - s_style)
    assert after < 0.35 * before
    # The geometry is the content's: edges line up with the content, not the style.
    edges_out = cv2.Canny(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), 50, 150) > 0
    edges_in = cv2.Canny(cv2.cvtColor(content, cv2.COLOR_RGB2GRAY), 50, 150) > 0
    dilated = cv2.dilate(edges_in.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (edges_out & dilated).sum() > 0.6 * edges_out.sum()


def test_reinhard_transfer_matches_statistics_exactly_without_clipping() -> None:
    rng = np.random.default_rng(3)
    content = rng.integers(60, 190, size=(64, 64, 3), dtype=np.uint8)
    style = rng.integers(90, 170, size=(64, 64, 3), dtype=np.uint8)
    out = reinhard_transfer(content, style)
    m_out, s_out = _lab_stats(out)
    m_style, s_style = _lab_stats(style)
    np.testing.assert_allclose(m_out, m_style, atol=1.5)
    np.testing.assert_allclose(s_out, s_style, atol=1.5)
    # Strength 0 changes nothing beyond the Lab round trip.
    assert np.abs(reinhard_transfer(content, style, 0.0).astype(int) - content).max() <= 1


def test_side_by_side_is_the_canvas_in_the_bucket() -> None:
    left, right = _pattern(128, 128), _target()
    req = _request("side-by-side", {}, left=left, right=right, aspect_ratio="2:1")
    out = _decode(LocalBackend().generate(req).data or b"")
    bw, bh = bucket_for("2:1")
    assert out.shape[:2] == (bh, bw)
    # 384x256 (3:2) does not round to the 2:1 bucket, so it is fitted, not squashed.
    fitted_w = round(384 * bh / 256)
    ox = (bw - fitted_w) // 2
    inner = out[:, ox + 4 : ox + fitted_w - 4]
    ref = cv2.resize(
        _decode(req.input_image or b""), (fitted_w, bh), interpolation=cv2.INTER_CUBIC
    )[:, 4:-4]
    assert np.abs(inner.astype(int) - ref.astype(int)).mean() < 3


@pytest.mark.parametrize("ratio", ["16:9", "1:1", "3:7", "7:3", "4:5"])
def test_output_size_is_the_bucket(ratio: str) -> None:
    req = GenerationRequest(prompt="a cat", aspect_ratio=ratio, seed=1)
    result = LocalBackend().generate(req)
    with Image.open(io.BytesIO(result.data or b"")) as im:
        assert im.size == bucket_for(ratio)
        assert im.format == "PNG"
    assert bucket_for("16:9") == (1392, 752)


def test_jpeg_output_and_text_to_image_determinism() -> None:
    a = LocalBackend().generate(
        GenerationRequest(prompt="x", seed=7, output_format="jpeg", aspect_ratio="16:9")
    )
    b = LocalBackend().generate(
        GenerationRequest(prompt="x", seed=7, output_format="jpeg", aspect_ratio="16:9")
    )
    c = LocalBackend().generate(
        GenerationRequest(prompt="x", seed=8, output_format="jpeg", aspect_ratio="16:9")
    )
    assert a.data == b.data
    assert a.data != c.data
    assert (a.data or b"")[:3] == b"\xff\xd8\xff"


def test_same_seed_same_bytes_for_recipes() -> None:
    for recipe in ("pattern-transfer", "style-fusion", "side-by-side", "unknown-recipe"):
        r1 = LocalBackend().generate(_request(recipe, {"size": "1/2"}, seed=42))
        r2 = LocalBackend().generate(_request(recipe, {"size": "1/2"}, seed=42))
        assert r1.data == r2.data, recipe


def test_any_model_gives_the_same_preview_and_says_the_model_only_changes_the_price() -> None:
    # The local preview imitates the recipe; the model only changes the estimated price.
    results = [
        LocalBackend().generate(_request("pattern-transfer", {"size": "1/2"}, seed=3, model=m))
        for m in ("flux-kontext-pro", "flux-2-pro", "some-future-model")
    ]
    assert results[0].data == results[1].data == results[2].data
    assert results[1].extra["model_notice"] == (
        "local preview: the model (flux-2-pro) only changes the estimated price"
    )
    assert LocalBackend().model_notice("flux-2-max") == (
        "local preview: the model (flux-2-max) only changes the estimated price"
    )


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _separate(recipe: str, variables: dict[str, Any], **kw: Any) -> GenerationRequest:
    """The pattern and the target as two separate references (no canvas, no layout)."""
    pattern, target = kw.pop("left", _pattern()), kw.pop("right", _target())
    context = {
        "recipe": recipe,
        "variables": variables,
        "checks": {},
        "layout": None,
        "references": ["pattern", "target"],
        "source_names": ["pattern", "target"],
        "target": "target",
    }
    return GenerationRequest(
        prompt="p",
        input_image=_png(pattern),
        more_images=((_png(target), "image/png"),),
        context=context,
        **kw,
    )


def test_separate_references_give_the_stitched_preview() -> None:
    # The same two pictures, stitched on a canvas or sent as two references: the same
    # mock-up (the cells are the references), so the pixels agree.
    stitched = LocalBackend().generate(_request("pattern-transfer", {"size": "1/2"}, seed=5))
    separate = LocalBackend().generate(_separate("pattern-transfer", {"size": "1/2"}, seed=5))
    assert separate.extra["references"] == 2
    assert separate.extra["method"] == stitched.extra["method"]
    assert separate.extra["pattern_box"] == stitched.extra["pattern_box"]
    a, b = _decode(stitched.data or b""), _decode(separate.data or b"")
    assert a.shape == b.shape == (1024, 1024, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_separate_style_fusion_and_side_by_side() -> None:
    style = np.zeros((64, 96, 3), np.uint8)
    style[..., 0] = 200
    out = LocalBackend().generate(_separate("style-fusion", {}, left=style, seed=1))
    assert out.extra["style_index"] == 0 and out.extra["target_index"] == 1
    side = LocalBackend().generate(
        _separate("side-by-side", {}, left=_target(), aspect_ratio="2:1", seed=1)
    )
    img = _decode(side.data or b"")
    assert img.shape[:2] == bucket_for("2:1")[::-1]


def test_an_asked_width_and_height_is_the_output_size() -> None:
    # FLUX.2 sizes are not Kontext buckets: 1200x896 is what 4:3 at 1 MP gives.
    right = np.asarray(
        Image.fromarray(_target()).resize((300, 225)), dtype=np.uint8
    )  # a 4:3 target
    for req in (
        _request("pattern-transfer", {}, right=right, aspect_ratio="4:3", width=1200, height=896),
        _separate("pattern-transfer", {}, right=right, aspect_ratio="4:3", width=1200, height=896),
    ):
        out = LocalBackend().generate(req)
        assert out.extra["size"] == [1200, 896]
        img = _decode(out.data or b"")
        assert img.shape == (896, 1200, 3)
    assert bucket_for("4:3") != (1200, 896)
    # Filled when the aspects agree within 0.02, letterboxed (centred) otherwise.
    _, placed = fit_to_size(np.zeros((225, 300, 3), np.uint8), (1200, 896))
    assert placed == (0, 0, 1200, 896)
    _, placed = fit_to_size(np.zeros((300, 300, 3), np.uint8), (1200, 896))
    assert placed == (152, 0, 1048, 896)


def test_registry_and_protocol() -> None:
    backend = make_backend("local", env={})
    assert isinstance(backend, LocalBackend)
    assert isinstance(backend, Backend)
    assert BACKENDS["local"] is LocalBackend
    assert (
        LocalBackend.NOTICE
        == "local backend: an offline classical-CV preview, not a generative model"
    )
    assert backend.resumable is False and backend.max_concurrency("flux-kontext-pro") >= 1


def test_missing_layout_falls_back_to_the_canvas() -> None:
    req = _request("pattern-transfer", {"size": "0.5"})
    req.context.pop("layout")
    result = LocalBackend().generate(req)
    assert "canvas" in result.extra["method"]


@settings(max_examples=30, deadline=None)
@given(
    w=st.integers(8, 400),
    h=st.integers(8, 400),
    ratio=st.sampled_from(["1:1", "16:9", "9:16", "3:7", "7:3", "4:3", "21:9"]),
)
def test_fit_to_bucket_never_squashes_beyond_rounding(w: int, h: int, ratio: str) -> None:
    img = np.zeros((h, w, 3), dtype=np.uint8)
    bucket = bucket_for(ratio)
    out, (x0, y0, x1, y1) = fit_to_bucket(img, bucket)
    assert out.shape[:2] == (bucket[1], bucket[0])
    placed = (x1 - x0) / (y1 - y0)
    if (x0, y0, x1, y1) == (0, 0, *bucket):
        # Filled: only when the picture's own aspect rounds to this bucket.
        assert bucket_for(min(max(w / h, 3 / 7), 7 / 3)) == bucket
        assert 3 / 7 - 1e-9 <= w / h <= 7 / 3 + 1e-9
    else:
        # Fitted uniformly: the aspect is kept to within a pixel of rounding.
        assert abs(placed - w / h) <= (w / h) * (2 / min(x1 - x0, y1 - y0)) + 1e-9


@pytest.mark.parametrize(
    "text,value",
    [
        ("2/3", 2 / 3),
        ("0.5", 0.5),
        ("50%", 0.5),
        ("about 1/3 of the chest", 1 / 3),
        ("60", 0.6),
        (0.25, 0.25),
    ],
)
def test_parse_fraction(text: object, value: float) -> None:
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [None, "", "big", "0", "3/0", "250", True])
def test_parse_fraction_rejects(text: object) -> None:
    assert parse_fraction(text) is None


def test_placement_center_words() -> None:
    assert placement_center("middle") == (0.5, 0.5)
    assert placement_center("center") == (0.5, 0.5)
    assert placement_center("upper left") == (0.25, 0.25)
    assert placement_center("Bottom-Right") == (0.75, 0.75)
    assert placement_center(None) == (0.5, 0.5)
