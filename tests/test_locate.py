"""The subject locator (DESIGN.md s. 10): chest boxes against the hand labels of the people
photos and of harder framings made from them (tests/people.py); garment masks; skin-like
garments with a given box; honest failure on images with no person; parsing; the ``locate``
command. The shipped model itself, threads and stderr: tests/test_locate_model.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.cli import cli
from fluxcompose.errors import InputError
from fluxcompose.images import load_image
from fluxcompose.locate import (
    PLACEMENT_WORDS,
    Box,
    Subject,
    locate,
    parse_box,
    placement_point,
    point_in_box,
)
from fluxcompose.locate.garment import by_garment, by_given_box
from tests import people
from tests.paths import ROOT, SHARED_IMAGES

# The README's chest box for grace_hopper.jpg ("roughly"), and the white tee's front on
# samples/model.jpg measured on the image: torso sides below the sleeves at x 105 and 665 of
# 768, shoulder line at y ~175 of 1024, the tee running out of the bottom edge.
GRACE_CHEST = (0.06, 0.53, 0.98, 1.0)
MODEL_CHEST = (0.137, 0.17, 0.866, 1.0)
iou = people.iou


def centre_offset(found: Box, truth: Box) -> tuple[float, float]:
    """Centre distance in units of the true box's width and height."""
    dx = ((found[0] + found[2]) - (truth[0] + truth[2])) / 2 / (truth[2] - truth[0])
    dy = ((found[1] + found[3]) - (truth[1] + truth[3])) / 2 / (truth[3] - truth[1])
    return dx, dy


@pytest.fixture(scope="module")
def found() -> dict[str, Subject]:
    """locate() on each labelled photo, once for the module."""
    return {name: locate(people.photo(name)) for name in people.NAMES}


# --------------------------------------------------------------------------- labelled photos


def test_people_photos_chest_boxes_match_the_labels(found: dict[str, Subject]) -> None:
    scores = {}
    for name, s in found.items():
        assert s.found and s.method == "pose", (name, s.reason)
        assert s.chest_box is not None and 0.5 < s.confidence <= 1.0
        scores[name] = iou(s.chest_box, people.labels()[name])
    assert min(scores.values()) >= 0.6, scores
    assert sum(scores.values()) / len(scores) >= 0.8, scores


def test_crop_tops_end_at_their_hem_not_at_the_hips(found: dict[str, Subject]) -> None:
    """model_4's crop top ends 0.63 of the way from shoulders to hips; model_8's and
    model_9's chest ends at 0.38-0.40 of the image, far above their hips (~0.46)."""
    for name in ("model_4", "model_8", "model_9"):
        box = found[name].chest_box
        assert box is not None
        assert abs(box[3] - people.labels()[name][3]) <= 0.04, (name, box)


def test_people_garment_masks_are_the_top(found: dict[str, Subject]) -> None:
    """The mask covers the middle of the labelled chest, not the background, nor the face."""
    for name, s in found.items():
        img = people.photo(name)
        h, w = img.shape[:2]
        mask = s.garment_mask((w, h))
        assert mask is not None and mask.shape == (h, w)
        x0, y0, x1, y1 = people.labels()[name]
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, 0.2 * (x1 - x0), 0.2 * (y1 - y0)
        centre = mask[
            round((cy - hh) * h) : round((cy + hh) * h), round((cx - hw) * w) : round((cx + hw) * w)
        ]
        assert centre.mean() >= 0.9, name
        # The label box and a margin of 0.05; down to the hips on a dress (its fabric).
        near = np.zeros((h, w), bool)
        near[
            round((y0 - 0.05) * h) : round((y1 + 0.12) * h),
            round((x0 - 0.05) * w) : round((x1 + 0.05) * w),
        ] = True
        assert (mask & ~near).sum() <= 0.03 * mask.sum(), name
        assert s.face_box is not None
        fx0, fy0, fx1, fy1 = s.face_box
        face = mask[round(fy0 * h) : round(fy1 * h), round(fx0 * w) : round(fx1 * w)]
        assert face.mean() < 0.02, name
        # garment_box is the mask's bounding box.
        ys, xs = np.nonzero(mask)
        gb = s.garment_box
        assert gb is not None
        assert abs(xs.min() / w - gb[0]) < 0.02 and abs((xs.max() + 1) / w - gb[2]) < 0.02
        assert abs(ys.min() / h - gb[1]) < 0.02 and abs((ys.max() + 1) / h - gb[3]) < 0.02


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("model_1", "headless"),
        ("model_8", "headless"),
        ("model_3", "half"),
        ("model_9", "small"),
        ("model_5", "offcentre"),
        ("model_7", "busy"),
    ],
)
def test_harder_framings(name: str, kind: str) -> None:
    img, label = people.case(name, kind)
    s = locate(img)
    assert s.found and s.method == "pose", s.reason
    assert s.chest_box is not None
    assert iou(s.chest_box, label) >= 0.6, (s.chest_box, label)


