"""A batch job with ``--candidates N``: :func:`fluxcompose.candidates.run_candidates` on the
pipeline's budget, network slots, worker processes and journal.

Each candidate reserves its own price before it goes on the network (so the budget is never
exceeded) and gives it back as its cost goes into the journal, in one step
(``Pipeline.settle``; ``Journal.candidate_paid`` adds the cost to the job's ``cost_usd``,
which ``spent_usd`` sums). The job row stays ``pending`` until every candidate is settled,
then becomes ``done`` with the chosen candidate's metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..candidates import (
    Candidate,
    CandidateHooks,
    Drawn,
    candidate_dir,
    choice_line,
    run_candidates,
)
from ..errors import GenerationError, error_kind
from ..journal import JobState
from ..prepare import PreparedJob
from ..provenance import JobOutcome
from ..report import make_thumbs
from .finish import FinishTask, finish_in_worker, one_line
from .pipeline import BatchJob, Pipeline, ReadyJob

__all__ = ["run_job_candidates"]


def run_job_candidates(pipe: Pipeline, job: BatchJob, ready: ReadyJob) -> None:
    """Draw, journal and finish one job's candidates, then mark the job done (or failed)."""
    prepared = ready.prepared
    job_id = prepared.job_id
    thumbs: dict[str, Any] = {}

    def reserve(price: float, force: bool) -> bool:
        return pipe.reserve(job, price, force=force)

    def release(price: float) -> None:
        pipe.release(job, price)

    def settle(price: float, record: Callable[[], None]) -> None:
        pipe.settle(job, price, record)

    def finish(cjob: PreparedJob, cdir: Path, drawn: Drawn) -> JobOutcome:
        task = FinishTask(
            cjob,
            drawn.output,
            cdir,
            pipe.backend.name,
            pipe.cfg.compare,
            drawn.task_id,
            dict(drawn.timings),
            billed=dict(drawn.billed),
        )
        done = finish_in_worker(task, workers=pipe.finish_workers)
        if done.outcome is None:
            raise RuntimeError(done.error or "could not finish")
        thumbs[cjob.job_id] = (done.thumbs or {}).get("output")
        return done.outcome

    hooks = CandidateHooks(
        reserve=reserve,
        release=release,
        settle=settle,
        network=_NetworkSlot(pipe, job_id),
        finish=finish,
        stop=pipe.stop,
    )
    try:
        got = run_candidates(
            prepared,
            pipe.backend,
            pipe.outdir,
            n=pipe.cfg.candidates,
            stop_on_pass=pipe.cfg.stop_on_pass,
            compare=pipe.cfg.compare,
            max_attempts=pipe.cfg.max_attempts,
            journal=pipe.journal,
            retry_failed=pipe.cfg.retry_failed,
            hooks=hooks,
        )
    except GenerationError as exc:
        message = f"line {job.item.row.line}: {one_line(exc)}"
        pipe.journal.mark_failed(job_id, message, kind=error_kind(exc))
        pipe.ledger.set_state(job_id, JobState.FAILED, finished=True)
        pipe.say(f"fluxcompose: job {job_id} failed: {message}")
        return
    if got is None:  # stopped (signal or budget): the rest is drawn by the next run
        prev = pipe.journal.get(job_id)
        pipe.ledger.set_state(job_id, prev.state if prev else JobState.PENDING)
        return
    outcome, cands = got
    pipe.journal.mark_done(
        job_id,
        output_path=outcome.output_path,
        cost_usd=0.0,  # every candidate's cost is already in the journal
        sidecar_path=outcome.sidecar_path,
        metrics=outcome.metrics,
        checks_passed=outcome.checks_passed,
        timings=_timings(cands),
        thumbs=_thumbs(pipe, prepared, outcome, cands, thumbs),
        chosen_by=outcome.sidecar.get("chosen_by"),
        flag_reason=outcome.sidecar.get("chosen_reason")
        if outcome.sidecar.get("flagged_for_review")
        else None,
    )
    pipe.ledger.set_state(job_id, JobState.DONE, finished=True)
    if outcome.sidecar.get("flagged_for_review"):
        pipe.say(f"fluxcompose: job {job_id}: {choice_line(outcome.sidecar)}")


class _NetworkSlot:
    """Entered around each candidate's generation: a network slot, counted in the progress."""

    def __init__(self, pipe: Pipeline, job_id: str) -> None:
        self.pipe, self.job_id, self.started = pipe, job_id, False

    def __enter__(self) -> None:
        self.pipe.network.acquire()
        self.pipe.ledger.network(+1, submitted=not self.started)  # the job counts once
        self.started = True
        self.pipe.ledger.set_state(self.job_id, JobState.SUBMITTED)

    def __exit__(self, *exc: object) -> None:
        self.pipe.ledger.network(-1)
        self.pipe.network.release()


def _timings(cands: list[Candidate]) -> dict[str, Any]:
    drawn = [c.generate_s for c in cands if c.generate_s is not None]
    return {"generate_s": round(sum(drawn), 4), "candidates_drawn": len(drawn)}


def _thumbs(
    pipe: Pipeline,
    prepared: PreparedJob,
    outcome: JobOutcome,
    cands: list[Candidate],
    cand_thumbs: dict[str, Any],
) -> dict[str, Any] | None:
    """The job's thumbnails plus a strip of its candidates (paths relative to OUTDIR)."""
    composite = prepared.composite
    try:
        thumbs = make_thumbs(
            pipe.outdir,
            prepared.job_id,
            canvas=composite.image if composite is not None else prepared.canvas_bytes,
            cells=[c.box for c in composite.cells] if composite is not None else [],
            cell_keys=composite.pixel_keys if composite is not None else (),
            output=outcome.output_path,
        )
    except Exception:  # noqa: BLE001 - the report is cosmetic
        thumbs = {"sources": [], "output": None}
    cdir = candidate_dir(pipe.outdir, prepared.job_id)
    chosen = outcome.sidecar.get("chosen")
    strip = []
    for c in cands:
        rel = cand_thumbs.get(f"{prepared.job_id}.c{c.index + 1}")
        strip.append(
            {
                "index": c.index + 1,
                "seed": c.seed,
                "state": c.state,
                "passed": c.passed,
                "chosen": c.index + 1 == chosen,
                "score": None if c.score is None else c.score.to_dict(),
                "cost_usd": c.cost_usd,
                "thumb": None if rel is None else (cdir / rel).relative_to(pipe.outdir).as_posix(),
                "output": _rel(c.output_path, pipe.outdir),
            }
        )
    thumbs["candidates"] = strip
    return thumbs


def _rel(path: Path | None, outdir: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(outdir.resolve()).as_posix()
    except ValueError:
        return str(path)
