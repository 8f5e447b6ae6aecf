"""The client's per-job fast paths (issue 16) give exactly what the slow paths gave:
PNG orientation without inflating, PNGs decoded by libspng, decoded cells reused across
jobs, thumbnails cut from one reduced canvas."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fluxcompose import images
from fluxcompose.compose import compose
from fluxcompose.images import open_source
from fluxcompose.report import make_thumbs
from tests.paths import SHARED_IMAGES

REPO = Path(__file__).resolve().parent.parent
PATTERN = REPO / "samples" / "pattern.png"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _noise_png(path: Path, size: tuple[int, int], seed: int, **save: object) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(path, "PNG", **save)
    return path


def test_png_orientation_found_after_the_image_data(tmp_path: Path) -> None:
    """An eXIf chunk after IDAT (allowed by the PNG spec) is still read: rotated sizes."""
    plain = _noise_png(tmp_path / "plain.png", (40, 20), 1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the upright image is 20 x 40
    data = plain.read_bytes()
    iend = data.rindex(b"IEND") - 4
    late = tmp_path / "late.png"
    late.write_bytes(data[:iend] + _chunk(b"eXIf", exif.tobytes()) + data[iend:])
    with Image.open(late) as im:
        assert int(im.getexif().get(0x0112)) == 6  # Pillow agrees, after inflating
    assert open_source(late).orientation == 6 and open_source(late).size == (20, 40)
    assert open_source(plain).orientation == 1 and open_source(plain).size == (40, 20)
    early = tmp_path / "early.png"
    Image.open(plain).save(early, exif=exif)
    assert open_source(early).orientation == 6


@pytest.mark.parametrize("level", [0, 9])
def test_libspng_decode_matches_pillow(tmp_path: Path, level: int) -> None:
    path = _noise_png(tmp_path / "n.png", (97, 61), level, compress_level=level)
    src = open_source(path)
    assert src._plain_png_pixels() is not None  # the fast path is the one under test
    for size in ((97, 61), (30, 19), (150, 94)):
        fast = np.empty((size[1], size[0], 3), np.uint8)
        src._decode_into(fast, background=(255, 255, 255))
        with Image.open(path) as im:
            slow = np.asarray(images.resize_image(im.convert("RGB"), size))
        assert np.array_equal(fast, slow), size


def test_libspng_gives_pillows_pixels_on_real_photos() -> None:
    """Every real PNG photo at hand decodes to exactly the samples Pillow reads."""
    photos = sorted((SHARED_IMAGES / "people").glob("*.png"))
    if not photos:
        pytest.skip("no people photos in ../shared/images/people")
    for photo in photos:
        src = open_source(photo)
        fast = src._plain_png_pixels()
        assert fast is not None, photo.name
        with Image.open(photo) as im:
            assert np.array_equal(fast, np.asarray(im.convert("RGB"))), photo.name


def test_a_damaged_png_is_refused_not_decoded(tmp_path: Path) -> None:
    """One flipped bit in the image data: the chunk's CRC no longer matches. libspng runs
    with CRCs off, so the check before it must send the file to Pillow, which refuses it."""
    path = _noise_png(tmp_path / "n.png", (64, 48), 3, compress_level=0)  # stored: no inflate error
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 + 200] ^= 0x01  # a pixel sample inside the stored block
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    src = open_source(bad)
    assert src._plain_png() and src._plain_png_pixels() is None
    out = np.empty((48, 64, 3), np.uint8)
    with pytest.raises(images.ImageError, match="cannot decode"):
        src.decode_into(out)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(path.read_bytes()[:-20] + path.read_bytes()[-12:])  # IEND kept
    assert open_source(truncated)._plain_png_pixels() is None


def test_transparent_png_is_not_taken_for_plain(tmp_path: Path) -> None:
    """tRNS on an RGB PNG takes Pillow's path, whatever that makes of the keyed colour."""
    arr = np.zeros((8, 8, 3), np.uint8)
    arr[:4] = (10, 20, 30)
    path = tmp_path / "t.png"
    Image.fromarray(arr).save(path, transparency=(10, 20, 30))
    src = open_source(path)
    assert not src._plain_png()
    out = np.empty((8, 8, 3), np.uint8)
    src.decode_into(out, background=(200, 100, 50))
    assert np.array_equal(out, np.asarray(src.decode(background=(200, 100, 50))))


def test_reused_cells_are_the_pixels_a_fresh_decode_gives() -> None:
    target = (
        SHARED_IMAGES / "people" / "model_1.png"
        if (SHARED_IMAGES / "people" / "model_1.png").is_file()
        else REPO / "samples" / "model.jpg"
    )
    # The cache compose() really uses (a test elsewhere may have re-imported the modules).
    cache = compose.__globals__["open_source"].__globals__["_CELLS"]
    cache.clear()
    first = np.asarray(compose([PATTERN, target]).image)
    assert len(cache) == 2
    again = np.asarray(compose([PATTERN, target]).image)  # both cells from the cache
    cache.clear()
    fresh = np.asarray(compose([PATTERN, target]).image)
    assert np.array_equal(first, again) and np.array_equal(again, fresh)
    # The background is part of the key: the pattern's transparency is flattened onto it.
    black = np.asarray(compose([PATTERN, target], background="black").image)
    cache.clear()
    assert np.array_equal(black, np.asarray(compose([PATTERN, target], background="black").image))
    assert not np.array_equal(black, fresh)


def test_cell_cache_stays_within_its_bytes() -> None:
    cache = images._CellCache(max_bytes=4 * 300)
    for i in range(10):
        cache.put(("k", i), np.full((10, 10, 3), i, np.uint8))
    assert cache.nbytes <= cache.max_bytes and len(cache) == 4
    out = np.empty((10, 10, 3), np.uint8)
    assert cache.get_into(("k", 9), out) and (out == 9).all()
    assert not cache.get_into(("k", 0), out)


