"""The style metric measures style, not only colour (issue 8): known answers, both directions.

On real photos (grace_hopper.jpg, flower.jpg) restyled toward real style sources
(starry_night.jpg, samples/style.jpg):

- a restyle (the style's colours plus its brush-stroke detail, or an oil-paint filter
  plus both) must count as closer to the style;
- a plain colour cast to the style's Lab mean, and the Reinhard colour transfer alone
  (the local preview's own method), must not: the texture did not move.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose import compare as C
from tests.test_compare import IMAGES

REPO = Path(__file__).resolve().parent.parent
RGB = npt.NDArray[np.uint8]

TARGETS = ["grace_hopper.jpg", "flower.jpg"]
STYLES = [IMAGES / "starry_night.jpg", REPO / "samples" / "style.jpg"]


def _load(path: Path) -> RGB:
    if not path.exists():
        pytest.skip(f"{path.name} missing")
    return np.asarray(Image.open(path).convert("RGB"))


def _lab(rgb: RGB) -> npt.NDArray[np.float32]:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _rgb(lab: npt.NDArray[np.float32]) -> RGB:
    return np.clip(np.rint(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255), 0, 255).astype(np.uint8)


def colour_cast(target: RGB, style: RGB) -> RGB:
    """The target shifted to the style's Lab mean; nothing else changes."""
    t, s = _lab(target), _lab(style)
    shift = s.reshape(-1, 3).mean(0) - t.reshape(-1, 3).mean(0)
    return _rgb((t + shift).astype(np.float32))


def reinhard(target: RGB, style: RGB) -> RGB:
    from fluxcompose.backends.local import reinhard_transfer

    return np.asarray(reinhard_transfer(target, style), dtype=np.uint8)


def stroke_detail(target: RGB, style: RGB, sigma: float = 3.0) -> npt.NDArray[np.float32]:
    """The style's high-frequency detail (its brush strokes), stretched over the target."""
    s = cv2.resize(style, (target.shape[1], target.shape[0]), interpolation=cv2.INTER_AREA)
    s = s.astype(np.float32)
    return s - cv2.GaussianBlur(s, (0, 0), sigma)


def restyle_detail(target: RGB, style: RGB) -> RGB:
    """The style's colours (Reinhard) plus its brush-stroke detail."""
    base = reinhard(target, style).astype(np.float32)
    return np.clip(np.rint(base + stroke_detail(target, style)), 0, 255).astype(np.uint8)


def restyle_oil(target: RGB, style: RGB) -> RGB:
    """An oil-paint filter, then the style's colours and brush-stroke detail."""
    bgr = cv2.cvtColor(target, cv2.COLOR_RGB2BGR)
    painted = cv2.cvtColor(cv2.xphoto.oilPainting(bgr, 7, 1), cv2.COLOR_BGR2RGB)
    return restyle_detail(painted, style)


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest) -> RGB:
    return _load(IMAGES / request.param)


@pytest.fixture(scope="module", params=STYLES, ids=lambda p: p.name)
def style(request: pytest.FixtureRequest) -> RGB:
    return _load(request.param)


@pytest.mark.parametrize("restyle", [restyle_detail, restyle_oil], ids=["detail", "oil"])
def test_a_restyle_is_closer(target: RGB, style: RGB, restyle: object) -> None:
    out = restyle(target, style)  # type: ignore[operator]
    m = C.style_metric(out, target, style)
    assert m["colour_closer"] is True
    assert m["texture_closer"] is True, m
    assert m["closer"] is True
    # And the recipe check says so.
    assert C.evaluate_checks({"style": m}, {"style_closer": True})["passed"] is True


@pytest.mark.parametrize("recolour", [colour_cast, reinhard], ids=["cast", "reinhard"])
def test_a_colour_change_alone_is_not_a_restyle(target: RGB, style: RGB, recolour: object) -> None:
    out = recolour(target, style)  # type: ignore[operator]
    m = C.style_metric(out, target, style)
    assert m["colour_closer"] is True  # the colours did move...
    assert m["texture_closer"] is False, m  # ...the texture did not
    assert m["closer"] is False
    res = C.evaluate_checks({"style": m}, {"style_closer": True})
    assert res["passed"] is False and res["checks"]["style_closer"]["pass"] is False


def test_the_target_itself_is_not_closer(target: RGB, style: RGB) -> None:
    m = C.style_metric(target, target, style)
    assert m["closer"] is False
    assert m["texture_output_to_style"] == pytest.approx(m["texture_target_to_style"])


def test_texture_features_ignore_gain_offset_and_colour() -> None:
    img = _load(IMAGES / "flower.jpg")
    base = C.texture_features(img)
    assert base.shape == (C.TEXTURE_SCALES * (C.TEXTURE_BINS + 2),)
    # Each scale's orientation histogram sums to 1.
    per = base.reshape(C.TEXTURE_SCALES, C.TEXTURE_BINS + 2)
    assert per[:, : C.TEXTURE_BINS].sum(axis=1) == pytest.approx(np.ones(C.TEXTURE_SCALES))
    # A global gain and offset of the luminance (what a colour transfer does) changes nothing.
    dimmer = np.clip(img.astype(np.float32) * 0.6 + 20, 0, 255).astype(np.uint8)
    assert C.texture_distance(C.texture_features(dimmer), base) < 0.05


@settings(max_examples=8, deadline=None)
@given(angle=st.sampled_from([0, 45, 90, 135]))
def test_orientation_histogram_follows_the_strokes(angle: int) -> None:
    """Stripes at a known angle put most gradient weight in the bin across them."""
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    a = np.deg2rad(angle)
    stripes = 127 + 100 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / 8)
    img = np.repeat(stripes[:, :, None], 3, axis=2).astype(np.uint8)
    hist = C.texture_features(img)[: C.TEXTURE_BINS]
    # The gradient points along the stripes' normal, at ``angle`` (mod 180).
    expected_bin = int(((angle % 180) / 180) * C.TEXTURE_BINS) % C.TEXTURE_BINS
    neighbours = {expected_bin, (expected_bin - 1) % C.TEXTURE_BINS}
    assert int(np.argmax(hist)) in neighbours | {(expected_bin + 1) % C.TEXTURE_BINS}
    assert sum(hist[b] for b in neighbours | {(expected_bin + 1) % C.TEXTURE_BINS}) > 0.8


def test_smoothing_moves_texture_away_from_a_painting() -> None:
    target = _load(IMAGES / "flower.jpg")
    style = _load(IMAGES / "starry_night.jpg")
    smooth = cv2.GaussianBlur(target, (0, 0), 2.5)
    m = C.style_metric(smooth, target, style)
    assert m["texture_output_to_style"] > m["texture_target_to_style"]
    assert m["closer"] is False
