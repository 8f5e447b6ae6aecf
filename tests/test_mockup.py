"""The local backend's print mock-up (DESIGN.md s. 10) and style preview, on pixels.

Known answers: a drawn person whose chest box and shirt are known (given by hand), the shared
real photos (grace_hopper.jpg with the chest box its README gives, samples/model.jpg, the
labelled people photos) and patterns whose colours and foreground are known. The print is reconstructed independently (the
pattern's foreground resized onto the reported print box) and compared with the output.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.backends.base import GenerationRequest
from fluxcompose.backends.local import (
    LocalBackend,
    fit_to_bucket,
    print_layer,
    print_mockup,
    style_preview,
)
from fluxcompose.geometry import bucket_for
from fluxcompose.images import load_image
from fluxcompose.locate import Subject, locate
from tests.paths import ROOT, SHARED_IMAGES

Arr = np.ndarray
GH_CHEST = (0.06, 0.53, 0.98, 1.0)  # shared/images/README.md
GH_FACE = (0.3, 0.25, 0.7, 0.52)  # looked at: the face and hair, above the collar
MODEL_CHEST = (0.15, 0.2, 0.85, 1.0)  # looked at: samples/model.jpg, armpit to armpit, collar down
NAVY = (24, 32, 72)

# --------------------------------------------------------------------------- pictures


@cache
def _photo(name: str) -> Arr:
    path = SHARED_IMAGES / name if (SHARED_IMAGES / name).is_file() else ROOT / "samples" / name
    arr = np.asarray(load_image(path).image).copy()
    arr.setflags(write=False)
    return arr


PERSON_CHEST = (0.28, 0.33, 0.72, 1.0)
PERSON_FACE = (0.39, 0.03, 0.61, 0.3)


@cache
def _person(shirt: tuple[int, int, int] = (236, 236, 236), folds: bool = False) -> Arr:
    """A drawn half-length person, 1024 x 1024 (the 1:1 bucket: the output is not resized):
    blue-grey wall, skin head, neck and arms, a shirt with short sleeves. ``folds`` adds
    two soft diagonal shadows across the chest. Mild fixed noise, like a photo."""
    s = 1024
    img = np.empty((s, s, 3), np.float32)
    img[:] = (92, 120, 140)
    skin = (196, 146, 112)
    cv2.ellipse(img, (512, 170), (105, 135), 0, 0, 360, skin, -1)
    cv2.rectangle(img, (470, 260), (554, 350), skin, -1)
    cv2.rectangle(img, (150, 560), (262, s), skin, -1)  # arms
    cv2.rectangle(img, (762, 560), (874, s), skin, -1)
    shirt_mask = np.zeros((s, s), np.uint8)
    torso = np.array([[262, 330], [762, 330], [745, s], [279, s]], np.int32)
    sleeves = [
        np.array([[262, 330], [150, 380], [140, 560], [270, 560]], np.int32),
        np.array([[762, 330], [874, 380], [884, 560], [754, 560]], np.int32),
    ]
    for poly in [torso, *sleeves]:
        cv2.fillPoly(shirt_mask, [poly], 255)
    cv2.ellipse(shirt_mask, (512, 330), (58, 34), 0, 0, 180, 0, -1)  # the neckline
    on = shirt_mask > 0
    tone = np.ones((s, s), np.float32)
    if folds:
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        for c in (300.0, 720.0):
            band = (xx - 0.5 * yy - c) / 40.0
            tone -= 0.35 * np.exp(-band * band)
    img[on] = np.asarray(shirt, np.float32) * tone[on][:, None]
    rng = np.random.default_rng(5)
    img += rng.normal(0, 1.5, img.shape).astype(np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def _logo(bg: tuple[int, int, int] = (255, 255, 255)) -> Arr:
    """A 240 x 160 two-colour print on a plain ``bg``: an orange disc and a teal bar, with a
    30 px border of ``bg`` all round."""
    img = np.empty((160, 240, 3), np.uint8)
    img[:] = bg
    cv2.circle(img, (90, 80), 50, (240, 120, 30), -1)
    cv2.rectangle(img, (150, 40), (210, 120), (20, 150, 140), -1)
    return img


LOGO_FG = (40, 30, 211, 131)  # the logo's foreground box, x0, y0, x1, y1 (cv2 draws inclusive)


@cache
def _pattern_png() -> Arr:
    """samples/pattern.png as the canvas shows it: RGBA flattened on white."""
    arr = np.asarray(load_image(ROOT / "samples" / "pattern.png").image).copy()
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- running


def _canvas(pattern: Arr, target: Arr, bg: tuple[int, int, int]) -> tuple[bytes, dict[str, Any]]:
    """Pattern left, target right, on a ``bg`` canvas, and the layout the pipeline sends."""
    ph, pw = pattern.shape[:2]
    th, tw = target.shape[:2]
    height = max(ph, th)
    canvas = np.empty((height, pw + tw, 3), np.uint8)
    canvas[:] = bg
    py, ty = (height - ph) // 2, (height - th) // 2
    canvas[py : py + ph, :pw] = pattern
    canvas[ty : ty + th, pw:] = target
    layout = {
        "width": pw + tw,
        "height": height,
        "background": "#{:02x}{:02x}{:02x}".format(*bg),
        "cells": [
            {"index": 0, "source": "pattern.png", "x": 0, "y": py, "w": pw, "h": ph},
            {"index": 1, "source": "target.jpg", "x": pw, "y": ty, "w": tw, "h": th},
        ],
    }
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), layout


def _generate(
    pattern: Arr,
    target: Arr,
    size: str,
    placement: str = "middle",
    subject_box: tuple[float, float, float, float] | None = None,
    bg: tuple[int, int, int] = (255, 255, 255),
) -> tuple[Arr, dict[str, Any]]:
    """The output, resized back to the target's size when the bucket differs, and extra.

    Compare it with :func:`_reference` (the target through the same resizes), not with
    the target itself, when the bucket is not the target's size.
    """
    data, layout = _canvas(pattern, target, bg)
    context: dict[str, Any] = {
        "recipe": "pattern-transfer",
        "variables": {"size": size, "placement": placement},
        "checks": {},
        "layout": layout,
        "source_names": ["pattern", "target"],
        "target": "target",
    }
    if subject_box is not None:
        context["subject_box"] = list(subject_box)
    th, tw = target.shape[:2]
    req = GenerationRequest(
        prompt="p", input_image=data, aspect_ratio=f"{tw}:{th}", context=context
    )
    result = LocalBackend().generate(req)
    with Image.open(io.BytesIO(result.data or b"")) as im:
        out = np.asarray(im.convert("RGB"))
    if out.shape[:2] != (th, tw):
        out = cv2.resize(out, (tw, th), interpolation=cv2.INTER_AREA)
    return out, result.extra


def _reference(target: Arr) -> Arr:
    """The target as an untouched output would come back from :func:`_generate`: through
    the bucket (the backend's own fit_to_bucket) and back to its size."""
    th, tw = target.shape[:2]
    out, placed = fit_to_bucket(np.ascontiguousarray(target), bucket_for(f"{tw}:{th}"))
    assert placed == (0, 0, out.shape[1], out.shape[0])
    if out.shape[:2] == (th, tw):
        return out
    return cv2.resize(out, (tw, th), interpolation=cv2.INTER_AREA)


def _changed(out: Arr, ref: Arr, thresh: int = 60) -> Arr:
    return np.abs(out.astype(np.int16) - ref.astype(np.int16)).sum(axis=2) > thresh


def _bbox(mask: Arr) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    assert xs.size, "nothing changed"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _px(box: Any, w: int, h: int) -> tuple[int, int, int, int]:
    return round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)


