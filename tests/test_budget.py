"""The budget's bookkeeping between threads: a job's cost goes into the journal and its
reservation comes off in one step (``Pipeline.settle``), so a reservation made meanwhile
counts that cost exactly once.

Counted twice (spent, and still reserved), a batch stops a job early: a best-of-N batch
with a budget for five candidates once paid for four. Not at all, it would go over.
No timing: the other thread's reservation is started in the middle of the journal write,
and the write goes on only once that thread has either finished or is made to wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import cast

import pytest

from fluxcompose.backends.local import LocalBackend
from fluxcompose.batch.config import BatchConfig
from fluxcompose.batch.pipeline import BatchJob, Pipeline
from fluxcompose.batch.plan import WorkItem
from fluxcompose.batch.progress import Ledger
from fluxcompose.candidates import CandidateHooks, run_candidates
from fluxcompose.journal import Journal
from fluxcompose.prepare import prepare_job
from fluxcompose.request import JobSpec, RequestOptions

PRICE = 0.035


class WatchedLock:
    """A lock that says when a thread had to wait for it (``waited`` is set)."""

    def __init__(self, waited: threading.Event) -> None:
        self._lock = threading.Lock()
        self.waited = waited

    def __enter__(self) -> WatchedLock:
        if not self._lock.acquire(blocking=False):
            self.waited.set()
            self._lock.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


def batch_job() -> BatchJob:
    # The budget reads only a job's reservation; its PAIRS row plays no part.
    return BatchJob(cast(WorkItem, SimpleNamespace()))


def budget_pipeline(journal: Journal, outdir: Path, budget_usd: float) -> Pipeline:
    """A batch pipeline that is never run: only its budget is used."""
    return Pipeline(
        BatchConfig(budget_usd=budget_usd),
        backend=LocalBackend(),
        outdir=outdir,
        ledger=Ledger(journal),
        concurrency=2,
        progress=None,
        stop=threading.Event(),
    )


@pytest.mark.parametrize("budget_jobs", [2, 3])
def test_a_reservation_during_a_settle_counts_the_cost_once(
    tmp_path: Path, budget_jobs: int
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    pipe = budget_pipeline(journal, tmp_path, budget_jobs * PRICE)
    moved_on = threading.Event()  # the other thread has reserved, or waits to
    pipe._budget_lock = WatchedLock(moved_on)  # type: ignore[assignment]
    # budget_jobs - 1 jobs are on the network; the first of them is being settled.
    in_flight = [batch_job() for _ in range(budget_jobs - 1)]
    for job in in_flight:
        assert pipe.reserve(job, PRICE, force=False)
    first = in_flight[0]
    journal.ensure("first", line=1)
    late = batch_job()
    got: list[bool] = []

    def reserve_late() -> None:
        got.append(pipe.reserve(late, PRICE, force=False))
        moved_on.set()

    other = threading.Thread(target=reserve_late)

    def record() -> None:
        journal.mark_done("first", output_path=tmp_path / "first.png", cost_usd=PRICE)
        other.start()  # the cost is in the journal; the reservation is not off yet
        assert moved_on.wait(60), "the other reservation neither ran nor waited"

    pipe.settle(first, PRICE, record)
    other.join(60)
    # One job's cost spent, budget_jobs - 2 in flight, one more fits exactly.
    assert got == [True]
    assert journal.spent_usd() == pytest.approx(PRICE)
    assert pipe.reserved_usd == pytest.approx((budget_jobs - 1) * PRICE)
    assert first.reserved == pytest.approx(0.0) and late.reserved == pytest.approx(PRICE)
    assert not pipe.budget_stopped
    # And now the budget is full: the next reservation is refused.
    assert not pipe.reserve(batch_job(), PRICE, force=False)
    assert pipe.budget_stopped
    journal.close()


def test_settle_takes_the_reservation_off_even_when_the_journal_write_fails(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    pipe = budget_pipeline(journal, tmp_path, PRICE)
    job = batch_job()
    assert pipe.reserve(job, PRICE, force=False)

    def record() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        pipe.settle(job, PRICE, record)
    assert pipe.reserved_usd == pytest.approx(0.0) and job.reserved == pytest.approx(0.0)
    journal.close()


def test_best_of_n_puts_each_candidates_cost_in_the_journal_inside_settle(
    tmp_path: Path,
) -> None:
    """The candidates' side of the same rule: a paid candidate's cost is written while the
    caller's ``settle`` holds the budget, and never released apart from it."""
    journal = Journal(tmp_path / "journal.sqlite")
    prepared = prepare_job(
        JobSpec(recipe=None, prompt="a red square", request=RequestOptions(seed=7)),
        backend_name="local",
    )
    journal.ensure(prepared.job_id, line=1)
    settling = threading.Event()
    written: list[bool] = []
    settled: list[float] = []
    released: list[float] = []
    candidate_paid = journal.candidate_paid

    def watched_paid(*args: object, **kwargs: object) -> None:
        written.append(settling.is_set())
        candidate_paid(*args, **kwargs)  # type: ignore[arg-type]

    journal.candidate_paid = watched_paid  # type: ignore[method-assign]

    def settle(price: float, record: Callable[[], None]) -> None:
        settling.set()
        try:
            record()
        finally:
            settling.clear()
        settled.append(price)

    hooks = CandidateHooks(settle=settle, release=released.append)
    got = run_candidates(
        prepared, LocalBackend(), tmp_path, n=3, compare=False, journal=journal, hooks=hooks
    )
    assert got is not None
    assert written == [True, True, True]
    assert settled == [prepared.price_usd] * 3 and released == []
    journal.close()
