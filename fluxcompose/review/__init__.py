"""Review (DESIGN.md section 13): people judge the outputs, and the checks are measured
against them. :mod:`.model` is the pure part (reasons, verdicts, agreement, export rows),
:mod:`.store` reads and writes an OUTDIR, :mod:`.server` is the web page."""

from __future__ import annotations

from .model import (
    CHECKS_VERDICTS,
    EXPORT_COLUMNS,
    REASON_NAMES,
    REASONS,
    Judged,
    SetVerdict,
    Verdict,
    agreement,
    checks_verdict,
    export_row,
    parse_reasons,
    parse_set,
)
from .store import REVIEWS_NAME, JobEntry, ReviewStore, contained

__all__ = [
    "CHECKS_VERDICTS",
    "EXPORT_COLUMNS",
    "REASONS",
    "REASON_NAMES",
    "REVIEWS_NAME",
    "JobEntry",
    "Judged",
    "ReviewStore",
    "SetVerdict",
    "Verdict",
    "agreement",
    "checks_verdict",
    "contained",
    "export_row",
    "parse_reasons",
    "parse_set",
]