def _garment(target: Arr, box: Any) -> Arr:
    """The garment mask the backend clips to: locate's own, on the same target and box."""
    subject = locate(target, subject_box=None if box is None else tuple(box))
    mask = subject.garment_mask((target.shape[1], target.shape[0]))
    assert mask is not None
    return mask


def _reconstruct(pattern: Arr, print_box: Any, shape: tuple[int, ...]) -> tuple[Arr, Arr]:
    """The pattern's foreground (not near-white) resized onto ``print_box`` (normalised) of
    an image of ``shape``: (colours, solid-interior mask), independent of the backend."""
    h, w = shape[:2]
    fg = np.abs(pattern.astype(np.int16) - 255).max(axis=2) > 40
    x0, y0, x1, y1 = _bbox(fg)
    bx0, by0, bx1, by1 = _px(print_box, w, h)
    crop = pattern[y0:y1, x0:x1]
    colours = np.zeros((h, w, 3), np.uint8)
    solid = np.zeros((h, w), bool)
    sized = cv2.resize(crop, (bx1 - bx0, by1 - by0), interpolation=cv2.INTER_AREA)
    inner = cv2.resize(fg[y0:y1, x0:x1].astype(np.uint8), (bx1 - bx0, by1 - by0)) > 0
    inner = cv2.erode(inner.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    # Pixels near colour edges inside the print are blends: keep flat-coloured ones only.
    flat = cv2.Laplacian(cv2.cvtColor(sized, cv2.COLOR_RGB2GRAY), cv2.CV_32F, ksize=3)
    inner &= cv2.dilate((np.abs(flat) > 12).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    ix0, iy0 = max(0, bx0), max(0, by0)
    ix1, iy1 = min(w, bx1), min(h, by1)
    colours[iy0:iy1, ix0:ix1] = sized[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0]
    solid[iy0:iy1, ix0:ix1] = inner[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0]
    return colours, solid


def _luma(rgb: Arr) -> Arr:
    f = rgb.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _in_box(x: float, y: float, box: Any, w: int, h: int) -> bool:
    x0, y0, x1, y1 = box
    return x0 * w <= x <= x1 * w and y0 * h <= y <= y1 * h


# --------------------------------------------------------------------------- the drawn person


def test_person_print_is_on_the_chest_at_its_size_and_nothing_else_changes() -> None:
    target = _person(folds=True)
    out, extra = _generate(_logo(), target, "1/2", subject_box=PERSON_CHEST)
    h, w = target.shape[:2]
    assert extra["subject"]["method"] == "given" and extra["placed_by"] == "chest"
    assert extra["warnings"] == []
    changed = _changed(out, target)
    x0, y0, x1, y1 = _bbox(changed)
    assert _in_box((x0 + x1) / 2, (y0 + y1) / 2, PERSON_CHEST, w, h)
    chest_w = (PERSON_CHEST[2] - PERSON_CHEST[0]) * w
    assert abs((x1 - x0) / chest_w - 0.5) <= 0.1
    # Centred on the chest box's middle.
    cx, cy = (
        (PERSON_CHEST[0] + PERSON_CHEST[2]) / 2 * w,
        (PERSON_CHEST[1] + PERSON_CHEST[3]) / 2 * h,
    )
    assert abs((x0 + x1) / 2 - cx) <= 0.03 * w and abs((y0 + y1) / 2 - cy) <= 0.03 * h
    # The 1:1 bucket is 1024 x 1024: the output is not resampled, so "unchanged" is exact.
    mask = _garment(target, PERSON_CHEST)
    assert np.array_equal(out[~mask], target[~mask])
    fx0, fy0, fx1, fy1 = _px(PERSON_FACE, w, h)
    assert np.array_equal(out[fy0:fy1, fx0:fx1], target[fy0:fy1, fx0:fx1])
    assert extra["pattern_box"][2] - extra["pattern_box"][0] == pytest.approx(0.5 * 0.44, abs=0.01)
    assert extra["chest_box"] == pytest.approx(list(PERSON_CHEST), abs=0.002)


def test_print_keeps_its_true_colours_on_an_evenly_lit_white_shirt() -> None:
    target = _person()
    out, extra = _generate(_logo(), target, "0.6", subject_box=PERSON_CHEST)
    colours, solid = _reconstruct(_logo(), extra["pattern_box"], out.shape)
    solid &= _garment(target, PERSON_CHEST)
    assert solid.sum() > 5000
    diff = out[solid].astype(np.float32) - colours[solid].astype(np.float32)
    assert np.abs(diff.mean(axis=0)).max() <= 4.0  # no darkening, no tint
    assert np.abs(diff).mean() <= 6.0


def test_folds_shade_the_print_but_never_brighten_it() -> None:
    flat_out, extra = _generate(_logo(), _person(), "0.6", subject_box=PERSON_CHEST)
    fold_out, extra2 = _generate(_logo(), _person(folds=True), "0.6", subject_box=PERSON_CHEST)
    assert extra["pattern_box"] == extra2["pattern_box"]
    colours, solid = _reconstruct(_logo(), extra["pattern_box"], flat_out.shape)
    lum_flat, lum_fold = _luma(flat_out), _luma(fold_out)
    shadow = (_luma(_person(folds=True)) < 0.8 * _luma(_person())) & solid
    lit = (_luma(_person(folds=True)) >= 0.99 * _luma(_person())) & solid
    assert shadow.sum() > 500 and lit.sum() > 500
    # In the fold's shadow the print is darker; elsewhere it is as on the flat shirt.
    assert lum_fold[shadow].mean() < 0.85 * lum_flat[shadow].mean()
    assert abs(lum_fold[lit].mean() - lum_flat[lit].mean()) <= 3.0
    assert (lum_fold[solid] <= lum_flat[solid] + 4).all()


def test_print_is_not_darkened_to_a_navy_shirt() -> None:
    target = _person(shirt=NAVY)
    out, extra = _generate(_logo(), target, "0.6", subject_box=PERSON_CHEST)
    colours, solid = _reconstruct(_logo(), extra["pattern_box"], out.shape)
    solid &= _garment(target, PERSON_CHEST)
    assert solid.sum() > 5000
    ratio = _luma(out)[solid].mean() / _luma(colours)[solid].mean()
    assert 0.9 <= ratio <= 1.05
    assert _luma(target)[solid].mean() < 50  # it really was printed on a dark shirt


def test_upper_left_lands_in_the_upper_left_quarter_of_the_chest() -> None:
    target = _person()
    out, extra = _generate(_logo(), target, "1/4", "upper left", subject_box=PERSON_CHEST)
    h, w = target.shape[:2]
    x0, y0, x1, y1 = _bbox(_changed(out, target))
    cx0, cy0, cx1, cy1 = PERSON_CHEST
    quarter = (cx0, cy0, (cx0 + cx1) / 2, (cy0 + cy1) / 2)
    assert _in_box((x0 + x1) / 2, (y0 + y1) / 2, quarter, w, h)
    # Wholly on the chest: not on the neck or the shoulder above the chest box.
    assert y0 >= cy0 * h - 2 and x0 >= cx0 * w - 2
    assert extra["placement_point"] == [0.25, 0.25]


def test_unknown_placement_words_mean_the_middle_with_a_warning() -> None:
    target = _person()
    out, extra = _generate(_logo(), target, "1/3", "over the heart", subject_box=PERSON_CHEST)
    h, w = target.shape[:2]
    x0, y0, x1, y1 = _bbox(_changed(out, target))
    cx, cy = (
        (PERSON_CHEST[0] + PERSON_CHEST[2]) / 2 * w,
        (PERSON_CHEST[1] + PERSON_CHEST[3]) / 2 * h,
    )
    assert abs((x0 + x1) / 2 - cx) <= 0.03 * w and abs((y0 + y1) / 2 - cy) <= 0.03 * h
    assert any("over" in x and "heart" in x for x in extra["warnings"])
    assert extra["placement_point"] == [0.5, 0.5]


def test_a_pattern_on_navy_drops_its_navy_border() -> None:
    """A dark-border print on a white shirt: only the disc and bar land, not the navy box."""
    target = _person()
    pattern = _logo(bg=NAVY)
    out, extra = _generate(pattern, target, "0.5", subject_box=PERSON_CHEST, bg=NAVY)
    assert extra["pattern_background"] == pytest.approx(list(NAVY), abs=3)
    changed = _changed(out, target)
    # No navy: nothing in the output is near the border colour where the target is not.
    navyish = np.abs(out.astype(np.int16) - np.array(NAVY)).max(axis=2) < 30
    assert (navyish & changed).sum() < 0.01 * changed.sum()
    # The changed region is the foreground's shape: its box has the foreground's aspect.
    x0, y0, x1, y1 = _bbox(changed)
    fw, fh = LOGO_FG[2] - LOGO_FG[0], LOGO_FG[3] - LOGO_FG[1]
    assert abs((x1 - x0) / (y1 - y0) - fw / fh) <= 0.1


def test_a_photo_like_pattern_is_printed_whole() -> None:
    target = _person()
    rng = np.random.default_rng(1)
    photo = cv2.resize(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8), (180, 120))
    out, extra = _generate(photo, target, "0.5", subject_box=PERSON_CHEST)
    assert extra["pattern_background"] is None
    h, w = target.shape[:2]
    x0, y0, x1, y1 = _bbox(_changed(out, target, thresh=30))
    chest_w = (PERSON_CHEST[2] - PERSON_CHEST[0]) * w
    assert abs((x1 - x0) / chest_w - 0.5) <= 0.05
    assert abs((x1 - x0) / (y1 - y0) - 1.5) <= 0.1


def test_no_subject_places_the_print_by_the_image_and_says_so() -> None:
    yy, xx = np.mgrid[0:600, 0:800].astype(np.float32)
    wall = np.dstack([80 + xx / 10, 110 + yy / 12, np.full_like(xx, 150)]).astype(np.uint8)
    assert not locate(wall).found
    out, extra = _generate(_logo(), wall, "0.5", "upper left")
    assert extra["subject"]["found"] is False
    assert extra["placed_by"] == "image" and extra["chest_box"] is None
    assert any("no subject" in x for x in extra["warnings"])
    ref = _reference(wall)
    x0, y0, x1, y1 = _bbox(_changed(out, ref))
    assert abs((x1 - x0) / 800 - 0.5) <= 0.03  # the foreground is half the image's width
    # Upper left of the image (moved inward to stay inside).
    assert (x0 + x1) / 2 < 0.4 * 800 and (y0 + y1) / 2 < 0.4 * 600
    # The background was dropped: the logo's white border did not land.
    white = (out.min(axis=2) > 235) & _changed(out, ref)
    assert white.sum() == 0
    # Not clipped to any garment: the whole foreground landed (its box has its aspect).
    fw, fh = LOGO_FG[2] - LOGO_FG[0], LOGO_FG[3] - LOGO_FG[1]
    assert abs((x1 - x0) / (y1 - y0) - fw / fh) <= 0.1


# --------------------------------------------------------------------------- print_mockup, pure


def test_off_the_garment_nothing_changes_bit_for_bit() -> None:
    for name, box in (("grace_hopper.jpg", GH_CHEST), ("model.jpg", MODEL_CHEST)):
        target = _photo(name)
        subject = locate(target, subject_box=box)
        mock = print_mockup(target, _pattern_png(), subject, 2 / 3, (0.5, 0.5))
        mask = subject.garment_mask((target.shape[1], target.shape[0]))
        assert mask is not None
        assert np.array_equal(mock.image[~mask], target[~mask]), name
        assert _changed(mock.image, target).sum() > 0.05 * mask.sum(), name


def test_print_layer_drops_a_plain_border_and_keeps_gaps() -> None:
    logo = _logo()
    logo[70:90, 80:100] = 255  # a hole in the disc, showing the background
    layer = print_layer(logo)
    assert layer.background == (255, 255, 255)
    assert layer.box == LOGO_FG
    assert layer.alpha[5, 5] == 0 and layer.alpha[80, 60] == 1 and layer.alpha[80, 90] == 0
    # Premultiplied colour of a solid pixel is the pixel.
    assert np.allclose(layer.premultiplied[80, 60], logo[80, 60], atol=0.01)
    # A photo (no plain border) is kept whole.
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    whole = print_layer(photo)
    assert whole.background is None and whole.box == (0, 0, 70, 50) and whole.alpha.min() == 1


def test_print_layer_uses_the_canvas_background_as_a_hint() -> None:
    """A border that is noisy JPEG-ish grey: the median and the hint agree, alpha is clean."""
    rng = np.random.default_rng(2)
    logo = _logo(bg=(200, 200, 200)).astype(np.int16) + rng.integers(-6, 7, (160, 240, 3))
    layer = print_layer(np.clip(logo, 0, 255).astype(np.uint8), hint=(200, 200, 200))
    assert layer.background is not None
    assert max(abs(c - 200) for c in layer.background) <= 2
    assert layer.alpha[:25].max() == 0  # the noisy border is all background
    assert layer.box == LOGO_FG


def test_the_subject_s_absence_is_not_a_garment() -> None:
    target = _person()
    nobody = Subject(False, "none", 0.0, None, None, None, None, reason="test")
    mock = print_mockup(target, _logo(), nobody, 0.5, (0.5, 0.5))
    assert mock.chest_box == (0.0, 0.0, 1024.0, 1024.0) and mock.shade_median is None
    x0, _, x1, _ = mock.print_box
    assert x1 - x0 == pytest.approx(512.0)


def test_a_stray_speck_does_not_widen_the_print() -> None:
    logo = _logo()
    logo[3, 236] = (0, 0, 0)  # dust in the corner of the plain border
    logo[150:152, 5:7] = (0, 0, 0)
    layer = print_layer(logo)
    assert layer.box == LOGO_FG
    assert layer.alpha[3, 236] == 0 and layer.alpha[150, 5] == 0


@settings(max_examples=40, deadline=None)
@given(
    tw=st.integers(8, 90),
    th=st.integers(8, 90),
    pw=st.integers(3, 60),
    ph=st.integers(3, 60),
    plain=st.booleans(),
    found=st.booleans(),
    box=st.tuples(*[st.floats(0.0, 1.0)] * 4),
    frac=st.floats(0.02, 1.0),
    point=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    seed=st.integers(0, 2**16),
)
def test_print_mockup_never_touches_pixels_off_the_mask(
    tw: int,
    th: int,
    pw: int,
    ph: int,
    plain: bool,
    found: bool,
    box: tuple[float, float, float, float],
    frac: float,
    point: tuple[float, float],
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, (th, tw, 3), dtype=np.uint8)
    pattern = rng.integers(0, 256, (ph, pw, 3), dtype=np.uint8)
    if plain:
        pattern[:] = 255
        pattern[
            ph // 3 : max(ph // 3 + 1, 2 * ph // 3), pw // 4 : max(pw // 4 + 1, 3 * pw // 4)
        ] = 0
    x0, x1 = sorted((box[0], box[2]))
    y0, y1 = sorted((box[1], box[3]))
    chest = (x0, y0, max(x1, x0 + 0.01), max(y1, y0 + 0.01))
    mask = rng.random((th, tw)) < 0.6
    subject = (
        Subject(True, "given", 1.0, chest, chest, None, mask)
        if found
        else Subject(False, "none", 0.0, None, None, None, None, reason="test")
    )
    mock = print_mockup(target, pattern, subject, frac, point)
    assert mock.image.shape == target.shape and mock.image.dtype == np.uint8
    if found:
        assert np.array_equal(mock.image[~mask], target[~mask])
    px0, _, px1, _ = mock.print_box
    cw = (chest[2] - chest[0]) * tw if found else tw
    assert px1 - px0 == pytest.approx(frac * cw, rel=1e-6) or any(
        "tall" in w for w in mock.warnings
    )


# --------------------------------------------------------------------------- real photos


def test_grace_hopper_given_chest_box() -> None:
    target = _photo("grace_hopper.jpg")
    h, w = target.shape[:2]
    out, extra = _generate(_pattern_png(), target, "1/2", subject_box=GH_CHEST)
    ref = _reference(target)
    changed = _changed(out, ref)
    # The face is untouched: exactly as the target comes back through the same resizes.
    fx0, fy0, fx1, fy1 = _px(GH_FACE, w, h)
    assert np.array_equal(out[fy0:fy1, fx0:fx1], ref[fy0:fy1, fx0:fx1])
    x0, y0, x1, y1 = _bbox(changed)
    assert _in_box((x0 + x1) / 2, (y0 + y1) / 2, GH_CHEST, w, h)
    chest_w = (GH_CHEST[2] - GH_CHEST[0]) * w
    assert abs((x1 - x0) / chest_w - 0.5) <= 0.1
    # Not darkened to the navy jacket: the print's luminance stays near the pattern's own.
    colours, solid = _reconstruct(_pattern_png(), extra["pattern_box"], out.shape)
    solid &= _garment(target, GH_CHEST)
    solid &= _luma(target) < 60  # on the jacket itself, not the white shirt
    assert solid.sum() > 2000
    ratio = _luma(out)[solid].mean() / _luma(colours)[solid].mean()
    assert 0.8 <= ratio <= 1.1, ratio
    # And it is the pattern: pixel colours correlate with the reconstruction.
    corr = np.corrcoef(_luma(out)[solid], _luma(colours)[solid])[0, 1]
    assert corr > 0.8


def test_model_given_chest_box_keeps_the_print_s_colours() -> None:
    target = _photo("model.jpg")
    assert target.shape[:2] == (1024, 768)  # loaded upright (EXIF orientation 6)
    h, w = target.shape[:2]
    out, extra = _generate(_pattern_png(), target, "0.6", subject_box=MODEL_CHEST)
    x0, y0, x1, y1 = _bbox(_changed(out, _reference(target)))
    assert _in_box((x0 + x1) / 2, (y0 + y1) / 2, MODEL_CHEST, w, h)
    chest_w = (MODEL_CHEST[2] - MODEL_CHEST[0]) * w
    assert abs((x1 - x0) / chest_w - 0.6) <= 0.1
    colours, solid = _reconstruct(_pattern_png(), extra["pattern_box"], out.shape)
    solid &= _garment(target, MODEL_CHEST)
    assert solid.sum() > 5000
    # A white tee, lit from above with soft folds: the print is at most a little shaded.
    ratio = _luma(out)[solid].mean() / _luma(colours)[solid].mean()
    assert 0.88 <= ratio <= 1.02, ratio
    assert y0 >= MODEL_CHEST[1] * h - 2  # not on the neck


# --------------------------------------------------------------------------- with the detector


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "model.jpg"])
def test_detected_subject_carries_the_print(name: str) -> None:
    target = _photo(name)
    h, w = target.shape[:2]
    subject = locate(target)
    assert subject.found and subject.chest_box is not None
    out, extra = _generate(_pattern_png(), target, "1/2")
    assert extra["placed_by"] == "chest" and extra["subject"]["found"] is True
    chest = subject.chest_box
    ref = _reference(target)
    x0, y0, x1, y1 = _bbox(_changed(out, ref))
    assert _in_box((x0 + x1) / 2, (y0 + y1) / 2, chest, w, h)
    assert abs((x1 - x0) / ((chest[2] - chest[0]) * w) - 0.5) <= 0.1
    # Off the garment (a few pixels away from it: the bucket's resampling spreads), as the
    # target comes back through the same resizes.
    mask = _garment(target, None)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert np.array_equal(out[~near], ref[~near])
    if subject.face_box is not None:
        fx0, fy0, fx1, fy1 = _px(subject.face_box, w, h)
        fy1 = min(fy1, round(chest[1] * h) - 4)
        assert np.array_equal(out[fy0:fy1, fx0:fx1], ref[fy0:fy1, fx0:fx1])


