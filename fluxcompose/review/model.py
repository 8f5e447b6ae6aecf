"""What review means, without I/O (DESIGN.md section 13): reasons, verdicts, agreement, export.

Vocabulary:

- a person's *verdict* on a job is ``approve`` or ``reject`` (with reasons from :data:`REASONS`);
- the *checks' verdict* is ``passed``, ``failed`` or ``not_measured`` (:func:`checks_verdict`);
- *agreement* crosses the two over the reviewed jobs (:func:`agreement`): the false-pass rate
  is the share of checks-passed jobs a person rejected, the false-fail rate the share of
  checks-failed jobs a person approved, each with a 95 % Wilson interval.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..journal import REVIEW_VERDICTS, ReviewRow
from ..scoring import wilson_interval

__all__ = [
    "CHECKS_VERDICTS",
    "EXPORT_COLUMNS",
    "REASONS",
    "REASON_NAMES",
    "Judged",
    "SetVerdict",
    "Verdict",
    "agreement",
    "checks_verdict",
    "export_row",
    "parse_reasons",
    "parse_set",
]

REASONS: tuple[tuple[str, str], ...] = (
    ("size", "print wrong size"),
    ("placement", "print misplaced"),
    ("distorted", "print distorted or cut"),
    ("colours", "print colours wrong"),
    ("garment", "garment changed"),
    ("person", "person or face changed"),
    ("background", "background changed"),
    ("artefacts", "artefacts"),
    ("other", "other"),
)
"""The rejection reasons, in their fixed order (key ``1`` is the first): (wire name, label)."""
REASON_NAMES: tuple[str, ...] = tuple(name for name, _ in REASONS)

CHECKS_VERDICTS: tuple[str, ...] = ("passed", "failed", "not_measured")

EXPORT_COLUMNS: tuple[str, ...] = (
    "job_id",
    "verdict",
    "reasons",
    "note",
    "reviewer",
    "reviewed_at",
    "candidate",
    "checks_passed",
    "output",
)


def checks_verdict(checks: Mapping[str, Any] | None, passed: bool | None = None) -> str:
    """The checks' verdict on one output: ``passed``, ``failed`` or ``not_measured``.

    ``checks`` is compare's ``{name: {"pass": True|False|None, ...}}``. Any check that was
    measured and failed makes ``failed``; otherwise any check not measured (``pass`` None),
    or no checks at all, makes ``not_measured``: a check that could not be measured is never
    counted as passed. ``passed`` (the journal's flag) is used only when ``checks`` is None:
    False then means ``failed``, and True or None mean ``not_measured`` unless True with no
    checks to look at, which is taken as ``passed``.
    """
    if not checks:
        if checks is None and passed is True:
            return "passed"
        if checks is None and passed is False:
            return "failed"
        return "not_measured"
    values = [c.get("pass") if isinstance(c, Mapping) else None for c in checks.values()]
    if any(v is False for v in values):
        return "failed"
    if any(v is not True for v in values):
        return "not_measured"
    return "passed"


def parse_reasons(text: str | Sequence[str]) -> tuple[str, ...]:
    """Reasons from ``"size,placement"`` (or a list), in :data:`REASONS` order, no repeats.

    Raises InputError naming an unknown reason.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    names = {s.strip() for s in items if s.strip()}
    unknown = sorted(names - set(REASON_NAMES))
    if unknown:
        raise InputError(f"unknown reason {unknown[0]!r}; reasons are: {', '.join(REASON_NAMES)}")
    return tuple(n for n in REASON_NAMES if n in names)


@dataclass(frozen=True)
class Verdict:
    """A person's verdict to record on a job: ``approve`` or ``reject``, with reasons (names
    from :data:`REASONS`; an approval keeps none), a note, and who gave it (None: the
    store's reviewer)."""

    verdict: str
    reasons: tuple[str, ...] = ()
    note: str | None = None
    reviewer: str | None = None


@dataclass(frozen=True)
class SetVerdict(Verdict):
    """One ``--set JOB=approve|reject[:REASON,...]``: a verdict and the JOB it is on."""

    job: str = field(kw_only=True)  # required: after the inherited fields with defaults


def parse_set(text: str) -> SetVerdict:
    """Parse ``JOB=approve`` or ``JOB=reject:size,placement`` (InputError when malformed)."""
    job, sep, rest = text.rpartition("=")
    if not sep or not job:
        raise InputError(f"--set {text!r}: expected JOB=approve|reject[:REASON,...]")
    verdict, _, reasons = rest.partition(":")
    verdict = verdict.strip().lower()
    if verdict not in REVIEW_VERDICTS:
        raise InputError(f"--set {text!r}: the verdict must be approve or reject")
    parsed = parse_reasons(reasons)
    if parsed and verdict == "approve":
        raise InputError(f"--set {text!r}: reasons go with reject")
    return SetVerdict(verdict, parsed, job=job.strip())


@dataclass(frozen=True)
class Judged:
    """One reviewed job for :func:`agreement`: the person's ``verdict`` (approve/reject),
    the checks' verdict and each check's pass (True, False, or None: not measured)."""

    verdict: str
    checks_verdict: str
    checks: Mapping[str, bool | None] = field(default_factory=dict)


def _rate(k: int, n: int) -> tuple[float | None, list[float]]:
    lo, hi = wilson_interval(k, n)
    return (None if n == 0 else round(k / n, 6)), [round(lo, 6), round(hi, 6)]


def agreement(judged: Iterable[Judged]) -> dict[str, Any]:
    """The checks against people, over reviewed jobs (DESIGN.md section 13's JSON shape).

    ``false_pass_rate`` = rejected / (approved + rejected) among checks-passed jobs;
    ``false_fail_rate`` = approved / (approved + rejected) among checks-failed jobs; each
    None when no such job was reviewed, with its 95 % Wilson interval ([0, 1] then).
    ``per_check`` counts, for each check, its pass or fail against approve or reject (a
    check not measured on a job is left out for that job).
    """
    table = {v: {"approved": 0, "rejected": 0} for v in CHECKS_VERDICTS}
    per_check: dict[str, dict[str, int]] = {}
    reviewed = 0
    for j in judged:
        if j.verdict not in REVIEW_VERDICTS:
            continue
        reviewed += 1
        person = "approved" if j.verdict == "approve" else "rejected"
        table[j.checks_verdict][person] += 1
        for name, ok in j.checks.items():
            if ok is None:
                continue
            cell = per_check.setdefault(
                name,
                {"pass_approved": 0, "pass_rejected": 0, "fail_approved": 0, "fail_rejected": 0},
            )
            cell[
                f"{'pass' if ok else 'fail'}_{'approved' if person == 'approved' else 'rejected'}"
            ] += 1
    p = table["passed"]
    f = table["failed"]
    fp_rate, fp_ci = _rate(p["rejected"], p["approved"] + p["rejected"])
    ff_rate, ff_ci = _rate(f["approved"], f["approved"] + f["rejected"])
    return {
        "reviewed": reviewed,
        "table": table,
        "false_pass_rate": fp_rate,
        "false_pass_ci": fp_ci,
        "false_fail_rate": ff_rate,
        "false_fail_ci": ff_ci,
        "per_check": dict(sorted(per_check.items())),
    }


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")


def export_row(
    job_id: str, review: ReviewRow, *, checks: str, output: str | None
) -> dict[str, Any]:
    """One export row (:data:`EXPORT_COLUMNS`) for the job ``job_id`` (its key) and its
    current ``review``: ``checks_passed`` is True, False or None (not measured) from the
    checks' verdict ``checks``; ``reasons`` joined with ``;``; ``reviewed_at`` ISO 8601
    in UTC."""
    return {
        "job_id": job_id,
        "verdict": review.verdict,
        "reasons": ";".join(review.reasons),
        "note": review.note,
        "reviewer": review.reviewer,
        "reviewed_at": _iso(review.reviewed_at),
        "candidate": review.candidate,
        "checks_passed": {"passed": True, "failed": False}.get(checks),
        "output": output,
    }
