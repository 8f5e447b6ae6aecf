"""JPEG canvases put together from encoded strips (``canvas_jpeg``).

Two expectations hold every canvas to account, and neither comes from the module:
- the bytes equal Pillow's (libjpeg's) encoding of the whole canvas, at quality 95 and
  4:4:4, with the restart interval the canvas's own DRI marker declares;
- the pixels equal those of a plain quality-95 4:4:4 encoding, without restart markers.
A reused strip must give the bytes a fresh encoding of the new canvas gives.
"""

from __future__ import annotations

import io
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose import canvas_jpeg
from fluxcompose.canvas_jpeg import MIN_RESTART_BLOCKS, StripPlan, encode_jpeg, plan_strips
from fluxcompose.compose import compose
from fluxcompose.images import clear_cell_cache, encode_canvas, open_source
from fluxcompose.recipes import load_recipe
from fluxcompose.run import JobSpec, RequestOptions, prepare_job
from tests.jpegs import direct_jpeg, restart_interval
from tests.paths import SHARED_IMAGES

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PEOPLE = sorted((SHARED_IMAGES / "people").glob("*.png"))


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(autouse=True)
def _cold() -> None:
    clear_cell_cache()  # the strip cache too


# -- the plan -------------------------------------------------------------------------


def test_plan_for_a_pattern_beside_a_portrait() -> None:
    plan = plan_strips((1344, 768), [((0, 0, 768, 768), "p"), ((768, 0, 576, 768), "t")])
    assert plan is not None
    assert plan.restart_blocks == 24  # gcd(96, 72) blocks: every edge on an interval edge
    assert [s[:2] for s in plan.strips] == [(0, 768), (768, 1344)]
    assert plan.strips[0][2] == ("p", 0, 768, 0, 768, 768)


