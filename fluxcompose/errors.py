"""One exception tree for the whole package.

::

    FluxComposeError
    ├── InputError                 bad usage or bad input: exit 2, never retried
    │   ├── RatioError             a ratio that is malformed or outside 3:7..7:3
    │   ├── ImageError             an image that cannot be read, is too large, or a URL that fails
    │   ├── RecipeError            unknown recipe, malformed file, unknown key or placeholder
    │   ├── ConfigError            missing key, unknown backend or model, bad option value
    │   └── PairsError             a pairs file that cannot be read at all
    ├── GenerationError            the generation failed: exit 1
    │   ├── RetryableError         safe to try again
    │   │   ├── RateLimited        HTTP 429; carries ``retry_after`` in seconds
    │   │   └── TransientError     5xx, timeouts, dropped connections
    │   └── PermanentError         trying again would fail the same way (or pay twice)
    │       ├── AuthError          401 / 403: the key was rejected
    │       ├── Moderated          the provider refused the prompt or the image
    │       ├── RequestError       any other 4xx (but 429)
    │       │   └── InsufficientCredits  402
    │       ├── TaskFailed         the provider reported an error for the task
    │       └── ResultExpired      the result link is gone (403/404/410)
    └── ChecksFailed               a recipe's checks did not pass: exit 1

``batch`` decides about retries with one ``isinstance(exc, RetryableError)``.
Every error may carry the ``job_id`` it belongs to, and every class names its
:class:`ErrorKind`: the text the batch journal stores for a failure.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "AuthError",
    "ChecksFailed",
    "ConfigError",
    "ErrorKind",
    "FluxComposeError",
    "GenerationError",
    "ImageError",
    "InputError",
    "InsufficientCredits",
    "Moderated",
    "PairsError",
    "PermanentError",
    "RateLimited",
    "RatioError",
    "RecipeError",
    "RequestError",
    "ResultExpired",
    "RetryableError",
    "TaskFailed",
    "TransientError",
    "error_kind",
    "exit_code_for",
]


class ErrorKind(StrEnum):
    """Why a job failed, as the journal's ``error_kind`` column spells it."""

    MODERATED = "moderated"
    AUTH = "auth"
    CREDITS = "credits"
    EXPIRED = "expired"
    TASK = "task"
    REQUEST = "request"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    INPUT = "input"
    PERMANENT = "permanent"
    GENERATION = "generation"
    OUTPUT = "output"  # paid for, but the result could not be finished (set by the batch)
    INTERNAL = "internal"  # anything not raised on purpose


class FluxComposeError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1
    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id

    def __str__(self) -> str:
        if self.job_id:
            return f"[{self.job_id}] {self.message}"
        return self.message


class InputError(FluxComposeError):
    """Bad usage or bad input (exit code 2)."""

    exit_code = 2
    kind = ErrorKind.INPUT


class RatioError(InputError, ValueError):
    """A ratio that is malformed (not ``W:H``) or outside 3:7..7:3. Also a ValueError, so
    click's parameter types can report it as a bad value."""


class ImageError(InputError):
    """An image that cannot be read, is larger than the decompression limit, or a URL that
    cannot be fetched."""


class RecipeError(InputError):
    """An unknown recipe, a malformed TOML file, an unknown key or an unfilled placeholder."""


class ConfigError(InputError):
    """A missing API key, an unknown backend or model, or an option the API would refuse;
    raised before anything is sent."""


class PairsError(InputError):
    """A pairs file that cannot be read at all (one bad row is reported on its row instead)."""


class GenerationError(FluxComposeError):
    """The generation failed (exit code 1)."""

    exit_code = 1
    kind = ErrorKind.GENERATION


class RetryableError(GenerationError):
    """Safe to try again: the batch retries exactly the instances of this class."""


class RateLimited(RetryableError):
    """HTTP 429: ``retry_after`` is the seconds the provider asked to wait (None if unsaid)."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self, message: str, *, retry_after: float | None = None, job_id: str | None = None
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.retry_after = retry_after


class TransientError(RetryableError):
    """HTTP 5xx, a timeout or a dropped connection: retried with backoff and jitter."""

    kind = ErrorKind.TRANSIENT


class PermanentError(GenerationError):
    """Trying again would fail the same way, or pay twice: never retried."""

    kind = ErrorKind.PERMANENT


class AuthError(PermanentError):
    """HTTP 401 or 403: the key was rejected."""

    kind = ErrorKind.AUTH


class Moderated(PermanentError):
    """The provider refused the prompt or an image (its moderation)."""

    kind = ErrorKind.MODERATED


class RequestError(PermanentError):
    """Any other HTTP 4xx but 429: the request itself is wrong."""

    kind = ErrorKind.REQUEST


class InsufficientCredits(RequestError):
    """HTTP 402: the account has no credits left."""

    kind = ErrorKind.CREDITS


class TaskFailed(PermanentError):
    """The provider accepted the task and then reported an error for it."""

    kind = ErrorKind.TASK


class ResultExpired(PermanentError):
    """The result link is gone (HTTP 403, 404 or 410) before it was downloaded."""

    kind = ErrorKind.EXPIRED


class ChecksFailed(FluxComposeError):
    """A recipe's checks did not pass under ``--strict`` (exit code 1); the output is kept."""

    exit_code = 1


def error_kind(exc: BaseException) -> ErrorKind:
    """The journal's ``error_kind`` for an exception: its class's kind, else ``internal``."""
    return exc.kind if isinstance(exc, FluxComposeError) else ErrorKind.INTERNAL


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception (2 for input errors, else 1)."""
    if isinstance(exc, FluxComposeError):
        return exc.exit_code
    return 1
