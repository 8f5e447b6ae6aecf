"""Benchmark: locate the subject on a 1 MP photo, on one core.

Target (DESIGN.md section 9): at most 0.15 s per 1 MP photo. Every input (the real photos in
shared/images and samples/, and the renders of tests/people.py) is resized to about 1 MP
(1024 x 1024 pixels of area, its own aspect); the script prints each one's median seconds,
the median over all of them and its ratio to the target (<= 1.0 passes). Inputs live in
memory (decoding files is not part of the measurement).

    python3 bench/locate.py [--runs 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import median_time  # noqa: E402  (a sibling: bench/ is on sys.path)

from fluxcompose.images import load_image  # noqa: E402
from fluxcompose.locate import locate  # noqa: E402

TARGET_S = 0.15
MP = 1024 * 1024
IMAGES = ROOT.parent / "shared" / "images"
if not (IMAGES / "grace_hopper.jpg").is_file():
    IMAGES = Path("/work/shared/images")

PHOTOS = [
    IMAGES / "grace_hopper.jpg",
    ROOT / "samples" / "model.jpg",
    IMAGES / "starry_night.jpg",
    IMAGES / "flower.jpg",
    ROOT / "samples" / "style.jpg",
]


def to_1mp(image: Image.Image) -> np.ndarray:
    """``image`` resized (Lanczos) to about 1 MP, keeping its aspect, as an RGB array."""
    s = math.sqrt(MP / (image.width * image.height))
    size = (round(image.width * s), round(image.height * s))
    return np.asarray(image.convert("RGB").resize(size, Image.Resampling.LANCZOS))


def inputs() -> list[tuple[str, np.ndarray]]:
    out = []
    for path in PHOTOS:
        if path.is_file():
            out.append((path.name, to_1mp(load_image(path).image)))
    try:
        from tests import people

        for render in people.all_renders():
            out.append((f"render:{render.name}", to_1mp(render.pil)))
    except (ImportError, FileNotFoundError) as exc:  # the renders need the shared images
        print(f"  (renders skipped: {exc})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one core)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)

    cases = inputs()
    print(f"locate benchmark: {len(cases)} inputs at ~1 MP, OpenCV threads={args.threads}")
    walls, cpus = [], []
    for name, arr in cases:
        subject = locate(arr)
        w, c = median_time(lambda arr=arr: locate(arr), args.runs)  # type: ignore[misc]
        walls.append(w)
        cpus.append(c)
        h, wd = arr.shape[:2]
        print(f"  {name:26s} {wd}x{h}  {subject.method:8s} wall {w:.3f} s  cpu {c:.3f} s")
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"median per 1 MP photo: wall {wall:.3f} s, cpu {cpu:.3f} s (slowest cpu {max(cpus):.3f} s)"
    )
    print(
        f"ratio to the {TARGET_S} s target: {cpu / TARGET_S:.2f} cpu, {wall / TARGET_S:.2f} wall (<= 1.00 passes)"
    )


if __name__ == "__main__":
    main()
