"""The composition engine, checked pixel by pixel against independently resized sources."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.compose import Cell, Composite, compose, crop_cell
from fluxcompose.errors import ImageError, InputError
from tests import synth
from tests.paths import SHARED_IMAGES

IMAGES = SHARED_IMAGES
WHITE = (255, 255, 255)


def psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two 8-bit images of one size."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    assert x.shape == y.shape, (x.shape, y.shape)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def photo_like(w: int, h: int, seed: int) -> Image.Image:
    """A textured synthetic photo, distinct per seed (see tests.synth)."""
    return synth.photo_like(w, h, seed, tint=True)


def write(img: Image.Image, path: Path, **kw: object) -> Path:
    img.save(path, **kw)
    return path


def reference(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The source resized independently of fluxcompose: a plain Lanczos resample."""
    return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def cell_pixels(canvas: Image.Image, cell: Cell) -> Image.Image:
    return canvas.crop((cell.x, cell.y, cell.x + cell.w, cell.y + cell.h))


def cell_mask(comp: Composite) -> np.ndarray:
    mask = np.zeros((comp.height, comp.width), dtype=bool)
    for c in comp.cells:
        mask[c.y : c.y + c.h, c.x : c.x + c.w] = True
    return mask


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Image.Image]]:
    """Distinct textured sources of different shapes, as lossless PNG and as JPEG."""
    folder = tmp_path_factory.mktemp("src")
    out: dict[str, tuple[Path, Image.Image]] = {}
    for name, (w, h), seed in [
        ("wide", (400, 300), 1),
        ("tall", (240, 360), 2),
        ("square", (300, 300), 3),
        ("pano", (600, 200), 4),
    ]:
        img = photo_like(w, h, seed)
        out[name] = (write(img, folder / f"{name}.png"), img)
        out[name + "_jpg"] = (write(img, folder / f"{name}.jpg", quality=95), img)
    return out


def check_cells(comp: Composite, originals: list[Image.Image], min_db: float = 30) -> None:
    """Each cell holds its own source, uniformly scaled (aspect kept), and nobody else's."""
    assert comp.image is not None
    for cell, img in zip(comp.cells, originals, strict=True):
        sw, sh = img.size
        assert abs(cell.w - cell.h * sw / sh) <= 1 or abs(cell.h - cell.w * sh / sw) <= 1
        got = cell_pixels(comp.image, cell)
        assert psnr(got, reference(img, (cell.w, cell.h))) >= min_db, cell
        for other in originals:
            if other is not img and other.size == img.size:
                assert psnr(got, reference(other, (cell.w, cell.h))) < 25


# --------------------------------------------------------------------------- content


@pytest.mark.parametrize("layout", ["auto", "horizontal", "vertical", "grid"])
@pytest.mark.parametrize("names", [["wide", "tall"], ["tall", "square_jpg", "pano"]])
def test_cells_hold_their_sources(
    sources: dict[str, tuple[Path, Image.Image]], layout: str, names: list[str]
) -> None:
    comp = compose([sources[n][0] for n in names], layout=layout, megapixels=0.5)
    assert comp.image is not None and comp.image.size == (comp.width, comp.height)
    assert comp.width % 16 == 0 and comp.height % 16 == 0
    assert 3 / 7 <= comp.width / comp.height <= 7 / 3
    assert abs(comp.width * comp.height - 0.5 * 1024 * 1024) <= 0.05 * 0.5 * 1024 * 1024
    assert [c.index for c in comp.cells] == list(range(len(names)))
    assert [c.source for c in comp.cells] == [str(sources[n][0]) for n in names]
    check_cells(comp, [sources[n][1] for n in names])


def test_swapped_order_is_caught(sources: dict[str, tuple[Path, Image.Image]]) -> None:
    # The same shapes in both cells: only the pixels say which source went where.
    a = photo_like(300, 200, 11)
    b = photo_like(300, 200, 12)
    folder = sources["wide"][0].parent
    pa, pb = write(a, folder / "a.png"), write(b, folder / "b.png")
    comp = compose([pa, pb], layout="horizontal", megapixels=0.25)
    check_cells(comp, [a, b])


