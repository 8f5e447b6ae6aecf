"""PNG decoding: libspng (fluxcompose's path for plain 8-bit RGB PNGs, with its CRC check)
against libpng through OpenCV (the path before) and Pillow, on real photos.

    python3 bench/png_decode.py            # 15 rounds
    python3 bench/png_decode.py --rounds 5

The people photos of ../shared/images/people/ (768x1024 PNGs), or, without them, the
bundled sample photo re-saved as PNG. Each round decodes every photo with each decoder in
turn (the order rotates), pinned to one core with OpenCV single-threaded; it prints the
median CPU milliseconds per photo and the ratios, and checks that the three give the
same pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compose import pin_one_core  # noqa: E402

from fluxcompose.images import open_source  # noqa: E402

PEOPLE = ROOT.parent / "shared" / "images" / "people"


def _photos(tmp: Path) -> list[Path]:
    found = sorted(PEOPLE.glob("*.png"))
    if found:
        return found
    with Image.open(ROOT / "samples" / "model.jpg") as im:
        path = tmp / "model.png"
        im.convert("RGB").save(path)
    return [path]


def _decoders() -> dict[str, Callable[[bytes, str], np.ndarray]]:
    def spng(data: bytes, name: str) -> np.ndarray:
        pixels = open_source(name)._plain_png_pixels()  # the CRC walk, then libspng
        assert pixels is not None, f"{name} is not a plain PNG"
        return pixels

    def libpng(data: bytes, name: str) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)

    def pillow(data: bytes, name: str) -> np.ndarray:
        with Image.open(name) as im:
            return np.asarray(im.convert("RGB"))

    return {"libspng": spng, "libpng (OpenCV)": libpng, "Pillow": pillow}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    pinned = pin_one_core()
    with tempfile.TemporaryDirectory() as d:
        photos = _photos(Path(d))
        files = [(p.read_bytes(), str(p)) for p in photos]
        decoders = _decoders()
        names = list(decoders)
        for data, name in files:  # warm-up, and the same pixels from all three
            got = [decoders[n](data, name) for n in names]
            if not all(np.array_equal(got[0], g) for g in got[1:]):
                raise SystemExit(f"{name}: the decoders disagree")
        times: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names[r % 3 :] + names[: r % 3]:
                for data, name in files:
                    c0 = time.process_time()
                    decoders[n](data, name)
                    times[n].append(time.process_time() - c0)
    print(f"PNG decode, {len(files)} photos x {args.rounds} rounds on {pinned}; same pixels: yes")
    med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    for n in names:
        print(f"  {n:<16} {med[n]:6.2f} ms per photo (median CPU)")
    print(f"  libspng / libpng (OpenCV) = {med['libspng'] / med['libpng (OpenCV)']:.2f}")
    print(f"  libspng / Pillow          = {med['libspng'] / med['Pillow']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
