"""Loading, normalising and saving images: the I/O edge of the composition engine.

Every image that enters fluxcompose comes through :func:`open_source` (bytes and
header only: cheap) and :meth:`SourceImage.decode` (pixels, shrunk on load for
JPEGs, EXIF-oriented, flattened to 8-bit RGB). Limits are enforced before any
pixel is decoded, so a decompression bomb costs a header read.

Over 500 lines because it is the whole I/O edge for pixels: reading (paths, URLs, limits),
decoding (EXIF, modes, DCT shrink-on-load, the PNG fast path, the decoded-cell cache) and
writing (atomic files, canvas encoding); each part is used by the others.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import urllib.parse
import warnings
import zlib
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING

import cv2
import numpy as np
import pyspng
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from .canvas_jpeg import StripPlan, clear_strip_cache, encode_jpeg
from .errors import ConfigError, ImageError, InputError
from .lru import LruCache
from .net import SharedClient

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TIMEOUT",
    "AtomicWriter",
    "CANVAS_FORMATS",
    "DEFAULT_CANVAS_FORMAT",
    "EncodedCanvas",
    "LoadedImage",
    "SourceImage",
    "atomic_path",
    "canvas_extension",
    "clear_cell_cache",
    "encode_canvas",
    "temp_file_beside",
    "encode_image",
    "load_image",
    "open_source",
    "parse_color",
    "read_source_bytes",
    "resize_image",
    "save_image_atomic",
    "to_rgb",
    "write_bytes_atomic",
]

DEFAULT_MAX_PIXELS = 100_000_000  # decoded pixels per image; also the decompression-bomb guard
DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # URL download cap
DEFAULT_TIMEOUT = 30.0  # seconds, URL downloads
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING = {5, 6, 7, 8}  # orientations that swap width and height


def parse_color(value: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """A colour name or ``#rrggbb`` as an (r, g, b) tuple of 0..255."""
    if isinstance(value, tuple):
        return value
    try:
        rgb = ImageColor.getrgb(value.strip())
    except (ValueError, AttributeError):
        raise InputError(
            f"invalid colour {value!r}: use a name like white or a hex like #ffffff"
        ) from None
    return rgb[0], rgb[1], rgb[2]


# --------------------------------------------------------------------------- reading


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and "://" in source[:16]


MAX_REDIRECTS = 10  # as many as urllib followed
_URL_CLIENT = SharedClient(timeout=DEFAULT_TIMEOUT, max_connections=16)
"""The process's pooled client for URL sources (read_url follows redirects itself)."""


