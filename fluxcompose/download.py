"""Fetch a result image at once and write it atomically.

Result links expire 10 minutes after they are made, so the pipeline downloads
as soon as a backend returns. Bytes stream to a temporary file in the output
folder, the extension comes from the file's magic bytes (never the URL), and
the file is renamed into place only when complete, so a crash never leaves a
half-written result under its final name. Results are paid for: the file is
fsynced before the rename.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ResultExpired, TaskFailed, TransientError
from .images import AtomicWriter
from .net import SharedClient, parse_retry_after, reason, status_error

if TYPE_CHECKING:
    import httpx2

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


_CLIENT = SharedClient(timeout=60.0, follow_redirects=True)
"""The process's pooled download client. It follows redirects (http and https only;
no key travels with a download)."""


def write_result_bytes(data: bytes, outdir: Path, stem: str) -> Path:
    """Write image ``data`` (e.g. a decoded ``b64_json`` reply) to ``outdir/<stem>.<ext>`` atomically."""
    ext = sniff_extension(data)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with AtomicWriter(outdir / stem) as writer:
        writer.write(data)
        return writer.commit(outdir / f"{stem}.{ext}")


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
    5xx and network failures TransientError (other statuses as
    :func:`fluxcompose.net.status_error` says); content that is not an image
    TaskFailed. The output folder never keeps a partial file.
    """
    import httpx2

    shown = redact_url(url)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise TaskFailed(f"the result link {shown!r} is not an http(s) URL")
    outdir = Path(outdir)
    where = f"downloading {shown}"
    try:
        with _CLIENT.get().stream(
            "GET",
            url,
            timeout=timeout,
            headers={"Accept": "image/*", "Accept-Encoding": "identity"},
        ) as response:
            status = response.status_code
            if status in _EXPIRED_STATUSES:
                raise ResultExpired(
                    f"result link expired (HTTP {status} for {shown}): results must be "
                    "downloaded at once (links last 10 minutes)"
                )
            if status >= 300:
                raise status_error(
                    status,
                    where=where,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            return _stream_to_file(response, outdir, stem, shown, max_bytes)
    except httpx2.TimeoutException:
        raise TransientError(
            f"could not download {shown}: no answer within {timeout:g} s"
        ) from None
    except httpx2.TransportError as exc:
        shown_reason = reason(exc).replace(url, shown)
        raise TransientError(f"could not download {shown}: {shown_reason}") from None


def _stream_to_file(
    response: httpx2.Response, outdir: Path, stem: str, shown: str, max_bytes: int
) -> Path:
    import httpx2

    length = response.headers.get("Content-Length")
    expected = int(length) if length is not None and length.isdigit() else None
    if expected is not None and expected > max_bytes:
        raise TaskFailed(
            f"the result at {shown} is {expected} bytes, over the {max_bytes}-byte limit"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    with AtomicWriter(outdir / stem) as writer:
        head = b""
        total = 0
        try:
            for chunk in response.iter_raw(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise TaskFailed(f"the result at {shown} is over the {max_bytes}-byte limit")
                if len(head) < 32:
                    head += chunk[: 32 - len(head)]
                writer.write(chunk)
        except httpx2.TransportError as exc:
            raise TransientError(
                f"download of {shown} was cut off after {total} bytes: {reason(exc)}"
            ) from None
        if expected is not None and total < expected:
            raise TransientError(
                f"download of {shown} was cut off after {total} of {expected} bytes"
            )
        ext = sniff_extension(head)
        return writer.commit(outdir / f"{stem}.{ext}")
