"""Best-of-N's candidates and the choice among them (DESIGN.md section 12). Pure: no I/O.

:class:`Candidate` is one draw of a job; :func:`choice` picks the job's output among the
finished ones and says on what grounds (:class:`Choice`: ``checks``, ``margin`` or
``none``). It never chooses blind: when the checks cannot rank the candidates, the first
is kept and the job is flagged for review. The drawing itself is
:mod:`fluxcompose.candidates`, a layer above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .journal import JobState
from .provenance import public_task_id
from .scoring import UNMEASURED, Score

__all__ = ["Candidate", "Choice", "choice", "choice_line", "choose"]


@dataclass
class Candidate:
    """One candidate: its seed, state and, once finished, its files, metrics and score."""

    index: int  # 0-based
    seed: int
    state: str = JobState.PENDING.value
    task_id: str | None = None
    cost_usd: float = 0.0
    output_path: Path | None = None
    sidecar_path: Path | None = None
    sheet_path: Path | None = None
    metrics: dict[str, Any] | None = None
    passed: bool | None = None
    score: Score | None = None
    error: str | None = None
    error_kind: str | None = None
    generate_s: float | None = None

    def describe(self, outdir: Path, chosen: bool) -> dict[str, Any]:
        """The candidate as the job's sidecar lists it (paths relative to ``outdir``)."""

        def rel(p: Path | None) -> str | None:
            if p is None:
                return None
            try:
                return p.relative_to(outdir).as_posix()
            except ValueError:
                return str(p)

        return {
            "index": self.index + 1,
            "seed": self.seed,
            "state": self.state,
            "chosen": chosen,
            "passed": self.passed,
            "score": None if self.score is None else self.score.to_dict(),
            "cost_usd": self.cost_usd,
            "output": rel(self.output_path),
            "sidecar": rel(self.sidecar_path),
            "sheet": rel(self.sheet_path),
            "task_id": public_task_id(self.task_id),
            "error": self.error,
        }


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """The best finished candidate by score (ties: the lowest index); None when none finished."""
    best: Candidate | None = None
    for c in candidates:
        if c.state != JobState.DONE.value:
            continue
        s = c.score or UNMEASURED
        if best is None or s > (best.score or UNMEASURED):
            best = c
    return best


@dataclass(frozen=True)
class Choice:
    """Which candidate becomes the job, and on what grounds (DESIGN.md section 12).

    ``chosen_by``: ``"checks"`` (it passes the checks, or passes more of them than any
    other), ``"margin"`` (among candidates passing the same number of measured checks, the
    margins past the thresholds decided) or ``"none"`` (the checks cannot rank them: the
    first finished candidate is kept and the job is flagged for review). ``reason`` says why
    in words, for the sidecar and stderr.
    """

    candidate: Candidate
    chosen_by: str  # "checks" | "margin" | "none"
    reason: str

    @property
    def flagged(self) -> bool:
        """A blind choice: a person must look (the review page's flag)."""
        return self.chosen_by == "none"


def _unmeasured_everywhere(done: Sequence[Candidate]) -> tuple[list[str], str | None]:
    """The checks measured on none of ``done`` (sorted), and the first reason given."""
    names: set[str] | None = None
    why: str | None = None
    for c in done:
        checks = (c.metrics or {}).get("checks") or {}
        missing = {n for n, e in checks.items() if not isinstance(e, dict) or e.get("pass") is None}
        names = missing if names is None else names & missing
    for c in done:
        for n, e in ((c.metrics or {}).get("checks") or {}).items():
            if n in (names or set()) and isinstance(e, dict) and e.get("reason"):
                why = why or str(e["reason"])
    return sorted(names or ()), why


def choice(candidates: Sequence[Candidate]) -> Choice | None:
    """Choose among the finished candidates, never blindly; None when none finished.

    - None were measured (compare off or failed, no checks): ``none``, the first kept.
    - The best passes every check, or passes more checks than every other: ``checks``.
    - Otherwise the best ties with another on checks passed. When some check was measured on
      none of them (e.g. no subject was found), that check might have told them apart, so
      the margins of the others decide nothing: ``none``, the first kept. Else ``margin``.
    """
    done = [c for c in candidates if c.state == JobState.DONE.value]
    best = choose(done)
    if best is None:
        return None
    first = done[0]
    scores = [c.score or UNMEASURED for c in done]
    measured = [
        c for c in done if (c.metrics or {}).get("checks") and not (c.metrics or {}).get("error")
    ]
    if not measured:
        if any((c.metrics or {}).get("error") for c in done):
            why = "compare failed on every candidate"
        elif all(c.metrics is None for c in done):
            why = "no candidate was compared (--no-compare, or nothing to compare against)"
        else:
            why = "the recipe has no checks"
        return Choice(first, "none", f"{why}: the checks cannot rank them; kept the first")
    bscore = best.score or UNMEASURED
    n_checks = max(s.total for s in scores)
    rivals = [c for c, s in zip(done, scores, strict=True) if c is not best]
    tied = [c for c in rivals if (c.score or UNMEASURED).passed == bscore.passed]
    blind, blind_why = _unmeasured_everywhere(done)
    if bscore.all_passed:
        return Choice(
            best,
            "checks",
            f"passes all {bscore.total} checks"
            + (f"; the largest margin of the {len(tied) + 1} that do" if tied else ""),
        )
    if not tied:
        return Choice(
            best,
            "checks",
            f"passes {bscore.passed} of {n_checks} checks, more than any other candidate",
        )
    if blind:
        detail = f" ({blind_why})" if blind_why else ""
        return Choice(
            first,
            "none",
            f"{', '.join(blind)} not measured on any candidate{detail}: the checks cannot "
            f"rank them; kept the first",
        )
    return Choice(
        best,
        "margin",
        f"{len(tied) + 1} candidates pass the same {bscore.passed} of {n_checks} checks; "
        f"chosen by the largest margin past the thresholds",
    )


def choice_line(sidecar: dict[str, Any]) -> str:
    """The one line ``run`` prints about a best-of-N job's choice (from its sidecar)."""
    cands = sidecar.get("candidates") or []
    drawn = sum(1 for x in cands if x.get("state") != "pending")
    asked = f"{drawn} drawn ({len(cands)} asked)"
    reason = sidecar.get("chosen_reason") or ""
    if sidecar.get("chosen_by") == "none":
        return (
            f"candidates: no choice made among {asked}: {reason}"
            f" (candidate {sidecar.get('chosen')}); flagged for review"
        )
    return f"candidates: chose {sidecar.get('chosen')} of {asked} by {sidecar.get('chosen_by')}: {reason}"
