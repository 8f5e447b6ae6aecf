"""``--candidates N`` and ``--stop-on-pass`` (DESIGN.md section 12), shared by run, batch and ab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..batch.config import MAX_CANDIDATES

__all__ = ["candidate_options"]


def candidate_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``candidates: int`` (1..MAX_CANDIDATES) and ``stop_on_pass: bool`` to a command."""
    fn = click.option(
        "--stop-on-pass",
        is_flag=True,
        help="Stop drawing a job's candidates once one passes every check (the rest are not paid).",
    )(fn)
    fn = click.option(
        "--candidates",
        type=click.IntRange(1, MAX_CANDIDATES),
        default=1,
        show_default=True,
        metavar="N",
        help="Generate N candidates per job (seeds seed, seed+1, ...); the checks pick the best."
        " All are kept in OUTDIR/candidates/<job>/; the budget counts each.",
    )(fn)
    return fn
