"""Many jobs: ``fluxcompose batch``. Concurrent, resumable, and never paying twice.

The batch is the single-job pipeline of :mod:`fluxcompose.run` (``prepare_job`` ->
``generate_with_retries`` -> ``save_result`` -> ``finish_job``) driven by three thread
pools, with every state change committed to the journal before the next step::

    rows ──> prepare pool (decode + compose) ──> network pool (submit, wait, download
             at once) ──> finish pool (compare, sheet, sidecar, thumbnails)

The network pool has ``concurrency`` workers that mostly wait on sockets; the prepare
and finish pools have one worker per core, so composing and comparing never hold up a
submission. Semaphores bound how many prepared jobs exist at once, so a 100,000-row
file does not compose 100,000 canvases into memory.

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
import hashlib
import json
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NotRequired, Protocol, TypedDict

from PIL import Image

from .errors import (
    AuthError,
    GenerationError,
    InputError,
    InsufficientCredits,
    Moderated,
    PermanentError,
    RateLimited,
    RequestError,
    ResultExpired,
    TaskFailed,
    TransientError,
)
from .journal import JobRow, Journal
from .pairs import PairRow, Pairs, RowError, read_pairs
from .report import ReportWriter, make_thumbs

__all__ = [
    "BatchSummary",
    "ProgressReporter",
    "ProgressSnapshot",
    "StderrProgress",
    "error_kind",
    "run_batch",
]

_EPS = 1e-9  # dollars: 3 x 0.035 must fit a 0.105 budget despite float rounding


class BatchSummary(TypedDict):
    """What ``run_batch`` returns (``--json`` prints it). See DESIGN.md section 7."""

    jobs: int  # distinct jobs in the PAIRS file (bad rows count as failed jobs)
    done: int  # done in the journal, including earlier runs
    failed: int
    skipped: int  # already done when this run started
    spent_usd: float  # the journal's total over every run
    wall_s: float  # this run
    outputs: list[str]  # result files of the done jobs, in PAIRS order
    pending: NotRequired[int]  # neither done nor failed (budget stop, interrupt)
    submitted: NotRequired[int]  # jobs this run started on the network
    budget_stopped: NotRequired[bool]
    interrupted: NotRequired[bool]
    concurrency: NotRequired[int]
    report: NotRequired[str]
    journal: NotRequired[str]
    errors: NotRequired[list[dict[str, Any]]]  # {line, job_id, kind, error} per failed job


# -- error kinds ----------------------------------------------------------------------

_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (Moderated, "moderated"),
    (AuthError, "auth"),
    (InsufficientCredits, "credits"),
    (ResultExpired, "expired"),
    (TaskFailed, "task"),
    (RequestError, "request"),
    (RateLimited, "rate_limited"),
    (TransientError, "transient"),
    (InputError, "input"),
)


# Failure kinds after which a stored task id is still worth polling on --retry-failed
# (the provider may have finished the task); after the others the task is gone.
_POLL_AGAIN = frozenset({"transient", "rate_limited", "internal", "generation", "output"})


def error_kind(exc: BaseException) -> str:
    """The journal's ``error_kind`` for an exception (moderated, auth, request, transient...)."""
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, PermanentError):
        return "permanent"
    if isinstance(exc, GenerationError):
        return "generation"
    return "internal"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not isinstance(exc, GenerationError | InputError):
        text = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text[:500]


# -- progress ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressSnapshot:
    """The batch at one moment. Money in USD, times in seconds."""

    jobs: int
    done: int
    failed: int
    in_flight: int  # on the network now
    spent_usd: float
    elapsed_s: float
    finished_this_run: int
    eta_s: float | None


class ProgressReporter(Protocol):
    def update(self, snap: ProgressSnapshot) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, snap: ProgressSnapshot) -> None: ...


