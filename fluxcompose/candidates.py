"""Best-of-N (DESIGN.md section 12): N generations of one prepared job, and the checks choose.

Candidate ``i`` (0-based) is the job's request with seed ``seed + i`` (random seeds when the
job has none; the journal records them, so a resume draws the same ones). Each candidate is
generated, saved and finished (compare, sheet, sidecar) in ``OUTDIR/candidates/<job>/`` as
``<job>.c<i+1>.<ext>``; the best by :func:`fluxcompose.scoring.score_checks` (ties: the lowest
index) becomes the job's ``<job>.<ext>`` and ``<job>.json``, whose sidecar lists every
candidate with its seed, score, passed and cost.

With a journal every candidate's state, task id and cost are committed before the next step
(``Journal.ensure_candidates``, ``update_candidate``, ``candidate_paid``): a resume skips done
candidates, finishes downloaded ones, polls submitted BFL tasks by their stored id and never
pays twice for one. ``stop_on_pass`` stops drawing once a candidate passes every check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .choice import Candidate, Choice, choice, choice_line, choose
from .errors import ErrorKind, GenerationError, PermanentError, error_kind
from .images import write_bytes_atomic
from .journal import JobState, Journal
from .prepare import PreparedJob
from .provenance import JobOutcome, billed_fields, cost_record, write_sidecar
from .run import finish_job, generate_with_retries, image_ok, save_result
from .scoring import UNMEASURED, Score, score_checks

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = [
    "CANDIDATES_DIR",
    "Candidate",
    "CandidateHooks",
    "Drawn",
    "candidate_dir",
    "candidate_job",
    "candidate_seeds",
    "Choice",
    "choice",
    "choice_line",
    "choose",
    "run_candidates",
]

CANDIDATES_DIR = "candidates"
SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class Drawn:
    """A candidate's paid-for output, ready to finish: the image file, the provider's task
    id, the stage timings in seconds (``generate_s``, ``download_s``; empty when an earlier
    run drew it) and the provider's billed fields (empty when it said none)."""

    output: Path
    task_id: str | None
    timings: dict[str, float] = field(default_factory=dict)
    billed: dict[str, Any] = field(default_factory=dict)


# (candidate job, its folder, what was drawn) -> the candidate's outcome
FinishFn = Callable[[PreparedJob, Path, Drawn], JobOutcome]


@dataclass
class CandidateHooks:
    """How a caller (the batch pipeline) takes part: budget, network slots, finishing, stop.

    ``reserve(price, force)`` holds ``price`` USD before a candidate goes on the network and
    returns False when it must not start (budget, stop); ``force`` is for work already paid.
    ``release(price)`` gives it back when the candidate did not get paid for;
    ``settle(price, record)`` runs ``record`` (the cost into the journal) and gives it back
    as one step, so that no reservation meanwhile counts the cost twice or not at all.
    ``network`` is entered around each generation (a semaphore). ``finish`` writes a
    candidate's files (default :func:`fluxcompose.run.finish_job` in this thread).
    """

    reserve: Callable[[float, bool], bool] = lambda price, force: True
    release: Callable[[float], None] = lambda price: None
    settle: Callable[[float, Callable[[], None]], None] = lambda price, record: record()
    network: contextlib.AbstractContextManager[Any] = field(default_factory=contextlib.nullcontext)
    finish: FinishFn | None = None
    stop: threading.Event | None = None
    on_retry: Callable[[int, BaseException, float], None] | None = None
    on_finished: Callable[[Candidate], None] | None = None


def candidate_seeds(base: int | None, n: int, rng: random.Random | None = None) -> list[int]:
    """``n`` seeds: ``base, base+1, ...`` (wrapping below 2**31), or ``n`` random ones when None."""
    if n < 1:
        raise ValueError("need at least one candidate")
    if base is None:
        r = rng or random.SystemRandom()
        return [r.randrange(SEED_MAX + 1) for _ in range(n)]
    return [(base + i) % (SEED_MAX + 1) for i in range(n)]


