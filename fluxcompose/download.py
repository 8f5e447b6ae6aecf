"""Fetch a result image at once and write it atomically.

Result links expire 10 minutes after they are made, so the pipeline downloads
as soon as a backend returns. Bytes stream to a temporary file in the output
folder, the extension comes from the file's magic bytes (never the URL), and
the file is renamed into place only when complete, so a crash never leaves a
half-written result under its final name.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from .errors import RateLimited, ResultExpired, TaskFailed, TransientError
from .images import temp_file_beside

__all__ = [
    "download_result",
    "parse_retry_after",
    "redact_url",
    "sniff_extension",
    "write_result_bytes",
]

_CHUNK = 64 * 1024
_EXPIRED_STATUSES = frozenset({403, 404, 410})


def sniff_extension(data: bytes) -> str:
    """The file extension (``png``, ``jpg``, ``webp``, ``gif``, ``bmp``, ``tiff``, ``avif``,
    ``heic``) from the first bytes of an image; TaskFailed when they are not an image's."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "heic"
    head = data[:16]
    raise TaskFailed(f"the result is not an image (it starts with {head!r})")


def redact_url(url: str) -> str:
    """``url`` without its query string and fragment (signed links carry tokens there)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Returns None when the header is missing or unreadable, and never a negative
    number. ``now`` is the current Unix time (for tests).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN check
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - older Pythons returned None
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _temp_in(outdir: Path, stem: str) -> tuple[BinaryIO, Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    return temp_file_beside(outdir / stem)  # type: ignore[return-value]


def _finish(handle: BinaryIO, tmp: Path, outdir: Path, stem: str, ext: str) -> Path:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    final = outdir / f"{stem}.{ext}"
    os.replace(tmp, final)
    return final


def write_result_bytes(data: bytes, outdir: Path, stem: str) -> Path:
    """Write image ``data`` (e.g. a decoded ``b64_json`` reply) to ``outdir/<stem>.<ext>`` atomically."""
    ext = sniff_extension(data)
    handle, tmp = _temp_in(Path(outdir), stem)
    try:
        handle.write(data)
        return _finish(handle, tmp, Path(outdir), stem, ext)
    except BaseException:
        handle.close()
        tmp.unlink(missing_ok=True)
        raise


def download_result(
    url: str,
    outdir: Path,
    stem: str,
    *,
    timeout: float = 60.0,
    max_bytes: int = 200 * 2**20,
) -> Path:
    """Download the result at ``url`` (http or https) to ``outdir/<stem>.<ext>`` and return that path.

    ``timeout`` is in seconds per network operation; more than ``max_bytes``
    bytes is refused. A 403, 404 or 410 raises ResultExpired; 429 RateLimited;
    other HTTP and network failures TransientError; content that is not an
    image TaskFailed. The output folder never keeps a partial file.
    """
    shown = redact_url(url)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise TaskFailed(f"the result link {shown!r} is not an http(s) URL")
    outdir = Path(outdir)
    req = urllib.request.Request(url, headers={"Accept": "image/*", "User-Agent": "fluxcompose"})
    try:
        response = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - scheme checked above
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in _EXPIRED_STATUSES:
            raise ResultExpired(
                f"result link expired (HTTP {exc.code} for {shown}): results must be downloaded "
                "at once (links last 10 minutes)"
            ) from exc
        if exc.code == 429:
            raise RateLimited(
                f"HTTP 429 downloading {shown}",
                retry_after=parse_retry_after(exc.headers.get("Retry-After")),
            ) from exc
        raise TransientError(f"HTTP {exc.code} downloading {shown}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"could not download {shown}: {_reason(exc)}") from exc

    with response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise TaskFailed(
                f"the result at {shown} is {int(length)} bytes, over the {max_bytes}-byte limit"
            )
        handle, tmp = _temp_in(outdir, stem)
        try:
            head = b""
            total = 0
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise TransientError(
                        f"download of {shown} was cut off: {_reason(exc)}"
                    ) from exc
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise TaskFailed(f"the result at {shown} is over the {max_bytes}-byte limit")
                if len(head) < 32:
                    head += chunk[: 32 - len(head)]
                handle.write(chunk)
            if length is not None and length.isdigit() and total < int(length):
                raise TransientError(
                    f"download of {shown} was cut off after {total} of {length} bytes"
                )
            ext = sniff_extension(head)
            return _finish(handle, tmp, outdir, stem, ext)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