def test_pil_and_array_inputs_agree(found: dict[str, Subject]) -> None:
    s = locate(Image.fromarray(people.photo("model_2")))
    assert s.chest_box == found["model_2"].chest_box and s.method == "pose"


# --------------------------------------------------------------------------- other real photos


def test_grace_hopper() -> None:
    s = locate(load_image(SHARED_IMAGES / "grace_hopper.jpg").image)
    assert s.found and s.method == "pose"
    assert s.chest_box is not None and s.face_box is not None
    assert iou(s.chest_box, GRACE_CHEST) >= 0.6, s.chest_box
    dx, _ = centre_offset(s.chest_box, GRACE_CHEST)
    assert abs(dx) <= 0.1
    # The face box is on her face (the image's upper middle).
    fx0, fy0, fx1, fy1 = s.face_box
    assert 0.25 < (fx0 + fx1) / 2 < 0.75 and 0.15 < (fy0 + fy1) / 2 < 0.5


def test_the_same_photo_at_other_scales_gives_the_same_box() -> None:
    """grace_hopper.jpg 4x smaller or larger, a people photo 3x smaller: boxes are normalised."""
    import cv2

    for img, sizes in (
        (
            np.asarray(load_image(SHARED_IMAGES / "grace_hopper.jpg").image),
            ((128, 150), (2048, 2400)),
        ),
        (np.ascontiguousarray(people.photo("model_4")), ((256, 341),)),
    ):
        ref = locate(img).chest_box
        assert ref is not None
        for size in sizes:
            s = locate(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
            assert s.found and s.chest_box is not None
            assert max(abs(a - b) for a, b in zip(s.chest_box, ref, strict=True)) <= 0.03, size


def test_model_sample_headless_tee() -> None:
    s = locate(load_image(ROOT / "samples" / "model.jpg").image)
    assert s.found and s.face_box is None
    assert s.chest_box is not None
    assert iou(s.chest_box, MODEL_CHEST) >= 0.8, s.chest_box


def test_the_garment_path_finds_a_garment_without_a_person() -> None:
    """The classical path (a garment photographed alone) on the headless tee."""
    s = by_garment(np.asarray(load_image(ROOT / "samples" / "model.jpg").image))
    assert s.found and s.method == "garment" and s.face_box is None
    assert s.chest_box is not None
    assert iou(s.chest_box, MODEL_CHEST) >= 0.85, s.chest_box


def test_a_garment_photographed_alone() -> None:
    """model_7's navy tank cut out onto grey: no person, a neck opening, found by its shape."""
    img, label = people.garment_alone("model_7", 170)
    s = locate(img)
    assert s.found and s.method == "garment" and s.face_box is None, s.reason
    assert s.chest_box is not None and iou(s.chest_box, label) >= 0.5, (s.chest_box, label)
    assert s.confidence <= 0.7  # no neck: less sure than with a person


@pytest.mark.parametrize(
    "path",
    [
        SHARED_IMAGES / "starry_night.jpg",
        SHARED_IMAGES / "flower.jpg",
        SHARED_IMAGES / "flower2.jpg",
        ROOT / "samples" / "pattern.png",
        ROOT / "samples" / "style.jpg",
    ],
    ids=lambda p: p.name,
)
def test_no_person_is_not_found(path: Path) -> None:
    s = locate(load_image(path).image)
    assert not s.found, s.to_dict()
    assert s.method == "none" and s.chest_box is None and s.mask is None
    assert s.reason and "\n" not in s.reason


def test_plain_colour_and_noise_are_not_found() -> None:
    plain = np.full((300, 400, 3), (200, 120, 90), np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tiny = np.zeros((10, 12, 3), np.uint8)
    for img in (plain, noise, tiny):
        s = locate(img)
        assert not s.found and s.method == "none" and s.reason


def test_head_and_shoulders_close_up_has_no_chest_above_the_chin() -> None:
    """hopper.jpg: a tight head-and-shoulders crop (chin at ~0.58 of the height)."""
    s = locate(load_image(SHARED_IMAGES / "hopper.jpg").image)
    if s.found:
        assert s.chest_box is not None and s.chest_box[1] >= 0.55, s.chest_box
    else:
        assert s.reason


# --------------------------------------------------------------------------- given box


def _centre_covered(mask: np.ndarray, box: Box) -> float:
    h, w = mask.shape
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    return float(
        mask[
            round((cy - hh) * h) : round((cy + hh) * h), round((cx - hw) * w) : round((cx + hw) * w)
        ].mean()
    )


@pytest.mark.parametrize(
    ("name", "colour", "off_top"),
    [
        ("model_1", (240, 170, 180), 0.15),  # a pink tank top
        # A beige one, on pale skin: some skin above its neckline stays in the mask.
        ("model_3", (225, 195, 160), 0.3),
        ("model_4", (200, 30, 40), 0.15),  # a red crop top
        ("model_7", (205, 160, 130), 0.2),  # a tan tank, on the wearer's own skin tone
    ],
    ids=["pink", "beige", "red-crop-top", "tan"],
)
def test_skin_like_garments_are_not_eaten(
    name: str, colour: tuple[int, int, int], off_top: float
) -> None:
    """A centred print lands on the garment: skin removal does not eat a pink, beige, tan or
    red top, found by the pose or with the chest given by hand."""
    box = people.labels()[name]
    img, recoloured = people.recoloured(name, box, colour)
    h, w = img.shape[:2]
    for s in (locate(img, subject_box=box), locate(img)):
        assert s.found and s.method in ("given", "pose")
        assert s.chest_box is not None and iou(s.chest_box, box) >= 0.6
        mask = s.garment_mask((w, h))
        assert mask is not None
        assert _centre_covered(mask, box) >= 0.9, s.method
        assert (mask & recoloured).sum() >= 0.8 * recoloured.sum(), s.method
        # And the skin beside it stays off: little of the mask is off the recoloured top.
        assert (mask & ~recoloured).sum() <= off_top * mask.sum(), s.method


@pytest.mark.parametrize("name", ["model_1", "model_4"])
def test_given_box_without_a_person_mask_keeps_a_skin_like_top(name: str) -> None:
    """The GrabCut fallback (no pose in the box) on a pink and a red top."""
    box = people.labels()[name]
    img, recoloured = people.recoloured(
        name, box, (240, 170, 180) if name == "model_1" else (200, 30, 40)
    )
    s = by_given_box(img, box)
    mask = s.garment_mask((img.shape[1], img.shape[0]))
    assert mask is not None
    assert _centre_covered(mask, box) >= 0.9
    assert (mask & recoloured).sum() >= 0.8 * recoloured.sum()


def test_given_box_on_the_white_tee() -> None:
    """Inside a box on the tee's front the mask is the tee: nearly all of the box."""
    img = np.asarray(load_image(ROOT / "samples" / "model.jpg").image)
    box = (0.2, 0.3, 0.8, 0.9)
    s = locate(img, subject_box=box)
    h, w = img.shape[:2]
    mask = s.garment_mask((w, h))
    assert mask is not None
    inside = mask[round(0.3 * h) : round(0.9 * h), round(0.2 * w) : round(0.8 * w)]
    assert inside.mean() >= 0.9
    assert inside.sum() / mask.sum() >= 0.99


@pytest.mark.parametrize("name", ["model_1", "model_7"])
def test_given_box_off_the_wearer_has_no_garment_in_it(name: str) -> None:
    """A box drawn on the backdrop beside a person the model sees: the garment inside it is
    that person's garment there (none), never fabric GrabCut invents out of the backdrop,
    which would let a print on the wall pass as "on the garment"."""
    img = people.photo(name)
    h, w = img.shape[:2]
    box = (0.02, 0.02, 0.22, 0.2)  # the top-left corner: studio backdrop
    s = locate(img, subject_box=box)
    assert s.method == "given" and s.chest_box == box
    mask = s.garment_mask((w, h))
    assert mask is not None
    inside = mask[round(0.02 * h) : round(0.2 * h), round(0.02 * w) : round(0.22 * w)]
    assert inside.mean() <= 0.02
    # The fallback alone (no pose consulted) does invent fabric there: the test can fail.
    alone = by_given_box(img, box).garment_mask((w, h))
    assert alone is not None
    assert alone[round(0.02 * h) : round(0.2 * h), round(0.02 * w) : round(0.22 * w)].mean() > 0.2


def test_given_box_as_text_and_bad_box() -> None:
    img = people.photo("model_1")
    s = locate(img, subject_box="0.2,0.5,0.8,1.0")  # type: ignore[arg-type]
    assert s.method == "given" and s.chest_box == (0.2, 0.5, 0.8, 1.0)
    with pytest.raises(InputError):
        locate(img, subject_box=(0.5, 0.5, 0.4, 0.9))


# --------------------------------------------------------------------------- parsing, placement


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a,b,c,d",
        "0.1,0.2,0.3",
        "0.1,0.2,0.3,0.4,0.5",
        "0.1,0.2,1.3,0.4",
        "-0.1,0,1,1",
        "0.5,0.2,0.5,0.4",
        "0.6,0.2,0.5,0.4",
        "0.1,0.4,0.3,0.4",
        "nan,0,1,1",
        "0,0,inf,1",
    ],
)
def test_parse_box_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_box(text)


