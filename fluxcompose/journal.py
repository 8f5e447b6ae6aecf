"""The batch journal: one SQLite row per job, so a batch can stop at any moment and resume.

``OUTDIR/journal.sqlite`` is opened in WAL mode. Every state transition is its own
committed transaction, made *before* the pipeline takes the next step, so a
``kill -9`` loses nothing that was committed: in WAL mode a commit has reached the
operating system before ``commit()`` returns, which survives the death of the
process. ``durable=True`` (the default, used for paid backends) adds
``synchronous=FULL`` so a commit also survives a power cut; the free local backend
uses ``NORMAL``, which is only exposed to power loss.

States::

    pending ──> submitted ──> downloaded ──> done
       │            │              │
       └────────────┴──────────────┴──────> failed

``submitted`` means the provider accepted the task and ``task_id`` holds its id: a
resumed run polls that id instead of paying again. API keys are never stored.

The schema evolves through :data:`MIGRATIONS`, a numbered list of small functions
recorded in the ``_migrations`` table (the simonw/llm pattern). Never edit a
migration once it has shipped; append a new one.

Over 500 lines because it is the one owner of the SQLite schema: the migrations, the job
states and their transitions, the candidates, and the reviews' history, each a few short
queries. Keeping every SQL statement here is what lets one file answer what the journal holds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import StrEnum
from functools import partialmethod
from pathlib import Path
from typing import Any

__all__ = [
    "JOURNAL_NAME",
    "MIGRATIONS",
    "STATES",
    "Journal",
    "JobRow",
    "JobState",
    "CandidateRow",
    "REVIEW_EVENTS",
    "REVIEW_VERDICTS",
    "ReviewRow",
    "migrate",
]

JOURNAL_NAME = "journal.sqlite"


class JobState(StrEnum):
    """A job's state, as the ``state`` column spells it (see the diagram above)."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    DOWNLOADED = "downloaded"
    DONE = "done"
    FAILED = "failed"


