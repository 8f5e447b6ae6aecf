"""Benchmark: every compare metric on a 1 MP output, on one core, subject included.

Target (DESIGN.md section 9): at most 0.5 s per 1 MP output, with the subject detected
on the target (locate), the pattern related to the chest and the garment, SSIM off the
garment, and the style's colour and texture. The target is a real half-length portrait
(grace_hopper.jpg, upscaled to ~1 MP) with a textured print pasted on the chest. Prints
the median seconds per output over several in-process runs and the ratio to the target
(<= 1.0 passes). Inputs live in memory (decoding files is not part of the measurement).

    python3 bench/compare.py [--runs 7] [--threads 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from _timing import median_time  # a sibling: bench/ is on sys.path
from PIL import Image

from fluxcompose import compare as C
from fluxcompose.locate import locate
from fluxcompose.recipes import load_recipe

TARGET_S = 0.5
IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "images"


def textured(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like synthetic image: shapes, lines and grain."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    for _ in range(120):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(4, width // 8)), c, -1)
        elif kind == 1:
            x1, y1 = x + int(rng.integers(4, width // 5)), y + int(rng.integers(4, height // 5))
            cv2.rectangle(img, (x, y), (x1, y1), c, -1)
        else:
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(img, (x, y), (x1, y1), c, int(rng.integers(1, 6)))
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(cv2.GaussianBlur(img, (0, 0), 0.8))


def make_case() -> tuple[Image.Image, Image.Image, Image.Image, Image.Image]:
    """(output, target, pattern 600x300, style 1024x1024), output and target ~1 MP."""
    portrait = IMAGES / "grace_hopper.jpg"
    size = (944, 1104)  # ~1.04 MP, the portrait's aspect
    if portrait.exists():
        target = Image.open(portrait).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    else:
        target = textured(*size, 1)
    pattern = textured(600, 300, 2)
    starry = IMAGES / "starry_night.jpg"
    style = Image.open(starry).convert("RGB") if starry.exists() else textured(1024, 1024, 3)
    out = np.asarray(target).copy()
    # 2/3 of the README's chest width (x 0.06..0.98), at the chest's middle (y 0.53..1.0).
    pw = int(size[0] * 0.92 * 2 / 3)
    ph = pw // 2
    patch = cv2.resize(np.asarray(pattern), (pw, ph), interpolation=cv2.INTER_AREA)
    x0 = int(size[0] * 0.52) - pw // 2
    y0 = int(size[1] * 0.765) - ph // 2
    out[y0 : y0 + ph, x0 : x0 + pw] = patch
    return Image.fromarray(out), target, pattern, style


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (1 = one core)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)

    output, target, pattern, style = make_case()
    o = np.asarray(output)
    t = np.asarray(target)
    checks = dict(load_recipe("pattern-transfer").checks)

    parts = {
        "subject": lambda: locate(t),
        "ssim": lambda: C.ssim(o, t, full=True),
        "edit_region": lambda: C.edit_region(o, t),
        "pattern": lambda: C.locate_pattern(o, pattern),
        "style": lambda: C.style_metric(o, t, style),
        "phash x4": lambda: [C.phash(x) for x in (o, t, pattern, style)],
    }
    print(
        f"compare benchmark: output {output.width}x{output.height}, OpenCV threads={args.threads}"
    )
    for name, fn in parts.items():
        w, c = median_time(fn, args.runs)
        print(f"  {name:12s} wall {w:.3f} s  cpu {c:.3f} s")

    def full() -> None:
        C.compare(output, target, pattern=pattern, style=style, checks=checks)

    wall, cpu = median_time(full, args.runs)
    report = C.compare(output, target, pattern=pattern, style=style, checks=checks)
    d = report.to_dict()
    verdicts = ", ".join(f"{k} {v['pass']}" for k, v in d["checks"].items())
    print(f"  subject: {d['subject']['method']}, chest {d['subject']['chest_box']}")
    print(f"  checks: {verdicts}")
    assert d["pattern"]["found"], d["pattern"]
    print(
        f"all metrics, subject included, 1 MP output (median of {args.runs}): "
        f"wall {wall:.3f} s, cpu {cpu:.3f} s"
    )
    print(
        f"ratio to the {TARGET_S} s target: {cpu / TARGET_S:.2f} cpu, {wall / TARGET_S:.2f} wall (<= 1.00 passes)"
    )


if __name__ == "__main__":
    main()