def test_real_photos(tmp_path: Path) -> None:
    names = ["flower.jpg", "flower2.jpg", "hopper.jpg"]
    comp = compose([IMAGES / n for n in names], megapixels=0.5)
    originals = [Image.open(IMAGES / n).convert("RGB") for n in names]
    check_cells(comp, originals)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_rotated_inputs_land_upright(orientation: int) -> None:
    comp = compose(
        [IMAGES / f"hopper_orientation_{orientation}.jpg", IMAGES / "flower.jpg"],
        layout="horizontal",
        megapixels=0.25,
    )
    assert comp.cells[0].orientation_applied == orientation
    assert comp.image is not None
    got = cell_pixels(comp.image, comp.cells[0])
    upright = Image.open(IMAGES / "hopper.jpg").convert("RGB")
    assert psnr(got, reference(upright, got.size)) >= 28
    for t in Image.Transpose:  # and not any other way round
        assert psnr(got, reference(upright.transpose(t), got.size)) < 20


@pytest.mark.parametrize("orientation", [6, 8, 5])
def test_exif_rotation_swaps_the_cell_shape(tmp_path: Path, orientation: int) -> None:
    upright = photo_like(120, 240, 7)  # tall when upright
    inverse = {
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = write(
        upright.transpose(inverse[orientation]), tmp_path / "r.jpg", quality=95, exif=exif
    )
    square = write(photo_like(200, 200, 8), tmp_path / "s.png")
    comp = compose([stored, square], layout="horizontal", megapixels=0.25)
    cell = comp.cells[0]
    assert cell.source_size == (120, 240)
    assert abs(cell.w * 2 - cell.h) <= 2  # tall, not the stored wide shape
    assert comp.image is not None
    assert psnr(cell_pixels(comp.image, cell), reference(upright, (cell.w, cell.h))) >= 30


# --------------------------------------------------------------------------- padding, gutters


@pytest.mark.parametrize("bg", [(255, 255, 255), (255, 0, 255), (3, 4, 5)])
def test_padding_is_background_and_never_covers_content(
    sources: dict[str, tuple[Path, Image.Image]], bg: tuple[int, int, int]
) -> None:
    # Two panoramas side by side (6:1) need lots of padding to reach 7:3.
    names = ["pano", "pano_jpg"]
    comp = compose(
        [sources[n][0] for n in names],
        layout="horizontal",
        background="#{:02x}{:02x}{:02x}".format(*bg),
        megapixels=0.25,
    )
    assert comp.background == "#{:02x}{:02x}{:02x}".format(*bg)
    assert comp.image is not None
    arr = np.asarray(comp.image)
    mask = cell_mask(comp)
    assert (~mask).sum() > 0.3 * mask.size  # there is padding to look at
    assert (arr[~mask] == bg).all()
    check_cells(comp, [sources[n][1] for n in names])
    # Content is centred, not pushed to one edge.
    ys = [c.y for c in comp.cells]
    assert abs(ys[0] - (comp.height - (comp.cells[0].y + comp.cells[0].h))) <= 1


def test_transparent_source_takes_the_background(tmp_path: Path) -> None:
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:50, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    path = write(Image.fromarray(rgba, "RGBA"), tmp_path / "t.png")
    comp = compose([path], background="#00ff00", megapixels=0.25)
    assert comp.image is not None
    cell = comp.cells[0]
    got = np.asarray(cell_pixels(comp.image, cell))
    half = cell.h // 2
    margin = 4 * cell.h // 100 + 2  # an enlarging Lanczos rings for 3 source pixels
    assert (got[: half - margin] == (200, 0, 0)).all()
    assert (got[half + margin :] == (0, 255, 0)).all()


@pytest.mark.parametrize("layout", ["horizontal", "vertical", "grid"])
def test_gutters_have_the_gutter_colour(
    sources: dict[str, tuple[Path, Image.Image]], layout: str
) -> None:
    names = ["wide", "wide_jpg", "square", "tall"] if layout == "grid" else ["wide", "square"]
    gutter = 24
    comp = compose(
        [sources[n][0] for n in names],
        layout=layout,
        gutter=gutter,
        gutter_color="#00ff00",
        background="white",
        megapixels=0.5,
    )
    assert comp.gutter == gutter and comp.image is not None
    arr = np.asarray(comp.image)
    cells = comp.cells
    if layout == "horizontal":
        for a, b in zip(cells, cells[1:], strict=False):
            assert b.x - (a.x + a.w) >= gutter
            band = arr[a.y : a.y + a.h, a.x + a.w : b.x]
            assert band.size and (band == (0, 255, 0)).all()
    elif layout == "vertical":
        for a, b in zip(cells, cells[1:], strict=False):
            assert b.y - (a.y + a.h) >= gutter
            band = arr[a.y + a.h : b.y, a.x : a.x + a.w]
            assert band.size and (band == (0, 255, 0)).all()
    else:
        assert (comp.rows, comp.cols) == (2, 2)
        # The square and the tall picture fill their slots' height, so the band of
        # gutter between the rows ends where they start; it runs across the grid.
        bottom = min(c.y for c in cells[2:])
        assert bottom - max(c.y + c.h for c in cells[:2]) >= gutter
        x0, x1 = min(c.x for c in cells), max(c.x + c.w for c in cells)
        assert (arr[bottom - gutter : bottom, x0:x1] == (0, 255, 0)).all()
        # The two wide pictures fill their slots' width: the gutter between them.
        a, b = cells[0], cells[1]
        assert b.x - (a.x + a.w) == gutter
        assert (arr[a.y : a.y + a.h, a.x + a.w : b.x] == (0, 255, 0)).all()
    # The gutters never paint over a picture.
    check_cells(comp, [sources[n][1] for n in names])
    # Padding outside the cells' span stays the background.
    mask = cell_mask(comp)
    green = (arr == (0, 255, 0)).all(axis=-1)
    assert not (green & mask).any()
    edge_cols = np.r_[0 : min(c.x for c in cells)]
    if edge_cols.size:
        assert (arr[:, edge_cols] == WHITE).all()


def test_gutter_defaults_to_background(sources: dict[str, tuple[Path, Image.Image]]) -> None:
    comp = compose(
        [sources["wide"][0], sources["square"][0]],
        layout="horizontal",
        gutter=20,
        background="#102030",
        megapixels=0.25,
    )
    assert comp.image is not None
    a, b = comp.cells
    band = np.asarray(comp.image)[a.y : a.y + a.h, a.x + a.w : b.x]
    assert band.shape[1] >= 20 and (band == (0x10, 0x20, 0x30)).all()


# --------------------------------------------------------------------------- labels, outlines


@pytest.mark.parametrize(
    ("names", "layout", "labels"),
    [
        (["wide", "tall"], "horizontal", True),
        (["wide", "tall", "square"], "grid", True),
        (["pano", "square"], "vertical", ["pattern", "target garment"]),
        (["wide", "tall"], "horizontal", ["1", "2"]),
    ],
)
def test_labels_stay_small_and_in_the_corner(
    sources: dict[str, tuple[Path, Image.Image]],
    names: list[str],
    layout: str,
    labels: bool | list[str],
) -> None:
    paths = [sources[n][0] for n in names]
    plain = compose(paths, layout=layout, megapixels=0.5)
    tagged = compose(paths, layout=layout, megapixels=0.5, labels=labels)
    assert plain.cells == tagged.cells
    assert plain.image is not None and tagged.image is not None
    diff = (np.asarray(plain.image) != np.asarray(tagged.image)).any(axis=-1)
    assert not (diff & ~cell_mask(tagged)).any()  # nothing drawn on padding or gutters
    for cell in tagged.cells:
        region = diff[cell.y : cell.y + cell.h, cell.x : cell.x + cell.w]
        assert region.any(), f"no label in cell {cell.index}"
        check_label(region, cell, digit=labels is True)


def check_label(region: np.ndarray, cell: Cell, *, digit: bool) -> None:
    """The changed pixels of one cell: a box in its top-left corner, <= 10 % of the shorter side tall."""
    ys, xs = np.nonzero(region)
    limit = 0.10 * min(cell.w, cell.h)
    assert ys.max() - ys.min() + 1 <= limit, (cell, ys.min(), ys.max(), limit)
    assert ys.min() <= limit / 2 and xs.min() <= limit / 2  # in the corner
    assert ys.max() < cell.h / 2  # and nowhere else in the cell
    if digit:  # a digit: small both ways
        assert xs.max() - xs.min() + 1 <= limit


@settings(max_examples=15, deadline=None)
@given(
    texts=st.lists(
        st.text(
            alphabet=st.characters(codec="latin-1", categories=["L", "N", "P", "S", "Zs"]),
            max_size=40,
        ),
        min_size=2,
        max_size=2,
    ),
    mp=st.sampled_from([0.05, 0.25, 1.0]),
)
def test_any_label_text_stays_in_its_corner(
    sources: dict[str, tuple[Path, Image.Image]], texts: list[str], mp: float
) -> None:
    paths = [sources["wide"][0], sources["tall"][0]]
    plain = compose(paths, megapixels=mp)
    tagged = compose(paths, megapixels=mp, labels=texts)
    assert plain.image is not None and tagged.image is not None
    diff = (np.asarray(plain.image) != np.asarray(tagged.image)).any(axis=-1)
    assert not (diff & ~cell_mask(tagged)).any()  # never spills out of its cell
    for cell, text in zip(tagged.cells, texts, strict=True):
        region = diff[cell.y : cell.y + cell.h, cell.x : cell.x + cell.w]
        if text.strip() and min(cell.w, cell.h) >= 60:
            assert region.any()
        if region.any():
            check_label(region, cell, digit=False)


def test_outline_on_cell_borders(sources: dict[str, tuple[Path, Image.Image]]) -> None:
    paths = [sources["wide"][0], sources["tall"][0]]
    plain = compose(paths, layout="horizontal", megapixels=0.5)
    lined = compose(paths, layout="horizontal", megapixels=0.5, outline=True)
    assert plain.image is not None and lined.image is not None
    a, b = np.asarray(plain.image), np.asarray(lined.image)
    for c in lined.cells:
        border = np.concatenate(
            [
                b[c.y, c.x : c.x + c.w],
                b[c.y + c.h - 1, c.x : c.x + c.w],
                b[c.y : c.y + c.h, c.x],
                b[c.y : c.y + c.h, c.x + c.w - 1],
            ]
        )
        assert (border == (0, 0, 0)).all()  # the contrast colour of a white background
        inner = slice(c.y + 8, c.y + c.h - 8), slice(c.x + 8, c.x + c.w - 8)
        assert np.array_equal(a[inner], b[inner])  # thin: the picture is untouched inside
    assert np.array_equal(a[~cell_mask(lined)], b[~cell_mask(lined)])


# --------------------------------------------------------------------------- budget, counts


def test_no_upscale_keeps_native_scale(tmp_path: Path) -> None:
    imgs = [photo_like(128, 128, 20), photo_like(128, 128, 21)]
    paths = [write(im, tmp_path / f"{i}.png") for i, im in enumerate(imgs)]
    comp = compose(paths, upscale=False)
    assert (comp.width, comp.height) == (256, 128)
    assert comp.image is not None
    for cell, im in zip(comp.cells, imgs, strict=True):
        assert (cell.w, cell.h) == (128, 128) and cell.scale == 1.0
        assert np.array_equal(np.asarray(cell_pixels(comp.image, cell)), np.asarray(im))
    big = compose(paths)
    assert big.cells[0].w > 128 and abs(big.width * big.height - 1024 * 1024) <= 0.05 * 1024 * 1024


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(1, 9), layout=st.sampled_from(["auto", "horizontal", "vertical", "grid"]))
def test_one_to_nine_sources(
    sources: dict[str, tuple[Path, Image.Image]], n: int, layout: str
) -> None:
    names = [
        "wide",
        "tall",
        "square",
        "pano",
        "wide_jpg",
        "tall_jpg",
        "square_jpg",
        "pano_jpg",
        "wide",
    ]
    comp = compose([sources[k][0] for k in names[:n]], layout=layout, megapixels=0.25)
    assert len(comp.cells) == n
    check_cells(comp, [sources[k][1] for k in names[:n]], min_db=28)


