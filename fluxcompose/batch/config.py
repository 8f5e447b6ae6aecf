"""What a batch run is asked to do: one object instead of a dozen pass-through keywords."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

from ..errors import InputError
from ..recipes import Recipe
from ..request import ComposeOptions, RequestOptions

__all__ = ["MAX_CANDIDATES", "BatchConfig", "BatchOptions"]

MAX_CANDIDATES = 32


@dataclass(frozen=True)
class BatchConfig:
    """The batch's options: a PAIRS cell (seed, aspect_ratio, prompt, var.*, subject_box)
    overrides ``request_options``, ``prompt``, ``variables`` and ``subject_box`` for its row.

    ``concurrency`` (>= 1) is the jobs on the network at once, capped by the backend;
    ``budget_usd`` (>= 0, USD) bounds the journal's total over every run;
    ``max_attempts`` (>= 1) counts attempts per job for retryable errors.
    """

    recipe: Recipe | None = None
    request_options: RequestOptions = field(default_factory=RequestOptions)
    compose_options: ComposeOptions = field(default_factory=ComposeOptions)
    prompt: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 4
    budget_usd: float | None = None
    max_attempts: int = 4
    retry_failed: bool = False
    compare: bool = True
    report: bool = True
    subject_box: tuple[float, float, float, float] | None = None  # the chest box, normalised
    candidates: int = 1  # best-of-N per job (DESIGN.md section 12), 1..MAX_CANDIDATES
    stop_on_pass: bool = False  # stop drawing a job's candidates once one passes every check

    def check(self) -> None:
        """Raise InputError (exit 2) for a number out of range."""
        if self.concurrency < 1:
            raise InputError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise InputError(f"--max-attempts must be at least 1, got {self.max_attempts}")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise InputError(
                f"--candidates must be from 1 to {MAX_CANDIDATES}, got {self.candidates}"
            )
        budget = self.budget_usd
        if budget is not None and (budget < 0 or not math.isfinite(budget)):
            raise InputError(f"--budget must be a non-negative amount in USD, got {budget}")


class BatchOptions(TypedDict, total=False):
    """:class:`BatchConfig`'s fields as keywords (``run_batch(..., concurrency=8)``)."""

    request_options: RequestOptions
    compose_options: ComposeOptions
    prompt: str | None
    variables: Mapping[str, str]
    concurrency: int
    budget_usd: float | None
    max_attempts: int
    retry_failed: bool
    compare: bool
    report: bool
    subject_box: tuple[float, float, float, float] | None
    candidates: int
    stop_on_pass: bool