unit = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(unit, unit, unit, unit)
def test_parse_box_round_trips(a: float, b: float, c: float, d: float) -> None:
    x0, x1 = sorted((a, c))
    y0, y1 = sorted((b, d))
    if x0 == x1 or y0 == y1:
        with pytest.raises(InputError):
            parse_box(f"{x0!r},{y0!r},{x1!r},{y1!r}")
        return
    assert parse_box(f"{x0!r},{y0!r},{x1!r},{y1!r}") == (x0, y0, x1, y1)
    assert parse_box(f" {x0!r} {y0!r}  {x1!r},{y1!r} ") == (x0, y0, x1, y1)
    assert parse_box([x0, y0, x1, y1]) == (x0, y0, x1, y1)


words = st.lists(st.sampled_from(sorted(PLACEMENT_WORDS) + ["the", "of", "chestx", "diagonal"]))


@settings(max_examples=80, deadline=None)
@given(words, unit, unit, st.floats(0.01, 1.0), st.floats(0.01, 1.0))
def test_placement_point_is_in_the_box(
    ws: list[str], x0: float, y0: float, fw: float, fh: float
) -> None:
    (fx, fy), unknown = placement_point(" ".join(ws))
    assert 0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0
    assert unknown == [w for w in ws if w not in PLACEMENT_WORDS and w not in ("the", "of")]
    box = (x0 * (1 - fw), y0 * (1 - fh), x0 * (1 - fw) + fw, y0 * (1 - fh) + fh)
    px, py = point_in_box(box, fx, fy)
    assert box[0] - 1e-9 <= px <= box[2] + 1e-9 and box[1] - 1e-9 <= py <= box[3] + 1e-9