def test_cell_thumbnails_show_their_cells(tmp_path: Path) -> None:
    """Each source thumbnail is its cell, shrunk: the same mean colour, the cell's aspect."""
    canvas = Image.new("RGB", (1344, 768), (255, 255, 255))
    canvas.paste((200, 30, 30), (0, 0, 768, 768))
    canvas.paste((20, 40, 220), (768, 0, 1344, 768))
    canvas.paste((20, 200, 40), (768, 384, 1344, 768))
    out = tmp_path / "o.jpg"
    canvas.save(out)
    got = make_thumbs(tmp_path, "j", canvas=canvas, cells=[(0, 0, 768, 768), (768, 0, 1344, 768)],
                      output=out)  # fmt: skip
    assert got["sources"] == ["thumbs/j.src1.jpg", "thumbs/j.src2.jpg"]
    with (
        Image.open(tmp_path / got["sources"][0]) as a,
        Image.open(tmp_path / got["sources"][1]) as b,
    ):
        assert a.size == (160, 160) and b.size == (120, 160)
        red = np.asarray(a.convert("RGB"), float).mean(axis=(0, 1))
        halves = np.asarray(b.convert("RGB"), float)
    assert np.allclose(red, (200, 30, 30), atol=4)
    assert np.allclose(halves[:78].mean(axis=(0, 1)), (20, 40, 220), atol=6)
    assert np.allclose(halves[82:].mean(axis=(0, 1)), (20, 200, 40), atol=6)
    with Image.open(io.BytesIO((tmp_path / got["output"]).read_bytes())) as o:
        assert max(o.size) == 160


def test_a_shared_cells_thumbnail_is_made_once_and_is_the_fresh_one(tmp_path: Path) -> None:
    """One pattern on two photos: the pattern's thumbnail is cut once, and its bytes are
    those a fresh thumbnail of that cell gives; each photo's own thumbnail is its own."""
    report = make_thumbs.__globals__
    cache = report["_CELL_THUMBS"]
    cache.clear()
    other = tmp_path / "other.png"  # the same photo with a red square: a different target
    changed = images.load_image(REPO / "samples" / "model.jpg").image  # upright
    changed.paste((255, 0, 0), (0, 0, 200, 200))
    changed.save(other)
    targets = [REPO / "samples" / "model.jpg", other]
    composites = [compose([PATTERN, t]) for t in targets]
    assert composites[0].pixel_keys[0] == composites[1].pixel_keys[0]
    assert composites[0].pixel_keys[1] != composites[1].pixel_keys[1]
    cut: list[object] = []
    real_jpeg = report["_jpeg"]

    def counting_jpeg(im: Image.Image) -> bytes:
        cut.append(im.size)
        return bytes(real_jpeg(im))

    report["_jpeg"] = counting_jpeg
    try:
        got = [
            make_thumbs(tmp_path / str(i), "j", canvas=c.image,
                        cells=[cell.box for cell in c.cells], cell_keys=c.pixel_keys)
            for i, c in enumerate(composites)
        ]  # fmt: skip
    finally:
        report["_jpeg"] = real_jpeg
    assert len(cut) == 3  # pattern once, each photo once
    fresh = [
        make_thumbs(
            tmp_path / f"fresh{i}", "j", canvas=c.image, cells=[cell.box for cell in c.cells]
        )
        for i, c in enumerate(composites)
    ]
    for i in range(2):
        for a, b in zip(got[i]["sources"], fresh[i]["sources"], strict=True):
            assert (tmp_path / str(i) / a).read_bytes() == (tmp_path / f"fresh{i}" / b).read_bytes()
    first, second = (tmp_path / "0" / got[0]["sources"][1]), (tmp_path / "1" / got[1]["sources"][1])
    assert first.read_bytes() != second.read_bytes()


def test_cells_drawn_over_have_no_pixel_key() -> None:
    """A label or an outline changes the cell's pixels: no key, so no shared thumbnail."""
    target = REPO / "samples" / "model.jpg"
    assert all(k is not None for k in compose([PATTERN, target]).pixel_keys)
    assert compose([PATTERN, target], labels=True).pixel_keys == (None, None)
    assert compose([PATTERN, target], outline=True).pixel_keys == (None, None)
    # The background shows through the pattern's transparency: it is part of the key.
    assert (
        compose([PATTERN, target], background="black").pixel_keys[0]
        != (compose([PATTERN, target]).pixel_keys[0])
    )


def test_lru_keeps_the_most_recent_within_its_cost() -> None:
    """The cache both fast paths use: least recently used out first, costs summed, an
    entry too large for its share refused, the first value of a key kept."""
    from fluxcompose.lru import LruCache

    cache: LruCache[str] = LruCache(10, len, largest=2)
    cache.put("a", "aaaa")
    cache.put("b", "bbbb")
    assert cache.get("a") == "aaaa"  # now b is the least recently used
    cache.put("c", "cccc")  # 12 > 10: b goes
    assert cache.get("b") is None and cache.get("a") == "aaaa" and cache.get("c") == "cccc"
    assert cache.total_cost == 8 and len(cache) == 2
    cache.put("d", "dddddd")  # 6 > 10 // 2: refused, nothing flushed
    assert cache.get("d") is None and len(cache) == 2
    cache.put("a", "zzzz")
    assert cache.get("a") == "aaaa"
    cache.discard("a")
    cache.discard("never")
    assert cache.get("a") is None and cache.total_cost == 4 and len(cache) == 1
