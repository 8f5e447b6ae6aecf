"""Loading, normalising and saving images: the I/O edge of the composition engine.

Every image that enters fluxcompose comes through :func:`open_source` (bytes and
header only: cheap) and :meth:`SourceImage.decode` (pixels, shrunk on load for
JPEGs, EXIF-oriented, flattened to 8-bit RGB). Limits are enforced before any
pixel is decoded, so a decompression bomb costs a header read.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from .errors import ImageError, InputError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TIMEOUT",
    "LoadedImage",
    "SourceImage",
    "atomic_path",
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
USER_AGENT = "fluxcompose/0.1"


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


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but only to http(s)."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise ImageError(f"refusing redirect to a non-http(s) URL: {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HTTPOnlyRedirects)


def read_url(
    url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """Download ``url`` (http or https only) into memory, at most ``max_bytes``."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageError(f"{url}: only http and https URLs are accepted")
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    # ``timeout`` bounds each socket operation; the deadline bounds the whole
    # download, so a server that trickles bytes cannot hold us forever.
    deadline = time.monotonic() + timeout
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ImageError(
                    f"{url}: {int(length)} bytes is over the {max_bytes}-byte download cap"
                )
            # read1 returns what one receive gives, so the deadline is checked often.
            read = getattr(resp, "read1", resp.read)
            buf = io.BytesIO()
            while True:
                chunk = read(1 << 16)
                if not chunk:
                    break
                buf.write(chunk)
                if buf.tell() > max_bytes:
                    raise ImageError(f"{url}: larger than the {max_bytes}-byte download cap")
                if time.monotonic() > deadline:
                    raise ImageError(f"{url}: cannot download (timed out after {timeout:g} s)")
            if length and length.isdigit() and buf.tell() < int(length):
                # read1 reports a dropped connection as an early end: never keep half a file.
                raise ImageError(
                    f"{url}: cannot download (connection closed after {buf.tell()} "
                    f"of {int(length)} bytes)"
                )
            return buf.getvalue()
    except ImageError:
        raise
    except http.client.HTTPException as exc:  # malformed replies, broken chunked bodies
        raise ImageError(f"{url}: cannot download ({_one_line(exc)})") from None
    except urllib.error.HTTPError as exc:
        raise ImageError(f"{url}: HTTP {exc.code} {_flat(str(exc.reason))}") from None
    except urllib.error.URLError as exc:
        raise ImageError(f"{url}: cannot download ({_flat(str(exc.reason))})") from None
    except (TimeoutError, OSError) as exc:
        raise ImageError(f"{url}: cannot download ({_one_line(exc)})") from None


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

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.stored_size
        return (h, w) if self.orientation in _TRANSPOSING else (w, h)

    @property
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
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except Exception:  # a corrupt EXIF block must not make an image unusable
            orientation = 1
        if orientation not in range(1, 9):
            orientation = 1
        fmt = im.format or "unknown"
        frames = int(getattr(im, "n_frames", 1) or 1)
    return SourceImage(name, data, fmt, (w, h), orientation, frames)


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


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize RGB ``image`` to ``size`` (w, h): area averaging when shrinking, Lanczos when enlarging."""
    w, h = size
    if (w, h) == image.size:
        return image
    if w <= image.width and h <= image.height:
        arr = np.asarray(image)
        out = cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA)
        return Image.fromarray(out)
    return image.resize((w, h), Image.Resampling.LANCZOS)


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


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    handle, tmp_path = temp_file_beside(path)
    handle.close()
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        _write_all(fh, data)
    return Path(path)


def _write_all(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


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


def save_image_atomic(image: Image.Image, path: str | Path, *, quality: int = 95) -> Path:
    """Save ``image`` to ``path`` (format by extension) atomically."""
    data = encode_image(image, image_format_for(path), quality=quality)
    return write_bytes_atomic(path, data)