def candidate_dir(outdir: Path, job_id: str) -> Path:
    """``OUTDIR/candidates/<job>/``."""
    return Path(outdir) / CANDIDATES_DIR / job_id


def candidate_job(prepared: PreparedJob, index: int, seed: int) -> PreparedJob:
    """The prepared job of candidate ``index`` (0-based): id ``<job>.c<index+1>``, its seed."""
    request = dataclasses.replace(prepared.request, seed=seed)
    return dataclasses.replace(prepared, job_id=f"{prepared.job_id}.c{index + 1}", request=request)


class _Rec:
    """Journal writes for candidates; nothing when there is no journal (``fluxcompose run``)."""

    def __init__(self, journal: Journal | None, job_id: str) -> None:
        self.journal = journal
        self.job_id = job_id

    def update(self, idx: int, **fields: Any) -> None:
        if self.journal is not None:
            self.journal.update_candidate(self.job_id, idx, **fields)

    def paid(self, idx: int, output: Path, cost: float) -> None:
        if self.journal is not None:
            self.journal.candidate_paid(self.job_id, idx, output, cost)


def _load(
    journal: Journal | None, prepared: PreparedJob, n: int, rng: random.Random | None
) -> list[Candidate]:
    seeds = candidate_seeds(prepared.request.seed, n, rng)
    if journal is None:
        return [Candidate(i, s) for i, s in enumerate(seeds)]
    rows = journal.ensure_candidates(prepared.job_id, seeds)[:n]
    out: list[Candidate] = []
    for r in rows:
        c = Candidate(
            r.idx,
            r.seed,
            state=r.state.value,
            task_id=r.task_id,
            cost_usd=r.cost_usd,
            output_path=Path(r.output_path) if r.output_path else None,
            sidecar_path=Path(r.sidecar_path) if r.sidecar_path else None,
            passed=r.passed,
            error=r.error,
            error_kind=r.error_kind,
            generate_s=r.generate_s,
        )
        if c.state == JobState.DONE.value:
            if c.sidecar_path is not None and c.sidecar_path.is_file():
                side = json.loads(c.sidecar_path.read_text())
                c.metrics = side.get("compare")
                sheet = side.get("sheet")
                c.sheet_path = c.sidecar_path.parent / sheet if sheet else None
                c.score = _score(c.metrics)
            else:  # the files are gone: finish it again from its output, if that is there
                c.state = JobState.DOWNLOADED.value
        out.append(c)
    return out


def _score(metrics: dict[str, Any] | None) -> Score:
    if metrics is None or metrics.get("error"):
        return UNMEASURED
    return score_checks(metrics.get("checks") or {})


