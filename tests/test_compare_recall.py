"""compare finds the print on real photos, small and shaded by the folds, for logos and
all-over photographic prints alike, and never finds one that is not there.

The expectations are where the test pasted the print (bench/_prints.py) and the chest
boxes people labelled (shared/images/people/chest_boxes.json), given by hand so the
figures do not depend on ``locate``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image

from bench._prints import (
    PEOPLE,
    SHARED,
    all_over_print,
    flat,
    jpeg,
    logo,
    painting_crop,
    paste_print,
    people,
)
from fluxcompose import compare as C
from fluxcompose.compare import correlate, pattern, search
from tests.people import iou

pytestmark = pytest.mark.skipif(
    not (PEOPLE / "chest_boxes.json").is_file(), reason="shared/images/people missing"
)

Box = tuple[float, float, float, float]
PHOTOS = ("model_1.png", "model_4.png", "model_7.png", "model_9.png")  # light, yellow, navy, ...


@pytest.fixture(scope="module")
def photos() -> dict[str, tuple[Image.Image, Box]]:
    return {name: (img, chest) for name, img, chest in people()}


def centre(chest: Box) -> tuple[float, float]:
    return (chest[0] + chest[2]) / 2, (chest[1] + chest[3]) / 2


PRINTS = {
    "logo": lambda seed: logo(),
    "gradient": lambda seed: all_over_print(seed),
    "painting": lambda seed: painting_crop(seed),
}


@pytest.mark.parametrize("kind", sorted(PRINTS))
def test_small_shaded_prints_are_found_where_they_were_pasted(
    photos: dict[str, tuple[Image.Image, Box]], kind: str
) -> None:
    for seed, name in enumerate(PHOTOS):
        img, chest = photos[name]
        pr = PRINTS[kind](seed)
        for width in (0.1, 0.15):
            out, truth = paste_print(img, pr, centre(chest), width, shade=True)
            p = C.compare(out, img, pattern=flat(pr), subject_box=chest).metrics["pattern"]
            assert p["found"], (name, kind, width, p)
            assert iou(p["box"], truth) >= 0.6, (name, kind, width, p["box"], truth)
            chest_w = chest[2] - chest[0]
            assert p["width_fraction"] == pytest.approx((truth[2] - truth[0]) / chest_w, abs=0.06)


def test_a_smooth_all_over_print_is_found_by_colour_where_features_fail(
    photos: dict[str, tuple[Image.Image, Box]],
) -> None:
    img, chest = photos["model_4.png"]
    pr = all_over_print(7)
    out, truth = paste_print(img, pr, centre(chest), 0.3)
    assert not C.locate_pattern(out, flat(pr))["found"]  # too little texture for SIFT
    p = C.compare(out, img, pattern=flat(pr), subject_box=chest).metrics["pattern"]
    assert p["found"] and p["method"] == "colour" and p["score"] >= correlate.CORR_MIN_SCORE
    assert iou(p["box"], truth) >= 0.8


def test_a_turned_smooth_print_is_found_turned(
    photos: dict[str, tuple[Image.Image, Box]],
) -> None:
    """Turned 8 degrees on a navy shirt: the upright colour match scores under the bar;
    the turned one finds it, and its box is the turned print's."""
    img, chest = photos["model_7.png"]
    pr = all_over_print(5)
    h, w = pr.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.0)
    side = int(math.ceil(w * (math.cos(math.radians(8)) + math.sin(math.radians(8)))))
    turn[:, 2] += (side - w) / 2  # a canvas that holds all of the turned print
    turned = cv2.warpAffine(pr, turn, (side, side), flags=cv2.INTER_LINEAR)
    out, truth = paste_print(img, turned, centre(chest), 0.2 * side / w)
    p = C.compare(out, img, pattern=flat(pr), subject_box=chest).metrics["pattern"]
    assert p["found"] and p["method"] == "colour", p
    assert iou(p["box"], truth) >= 0.8, (p["box"], truth)
    top_left, top_right = np.array(p["corners"][0]), np.array(p["corners"][1])
    dx, dy = (top_right - top_left) * np.array(img.size)
    assert math.degrees(math.atan2(-dy, dx)) == pytest.approx(8.0, abs=3.0)  # anticlockwise


def test_a_partly_hidden_smooth_print_is_judged_by_what_shows(
    photos: dict[str, tuple[Image.Image, Box]],
) -> None:
    """40 % of an all-over print hidden (the target's pixels back over its left part, as
    an arm in front would): found by colour, over the part that shows."""
    for seed, name in enumerate(PHOTOS[:2]):
        img, chest = photos[name]
        pr = all_over_print(20 + seed)
        out, truth = paste_print(img, pr, centre(chest), 0.2)
        a, t = np.asarray(out).copy(), np.asarray(img)
        h, w = a.shape[:2]
        x0, y0, x1, y1 = (int(v * s) for v, s in zip(truth, (w, h, w, h), strict=True))
        cut = x0 + int(0.4 * (x1 - x0))
        a[y0:y1, x0:cut] = t[y0:y1, x0:cut]
        p = C.compare(Image.fromarray(a), img, pattern=flat(pr), subject_box=chest).metrics[
            "pattern"
        ]
        assert p["found"] and p["method"] == "colour", (name, p)
        assert iou(p["box"], truth) >= 0.8, (name, p["box"], truth)