@pytest.mark.parametrize(
    ("size", "boxes"),
    [
        ((1376, 768), [(0, 2, 764, 764), (764, 2, 611, 764)]),  # a 4:5 photo
        ((1328, 800), [(0, 2, 796, 796), (796, 2, 531, 796)]),  # a 2:3 photo
        ((1248, 800), [(0, 1, 798, 798), (798, 1, 449, 798)]),  # a 9:16 photo
        ((1568, 672), [(0, 0, 672, 672), (672, 0, 896, 672)]),  # a 4:3 photo
    ],
)
def test_plans_cut_inside_cells_on_interval_edges(
    size: tuple[int, int], boxes: list[tuple[int, int, int, int]]
) -> None:
    plan = plan_strips(size, [(b, f"k{i}") for i, b in enumerate(boxes)])
    assert plan is not None
    r = plan.restart_blocks
    assert r >= MIN_RESTART_BLOCKS and (size[0] // 8) % r == 0
    edges = [x for x0, x1, _ in plan.strips for x in (x0, x1)]
    assert edges[0] == 0 and edges[-1] == size[0]
    assert all(a == b for a, b in zip(edges[1:-1:2], edges[2:-1:2], strict=True))  # no gaps
    assert all(x % (8 * r) == 0 for x in edges)
    keyed = [(x0, x1, key) for x0, x1, key in plan.strips if key is not None]
    assert keyed
    for x0, x1, key in keyed:  # inside its cell, which the key names with its place
        assert isinstance(key, tuple)
        i = int(str(key[0])[1:])
        x, y, w, h = boxes[i]
        assert x <= x0 < x1 <= x + w
        assert key[1:] == (x0 - x, x1 - x0, y, h, size[1])
    # The pattern (the first cell) is mostly reused: at least half of its width.
    first = [x1 - x0 for x0, x1, key in keyed if str(key[0]) == "k0"]  # type: ignore[index]
    assert first and first[0] * 2 >= boxes[0][2]


@pytest.mark.parametrize(
    ("size", "cells"),
    [
        ((1344, 768), [((0, 0, 768, 768), None), ((768, 0, 576, 768), None)]),  # no keys
        ((1340, 768), [((0, 0, 768, 768), "p"), ((768, 0, 572, 768), "t")]),  # width % 8
        ((1344, 764), [((0, 0, 764, 764), "p"), ((764, 0, 580, 764), "t")]),  # height % 8
        ((128, 64), [((0, 0, 60, 64), "p"), ((60, 0, 60, 64), "t")]),  # no 64 px strip fits
        ((512, 512), [((0, 0, 512, 256), "a"), ((0, 256, 512, 256), "b")]),  # stacked cells
    ],
)
def test_no_plan_when_nothing_can_be_reused(
    size: tuple[int, int], cells: list[tuple[tuple[int, int, int, int], Hashable | None]]
) -> None:
    assert plan_strips(size, cells) is None


# -- bytes and pixels, on drawn canvases ----------------------------------------------


def _cell_pixels(seed: int, w: int, h: int) -> np.ndarray:
    """A cell's pixels as a function of its key: noise over a gradient (hard to code)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, w, dtype=np.float64)[None, :, None]
    noise = rng.integers(0, 56, (h, w, 3))
    return (ramp + noise).astype(np.uint8)


def _canvas(
    size: tuple[int, int],
    cells: list[tuple[tuple[int, int, int, int], int]],
    bg: tuple[int, int, int],
) -> tuple[Image.Image, list[tuple[tuple[int, int, int, int], Hashable | None]]]:
    w, h = size
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = bg
    keyed: list[tuple[tuple[int, int, int, int], Hashable | None]] = []
    for (x, y, cw, ch), seed in cells:
        arr[y : y + ch, x : x + cw] = _cell_pixels(seed, cw, ch)
        keyed.append(((x, y, cw, ch), (seed, cw, ch, bg)))
    return Image.fromarray(arr), keyed


@st.composite
def _row_canvases(draw: st.DrawFn) -> tuple[tuple[int, int], list, tuple[int, int, int]]:
    """A row of 1-3 cells of any widths, each somewhere in the canvas's height, padded."""
    height = 8 * draw(st.integers(1, 5))
    widths = draw(st.lists(st.integers(1, 220), min_size=1, max_size=3))
    x = draw(st.integers(0, 12))
    cells = []
    for w in widths:
        h = draw(st.integers(1, height))
        y = draw(st.integers(0, height - h))
        cells.append(((x, y, w, h), draw(st.integers(0, 3))))
        x += w
    unit = draw(st.sampled_from([8, 64]))  # 64: a width whose blocks 8 intervals divide
    width = -(-(x + draw(st.integers(0, 12))) // unit) * unit
    bg = draw(st.sampled_from([(255, 255, 255), (0, 0, 0), (40, 90, 200)]))
    return (width, height), cells, bg


@settings(max_examples=60, deadline=None)
@given(first=_row_canvases(), data=st.data())
def test_strips_give_the_whole_canvas_bytes_and_reuse_gives_them_again(
    first: tuple[tuple[int, int], list, tuple[int, int, int]], data: st.DataObject
) -> None:
    size, cells, bg = first
    image, keyed = _canvas(size, cells, bg)
    plan = plan_strips(size, keyed)
    assume(plan is not None)
    assert plan is not None
    sent = encode_jpeg(image, plan, quality=95)
    assert sent == direct_jpeg(image, plan.restart_blocks)
    assert restart_interval(sent) == plan.restart_blocks
    assert np.array_equal(_pixels(sent), _pixels(direct_jpeg(image)))
    # A second canvas: the same geometry, other pixels in the cells that are not reused
    # (new seeds), so only the reusable strips can come from the cache.
    reseeded = [(box, seed + 10 * data.draw(st.integers(1, 5))) for box, seed in cells]
    reused = {key[0] for _, _, key in plan.strips if isinstance(key, tuple)}  # cell keys
    second_cells = [
        (box, seed if (seed, box[2], box[3], bg) in reused else new)
        for (box, seed), (_, new) in zip(cells, reseeded, strict=True)
    ]
    image2, keyed2 = _canvas(size, second_cells, bg)
    plan2 = plan_strips(size, keyed2)
    assert plan2 is not None and plan2.restart_blocks == plan.restart_blocks
    assert encode_jpeg(image2, plan2, quality=95) == direct_jpeg(image2, plan2.restart_blocks)


def test_a_reused_strip_is_not_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    size = (1344, 768)
    encoded: list[tuple[int, int]] = []
    real = canvas_jpeg._encode

    def counting(image: Image.Image, quality: int, restart_blocks: int) -> bytes:
        encoded.append(image.size)
        return real(image, quality, restart_blocks)

    monkeypatch.setattr(canvas_jpeg, "_encode", counting)
    for target_seed in (7, 8, 9):
        image, keyed = _canvas(
            size, [((0, 0, 768, 768), 1), ((768, 0, 576, 768), target_seed)], (255, 255, 255)
        )
        plan = plan_strips(size, keyed)
        assert plan is not None
        assert encode_jpeg(image, plan, quality=95) == direct_jpeg(image, plan.restart_blocks)
    assert encoded == [(768, 768), (576, 768), (576, 768), (576, 768)]  # the pattern once


def test_an_encoding_it_does_not_recognise_falls_back_to_the_whole_canvas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image, keyed = _canvas((1344, 768), [((0, 0, 768, 768), 1), ((768, 0, 576, 768), 2)], (0, 0, 0))
    plan = plan_strips(image.size, keyed)
    assert plan is not None

    def progressive(strip: Image.Image, quality: int, restart_blocks: int) -> bytes:
        buf = io.BytesIO()
        strip.save(buf, "JPEG", quality=quality, subsampling=0, progressive=True)
        return buf.getvalue()

    monkeypatch.setattr(canvas_jpeg, "_encode", progressive)
    sent = encode_jpeg(image, plan, quality=95)
    assert sent == progressive(image, 95, plan.restart_blocks)  # whole, by the same encoder
    assert len(canvas_jpeg._STRIPS) == 0  # and nothing unrecognised was kept


def test_a_marker_out_of_turn_is_refused() -> None:
    image, _ = _canvas((128, 16), [((0, 0, 128, 16), 3)], (255, 255, 255))
    data = direct_jpeg(image, 8)
    assert canvas_jpeg._split(data, (128, 16), 8) is not None
    at = data.index(b"\xff\xd1")
    bad = data[:at] + b"\xff\xd2" + data[at + 2 :]
    assert canvas_jpeg._split(bad, (128, 16), 8) is None
    assert canvas_jpeg._split(data, (128, 16), 16) is None  # another interval than asked


# -- real jobs ------------------------------------------------------------------------


def test_pattern_on_people_photos_sends_the_plain_canvas_pixels() -> None:
    if len(PEOPLE) < 3:
        pytest.skip("the people photos are not here")
    recipe = load_recipe("pattern-transfer")
    sizes = []
    for photo in PEOPLE[:3]:
        spec = JobSpec(
            recipe=recipe,
            sources=(str(SAMPLES / "pattern.png"), str(photo)),
            request=RequestOptions(seed=1),
        )
        prepared = prepare_job(spec, backend_name="local")
        composite = prepared.composite
        assert composite is not None and composite.image is not None
        sent = prepared.canvas_bytes
        assert sent is not None
        r = restart_interval(sent)
        assert r >= MIN_RESTART_BLOCKS
        assert sent == direct_jpeg(composite.image, r)
        assert np.array_equal(_pixels(sent), _pixels(direct_jpeg(composite.image)))
        assert len(sent) <= len(direct_jpeg(composite.image)) * 1.02  # the markers' cost
        sizes.append(composite.size)
    assert len(set(sizes)) == 1


def test_labels_or_a_grid_send_a_plain_canvas() -> None:
    pair = [open_source(SAMPLES / "pattern.png"), open_source(SAMPLES / "model.jpg")]
    labelled = compose(pair, labels=True)
    assert labelled.jpeg_strips() is None
    assert labelled.image is not None
    sent = encode_canvas(labelled.image, "jpeg", strips=labelled.jpeg_strips()).data
    assert sent == direct_jpeg(labelled.image) and restart_interval(sent) == 0
    three = compose([*pair, open_source(SAMPLES / "pattern.png")], layout="grid")
    assert three.rows > 1 and three.jpeg_strips() is None


def test_png_canvases_ignore_the_plan() -> None:
    plan = StripPlan(24, ((0, 768, "p"), (768, 1344, None)))
    image, _ = _canvas((1344, 768), [((0, 0, 768, 768), 1)], (255, 255, 255))
    png = encode_canvas(image, "png", strips=plan)
    assert png.data.startswith(b"\x89PNG") and png.mime == "image/png"


def test_the_same_cell_elsewhere_in_a_taller_canvas_is_not_taken_from_the_cache() -> None:
    # The cell's own key is the same (same pixels, size and background); the strip around
    # it is not (background above it, a taller canvas), so its bytes must not be reused.
    first, keyed = _canvas((1344, 768), [((0, 0, 768, 768), 1), ((768, 0, 576, 768), 2)], (9, 9, 9))
    plan = plan_strips(first.size, keyed)
    assert plan is not None
    assert encode_jpeg(first, plan, quality=95) == direct_jpeg(first, plan.restart_blocks)
    lower, keyed = _canvas((1344, 784), [((0, 8, 768, 768), 1), ((768, 0, 576, 784), 3)], (9, 9, 9))
    plan = plan_strips(lower.size, keyed)
    assert plan is not None
    assert encode_jpeg(lower, plan, quality=95) == direct_jpeg(lower, plan.restart_blocks)
