"""Canvas JPEG encoding in a batch: the pattern's strip reused (canvas_jpeg) against the
whole canvas encoded every time, on real pattern-on-photo canvases.

    python3 bench/canvas_jpeg.py            # 15 rounds
    python3 bench/canvas_jpeg.py --rounds 5

The canvases are samples/pattern.png beside each people photo of
../shared/images/people/ (or the bundled sample photo), composed as a pattern-transfer
job composes them. In each round, each canvas is encoded both ways, in an order that
alternates, pinned to one core: the whole canvas (``encode_canvas`` without a plan: what
a job did before), and from strips with the pattern's already cached and the photo's
encoded afresh (a batch's second and later jobs). It prints the median CPU milliseconds
per canvas, the ratio, and the bytes. It checks first that every strip-built canvas is
libjpeg's own encoding of the whole canvas with that restart interval, and that its
pixels are the plain encoding's.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compose import pin_one_core  # noqa: E402

from fluxcompose import canvas_jpeg  # noqa: E402
from fluxcompose.compose import Composite  # noqa: E402
from fluxcompose.images import clear_cell_cache, encode_canvas  # noqa: E402
from fluxcompose.recipes import load_recipe  # noqa: E402
from fluxcompose.run import JobSpec, RequestOptions, prepare_job  # noqa: E402

PEOPLE = ROOT.parent / "shared" / "images" / "people"
PATTERN = ROOT / "samples" / "pattern.png"


def _canvases() -> list[Composite]:
    photos = sorted(PEOPLE.glob("*.png")) or [ROOT / "samples" / "model.jpg"]
    recipe = load_recipe("pattern-transfer")
    out = []
    for photo in photos:
        spec = JobSpec(recipe=recipe, sources=(str(PATTERN), str(photo)), request=RequestOptions())
        composite = prepare_job(spec, backend_name="local").composite
        assert composite is not None and composite.image is not None
        out.append(composite)
    return out


def _check(composite: Composite, data: bytes, restart_blocks: int) -> None:
    image = composite.image
    assert image is not None
    direct, plain = io.BytesIO(), io.BytesIO()
    image.save(direct, "JPEG", quality=95, subsampling=0, restart_marker_blocks=restart_blocks)
    image.save(plain, "JPEG", quality=95, subsampling=0)
    if data != direct.getvalue():
        raise SystemExit("a strip-built canvas is not libjpeg's encoding of the whole canvas")
    with Image.open(io.BytesIO(data)) as a, Image.open(plain) as b:
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            raise SystemExit("a strip-built canvas has other pixels than the plain encoding")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    pinned = pin_one_core()
    canvases = _canvases()
    plans = [c.jpeg_strips() for c in canvases]
    if any(p is None for p in plans):
        raise SystemExit("a pattern-on-photo canvas has no strip plan")
    sizes: dict[str, list[int]] = {"whole": [], "strips": []}
    for composite, plan in zip(canvases, plans, strict=True):
        assert plan is not None and composite.image is not None
        data = encode_canvas(composite.image, "jpeg", strips=plan).data
        _check(composite, data, plan.restart_blocks)
        sizes["strips"].append(len(data))
        sizes["whole"].append(len(encode_canvas(composite.image, "jpeg").data))

    def photo_strips_forgotten(plan: canvas_jpeg.StripPlan) -> None:
        for _, _, key in plan.strips[1:]:  # the pattern's strip (the first) stays cached
            canvas_jpeg._STRIPS.discard((key, plan.restart_blocks, 95))

    times: dict[str, list[float]] = {"whole": [], "strips": []}
    for r in range(args.rounds):
        for composite, plan in zip(canvases, plans, strict=True):
            assert plan is not None and composite.image is not None
            for way in ("whole", "strips") if r % 2 == 0 else ("strips", "whole"):
                photo_strips_forgotten(plan)
                c0 = time.process_time()
                encode_canvas(composite.image, "jpeg", strips=plan if way == "strips" else None)
                times[way].append(time.process_time() - c0)
    clear_cell_cache()
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(
        f"canvas JPEG encode (q95 4:4:4), {len(canvases)} pattern-on-photo canvases "
        f"{canvases[0].width}x{canvases[0].height} x {args.rounds} rounds on {pinned}"
    )
    print(f"  whole canvas, every job           {med['whole']:6.2f} ms (median CPU)")
    print(f"  strips, the pattern's reused      {med['strips']:6.2f} ms")
    print(f"  strips / whole = {med['strips'] / med['whole']:.2f}")
    extra = statistics.median(s / w for s, w in zip(sizes["strips"], sizes["whole"], strict=True))
    print(f"  bytes: strips / whole = {extra:.4f} (the restart markers); same pixels: yes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
