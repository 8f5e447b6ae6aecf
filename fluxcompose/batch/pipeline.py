"""The pipeline: composers fill a bounded queue of ready requests; senders send them.

::

    composer threads (one per core): prepare (compose, encode, job id), journal, route
        -> queue of ready jobs, at most ``concurrency`` long (bounded: memory stays flat)
    sender threads (2 x concurrency), one job at a time:
        submit, wait, download ─ at most ``concurrency`` at once (``network`` semaphore)
        finish (compare, sheet, sidecar, thumbnails) ─ in a worker process

Composing runs ahead of the network: while ``concurrency`` requests are out, the queue
holds the next ones, already composed and journaled, so a freed network slot is taken at
once by a sender holding a ready request; the other senders finish the last jobs. Every
state change is committed to the journal before the next step; the budget is reserved
before a job goes on the network.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..errors import ErrorKind, GenerationError, InputError, PermanentError, error_kind
from ..journal import JobState, Journal
from ..prepare import PreparedJob, prepare_job
from ..provenance import billed_fields, cost_record
from ..run import generate_with_retries, image_ok, save_result
from .config import BatchConfig
from .finish import FinishTask, finish_in_worker, one_line, start_workers
from .plan import Action, WorkItem, decide, provisional_id
from .progress import Ledger, ProgressReporter

if TYPE_CHECKING:
    from ..backends.base import Backend

__all__ = ["BatchJob", "CandidatesRunner", "Pipeline", "ReadyJob"]

T = TypeVar("T")

_EPS = 1e-9  # dollars: 3 x 0.035 must fit a 0.105 budget despite float rounding


@dataclass
class BatchJob:
    """One row's job on its worker thread."""

    item: WorkItem
    job_id: str | None = None  # known once composed (or once it failed to compose)
    reserved: float = 0.0  # USD held against the budget while the job runs
    timings: dict[str, float] = field(default_factory=dict)  # stage seconds, for the journal
    # The provider's word on the price (GenerationResult.extra: cost_credits, input_mp,
    # output_mp), when its reply carried one: the journal records that, not the estimate.
    billed: dict[str, object] = field(default_factory=dict)


@dataclass
class ReadyJob:
    """A composed job, cleared to go: to the network, or straight to finishing."""

    prepared: PreparedJob
    resume_task_id: str | None = None  # poll this task instead of submitting
    saved: Path | None = None  # paid for and downloaded by an earlier run
    cost_recorded: bool = False  # the journal already counts this job's price


# Runs one best-of-N job on the pipeline's budget, slots and workers (a layer above this
# module: :func:`fluxcompose.batch.candidates_hook.run_job_candidates`, given by the caller).
CandidatesRunner = Callable[["Pipeline", BatchJob, ReadyJob], None]


