"""Benchmark the composition engine against a naive pipeline and against the floor.

Run ``python3 bench/compose.py`` (``--quick`` for fewer rounds). It writes two
12 MP (4000x3000) and two 24 MP (6000x4000) photo-like JPEGs (quality 90) to a
temporary folder, pins itself to one core and measures, interleaved over
several rounds (medians of the process's CPU time, which other programs sharing
the core cannot inflate; wall-clock medians are printed alongside):

- engine: ``compose([a, b], megapixels=1.0)`` + encode the canvas as a job sends
  it (``encode_canvas``: JPEG quality 95, 4:4:4);
- naive: full decode + EXIF transpose + RGB, Lanczos to the engine's cell sizes,
  paste onto a canvas of the same size, encode it the same way;
- floor: decode both at the reduced DCT scale the cells need (``Image.draft``),
  plus the same JPEG encode of a canvas of the same size (a copy of the
  engine's, so the encoder sees the same pixels); no resizing, no pasting.

The floor used to encode PNG, whose ~70 ms hid the engine's own cost; with the
~6 ms JPEG encode a job actually does, engine/floor shows what compose adds.

It prints naive/engine (target >= 4x), engine/floor (target <= 1.3x), the PSNR of
the engine's canvas against the naive one, compared in memory (lossless, target
>= 35 dB), the peak RSS of composing the 24 MP pair in a fresh subprocess
(target < 200 MB), and the canvas's request bytes as JPEG and as PNG (target:
JPEG at most half). DESIGN.md section 9 sets the targets.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from fluxcompose.compose import Cell, Composite, compose
from fluxcompose.images import clear_cell_cache, encode_canvas

TARGET_SPEEDUP = 4.0  # naive / engine, at least
TARGET_FLOOR = 1.3  # engine / floor, at most
TARGET_PSNR = 35.0  # dB, at least
TARGET_RSS_MB = 200.0  # MB (10^6 bytes), below
TARGET_BYTES = 0.5  # JPEG request bytes / PNG request bytes, at most

# The memory probe: a fresh interpreter that imports fluxcompose, composes the
# pair once and encodes the canvas. It prints its RSS after the imports alone
# and its own high-water mark (VmHWM) as a cross-check.
_RSS_PROBE = """\
import resource, sys
from fluxcompose.compose import compose
from fluxcompose.images import encode_canvas
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
comp = compose(sys.argv[1:3], megapixels=1.0)
encode_canvas(comp.image, "jpeg")
hwm = -1
try:
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(base, hwm)
"""

# The launcher starts the probe and reports getrusage(RUSAGE_CHILDREN). Linux
# carries the RSS high-water mark of the process that calls exec (with vfork,
# the parent's) into the new program's ru_maxrss: a probe started straight from
# here reports this process's peak (several hundred MB after making the
# inputs), not its own. Started from the small launcher, the probe inherits the
# launcher's few MB instead, and the launcher's RUSAGE_CHILDREN is the probe's
# true peak (it agrees with the probe's own VmHWM).
_LAUNCHER = """\
import resource, subprocess, sys
line = sys.stdin.readline().rstrip("\\n")
if not line:  # the benchmark stopped before measuring
    sys.exit(0)
