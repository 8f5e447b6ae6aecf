"""Benchmark: does ``locate`` find the chest the way a person labels it, and how fast?

Inputs (read from shared/images, never copied):

- the nine labelled photos in ``people/`` (``chest_boxes.json``), and harder cases made from
  each, with the label carried through the same crop or placement: ``headless`` (cut just
  above the shoulder line, at the chin), ``half`` (cut just below the labelled waist),
  ``small`` (the photo at 0.4 of its size in the middle of a plain canvas), ``offcentre``
  (at 0.6, against the left edge), ``busy`` (its plain studio background replaced by
  starry_night.jpg);
- images with no person (starry_night, flower, samples/pattern.png, noise): found must be
  false; hopper.jpg (a tight head-and-shoulders crop): a chest box is allowed only below
  the chin (y >= 0.55).

It prints, per image: found, method, confidence and the chest box's IoU with the label;
then totals against the targets (found on >= 95 %, IoU >= 0.6 on >= 90 %, no confident
wrong box: found with IoU < 0.4, or found where nothing may be), and the speed: the
median CPU seconds per photo resized to 1 MP (after the load; CPU time of the process,
so the one-core cost even on a shared machine), the import and the model load.

    python3 bench/locate.py [--runs 3] [--cases all|people]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fluxcompose.images import load_image  # noqa: E402
from fluxcompose.locate import Box, locate  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
if not (IMAGES / "people" / "chest_boxes.json").is_file():
    IMAGES = Path("/work/shared/images")
PEOPLE = IMAGES / "people"
MP = 1024 * 1024
TARGET_FOUND, TARGET_IOU, TARGET_S = 0.95, 0.90, 0.1

Arr = np.ndarray


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def corner_colour(img: Arr) -> Arr:
    h, w = img.shape[:2]
    px = np.concatenate([img[: h // 10, : w // 10].reshape(-1, 3), img[: h // 10, -w // 10 :].reshape(-1, 3)])
    return np.median(px, axis=0).astype(np.uint8)


def crop_rows(img: Arr, box: Box, y0: float, y1: float) -> tuple[Arr, Box]:
    """Rows y0..y1 (normalised) of ``img``; the label moved and clipped with them."""
    h = img.shape[0]
    a, b = round(y0 * h), round(y1 * h)
    out = img[a:b]
    span = (b - a) / h
    x0, by0, x1, by1 = box
    return out, (x0, max(0.0, (by0 - y0) / span), x1, min(1.0, (by1 - y0) / span))


def place(img: Arr, box: Box, scale: float, fx: float, fy: float) -> tuple[Arr, Box]:
    """``img`` at ``scale`` on a canvas of its size in its corners' colour, its top-left at
    (fx, fy) of the free space; the label moved with it."""
    import cv2

    h, w = img.shape[:2]
    sw, sh = round(w * scale), round(h * scale)
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    canvas = np.empty_like(img)
    canvas[:] = corner_colour(img)
    ox, oy = round(fx * (w - sw)), round(fy * (h - sh))
    canvas[oy : oy + sh, ox : ox + sw] = small
    x0, y0, x1, y1 = box
    return canvas, ((ox + x0 * sw) / w, (oy + y0 * sh) / h, (ox + x1 * sw) / w, (oy + y1 * sh) / h)


def busy(img: Arr, starry: Arr) -> Arr:
    """``img`` with its plain studio background (near the corners' colour and connected to
    the image's border) replaced by ``starry`` (scaled to cover), edges softened."""
    import cv2

    h, w = img.shape[:2]
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(corner_colour(img).reshape(1, 1, 3), cv2.COLOR_RGB2LAB).astype(np.float32)
    # The studio background is a gradient: compare with the local row's border colour too.
    near = np.linalg.norm(lab - ref, axis=2) < 14
    left = lab[:, :8].mean(axis=1, keepdims=True)
    right = lab[:, -8:].mean(axis=1, keepdims=True)
    near |= (np.linalg.norm(lab - left, axis=2) < 9) | (np.linalg.norm(lab - right, axis=2) < 9)
    n, labels = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    border.discard(0)
    bg = np.isin(labels, list(border)) & near
    bg = cv2.morphologyEx(bg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    soft = cv2.GaussianBlur(bg.astype(np.float32), (0, 0), 1.5)[..., None]
    sh, sw = starry.shape[:2]
    s = max(w / sw, h / sh)
    cover = cv2.resize(starry, (math.ceil(sw * s), math.ceil(sh * s)), interpolation=cv2.INTER_CUBIC)
    cover = cover[:h, :w]
    out = img.astype(np.float32) * (1 - soft) + cover.astype(np.float32) * soft
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def cases(which: str) -> list[tuple[str, str, Arr, Box | None]]:
    """(name, kind, image, label or None when nothing may be found)."""
    labels = json.loads((PEOPLE / "chest_boxes.json").read_text())
    starry = np.asarray(load_image(IMAGES / "starry_night.jpg").image)
    out: list[tuple[str, str, Arr, Box | None]] = []
    for name in sorted(labels):
        img = np.asarray(load_image(PEOPLE / name).image)
        box: Box = tuple(labels[name])  # type: ignore[assignment]
        stem = name.removesuffix(".png")
        out.append((stem, "photo", img, box))
        if which == "people":
            continue
        w, h = img.shape[1], img.shape[0]
        chin = box[1] - 0.15 * (box[2] - box[0]) * w / h
        out.append((f"{stem}:headless", "headless", *crop_rows(img, box, chin, 1.0)))
        bottom = min(1.0, box[3] + 0.1 * (box[3] - box[1]))
        out.append((f"{stem}:half", "half", *crop_rows(img, box, 0.0, bottom)))
        out.append((f"{stem}:small", "small", *place(img, box, 0.4, 0.5, 0.5)))
        out.append((f"{stem}:offcentre", "offcentre", *place(img, box, 0.6, 0.0, 1.0)))
        out.append((f"{stem}:busy", "busy", busy(img, starry), box))
    for path in (IMAGES / "starry_night.jpg", IMAGES / "flower.jpg", ROOT / "samples" / "pattern.png"):
        out.append((path.name, "nobody", np.asarray(load_image(path).image), None))
    noise = np.random.default_rng(7).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    out.append(("noise", "nobody", noise, None))
    out.append(("hopper.jpg", "hopper", np.asarray(load_image(IMAGES / "hopper.jpg").image), None))
    return out


def to_1mp(img: Arr) -> Arr:
    im = Image.fromarray(img)
    s = math.sqrt(MP / (im.width * im.height))
    return np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS))