def read_url(
    url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """Download ``url`` (http or https only) into memory, at most ``max_bytes``.

    ``timeout`` (seconds) bounds each network operation and also the whole
    download, so a server that trickles bytes cannot hold us forever. Redirects
    are followed (at most MAX_REDIRECTS) only to http(s) URLs.
    """
    import httpx2

    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageError(f"{url}: only http and https URLs are accepted")
    deadline = time.monotonic() + timeout
    client = _URL_CLIENT.get()
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream(
                "GET", current, timeout=timeout, headers={"Accept-Encoding": "identity"}
            ) as resp:
                if resp.is_redirect:
                    target = urllib.parse.urljoin(current, resp.headers.get("Location", ""))
                    if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
                        raise ImageError(
                            f"{url}: refusing redirect (HTTP {resp.status_code}) "
                            f"to a non-http(s) URL: {target}"
                        )
                    current = target
                    continue
                if resp.status_code >= 400:
                    raise ImageError(f"{url}: HTTP {resp.status_code} {_flat(resp.reason_phrase)}")
                return _read_body(url, resp, timeout, max_bytes, deadline)
        raise ImageError(f"{url}: cannot download (more than {MAX_REDIRECTS} redirects)")
    except ImageError:
        raise
    except httpx2.TimeoutException:
        raise ImageError(f"{url}: cannot download (timed out after {timeout:g} s)") from None
    except (httpx2.HTTPError, httpx2.StreamError, OSError) as exc:
        raise ImageError(f"{url}: cannot download ({_one_line(exc)})") from None


def _read_body(
    url: str, resp: httpx2.Response, timeout: float, max_bytes: int, deadline: float
) -> bytes:
    """The body of ``resp`` as it arrives, within ``max_bytes`` and the ``deadline``."""
    import httpx2

    length = resp.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    if expected is not None and expected > max_bytes:
        raise ImageError(f"{url}: {expected} bytes is over the {max_bytes}-byte download cap")
    buf = io.BytesIO()
    try:
        for chunk in resp.iter_raw(1 << 16):
            buf.write(chunk)
            if buf.tell() > max_bytes:
                raise ImageError(f"{url}: larger than the {max_bytes}-byte download cap")
            if time.monotonic() > deadline:
                raise ImageError(f"{url}: cannot download (timed out after {timeout:g} s)")
    except httpx2.TimeoutException:
        raise
    except httpx2.HTTPError:
        if expected is None:
            raise
    if expected is not None and buf.tell() < expected:
        # A dropped connection: never keep half a file.
        raise ImageError(
            f"{url}: cannot download (connection closed after {buf.tell()} of {expected} bytes)"
        )
    return buf.getvalue()


def _flat(text: str) -> str:
    # Server-supplied text may hold line breaks; errors are one line.
    return " ".join(text.split())


def _one_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {_flat(str(exc))}".rstrip(": ")


def read_source_bytes(
    source: str | Path, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """The raw bytes of a local file or an http(s) URL."""
    if is_url(source):
        return read_url(str(source), timeout=timeout, max_bytes=max_bytes)
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{source}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{source}: empty file (0 bytes)")
    return data


# --------------------------------------------------------------------------- decoding


@dataclass
class SourceImage:
    """A source whose bytes are read and whose header is parsed, not yet decoded.

    ``size`` is the upright (width, height) after EXIF orientation, in pixels.
    """

    source: str
    data: bytes = field(repr=False)
    format: str
    stored_size: tuple[int, int]
    orientation: int
    n_frames: int
    mode: str = ""  # Pillow's mode from the header ("RGB" for a colour JPEG)

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.stored_size
        return (h, w) if self.orientation in _TRANSPOSING else (w, h)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def decode(
        self,
        target_size: tuple[int, int] | None = None,
        *,
        background: tuple[int, int, int] = (255, 255, 255),
    ) -> Image.Image:
        """Decode to 8-bit RGB, upright, alpha flattened onto ``background``.

        With ``target_size`` (upright width, height), a JPEG is decoded at the
        smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides >= the target,
        and the result is resized to exactly ``target_size``.
        """
        pixels = self._plain_png_pixels()
        if pixels is not None:
            rgb = Image.fromarray(pixels)
            if target_size is not None and rgb.size != tuple(target_size):
                rgb = resize_image(rgb, target_size)
            return rgb
        return self._decode_with_pillow(target_size, background)

    def _decode_with_pillow(
        self, target_size: tuple[int, int] | None, background: tuple[int, int, int]
    ) -> Image.Image:
        """:meth:`decode` by Pillow: any format, mode and orientation, and the one place
        a file that cannot be decoded is refused, with Pillow's reason."""
        with _open(self.data, self.source) as opened:
            im = opened
            if target_size is not None and im.format in ("JPEG", "MPO"):
                tw, th = target_size
                if self.orientation in _TRANSPOSING:
                    tw, th = th, tw
                im.draft(im.mode if im.mode in ("L", "CMYK") else "RGB", (max(1, tw), max(1, th)))
            try:
                im.load()
                if self.orientation != 1:
                    im = ImageOps.exif_transpose(im)
                rgb = to_rgb(im, background)
                if rgb is opened:  # detach from the file before it is closed
                    rgb = rgb.copy()
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise ImageError(f"{self.source}: cannot decode image ({_reason(exc)})") from None
        if target_size is not None and rgb.size != tuple(target_size):
            rgb = resize_image(rgb, target_size)
        return rgb

    def decode_into(
        self, out: np.ndarray, *, background: tuple[int, int, int] = (255, 255, 255)
    ) -> None:
        """Decode into ``out``, a uint8 (h, w, 3) RGB array or a view of one (a canvas cell),
        resized to its (w, h) the way :meth:`decode` would.

        A plain PNG is decoded by libspng (:meth:`_plain_png_pixels`), and a plain colour
        JPEG (upright, one frame, complete) by OpenCV at the same DCT scale Pillow's draft
        picks (the same pixels); either is resized straight into ``out``: no intermediate
        Pillow image, no copies. Anything else goes through Pillow, as :meth:`decode`.
        """
        h, w = int(out.shape[0]), int(out.shape[1])
        key = self.cell_key((w, h), background)
        if _CELLS.get_into(key, out):
            return  # the same bytes decoded to the same cell before: the same pixels
        self._decode_into(out, background=background)
        _CELLS.put(key, out)

    def cell_key(
        self, size: tuple[int, int], background: tuple[int, int, int]
    ) -> tuple[str, int, int, tuple[int, int, int]]:
        """What :meth:`decode_into` a cell of ``size`` (w, h) on ``background`` gives is a
        function of: the file's bytes (by digest), the size and the background. Equal keys,
        equal pixels; the decoded-cell cache and the report's thumbnails rely on it."""
        r, g, b = background
        return (self.sha256, int(size[0]), int(size[1]), (r, g, b))

    def _decode_into(self, out: np.ndarray, *, background: tuple[int, int, int]) -> None:
        h, w = int(out.shape[0]), int(out.shape[1])
        pixels = self._plain_png_pixels()
        if pixels is not None:
            resize_into(pixels, out)
            return
        if self._plain_jpeg():
            scale = dct_scale(self.stored_size, (w, h))
            buf = np.frombuffer(self.data, np.uint8)
            arr = cv2.imdecode(buf, _CV2_READ[scale] | cv2.IMREAD_IGNORE_ORIENTATION)
            if arr is not None and arr.ndim == 3 and arr.shape[2] == 3:
                resize_into(arr, out)
                return
        # Not plain, or refused by the fast decoders: Pillow decides (no second attempt).
        out[...] = np.asarray(self._decode_with_pillow((w, h), background))

    def _plain_png_pixels(self) -> np.ndarray | None:
        """A plain PNG's pixels (see :meth:`_plain_png`) decoded by libspng, or None for
        anything else, or anything libspng refuses: Pillow's path then decides, and says why.

        libspng gives the same 8-bit samples as libpng and Pillow in about two thirds of
        libpng's time (through OpenCV). It is run with chunk checksums off, so every chunk's
        CRC is checked here first (about 0.2 ms for 1 MP): a damaged file takes Pillow's
        path, which refuses it, as libpng did; it is never decoded into wrong pixels.
        """
        if not (self._plain_png() and _png_chunks_intact(self.data)):
            return None
        try:
            pixels: np.ndarray = pyspng.load(self.data, "RGB")
        except (RuntimeError, ValueError):
            return None
        w, h = self.stored_size
        if pixels.shape != (h, w, 3) or pixels.dtype != np.uint8:
            return None
        return pixels

    def _plain_png(self) -> bool:
        # 8-bit RGB (colour type 2), no transparency, upright, one frame, complete (IEND
        # last): anything else (palette, grey, 16-bit, alpha, APNG) takes Pillow's path.
        data = self.data
        return (
            self.format == "PNG"
            and self.mode == "RGB"
            and self.orientation == 1
            and self.n_frames == 1
            and len(data) > 45
            and data[24:26] == b"\x08\x02"
            and data[-8:-4] == b"IEND"
            and not _png_chunk_before_data(data, b"tRNS")
        )

    def _plain_jpeg(self) -> bool:
        # The scan must end with EOI: OpenCV would fill a truncated file with grey
        # where Pillow refuses it, so anything doubtful takes Pillow's path.
        return (
            self.format == "JPEG"
            and self.mode == "RGB"
            and self.orientation == 1
            and self.n_frames == 1
            and self.data.rfind(b"\xff\xd9", max(0, len(self.data) - 32)) != -1
        )


class _CellCache:
    """Decoded cells by :meth:`SourceImage.cell_key`, least recently used first out, at
    most ``max_bytes`` of pixels: a batch that puts one pattern on many photos decodes and
    resizes the pattern once. The same bytes give the same pixels, so nothing is looked
    at less closely; thread-safe. Cells copy in and out: a caller's array is its own."""

    def __init__(self, max_bytes: int) -> None:
        self._lru: LruCache[np.ndarray] = LruCache(max_bytes, lambda a: int(a.nbytes), largest=4)

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def max_bytes(self) -> int:
        return self._lru.max_cost

    @property
    def nbytes(self) -> int:
        return self._lru.total_cost

    def get_into(self, key: Hashable, out: np.ndarray) -> bool:
        got = self._lru.get(key)
        if got is None:
            return False
        out[...] = got
        return True

    def put(self, key: Hashable, pixels: np.ndarray) -> None:
        if self._lru.keeps(int(pixels.nbytes)):
            self._lru.put(key, np.array(pixels, copy=True))

    def clear(self) -> None:
        self._lru.clear()


_CELLS = _CellCache(64 * 1024 * 1024)


def clear_cell_cache() -> None:
    """Forget every decoded cell, and every cell's encoded JPEG strip (benchmarks measuring
    a cold compose; tests)."""
    _CELLS.clear()
    clear_strip_cache()


def dct_scale(stored: tuple[int, int], target: tuple[int, int]) -> int:
    """The JPEG DCT reduction (8, 4, 2 or 1) that Pillow's ``draft`` picks for ``target``
    (w, h): the largest that keeps both sides at or above the target."""
    scale = min(stored[0] // max(1, target[0]), stored[1] // max(1, target[1]))
    for s in (8, 4, 2):
        if scale >= s:
            return s
    return 1


_RGB = cv2.IMREAD_COLOR_RGB
_CV2_READ = {
    1: _RGB,
    2: (cv2.IMREAD_REDUCED_COLOR_2 & ~cv2.IMREAD_COLOR) | _RGB,
    4: (cv2.IMREAD_REDUCED_COLOR_4 & ~cv2.IMREAD_COLOR) | _RGB,
    8: (cv2.IMREAD_REDUCED_COLOR_8 & ~cv2.IMREAD_COLOR) | _RGB,
}


@contextmanager
def _open(data: bytes, source: str) -> Iterator[Image.Image]:
    try:
        with warnings.catch_warnings():
            # Our own cap (DEFAULT_MAX_PIXELS) is checked from the header; Pillow's
            # warning below its hard limit would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageError(
            f"{source}: refused, the image claims more than the "
            f"{DEFAULT_MAX_PIXELS // 1_000_000} MP limit (decompression bomb guard)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not a readable image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{source}: not a readable image ({_reason(exc)})") from None
    try:
        yield im
    finally:
        im.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def open_source(
    source: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SourceImage:
    """Read a source's bytes and header; check the pixel cap before any decoding."""
    name = str(source)
    data = read_source_bytes(source, timeout=timeout, max_bytes=max_bytes)
    with _open(data, name) as im:
        w, h = im.size
        if w < 1 or h < 1:
            raise ImageError(f"{name}: image has no pixels ({w}x{h})")
        if w * h > max_pixels:
            raise ImageError(
                f"{name}: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit "
                "(decompression bomb guard)"
            )
        try:
            if (
                im.format == "PNG"
                and not {"exif", "Raw profile type exif"} & set(im.info)
                and not _png_has_exif(data)
            ):
                orientation = 1  # Pillow's getexif would inflate the whole PNG to look
            else:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except Exception:  # a corrupt EXIF block must not make an image unusable
            orientation = 1
        if orientation not in range(1, 9):
            orientation = 1
        fmt = im.format or "unknown"
        frames = int(getattr(im, "n_frames", 1) or 1)
        mode = im.mode
    return SourceImage(name, data, fmt, (w, h), orientation, frames, mode)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Each chunk of a PNG as (type, start of its data, end of its data), from its header
    alone (8-byte signature, then length, type, data, CRC), in file order; the last may
    claim more data than the file holds."""
    pos, end = 8, len(data)
    while pos + 8 <= end:
        start = pos + 8
        stop = start + int.from_bytes(data[pos : pos + 4], "big")
        yield data[pos + 4 : start], start, stop
        pos = stop + 4


def _png_chunk_before_data(data: bytes, kind: bytes) -> bool:
    """Whether a PNG has a ``kind`` chunk before its first IDAT (chunk headers only)."""
    for got, _, _ in _png_chunks(data):
        if got == kind:
            return True
        if got in (b"IDAT", b"IEND"):
            return False
    return False


def _png_chunks_intact(data: bytes) -> bool:
    """Whether every chunk of a PNG is whole and its CRC matches, up to and including IEND
    (which must end the file): the check libpng makes on the chunks it reads."""
    view = memoryview(data)
    for kind, start, stop in _png_chunks(data):
        if stop + 4 > len(data):
            return False
        if zlib.crc32(view[start - 4 : stop]) != int.from_bytes(view[stop : stop + 4], "big"):
            return False
        if kind == b"IEND":
            return stop + 4 == len(data)
    return False


def _png_has_exif(data: bytes) -> bool:
    """Whether a PNG may hold EXIF that Pillow finds only after inflating it: an ``eXIf``
    chunk, or a text chunk (ImageMagick's "Raw profile type exif") after the image data."""
    seen_data = False
    for kind, _, _ in _png_chunks(data):
        if kind == b"eXIf" or (seen_data and kind in (b"tEXt", b"zTXt", b"iTXt")):
            return True
        if kind == b"IEND":
            return False
        seen_data = seen_data or kind == b"IDAT"
    return False


@dataclass
class LoadedImage:
    """A decoded source: 8-bit RGB pixels, upright, with where they came from."""

    image: Image.Image
    source: str
    sha256: str
    nbytes: int
    original_size: tuple[int, int]  # as stored in the file
    orientation: int  # the EXIF orientation that was applied (1 = none)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def load_image(
    source: str | Path,
    *,
    background: tuple[int, int, int] | str = (255, 255, 255),
    draft_size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadedImage:
    """Read and decode one image (path or http(s) URL) to upright 8-bit RGB."""
    src = open_source(source, max_pixels=max_pixels, timeout=timeout, max_bytes=max_bytes)
    image = src.decode(draft_size, background=parse_color(background))
    return LoadedImage(image, src.source, src.sha256, src.nbytes, src.stored_size, src.orientation)


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; alpha (or palette transparency) flattened onto ``background``."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        if mode == "F" and peak <= 1.0:
            arr = arr * 255.0
        elif peak > 255 or mode.startswith("I;16"):
            arr = arr / 257.0  # 16-bit range onto 8 bits
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")


CUBIC_BELOW = 2.0
"""Shrinks by less than this factor use bicubic interpolation, larger ones area averaging."""


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize RGB ``image`` to ``size`` (w, h).

    Shrinking by a factor of 2 or more: area averaging. Shrinking by less (the
    remainder after a DCT-scaled JPEG decode, which already low-passed the
    pixels): bicubic, about 3x faster than OpenCV's fractional area path and
    closer to a full decode + Lanczos (about 46 dB against 40 dB on the
    benchmark's photos). Enlarging: Lanczos.
    """
    w, h = size
    if (w, h) == image.size:
        return image
    if w <= image.width and h <= image.height:
        out = cv2.resize(
            np.asarray(image), (w, h), interpolation=_shrink_interpolation(image.size, (w, h))
        )
        return Image.fromarray(out)
    return image.resize((w, h), Image.Resampling.LANCZOS)


def _shrink_interpolation(src: tuple[int, int], dst: tuple[int, int]) -> int:
    factor = max(src[0] / dst[0], src[1] / dst[1])
    return cv2.INTER_CUBIC if factor < CUBIC_BELOW else cv2.INTER_AREA


def resize_into(arr: np.ndarray, out: np.ndarray) -> None:
    """Resize the uint8 RGB array ``arr`` into ``out`` (an array or a view), as :func:`resize_image` would."""
    h, w = int(out.shape[0]), int(out.shape[1])
    sh, sw = int(arr.shape[0]), int(arr.shape[1])
    if (sh, sw) == (h, w):
        out[...] = arr
    elif w <= sw and h <= sh:
        done = cv2.resize(
            arr, (w, h), dst=out, interpolation=_shrink_interpolation((sw, sh), (w, h))
        )
        if not np.shares_memory(done, out):  # OpenCV made its own array instead
            out[...] = done
    else:
        out[...] = np.asarray(resize_image(Image.fromarray(arr), (w, h)))


# --------------------------------------------------------------------------- writing


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import: os.umask is process-wide, not thread-safe


def temp_file_beside(target: str | Path) -> tuple[IO[bytes], Path]:
    """An open temporary file in ``target``'s folder, with ordinary permissions.

    mkstemp creates files readable by the owner only; results are meant to be
    shared like any file the user writes, so the mode follows the umask.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{target}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.fchmod(fd, 0o666 & ~_UMASK)
    return os.fdopen(fd, "wb"), Path(tmp)


class AtomicWriter:
    """A temporary file beside ``target`` that is renamed into place when complete.

    The one atomic write of the package: a reader (or a crash) never sees half a
    file under its final name. ``durable`` fsyncs the data before the rename;
    use it for what cannot be made again (results, sidecars), not for derived
    files (canvases, sheets, thumbnails, pages). As a context manager it commits
    on success (unless :meth:`commit` already ran) and removes the temp file on error.
    """

    def __init__(self, target: str | Path, *, durable: bool = True) -> None:
        self.target = Path(target)
        self.durable = durable
        self.handle, self.tmp = temp_file_beside(self.target)
        self.done = False

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def commit(self, final: str | Path | None = None) -> Path:
        """Rename the file to ``final`` (default: the target) and return that path."""
        dest = self.target if final is None else Path(final)
        try:
            self.handle.flush()
            if self.durable:
                os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.tmp, dest)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return dest

    def abort(self) -> None:
        """Close and remove the temporary file."""
        self.handle.close()
        self.tmp.unlink(missing_ok=True)
        self.done = True

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that wants a file name (Pillow);
    on success it replaces ``path`` (fsynced first when ``durable``), on error it is removed."""
    writer = AtomicWriter(path, durable=False)
    writer.handle.close()
    try:
        yield writer.tmp
        if durable:
            fd = os.open(writer.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(writer.tmp, path)
    except BaseException:
        writer.tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename).

    ``durable`` fsyncs before the rename (see :class:`AtomicWriter`).
    """
    with AtomicWriter(path, durable=durable) as writer:
        writer.write(data)
        return writer.commit()


def image_format_for(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext in (".jpg", ".jpeg"):
        return "JPEG"
    if ext == ".png":
        return "PNG"
    if ext == ".webp":
        return "WEBP"
    raise InputError(f"{path}: unsupported output extension {ext or '(none)'}; use .png or .jpg")


def encode_image(image: Image.Image, fmt: str = "PNG", *, quality: int = 95) -> bytes:
    """Encode ``image`` as PNG or JPEG bytes.

    PNG uses zlib level 1: canvases are sent once and thrown away, so encoding
    speed matters more than a few hundred kilobytes. JPEG keeps full chroma
    (4:4:4) at ``quality`` so the model sees no extra artefacts.
    """
    buf = io.BytesIO()
    fmt = fmt.upper()
    if fmt in ("JPEG", "JPG"):
        image.save(buf, "JPEG", quality=quality, subsampling=0, optimize=False)
    elif fmt == "PNG":
        image.save(buf, "PNG", compress_level=1)
    elif fmt == "WEBP":
        image.save(buf, "WEBP", lossless=True)
    else:
        raise InputError(f"unsupported image format {fmt}")
    return buf.getvalue()


CANVAS_FORMATS: tuple[str, ...] = ("jpeg", "png")
DEFAULT_CANVAS_FORMAT = "jpeg"
CANVAS_JPEG_QUALITY = 95
_CANVAS_TYPES = {"jpeg": ("image/jpeg", "jpg"), "png": ("image/png", "png")}


@dataclass(frozen=True)
class EncodedCanvas:
    """A canvas as it is sent: the bytes, their MIME type and the file extension to save them under."""

    data: bytes = field(repr=False)
    mime: str
    ext: str

    @property
    def nbytes(self) -> int:
        return len(self.data)


def encode_canvas(
    image: Image.Image, fmt: str = DEFAULT_CANVAS_FORMAT, *, strips: StripPlan | None = None
) -> EncodedCanvas:
    """Encode a canvas for a request: ``jpeg`` (quality 95, 4:4:4 chroma: about 6 ms and a
    third of the bytes of a 1 MP PNG) or ``png`` (lossless, zlib level 1).

    ``strips`` (``Composite.jpeg_strips``) lets a JPEG canvas reuse the encoding of a cell
    seen on an earlier canvas: the same pixels, with restart markers (:mod:`canvas_jpeg`).
    The bytes returned are the bytes sent and the bytes saved as ``<job>.canvas.<ext>``.
    """
    key = fmt.strip().lower() if isinstance(fmt, str) else fmt
    key = "jpeg" if key == "jpg" else key
    if key not in _CANVAS_TYPES:
        raise ConfigError(f"canvas format must be one of {', '.join(CANVAS_FORMATS)}, got {fmt!r}")
    mime, ext = _CANVAS_TYPES[key]
    if key == "jpeg" and strips is not None and image.mode == "RGB":
        data = encode_jpeg(image, strips, quality=CANVAS_JPEG_QUALITY)
    else:
        data = encode_image(image, key.upper(), quality=CANVAS_JPEG_QUALITY)
    return EncodedCanvas(data, mime, ext)


def canvas_extension(mime: str) -> str:
    """The file extension for a canvas of MIME type ``mime`` (``jpg`` or ``png``)."""
    for known, ext in _CANVAS_TYPES.values():
        if known == mime:
            return ext
    raise InputError(f"unsupported canvas type {mime!r}")


def save_image_atomic(
    image: Image.Image, path: str | Path, *, quality: int = 95, durable: bool = True
) -> Path:
    """Save ``image`` to ``path`` (format by extension) atomically; ``durable`` as in
    :func:`write_bytes_atomic`."""
    data = encode_image(image, image_format_for(path), quality=quality)
    return write_bytes_atomic(path, data, durable=durable)