@pytest.mark.parametrize("name", ["model_1", "model_4", "model_7", "model_9"])
def test_detected_people_wear_the_print(name: str) -> None:
    """The labelled people photos (a tank, a crop top, a navy tank, a dress): the print is
    centred in the hand-drawn chest box, half its width, and stays on the chest."""
    from tests import people

    target = np.ascontiguousarray(people.photo(name))
    truth = people.labels()[name]
    h, w = target.shape[:2]
    out, extra = _generate(_pattern_png(), target, "1/2")
    assert extra["subject"]["found"] is True and extra["subject"]["method"] == "pose"
    changed = _changed(out, _reference(target))
    x0, y0, x1, y1 = _bbox(changed)
    assert _in_box((x0 + x1) / 2, (y0 + y1) / 2, truth, w, h), name
    chest_w = (truth[2] - truth[0]) * w
    assert abs((x1 - x0) / chest_w - 0.5) <= 0.12, name
    # On the chest: inside the labelled box, give or take 0.03 of the image.
    box = np.zeros((h, w), bool)
    box[
        round((truth[1] - 0.03) * h) : round((truth[3] + 0.03) * h),
        round((truth[0] - 0.03) * w) : round((truth[2] + 0.03) * w),
    ] = True
    assert changed[box].sum() >= 0.97 * changed.sum(), name