@pytest.mark.parametrize("kind", ["logo", "gradient", "painting"])
def test_no_print_is_found_on_the_unchanged_photos(
    photos: dict[str, tuple[Image.Image, Box]], kind: str
) -> None:
    pat = flat(PRINTS[kind](3))
    for name, (img, chest) in photos.items():
        for out in (img, jpeg(img, 90)):
            p = C.compare(out, img, pattern=pat, subject_box=chest).metrics["pattern"]
            assert p["found"] is False and p["box"] is None, (name, kind)


def test_an_unrelated_print_is_not_the_pattern(
    photos: dict[str, tuple[Image.Image, Box]],
) -> None:
    flower = np.asarray(Image.open(SHARED / "flower.jpg").convert("RGBA"))
    for seed, name in enumerate(PHOTOS[:3]):
        img, chest = photos[name]
        for pasted, wanted in (
            (flower, all_over_print(seed)),
            (all_over_print(50 + seed), all_over_print(seed)),
            (all_over_print(50 + seed), logo()),
        ):
            out, _ = paste_print(img, pasted, centre(chest), 0.3)
            p = C.compare(out, img, pattern=flat(wanted), subject_box=chest).metrics["pattern"]
            assert p["found"] is False, (name, p)


def test_a_print_already_on_the_target_is_not_a_transferred_one(
    photos: dict[str, tuple[Image.Image, Box]],
) -> None:
    """The target already wears the print; the output changes only around it (bands to its
    right and below, so the searched region holds the print). Features match the print
    there, but it lies where nothing changed."""
    img, chest = photos["model_1.png"]
    pr = painting_crop(2)
    target, truth = paste_print(img, pr, centre(chest), 0.25, quality=None)
    a = np.asarray(target).copy()
    h, w = a.shape[:2]
    x0, x1 = int(truth[0] * w), int(truth[2] * w)
    y0, y1 = int(truth[1] * h), int(truth[3] * h)
    a[y0 : y1 + 40, x1 + 4 : x1 + 40] = (200, 30, 30)  # red bands right of and below it
    a[y1 + 4 : y1 + 40, x0 : x1 + 40] = (200, 30, 30)
    out = Image.fromarray(a)
    assert C.locate_pattern(out, flat(pr))["found"]  # the print is plainly there
    p = C.compare(out, target, pattern=flat(pr), subject_box=chest).metrics["pattern"]
    assert p["found"] is False
    assert p["reason"] == search.STATIC_REASON


def test_nothing_changed_means_no_search() -> None:
    assert search.search_region(None, (0.3, 0.3, 0.7, 0.7)) is None


def test_search_region_is_cut_to_the_chest_when_most_of_the_picture_changed() -> None:
    chest: Box = (0.3, 0.3, 0.7, 0.6)
    small = search.search_region([0.45, 0.4, 0.55, 0.5], chest)
    assert small is not None and small[0] < 0.45 and small[2] > 0.55  # grown, not cut
    whole = search.search_region([0.0, 0.0, 1.0, 1.0], chest)
    reach_x = search.CHEST_REACH_X * 0.4
    assert whole == pytest.approx(
        [0.3 - reach_x, 0.3 - 0.3 * 0.35, 0.7 + reach_x, 0.6 + 0.3 * 0.35]
    )


def test_a_flat_or_ramp_design_is_not_looked_for_by_colour() -> None:
    """One colour, or one smooth ramp, correlates with any flat or evenly shaded patch
    (a backdrop, a shirt's light): the colour search refuses them even where they are."""
    out = np.full((300, 300, 3), 120, np.uint8)
    out[100:200, 100:200] = (200, 40, 40)
    flat_pattern = np.full((64, 64, 3), (200, 40, 40), np.uint8)
    assert not correlate.correlate_pattern(out, flat_pattern, region=[0, 0, 1, 1])["found"]
    ramp = np.linspace((180, 160, 140), (90, 70, 60), 100).astype(np.uint8)
    ramp_pattern = np.ascontiguousarray(np.repeat(ramp[:, None, :], 100, axis=1))
    out[100:200, 100:200] = ramp_pattern
    assert not correlate.correlate_pattern(out, ramp_pattern, region=[0, 0, 1, 1])["found"]
    # A design with structure in the same place is found: the refusal is the ramp's.
    blob = ramp_pattern.copy()
    blob[30:70, 30:70] = (40, 160, 200)
    out[100:200, 100:200] = blob
    assert correlate.correlate_pattern(out, blob, region=[0, 0, 1, 1])["found"]


def test_pattern_features_are_computed_once_per_content() -> None:
    a = np.asarray(flat(all_over_print(11)))
    first = pattern.pattern_model(a)
    assert pattern.pattern_model(a.copy()) is first
    other = pattern.pattern_model(np.asarray(flat(all_over_print(12))))
    assert other is not first
    sizes = [level.size for level in first.levels]
    assert sizes == [(s, s) for s in pattern.PATTERN_SIDES]


def test_the_sheet_and_cli_say_what_a_find_rests_on() -> None:
    """A colour find is never reported as "N inliers": the words name the evidence."""
    from fluxcompose.sheet import pattern_evidence

    assert pattern_evidence({"found": True, "method": "features", "inliers": 37}) == (
        "by 37 matched features"
    )
    colour = {"found": True, "method": "colour", "inliers": 4, "score": 0.912}
    assert pattern_evidence(colour) == "by colour, correlation 0.912"
    assert "inliers" not in pattern_evidence(colour)
    miss = {"found": False, "inliers": 3, "colour_score": 0.62, "reason": "nothing changed"}
    assert pattern_evidence(miss) == "3 matched features, colour correlation 0.620, nothing changed"