def cpu_median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", choices=["all", "people"], default="all")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import mediapipe.tasks.python.vision  # noqa: F401  (the import, measured)

    t_import = time.perf_counter() - t0
    from fluxcompose.locate import pose

    t0 = time.perf_counter()
    pose._landmarker()
    t_load = time.perf_counter() - t0

    rows = cases(args.cases)
    print(f"locate benchmark: {len(rows)} images (labels: {PEOPLE / 'chest_boxes.json'})")
    people = found = good = wrong = 0
    by_kind: dict[str, list[float]] = {}
    for name, kind, img, label in rows:
        s = locate(img)
        d = s.to_dict()
        box = s.chest_box
        if label is not None:
            people += 1
            v = iou(box, label) if box is not None else 0.0
            found += s.found
            good += v >= 0.6
            bad = s.found and v < 0.4
            wrong += bad
            by_kind.setdefault(kind, []).append(v)
            verdict = f"IoU {v:.2f}" + ("  CONFIDENT WRONG" if bad else "")
        elif kind == "hopper":
            bad = s.found and box is not None and box[1] < 0.55
            wrong += bad
            verdict = "below the chin" if not bad else "ABOVE THE CHIN: WRONG"
        else:
            bad = s.found
            wrong += bad
            verdict = "WRONG: found" if bad else "not found (right)"
        shown = "none" if box is None else "[" + ", ".join(f"{x:.2f}" for x in box) + "]"
        why = "" if s.found else f"  ({d.get('reason', '')[:70]})"
        print(f"  {name:22s} {'found' if s.found else 'no   '} {s.method:7s} "
              f"conf {s.confidence:.2f} chest {shown:26s} {verdict}{why}")

    print("\nper kind (mean IoU, share >= 0.6): " + ", ".join(
        f"{k} {statistics.mean(v):.2f} {sum(x >= 0.6 for x in v)}/{len(v)}" for k, v in by_kind.items()))
    print(f"found on {found}/{people} = {found / people:.1%} (target >= {TARGET_FOUND:.0%}); "
          f"IoU >= 0.6 on {good}/{people} = {good / people:.1%} (target >= {TARGET_IOU:.0%}); "
          f"confident wrong boxes (incl. no-person and hopper): {wrong} (target 0)")

    photos = [to_1mp(img) for name, kind, img, _ in rows if kind == "photo"]
    cpus = [cpu_median(lambda im=im: locate(im), args.runs) for im in photos]
    cpu = statistics.median(cpus)
    print(f"speed: median CPU {cpu:.3f} s per 1 MP photo after the load (slowest {max(cpus):.3f} s), "
          f"ratio to the {TARGET_S} s target {cpu / TARGET_S:.2f} (<= 1.00 passes); "
          f"import {t_import:.2f} s, model load {t_load:.2f} s (wall, once per process)")
    ok = found / people >= TARGET_FOUND and good / people >= TARGET_IOU and wrong == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
