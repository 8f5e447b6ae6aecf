"""Benchmark: does ``locate`` find the chest the way a person labels it, and how fast?

Inputs (read from shared/images, never copied):

- the nine labelled photos in ``people/`` (``chest_boxes.json``), and harder cases made from
  each by tests/people.py, with the label carried through the same crop or placement:
  ``headless`` (cut at the chin), ``half`` (cut just below the labelled waist), ``small``
  (at 0.4 of its size in the middle of a plain canvas), ``offcentre`` (at 0.6, against the
  left edge), ``busy`` (its plain studio background replaced by starry_night.jpg);
- images with no person (starry_night, flower, samples/pattern.png, noise): found must be
  false; and each photo's top cut out onto grey (a garment photographed alone: the
  ``garment`` method; its IoU is printed apart, without a target); hopper.jpg (a tight head-and-shoulders crop): a chest box is allowed only below
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
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import median_time  # noqa: E402 - a sibling: bench/ is on sys.path

from fluxcompose.images import load_image  # noqa: E402
from fluxcompose.locate import Box, locate  # noqa: E402
from tests import people  # noqa: E402  (the labelled photos and the harder cases)
from tests.paths import SHARED_IMAGES as IMAGES  # noqa: E402

iou = people.iou
PEOPLE = people.PEOPLE
MP = 1024 * 1024
TARGET_FOUND, TARGET_IOU, TARGET_S = 0.95, 0.90, 0.1

Arr = np.ndarray


def cases(which: str) -> list[tuple[str, str, Arr, Box | None]]:
    """(name, kind, image, label or None when nothing may be found)."""
    out: list[tuple[str, str, Arr, Box | None]] = []
    kinds = people.KINDS if which == "all" else ("photo",)
    for name in people.NAMES:
        for kind in kinds:
            img, box = people.case(name, kind)
            out.append((name if kind == "photo" else f"{name}:{kind}", kind, img, box))
    for path in (
        IMAGES / "starry_night.jpg",
        IMAGES / "flower.jpg",
        ROOT / "samples" / "pattern.png",
    ):
        out.append((path.name, "nobody", np.asarray(load_image(path).image), None))
    noise = np.random.default_rng(7).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    out.append(("noise", "nobody", noise, None))
    out.append(("hopper.jpg", "hopper", np.asarray(load_image(IMAGES / "hopper.jpg").image), None))
    return out


def to_1mp(img: Arr) -> Arr:
    im = Image.fromarray(img)
    s = math.sqrt(MP / (im.width * im.height))
    return np.asarray(
        im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
    )


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
    n_people = found = good = wrong = 0
    by_kind: dict[str, list[float]] = {}
    for name, kind, img, label in rows:
        s = locate(img)
        d = s.to_dict()
        box = s.chest_box
        if label is not None:
            n_people += 1
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
        print(
            f"  {name:22s} {'found' if s.found else 'no   '} {s.method:7s} "
            f"conf {s.confidence:.2f} chest {shown:26s} {verdict}{why}"
        )

    print(
        "\nper kind (mean IoU, share >= 0.6): "
        + ", ".join(
            f"{k} {statistics.mean(v):.2f} {sum(x >= 0.6 for x in v)}/{len(v)}"
            for k, v in by_kind.items()
        )
    )
    print(
        f"found on {found}/{n_people} = {found / n_people:.1%} (target >= {TARGET_FOUND:.0%}); "
        f"IoU >= 0.6 on {good}/{n_people} = {good / n_people:.1%} (target >= {TARGET_IOU:.0%}); "
        f"confident wrong boxes (incl. no-person and hopper): {wrong} (target 0)"
    )

    alone = []
    for name in people.NAMES:
        img, label = people.garment_alone(name, 170)
        s = locate(img)
        v = iou(s.chest_box, label) if s.chest_box is not None else 0.0
        alone.append(v)
        print(
            f"  {name + ':alone':22s} {'found' if s.found else 'no   '} {s.method:7s} "
            f"conf {s.confidence:.2f} IoU {v:.2f}"
        )
    print(
        f"garment alone (the top cut out onto grey; no target, not in the totals above): found "
        f"{sum(v > 0 for v in alone)}/{len(alone)}, IoU >= 0.5 on {sum(v >= 0.5 for v in alone)}"
    )

    photos = [to_1mp(img) for name, kind, img, _ in rows if kind == "photo"]
    cpus = [median_time(lambda im=im: locate(im), args.runs)[1] for im in photos]
    cpu = statistics.median(cpus)
    print(
        f"speed: median CPU {cpu:.3f} s per 1 MP photo after the load (slowest {max(cpus):.3f} s), "
        f"ratio to the {TARGET_S} s target {cpu / TARGET_S:.2f} (<= 1.00 passes); "
        f"import {t_import:.2f} s, model load {t_load:.2f} s (wall, once per process)"
    )
    ok = found / n_people >= TARGET_FOUND and good / n_people >= TARGET_IOU and wrong == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
