"""HTTP for fluxcompose: one client library and one map from a status to an error.

Everything that talks HTTP itself (the bfl backend, result downloads, URL
sources) uses ``httpx2``, the client the ``openai`` SDK already brings in, so
there is one connection pool per user of it and one set of network errors.
The ``openai`` backend goes through the SDK but maps its statuses with
:func:`status_error` too.

``httpx2`` is imported on first use: ``fluxcompose --help`` should not pay for it.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from typing import TYPE_CHECKING

from .errors import (
    AuthError,
    GenerationError,
    InsufficientCredits,
    RateLimited,
    RequestError,
    TransientError,
)

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "USER_AGENT",
    "SharedClient",
    "make_client",
    "network_error",
    "parse_retry_after",
    "reason",
    "redact",
    "status_error",
]

USER_AGENT = "fluxcompose/0.1"


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


def status_error(
    status: int,
    *,
    where: str,
    detail: str = "",
    retry_after: float | None = None,
    key_hint: str = "",
) -> GenerationError:
    """The error for an HTTP error ``status`` (DESIGN.md section 5), the one place that decides.

    401/403 AuthError (the server's text is dropped: it may quote the key), 402
    InsufficientCredits, 429 RateLimited (``retry_after`` seconds), other 4xx
    RequestError, an unfollowed 3xx RequestError, 5xx and anything else
    TransientError. ``where`` starts the message (``"BFL submission"``,
    ``"api.example.com"``); ``detail`` is the server's reason, already redacted;
    ``key_hint`` names where the key comes from (``"BFL_API_KEY or --api-key"``).
    """
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        check = f"; check {key_hint}" if key_hint else ""
        return AuthError(f"{where}: the API key was rejected (HTTP {status}){check}")
    if status == 402:
        return InsufficientCredits(f"{where}: insufficient credits (HTTP 402){suffix}")
    if status == 429:
        return RateLimited(f"{where}: rate limited (HTTP 429){suffix}", retry_after=retry_after)
    if 400 <= status < 500:
        return RequestError(f"{where}: rejected (HTTP {status}){suffix}")
    if 300 <= status < 400:
        return RequestError(f"{where}: unexpected redirect (HTTP {status})")
    return TransientError(f"{where}: server error (HTTP {status}){suffix}")


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` (an API key) replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def reason(exc: BaseException) -> str:
    """A one-line reason for a network exception: its text, else its class name."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def network_error(exc: BaseException, *, where: str, host: str, timeout: float) -> TransientError:
    """TransientError for an ``httpx2`` transport failure: a timeout, a refused or dropped connection."""
    import httpx2

    if isinstance(exc, httpx2.TimeoutException):
        return TransientError(f"{where}: {host} did not answer within {timeout:g} s")
    return TransientError(f"{where}: could not reach {host}: {reason(exc)}")


def make_client(
    *, timeout: float, max_connections: int = 64, follow_redirects: bool = False
) -> httpx2.Client:
    """An ``httpx2.Client`` that pools connections: ``timeout`` seconds per network operation.

    Thread-safe; keep one per user (a backend instance, a download loop) so
    keep-alive connections are reused. Redirects are not followed unless asked:
    a redirect must not carry an API key to another host.
    """
    import httpx2

    return httpx2.Client(
        timeout=httpx2.Timeout(timeout),
        limits=httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=follow_redirects,
        headers={"User-Agent": USER_AGENT},
    )


class SharedClient:
    """One pooled client for a whole process (result downloads, URL sources), made on
    first use with :func:`make_client`'s keywords; a forked child makes its own
    instead of sharing the parent's sockets."""

    def __init__(self, **options: float | int | bool) -> None:
        self._options = options
        self._client: httpx2.Client | None = None
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def get(self) -> httpx2.Client:
        """The client, made now if this is the first use."""
        with self._lock:
            if self._client is None:
                self._client = make_client(**self._options)  # type: ignore[arg-type]
            return self._client

    def _forget(self) -> None:
        self._client = None
        self._lock = threading.Lock()