def run_candidates(
    prepared: PreparedJob,
    backend: Backend,
    outdir: Path,
    *,
    n: int,
    stop_on_pass: bool = False,
    compare: bool = True,
    max_attempts: int = 4,
    journal: Journal | None = None,
    retry_failed: bool = False,
    hooks: CandidateHooks | None = None,
    rng: random.Random | None = None,
) -> tuple[JobOutcome, list[Candidate]] | None:
    """Draw up to ``n`` candidates of ``prepared``, keep them all, and write the best as the job.

    Returns (the job's outcome, every candidate), or None when it stopped before finishing
    (``hooks.stop`` or the budget): what was committed stays in the journal for the next run.
    Raises the last :class:`GenerationError` when every candidate failed.
    """
    hooks = hooks or CandidateHooks()
    outdir = Path(outdir)
    cdir = candidate_dir(outdir, prepared.job_id)
    cands = _load(journal, prepared, n, rng)
    rec = _Rec(journal, prepared.job_id)
    price = float(prepared.price_usd)
    last_error: GenerationError | None = None
    for c in cands:
        if stop_on_pass and any(x.score is not None and x.score.all_passed for x in cands):
            break  # the rest are never drawn, never paid
        if c.state == JobState.DONE.value:
            continue
        cjob = candidate_job(prepared, c.index, c.seed)
        if c.state == JobState.FAILED.value:
            retry = retry_failed and c.error_kind != ErrorKind.MODERATED
            if not retry:
                continue
            if c.output_path is not None and image_ok(c.output_path):
                c.state = JobState.DOWNLOADED.value  # paid, failed only while finishing
        if c.state == JobState.DOWNLOADED.value and image_ok(c.output_path):
            assert c.output_path is not None
            drawn = Drawn(c.output_path, c.task_id)
        else:
            resume = c.task_id if backend.resumable and c.state == "submitted" else None
            got = _generate(cjob, c, backend, cdir, rec, hooks, price, resume, max_attempts)
            if isinstance(got, GenerationError):
                last_error = got
                stopped = hooks.stop is not None and hooks.stop.is_set()
                if stopped and not isinstance(got, PermanentError):
                    return None  # interrupted between attempts: the next run carries on
                continue
            if got is None:
                return None  # budget or stop: pending for the next run
            drawn = got
        _finish_one(cjob, c, cdir, drawn, rec, hooks, backend, compare)
        if hooks.on_finished is not None:
            hooks.on_finished(c)
    picked = choice(cands)
    if picked is None:
        if not all(c.state == JobState.FAILED.value for c in cands):
            return None  # not all drawn yet (a stop between candidates)
        if last_error is not None:
            raise last_error
        why = next((c.error for c in cands if c.error), "unknown error")
        raise GenerationError(
            f"all {n} candidates failed (the last: {why})", job_id=prepared.job_id
        )
    return _write_job(prepared, outdir, cands, picked), cands


def _generate(
    cjob: PreparedJob,
    c: Candidate,
    backend: Backend,
    cdir: Path,
    rec: _Rec,
    hooks: CandidateHooks,
    price: float,
    resume: str | None,
    max_attempts: int,
) -> Drawn | GenerationError | None:
    """One candidate's paid part; None when it must not start, the error when it failed.

    What it cost is the provider's word when the reply carried it (BFL credits), else
    the estimate (:func:`fluxcompose.run.cost_record`)."""
    if hooks.stop is not None and hooks.stop.is_set():
        return None
    if not hooks.reserve(price, resume is not None):
        return None
    released = False
    try:
        with hooks.network:

            def on_submitted(task_id: str) -> None:
                c.task_id, c.state = task_id, JobState.SUBMITTED.value
                rec.update(c.index, state=c.state, task_id=task_id)

            t0 = time.perf_counter()
            try:
                result = generate_with_retries(
                    backend,
                    cjob,
                    max_attempts=max_attempts,
                    on_submitted=on_submitted,
                    resume_task_id=resume,
                    stop=hooks.stop,
                    on_retry=hooks.on_retry,
                )
                t1 = time.perf_counter()
                output = save_result(cjob, result, cdir)
                t2 = time.perf_counter()
            except GenerationError as exc:
                if (
                    hooks.stop is not None
                    and hooks.stop.is_set()
                    and not isinstance(exc, PermanentError)
                ):
                    rec.update(c.index, error=str(exc)[:500], error_kind=error_kind(exc))
                    return exc
                c.state, c.error = JobState.FAILED.value, str(exc)[:500]
                c.error_kind = error_kind(exc)
                rec.update(c.index, state=c.state, error=c.error, error_kind=c.error_kind)
                return exc
        billed = billed_fields(result.extra)
        paid = float(cost_record(cjob, billed)["usd"])
        c.cost_usd += paid
        c.output_path, c.state = output, JobState.DOWNLOADED.value
        c.generate_s = t1 - t0
        c.task_id = result.task_id or c.task_id
        released = True  # by settle, even if the journal write fails
        hooks.settle(price, lambda: rec.paid(c.index, output, paid))
        rec.update(c.index, generate_s=c.generate_s, task_id=c.task_id)
        return Drawn(output, c.task_id, {"generate_s": t1 - t0, "download_s": t2 - t1}, billed)
    finally:
        if not released:
            hooks.release(price)


