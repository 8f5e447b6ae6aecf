"""Issue 11 test helpers: targets, a one-source recipe checked by SSIM, and a fake API hook
whose output depends on the seed and the model (a grey square of a chosen width pasted
on the target), so the checks' verdicts are known in advance."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIZE = 256  # target side, pixels
SSIM_MIN = 0.72  # the recipe's check (after the pipeline: w 0.1 ~0.84, 0.3 ~0.78, 0.5 ~0.66)
PASS_W, BETTER_W, FAIL_W = 0.3, 0.1, 0.7  # square widths: passes, passes by more, fails

RECIPE = f"""
name = "square-test"
description = "issue 11 tests: the output must stay close to the target"
sources = ["target"]
prompt = "Keep the picture; add a small grey square in the middle"

[compose]
megapixels = 0.0625

[request]
aspect_ratio = "1:1"

[checks]
ssim_min = {SSIM_MIN}
"""


def write_recipe(folder: Path) -> Path:
    path = folder / "square-test.toml"
    path.write_text(RECIPE)
    return path


def write_target(path: Path, seed: int) -> Path:
    """A textured picture (smooth gradients plus fine noise) so SSIM sees any square."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    base = np.stack([x * 200 + 30, y * 180 + 40, (x + y) * 90 + 20], axis=-1)
    noise = rng.normal(0, 25, (SIZE, SIZE, 3))
    arr = np.clip(base + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr, "RGB").save(path)
    return path


def paste_square(data: bytes, width: float, fmt: str) -> bytes:
    """``data`` (an image) with a mid-grey square ``width`` of its width at its centre."""
    with Image.open(io.BytesIO(data)) as im:
        pic = im.convert("RGB")
    w, h = pic.size
    side = max(1, round(width * w))
    x0, y0 = (w - side) // 2, (h - side) // 2
    pic.paste((128, 128, 128), (x0, y0, x0 + side, y0 + side))
    buf = io.BytesIO()
    pic.save(buf, "JPEG" if fmt == "jpeg" else "PNG", compress_level=1)
    return buf.getvalue()


def width_hook(
    widths: Callable[[str, int], float],
) -> Callable[[str, dict[str, Any], bytes, str], bytes]:
    """A ``FakeAPI.result_hook``: the square's width is ``widths(model, seed)``."""

    def hook(model: str, fields: Mapping[str, Any], data: bytes, fmt: str) -> bytes:
        return paste_square(data, widths(model, int(fields.get("seed", 0))), fmt)

    return hook