def _fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class StderrProgress:
    """A one-line bar redrawn in place on a terminal; plain periodic lines otherwise.

    Plain lines come every ``interval`` seconds or every 5 % of the jobs, whichever
    is first, so a log file stays short.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        tty: bool | None = None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.clock = clock
        self._last = -float("inf")
        self._last_step = -1
        self._line_len = 0
        self._lock = threading.Lock()
        self._last_snap: ProgressSnapshot | None = None

    @staticmethod
    def line(snap: ProgressSnapshot, *, bar_width: int = 0) -> str:
        finished = snap.done + snap.failed
        pct = 100.0 * finished / snap.jobs if snap.jobs else 100.0
        bar = ""
        if bar_width:
            filled = int(bar_width * finished / snap.jobs) if snap.jobs else bar_width
            bar = "[" + "#" * filled + "." * (bar_width - filled) + "] "
        return (
            f"{bar}{finished}/{snap.jobs} ({pct:.0f}%) done {snap.done}, failed {snap.failed},"
            f" in flight {snap.in_flight}, spent ${snap.spent_usd:.3f},"
            f" elapsed {_fmt_time(snap.elapsed_s)}, ETA {_fmt_time(snap.eta_s)}"
        )

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()

    def update(self, snap: ProgressSnapshot) -> None:
        with self._lock:
            self._last_snap = snap
            now = self.clock()
            if self.tty:
                if now - self._last < 0.1:
                    return
                self._last = now
                self._redraw(snap)
                return
            step = int(20 * (snap.done + snap.failed) / snap.jobs) if snap.jobs else 20
            if now - self._last >= self.interval or step > self._last_step:
                self._last, self._last_step = now, step
                self._write("fluxcompose: " + self.line(snap) + "\n")

    def _redraw(self, snap: ProgressSnapshot) -> None:
        # A line wider than the terminal wraps, and "\r" would then redraw only its tail.
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = self.line(snap, bar_width=20)[: max(20, width)]
        self._line_len = len(text)
        self._write("\r" + text + "\x1b[K")

    def message(self, text: str) -> None:
        with self._lock:
            if self.tty and self._line_len:
                self._write("\r\x1b[K" + text + "\n")
                if self._last_snap is not None:
                    self._redraw(self._last_snap)
            else:
                self._write(text + "\n")

    def close(self, snap: ProgressSnapshot) -> None:
        with self._lock:
            if self.tty:
                self._write("\r" + self.line(snap, bar_width=20) + "\x1b[K\n")
            else:
                self._write("fluxcompose: " + self.line(snap) + "\n")
            self._line_len = 0


# -- the runner ---------------------------------------------------------------------------


@dataclass
class _Item:
    """One PAIRS row on its way through the pipeline."""

    row: PairRow
    row_key: str
    known: JobRow | None  # the journal's row for it before this run, if recognised
    spec: Any = None  # run.JobSpec
    prepared: Any = None  # run.PreparedJob
    job_id: str | None = None
    resume_task_id: str | None = None
    reserved: float = 0.0
    started_at: float | None = None  # Unix time the network stage began
    cost_recorded: bool = False  # the journal already counts this job's price
    uncounted: int = 0  # attempts made but not yet added to the journal's count
    holds_ahead: bool = False  # a slot of _Batch.ahead (prepare + network)
    holds_finish: bool = False  # a slot of _Batch.finishing
    released: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _row_key(context: str, row: PairRow) -> str:
    """A fingerprint of a row in its context, to recognise it on a later run without composing.

    Local sources contribute their size and modification time: touching a file only costs
    a recompose (the content hash in the job id still matches); editing it makes a new job.
    """
    h = hashlib.sha256(context.encode())
    parts: list[Any] = [row.id, row.prompt, row.seed, row.aspect_ratio, dict(row.variables)]
    if row.subject_box is not None:  # rows without one keep the keys earlier versions gave
        parts.append(list(row.subject_box))
    for src in row.sources:
        if src.lower().startswith(("http://", "https://")):
            parts.append(src)
        else:
            try:
                st = os.stat(src)
                parts.append([src, st.st_size, st.st_mtime_ns])
            except OSError:
                parts.append([src, None, None])
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _provisional_id(line: int, key: str) -> str:
    """An id for a row that never got a real one (its input could not be read)."""
    return f"line{line}-{key[:10]}"


def _image_ok(path: str | Path | None) -> bool:
    """True when ``path`` is a complete, decodable image (for resuming a downloaded job)."""
    if not path:
        return False
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


LOCK_NAME = "journal.lock"


def _lock_outdir(out: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on OUTDIR for this run: two batches sharing a journal could
    both submit the same job. The lock dies with the process, even with kill -9."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one batch per OUTDIR is on the user
        return None
    fh = open(out / LOCK_NAME, "ab")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise InputError(
            f"another fluxcompose batch is running in {out}; wait for it, or use another -o"
        ) from None
    return fh


def _remove_stale_parts(out: Path) -> None:
    """Delete temp files (``.<name>.<random>.part``) left by a killed run; we hold the lock."""
    for part in out.glob(".*.part"):
        with contextlib.suppress(OSError):
            part.unlink()
    thumbs = out / "thumbs"
    if thumbs.is_dir():
        for part in thumbs.glob(".*.part"):
            with contextlib.suppress(OSError):
                part.unlink()


class _Batch:
    """State shared by the pipeline's threads. One instance per ``run_batch`` call."""

    def __init__(
        self,
        *,
        run: Any,
        backend: Any,
        outdir: Path,
        journal: Journal,
        concurrency: int,
        budget_usd: float | None,
        max_attempts: int,
        retry_failed: bool,
        compare: bool,
        progress: ProgressReporter | None,
        stop: threading.Event,
    ) -> None:
        self.run = run
        self.backend = backend
        self.outdir = outdir
        self.journal = journal
        self.concurrency = concurrency
        self.budget_usd = budget_usd
        self.max_attempts = max_attempts
        self.retry_failed = retry_failed
        self.compare = compare
        self.progress = progress
        self.stop = stop
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.state: dict[str, str] = {}  # job id -> state, for this run's jobs
        self.order: list[str] = []  # this run's job ids, in PAIRS order of first appearance
        self.lines: dict[str, int] = {}
        self.reserved_usd = 0.0
        self.budget_stopped = False
        self.active = 0  # items anywhere in the pipeline
        self.net_busy = 0  # network workers on CPU work (see wait_quiet)
        self.quiet = threading.Condition(threading.Lock())
        self.in_flight = 0  # items in the network stage
        self.submitted = 0
        self.skipped = 0
        self.unclaimed = 0  # rows in the pipeline whose job id is not known yet
        self.finished_this_run = 0
        self.cpu_workers = max(1, min(os.cpu_count() or 1, 8))
        # Two bounded stretches of pipeline, so memory stays bounded (a prepared job holds
        # its canvas, a few MB) and neither CPU stage can starve the network:
        # - ``ahead``: jobs being prepared or on the network. One prepared job per network
        #   worker is waiting when a worker frees, so submissions follow back to back.
        # - ``finishing``: jobs downloaded and waiting to be finished. When finishing falls
        #   behind, network workers wait here before taking new work (back-pressure).
        # Preparing and finishing have separate pools: a queue of finishes never delays the
        # next submission's prepare.
        self.ahead = threading.BoundedSemaphore(concurrency + self.cpu_workers)
        self.finishing = threading.BoundedSemaphore(concurrency + self.cpu_workers)
        self.prep = ThreadPoolExecutor(self.cpu_workers, thread_name_prefix="fluxcompose-prep")
        self.net = ThreadPoolExecutor(concurrency, thread_name_prefix="fluxcompose-net")
        self.fin = ThreadPoolExecutor(self.cpu_workers, thread_name_prefix="fluxcompose-finish")

    # -- bookkeeping ------------------------------------------------------------

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.message(text)

    def claim(self, job_id: str, line: int, *, planned: bool = False) -> int | None:
        """Register ``job_id`` for this run; returns the first line if another row has it.

        ``planned``: the row was counted in ``unclaimed`` (it went through the pipeline).
        """
        with self.lock:
            if planned:
                self.unclaimed -= 1
            if job_id in self.lines:
                return self.lines[job_id]
            self.lines[job_id] = line
            self.order.append(job_id)
            self.state[job_id] = "pending"
            return None

    def ordered_ids(self) -> list[str]:
        """This run's job ids in PAIRS line order."""
        with self.lock:
            return sorted(self.order, key=lambda j: self.lines[j])

    def set_state(self, job_id: str, state: str, *, finished: bool = False) -> None:
        with self.changed:
            self.state[job_id] = state
            if finished:
                self.finished_this_run += 1
            self.changed.notify_all()

    def release(self, item: _Item) -> None:
        """The item leaves the pipeline: free its budget reservation and its slots."""
        with self.changed:
            if item.released:
                return
            item.released = True
            self.reserved_usd -= item.reserved
            item.reserved = 0.0
            item.prepared = None  # drop the canvas bytes now, not when the list is freed
            self.active -= 1
            ahead, item.holds_ahead = item.holds_ahead, False
            finish, item.holds_finish = item.holds_finish, False
            self.changed.notify_all()
        if ahead:
            self.ahead.release()
        if finish:
            self.finishing.release()

    def to_finish(self, item: _Item, stage: Callable[[_Item], None]) -> None:
        """Move an item from the prepare/network stretch to the finish pool."""
        self.finishing.acquire()  # blocks while the finish backlog is full
        with self.lock:
            item.holds_finish = True
            ahead, item.holds_ahead = item.holds_ahead, False
        if ahead:
            self.ahead.release()
        self.fin.submit(self.guarded(item, stage))

    def snapshot(self, t0: float) -> ProgressSnapshot:
        with self.lock:
            states = list(self.state.values())
            in_flight = self.in_flight
            finished = self.finished_this_run
        done = states.count("done")
        failed = states.count("failed")
        elapsed = time.monotonic() - t0
        remaining = len(states) + self.unclaimed - done - failed
        eta = None
        if finished and elapsed > 0:
            eta = remaining / (finished / elapsed)
        elif remaining == 0:
            eta = 0.0
        return ProgressSnapshot(
            jobs=len(states) + self.unclaimed,
            done=done,
            failed=failed,
            in_flight=in_flight,
            spent_usd=self.journal.spent_usd(),
            elapsed_s=elapsed,
            finished_this_run=finished,
            eta_s=eta,
        )

    def guarded(self, item: _Item, stage: Callable[[_Item], None]) -> Callable[[], None]:
        """Run a stage; anything unexpected fails this job only and frees its slot."""

        def call() -> None:
            try:
                stage(item)
            except BaseException as exc:  # noqa: BLE001 - one job's bug must not stop the batch
                job_id = item.job_id
                if job_id is None:
                    job_id = item.job_id = _provisional_id(item.row.line, item.row_key)
                    self.claim(job_id, item.row.line, planned=True)
                with contextlib.suppress(Exception):
                    self.journal.ensure(job_id, line=item.row.line, row_key=item.row_key)
                    self.journal.mark_failed(
                        job_id, f"line {item.row.line}: {_one_line(exc)}", kind=error_kind(exc)
                    )
                self.set_state(job_id, "failed", finished=True)
                self.release(item)

        return call

    # -- decisions ---------------------------------------------------------------

    def decide(self, prev: JobRow | None) -> str:
        """What to do with a job given its journal row: skip, keep_failed, resume, or run."""
        if prev is None:
            return "run"
        if prev.state == "done":
            return "skip"
        if prev.state == "failed":
            if prev.error_kind == "input":
                return "run"  # free to try again, and the file may have been fixed
            if prev.error_kind == "moderated" or not self.retry_failed:
                return "keep_failed"
            if prev.task_id and self.backend.resumable and prev.error_kind in _POLL_AGAIN:
                return "resume"  # the task may well have finished since: poll, don't pay again
            return "run"
        if prev.task_id and self.backend.resumable and prev.state in ("submitted", "downloaded"):
            return "resume"
        return "run"

    # -- stages --------------------------------------------------------------------

    def prepare_stage(self, item: _Item) -> None:
        """CPU: decode and compose, learn the job id, and route the job."""
        row = item.row
        try:
            t = time.perf_counter()
            item.prepared = self.run.prepare_job(item.spec, backend_name=self.backend.name)
            item.timings["prepare_s"] = time.perf_counter() - t
        except (InputError, OSError, ValueError) as exc:
            job_id = row.id or _provisional_id(row.line, item.row_key)
            item.job_id = job_id
            if self.claim(job_id, row.line, planned=True) is not None:
                self.release(item)
                return
            self.journal.ensure(
                job_id,
                line=row.line,
                row_key=item.row_key,
                prompt=row.prompt,
                sources=[{"source": s} for s in row.sources],
            )
            self.journal.mark_failed(
                job_id, f"line {row.line}: {_one_line(exc)}", kind=error_kind(exc)
            )
            self.set_state(job_id, "failed", finished=True)
            self.release(item)
            return

        prepared = item.prepared
        job_id = str(prepared.job_id)
        item.job_id = job_id
        first = self.claim(job_id, row.line, planned=True)
        if first is not None:
            self.say(f"fluxcompose: line {row.line}: same job as line {first}, not run twice")
            self.release(item)
            return
        request = prepared.request
        # One statement records the job (if new) and returns its row; a row it just made is
        # pending with no task id, which decide() treats exactly like no row at all.
        prev = self.journal.ensure(
            job_id,
            line=row.line,
            row_key=item.row_key,
            backend=self.backend.name,
            model=getattr(request, "model", None),
            price_usd=float(prepared.price_usd),
            prompt=getattr(request, "prompt", None),
            sources=list(prepared.sources),
        )
        action = self.decide(prev)
        if action in ("skip", "keep_failed"):
            with self.lock:
                self.skipped += action == "skip"
            self.set_state(job_id, prev.state)
            self.release(item)
            return
        saved = prev.state == "downloaded" or (
            prev.state == "failed" and prev.error_kind == "output"
        )
        if saved and _image_ok(prev.output_path):
            # Paid for and saved, but not finished: finish it, no network needed. A job that
            # failed while finishing already has its price in the journal.
            item.cost_recorded = prev.state == "failed"
            self.journal.mark_downloaded(job_id, str(prev.output_path))
            self.set_state(job_id, "downloaded")
            self.reserve(item, prepared.price_usd, force=True)
            self.to_finish(item, self.finish_stage_from(prev.output_path, prev.task_id))
            return
        if prev.state == "failed":
            if action == "resume":
                self.journal.mark_submitted(job_id, str(prev.task_id))
            else:
                self.journal.mark_pending(job_id)
        if action == "resume":
            item.resume_task_id = prev.task_id
        self.set_state(job_id, "submitted" if item.resume_task_id else "pending")
        self.net.submit(self.guarded(item, self.network_stage))

    def reserve(self, item: _Item, price: float, *, force: bool = False) -> bool:
        """Reserve ``price`` for a job about to start; False when the budget forbids it.

        ``force`` reserves without checking: for work already paid (a resumed task).
        """
        announce = None
        with self.lock:
            if not force and (self.budget_stopped or self.stop.is_set()):
                return False
            if not force and self.budget_usd is not None:
                committed = self.journal.spent_usd() + self.reserved_usd
                if committed + price > self.budget_usd + _EPS:
                    self.budget_stopped = True
                    announce = (
                        f"fluxcompose: budget ${self.budget_usd:.3f} reached (${committed:.3f}"
                        f" spent or in flight, the next job costs ${price:.3f}): not starting"
                        " more jobs. Raise --budget and run the same command to continue."
                    )
            if announce is None:
                self.reserved_usd += price
                item.reserved += price
        if announce is not None:
            self.say(announce)
            return False
        return True

    def network_stage(self, item: _Item) -> None:
        """Network: submit (or poll a stored task), wait, download at once."""
        prepared = item.prepared
        job_id = item.job_id
        assert job_id is not None
        resuming = item.resume_task_id is not None
        if self.stop.is_set() or not self.reserve(item, prepared.price_usd, force=resuming):
            self.release(item)  # stays pending (or submitted) for the next run
            return
        with self.changed:
            self.in_flight += 1
            if not resuming:
                self.submitted += 1
        self.busy(+1)
        # The attempt count and start time ride on the next write (no extra commit on the
        # submission path); ``uncounted`` holds what is not yet in the journal.
        item.started_at = time.time()
        item.uncounted = 1
        try:

            def on_submitted(task_id: str) -> None:
                # Committed before any polling: a kill now resumes by this id.
                n, item.uncounted = item.uncounted, 0
                self.journal.mark_submitted(job_id, task_id, attempts=n, started_at=item.started_at)
                self.set_state(job_id, "submitted")

            def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
                n, item.uncounted = item.uncounted, 1  # the next attempt is counted later
                self.journal.note_retry(
                    job_id,
                    _one_line(exc),
                    kind=error_kind(exc),
                    attempts=n,
                    started_at=item.started_at,
                )

            t = time.perf_counter()
            try:
                self.busy(-1)  # waiting on the network now
                try:
                    result = self.run.generate_with_retries(
                        self.backend,
                        prepared,
                        max_attempts=self.max_attempts,
                        on_submitted=on_submitted,
                        resume_task_id=item.resume_task_id,
                        stop=self.stop,
                        on_retry=on_retry,
                    )
                finally:
                    self.busy(+1)
                item.timings["generate_s"] = time.perf_counter() - t
                t = time.perf_counter()
                output = self.run.save_result(prepared, result, self.outdir)
                item.timings["download_s"] = time.perf_counter() - t
            except GenerationError as exc:
                self._network_failed(item, exc)
                return
            task_id = getattr(result, "task_id", None) or item.resume_task_id
            n, item.uncounted = item.uncounted, 0
            self.journal.mark_downloaded(job_id, output, attempts=n, started_at=item.started_at)
            self.set_state(job_id, "downloaded")
        finally:
            self.busy(-1)
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()
        self.to_finish(item, self.finish_stage_from(output, task_id))

    def busy(self, delta: int) -> None:
        """Count network workers doing CPU work on the submission path (not waiting)."""
        with self.quiet:
            self.net_busy += delta
            if self.net_busy == 0:
                self.quiet.notify_all()

    def wait_quiet(self, limit: float = 0.25) -> None:
        """Let network workers submit and download first; wait at most ``limit`` seconds.

        Everything shares one interpreter lock: a burst of finishing (compare, sheet,
        thumbnails) right when a wave of results comes back would delay the next wave
        of submissions, and the network is the scarce resource.
        """
        deadline = time.monotonic() + limit
        with self.quiet:
            while self.net_busy > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.quiet.wait(remaining):
                    return

    def _network_failed(self, item: _Item, exc: GenerationError) -> None:
        job_id = item.job_id
        assert job_id is not None
        message = f"line {item.row.line}: {_one_line(exc)}"
        n, item.uncounted = item.uncounted, 0
        if self.stop.is_set() and not isinstance(exc, PermanentError):
            # Interrupted between attempts: not a failure, the next run carries on.
            self.journal.note_error(
                job_id, message, kind=error_kind(exc), attempts=n, started_at=item.started_at
            )
            prev = self.journal.get(job_id)
            self.set_state(job_id, prev.state if prev else "pending")
        else:
            self.journal.mark_failed(
                job_id, message, kind=error_kind(exc), attempts=n, started_at=item.started_at
            )
            self.set_state(job_id, "failed", finished=True)
            self.say(f"fluxcompose: job {job_id} failed: {message}")
        self.release(item)

    def finish_stage_from(
        self, output: str | Path | None, task_id: str | None = None
    ) -> Callable[[_Item], None]:
        def stage(item: _Item) -> None:
            self.finish_stage(item, Path(str(output)), task_id)

        return stage

    def finish_stage(self, item: _Item, output: Path, task_id: str | None) -> None:
        """CPU: canvas, compare, sheet, sidecar, thumbnails; then done."""
        self.wait_quiet()
        prepared = item.prepared
        job_id = item.job_id
        assert job_id is not None
        try:
            t = time.perf_counter()
            outcome = self.run.finish_job(
                prepared,
                output,
                self.outdir,
                backend_name=self.backend.name,
                compare=self.compare,
                timings=dict(item.timings),
                task_id=task_id,
            )
            item.timings["finish_s"] = time.perf_counter() - t
        except Exception as exc:
            # Paid for but unusable (e.g. a corrupt download): failed, and the money counted.
            self.journal.mark_failed(
                job_id,
                f"line {item.row.line}: {_one_line(exc)}",
                kind="output" if not isinstance(exc, GenerationError) else error_kind(exc),
                cost_usd=0.0 if item.cost_recorded else float(prepared.price_usd),
            )
            self.set_state(job_id, "failed", finished=True)
            self.release(item)
            return
        thumbs: dict[str, Any] | None = None
        with contextlib.suppress(Exception):
            composite = prepared.composite
            canvas = getattr(composite, "image", None) if composite is not None else None
            if canvas is None:
                canvas = prepared.canvas_bytes
            cells = [c.box for c in composite.cells] if composite is not None else []
            thumbs = make_thumbs(
                self.outdir, job_id, canvas=canvas, cells=cells, output=outcome.output_path
            )
        self.journal.mark_done(
            job_id,
            output_path=outcome.output_path,
            cost_usd=0.0 if item.cost_recorded else float(outcome.cost_usd),
            sidecar_path=outcome.sidecar_path,
            metrics=outcome.metrics,
            checks_passed=outcome.checks_passed,
            timings=dict(item.timings),
            thumbs=thumbs,
        )
        self.set_state(job_id, "done", finished=True)
        self.release(item)