def _finish_one(
    cjob: PreparedJob,
    c: Candidate,
    cdir: Path,
    drawn: Drawn,
    rec: _Rec,
    hooks: CandidateHooks,
    backend: Backend,
    compare: bool,
) -> None:
    try:
        if hooks.finish is not None:
            outcome = hooks.finish(cjob, cdir, drawn)
        else:
            outcome = finish_job(
                cjob,
                drawn.output,
                cdir,
                backend_name=backend.name,
                compare=compare,
                timings=drawn.timings,
                task_id=drawn.task_id,
                billed=drawn.billed,
            )
    except Exception as exc:  # noqa: BLE001 - paid for but unusable: this candidate fails
        c.state, c.error = JobState.FAILED.value, f"{type(exc).__name__}: {exc}"[:500]
        c.error_kind = ErrorKind.OUTPUT
        rec.update(c.index, state=c.state, error=c.error, error_kind=c.error_kind)
        return
    c.metrics = outcome.metrics
    c.passed = outcome.checks_passed
    c.score = _score(outcome.metrics)
    c.sidecar_path, c.sheet_path = outcome.sidecar_path, outcome.sheet_path
    c.state = JobState.DONE.value
    rec.update(
        c.index,
        state=c.state,
        sidecar_path=str(c.sidecar_path),
        passed=c.passed,
        score=c.score.to_dict(),
    )


def _write_job(
    prepared: PreparedJob, outdir: Path, cands: list[Candidate], picked: Choice
) -> JobOutcome:
    """Copy the chosen candidate to ``<job>.<ext>`` (and its sheet), write the job's sidecar
    with the choice's grounds (``chosen_by``, ``chosen_reason``, ``flagged_for_review``)."""
    best = picked.candidate
    assert best.output_path is not None and best.sidecar_path is not None
    job_id = prepared.job_id
    ext = best.output_path.suffix
    output = write_bytes_atomic(outdir / f"{job_id}{ext}", best.output_path.read_bytes())
    sheet: Path | None = None
    if best.sheet_path is not None and best.sheet_path.is_file():
        sheet = write_bytes_atomic(
            outdir / f"{job_id}.sheet.png", best.sheet_path.read_bytes(), durable=False
        )
    side: dict[str, Any] = json.loads(best.sidecar_path.read_text())
    prefix = f"{job_id}.c{best.index + 1}."

    def copy_named(name: Any) -> Any:
        """Copy the candidate's ``<job>.cK.<rest>`` (canvas, reference) to ``<job>.<rest>``."""
        if not isinstance(name, str) or not name.startswith(prefix):
            return name
        src = best.sidecar_path.parent / name  # type: ignore[union-attr]
        if not src.is_file():
            return name
        dest = outdir / f"{job_id}.{name[len(prefix) :]}"
        return write_bytes_atomic(dest, src.read_bytes(), durable=False).name

    if isinstance(side.get("canvas"), dict):
        side["canvas"]["path"] = copy_named(side["canvas"].get("path"))
    for ref in side.get("references_sent") or []:
        if isinstance(ref, dict):
            ref["path"] = copy_named(ref.get("path"))
    total = round(sum(c.cost_usd for c in cands), 6)
    side["job_id"] = job_id
    side["output"] = {**(side.get("output") or {}), "path": output.name}
    side["sheet"] = sheet.name if sheet else None
    side["cost_usd"] = total
    side["chosen"] = best.index + 1
    side["chosen_by"] = picked.chosen_by
    side["chosen_reason"] = picked.reason
    side["flagged_for_review"] = picked.flagged
    side["candidates"] = [c.describe(outdir, c is best) for c in cands]
    side["stop_on_pass_saved"] = sum(1 for c in cands if c.state == JobState.PENDING.value)
    sidecar = write_sidecar(outdir, job_id, side)
    return JobOutcome(
        job_id=job_id,
        output_path=output,
        canvas_path=None,
        sidecar_path=sidecar,
        sheet_path=sheet,
        sidecar=side,
        metrics=best.metrics,
        checks_passed=best.passed,
        cost_usd=total,
    )