def test_zero_and_ten_sources_refused(sources: dict[str, tuple[Path, Image.Image]]) -> None:
    with pytest.raises(InputError):
        compose([])
    with pytest.raises(InputError, match="9"):
        compose([sources["wide"][0]] * 10)


def test_bad_arguments(sources: dict[str, tuple[Path, Image.Image]], tmp_path: Path) -> None:
    p = sources["wide"][0]
    for kwargs in (
        {"layout": "diagonal"},
        {"gutter": -1},
        {"megapixels": 0.0},
        {"megapixels": float("nan")},
        {"background": "not-a-colour"},
        {"gutter_color": "#12"},
    ):
        with pytest.raises(InputError):
            compose([p, p], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ImageError):
        compose([p, tmp_path / "missing.png"])


# --------------------------------------------------------------------------- shrink on load


def test_large_jpegs_shrink_on_load_within_35db(tmp_path: Path) -> None:
    big = [photo_like(1600, 1200, 30), photo_like(1200, 1600, 31)]
    paths = [write(im, tmp_path / f"big{i}.jpg", quality=92) for i, im in enumerate(big)]
    comp = compose(paths, layout="horizontal")
    assert comp.image is not None
    # The reference canvas: full decode + Lanczos into the same boxes, compared losslessly.
    ref = Image.new("RGB", comp.size, WHITE)
    for cell, path in zip(comp.cells, paths, strict=True):
        with Image.open(path) as im:
            ref.paste(reference(im, (cell.w, cell.h)), (cell.x, cell.y))
    assert psnr(comp.image, ref) >= 35


