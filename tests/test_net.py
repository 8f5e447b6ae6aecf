"""The one map from an HTTP status to an error, and Retry-After parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxcompose.errors import (
    AuthError,
    InsufficientCredits,
    RateLimited,
    RequestError,
    RetryableError,
    TransientError,
)
from fluxcompose.net import status_error


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthError),
        (403, AuthError),
        (402, InsufficientCredits),
        (429, RateLimited),
        (400, RequestError),
        (404, RequestError),
        (422, RequestError),
        (302, RequestError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
    ],
)
def test_status_map(status: int, kind: type[BaseException]) -> None:
    err = status_error(status, where="host", detail="why", retry_after=3.0)
    assert type(err) is kind
    assert str(status) in str(err) and str(err).startswith("host")


def test_auth_error_drops_the_server_text() -> None:
    err = status_error(401, where="h", detail="bad key sk-123", key_hint="X_KEY or --api-key")
    assert "sk-123" not in str(err) and "X_KEY" in str(err)


def test_rate_limited_carries_retry_after() -> None:
    err = status_error(429, where="h", retry_after=12.0)
    assert isinstance(err, RateLimited) and err.retry_after == 12.0


@given(st.integers(100, 599))
def test_only_429_and_5xx_are_retried(status: int) -> None:
    retryable = isinstance(status_error(status, where="h"), RetryableError)
    assert retryable == (status == 429 or not 300 <= status < 500)