paths = line.split("\\t")
out = subprocess.run([sys.executable, "-c", sys.argv[1], *paths], check=True,
                     capture_output=True, text=True).stdout
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, out.strip())
"""


# --------------------------------------------------------------------------- inputs


def make_photo(path: Path, width: int, height: int, seed: int) -> None:
    """Write a photo-like JPEG (quality 90, 4:2:0): smooth light, soft shapes, mild grain.

    Built in uint8 at full size with OpenCV so that a 24 MP image takes about a second.
    """
    rng = np.random.default_rng(seed)
    # Smooth lighting: a few random colours at the corners of a coarse grid, bicubic-upscaled.
    grid = rng.uniform(40, 220, (3, 4, 3)).astype(np.float32)
    sky = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    img = np.clip(sky, 0, 255).astype(np.uint8)
    # Objects: ellipses and rotated boxes with antialiased edges, some with a second tone.
    scale = width / 4000
    for _ in range(28):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        ax = int(rng.integers(60, 700) * scale)
        ay = int(rng.integers(60, 700) * scale)
        angle = float(rng.uniform(0, 180))
        if rng.random() < 0.5:
            cv2.ellipse(img, (cx, cy), (ax, ay), angle, 0, 360, color, -1, cv2.LINE_AA)
            inner = tuple(int(min(255, v * 1.25 + 20)) for v in color)
            cv2.ellipse(
                img,
                (cx - ax // 5, cy - ay // 5),
                (ax // 3, ay // 3),
                angle,
                0,
                360,
                inner,
                -1,
                cv2.LINE_AA,
            )
        else:
            box = cv2.boxPoints(((cx, cy), (2 * ax, 2 * ay), angle)).astype(np.int32)
            cv2.fillPoly(img, [box], color, cv2.LINE_AA)
            cv2.polylines(img, [box], True, (20, 20, 20), max(2, int(6 * scale)), cv2.LINE_AA)
    # A patch of fine texture (foliage, fabric): what makes real JPEGs big.
    th, tw = height // 4, width // 3
    y0, x0 = int(rng.integers(0, height - th)), int(rng.integers(0, width - tw))
    texture = rng.integers(0, 70, (th // 4, tw // 4, 1), dtype=np.uint8)
    texture = cv2.resize(texture, (tw, th), interpolation=cv2.INTER_LINEAR)[..., None]
    patch = img[y0 : y0 + th, x0 : x0 + tw].astype(np.int16) - 35 + texture
    img[y0 : y0 + th, x0 : x0 + tw] = np.clip(patch, 0, 255).astype(np.uint8)
    # Lens softness, then sensor grain (about 2 levels of 255, shared by the channels).
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    grain = rng.integers(-3, 4, (height, width, 1), dtype=np.int16)
    img = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    ok = cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"cannot write {path}")


# --------------------------------------------------------------------------- the three pipelines


def run_engine(paths: Sequence[Path]) -> tuple[Composite, bytes]:
    """What a job does on the client: compose, then encode the canvas as it is sent. Cold:
    the decoded-cell cache is emptied first, or every round after the first would time a
    cache hit (a batch does hit it for a pattern shared by many jobs; one pair does not)."""
    clear_cell_cache()
    comp = compose([str(p) for p in paths], megapixels=1.0)
    assert comp.image is not None
    return comp, encode_canvas(comp.image, "jpeg").data


def run_naive(
    paths: Sequence[Path], cells: Sequence[Cell], size: tuple[int, int]
) -> tuple[Image.Image, bytes]:
    """Full decode, Lanczos to the engine's cell sizes, paste, encode."""
    canvas = Image.new("RGB", size, (255, 255, 255))
    for path, cell in zip(paths, cells, strict=True):
        with Image.open(path) as opened:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            rgb = upright.convert("RGB")
        canvas.paste(rgb.resize((cell.w, cell.h), Image.Resampling.LANCZOS), (cell.x, cell.y))
    return canvas, encode_canvas(canvas, "jpeg").data


def run_floor(paths: Sequence[Path], cells: Sequence[Cell], canvas: Image.Image) -> bytes:
    """The least any pipeline must do: decode at the cells' DCT scale, encode the canvas."""
    for path, cell in zip(paths, cells, strict=True):
        with Image.open(path) as opened:
            opened.draft("RGB", (cell.w, cell.h))
            opened.load()
    return encode_canvas(canvas, "jpeg").data


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB between two same-size 8-bit images (inf when identical)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"canvas sizes differ: {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def pin_one_core() -> str:
    """Run on one CPU (the last one allowed) and keep OpenCV single-threaded."""
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned (no sched_setaffinity)"


