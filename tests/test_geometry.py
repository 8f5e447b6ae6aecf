"""Geometry: ratios, ~1 MP sizes, Kontext buckets and layout boxes, checked against brute force."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.compose import Cell, crop_cell
from fluxcompose.errors import InputError, RatioError
from fluxcompose.geometry import (
    BUCKETS,
    Ratio,
    bucket_for,
    clamp_aspect,
    parse_ratio,
    plan_layout,
    ratio_string,
    simple_ratio_string,
    size_for,
)

MP = 1024 * 1024
LO, HI = 3 / 7, 7 / 3
RANGE_TEXT = "3:7 to 7:3"
# Written out again from DESIGN.md section 2, not imported: the test must not trust the code's list.
KONTEXT = [
    (672, 1568),
    (688, 1504),
    (720, 1456),
    (752, 1392),
    (800, 1328),
    (832, 1248),
    (880, 1184),
    (944, 1104),
    (1024, 1024),
]
KONTEXT_ALL = sorted({*KONTEXT, *((h, w) for w, h in KONTEXT)})

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# In-range aspects, drawn on a log scale so both ends are exercised equally.
aspects = st.one_of(
    st.sampled_from([LO, HI, 1.0, 16 / 9, 9 / 16, 1.91, 4 / 3, 3 / 4]),
    st.floats(math.log(LO), math.log(HI)).map(math.exp).filter(lambda a: LO <= a <= HI),
)
megapixels = st.floats(0.25, 4.0)
multiples = st.sampled_from([8, 16, 32, 64])


# --------------------------------------------------------------------------- parse_ratio


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16:9", 16 / 9),
        ("1.91:1", 1.91),
        ("16x9", 16 / 9),
        ("16X9", 16 / 9),
        (" 3 : 7 ", 3 / 7),
        ("7:3", 7 / 3),
        ("1:1", 1.0),
        ("1.5", 1.5),
        (1.777, 1.777),
        (1, 1.0),
        ((16, 9), 16 / 9),
        ((4.5, 3.0), 1.5),
    ],
)
def test_parse_ratio_valid_forms(text: Any, expected: float) -> None:
    r = parse_ratio(text)
    assert isinstance(r, Ratio)
    assert r.value == pytest.approx(expected, rel=1e-12)
    assert parse_ratio(r) == r


@pytest.mark.parametrize(
    "bad",
    ["abc", "", "0:1", "1:0", "-1:2", "1:-2", "1:9", "9:1", "7.1:3", "3:7.1", "16:9:1", "nan:1",
     "inf:1", "1e3:1", "16;9", float("nan"), float("inf"), 0.0, -1.5, (0, 1), (1, 2, 3), (1, 9),
     None, [16, 9]],
)  # fmt: skip
def test_parse_ratio_invalid_names_the_range(bad: Any) -> None:
    with pytest.raises(RatioError) as info:
        parse_ratio(bad)
    msg = str(info.value)
    assert RANGE_TEXT in msg, msg
    assert "\n" not in msg
    assert isinstance(info.value, InputError)  # exit code 2 on the command line


@FAST
@given(w=st.integers(1, 500), h=st.integers(1, 500), sep=st.sampled_from([":", "x", "X"]))
def test_parse_ratio_integers(w: int, h: int, sep: str) -> None:
    text = f"{w}{sep}{h}"
    if LO <= w / h <= HI:
        assert parse_ratio(text).value == pytest.approx(w / h, rel=1e-12)
        assert parse_ratio((w, h)).value == pytest.approx(w / h, rel=1e-12)
        assert parse_ratio(w / h).value == pytest.approx(w / h, rel=1e-12)
    else:
        for form in (text, (w, h), w / h):
            with pytest.raises(RatioError, match=RANGE_TEXT):
                parse_ratio(form)


@FAST
@given(st.text(max_size=12))
def test_parse_ratio_never_crashes(text: str) -> None:
    try:
        r = parse_ratio(text)
    except RatioError as exc:
        assert RANGE_TEXT in str(exc)
    else:
        assert LO - 1e-9 <= r.value <= HI + 1e-9


def test_ratio_strings() -> None:
    assert ratio_string(1392, 752) == "87:47"
    assert ratio_string(1024, 1024) == "1:1"
    assert simple_ratio_string(16 / 9) == "16:9"
    assert simple_ratio_string(100.0) == "7:3"
    assert simple_ratio_string(0.01) == "3:7"
    assert clamp_aspect(10) == HI and clamp_aspect(0.1) == LO and clamp_aspect(1.2) == 1.2


# --------------------------------------------------------------------------- size_for


def _brute_force_sizes(
    aspect: float, mp: float, multiple: int
) -> list[tuple[float, float, int, int]]:
    """Every (err, |area - budget|, w, h) with sides multiples of ``multiple`` meeting both bounds."""
    budget = mp * MP
    lo, hi = 0.95 * budget, 1.05 * budget
    out = []
    # w^2 = area * (w/h) bounds w completely; search a little beyond it.
    w_hi = math.sqrt(hi * aspect * math.exp(0.02)) + 2 * multiple
    for w in range(multiple, int(w_hi) + 1, multiple):
        for h in range(max(1, math.ceil(lo / w / multiple)) * multiple, int(hi // w) + 1, multiple):
            if not lo <= w * h <= hi:
                continue
            err = abs(math.log(w / h) - math.log(aspect))
            if err <= 0.02:
                out.append((err, abs(w * h - budget), w, h))
    return out


@settings(max_examples=80, deadline=None)
@given(aspect=aspects, mp=megapixels, multiple=multiples)
@example(aspect=1.0, mp=1.0, multiple=16)
@example(aspect=16 / 9, mp=1.0, multiple=16)
@example(aspect=HI, mp=0.25, multiple=64)
@example(aspect=LO, mp=4.0, multiple=8)
def test_size_for_is_valid_and_optimal(aspect: float, mp: float, multiple: int) -> None:
    candidates = _brute_force_sizes(aspect, mp, multiple)
    if not candidates:
        with pytest.raises(RatioError):
            size_for(Ratio(aspect, 1.0), mp, multiple)
        return
    w, h = size_for(Ratio(aspect, 1.0), mp, multiple)
    assert w % multiple == 0 and h % multiple == 0
    assert abs(w * h - mp * MP) <= 0.05 * mp * MP
    err = abs(math.log(w / h) - math.log(aspect))
    assert err <= 0.02
    best_err = min(c[0] for c in candidates)
    # No pair inside the area bound has a strictly smaller aspect error ...
    assert err <= best_err + 1e-9, (w, h, min(candidates))
    # ... and among the equally good ones, the area is the closest to the budget.
    ties = [c for c in candidates if c[0] <= best_err + 1e-9]
    assert abs(w * h - mp * MP) <= min(c[1] for c in ties) + 1e-6


def test_size_for_known_values() -> None:
    assert size_for("1:1") == (1024, 1024)
    assert size_for((1, 1), 1.0, 64) == (1024, 1024)
    assert size_for("16:9") == (1392, 784)
    w, h = size_for("3:7", 0.5, 16)
    assert w % 16 == 0 and h % 16 == 0 and w < h


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_size_for_bad_megapixels(bad: float) -> None:
    with pytest.raises(RatioError):
        size_for("1:1", bad)


# --------------------------------------------------------------------------- bucket_for


def test_buckets_are_kontexts() -> None:
    assert len(BUCKETS) == 17
    assert sorted(BUCKETS) == KONTEXT_ALL


@settings(max_examples=100, deadline=None)
@given(aspect=aspects)
def test_bucket_for_is_nearest(aspect: float) -> None:
    got = bucket_for(Ratio(aspect, 1.0))
    assert got in KONTEXT_ALL
    dist = [abs(math.log(w / h) - math.log(aspect)) for w, h in KONTEXT_ALL]
    assert abs(math.log(got[0] / got[1]) - math.log(aspect)) <= min(dist) + 1e-12


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [("16:9", (1392, 752)), ("9:16", (752, 1392)), ("1:1", (1024, 1024)), ("3:7", (672, 1568)),
     ("7:3", (1568, 672)), ("4:3", (1184, 880)), ("3:4", (880, 1184))],
)  # fmt: skip
def test_bucket_for_known(ratio: str, expected: tuple[int, int]) -> None:
    assert bucket_for(ratio) == expected


def test_bucket_for_rejects_out_of_range() -> None:
    with pytest.raises(RatioError, match=RANGE_TEXT):
        bucket_for("1:9")


# --------------------------------------------------------------------------- plan_layout

side = st.one_of(st.integers(1, 4000), st.sampled_from([1, 2, 3, 10000]))
source_sizes = st.one_of(
    st.lists(st.tuples(side, side), min_size=1, max_size=9),
    st.lists(
        st.sampled_from([(1, 10000), (10000, 1), (1, 1), (4000, 3000)]), min_size=1, max_size=9
    ),
)
layouts = st.sampled_from(["auto", "horizontal", "vertical", "grid"])


def _aspect_ok(w: int, h: int, sw: int, sh: int) -> bool:
    """The box keeps the source's aspect up to rounding one side to whole pixels (or a 1-px clamp)."""
    a = sw / sh
    return abs(w - h * a) <= 1 or abs(h - w / a) <= 1 or w == 1 or h == 1


