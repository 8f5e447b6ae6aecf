"""The subject locator (DESIGN.md s. 10): known answers on real photos and on renders of people
whose chest box and garment are known (tests/people.py); honest failure on images with no
person; the given box; parsing; the ``locate`` command."""

from __future__ import annotations

import json
from functools import cache
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
from tests import people
from tests.paths import ROOT, SHARED_IMAGES

# The README's chest box for grace_hopper.jpg ("roughly"), and the white tee's front on
# samples/model.jpg measured on the image: torso sides below the sleeves at x 105 and 665 of
# 768, shoulder line at y ~175 of 1024, the tee running out of the bottom edge.
GRACE_CHEST = (0.06, 0.53, 0.98, 1.0)
MODEL_CHEST = (0.137, 0.17, 0.866, 1.0)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def centre_offset(found: Box, truth: Box) -> tuple[float, float]:
    """Centre distance in units of the true box's width and height."""
    dx = ((found[0] + found[2]) - (truth[0] + truth[2])) / 2 / (truth[2] - truth[0])
    dy = ((found[1] + found[3]) - (truth[1] + truth[3])) / 2 / (truth[3] - truth[1])
    return dx, dy


@cache
def render(name: str) -> people.Render:
    return getattr(people, name)()  # type: ignore[no-any-return]


@cache
def located(name: str) -> Subject:
    return locate(render(name).image)


RENDERS = [f.__name__ for f in people.ALL]


# --------------------------------------------------------------------------- renders


@pytest.mark.parametrize("name", RENDERS)
def test_render_chest_box(name: str) -> None:
    r, s = render(name), located(name)
    assert s.found, s.reason
    assert s.method == ("face" if r.has_face else "garment")
    assert s.chest_box is not None
    assert iou(s.chest_box, r.chest_box) >= 0.6, (s.chest_box, r.chest_box)
    dx, dy = centre_offset(s.chest_box, r.chest_box)
    assert abs(dx) <= 0.1 and abs(dy) <= 0.2, (dx, dy)
    assert 0.0 < s.confidence <= 1.0


@pytest.mark.parametrize("name", RENDERS)
def test_render_garment_mask(name: str) -> None:
    r, s = render(name), located(name)
    h, w = r.image.shape[:2]
    mask = s.garment_mask((w, h))
    assert mask is not None and mask.shape == (h, w)
    precision = (mask & r.garment).sum() / mask.sum()
    recall = (mask & r.garment).sum() / r.garment.sum()
    assert precision >= 0.85, precision  # fabric, not skin, trousers or background
    assert recall >= 0.6, recall
    # garment_box is the mask's bounding box.
    assert s.garment_box is not None
    ys, xs = np.nonzero(mask)
    gb = s.garment_box
    assert abs(xs.min() / w - gb[0]) < 0.02 and abs((xs.max() + 1) / w - gb[2]) < 0.02
    assert abs(ys.min() / h - gb[1]) < 0.02 and abs((ys.max() + 1) / h - gb[3]) < 0.02


@pytest.mark.parametrize("name", [n for n in RENDERS if n != "headless"])
def test_render_face_box(name: str) -> None:
    s = located(name)
    assert s.face_box is not None and s.chest_box is not None
    fx0, fy0, fx1, fy1 = s.face_box
    cx0, cy0, cx1, cy1 = s.chest_box
    # The face sits above the chest, over its middle, and is not garment.
    assert fy1 <= cy0 + 0.02
    assert cx0 < (fx0 + fx1) / 2 < cx1
    h, w = render(name).image.shape[:2]
    mask = s.garment_mask((w, h))
    assert mask is not None
    on_face = mask[round(fy0 * h) : round(fy1 * h), round(fx0 * w) : round(fx1 * w)]
    assert on_face.mean() < 0.05


VARIANT_SEEDS = range(100, 110)


