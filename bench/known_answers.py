"""Known answers for the subject-aware checks on real photos (issue 8's evidence).

For grace_hopper.jpg (shared images) and samples/model.jpg: what ``locate`` finds, then
the pattern-transfer checks for prints pasted at chosen places: the asked 2/3 of the
chest in its middle (must pass), over the whole person, and on the face (must fail).

Run: ``python3 bench/known_answers.py`` from the checkout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fluxcompose.compare import compare  # noqa: E402
from fluxcompose.images import load_image  # noqa: E402
from fluxcompose.locate import locate  # noqa: E402
from fluxcompose.prints import print_layer  # noqa: E402
from fluxcompose.recipes import load_recipe  # noqa: E402
from tests.paths import SHARED_IMAGES as SHARED  # noqa: E402  (CI's ../shared, else /work/shared)


def design_of(pattern: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The pattern's design (plain background dropped) and its mask, cropped to its box."""
    layer = print_layer(np.asarray(pattern))
    x0, y0, x1, y1 = layer.box
    mask = Image.fromarray((layer.alpha[y0:y1, x0:x1] * 255).astype(np.uint8))
    return pattern.crop((x0, y0, x1, y1)), mask


def paste(
    target: Image.Image, design: Image.Image, mask: Image.Image, x0: float, y0: float, width: float
) -> Image.Image:
    """``target`` with the design pasted at (x0, y0), ``width`` wide (all normalised)."""
    out = target.copy()
    w = max(1, round(width * out.width))
    h = max(1, round(w * design.height / design.width))
    out.paste(
        design.resize((w, h), Image.Resampling.LANCZOS),
        (round(x0 * out.width), round(y0 * out.height)),
        mask.resize((w, h)),
    )
    return out


def main() -> int:
    recipe = load_recipe("pattern-transfer")
    pattern = load_image(str(ROOT / "samples" / "pattern.png")).image
    design, mask = design_of(pattern)
    for path in (SHARED / "grace_hopper.jpg", ROOT / "samples" / "model.jpg"):
        if not path.is_file():
            print(f"{path}: missing, skipped", file=sys.stderr)
            continue
        target = load_image(str(path)).image
        subject = locate(np.asarray(target))
        print(f"{path.name}: locate {json.dumps(subject.to_dict())}")
        if subject.chest_box is None:
            continue
        cx0, cy0, cx1, cy1 = subject.chest_box
        w = 2 / 3 * (cx1 - cx0)
        h = w * target.width / target.height * design.height / design.width
        cy = (cy0 + cy1) / 2 if h <= cy1 - cy0 else cy0 + h / 2
        cases = {
            "2/3 of the chest, in its middle": ((cx0 + cx1) / 2 - w / 2, cy - h / 2, w),
            "over the whole person": (0.025, 0.02, 0.95),
        }
        if subject.face_box is not None:
            fx0, fy0, fx1, _ = subject.face_box
            cases["on the face"] = (fx0, fy0, fx1 - fx0)
        for name, (x0, y0, width) in cases.items():
            output = paste(target, design, mask, x0, y0, width)
            report = compare(
                output, target, pattern=pattern, checks=recipe.checks, placement="middle"
            ).to_dict()
            p = report["pattern"]
            verdict = "PASS" if report["passed"] else "FAIL"
            print(
                f"  {name}: {verdict}  width {p['width_fraction']} of the chest, "
                f"{p['placement_distance']} chest widths from the middle, "
                f"on the garment {p['on_garment']}, "
                f"SSIM off the garment {report['ssim_outside_garment']}"
            )
            failed = [k for k, c in report["checks"].items() if c["pass"] is not True]
            if failed:
                print(f"    failed: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