def test_placement_words() -> None:
    assert placement_point("middle")[0] == (0.5, 0.5)
    assert placement_point("upper left") == ((0.25, 0.25), [])
    assert placement_point("lower right of the chest") == ((0.75, 0.75), [])
    assert placement_point("sideways") == ((0.5, 0.5), ["sideways"])
    assert point_in_box((0.2, 0.4, 0.6, 0.8), 0.5, 0.25) == pytest.approx((0.4, 0.5))


def test_to_dict_and_mask_sizes(found: dict[str, Subject]) -> None:
    s = found["model_1"]
    d = s.to_dict()
    assert set(d) == {"found", "method", "confidence", "chest_box", "garment_box", "face_box"}
    json.dumps(d)
    assert s.garment_mask((37, 53)).shape == (53, 37)  # type: ignore[union-attr]
    assert s.mask is not None and max(s.mask.shape) <= 512  # stored at a working size


# --------------------------------------------------------------------------- the command


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


PERSON = people.PEOPLE / "model_6.png"
KEYS = {"image", "found", "method", "confidence", "chest_box", "garment_box", "face_box"}


def test_cli_json_mask_and_overlay(tmp_path: Path) -> None:
    mask_path, overlay_path = tmp_path / "m.png", tmp_path / "o.png"
    res = run(
        "locate", str(PERSON), "--json", "--mask", str(mask_path), "--overlay", str(overlay_path)
    )
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == KEYS and data["image"] == str(PERSON)
    assert data["found"] is True and data["method"] == "pose"
    assert iou(tuple(data["chest_box"]), people.labels()["model_6"]) >= 0.6
    m = Image.open(mask_path)
    assert m.mode == "L" and m.size == (768, 1024)
    arr = np.asarray(m)
    assert set(np.unique(arr)) <= {0, 255}
    truth = people.labels()["model_6"]
    near = np.zeros(arr.shape, bool)
    near[
        round((truth[1] - 0.05) * 1024) :,
        round((truth[0] - 0.05) * 768) : round((truth[2] + 0.05) * 768),
    ] = True
    assert ((arr > 0) & ~near).sum() <= 0.03 * (arr > 0).sum()
    o = Image.open(overlay_path)
    assert o.format == "PNG" and o.size == (768, 1024)
    # Something was drawn: the overlay differs from the image.
    assert np.abs(np.asarray(o.convert("RGB"), int) - people.photo("model_6")).max() > 100