class RssProbe:
    """Measures the peak RSS of composing a pair in a fresh process (see ``_LAUNCHER``)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, _RSS_PROBE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def measure(self, paths: Sequence[Path]) -> tuple[float, float, float]:
        """Peak RSS (MB, from RUSAGE_CHILDREN), RSS after the imports alone and VmHWM (MB)."""
        out, _ = self._proc.communicate("\t".join(map(str, paths)) + "\n", timeout=300)
        if self._proc.returncode != 0:
            raise RuntimeError("the memory probe failed")
        peak_kib, base_kib, hwm_kib = (int(v) for v in out.split())
        mb = 1024 / 1e6  # ru_maxrss and VmHWM are in KiB on Linux
        return peak_kib * mb, base_kib * mb, hwm_kib * mb


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) spent in ``fn()``."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 7)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)

    probe = RssProbe()
    with tempfile.TemporaryDirectory(prefix="fluxcompose-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        pair12 = [folder / "a12.jpg", folder / "b12.jpg"]
        pair24 = [folder / "a24.jpg", folder / "b24.jpg"]
        for i, p in enumerate(pair12):
            make_photo(p, 4000, 3000, seed=12 + i)
        for i, p in enumerate(pair24):
            make_photo(p, 6000, 4000, seed=24 + i)
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in pair12 + pair24)
        print(f"inputs: {sizes} (made in {time.perf_counter() - t0:.1f} s)")

        rss_mb, base_mb, hwm_mb = probe.measure(pair24)
        pinned = pin_one_core()

        comp, _ = run_engine(pair12)  # warm-up; also gives the cells and the canvas
        assert comp.image is not None
        cells, size = comp.cells, comp.size
        naive_canvas, _ = run_naive(pair12, cells, size)
        quality = psnr(comp.image, naive_canvas)
        floor_canvas = comp.image.copy()  # the same pixels the engine encodes
        run_floor(pair12, cells, floor_canvas)

        steps: dict[str, Callable[[], object]] = {
            "engine": lambda: run_engine(pair12),
            "naive": lambda: run_naive(pair12, cells, size),
            "floor": lambda: run_floor(pair12, cells, floor_canvas),
        }
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
        names = list(steps)
        for r in range(rounds):
            order = names[r % 3 :] + names[: r % 3]  # rotate so no step always runs first
            for name in order:
                times[name].append(timed(steps[name]))

    jpeg_bytes = encode_canvas(comp.image, "jpeg").nbytes
    png_bytes = encode_canvas(comp.image, "png").nbytes
    bytes_ratio = jpeg_bytes / png_bytes
    med = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    wall = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    speedup = med["naive"] / med["engine"]
    over_floor = med["engine"] / med["floor"]
    cell_text = ", ".join(f"{c.w}x{c.h}" for c in cells)
    print(
        f"12 MP pair -> {comp.width}x{comp.height} {comp.layout} (cells {cell_text}); "
        f"{rounds} rounds on {pinned}; median CPU (wall) ms: "
        + ", ".join(f"{k} {med[k] * 1e3:.1f} ({wall[k] * 1e3:.1f})" for k in names)
    )
    print(
        f"canvas request bytes: JPEG q95 4:4:4 {jpeg_bytes} B, PNG {png_bytes} B "
        f"(image payload, before base64)"
    )
    print(
        f"24 MP pair, fresh process: peak RSS {rss_mb:.0f} MB (VmHWM {hwm_mb:.0f} MB), "
        f"of which imports alone {base_mb:.0f} MB"
    )
    rows = [
        (
            "naive / engine (12 MP pair)",
            f"{speedup:.2f}x",
            f">= {TARGET_SPEEDUP:g}x",
            speedup >= TARGET_SPEEDUP,
        ),
        (
            "engine / floor (12 MP pair)",
            f"{over_floor:.2f}x",
            f"<= {TARGET_FLOOR:g}x",
            over_floor <= TARGET_FLOOR,
        ),
        (
            "PSNR engine vs naive",
            f"{quality:.1f} dB",
            f">= {TARGET_PSNR:g} dB",
            quality >= TARGET_PSNR,
        ),
        (
            "JPEG / PNG request bytes",
            f"{bytes_ratio:.2f}",
            f"<= {TARGET_BYTES:g}",
            bytes_ratio <= TARGET_BYTES,
        ),
        (
            "peak RSS (24 MP pair)",
            f"{rss_mb:.0f} MB",
            f"< {TARGET_RSS_MB:g} MB",
            rss_mb < TARGET_RSS_MB,
        ),
    ]
    print(f"{'what':30s} {'measured':>10s} {'target':>10s}  result")
    for what, measured, target, ok in rows:
        print(f"{what:30s} {measured:>10s} {target:>10s}  {'pass' if ok else 'FAIL'}")
    print(
        f"compose: naive/engine {speedup:.2f}x, engine/floor {over_floor:.2f}x, "
        f"PSNR {quality:.1f} dB, peak RSS {rss_mb:.0f} MB, JPEG/PNG bytes {bytes_ratio:.2f}"
    )
    missed = [r[0] for r in rows if not r[3]]
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
