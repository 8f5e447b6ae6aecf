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
    pass


class ImageError(InputError):
    pass


class RecipeError(InputError):
    pass


class ConfigError(InputError):
    pass


class PairsError(InputError):
    pass


class GenerationError(FluxComposeError):
    """The generation failed (exit code 1)."""

    exit_code = 1
    kind = ErrorKind.GENERATION


class RetryableError(GenerationError):
    pass


class RateLimited(RetryableError):
    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self, message: str, *, retry_after: float | None = None, job_id: str | None = None
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.retry_after = retry_after


class TransientError(RetryableError):
    kind = ErrorKind.TRANSIENT


class PermanentError(GenerationError):
    kind = ErrorKind.PERMANENT


class AuthError(PermanentError):
    kind = ErrorKind.AUTH


class Moderated(PermanentError):
    kind = ErrorKind.MODERATED


class RequestError(PermanentError):
    kind = ErrorKind.REQUEST


class InsufficientCredits(RequestError):
    kind = ErrorKind.CREDITS


class TaskFailed(PermanentError):
    kind = ErrorKind.TASK


class ResultExpired(PermanentError):
    kind = ErrorKind.EXPIRED


class ChecksFailed(FluxComposeError):
    exit_code = 1


def error_kind(exc: BaseException) -> ErrorKind:
    """The journal's ``error_kind`` for an exception: its class's kind, else ``internal``."""
    return exc.kind if isinstance(exc, FluxComposeError) else ErrorKind.INTERNAL


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception (2 for input errors, else 1)."""
    if isinstance(exc, FluxComposeError):
        return exc.exit_code
    return 1