STATES: tuple[str, ...] = tuple(s.value for s in JobState)

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_jobs(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE jobs (
            job_id        TEXT PRIMARY KEY,
            line          INTEGER,
            row_key       TEXT,
            state         TEXT NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending','submitted','downloaded','done','failed')),
            attempts      INTEGER NOT NULL DEFAULT 0,
            backend       TEXT,
            model         TEXT,
            task_id       TEXT,
            price_usd     REAL,
            cost_usd      REAL NOT NULL DEFAULT 0,
            error         TEXT,
            error_kind    TEXT,
            output_path   TEXT,
            sidecar_path  TEXT,
            metrics       TEXT,
            checks_passed INTEGER,
            sources       TEXT,
            prompt        TEXT,
            thumbs        TEXT,
            timings       TEXT,
            created_at    REAL NOT NULL,
            updated_at    REAL NOT NULL,
            started_at    REAL,
            finished_at   REAL
        )
        """
    )
    db.execute("CREATE INDEX jobs_row_key ON jobs (row_key)")
    db.execute("CREATE INDEX jobs_state ON jobs (state)")


@_migration
def m002_candidates(db: sqlite3.Connection) -> None:
    """Best-of-N (DESIGN.md section 12): one row per candidate of a job, so none is paid twice.

    ``state`` follows the jobs' states; ``cost_usd`` is what the candidate cost (also added
    to its job's ``cost_usd`` when paid, so ``spent_usd`` and the budget count it).
    """
    db.execute(
        """
        CREATE TABLE candidates (
            job_id       TEXT NOT NULL,
            idx          INTEGER NOT NULL,
            seed         INTEGER NOT NULL,
            state        TEXT NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending','submitted','downloaded','done','failed')),
            task_id      TEXT,
            cost_usd     REAL NOT NULL DEFAULT 0,
            output_path  TEXT,
            sidecar_path TEXT,
            passed       INTEGER,
            score        TEXT,
            error        TEXT,
            error_kind   TEXT,
            generate_s   REAL,
            updated_at   REAL NOT NULL,
            PRIMARY KEY (job_id, idx)
        )
        """
    )


@_migration
def m003_reviews(db: sqlite3.Connection) -> None:
    """Review (DESIGN.md section 13): one row per thing a person did to a job, never updated.

    ``verdict`` is ``approve`` or ``reject`` (a person's judgement), ``choose`` (a person made
    candidate ``candidate`` the job's output) or ``retry`` (``batch --retry-rejected`` replaced
    the output; the earlier one was kept at ``output_path``). A job's current verdict is its
    latest row when that row is an approve or a reject: a later choose or retry means the
    output shown now has not been judged. ``reasons`` is a ``;``-joined list of wire names.
    """
    db.execute(
        """
        CREATE TABLE reviews (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id      TEXT NOT NULL,
            candidate   INTEGER,
            verdict     TEXT NOT NULL CHECK (verdict IN ('approve','reject','choose','retry')),
            reasons     TEXT NOT NULL DEFAULT '',
            note        TEXT,
            reviewer    TEXT,
            reviewed_at REAL NOT NULL,
            output_path TEXT
        )
        """
    )
    db.execute("CREATE INDEX reviews_job ON reviews (job_id, id)")


@_migration
def m004_chosen_by(db: sqlite3.Connection) -> None:
    """Best-of-N's grounds (DESIGN.md section 12): ``chosen_by`` (checks, margin or none),
    and ``flagged_for_review`` (1 when the choice was blind) with its ``flag_reason``."""
    db.execute("ALTER TABLE jobs ADD COLUMN chosen_by TEXT")
    db.execute("ALTER TABLE jobs ADD COLUMN flagged_for_review INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE jobs ADD COLUMN flag_reason TEXT")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` around the block, ``ROLLBACK`` if it raises
    (anything, KeyboardInterrupt included): its statements land together or not at all.
    ``db`` must be in autocommit mode (``isolation_level=None``)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection) -> None:
    """Run the migrations that have not run yet on ``db``, each in its own transaction.

    ``db`` must be in autocommit mode (``isolation_level=None``): transactions are explicit.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        # One transaction: the migration and its record land together or not at all.
        with transaction(db):
            fn(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (fn.__name__, time.time()),
            )


_JSON_COLUMNS = ("metrics", "sources", "thumbs", "timings")
# INSERT ... RETURNING needs SQLite 3.35 (2021); older libraries read the row back instead.
_RETURNING = " RETURNING *" if sqlite3.sqlite_version_info >= (3, 35, 0) else ""


@dataclass(frozen=True)
class JobRow:
    """One job as the journal holds it. Timestamps are Unix seconds; money is USD."""

    job_id: str
    line: int | None
    row_key: str | None
    state: JobState
    attempts: int
    backend: str | None
    model: str | None
    task_id: str | None
    price_usd: float | None
    cost_usd: float
    error: str | None
    error_kind: str | None
    output_path: str | None
    sidecar_path: str | None
    metrics: dict[str, Any] | None
    checks_passed: bool | None
    sources: list[Any] | None
    prompt: str | None
    thumbs: dict[str, Any] | None
    timings: dict[str, Any] | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    chosen_by: str | None = None  # best-of-N: "checks" | "margin" | "none"
    flagged_for_review: bool = False  # a blind choice: a person must look
    flag_reason: str | None = None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> JobRow:
        # Columns this version does not know (a journal migrated by a newer one) are ignored.
        data = {k: v for k, v in dict(row).items() if k in _FIELDS}
        for key in _JSON_COLUMNS:
            if data[key] is not None:
                data[key] = json.loads(data[key])
        data["state"] = JobState(data["state"])
        if data["checks_passed"] is not None:
            data["checks_passed"] = bool(data["checks_passed"])
        if "flagged_for_review" in data:
            data["flagged_for_review"] = bool(data["flagged_for_review"])
        return cls(**data)


_FIELDS = frozenset(f.name for f in fields(JobRow))


@dataclass(frozen=True)
class CandidateRow:
    """One candidate of a best-of-N job (0-based ``idx``); money in USD."""

    job_id: str
    idx: int
    seed: int
    state: JobState
    task_id: str | None
    cost_usd: float
    output_path: str | None
    sidecar_path: str | None
    passed: bool | None
    score: dict[str, Any] | None
    error: str | None
    error_kind: str | None
    generate_s: float | None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> CandidateRow:
        data = {k: v for k, v in dict(row).items() if k in _CANDIDATE_FIELDS}
        data["state"] = JobState(data["state"])
        if data["score"] is not None:
            data["score"] = json.loads(data["score"])
        if data["passed"] is not None:
            data["passed"] = bool(data["passed"])
        return cls(**data)


_CANDIDATE_FIELDS = frozenset(f.name for f in fields(CandidateRow))


REVIEW_VERDICTS: tuple[str, ...] = ("approve", "reject")
"""A person's judgements of an output."""
REVIEW_EVENTS: tuple[str, ...] = (*REVIEW_VERDICTS, "choose", "retry")
"""Every kind of row in the ``reviews`` table (see :func:`m003_reviews`)."""


@dataclass(frozen=True)
class ReviewRow:
    """One row of the review history: ``verdict`` in :data:`REVIEW_EVENTS`; ``candidate`` is
    1-based (None: the job's output as it was); ``reviewed_at`` in Unix seconds."""

    id: int
    job_id: str
    candidate: int | None
    verdict: str
    reasons: tuple[str, ...]
    note: str | None
    reviewer: str | None
    reviewed_at: float
    output_path: str | None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ReviewRow:
        data = {k: v for k, v in dict(row).items() if k in _REVIEW_FIELDS}
        data["reasons"] = tuple(r for r in (data["reasons"] or "").split(";") if r)
        return cls(**data)


_REVIEW_FIELDS = frozenset(f.name for f in fields(ReviewRow))


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class Journal:
    """Thread-safe access to ``OUTDIR/journal.sqlite``.

    One connection shared by all threads behind a lock: SQLite serialises writers
    anyway, and each call is a short transaction, so the lock is never held
    across network or CPU work.
    """

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        # isolation_level=None: autocommit. Every transition is a single statement, hence
        # its own transaction, committed when execute() returns. One statement rather than
        # BEGIN/.../COMMIT also matters for speed: each call releases and re-takes the GIL,
        # which costs up to a switch interval when many threads are busy.
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            migrate(self._db)

    @classmethod
    def for_outdir(cls, outdir: str | Path, *, durable: bool = True) -> Journal:
        return cls(Path(outdir) / JOURNAL_NAME, durable=durable)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        """One statement, one transaction (autocommit), committed on return."""
        with self._lock:
            return self._db.execute(sql, params)

    # -- reads -------------------------------------------------------------

    def get(self, job_id: str) -> JobRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else JobRow.from_sql(row)

    def find_by_row_key(self, row_key: str) -> JobRow | None:
        """The most recently updated job recorded for a pairs-row key, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE row_key = ? ORDER BY updated_at DESC LIMIT 1",
                (row_key,),
            ).fetchone()
        return None if row is None else JobRow.from_sql(row)

    def jobs(self, job_ids: Iterable[str] | None = None) -> list[JobRow]:
        """All jobs (ordered by line), or those named, in the order given (missing ones left out)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY line, created_at").fetchall()
        out = [JobRow.from_sql(r) for r in rows]
        if job_ids is None:
            return out
        by_id = {r.job_id: r for r in out}
        return [by_id[j] for j in job_ids if j in by_id]

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state (every state present, 0 when none)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({state: n for state, n in rows})
        return out

    def spent_usd(self) -> float:
        """What every run recorded in this journal has spent, in USD."""
        with self._lock:
            (total,) = self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM jobs").fetchone()
        return float(total)

    # -- transitions (each one committed before returning) ------------------

    def ensure(
        self,
        job_id: str,
        *,
        line: int | None = None,
        row_key: str | None = None,
        backend: str | None = None,
        model: str | None = None,
        price_usd: float | None = None,
        prompt: str | None = None,
        sources: list[Any] | None = None,
    ) -> JobRow:
        """Record a job as pending unless it exists; refresh its descriptive fields either way.

        Returns the row as stored. Never changes the state, attempts, task id or cost of an
        existing job, so the caller can decide what to do from the returned row.
        """
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                """
                INSERT INTO jobs (job_id, line, row_key, backend, model, price_usd, prompt,
                                  sources, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (job_id) DO UPDATE SET
                    line = COALESCE(excluded.line, line),
                    row_key = COALESCE(excluded.row_key, row_key),
                    backend = COALESCE(excluded.backend, backend),
                    model = COALESCE(excluded.model, model),
                    price_usd = COALESCE(excluded.price_usd, price_usd),
                    prompt = COALESCE(excluded.prompt, prompt),
                    sources = COALESCE(excluded.sources, sources),
                    updated_at = excluded.updated_at
                """
                + _RETURNING,
                (
                    job_id,
                    line,
                    row_key,
                    backend,
                    model,
                    price_usd,
                    prompt,
                    _dumps(sources),
                    now,
                    now,
                ),
            )
            row = cur.fetchone() if _RETURNING else None
        if row is not None:
            return JobRow.from_sql(row)
        got = self.get(job_id)
        assert got is not None
        return got

    def _update(
        self,
        job_id: str,
        *,
        add_cost: float = 0.0,
        add_attempts: int = 0,
        started_at: float | None = None,
        **fields: Any,
    ) -> None:
        """One UPDATE. Costs and attempts accumulate; ``started_at`` is kept once set."""
        fields["updated_at"] = time.time()
        for key in _JSON_COLUMNS:
            if key in fields:
                fields[key] = _dumps(fields[key])
        cols = ", ".join(f"{k} = ?" for k in fields)
        # Costs accumulate: a job paid for, failed after payment and retried cost twice.
        cols += ", cost_usd = cost_usd + ?, attempts = attempts + ?"
        cols += ", started_at = COALESCE(started_at, ?)"
        cur = self._write(
            f"UPDATE jobs SET {cols} WHERE job_id = ?",
            (*fields.values(), float(add_cost), int(add_attempts), started_at, job_id),
        )
        if cur.rowcount != 1:
            raise KeyError(job_id)

    def start_attempt(self, job_id: str) -> None:
        """Count one more generation attempt (a submission or a resumed poll) on its own.

        The batch folds this count into the next transition instead (``attempts=`` on
        the ``mark_*`` methods), saving a write on the submission path.
        """
        self._update(job_id, add_attempts=1, started_at=time.time(), error=None, error_kind=None)

    def mark_pending(self, job_id: str, *, error: str | None = None) -> None:
        """Back to pending (a failed job being retried), forgetting any stale task id."""
        self._update(job_id, state=JobState.PENDING, task_id=None, error=error, error_kind=None)

    def mark_submitted(
        self, job_id: str, task_id: str, *, attempts: int = 0, started_at: float | None = None
    ) -> None:
        """The provider accepted the task: from now on resume polls ``task_id``.

        ``attempts`` (>= 0) are added to the count; ``started_at`` is kept if none is set.
        """
        self._update(
            job_id,
            add_attempts=attempts,
            started_at=started_at,
            state=JobState.SUBMITTED,
            task_id=task_id,
        )

    def mark_downloaded(
        self,
        job_id: str,
        output_path: str | Path,
        *,
        attempts: int = 0,
        started_at: float | None = None,
    ) -> None:
        """The result is on disk (paid for); finishing it needs no network."""
        self._update(
            job_id,
            add_attempts=attempts,
            started_at=started_at,
            state=JobState.DOWNLOADED,
            output_path=str(output_path),
            error=None,
            error_kind=None,
        )

    def mark_done(
        self,
        job_id: str,
        *,
        output_path: str | Path,
        cost_usd: float,
        sidecar_path: str | Path | None = None,
        metrics: dict[str, Any] | None = None,
        checks_passed: bool | None = None,
        timings: dict[str, Any] | None = None,
        thumbs: dict[str, Any] | None = None,
        chosen_by: str | None = None,
        flag_reason: str | None = None,
    ) -> None:
        """The job is finished; ``cost_usd`` (what this run paid for it) is added to its cost.

        Best-of-N gives ``chosen_by``; a ``flag_reason`` flags the job for review."""
        self._update(
            job_id,
            add_cost=cost_usd,
            state=JobState.DONE,
            output_path=str(output_path),
            sidecar_path=None if sidecar_path is None else str(sidecar_path),
            metrics=metrics,
            checks_passed=None if checks_passed is None else int(bool(checks_passed)),
            timings=timings,
            thumbs=thumbs,
            error=None,
            error_kind=None,
            finished_at=time.time(),
            chosen_by=chosen_by,
            flagged_for_review=int(flag_reason is not None),
            flag_reason=flag_reason,
        )

    def mark_failed(
        self,
        job_id: str,
        error: str,
        *,
        kind: str,
        cost_usd: float | None = None,
        thumbs: dict[str, Any] | None = None,
        attempts: int = 0,
        started_at: float | None = None,
    ) -> None:
        """A failure with its one-line reason; ``kind`` is moderated, auth, request, transient...

        ``cost_usd`` is set when the provider was paid anyway (a result that could not
        be finished), so the budget keeps counting it.
        """
        fields: dict[str, Any] = {
            "state": JobState.FAILED,
            "error": error,
            "error_kind": kind,
            "finished_at": time.time(),
        }
        if thumbs is not None:
            fields["thumbs"] = thumbs
        self._update(
            job_id,
            add_cost=cost_usd or 0.0,
            add_attempts=attempts,
            started_at=started_at,
            **fields,
        )

    def note_error(
        self,
        job_id: str,
        error: str,
        *,
        kind: str,
        attempts: int = 0,
        started_at: float | None = None,
    ) -> None:
        """Record the latest error without changing the state (a stop mid-job, or a retry
        about to start); ``attempts`` are added to the job's count."""
        self._update(
            job_id, add_attempts=attempts, started_at=started_at, error=error, error_kind=kind
        )

    # Another attempt is about to start after ``error``: the same record, counting the
    # attempt that failed unless ``attempts`` says otherwise.
    note_retry = partialmethod(note_error, attempts=1)

    def set_thumbs(self, job_id: str, thumbs: dict[str, Any]) -> None:
        self._update(job_id, thumbs=thumbs)

    # -- candidates (best-of-N) ------------------------------------------------

    def ensure_candidates(self, job_id: str, seeds: Sequence[int]) -> list[CandidateRow]:
        """Record candidates 0..len(seeds)-1 as pending unless they exist; return all of the job's.

        An existing candidate keeps its seed: a resume draws exactly what it drew before.
        """
        now = time.time()
        with self._lock, transaction(self._db):
            self._db.executemany(
                "INSERT OR IGNORE INTO candidates (job_id, idx, seed, updated_at)"
                " VALUES (?, ?, ?, ?)",
                [(job_id, i, int(s), now) for i, s in enumerate(seeds)],
            )
        return self.candidates(job_id)

    def candidates(self, job_id: str) -> list[CandidateRow]:
        """A job's candidates by index (empty for a job run without --candidates)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM candidates WHERE job_id = ? ORDER BY idx", (job_id,)
            ).fetchall()
        return [CandidateRow.from_sql(r) for r in rows]

    def update_candidate(self, job_id: str, idx: int, **fields: Any) -> None:
        """Set a candidate's columns (``state``, ``task_id``, ``passed``, ``score``...) in one commit."""
        fields["updated_at"] = time.time()
        if "score" in fields:
            fields["score"] = _dumps(fields["score"])
        if "passed" in fields and fields["passed"] is not None:
            fields["passed"] = int(bool(fields["passed"]))
        cols = ", ".join(f"{k} = ?" for k in fields)
        cur = self._write(
            f"UPDATE candidates SET {cols} WHERE job_id = ? AND idx = ?",
            (*fields.values(), job_id, idx),
        )
        if cur.rowcount != 1:
            raise KeyError((job_id, idx))

    def candidate_paid(
        self, job_id: str, idx: int, output_path: str | Path, cost_usd: float
    ) -> None:
        """A candidate's result is on disk: the candidate becomes ``downloaded`` with its cost,
        and the cost is added to the job's ``cost_usd``, in one transaction."""
        now = time.time()
        with self._lock, transaction(self._db):
            self._db.execute(
                "UPDATE candidates SET state = ?, output_path = ?, cost_usd = cost_usd + ?,"
                " error = NULL, error_kind = NULL, updated_at = ? WHERE job_id = ? AND idx = ?",
                (
                    JobState.DOWNLOADED.value,
                    str(output_path),
                    float(cost_usd),
                    now,
                    job_id,
                    idx,
                ),
            )
            self._db.execute(
                "UPDATE jobs SET cost_usd = cost_usd + ?, updated_at = ? WHERE job_id = ?",
                (float(cost_usd), now, job_id),
            )

    # -- reviews (DESIGN.md section 13) -----------------------------------------

    def add_review(
        self,
        job_id: str,
        verdict: str,
        *,
        reasons: Sequence[str] = (),
        note: str | None = None,
        reviewer: str | None = None,
        candidate: int | None = None,
        output_path: str | Path | None = None,
    ) -> ReviewRow:
        """Append one row to the review history, committed before returning; return it.

        ``verdict`` must be one of :data:`REVIEW_EVENTS` (ValueError otherwise); reasons are
        wire names, stored ``;``-joined. Nothing is ever updated or deleted: the history stays.
        """
        if verdict not in REVIEW_EVENTS:
            raise ValueError(f"unknown review verdict {verdict!r}")
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO reviews (job_id, candidate, verdict, reasons, note, reviewer,"
                " reviewed_at, output_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    candidate,
                    verdict,
                    ";".join(reasons),
                    note,
                    reviewer,
                    now,
                    None if output_path is None else str(output_path),
                ),
            )
            row = self._db.execute(
                "SELECT * FROM reviews WHERE id = ?", (cur.lastrowid,)
            ).fetchone()
        return ReviewRow.from_sql(row)

    def review_history(self, job_id: str | None = None) -> list[ReviewRow]:
        """Every review row, oldest first (only ``job_id``'s when given)."""
        with self._lock:
            if job_id is None:
                rows = self._db.execute("SELECT * FROM reviews ORDER BY id").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM reviews WHERE job_id = ? ORDER BY id", (job_id,)
                ).fetchall()
        return [ReviewRow.from_sql(r) for r in rows]

    def current_reviews(self) -> dict[str, ReviewRow]:
        """Each job's current verdict: its latest row, kept when that is an approve or reject.

        A job whose latest row is a ``choose`` or ``retry`` (its output changed since it was
        judged) is left out, as is a job never reviewed.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM reviews WHERE id IN (SELECT MAX(id) FROM reviews GROUP BY job_id)"
            ).fetchall()
        out = {}
        for r in rows:
            review = ReviewRow.from_sql(r)
            if review.verdict in REVIEW_VERDICTS:
                out[review.job_id] = review
        return out

    def set_output(
        self,
        job_id: str,
        *,
        output_path: str | Path,
        metrics: dict[str, Any] | None,
        checks_passed: bool | None,
    ) -> None:
        """Say the job's output is now ``output_path`` with these metrics (a candidate chosen by
        a person), in one commit; the state, cost and attempts are unchanged."""
        self._update(
            job_id,
            output_path=str(output_path),
            metrics=metrics,
            checks_passed=None if checks_passed is None else int(bool(checks_passed)),
        )

    def change_marker(self) -> str:
        """A short string that changes when a job is added or updated or a review recorded."""
        with self._lock:
            n, last = self._db.execute("SELECT COUNT(*), MAX(updated_at) FROM jobs").fetchone()
            (rid,) = self._db.execute("SELECT MAX(id) FROM reviews").fetchone()
        return f"{n}:{last}:{rid}"

    def reset_for_retry(self, job_id: str, *, archived: str | Path | None) -> None:
        """A rejected job is to run again (``batch --retry-rejected``), in one transaction:
        back to pending without its task id or candidates (their cost stays in the job's
        ``cost_usd``, so the budget keeps counting it), and a ``retry`` row in the review
        history pointing at the earlier output's copy ``archived``."""
        now = time.time()
        with self._lock, transaction(self._db):
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, task_id = NULL, error = NULL, error_kind = NULL,"
                " updated_at = ? WHERE job_id = ?",
                (JobState.PENDING.value, now, job_id),
            )
            if cur.rowcount != 1:
                raise KeyError(job_id)
            self._db.execute("DELETE FROM candidates WHERE job_id = ?", (job_id,))
            self._db.execute(
                "INSERT INTO reviews (job_id, verdict, reviewed_at, output_path)"
                " VALUES (?, 'retry', ?, ?)",
                (job_id, now, None if archived is None else str(archived)),
            )

    def done_jobs_brief(self) -> list[dict[str, Any]]:
        """The done jobs for a listing (the review grid), by line: job_id, line, output_path,
        sidecar_path, checks_passed, finished_at, updated_at, and as JSON text ``checks``
        (the metrics' checks), ``thumbs``. Cheaper than :meth:`jobs` for thousands of jobs."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, line, output_path, sidecar_path, checks_passed, finished_at,"
                " updated_at, json_extract(metrics, '$.checks') AS checks, thumbs FROM jobs"
                " WHERE state = 'done' AND output_path IS NOT NULL ORDER BY line, created_at"
            ).fetchall()
        return [dict(r) for r in rows]
