"""The composition benchmark's helpers: inputs, the reference pipelines, PSNR, the RSS probe."""

from __future__ import annotations

import importlib.util
import io
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

BENCH = Path(__file__).resolve().parent.parent / "bench" / "compose.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compose", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = [folder / "a.jpg", folder / "b.jpg"]
    for i, p in enumerate(paths):
        bench.make_photo(p, 1600, 1200, seed=i)
    return paths


def test_psnr_known_values(bench: ModuleType) -> None:
    a = Image.new("RGB", (8, 8), (100, 100, 100))
    assert bench.psnr(a, a.copy()) == math.inf
    b = Image.new("RGB", (8, 8), (101, 99, 101))  # every sample off by 1: MSE 1
    assert bench.psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-9)
    with pytest.raises(ValueError):
        bench.psnr(a, Image.new("RGB", (8, 9)))


def test_make_photo_writes_a_textured_jpeg(photos: list[Path]) -> None:
    with Image.open(photos[0]) as im:
        assert im.format == "JPEG" and im.size == (1600, 1200)
        arr = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert arr.std() > 25  # shapes and gradients, not a flat field
    # Grain: neighbouring pixels differ a little almost everywhere.
    assert np.mean(np.abs(np.diff(arr[..., 1], axis=1)) > 0) > 0.3


def test_engine_naive_and_floor_agree(bench: ModuleType, photos: list[Path]) -> None:
    comp, sent = bench.run_engine(photos)
    # The engine encodes what a job sends: JPEG q95 4:4:4 of the canvas.
    with Image.open(io.BytesIO(sent)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == comp.size
        assert JpegImagePlugin.get_sampling(decoded) == 0
        assert bench.psnr(decoded.convert("RGB"), comp.image) >= 40.0
    buf = io.BytesIO()
    comp.image.save(buf, "JPEG", quality=95, subsampling=0)
    assert sent == buf.getvalue()
    naive, naive_jpeg = bench.run_naive(photos, comp.cells, comp.size)
    assert naive.size == comp.size and naive_jpeg.startswith(b"\xff\xd8\xff")
    assert bench.psnr(comp.image, naive) >= 35.0  # compared losslessly, in memory
    floor_jpeg = bench.run_floor(photos, comp.cells, comp.image)
    assert floor_jpeg == sent  # the floor encodes the same canvas the same way


def test_rss_probe_reports_the_child_not_this_process(
    bench: ModuleType, photos: list[Path]
) -> None:
    probe = bench.RssProbe()
    ballast = np.ones(200_000_000 // 8)  # grow this process by 200 MB after the probe starts
    try:
        peak, base, hwm = probe.measure(photos)
    finally:
        del ballast
    assert 10 < base <= peak < 190
    assert hwm == pytest.approx(peak, rel=0.05)