def _precheck(
    recipe: Any, pairs: Pairs, prompt: str | None, variables: Mapping[str, str] | None
) -> None:
    """Errors that would fail every row are bad usage (exit 2), not a thousand failed jobs."""
    rows_have_prompts = any(r.prompt is not None for r in pairs.rows)
    if recipe is None:
        if prompt is None and not all(r.prompt is not None for r in pairs.rows):
            raise InputError("give a --recipe (or a --prompt, or a prompt column for every row)")
        return
    if not rows_have_prompts:
        recipe.render(dict(variables or {}), prompt)  # RecipeError names the bad variable


def run_batch(
    pairs_path: str | Path | Pairs,
    recipe: Any,
    outdir: str | Path,
    *,
    backend: Any,
    request_options: Any = None,
    compose_options: Any = None,
    prompt: str | None = None,
    variables: Mapping[str, str] | None = None,
    concurrency: int = 4,
    budget_usd: float | None = None,
    max_attempts: int = 4,
    retry_failed: bool = False,
    compare: bool = True,
    progress: ProgressReporter | None = None,
    stop_event: threading.Event | None = None,
    report: bool = True,
    subject_box: tuple[float, float, float, float] | None = None,
) -> BatchSummary:
    """Run every job of a PAIRS file into ``outdir``; safe to run again to resume.

    ``recipe`` is a :class:`~fluxcompose.recipes.Recipe` or a name/path for
    ``load_recipe``. ``request_options`` / ``compose_options`` are the CLI-level
    :class:`~fluxcompose.run.RequestOptions` / ``ComposeOptions``; a PAIRS cell
    (seed, aspect_ratio, prompt, var.*, subject_box) overrides them for its row. ``concurrency``
    (>= 1) is capped at ``backend.max_concurrency(model)``. ``budget_usd`` (>= 0)
    bounds the journal's total spend over every run. Setting ``stop_event`` stops
    submitting; work in flight still reaches the journal. Raises InputError (exit 2)
    for an unusable PAIRS file or OUTDIR; a failed job never stops the others.
    """
    from . import run as run_mod  # the one pipeline; imported late so journal/pairs stand alone

    t0 = time.monotonic()
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {concurrency}")
    if max_attempts < 1:
        raise InputError(f"--max-attempts must be at least 1, got {max_attempts}")
    if budget_usd is not None and (budget_usd < 0 or not math.isfinite(budget_usd)):
        raise InputError(f"--budget must be a non-negative amount in USD, got {budget_usd}")
    pairs = pairs_path if isinstance(pairs_path, Pairs) else read_pairs(pairs_path)
    if isinstance(recipe, str | Path):
        from .recipes import load_recipe

        recipe = load_recipe(recipe)
    _precheck(recipe, pairs, prompt, variables)
    if request_options is None:
        request_options = run_mod.RequestOptions()
    if compose_options is None:
        compose_options = run_mod.ComposeOptions()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None

    lock = _lock_outdir(out)
    try:
        return _run_locked(
            pairs,
            recipe,
            out,
            backend=backend,
            request_options=request_options,
            compose_options=compose_options,
            prompt=prompt,
            variables=variables,
            concurrency=concurrency,
            budget_usd=budget_usd,
            max_attempts=max_attempts,
            retry_failed=retry_failed,
            compare=compare,
            progress=progress,
            stop_event=stop_event,
            report=report,
            t0=t0,
            run_mod=run_mod,
            subject_box=subject_box,
        )
    finally:
        if lock is not None:
            lock.close()


