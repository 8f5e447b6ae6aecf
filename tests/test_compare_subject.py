"""compare against the subject (DESIGN.md sections 8 and 10): known answers, both directions.

A textured print is pasted at a known box on a real half-length portrait
(grace_hopper.jpg; the chest is x 0.06..0.98, y 0.53..1.0 per the images' README). Most
tests hand compare a Subject with a known chest box and garment mask, so they do not
depend on the detector; a few run the detector and skip until it finds the subject.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose import compare as C
from fluxcompose.errors import ChecksFailed, InputError
from fluxcompose.locate import Subject, locate
from fluxcompose.recipes import load_recipe
from fluxcompose.sheet import draw_sheet
from tests.test_compare import IMAGES, iou, jpeg, paste_warped, textured

REPO = Path(__file__).resolve().parent.parent
CHEST = (0.06, 0.53, 0.98, 1.0)
CHEST_W = CHEST[2] - CHEST[0]
CHEST_MID = ((CHEST[0] + CHEST[2]) / 2, (CHEST[1] + CHEST[3]) / 2)
PRINT = textured(300, 150, 7)  # a landscape print: 2/3 of the chest's width fits its height
NO_SUBJECT = Subject(False, "none", 0.0, None, None, None, None, reason="test: nobody here")
SUBJECT_CHECKS = (
    "pattern_width_fraction",
    "pattern_placement",
    "pattern_on_garment",
    "target_ssim_outside_garment",
)


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    path = IMAGES / "grace_hopper.jpg"
    if not path.exists():
        pytest.skip("shared test images missing")
    return Image.open(path).convert("RGB")


@pytest.fixture(scope="module")
def flower() -> Image.Image:
    path = IMAGES / "flower.jpg"
    if not path.exists():
        pytest.skip("shared test images missing")
    return Image.open(path).convert("RGB")


@pytest.fixture(scope="module")
def recipe_checks() -> dict[str, Any]:
    checks = dict(load_recipe("pattern-transfer").checks)
    # The recipe carries exactly DESIGN.md section 4's checks.
    assert checks == {
        "pattern_found": True,
        "pattern_width_fraction": [0.45, 0.8],
        "pattern_placement": 0.25,
        "pattern_on_garment": 0.85,
        "target_ssim_outside_edit": 0.6,
        "target_ssim_outside_garment": 0.8,
    }
    return checks


def known_subject(image: Image.Image, chest: tuple[float, float, float, float] = CHEST) -> Subject:
    """A given subject whose garment mask is exactly the chest box."""
    w, h = image.size
    mask = np.zeros((h, w), dtype=bool)
    mask[round(chest[1] * h) : round(chest[3] * h), round(chest[0] * w) : round(chest[2] * w)] = (
        True
    )
    return Subject(True, "given", 1.0, chest, chest, None, mask)


def paste(target: Image.Image, center: tuple[float, float], width_of_image: float) -> Image.Image:
    out, _ = paste_warped(
        target, PRINT, center=center, width_fraction=width_of_image, rotation_deg=3
    )
    return jpeg(out, 90)


@pytest.fixture(scope="module")
def cases(hopper: Image.Image, recipe_checks: dict[str, Any]) -> dict[str, Any]:
    subject = known_subject(hopper)
    placements = {
        # 2/3 of the chest's width, at the chest's middle: what the recipe asks for.
        "good": (CHEST_MID, 2 / 3 * CHEST_W),
        # Over the whole person: face, collar and background.
        "whole": ((0.5, 0.5), 0.95),
        "face": ((0.52, 0.35), 0.4),
        "background": ((0.85, 0.18), 0.25),
    }
    out: dict[str, Any] = {}
    for name, (center, wf) in placements.items():
        output = paste(hopper, center, wf)
        out[name] = C.compare(
            output, hopper, pattern=PRINT, checks=recipe_checks, subject=subject
        ).to_dict()
        out[name + "_output"] = output
    return out


def test_print_of_the_asked_size_at_the_placement_passes(cases: dict[str, Any]) -> None:
    d = cases["good"]
    assert d["passed"] is True, d["checks"]
    assert all(c["pass"] is True for c in d["checks"].values())
    p = d["pattern"]
    assert p["relative_to"] == "chest"
    assert p["width_fraction"] == pytest.approx(2 / 3, abs=0.04)
    assert max(abs(v) for v in p["center_offset"]) < 0.03
    assert p["placement_distance"] < 0.03
    assert p["placement_point"] == pytest.approx(list(CHEST_MID), abs=1e-4)
    assert p["on_garment"] > 0.98
    assert d["ssim_outside_garment"] > 0.95
    assert d["subject"]["method"] == "given" and d["subject"]["found"] is True


def test_print_over_the_whole_person_fails(cases: dict[str, Any]) -> None:
    d = cases["whole"]
    assert d["passed"] is False
    c = d["checks"]
    assert c["pattern_found"]["pass"] is True
    assert c["pattern_width_fraction"]["pass"] is False  # wider than the chest
    assert c["pattern_on_garment"]["pass"] is False
    assert c["target_ssim_outside_garment"]["pass"] is False  # face and background covered
    # The print's box over the chest's width: 0.95 of the image over 0.92 (clipped to the
    # image, so at most 1 / 0.92).
    assert d["pattern"]["width_fraction"] == pytest.approx(min(0.95 * 1.0, 1.0) / CHEST_W, abs=0.03)


@pytest.mark.parametrize("where", ["face", "background"])
def test_print_on_the_face_or_background_fails(cases: dict[str, Any], where: str) -> None:
    d = cases[where]
    assert d["passed"] is False
    c = d["checks"]
    assert c["pattern_found"]["pass"] is True
    assert c["pattern_on_garment"]["pass"] is False
    assert c["pattern_on_garment"]["value"] < 0.05
    assert c["pattern_placement"]["pass"] is False
    # Known answer: the distance from the chest's middle to where the print was put,
    # in chest widths (pixels on both axes over the chest's width in pixels).
    center = {"face": (0.52, 0.35), "background": (0.85, 0.18)}[where]
    w, h = 512, 600
    expected = math.hypot((center[0] - CHEST_MID[0]) * w, (center[1] - CHEST_MID[1]) * h) / (
        CHEST_W * w
    )
    assert c["pattern_placement"]["value"] == pytest.approx(expected, abs=0.02)
    # The target is no longer preserved off the garment, though less than by "whole".
    assert d["ssim_outside_garment"] < cases["good"]["ssim_outside_garment"] - 0.03


def test_width_is_relative_to_the_chest_or_the_image(
    cases: dict[str, Any], hopper: Image.Image
) -> None:
    output = cases["good_output"]
    with_subject = cases["good"]["pattern"]
    without = C.compare(output, hopper, pattern=PRINT, subject=NO_SUBJECT).to_dict()["pattern"]
    assert without["relative_to"] == "image"
    assert with_subject["relative_to"] == "chest"
    box = with_subject["box"]
    assert box == without["box"]  # the same pattern, located the same way
    assert without["width_fraction"] == pytest.approx(box[2] - box[0], abs=1e-4)
    assert with_subject["width_fraction"] == pytest.approx((box[2] - box[0]) / CHEST_W, abs=1e-3)
    # Offsets: from the image centre over the image, vs from the chest's middle over the chest.
    bx, by = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert without["center_offset"] == pytest.approx([bx - 0.5, by - 0.5], abs=1e-3)
    assert with_subject["center_offset"] == pytest.approx(
        [(bx - CHEST_MID[0]) / CHEST_W, (by - CHEST_MID[1]) / (CHEST[3] - CHEST[1])], abs=1e-3
    )
    assert without["on_garment"] is None and without["placement_distance"] is None


def test_no_subject_means_not_measured_never_a_pass(
    flower: Image.Image, recipe_checks: dict[str, Any]
) -> None:
    output = paste(flower, (0.5, 0.5), 0.55)
    report = C.compare(output, flower, pattern=PRINT, checks=recipe_checks, subject=NO_SUBJECT)
    d = report.to_dict()
    assert d["subject"]["found"] is False
    assert d["ssim_outside_garment"] is None
    assert d["pattern"]["on_garment"] is None
    assert d["passed"] is False
    for name in SUBJECT_CHECKS:
        c = d["checks"][name]
        assert c["pass"] is None, name
        assert c["value"] is None, name  # never the whole image's figure
        assert "--subject-box" in c["reason"]
    assert d["checks"]["pattern_found"]["pass"] is True
    assert d["checks"]["target_ssim_outside_edit"]["pass"] is True
    message = report.verdict()
    assert message is not None and "--subject-box" in message
    with pytest.raises(ChecksFailed, match="subject-box"):
        C.raise_for_checks(report)


def test_pattern_not_found_fails_even_without_a_subject(
    flower: Image.Image, recipe_checks: dict[str, Any]
) -> None:
    d = C.compare(
        jpeg(flower, 90), flower, pattern=PRINT, checks=recipe_checks, subject=NO_SUBJECT
    ).to_dict()
    c = d["checks"]
    for name in ("pattern_found", "pattern_width_fraction", "pattern_placement"):
        assert c[name]["pass"] is False, name
    assert c["pattern_on_garment"]["pass"] is False
    assert c["target_ssim_outside_garment"]["pass"] is None  # needs the subject, not the pattern
    assert d["passed"] is False


def test_placement_words_move_the_point(hopper: Image.Image) -> None:
    subject = known_subject(hopper)
    ch = CHEST[3] - CHEST[1]
    upper_left = (CHEST[0] + 0.25 * CHEST_W, CHEST[1] + 0.25 * ch)
    output = paste(hopper, upper_left, 0.3)
    checks = {"pattern_placement": 0.1}
    there = C.compare(
        output, hopper, pattern=PRINT, checks=checks, subject=subject, placement="upper left"
    )
    assert there.passed is True
    assert there.metrics["pattern"]["placement_point"] == pytest.approx(list(upper_left), abs=1e-4)
    middle = C.compare(output, hopper, pattern=PRINT, checks=checks, subject=subject)
    assert middle.passed is False
    # Unknown words mean the middle, with a warning.
    odd = C.compare(
        output, hopper, pattern=PRINT, checks=checks, subject=subject, placement="zigzag"
    )
    assert odd.metrics["pattern"]["placement_point"] == pytest.approx(list(CHEST_MID), abs=1e-4)
    assert len(odd.warnings) == 1 and "zigzag" in odd.warnings[0]
    assert odd.to_dict()["warnings"] == odd.warnings


def test_subject_box_goes_through_locate(hopper: Image.Image) -> None:
    output = paste(hopper, CHEST_MID, 2 / 3 * CHEST_W)
    d = C.compare(output, hopper, pattern=PRINT, subject_box="0.06,0.53,0.98,1.0").to_dict()
    assert d["subject"]["method"] == "given"
    assert d["subject"]["chest_box"] == pytest.approx(list(CHEST), abs=1e-4)
    assert d["pattern"]["relative_to"] == "chest"
    assert d["pattern"]["width_fraction"] == pytest.approx(2 / 3, abs=0.04)
    with pytest.raises(InputError):
        C.compare(output, hopper, subject_box="0.5,0.5,0.4,0.9")


def test_print_on_mask_known_answers() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[:, :100] = True  # left half
    # A square straddling the mask's edge: half on it.
    sq = [[0.25, 0.2], [0.75, 0.2], [0.75, 0.8], [0.25, 0.8]]
    assert C.print_on_mask(sq, mask) == pytest.approx(0.5, abs=0.02)
    # Fully on, fully off.
    assert C.print_on_mask([[0.1, 0.1], [0.4, 0.1], [0.4, 0.9], [0.1, 0.9]], mask) == (
        pytest.approx(1.0, abs=0.01)
    )
    assert C.print_on_mask([[0.6, 0.1], [0.9, 0.1], [0.9, 0.9], [0.6, 0.9]], mask) == 0.0
    # The part of the print outside the frame is not seen, so it is not counted.
    full = np.ones((100, 200), dtype=bool)
    half_out = [[-0.2, 0.2], [0.2, 0.2], [0.2, 0.8], [-0.2, 0.8]]
    assert C.print_on_mask(half_out, full) == pytest.approx(1.0, abs=0.01)
    assert C.print_on_mask([[1.1, 0.2], [1.3, 0.2], [1.3, 0.8], [1.1, 0.8]], full) is None
    # Only the design counts: a design filling the left half of its square lies on the mask.
    design = np.zeros((40, 40), dtype=np.float32)
    design[:, :20] = 1.0
    assert C.print_on_mask(sq, mask, design=design) == pytest.approx(1.0, abs=0.03)
    # What was painted decides when enough of it changed: a print clipped at the mask's
    # edge (changed on the left only) is on the garment; one painted on the right is not.
    left_changed = np.zeros((100, 200), dtype=bool)
    left_changed[:, 50:100] = True
    right_changed = np.zeros((100, 200), dtype=bool)
    right_changed[:, 100:150] = True
    assert C.print_on_mask(sq, mask, changed=left_changed) == pytest.approx(1.0, abs=0.02)
    assert C.print_on_mask(sq, mask, changed=right_changed) == pytest.approx(0.0, abs=0.02)
    # Too little changed to say what was painted: the whole print is judged.
    speck = np.zeros((100, 200), dtype=bool)
    speck[50, 60] = True
    assert C.print_on_mask(sq, mask, changed=speck) == pytest.approx(0.5, abs=0.02)


def test_ssim_outside_mask_known_answers() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (120, 160, 3)).astype(np.uint8)
    b = a.copy()
    b[40:80, 60:100] = 255 - b[40:80, 60:100]  # changed only inside the mask
    mask = np.zeros((120, 160), dtype=bool)
    mask[40:80, 60:100] = True
    smap = C.ssim_map(b, a)
    assert C.ssim_outside_mask(smap, mask) == pytest.approx(1.0, abs=1e-6)
    # Without the dilation the windows straddling the edge would pull it down.
    assert float(smap[~mask].mean()) < 0.99
    assert C.ssim_outside_mask(smap, None) is None
    assert C.ssim_outside_mask(smap, np.ones_like(mask)) is None  # nothing off the garment


# ---------------------------------------------------------------------------- sheet


def test_sheet_draws_chest_and_garment_and_na_checks(
    tmp_path: Path, hopper: Image.Image, flower: Image.Image, recipe_checks: dict[str, Any]
) -> None:
    output = paste(hopper, CHEST_MID, 2 / 3 * CHEST_W)
    report = C.compare(
        output, hopper, pattern=PRINT, checks=recipe_checks, subject=known_subject(hopper)
    )
    path = draw_sheet(
        report, sources=[("pattern", PRINT)], canvas=None, output=output, path=tmp_path / "a.png"
    )
    px = np.asarray(Image.open(path).convert("RGB")).astype(int)
    orange = (px[:, :, 0] > 235) & (abs(px[:, :, 1] - 140) < 20) & (px[:, :, 2] < 30)
    magenta = (px[:, :, 0] > 200) & (px[:, :, 1] < 30) & (px[:, :, 2] > 200)
    assert orange.sum() > 200 and magenta.sum() > 200

    # No subject: the subject checks show as amber "n/a", and nothing is green but the
    # checks that passed (pattern_found, target_ssim_outside_edit) and the pattern's box.
    none = C.compare(
        paste(flower, (0.5, 0.5), 0.55),
        flower,
        pattern=PRINT,
        checks={"pattern_width_fraction": [0.45, 0.8]},
        subject=NO_SUBJECT,
    )
    path = draw_sheet(none, sources=[], canvas=None, output=None, path=tmp_path / "b.png")
    px = np.asarray(Image.open(path).convert("RGB")).astype(int)
    amber = (abs(px[:, :, 0] - 176) < 12) & (abs(px[:, :, 1] - 106) < 12) & (px[:, :, 2] < 20)
    assert amber.sum() > 100
    # The badge is not the PASS green.
    badge = px[7:45, -150:-30]
    pass_green = (abs(badge[:, :, 0] - 25) < 10) & (abs(badge[:, :, 1] - 135) < 10)
    assert pass_green.sum() == 0


# ---------------------------------------------------------------------------- files and CLI


def test_compare_files_draws_the_sheet_and_finds_a_jpeg_canvas(
    tmp_path: Path, hopper: Image.Image
) -> None:
    output = paste(hopper, CHEST_MID, 2 / 3 * CHEST_W)
    output.save(tmp_path / "job.png")
    hopper.save(tmp_path / "t.jpg", quality=95)
    PRINT.save(tmp_path / "p.png")
    (tmp_path / "job.json").write_text(
        json.dumps(
            {
                "canvas": {
                    "width": 512,
                    "height": 600,
                    "cells": [{"x": 0, "y": 0, "w": 512, "h": 600}],
                }
            }
        )
    )
    hopper.save(tmp_path / "job.canvas.jpg", quality=95)
    assert C.find_canvas(tmp_path / "job.json") == tmp_path / "job.canvas.jpg"
    assert C.find_canvas(tmp_path / "other.json") is None
    report = C.compare_files(
        tmp_path / "job.png",
        tmp_path / "t.jpg",
        pattern=tmp_path / "p.png",
        checks={"pattern_found": True, "pattern_width_fraction": [0.45, 0.8]},
        subject_box=CHEST,
        sheet=tmp_path / "s.png",
    )
    assert report.passed is True, report.checks
    assert report.sheet_path == tmp_path / "s.png" and report.sheet_path.stat().st_size > 10_000


def _cli(args: list[str]) -> Any:
    from fluxcompose.cli import cli

    return CliRunner().invoke(cli, ["compare", *args])


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory, hopper: Image.Image) -> dict[str, str]:
    d = tmp_path_factory.mktemp("subj")
    paste(hopper, CHEST_MID, 2 / 3 * CHEST_W).save(d / "out.png")
    hopper.save(d / "t.png")
    PRINT.save(d / "p.png")
    return {"out": str(d / "out.png"), "target": str(d / "t.png"), "pattern": str(d / "p.png")}


@pytest.mark.parametrize(
    "box", ["0.1,0.2,1.3,0.9", "0.5,0.2,0.4,0.9", "0.1,0.2,0.3", "a,b,c,d", "-0.1,0,1,1"]
)
def test_cli_bad_subject_box_is_exit_2_one_line(cli_files: dict[str, str], box: str) -> None:
    r = _cli([cli_files["out"], "--target", cli_files["target"], "--subject-box", box])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "subject" in lines[0].lower(), r.stderr
    assert "Traceback" not in r.output


def test_cli_subject_box_recipe_placement_and_json(cli_files: dict[str, str]) -> None:
    base = [cli_files["out"], "--target", cli_files["target"], "--pattern", cli_files["pattern"]]
    box = ["--subject-box", "0.06,0.53,0.98,1.0"]
    r = _cli([*base, *box, "--recipe", "pattern-transfer", "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["subject"]["method"] == "given"
    assert d["pattern"]["relative_to"] == "chest"
    assert {"on_garment", "placement_distance", "placement_point"} <= set(d["pattern"])
    assert "ssim_outside_garment" in d and d["passed"] is True
    # An unknown placement word: one warning line, the middle is used, checks still pass.
    r = _cli([*base, *box, "--recipe", "pattern-transfer", "--placement", "squiggly"])
    assert r.exit_code == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "squiggly" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning:")
    assert "chest" in r.stdout and "on the garment" in r.stdout
    # "upper left" moves the point away from where the print is: placement fails, exit 1.
    r = _cli([*base, *box, "--recipe", "pattern-transfer", "--placement", "upper left"])
    assert r.exit_code == 1
    assert "pattern_placement" in r.stderr


def test_cli_without_a_subject_says_give_subject_box(tmp_path: Path, flower: Image.Image) -> None:
    paste(flower, (0.5, 0.5), 0.55).save(tmp_path / "o.png")
    flower.save(tmp_path / "t.png")
    PRINT.save(tmp_path / "p.png")
    if locate(np.asarray(flower)).found:
        pytest.skip("the detector finds a subject on flower.jpg")
    r = _cli(
        [
            str(tmp_path / "o.png"),
            "--target",
            str(tmp_path / "t.png"),
            "--pattern",
            str(tmp_path / "p.png"),
            "--recipe",
            "pattern-transfer",
        ]
    )
    assert r.exit_code == 1
    assert "--subject-box" in r.stderr
    assert "N/A" in r.stdout and "PASS pattern_width_fraction" not in r.stdout


# ---------------------------------------------------------------------------- the detector


def _detected(image: Image.Image) -> Subject:
    subject = locate(np.asarray(image))
    if not subject.found:
        pytest.skip(f"the detector finds no subject yet ({subject.reason})")
    return subject


def test_detector_grace_hopper_good_print_passes(
    hopper: Image.Image, recipe_checks: dict[str, Any]
) -> None:
    subject = _detected(hopper)
    assert subject.chest_box is not None
    x0, y0, x1, y1 = subject.chest_box
    # The detected chest agrees with the README's.
    assert iou(list(subject.chest_box), list(CHEST)) > 0.6
    mid = ((x0 + x1) / 2, (y0 + y1) / 2)
    output = paste(hopper, mid, 2 / 3 * (x1 - x0))
    d = C.compare(output, hopper, pattern=PRINT, checks=recipe_checks).to_dict()
    assert d["subject"]["method"] == "pose"
    assert d["passed"] is True, d["checks"]
    face = C.compare(paste(hopper, (0.52, 0.35), 0.4), hopper, pattern=PRINT, checks=recipe_checks)
    assert face.passed is False
    assert face.checks["pattern_on_garment"]["pass"] is False


def test_detector_model_tshirt_print_passes(recipe_checks: dict[str, Any]) -> None:
    from fluxcompose.images import load_image

    model = load_image(str(REPO / "samples" / "model.jpg")).image
    subject = _detected(model)
    assert subject.chest_box is not None
    x0, y0, x1, y1 = subject.chest_box
    mid = ((x0 + x1) / 2, (y0 + y1) / 2)
    w, _ = model.size
    output = paste(model, mid, 2 / 3 * (x1 - x0))
    d = C.compare(output, model, pattern=PRINT, checks=recipe_checks).to_dict()
    assert d["passed"] is True, d["checks"]
    off = C.compare(paste(model, (0.08, 0.08), 0.15), model, pattern=PRINT, checks=recipe_checks)
    assert off.passed is False


# ---------------------------------------------------------------------------- properties

_unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def _boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x0, x1 = sorted((draw(_unit), draw(_unit)))
    y0, y1 = sorted((draw(_unit), draw(_unit)))
    assume(x1 - x0 > 0.05 and y1 - y0 > 0.05)
    return (x0, y0, x1, y1)


@settings(max_examples=60, deadline=None)
@given(chest=_boxes(), box=_boxes(), size=st.sampled_from([(512, 600), (1392, 752)]))
def test_chest_relative_numbers_convert_back_to_the_image(
    chest: tuple[float, float, float, float],
    box: tuple[float, float, float, float],
    size: tuple[int, int],
) -> None:
    found = {"found": True, "inliers": 50, "box": list(box), "corners": None}
    subject = Subject(True, "given", 1.0, chest, chest, None, None)
    rel = C.relate_pattern(found, subject, placement="middle", size=size)
    img = C.relate_pattern(found, None, size=size)
    cw, ch = chest[2] - chest[0], chest[3] - chest[1]
    assert rel["relative_to"] == "chest" and img["relative_to"] == "image"
    assert rel["width_fraction"] * cw == pytest.approx(img["width_fraction"], abs=1e-9)
    # Offsets: back in image units, the chest's offset plus the chest's middle is the
    # image's offset plus the image's centre (both are the box centre).
    dx, dy = rel["center_offset"]
    ix, iy = img["center_offset"]
    assert dx * cw + (chest[0] + chest[2]) / 2 == pytest.approx(ix + 0.5, abs=1e-9)
    assert dy * ch + (chest[1] + chest[3]) / 2 == pytest.approx(iy + 0.5, abs=1e-9)
    w, h = size
    assert rel["placement_distance"] == pytest.approx(
        math.hypot(dx * cw * w, dy * ch * h) / (cw * w), rel=1e-9
    )
    assert img["placement_distance"] is None and img["on_garment"] is None
    assert rel["on_garment"] is None  # no mask given
