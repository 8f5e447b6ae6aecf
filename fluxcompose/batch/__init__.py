"""Many jobs: ``fluxcompose batch``. Concurrent, resumable, and never paying twice.

The batch is the single-job pipeline of :mod:`fluxcompose.run` (``prepare_job`` ->
``generate_with_retries`` -> ``save_result`` -> ``finish_job``), one job per worker
thread (:mod:`.pipeline`), with every state change committed to the journal before
the next step. The modules: :mod:`.config` (what a run is asked to do), :mod:`.plan`
(which rows need work, the row key, ``decide``), :mod:`.pipeline` (the threads and
the budget), :mod:`.finish` (the finish step in worker processes), :mod:`.progress`
(the ledger and the bar) and :mod:`.lock` (one batch per OUTDIR).

Money rules:

- a job whose journal state is ``done`` is skipped, whatever else changed;
- a BFL job in ``submitted`` with a task id is polled by that id, never resubmitted;
- ``--budget`` is checked before each job starts, against the journal's total (every
  run) plus what the jobs in flight will cost; the first job that would not fit stops
  all further submissions;
- failed jobs are retried only with ``retry_failed``, moderated ones never. Rows that
  failed on bad input cost nothing and are always tried again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict, Unpack

from ..errors import ErrorKind, InputError, error_kind
from ..journal import JobState, Journal
from ..pairs import Pairs, read_pairs
from ..recipes import Recipe
from ..report import ReportWriter, count_verdicts
from ..request import resolve_model
from ..run import warm_up
from .candidates_hook import run_job_candidates
from .config import BatchConfig, BatchOptions
from .lock import locked_outdir
from .pipeline import Pipeline
from .plan import context_key, plan, precheck
from .progress import Ledger, ProgressReporter, ProgressSnapshot, StderrProgress

if TYPE_CHECKING:
    from ..backends.base import Backend

__all__ = [
    "BatchConfig",
    "BatchOptions",
    "BatchSummary",
    "ErrorKind",
    "ProgressReporter",
    "ProgressSnapshot",
    "StderrProgress",
    "error_kind",
    "run_batch",
]


class BatchError(TypedDict):
    line: int | None
    job_id: str
    kind: str | None
    error: str | None


class BatchSummary(TypedDict):
    """What ``run_batch`` returns (``--json`` prints it). See DESIGN.md section 7."""

    jobs: int  # distinct jobs in the PAIRS file (bad rows count as failed jobs)
    done: int  # done in the journal, including earlier runs
    failed: int
    skipped: int  # already done when this run started
    spent_usd: float  # the journal's total over every run
    wall_s: float  # this run
    outputs: list[str]  # result files of the done jobs, in PAIRS order
    # The done jobs' checks, three apart (DESIGN.md section 7): not measured is neither.
    checks_passed: int
    checks_failed: int
    checks_not_measured: int
    pending: NotRequired[int]  # neither done nor failed (budget stop, interrupt)
    submitted: NotRequired[int]  # jobs this run started on the network
    budget_stopped: NotRequired[bool]
    interrupted: NotRequired[bool]
    concurrency: NotRequired[int]
    report: NotRequired[str]
    journal: NotRequired[str]
    errors: NotRequired[list[BatchError]]  # one per failed job


def run_batch(
    pairs_path: str | Path | Pairs,
    recipe: Recipe | str | Path | None,
    outdir: str | Path,
    *,
    backend: Backend,
    config: BatchConfig | None = None,
    progress: ProgressReporter | None = None,
    stop_event: threading.Event | None = None,
    **options: Unpack[BatchOptions],
) -> BatchSummary:
    """Run every job of a PAIRS file into ``outdir``; safe to run again to resume.

    ``recipe`` is a :class:`~fluxcompose.recipes.Recipe` or a name/path for
    ``load_recipe`` (it replaces ``config.recipe``). ``options`` are
    :class:`BatchConfig` fields on top of ``config`` (``concurrency=8``...).
    Setting ``stop_event`` stops submitting; work in flight still reaches the
    journal. Raises InputError (exit 2) for an unusable PAIRS file, OUTDIR or
    option; a failed job never stops the others.
    """
    t0 = time.monotonic()
    if isinstance(recipe, str | Path):
        from ..recipes import load_recipe

        recipe = load_recipe(recipe)
    base = config or BatchConfig()
    cfg = dataclasses.replace(base, recipe=base.recipe if recipe is None else recipe, **options)
    cfg.check()
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    pairs = pairs_path if isinstance(pairs_path, Pairs) else read_pairs(pairs_path)
    precheck(cfg, pairs)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    with locked_outdir(out):
        return _run_locked(pairs, cfg, out, backend, progress, stop_event or threading.Event(), t0)


def _run_locked(
    pairs: Pairs,
    cfg: BatchConfig,
    out: Path,
    backend: Backend,
    progress: ProgressReporter | None,
    stop: threading.Event,
    t0: float,
) -> BatchSummary:
    from ..backends import validate_model

    model = resolve_model(cfg.recipe, cfg.request_options.model)
    validate_model(model)
    cap = int(backend.max_concurrency(model))
    concurrency = max(1, min(cfg.concurrency, cap))
    warm_up(backend)
    # The free local backend does not need power-cut durability; paid ones do.
    journal = Journal.for_outdir(out, durable=backend.name != "local")
    ledger = Ledger(journal)
    pipe = Pipeline(
        cfg,
        backend=backend,
        outdir=out,
        ledger=ledger,
        concurrency=concurrency,
        progress=progress,
        stop=stop,
        candidates=run_job_candidates,
    )
    if concurrency < cfg.concurrency:
        pipe.say(
            f"fluxcompose: concurrency {cfg.concurrency} capped at {concurrency}"
            f" ({backend.name} allows {cap} tasks in flight for {model})"
        )
    reporter = ReportWriter(
        out,
        lambda: (journal.jobs(ledger.ordered_ids()), journal.spent_usd()),
        title=f"fluxcompose batch: {pairs.path.name}",
    )
    last_tick = 0.0

    def tick() -> None:
        nonlocal last_tick
        now = time.monotonic()
        if now - last_tick < 0.2:
            return
        last_tick = now
        if progress is not None:
            progress.update(ledger.snapshot(t0))
        if cfg.report:
            with contextlib.suppress(OSError):
                reporter.maybe_write()

    context = context_key(cfg, backend.name)
    items = plan(pairs, cfg, context=context, ledger=ledger, resumable=backend.resumable)
    pipe.run(items, tick)

    summary = _summary(ledger, pipe, t0, stop.is_set(), concurrency)
    if cfg.report:
        with contextlib.suppress(OSError):
            summary["report"] = str(reporter.write())
    journal.close()
    if progress is not None:
        progress.close(
            ProgressSnapshot(
                jobs=summary["jobs"],
                done=summary["done"],
                failed=summary["failed"],
                in_flight=0,
                spent_usd=summary["spent_usd"],
                elapsed_s=summary["wall_s"],
                finished_this_run=ledger.finished_this_run,
                eta_s=0.0 if summary.get("pending", 0) == 0 else None,
            )
        )
    return summary


def _summary(
    ledger: Ledger, pipe: Pipeline, t0: float, interrupted: bool, concurrency: int
) -> BatchSummary:
    journal = ledger.journal
    rows = journal.jobs(ledger.ordered_ids())
    done = [r for r in rows if r.state == JobState.DONE]
    failed = [r for r in rows if r.state == JobState.FAILED]
    # Rows never prepared (a stop or the budget came first) have no id yet but are jobs.
    jobs = ledger.jobs()
    verdicts = count_verdicts(done)
    return {
        "jobs": jobs,
        "done": len(done),
        "failed": len(failed),
        "skipped": ledger.skipped,
        "spent_usd": round(journal.spent_usd(), 6),
        "wall_s": round(time.monotonic() - t0, 3),
        "outputs": [str(r.output_path) for r in done if r.output_path],
        "checks_passed": verdicts["passed"],
        "checks_failed": verdicts["failed"],
        "checks_not_measured": verdicts["not_measured"],
        "pending": jobs - len(done) - len(failed),
        "submitted": ledger.submitted,
        "budget_stopped": pipe.budget_stopped,
        # Stopped by a signal (or stop_event) with work left for the next run.
        "interrupted": interrupted and jobs > len(done) + len(failed),
        "concurrency": concurrency,
        "journal": str(journal.path),
        "errors": [
            {"line": r.line, "job_id": r.job_id, "kind": r.error_kind, "error": r.error}
            for r in failed
        ],
    }