def _run_locked(
    pairs: Pairs,
    recipe: Any,
    out: Path,
    *,
    backend: Any,
    request_options: Any,
    compose_options: Any,
    prompt: str | None,
    variables: Mapping[str, str] | None,
    concurrency: int,
    budget_usd: float | None,
    max_attempts: int,
    retry_failed: bool,
    compare: bool,
    progress: ProgressReporter | None,
    stop_event: threading.Event | None,
    report: bool,
    t0: float,
    run_mod: Any,
    subject_box: tuple[float, float, float, float] | None = None,
) -> BatchSummary:
    _remove_stale_parts(out)
    model = run_mod.resolve_model(recipe, getattr(request_options, "model", None))
    from .backends import validate_model

    validate_model(model)
    cap = int(backend.max_concurrency(model))
    effective = max(1, min(concurrency, cap))
    stop = stop_event if stop_event is not None else threading.Event()
    # The free local backend does not need power-cut durability; paid ones do.
    journal = Journal.for_outdir(out, durable=backend.name != "local")
    b = _Batch(
        run=run_mod,
        backend=backend,
        outdir=out,
        journal=journal,
        concurrency=effective,
        budget_usd=budget_usd,
        max_attempts=max_attempts,
        retry_failed=retry_failed,
        compare=compare,
        progress=progress,
        stop=stop,
    )
    if effective < concurrency:
        b.say(
            f"fluxcompose: concurrency {concurrency} capped at {effective}"
            f" ({backend.name} allows {cap} tasks in flight for {model})"
        )
    context = json.dumps(
        _jsonable(
            {
                "recipe": recipe.to_dict() if hasattr(recipe, "to_dict") else recipe,
                "backend": backend.name,
                "request": request_options,
                "compose": compose_options,
                "prompt": prompt,
                "variables": dict(variables or {}),
                **({"subject_box": list(subject_box)} if subject_box else {}),
            }
        ),
        sort_keys=True,
    )
    reporter = ReportWriter(
        out,
        lambda: (journal.jobs(b.ordered_ids()), journal.spent_usd()),
        title=f"fluxcompose batch: {pairs.path.name}",
    )
    skipped = 0
    try:
        items, skipped = _plan(
            b,
            pairs.rows,
            pairs.errors,
            context,
            recipe,
            request_options,
            compose_options,
            prompt,
            variables,
            run_mod,
            subject_box,
        )
        items.sort(key=lambda it: 0 if b.decide(it.known) == "resume" else 1)
        b.unclaimed = len(items)
        last_tick = 0.0

        def tick(force: bool = False) -> None:
            nonlocal last_tick
            now = time.monotonic()
            if not force and now - last_tick < 0.2:
                return
            last_tick = now
            if progress is not None:
                progress.update(b.snapshot(t0))
            if report:
                with contextlib.suppress(OSError):
                    reporter.maybe_write()

        def wait_idle() -> None:
            while True:
                with b.changed:
                    if b.active == 0:
                        return
                    b.changed.wait(timeout=0.2)
                tick()

        try:
            for item in items:
                while not (stop.is_set() or b.budget_stopped):
                    if b.ahead.acquire(timeout=0.2):
                        break
                    tick()
                else:
                    break  # stopping: the rest stay pending for the next run
                if stop.is_set() or b.budget_stopped:
                    b.ahead.release()
                    break
                with b.lock:
                    b.active += 1
                    item.holds_ahead = True
                b.prep.submit(b.guarded(item, b.prepare_stage))
                tick()
            wait_idle()
        except KeyboardInterrupt:
            # No signal handler installed (library use): stop submitting, drain, report.
            stop.set()
            b.say(
                "fluxcompose: interrupted: finishing the jobs in flight (Ctrl-C again to quit now)"
            )
            wait_idle()
    finally:
        for pool in (b.prep, b.net, b.fin):
            pool.shutdown(wait=True, cancel_futures=False)

    summary = _summary(b, skipped + b.skipped, t0, stop.is_set(), effective)
    if report:
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
                finished_this_run=b.finished_this_run,
                eta_s=0.0 if summary.get("pending", 0) == 0 else None,
            )
        )
    return summary


