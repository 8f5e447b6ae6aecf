"""Where the tests find the shared real-world images (Pillow's own test files).

CI lays ``shared/`` beside the checkout; a developer's machine has it at
/work/shared. FLUXCOMPOSE_TEST_IMAGES overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shared_images() -> Path:
    override = os.environ.get("FLUXCOMPOSE_TEST_IMAGES")
    candidates = [Path(override)] if override else []
    candidates += [ROOT.parent / "shared" / "images", Path("/work/shared/images")]
    for path in candidates:
        if (path / "hopper.jpg").is_file():
            return path
    return candidates[0]


SHARED_IMAGES = _shared_images()
