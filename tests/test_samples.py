"""The sample inputs in samples/: present, small, correct, and what the script makes."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from PIL import Image

from fluxcompose.images import load_image
from fluxcompose.pairs import read_pairs

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FILES = ("pattern.png", "model.jpg", "style.jpg", "pairs.csv", "pairs.txt")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_samples_exist_and_total_under_1_mb() -> None:
    sizes = {name: (SAMPLES / name).stat().st_size for name in FILES}
    assert all(size > 0 for size in sizes.values())
    assert sum(sizes.values()) < 1_000_000


def test_pattern_is_rgba_on_transparency_and_not_clipped() -> None:
    with Image.open(SAMPLES / "pattern.png") as im:
        assert im.mode == "RGBA"
        assert im.size == (512, 512)
        alpha = np.asarray(im)[..., 3]
    assert alpha[256, 256] == 255  # the emblem's centre is opaque
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0
    border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    assert border.max() == 0  # nothing touches the edge
    transparent = float(np.mean(alpha == 0))
    assert 0.2 < transparent < 0.7


def test_model_is_stored_rotated_with_exif_6_and_loads_upright() -> None:
    with Image.open(SAMPLES / "model.jpg") as im:
        assert im.size == (1024, 768)  # stored landscape
        assert im.getexif().get(0x0112) == 6
        im.load()
        # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise.
        expected = np.asarray(im.transpose(Image.Transpose.ROTATE_270).convert("RGB"))
    loaded = load_image(SAMPLES / "model.jpg")
    assert loaded.size == (768, 1024)
    assert loaded.orientation == 6
    got = np.asarray(loaded.image)
    assert np.array_equal(got, expected)
    # Upright content: skin-toned face high in the middle, white shirt below, blue backdrop.
    r, g, b = (int(v) for v in got[262, 384])
    assert r > g > b and r > 120
    assert got[700, 384].min() > 190
    corner = got[40, 40].astype(int)
    assert corner[2] > corner[0]  # bluish


def test_style_is_a_colourful_square() -> None:
    with Image.open(SAMPLES / "style.jpg") as im:
        assert im.size == (768, 768)
        arr = np.asarray(im.convert("RGB"))
    hsv = cv2.cvtColor(arr, cv2.COLOR_RGB2HSV)
    hues = np.histogram(hsv[..., 0][hsv[..., 1] > 80], bins=12, range=(0, 180))[0]
    assert (hues > 0.03 * hues.sum()).sum() >= 3  # several distinct hues, not one tint
    assert arr.std() > 40


def test_pairs_files_parse_into_jobs_that_use_the_samples() -> None:
    csv_pairs = read_pairs(SAMPLES / "pairs.csv")
    assert csv_pairs.errors == []
    assert [r.id for r in csv_pairs.rows] == ["tee-middle", "tee-left-chest", "tee-defaults"]
    for row in csv_pairs.rows:
        assert [Path(s).name for s in row.sources] == ["pattern.png", "model.jpg"]
        assert all(Path(s).is_file() for s in row.sources)
    assert csv_pairs.rows[0].seed == 42 and dict(csv_pairs.rows[0].variables) == {
        "placement": "middle"
    }
    assert csv_pairs.rows[2].seed is None and dict(csv_pairs.rows[2].variables) == {}
    txt_pairs = read_pairs(SAMPLES / "pairs.txt")
    assert txt_pairs.errors == []
    assert [[Path(s).name for s in r.sources] for r in txt_pairs.rows] == [
        ["pattern.png", "model.jpg"],
        ["style.jpg", "model.jpg"],
    ]


def test_pattern_is_found_by_sift_on_the_shirt() -> None:
    """Paste the pattern, shrunk and turned, on the model; SIFT must recover the transform."""
    with Image.open(SAMPLES / "pattern.png") as im:
        pattern = im.convert("RGBA")
    flat = Image.new("RGB", pattern.size, (255, 255, 255))
    flat.paste(pattern, mask=pattern.getchannel("A"))
    model = load_image(SAMPLES / "model.jpg").image.copy()
    side, turn = 220, 12.0
    small = pattern.resize((side, side), Image.Resampling.LANCZOS)
    small = small.rotate(turn, expand=True, resample=Image.Resampling.BICUBIC)
    model.paste(small, (270, 520), small)
    sift = cv2.SIFT_create()
    k1, d1 = sift.detectAndCompute(np.asarray(flat.convert("L")), None)
    k2, d2 = sift.detectAndCompute(np.asarray(model.convert("L")), None)
    matches = cv2.BFMatcher().knnMatch(d1, d2, k=2)
    good = [m for m, n in matches if m.distance < 0.75 * n.distance]
    assert len(good) >= 40
    src = np.float32([k1[m.queryIdx].pt for m in good])
    dst = np.float32([k2[m.trainIdx].pt for m in good])
    transform, inliers = cv2.estimateAffinePartial2D(src, dst)
    assert transform is not None and int(inliers.sum()) >= 30
    scale = math.hypot(transform[0, 0], transform[1, 0])
    angle = math.degrees(math.atan2(-transform[1, 0], transform[0, 0]))  # PIL turns anticlockwise
    assert scale == pytest.approx(side / 512, rel=0.05)
    assert angle == pytest.approx(turn, abs=2.0)


def test_script_reproduces_the_committed_samples(tmp_path: Path) -> None:
    sizes = _script().write_samples(tmp_path)
    assert set(sizes) == set(FILES)
    for name in ("pairs.csv", "pairs.txt"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes()
    for name in ("pattern.png", "model.jpg", "style.jpg"):
        with Image.open(tmp_path / name) as new, Image.open(SAMPLES / name) as old:
            assert new.mode == old.mode and new.size == old.size
            assert new.getexif().get(0x0112) == old.getexif().get(0x0112)
            diff = np.abs(np.asarray(new, dtype=np.int16) - np.asarray(old, dtype=np.int16))
        # Byte-identical with the same libraries; allow for small drift across versions.
        assert diff.mean() < 1.0, name
