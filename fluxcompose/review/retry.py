"""``batch --retry-rejected``: the rejected jobs of an OUTDIR, run again with new seeds.

The earlier output stays in the history: before a job is reset, its output, sidecar,
canvas, sheet and candidates are copied to ``OUTDIR/history/<job>/<n>/``, and the journal
gets a ``retry`` row pointing there (the earlier verdict is already in the history). Each
retried row carries the job's id, so the new output takes the job's place, and a fresh
seed that differs from the one it had.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..journal import JOURNAL_NAME, JobRow, JobState, Journal
from ..pairs import PairRow, Pairs

__all__ = ["HISTORY_DIR", "RetryPlan", "archive_job", "plan_retry", "apply_retry"]

HISTORY_DIR = "history"
SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class RetryPlan:
    """The run to make: the rejected jobs' rows, each with its job id and a new seed, and the
    rows already done (skipped, so the report still lists them); nothing else is run."""

    pairs: Pairs
    job_ids: tuple[str, ...]  # rejected and done: archived, then reset
    old_seeds: dict[str, int | None]
    unfinished: tuple[str, ...] = ()  # reset by an earlier retry that stopped (budget, signal)


def _row_for(job: JobRow, rows: list[PairRow]) -> PairRow | None:
    """The PAIRS row a job came from: by its id column, else by its line."""
    by_id = next((r for r in rows if r.id == job.job_id), None)
    if by_id is not None:
        return by_id
    return next((r for r in rows if r.id is None and r.line == job.line), None)


def _old_seed(outdir: Path, job: JobRow) -> int | None:
    path = Path(job.sidecar_path) if job.sidecar_path else outdir / f"{job.job_id}.json"
    try:
        seed = json.loads(path.read_text(encoding="utf-8")).get("seed")
    except (OSError, ValueError):
        return None
    return seed if isinstance(seed, int) else None


def plan_retry(outdir: str | Path, pairs: Pairs, rng: random.Random | None = None) -> RetryPlan:
    """Which jobs to run again: done jobs whose current verdict is reject, found in ``pairs``.

    Raises InputError when OUTDIR has no journal. Reads only.
    """
    out = Path(outdir)
    if not (out / JOURNAL_NAME).is_file():
        raise InputError(f"--retry-rejected: {out} has no {JOURNAL_NAME}: nothing was reviewed")
    rng = rng or random.SystemRandom()
    rows: list[PairRow | None] = [None] * len(pairs.rows)
    ids: list[str] = []
    old: dict[str, int | None] = {}
    with Journal(out / JOURNAL_NAME) as journal:
        rejected = {k for k, r in journal.current_reviews().items() if r.verdict == "reject"}
        last = {r.job_id: r.verdict for r in journal.review_history()}
        jobs = journal.jobs()
        done = [j for j in jobs if j.state == JobState.DONE]
        unfinished: list[str] = []
        for job in jobs:
            if job.state == JobState.DONE or last.get(job.job_id) != "retry":
                continue
            row = _row_for(job, pairs.rows)
            if row is not None:
                fresh = rng.randrange(0, SEED_MAX)
                rows[pairs.rows.index(row)] = dataclasses.replace(row, id=job.job_id, seed=fresh)
                unfinished.append(job.job_id)
        for job in done:
            row = _row_for(job, pairs.rows)
            if row is not None:
                rows[pairs.rows.index(row)] = row
        for job in done:
            if job.job_id not in rejected:
                continue
            row = _row_for(job, pairs.rows)
            if row is None:
                continue
            seed = _old_seed(out, job)
            new = rng.randrange(0, SEED_MAX)
            while new == seed:
                new = rng.randrange(0, SEED_MAX)
            rows[pairs.rows.index(row)] = dataclasses.replace(row, id=job.job_id, seed=new)
            ids.append(job.job_id)
            old[job.job_id] = seed
    kept = [r for r in rows if r is not None]
    return RetryPlan(Pairs(pairs.path, pairs.format, kept, []), tuple(ids), old, tuple(unfinished))


def archive_job(outdir: Path, job: JobRow) -> Path:
    """Copy a job's files to ``OUTDIR/history/<job>/<n>/`` (n = 1, 2, ...) and return it."""
    base = outdir / HISTORY_DIR / job.job_id
    n = 1
    while (base / str(n)).exists():
        n += 1
    dest = base / str(n)
    dest.mkdir(parents=True)
    for path in sorted(outdir.glob(f"{glob.escape(job.job_id)}.*")):
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    cands = outdir / "candidates" / job.job_id
    if cands.is_dir():
        shutil.copytree(cands, dest / "candidates")
    return dest


def apply_retry(outdir: str | Path, plan: RetryPlan) -> None:
    """Archive each planned job and reset it in the journal (committed per job)."""
    out = Path(outdir)
    with Journal(out / JOURNAL_NAME) as journal:
        for job_id in plan.job_ids:
            job = journal.get(job_id)
            if job is None:
                continue
            dest = archive_job(out, job)
            output = Path(job.output_path).name if job.output_path else None
            journal.reset_for_retry(
                job_id, archived=(dest / output).relative_to(out) if output else dest
            )