# --------------------------------------------------------------------------- layout JSON


def test_layout_json_round_trip(
    sources: dict[str, tuple[Path, Image.Image]], tmp_path: Path
) -> None:
    comp = compose(
        [sources["wide"][0], sources["tall"][0], sources["square"][0]],
        layout="grid",
        gutter=8,
        names=["pattern", "target", "extra"],
    )
    d = comp.to_dict()
    assert json.loads(json.dumps(d)) == d
    for key in ("width", "height", "aspect_ratio", "layout", "gutter", "background", "cells"):
        assert key in d
    w, h = (int(x) for x in d["aspect_ratio"].split(":"))
    assert w * comp.height == h * comp.width
    for c in d["cells"]:
        for key in ("index", "source", "x", "y", "w", "h", "scale", "orientation_applied"):
            assert key in c
    again = Composite.from_dict(d)
    assert again == comp
    assert again.to_dict() == d

    out = tmp_path / "canvas.png"
    image_path, layout_path = comp.save(out)
    assert image_path == out and layout_path == tmp_path / "canvas.png.layout.json"
    assert sorted(os.listdir(tmp_path)) == ["canvas.png", "canvas.png.layout.json"]
    assert Composite.from_json_file(layout_path) == comp
    saved = Image.open(out).convert("RGB")
    assert comp.image is not None
    assert np.array_equal(np.asarray(saved), np.asarray(comp.image))
    for cell in comp.cells:
        assert np.array_equal(
            np.asarray(crop_cell(saved, cell, comp.size)),
            np.asarray(cell_pixels(comp.image, cell)),
        )
    assert comp.cell("target").index == 1
    assert np.array_equal(
        np.asarray(comp.crop_cell(saved, "target")), np.asarray(cell_pixels(saved, comp.cells[1]))
    )