def test_cli_summary() -> None:
    res = run("locate", str(PERSON))
    assert res.exit_code == 0
    assert "found" in res.stdout and "chest box" in res.stdout and "pose" in res.stdout


def test_cli_several_images_give_json_lines_and_folders(tmp_path: Path) -> None:
    images = [str(PERSON), str(SHARED_IMAGES / "broken.png"), str(SHARED_IMAGES / "flower.jpg")]
    res = run("locate", *images, "--overlay", str(tmp_path / "ov"), "--mask", str(tmp_path / "mk"))
    assert res.exit_code == 2  # the unreadable image, at the end
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [d["image"] for d in lines] == images
    assert all(set(d) >= KEYS - {"image"} for d in lines)
    assert lines[0]["found"] is True and lines[0]["method"] == "pose"
    assert lines[1]["found"] is False and "broken.png" in lines[1]["reason"]
    assert lines[2]["found"] is False and lines[2]["reason"]
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["flower.png", "model_6.png"]
    assert [p.name for p in (tmp_path / "mk").iterdir()] == ["model_6.png"]


def test_cli_not_found_is_an_answer(tmp_path: Path) -> None:
    res = run(
        "locate", str(SHARED_IMAGES / "flower.jpg"), "--json", "--mask", str(tmp_path / "m.png")
    )
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["found"] is False and data["method"] == "none" and data["reason"]
    assert "no subject found" in res.stderr
    assert not (tmp_path / "m.png").exists()


def test_cli_given_box() -> None:
    res = run("locate", str(PERSON), "--json", "--subject-box", "0.2,0.5,0.8,1")
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["method"] == "given" and data["chest_box"] == [0.2, 0.5, 0.8, 1.0]


@pytest.mark.parametrize(
    "args",
    [
        [str(SHARED_IMAGES / "broken.png")],
        [str(ROOT / "pyproject.toml")],
        ["/nonexistent/photo.jpg"],
        [str(SHARED_IMAGES / "hopper.jpg"), "--subject-box", "0,0,2,1"],
        [str(SHARED_IMAGES / "hopper.jpg"), "--subject-box", "x"],
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str]) -> None:
    res = run("locate", *args)
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fluxcompose: error: "), res.stderr
    assert "Traceback" not in res.stderr