def _plan(
    b: _Batch,
    rows: list[PairRow],
    errors: list[RowError],
    context: str,
    recipe: Any,
    request_options: Any,
    compose_options: Any,
    prompt: str | None,
    variables: Mapping[str, str] | None,
    run_mod: Any,
    subject_box: tuple[float, float, float, float] | None = None,
) -> tuple[list[_Item], int]:
    """Journal the bad rows, skip what the journal says is settled, and build the work list."""
    skipped = 0
    items: list[_Item] = []
    seen_ids: dict[str, int] = {}
    for err in errors:
        key = hashlib.sha256((context + err.raw).encode()).hexdigest()
        job_id = _provisional_id(err.line, key)
        if b.claim(job_id, err.line) is not None:
            continue
        b.journal.ensure(job_id, line=err.line, row_key=key)
        b.journal.mark_failed(job_id, str(err), kind="input")
        b.state[job_id] = "failed"
    for row in rows:
        key = _row_key(context, row)
        if row.id is not None:
            if row.id in seen_ids:
                job_id = _provisional_id(row.line, key)
                if b.claim(job_id, row.line) is None:
                    b.journal.ensure(job_id, line=row.line, row_key=key)
                    b.journal.mark_failed(
                        job_id,
                        f"line {row.line}: duplicate id {row.id!r} (first on line"
                        f" {seen_ids[row.id]})",
                        kind="input",
                    )
                    b.state[job_id] = "failed"
                continue
            seen_ids[row.id] = row.line
            known = b.journal.get(row.id)
        else:
            known = b.journal.find_by_row_key(key)
        action = b.decide(known)
        if known is not None and action in ("skip", "keep_failed"):
            # Settled: no need to compose it again to learn its id.
            if b.claim(known.job_id, row.line) is None:
                b.state[known.job_id] = known.state
                if action == "skip":
                    skipped += 1
            continue
        req = request_options
        overrides = {
            k: v
            for k, v in (("seed", row.seed), ("aspect_ratio", row.aspect_ratio))
            if v is not None
        }
        if overrides:
            req = dataclasses.replace(request_options, **overrides)
        spec = run_mod.JobSpec(
            recipe=recipe,
            sources=tuple(row.sources),
            prompt=row.prompt if row.prompt is not None else prompt,
            variables={**dict(variables or {}), **dict(row.variables)},
            request=req,
            compose=compose_options,
            job_id=row.id,
            subject_box=row.subject_box if row.subject_box is not None else subject_box,
        )
        items.append(_Item(row=row, row_key=key, known=known, spec=spec))
    return items, skipped


def _summary(
    b: _Batch, skipped: int, t0: float, interrupted: bool, concurrency: int
) -> BatchSummary:
    rows = b.journal.jobs(b.ordered_ids())
    done = [r for r in rows if r.state == "done"]
    failed = [r for r in rows if r.state == "failed"]
    # Rows never prepared (a stop or the budget came first) have no id yet but are jobs.
    jobs = len(b.order) + b.unclaimed
    summary: BatchSummary = {
        "jobs": jobs,
        "done": len(done),
        "failed": len(failed),
        "skipped": skipped,
        "spent_usd": round(b.journal.spent_usd(), 6),
        "wall_s": round(time.monotonic() - t0, 3),
        "outputs": [str(r.output_path) for r in done if r.output_path],
        "pending": jobs - len(done) - len(failed),
        "submitted": b.submitted,
        "budget_stopped": b.budget_stopped,
        # Stopped by a signal (or stop_event) with work left for the next run.
        "interrupted": interrupted and jobs > len(done) + len(failed),
        "concurrency": concurrency,
        "journal": str(b.journal.path),
        "errors": [
            {"line": r.line, "job_id": r.job_id, "kind": r.error_kind, "error": r.error}
            for r in failed
        ],
    }
    return summary