def test_layout_json_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "partial.json").write_text('{"width": 10}')
    for name in ("bad.json", "list.json", "partial.json", "missing.json"):
        with pytest.raises(InputError):
            Composite.from_json_file(tmp_path / name)


def test_jpeg_canvas_is_faithful(
    sources: dict[str, tuple[Path, Image.Image]], tmp_path: Path
) -> None:
    comp = compose([sources["wide"][0], sources["tall"][0]], megapixels=0.25)
    comp.save(tmp_path / "c.jpg")
    assert (tmp_path / "c.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert comp.image is not None
    assert psnr(Image.open(tmp_path / "c.jpg").convert("RGB"), comp.image) >= 38
    assert sorted(os.listdir(tmp_path)) == ["c.jpg", "c.jpg.layout.json"]


# --------------------------------------------------------------------------- the fast JPEG path


@pytest.mark.parametrize("target", [(400, 300), (250, 190), (130, 97), (60, 45), (640, 480)])
def test_jpeg_fast_path_gives_pillows_pixels(tmp_path: Path, target: tuple[int, int]) -> None:
    from fluxcompose.images import dct_scale, open_source

    path = write(photo_like(640, 480, 40), tmp_path / "p.jpg", quality=90)
    src = open_source(path)
    assert src._plain_jpeg()
    fast = np.zeros((target[1], target[0], 3), np.uint8)
    src.decode_into(fast)
    assert np.array_equal(fast, np.asarray(src.decode(target)))  # the Pillow path
    # dct_scale is Pillow's own draft rule.
    with Image.open(path) as im:
        im.draft("RGB", target)
        scale = dct_scale((640, 480), target)
        assert im.size == (-(-640 // scale), -(-480 // scale))


def test_truncated_jpeg_is_refused_not_filled(tmp_path: Path) -> None:
    whole = write(photo_like(640, 480, 41), tmp_path / "whole.jpg", quality=90).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(ImageError):
        compose([cut, tmp_path / "whole.jpg"], megapixels=0.1)


def test_no_thread_pool_on_one_core(
    sources: dict[str, tuple[Path, Image.Image]], monkeypatch: pytest.MonkeyPatch
) -> None:
    compose_mod = importlib.import_module("fluxcompose.compose")  # the package exports compose()
    paths = [p for p, _ in list(sources.values())[:2]]
    want = compose(paths, workers=1).image
    monkeypatch.setattr(compose_mod, "available_cores", lambda: 1)

    class NoPool:
        def __init__(self, *a: object, **k: object) -> None:
            raise AssertionError("a thread pool on one core")

    monkeypatch.setattr(compose_mod, "ThreadPoolExecutor", NoPool)
    got = compose(paths, workers=4).image
    assert got is not None and want is not None
    assert np.array_equal(np.asarray(got), np.asarray(want))
    monkeypatch.setattr(compose_mod, "available_cores", lambda: 4)
    with pytest.raises(AssertionError, match="thread pool"):
        compose(paths, workers=4)


@pytest.mark.parametrize("colour", ["#0c80ff", "black", "#ff00ff"])
def test_background_fill_any_colour(tmp_path: Path, colour: str) -> None:
    a = write(photo_like(300, 100, 42), tmp_path / "a.png")
    comp = compose([a], megapixels=0.25, background=colour)  # 3:1 is padded to 7:3
    assert comp.image is not None
    arr = np.asarray(comp.image)
    rgb = Image.new("RGB", (1, 1), colour).getpixel((0, 0))
    outside = ~cell_mask(comp)
    assert outside.any() and (arr[outside] == np.array(rgb, np.uint8)).all()