def _separated(a: Any, b: Any, gap: int) -> bool:
    return a.x1 + gap <= b.x or b.x1 + gap <= a.x or a.y1 + gap <= b.y or b.y1 + gap <= a.y


def _check_plan(
    plan: Any, sizes: list[tuple[int, int]], layout: str, gutter: int, mp: float, upscale: bool
) -> None:
    W, H = plan.width, plan.height
    assert W % 16 == 0 and H % 16 == 0
    assert LO - 1e-12 <= W / H <= HI + 1e-12, (W, H)
    budget = mp * MP
    if upscale:
        assert abs(W * H - budget) <= 0.05 * budget, (W, H, budget)
    else:
        assert 1.05 * budget >= W * H
    assert len(plan.cells) == len(sizes)
    if layout != "auto":
        assert plan.layout == layout
    assert plan.layout in ("horizontal", "vertical", "grid")
    for box, (sw, sh) in zip(plan.cells, sizes, strict=True):
        assert box.w >= 1 and box.h >= 1
        assert min(box.x, box.y) >= 0 and box.x1 <= W and box.y1 <= H, (box, W, H)
        assert _aspect_ok(box.w, box.h, sw, sh), (box, sw, sh)
        if not upscale:  # never enlarged, up to rounding
            assert box.w <= sw + 1 and box.h <= sh + 1, (box, sw, sh)
    cells = plan.cells
    for i in range(len(cells)):
        for j in range(i + 1, len(cells)):
            assert _separated(cells[i], cells[j], gutter), (cells[i], cells[j], gutter)
    if plan.layout == "horizontal":
        assert len({c.h for c in cells}) == 1
        for a, b in zip(cells, cells[1:], strict=False):
            assert b.x >= a.x1 + gutter
    elif plan.layout == "vertical":
        assert len({c.w for c in cells}) == 1
        for a, b in zip(cells, cells[1:], strict=False):
            assert b.y >= a.y1 + gutter
    else:
        assert len({(s.w, s.h) for s in plan.slots}) == 1  # grid cells matched
        for box, slot in zip(cells, plan.slots, strict=True):
            assert slot.x <= box.x and slot.y <= box.y and box.x1 <= slot.x1 and box.y1 <= slot.y1
            assert min(slot.x, slot.y) >= 0 and slot.x1 <= W and slot.y1 <= H
        for i in range(len(plan.slots)):
            for j in range(i + 1, len(plan.slots)):
                assert _separated(plan.slots[i], plan.slots[j], gutter)