# --------------------------------------------------------------------------- style preview


def _grey256(rgb: Arr) -> Arr:
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    s = 256 / max(h, w)
    return cv2.resize(g, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _gradient_stats(rgb: Arr) -> tuple[float, Arr]:
    """Of the luminance at 256 px: the mean Sobel gradient magnitude, and the 8-bin
    histogram of gradient orientation (0..180 degrees) weighted by magnitude, summing to 1."""
    g = _grey256(rgb)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((ang / np.pi * 8).astype(int), 7)
    hist = np.bincount(bins.ravel(), weights=mag.ravel(), minlength=8)
    return float(mag.mean()), hist / hist.sum()


def _ssim(a: Arr, b: Arr) -> float:
    """Mean SSIM of the luminance at 256 px (Gaussian window, sigma 1.5)."""
    x, y = _grey256(a).astype(np.float64), _grey256(b).astype(np.float64)
    blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(m.mean())


def test_style_preview_moves_texture_toward_starry_night_and_keeps_the_content() -> None:
    content, style = _photo("grace_hopper.jpg"), _photo("starry_night.jpg")
    out = style_preview(content, style)
    g_in, h_in = _gradient_stats(content)
    g_out, h_out = _gradient_stats(out)
    g_style, h_style = _gradient_stats(style)
    assert abs(g_out - g_style) < 0.5 * abs(g_in - g_style)
    assert np.abs(h_out - h_style).sum() < 0.7 * np.abs(h_in - h_style).sum()
    assert _ssim(out, content) >= 0.2
    # Strength 0 is the content.
    assert np.abs(style_preview(content, style, 0.0).astype(int) - content).max() == 0


def test_style_fusion_through_the_backend_is_deterministic_and_textured() -> None:
    content = cv2.resize(_photo("grace_hopper.jpg"), (256, 300), interpolation=cv2.INTER_AREA)
    style = cv2.resize(_photo("starry_night.jpg"), (250, 200), interpolation=cv2.INTER_AREA)
    data, layout = _canvas(style, content, (255, 255, 255))
    context = {
        "recipe": "style-fusion",
        "variables": {},
        "layout": layout,
        "source_names": ["style", "target"],
        "target": "target",
    }
    req = GenerationRequest(prompt="p", input_image=data, aspect_ratio="256:300", context=context)
    a, b = LocalBackend().generate(req), LocalBackend().generate(req)
    assert a.data == b.data
    with Image.open(io.BytesIO(a.data or b"")) as im:
        out = cv2.resize(np.asarray(im.convert("RGB")), (256, 300), interpolation=cv2.INTER_AREA)
    g_in, _ = _gradient_stats(content)
    g_out, _ = _gradient_stats(out)
    g_style, _ = _gradient_stats(style)
    assert abs(g_out - g_style) < abs(g_in - g_style)
    assert _ssim(out, content) >= 0.2


def _figures() -> None:
    """Print the figures the report quotes: ``python -m tests.test_mockup``."""
    import time

    from fluxcompose.compare import ssim, style_metric

    target = cv2.resize(_photo("model.jpg"), (866, 1155), interpolation=cv2.INTER_AREA)
    subject = locate(target, subject_box=MODEL_CHEST)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        print_mockup(target, _pattern_png(), subject, 2 / 3, (0.5, 0.5))
        times.append(time.perf_counter() - t0)
    print(f"print_mockup, 1 MP target, 512 px pattern, locate excluded: {min(times) * 1000:.0f} ms")
    cases = [
        ("drawn white shirt", _logo(), _person(), PERSON_CHEST, "0.6", None),
        ("drawn navy shirt", _logo(), _person(shirt=NAVY), PERSON_CHEST, "0.6", None),
        (
            "grace_hopper navy jacket",
            _pattern_png(),
            _photo("grace_hopper.jpg"),
            GH_CHEST,
            "1/2",
            60,
        ),
        ("model.jpg white tee", _pattern_png(), _photo("model.jpg"), MODEL_CHEST, "0.6", None),
    ]
    for name, pattern, tgt, box, size, dark in cases:
        out, extra = _generate(pattern, tgt, size, subject_box=box)
        colours, solid = _reconstruct(pattern, extra["pattern_box"], out.shape)
        solid &= _garment(tgt, box)
        if dark is not None:
            solid &= _luma(tgt) < dark
        ratio = _luma(out)[solid].mean() / _luma(colours)[solid].mean()
        print(f"{name}: print luminance / pattern luminance = {ratio:.3f}")
    for cname, sname in (("grace_hopper.jpg", "starry_night.jpg"), ("model.jpg", "style.jpg")):
        content = _photo(cname)
        style = _photo(sname)
        out = style_preview(content, style)
        m = style_metric(out, content, style)
        print(
            f"style {cname} <- {sname}: SSIM {ssim(out, content):.3f}, colour "
            f"{m['output_to_style']:.1f} (target {m['target_to_style']:.1f}), texture "
            f"{m['texture_output_to_style']:.2f} (target {m['texture_target_to_style']:.2f}), "
            f"closer {m['closer']}"
        )


if __name__ == "__main__":
    _figures()