def test_random_framings_found_right_or_not_at_all() -> None:
    """Over random framings, shirt colours and backgrounds: whatever is found is right (a
    confident wrong box is worse than none), and most are found."""
    found = 0
    for seed in VARIANT_SEEDS:
        r = people.variant(seed)
        s = locate(r.image)
        if not s.found:
            assert s.reason, r.name
            continue
        found += 1
        assert s.chest_box is not None
        assert iou(s.chest_box, r.chest_box) >= 0.5, (r.name, s.chest_box, r.chest_box)
        h, w = r.image.shape[:2]
        mask = s.garment_mask((w, h))
        assert mask is not None
        assert (mask & r.garment).sum() / mask.sum() >= 0.75, r.name
    assert found >= 0.7 * len(VARIANT_SEEDS)


def test_repeatable() -> None:
    r = render("full_busy")
    a, b = locate(r.image), locate(r.image)
    assert a == b
    assert a.mask is not None and b.mask is not None and np.array_equal(a.mask, b.mask)


def test_two_panel_subject_is_in_the_person_half() -> None:
    s = located("two_panel")
    assert s.chest_box is not None and s.chest_box[0] > 0.5
    r = render("two_panel")
    mask = s.garment_mask((r.image.shape[1], r.image.shape[0]))
    assert mask is not None and not mask[:, : r.image.shape[1] // 2].any()


def test_pil_and_array_inputs_agree() -> None:
    r = render("half_length")
    a = located("half_length")
    b = locate(Image.fromarray(r.image))
    assert a.chest_box == b.chest_box and a.method == b.method


# --------------------------------------------------------------------------- real photos


def test_grace_hopper() -> None:
    s = locate(load_image(SHARED_IMAGES / "grace_hopper.jpg").image)
    assert s.found and s.method == "face"
    assert s.chest_box is not None and s.face_box is not None
    assert iou(s.chest_box, GRACE_CHEST) >= 0.65, s.chest_box
    dx, _ = centre_offset(s.chest_box, GRACE_CHEST)
    assert abs(dx) <= 0.1
    # The face box is on her face (the image's upper middle).
    fx0, fy0, fx1, fy1 = s.face_box
    assert 0.25 < (fx0 + fx1) / 2 < 0.75 and 0.15 < (fy0 + fy1) / 2 < 0.5


def test_grace_hopper_at_other_scales() -> None:
    """The same photo, 4x smaller or larger, gives the same chest box (boxes are normalised)."""
    import cv2

    g = np.asarray(load_image(SHARED_IMAGES / "grace_hopper.jpg").image)
    ref = locate(g).chest_box
    assert ref is not None
    for size in ((128, 150), (2048, 2400)):
        s = locate(cv2.resize(g, size, interpolation=cv2.INTER_AREA))
        assert s.found and s.chest_box is not None
        assert max(abs(a - b) for a, b in zip(s.chest_box, ref, strict=True)) <= 0.05, size


def test_model_sample_headless_tee() -> None:
    s = locate(load_image(ROOT / "samples" / "model.jpg").image)
    assert s.found and s.method == "garment" and s.face_box is None
    assert s.chest_box is not None
    assert iou(s.chest_box, MODEL_CHEST) >= 0.85, s.chest_box
    dx, dy = centre_offset(s.chest_box, MODEL_CHEST)
    assert abs(dx) <= 0.05 and abs(dy) <= 0.05


@pytest.mark.parametrize(
    "path",
    [
        SHARED_IMAGES / "starry_night.jpg",
        SHARED_IMAGES / "flower.jpg",
        SHARED_IMAGES / "flower2.jpg",
        SHARED_IMAGES / "hopper.jpg",  # a head-only close-up: no torso in frame
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


def test_head_only_close_up_says_why() -> None:
    s = locate(load_image(SHARED_IMAGES / "hopper.jpg").image)
    assert s.reason is not None and "torso" in s.reason


# --------------------------------------------------------------------------- given box


def test_given_box() -> None:
    r = render("full_plain")
    box = r.chest_box
    s = locate(r.image, subject_box=box)
    assert s.found and s.method == "given" and s.chest_box == box and s.face_box is None
    h, w = r.image.shape[:2]
    mask = s.garment_mask((w, h))
    assert mask is not None and mask.any()
    inside = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    inside[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = True
    assert (mask & inside).sum() / mask.sum() >= 0.9
    assert (mask & r.garment).sum() / mask.sum() >= 0.85
    assert (mask & inside).sum() / inside.sum() >= 0.7


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


def test_given_box_as_text_and_bad_box() -> None:
    r = render("half_length")
    s = locate(r.image, subject_box="0.2,0.5,0.8,1.0")  # type: ignore[arg-type]
    assert s.method == "given" and s.chest_box == (0.2, 0.5, 0.8, 1.0)
    with pytest.raises(InputError):
        locate(r.image, subject_box=(0.5, 0.5, 0.4, 0.9))


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


def test_to_dict_and_mask_sizes() -> None:
    s = located("full_plain")
    d = s.to_dict()
    assert set(d) == {"found", "method", "confidence", "chest_box", "garment_box", "face_box"}
    json.dumps(d)
    assert s.garment_mask((37, 53)).shape == (53, 37)  # type: ignore[union-attr]
    assert s.mask is not None and max(s.mask.shape) <= 480  # stored at a working size


# --------------------------------------------------------------------------- the command


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def person_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("locate") / "person.png"
    render("half_length").pil.save(path)
    return path


def test_cli_json_mask_and_overlay(person_png: Path, tmp_path: Path) -> None:
    mask_path, overlay_path = tmp_path / "m.png", tmp_path / "o.png"
    res = run(
        "locate",
        str(person_png),
        "--json",
        "--mask",
        str(mask_path),
        "--overlay",
        str(overlay_path),
    )
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"found", "method", "confidence", "chest_box", "garment_box", "face_box"}
    assert data["found"] is True and data["method"] == "face"
    x0, y0, x1, y1 = data["chest_box"]
    assert iou((x0, y0, x1, y1), render("half_length").chest_box) >= 0.6
    m = Image.open(mask_path)
    assert m.mode == "L" and m.size == (640, 640)
    arr = np.asarray(m)
    assert set(np.unique(arr)) <= {0, 255}
    truth = render("half_length").garment
    assert ((arr > 0) & truth).sum() / (arr > 0).sum() >= 0.85
    o = Image.open(overlay_path)
    assert o.format == "PNG" and o.size == (640, 640)
    # Something was drawn: the overlay differs from the image.
    assert np.abs(np.asarray(o.convert("RGB"), int) - render("half_length").image).max() > 100


def test_cli_summary(person_png: Path) -> None:
    res = run("locate", str(person_png))
    assert res.exit_code == 0
    assert "found" in res.stdout and "chest box" in res.stdout


def test_cli_not_found_is_an_answer(tmp_path: Path) -> None:
    res = run(
        "locate", str(SHARED_IMAGES / "flower.jpg"), "--json", "--mask", str(tmp_path / "m.png")
    )
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["found"] is False and data["method"] == "none" and data["reason"]
    assert "no subject found" in res.stderr
    assert not (tmp_path / "m.png").exists()


def test_cli_given_box(person_png: Path) -> None:
    res = run("locate", str(person_png), "--json", "--subject-box", "0.2,0.5,0.8,1")
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


def test_threads_locate_at_once_and_agree() -> None:
    """batch runs the local preview on several threads: each must get the same answer
    (OpenCV's cascade keeps per-call state, so a shared classifier used to fail)."""
    from concurrent.futures import ThreadPoolExecutor

    photos = [
        np.asarray(load_image(SHARED_IMAGES / "grace_hopper.jpg").image),
        np.asarray(load_image(ROOT / "samples" / "model.jpg").image),
    ]
    alone = [locate(p).to_dict() for p in photos]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda i: locate(photos[i % 2]).to_dict(), range(12)))
    assert together == [alone[i % 2] for i in range(12)]
