"""Planning: which rows need work, what to do with each, and how a row is recognised again."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ..errors import ErrorKind, InputError
from ..journal import JobRow, JobState, Journal
from ..pairs import PairRow, Pairs
from ..recipes import Recipe
from ..request import JobSpec
from ..run import image_ok
from .config import BatchConfig
from .progress import Ledger

__all__ = [
    "Action",
    "WorkItem",
    "context_key",
    "decide",
    "image_ok",
    "plan",
    "precheck",
    "provisional_id",
    "row_key",
]

# Failure kinds after which a stored task id is still worth polling on --retry-failed
# (the provider may have finished the task); after the others the task is gone.
_POLL_AGAIN = frozenset(
    {
        ErrorKind.TRANSIENT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.INTERNAL,
        ErrorKind.GENERATION,
        ErrorKind.OUTPUT,
    }
)


class Action(StrEnum):
    """What a run does with a job, given its journal row."""

    RUN = "run"  # compose and submit (again)
    SKIP = "skip"  # done: never paid for twice
    KEEP_FAILED = "keep_failed"  # failed, and not to be retried
    RESUME = "resume"  # poll the stored task id instead of submitting


def decide(prev: JobRow | None, *, retry_failed: bool, resumable: bool) -> Action:
    """The action for a job whose journal row is ``prev`` (None: never seen).

    ``resumable``: the backend can poll a stored task id (BFL).
    """
    if prev is None:
        return Action.RUN
    if prev.state == JobState.DONE:
        return Action.SKIP
    if prev.state == JobState.FAILED:
        if prev.error_kind == ErrorKind.INPUT:
            return Action.RUN  # free to try again, and the file may have been fixed
        if prev.error_kind == ErrorKind.MODERATED or not retry_failed:
            return Action.KEEP_FAILED
        if prev.task_id and resumable and prev.error_kind in _POLL_AGAIN:
            return Action.RESUME  # the task may well have finished since: poll, don't pay again
        return Action.RUN
    if prev.task_id and resumable and prev.state in (JobState.SUBMITTED, JobState.DOWNLOADED):
        return Action.RESUME
    return Action.RUN


@dataclass(frozen=True)
class WorkItem:
    """One PAIRS row that needs composing to learn (or settle) its job."""

    row: PairRow
    row_key: str
    spec: JobSpec
    resume: bool  # the journal already knows its task: poll it first


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def context_key(cfg: BatchConfig, backend_name: str) -> str:
    """The run's settings as canonical JSON: part of every row key."""
    recipe = cfg.recipe
    return json.dumps(
        _jsonable(
            {
                "recipe": recipe.to_dict() if recipe is not None else None,
                "backend": backend_name,
                "request": cfg.request_options,
                "compose": cfg.compose_options,
                "prompt": cfg.prompt,
                "variables": dict(cfg.variables),
                **({"subject_box": list(cfg.subject_box)} if cfg.subject_box else {}),
            }
        ),
        sort_keys=True,
    )


def row_key(context: str, row: PairRow) -> str:
    """A fingerprint of a row in its context, to recognise it on a later run without composing.

    Local sources contribute their size and modification time: touching a file only costs
    a recompose (the content hash in the job id still matches); editing it makes a new job.
    """
    h = hashlib.sha256(context.encode())
    parts: list[object] = [row.id, row.prompt, row.seed, row.aspect_ratio, dict(row.variables)]
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


def provisional_id(line: int, key: str) -> str:
    """An id for a row that never got a real one (its input could not be read)."""
    return f"line{line}-{key[:10]}"


def precheck(cfg: BatchConfig, pairs: Pairs) -> None:
    """Errors that would fail every row are bad usage (exit 2), not a thousand failed jobs."""
    recipe: Recipe | None = cfg.recipe
    if recipe is None:
        if cfg.prompt is None and not all(r.prompt is not None for r in pairs.rows):
            raise InputError("give a --recipe (or a --prompt, or a prompt column for every row)")
        return
    if not any(r.prompt is not None for r in pairs.rows):
        recipe.render(dict(cfg.variables), cfg.prompt)  # RecipeError names the bad variable


def _fail_row(ledger: Ledger, journal: Journal, job_id: str, line: int, key: str, why: str) -> None:
    if ledger.claim(job_id, line) is None:
        journal.ensure(job_id, line=line, row_key=key)
        journal.mark_failed(job_id, why, kind=ErrorKind.INPUT)
        ledger.set_state(job_id, JobState.FAILED)


def plan(
    pairs: Pairs, cfg: BatchConfig, *, context: str, ledger: Ledger, resumable: bool
) -> list[WorkItem]:
    """Journal the bad rows, settle what the journal says is settled, and list the rest.

    Rows whose task the journal knows come first, so paid work is picked up first.
    """
    journal = ledger.journal
    for err in pairs.errors:
        key = hashlib.sha256((context + err.raw).encode()).hexdigest()
        _fail_row(ledger, journal, provisional_id(err.line, key), err.line, key, str(err))
    items: list[WorkItem] = []
    seen_ids: dict[str, int] = {}
    for row in pairs.rows:
        key = row_key(context, row)
        if row.id is not None:
            if row.id in seen_ids:
                why = f"line {row.line}: duplicate id {row.id!r} (first on line {seen_ids[row.id]})"
                _fail_row(ledger, journal, provisional_id(row.line, key), row.line, key, why)
                continue
            seen_ids[row.id] = row.line
            known = journal.get(row.id)
        else:
            known = journal.find_by_row_key(key)
        action = decide(known, retry_failed=cfg.retry_failed, resumable=resumable)
        if known is not None and action in (Action.SKIP, Action.KEEP_FAILED):
            # Settled: no need to compose it again to learn its id.
            if ledger.claim(known.job_id, row.line) is None:
                ledger.set_state(known.job_id, known.state, skipped=action is Action.SKIP)
            continue
        items.append(WorkItem(row, key, _spec(cfg, row), resume=action is Action.RESUME))
    items.sort(key=lambda it: not it.resume)
    ledger.unclaimed = len(items)
    return items


def _spec(cfg: BatchConfig, row: PairRow) -> JobSpec:
    """The row's job: the run's options with the row's own cells on top."""
    request = cfg.request_options
    if row.seed is not None or row.aspect_ratio is not None:
        request = dataclasses.replace(
            request,
            seed=request.seed if row.seed is None else row.seed,
            aspect_ratio=request.aspect_ratio if row.aspect_ratio is None else row.aspect_ratio,
        )
    return JobSpec(
        recipe=cfg.recipe,
        sources=tuple(row.sources),
        prompt=row.prompt if row.prompt is not None else cfg.prompt,
        variables={**dict(cfg.variables), **dict(row.variables)},
        request=request,
        compose=cfg.compose_options,
        job_id=row.id,
        subject_box=row.subject_box if row.subject_box is not None else cfg.subject_box,
    )