class Pipeline:
    """One batch run's workers and the state they share (the rows behind ``_rows_lock``,
    the budget behind ``_budget_lock``).

    ``candidates`` runs a job with ``cfg.candidates`` > 1; the caller gives it, so that this
    module, the single-job pipeline, knows nothing of best-of-N.
    """

    def __init__(
        self,
        cfg: BatchConfig,
        *,
        backend: Backend,
        outdir: Path,
        ledger: Ledger,
        concurrency: int,
        progress: ProgressReporter | None,
        stop: threading.Event,
        candidates: CandidatesRunner | None = None,
    ) -> None:
        self.cfg = cfg
        self.candidates = candidates
        self.backend = backend
        self.outdir = outdir
        self.ledger = ledger
        self.journal: Journal = ledger.journal
        self.concurrency = concurrency
        self.progress = progress
        self.stop = stop
        cores = self.cores = max(1, min(os.cpu_count() or 1, 8))
        # Comparing and drawing the sheet hold the interpreter lock for long stretches: they
        # go to worker processes. Without them a finish is a few file writes (and thumbnails,
        # decoded at reduced scale), cheaper here than the processes' start and the transfer.
        self.finish_workers = min(cores, 4) if cfg.compare else 0
        self.network = threading.BoundedSemaphore(concurrency)
        self._rows_lock = threading.Lock()  # guards the rows iterator
        self._rows: Iterator[WorkItem] = iter(())
        # Guards the two below, and is held while a cost goes into the journal and its
        # reservation comes off (:meth:`settle`): a reservation sees each dollar once.
        self._budget_lock = threading.Lock()
        self.reserved_usd = 0.0
        self.budget_stopped = False

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.message(text)

    # -- the run ------------------------------------------------------------------

    def run(self, items: list[WorkItem], tick: Callable[[], None]) -> None:
        """Run ``items``: composers (one per core) feed a queue of at most ``concurrency``
        ready jobs to ``2 x concurrency`` senders; call ``tick`` while waiting."""
        self._rows = iter(items)
        if not items:
            return
        start_workers(self.finish_workers)
        ready: queue.Queue[tuple[BatchJob, ReadyJob] | None] = queue.Queue(self.concurrency)
        composers = [
            threading.Thread(target=self._composer, args=(ready,), name=f"fluxcompose-compose{i}")
            for i in range(min(self.cores, len(items)))
        ]
        senders = [
            threading.Thread(target=self._sender, args=(ready,), name=f"fluxcompose-send{i}")
            for i in range(min(2 * self.concurrency, len(items)))
        ]
        for t in (*composers, *senders):
            t.daemon = True
            t.start()
        self._wait(composers, tick)
        for _ in senders:
            ready.put(None)  # no more work: each sender stops after the queue is drained
        self._wait(senders, tick)

    def _wait(self, threads: list[threading.Thread], tick: Callable[[], None]) -> None:
        for t in threads:
            while t.is_alive():
                try:
                    t.join(timeout=0.2)
                    tick()
                except KeyboardInterrupt:
                    # No signal handler installed (library use): stop submitting, drain.
                    self.stop.set()
                    self.say(
                        "fluxcompose: interrupted: finishing the jobs in flight"
                        " (Ctrl-C again to quit now)"
                    )

    def _next(self) -> WorkItem | None:
        with self._rows_lock:
            if self.stop.is_set() or self.budget_stopped:
                return None  # the rest stay pending for the next run
            return next(self._rows, None)

    def _composer(self, ready: queue.Queue[tuple[BatchJob, ReadyJob] | None]) -> None:
        """Compose rows ahead of the network; blocks while the queue is full."""
        while (item := self._next()) is not None:
            job = BatchJob(item)
            try:
                got = self._prepare(job)
            except BaseException as exc:  # noqa: BLE001 - one job's bug must not stop the batch
                self._crashed(job, exc)
                continue
            if got is not None:
                ready.put((job, got))

    def _sender(self, ready: queue.Queue[tuple[BatchJob, ReadyJob] | None]) -> None:
        while (got := ready.get()) is not None:
            job, prepared = got
            try:
                self._send(job, prepared)
            except BaseException as exc:  # noqa: BLE001 - one job's bug must not stop the batch
                self._crashed(job, exc)
            finally:
                self.release(job, job.reserved)

    def _send(self, job: BatchJob, ready: ReadyJob) -> None:
        """A composed job, from the network (or its saved result) to done."""
        if self.cfg.candidates > 1:
            if self.candidates is None:
                raise RuntimeError("a best-of-N batch needs its candidates runner")
            self.candidates(self, job, ready)  # best-of-N: fluxcompose.candidates
            return
        if ready.saved is not None:
            # Paid already: held against the budget until finishing records it, unless the
            # journal counts it already (then holding it too would count it twice).
            held = 0.0 if ready.cost_recorded else float(ready.prepared.price_usd)
            self.reserve(job, held, force=True)
            output, task_id = ready.saved, ready.resume_task_id
        else:
            got = self._network(job, ready)
            if got is None:
                return
            output, task_id = got
        self._finish(job, ready, output, task_id)

    def _crashed(self, job: BatchJob, exc: BaseException) -> None:
        """Anything unexpected fails this job only."""
        item, job_id = job.item, job.job_id
        if job_id is None:
            job_id = provisional_id(item.row.line, item.row_key)
            self.ledger.claim(job_id, item.row.line, planned=True)
        with contextlib.suppress(Exception):
            self.journal.ensure(job_id, line=item.row.line, row_key=item.row_key)
            self.journal.mark_failed(
                job_id, f"line {item.row.line}: {one_line(exc)}", kind=error_kind(exc)
            )
        self.ledger.set_state(job_id, JobState.FAILED, finished=True)

    # -- prepare: compose, learn the job id, and route the job ----------------------

    def _prepare(self, job: BatchJob) -> ReadyJob | None:
        item = job.item
        row = item.row
        try:
            t = time.perf_counter()  # on a composer thread: one per core
            prepared = prepare_job(item.spec, backend_name=self.backend.name)
            job.timings["prepare_s"] = time.perf_counter() - t
        except (InputError, OSError, ValueError) as exc:
            job_id = job.job_id = row.id or provisional_id(row.line, item.row_key)
            if self.ledger.claim(job_id, row.line, planned=True) is not None:
                return None
            self.journal.ensure(
                job_id,
                line=row.line,
                row_key=item.row_key,
                prompt=row.prompt,
                sources=[{"source": s} for s in row.sources],
            )
            self.journal.mark_failed(
                job_id, f"line {row.line}: {one_line(exc)}", kind=error_kind(exc)
            )
            self.ledger.set_state(job_id, JobState.FAILED, finished=True)
            return None
        job_id = job.job_id = prepared.job_id
        first = self.ledger.claim(job_id, row.line, planned=True)
        if first is not None:
            self.say(f"fluxcompose: line {row.line}: same job as line {first}, not run twice")
            return None
        request = prepared.request
        # One statement records the job (if new) and returns its row; a row it just made is
        # pending with no task id, which decide() treats exactly like no row at all.
        prev = self.journal.ensure(
            job_id,
            line=row.line,
            row_key=item.row_key,
            backend=self.backend.name,
            model=request.model,
            price_usd=float(prepared.price_usd),
            prompt=request.prompt,
            sources=list(prepared.sources),
        )
        action = decide(prev, retry_failed=self.cfg.retry_failed, resumable=self.backend.resumable)
        if action in (Action.SKIP, Action.KEEP_FAILED):
            self.ledger.set_state(job_id, prev.state, skipped=action is Action.SKIP)
            return None
        failed = prev.state == JobState.FAILED
        saved = prev.state == JobState.DOWNLOADED or (
            failed and prev.error_kind == ErrorKind.OUTPUT
        )
        if saved and image_ok(prev.output_path):
            # Paid for and saved, but not finished: finish it, no network needed. A job that
            # failed while finishing already has its price in the journal.
            self.journal.mark_downloaded(job_id, str(prev.output_path))
            self.ledger.set_state(job_id, JobState.DOWNLOADED)
            return ReadyJob(
                prepared, prev.task_id, Path(str(prev.output_path)), cost_recorded=failed
            )
        resume = prev.task_id if action is Action.RESUME else None
        if failed:
            if resume is not None:
                self.journal.mark_submitted(job_id, resume)
            else:
                self.journal.mark_pending(job_id)
        self.ledger.set_state(job_id, JobState.SUBMITTED if resume else JobState.PENDING)
        return ReadyJob(prepared, resume)

    # -- network: submit (or poll a stored task), wait, download at once -------------

    def reserve(self, job: BatchJob, price: float, *, force: bool) -> bool:
        """Reserve ``price`` USD for a job about to start; False when it must not start.

        ``force`` reserves without checking: for work already paid (a resumed task).
        """
        announce = None
        with self._budget_lock:
            if not force and (self.budget_stopped or self.stop.is_set()):
                return False
            budget = self.cfg.budget_usd
            if not force and budget is not None:
                committed = self.journal.spent_usd() + self.reserved_usd
                if committed + price > budget + _EPS:
                    self.budget_stopped = True
                    announce = (
                        f"fluxcompose: budget ${budget:.3f} reached (${committed:.3f}"
                        f" spent or in flight, the next job costs ${price:.3f}): not starting"
                        " more jobs. Raise --budget and run the same command to continue."
                    )
            if announce is None:
                self.reserved_usd += price
                job.reserved += price
        if announce is not None:
            self.say(announce)
            return False
        return True

    def release(self, job: BatchJob, price: float) -> None:
        """Give back ``price`` USD reserved for ``job`` (it did not go, or failed unpaid)."""
        with self._budget_lock:
            self.reserved_usd -= price
            job.reserved -= price

    def settle(self, job: BatchJob, price: float, record: Callable[[], T]) -> T:
        """Run ``record`` (which puts a cost in the journal) and give back ``price`` USD
        reserved for ``job``, as one step for :meth:`reserve`.

        Done one after the other, a reservation in between would count that cost twice
        (spent and still reserved) and stop the batch a job early; done the other way
        round, not at all, and go over the budget. The reservation comes off even when
        ``record`` raises.
        """
        with self._budget_lock:
            try:
                return record()
            finally:
                self.reserved_usd -= price
                job.reserved -= price

    def _network(self, job: BatchJob, ready: ReadyJob) -> tuple[Path, str | None] | None:
        """The paid part; None when the job did not reach a result (it stays journaled)."""
        with self.network:
            got = self._generate(job, ready)
        if got is None:
            return None
        output, task_id, attempts, started_at = got
        # After the slot is freed: the next job need not wait for this commit.
        self.journal.mark_downloaded(
            ready.prepared.job_id, output, attempts=attempts, started_at=started_at
        )
        self.ledger.set_state(ready.prepared.job_id, JobState.DOWNLOADED)
        return output, task_id

    def _generate(
        self, job: BatchJob, ready: ReadyJob
    ) -> tuple[Path, str | None, int, float] | None:
        """Submit (or poll a stored task), wait, download at once; holds a network slot.

        Returns (output, task id, attempts not yet journaled, start time), or None when
        the job must not start (stop, budget) or failed (journaled here).
        """
        prepared = ready.prepared
        job_id = prepared.job_id
        resuming = ready.resume_task_id is not None
        if self.stop.is_set() or not self.reserve(job, float(prepared.price_usd), force=resuming):
            return None  # stays pending (or submitted) for the next run
        self.ledger.network(+1, submitted=not resuming)
        # The attempt count and start time ride on the next write (no extra commit on the
        # submission path); ``uncounted`` holds what is not yet in the journal.
        started_at = time.time()
        uncounted = 1

        def on_submitted(task_id: str) -> None:
            nonlocal uncounted
            # Committed before any polling: a kill now resumes by this id.
            n, uncounted = uncounted, 0
            self.journal.mark_submitted(job_id, task_id, attempts=n, started_at=started_at)
            self.ledger.set_state(job_id, JobState.SUBMITTED)

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            nonlocal uncounted
            n, uncounted = uncounted, 1  # the next attempt is counted later
            self.journal.note_retry(
                job_id, one_line(exc), kind=error_kind(exc), attempts=n, started_at=started_at
            )

        try:
            t = time.perf_counter()
            result = generate_with_retries(
                self.backend,
                prepared,
                max_attempts=self.cfg.max_attempts,
                on_submitted=on_submitted,
                resume_task_id=ready.resume_task_id,
                stop=self.stop,
                on_retry=on_retry,
            )
            job.timings["generate_s"] = time.perf_counter() - t
            job.billed = dict(result.extra)
            t = time.perf_counter()
            output = save_result(prepared, result, self.outdir)
            job.timings["download_s"] = time.perf_counter() - t
        except GenerationError as exc:
            self._network_failed(job, exc, uncounted, started_at)
            return None
        finally:
            self.ledger.network(-1)
        return output, result.task_id or ready.resume_task_id, uncounted, started_at

    def _network_failed(
        self, job: BatchJob, exc: GenerationError, attempts: int, started_at: float
    ) -> None:
        job_id = job.job_id
        assert job_id is not None
        message = f"line {job.item.row.line}: {one_line(exc)}"
        kind = error_kind(exc)
        if self.stop.is_set() and not isinstance(exc, PermanentError):
            # Interrupted between attempts: not a failure, the next run carries on.
            self.journal.note_error(
                job_id, message, kind=kind, attempts=attempts, started_at=started_at
            )
            prev = self.journal.get(job_id)
            self.ledger.set_state(job_id, prev.state if prev else JobState.PENDING)
            return
        self.journal.mark_failed(
            job_id, message, kind=kind, attempts=attempts, started_at=started_at
        )
        self.ledger.set_state(job_id, JobState.FAILED, finished=True)
        self.say(f"fluxcompose: job {job_id} failed: {message}")

    # -- finish: in a worker process, then done -------------------------------------

    def _finish(self, job: BatchJob, ready: ReadyJob, output: Path, task_id: str | None) -> None:
        prepared = ready.prepared
        job_id = prepared.job_id
        task = FinishTask(
            prepared,
            output,
            self.outdir,
            self.backend.name,
            self.cfg.compare,
            task_id,
            dict(job.timings),
            billed=billed_fields(job.billed),
        )
        done = finish_in_worker(task, workers=self.finish_workers)
        paid = float(cost_record(prepared, job.billed)["usd"])
        price = 0.0 if ready.cost_recorded else paid
        # The price goes into the journal as the job's reservation comes off (settle).
        if done.outcome is None:
            error = f"line {job.item.row.line}: {done.error}"
            self.settle(
                job,
                job.reserved,
                lambda: self.journal.mark_failed(job_id, error, kind=done.kind, cost_usd=price),
            )
            self.ledger.set_state(job_id, JobState.FAILED, finished=True)
            return
        outcome = done.outcome
        self.settle(
            job,
            job.reserved,
            lambda: self.journal.mark_done(
                job_id,
                output_path=outcome.output_path,
                cost_usd=0.0 if ready.cost_recorded else float(outcome.cost_usd),
                sidecar_path=outcome.sidecar_path,
                metrics=outcome.metrics,
                checks_passed=outcome.checks_passed,
                timings={**job.timings, "finish_s": done.finish_s},
                thumbs=done.thumbs,
            ),
        )
        self.ledger.set_state(job_id, JobState.DONE, finished=True)
