"""JPEG facts read here, independently of the package: what the tests hold canvases to."""

from __future__ import annotations

import io
import struct

from PIL import Image


def direct_jpeg(image: Image.Image, restart_blocks: int = 0) -> bytes:
    """libjpeg through Pillow on the whole image, with the contract's settings (quality 95,
    4:4:4) and a restart marker every ``restart_blocks`` blocks (none for 0)."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95, subsampling=0, restart_marker_blocks=restart_blocks)
    return buf.getvalue()


def restart_interval(data: bytes) -> int:
    """The restart interval (blocks) a JPEG's DRI marker declares; 0 without one."""
    pos = 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if data[pos + 1] == 0xDD:
            return int(struct.unpack_from(">H", data, pos + 4)[0])
        pos += 2 + length
    return 0