@settings(max_examples=200, deadline=None)
@given(
    sizes=source_sizes,
    layout=layouts,
    gutter=st.integers(0, 64),
    mp=megapixels,
    upscale=st.booleans(),
)
@example(sizes=[(10000, 1)] * 9, layout="horizontal", gutter=0, mp=0.25, upscale=True)
@example(sizes=[(1, 10000)] * 9, layout="vertical", gutter=0, mp=0.25, upscale=True)
@example(sizes=[(1, 10000)] * 9, layout="grid", gutter=64, mp=0.25, upscale=True)
@example(sizes=[(10000, 1), (1, 10000)], layout="horizontal", gutter=64, mp=4.0, upscale=True)
@example(sizes=[(1, 1)] * 9, layout="auto", gutter=64, mp=0.25, upscale=False)
@example(sizes=[(1, 1)], layout="auto", gutter=0, mp=1.0, upscale=True)
def test_plan_layout_properties(
    sizes: list[tuple[int, int]], layout: str, gutter: int, mp: float, upscale: bool
) -> None:
    plan = plan_layout(sizes, layout, gutter=gutter, megapixels=mp, upscale=upscale)
    _check_plan(plan, sizes, layout, gutter, mp, upscale)


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.tuples(side, side), min_size=1, max_size=9),
    layout=st.sampled_from(["horizontal", "vertical"]),
    mp=megapixels,
)
def test_canvas_is_padded_to_the_nearest_allowed_ratio(
    sizes: list[tuple[int, int]], layout: str, mp: float
) -> None:
    plan = plan_layout(sizes, layout, megapixels=mp)
    natural = (
        sum(w / h for w, h in sizes) if layout == "horizontal" else 1 / sum(h / w for w, h in sizes)
    )
    # The canvas aspect is size_for's answer for the clamped natural aspect ...
    assert abs(math.log(plan.width / plan.height) - math.log(clamp_aspect(natural))) <= 0.02 + 1e-9
    # ... and the pictures span it in one direction (padding only where the ratio needs it),
    # up to what one more pixel of the shared side would add (it would not fit), twice.
    span_w = max(c.x1 for c in plan.cells) - min(c.x for c in plan.cells)
    span_h = max(c.y1 for c in plan.cells) - min(c.y for c in plan.cells)
    n = len(sizes)
    if layout == "horizontal":
        step = sum(w / h for w, h in sizes) + n
        assert span_w >= plan.width - 2 * step or span_h >= plan.height - 2, (plan, natural)
    else:
        step = sum(h / w for w, h in sizes) + n
        assert span_h >= plan.height - 2 * step or span_w >= plan.width - 2, (plan, natural)


