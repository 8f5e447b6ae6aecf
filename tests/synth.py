"""Synthetic test images shared by the test modules."""

from __future__ import annotations

import numpy as np
from PIL import Image


def photo_like(w: int, h: int, seed: int = 0, *, tint: bool = False) -> Image.Image:
    """A synthetic photograph: 1/f^1.2 amplitude spectrum (natural-image statistics), mild lens blur.

    Shrinking real photos is what the 35 dB target is about; white noise would
    put most of its energy above any target's Nyquist limit and say nothing.
    ``tint`` adds a gradient in one channel chosen by the seed, so that no two
    sources look alike even at a glance.
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(h)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(w)[None, :].astype(np.float32)
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1
    amp = f**-1.2 * np.exp(-((2 * np.pi * f * 0.6) ** 2) / 2)
    chans = []
    for _ in range(3):
        g = np.fft.irfft2(
            np.fft.rfft2(rng.standard_normal((h, w), dtype=np.float32)) * amp, s=(h, w)
        )
        chans.append((g - g.mean()) / g.std())
    arr = np.stack(chans, -1) * 45 + 128
    if tint:
        arr[..., seed % 3] += np.linspace(-60, 60, w)[None, :]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