def _padding(plan: Any) -> float:
    """The share of the canvas not covered by pictures (gutter 0): what auto minimises."""
    return 1 - sum(c.w * c.h for c in plan.cells) / (plan.width * plan.height)


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(16, 4000), st.integers(16, 4000)), min_size=1, max_size=9)
)
def test_auto_picks_least_padding(sizes: list[tuple[int, int]]) -> None:
    auto = plan_layout(sizes, "auto")
    names = ["horizontal", "vertical"] + (["grid"] if len(sizes) > 2 else [])
    pads = {n: _padding(plan_layout(sizes, n)) for n in names}
    # Rounding cells to whole pixels moves the measured padding by a fraction of a percent.
    assert pads[auto.layout] <= min(pads.values()) + 0.01, (auto.layout, pads)
    # With no padding needed either way, ties go to horizontal.
    natural_h = sum(w / h for w, h in sizes)
    natural_v = 1 / sum(h / w for w, h in sizes)
    if len(sizes) <= 2 and LO <= natural_h <= HI and LO <= natural_v <= HI:
        assert auto.layout == "horizontal"


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([(512, 512), (512, 512)], "horizontal"),
        ([(1600, 900), (1600, 900)], "vertical"),
        ([(900, 1600), (900, 1600)], "horizontal"),
        ([(1000, 1000)], "horizontal"),
        ([(100, 10000), (100, 10000), (100, 10000)], "horizontal"),
        ([(10000, 100), (10000, 100), (10000, 100)], "vertical"),
        ([(1000, 1000)] * 4, "grid"),
        ([(1000, 1000)] * 9, "grid"),
    ],
)
def test_auto_known(sizes: list[tuple[int, int]], expected: str) -> None:
    assert plan_layout(sizes, "auto").layout == expected


def test_plan_layout_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        plan_layout([], "auto")
    with pytest.raises(ValueError):
        plan_layout([(0, 10)], "auto")
    with pytest.raises(ValueError):
        plan_layout([(10, 10)], "diagonal")
    with pytest.raises(ValueError):
        plan_layout([(10, 10)], "auto", gutter=-1)


def test_no_upscale_keeps_native_scale() -> None:
    plan = plan_layout([(128, 128), (128, 128)], "horizontal", upscale=False)
    assert [(c.w, c.h) for c in plan.cells] == [(128, 128), (128, 128)]
    assert (plan.width, plan.height) == (256, 128)
    big = plan_layout([(128, 128), (128, 128)], "horizontal", upscale=True)
    assert big.cells[0].w > 600


def _cells(plan: Any) -> list[Cell]:
    return [
        Cell(index=i, source=f"s{i}", x=b.x, y=b.y, w=b.w, h=b.h, scale=1.0, orientation_applied=1)
        for i, b in enumerate(plan.cells)
    ]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 3000)), min_size=1, max_size=9),
    layout=layouts,
    gutter=st.integers(0, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_crop_cell_returns_the_cell_box(
    sizes: list[tuple[int, int]], layout: str, gutter: int, seed: int
) -> None:
    plan = plan_layout(sizes, layout, gutter=gutter, megapixels=0.25)
    rng = np.random.default_rng(seed)
    W, H = plan.width, plan.height
    arr = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    canvas = Image.fromarray(arr)
    # Each pixel becomes a 2x2 block: the same picture at twice the size.
    double = Image.fromarray(arr.repeat(2, axis=0).repeat(2, axis=1))
    for cell in _cells(plan):
        got = np.asarray(crop_cell(canvas, cell, (W, H)))
        assert np.array_equal(got, arr[cell.y : cell.y + cell.h, cell.x : cell.x + cell.w])
        got2 = np.asarray(crop_cell(double, cell, (W, H)))
        assert got2.shape == (2 * cell.h, 2 * cell.w, 3)
        assert np.array_equal(
            got2,
            np.asarray(double)[
                2 * cell.y : 2 * (cell.y + cell.h), 2 * cell.x : 2 * (cell.x + cell.w)
            ],
        )


def test_crop_cell_on_a_bucket_sized_output() -> None:
    # A 16:9-ish two-panel canvas that came back at the Kontext bucket: boxes scale per axis.
    cell = Cell(index=1, source="b", x=696, y=0, w=696, h=784, scale=1.0, orientation_applied=1)
    out = Image.new("RGB", (1392, 752))
    got = crop_cell(out, cell, (1392, 784))
    assert got.size == (696, 752)
    frac = Fraction(752, 784)
    assert got.height == round(784 * frac)
