"""A/B runs (DESIGN.md section 12): every pair under every arm, then ab.json and ab.html.

An arm is ``NAME=MODEL[:stitched|separate]``: the model goes to ``RequestOptions.model`` and
the mode to ``RequestOptions.references``. Each arm is an ordinary resumable batch in
``OUTDIR/<NAME>/`` (:func:`fluxcompose.batch.run_batch`, its own journal and report).

Interleaving: the pairs are taken in chunks of ``chunk`` rows (default: the concurrency).
For chunk k, every arm runs its batch over the prefix of the PAIRS file up to the end of
chunk k, one arm after the other, before any arm starts chunk k+1. The batch skips what
its journal has done, so each call only does the new chunk (and resumes anything left
over). An interrupted A/B is therefore balanced to within one chunk, and running the same
command again resumes every arm where it stopped, never paying twice. Within a chunk the
arm's batch keeps its concurrency. The statistics pair arms only on pairs both settled.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ab_report import write_ab_html
from .batch import BatchConfig, BatchSummary, run_batch
from .batch.plan import context_key, row_key
from .errors import FluxComposeError, InputError
from .images import write_bytes_atomic
from .journal import JobRow, JobState, Journal
from .pairs import Pairs, read_pairs
from .scoring import KEY_METRICS as SCORED
from .scoring import (
    Score,
    compare_scores,
    metric_number,
    score_checks,
    sign_test,
    wilson_interval,
)

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = [
    "AB_HTML",
    "AB_JSON",
    "KEY_METRICS",
    "Arm",
    "ab_summary",
    "approval_stats",
    "refresh_approval",
    "parse_arm",
    "parse_arms",
    "run_ab",
]

AB_JSON = "ab.json"
AB_HTML = "ab.html"
REFERENCE_MODES = ("stitched", "separate")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RESERVED = frozenset({"candidates", "thumbs"})

# The key metrics averaged per arm: name -> path in a job's compare metrics.
KEY_METRICS: dict[str, tuple[str, ...]] = {m.name: m.path for m in SCORED if m.averaged}


@dataclass(frozen=True)
class Arm:
    """One arm: its folder name, model and references mode (None: the model's default)."""

    name: str
    model: str
    references: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "references": self.references}


def parse_arm(text: str) -> Arm:
    """``NAME=MODEL[:stitched|separate]`` -> :class:`Arm`; InputError (exit 2) when malformed.

    NAME is a safe folder name (letters, digits, ``_`` and ``-``, at most 64); MODEL is one
    of :data:`fluxcompose.backends.base.MODELS`.
    """
    from .backends.base import MODELS

    name, sep, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not rest:
        raise InputError(f"--arm {text!r}: expected NAME=MODEL[:stitched|separate]")
    if not _NAME.match(name) or name.lower() in _RESERVED:
        raise InputError(
            f"--arm {text!r}: the name must be letters, digits, '_' or '-' (at most 64,"
            f" not {', '.join(sorted(_RESERVED))}): it is the arm's folder in OUTDIR"
        )
    model, colon, mode = rest.partition(":")
    if model not in MODELS:
        raise InputError(
            f"--arm {text!r}: unknown model {model!r}; choose one of {', '.join(MODELS)}"
        )
    if colon and mode not in REFERENCE_MODES:
        raise InputError(f"--arm {text!r}: the references mode must be stitched or separate")
    return Arm(name, model, mode or None)


def parse_arms(texts: Sequence[str]) -> list[Arm]:
    """At least two arms with distinct names (case-insensitive: they are folders)."""
    arms = [parse_arm(t) for t in texts]
    if len(arms) < 2:
        raise InputError("an A/B needs at least two --arm NAME=MODEL[:stitched|separate]")
    seen: dict[str, str] = {}
    for a in arms:
        key = a.name.lower()
        if key in seen:
            raise InputError(f"--arm names must be unique: {seen[key]!r} and {a.name!r}")
        seen[key] = a.name
    return arms


def arm_config(base: BatchConfig, arm: Arm) -> BatchConfig:
    """The batch configuration of ``arm``: ``base`` with the arm's model and references mode."""
    ro = dataclasses.replace(base.request_options, model=arm.model, references=arm.references)
    return dataclasses.replace(base, request_options=ro)


def _prefix(pairs: Pairs, k: int) -> Pairs:
    """The first ``k`` good rows; the bad rows ride along (they are journaled as failed)."""
    return dataclasses.replace(pairs, rows=pairs.rows[:k])


def run_ab(
    pairs_path: str | Path | Pairs,
    arms: Sequence[Arm],
    outdir: str | Path,
    *,
    backend: Backend,
    config: BatchConfig,
    chunk: int | None = None,
    stop_event: threading.Event | None = None,
    on_step: Callable[[Arm, int, BatchSummary], None] | None = None,
) -> dict[str, Any]:
    """Run every pair under every arm, interleaved by chunks, then write ab.json and ab.html.

    Returns the ab.json document (with ``"interrupted"`` when ``stop_event`` was set).
    Raises InputError (exit 2) for bad arms, options or PAIRS.
    """
    config.check()
    if len(arms) < 2:
        raise InputError("an A/B needs at least two arms")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    pairs = pairs_path if isinstance(pairs_path, Pairs) else read_pairs(pairs_path)
    stop = stop_event or threading.Event()
    step = max(1, chunk or config.concurrency)
    n = len(pairs.rows)
    interrupted = False
    ends = list(range(step, n, step)) + [n]
    for end in ends:
        for arm in arms:
            if stop.is_set():
                break
            summary = run_batch(
                _prefix(pairs, end),
                None,
                out / arm.name,
                backend=backend,
                config=arm_config(config, arm),
                stop_event=stop,
            )
            if on_step is not None:
                on_step(arm, end, summary)
        if stop.is_set():
            interrupted = True
            break
    doc = ab_summary(pairs, arms, out, backend_name=backend.name, config=config)
    doc["interrupted"] = interrupted
    write_bytes_atomic(out / AB_JSON, (json.dumps(doc, indent=2) + "\n").encode())
    write_ab_html(out, doc)
    return doc


# -- the summary --------------------------------------------------------------------


def job_score(row: JobRow | None) -> Score | None:
    """A settled job's score (None when it is not settled: pending or never run).

    A failed job scores below any output (no checks passed, margin -1).
    """
    if row is None or row.state not in (JobState.DONE, JobState.FAILED):
        return None
    if row.state == JobState.FAILED or row.metrics is None or row.metrics.get("error"):
        return Score(0, -1.0, 0, False)
    return score_checks(row.metrics.get("checks") or {})


def _rows_for(
    pairs: Pairs, cfg: BatchConfig, journal: Journal, backend_name: str
) -> list[JobRow | None]:
    """Each PAIRS row's job in the arm's journal (None: not run yet), as the batch plans it."""
    context = context_key(cfg, backend_name)
    out: list[JobRow | None] = []
    for row in pairs.rows:
        if row.id is not None:
            out.append(journal.get(row.id))
        else:
            out.append(journal.find_by_row_key(row_key(context, row)))
    return out


def _rel(path: str | None, outdir: Path) -> str | None:
    if not path:
        return None
    try:
        return Path(path).resolve().relative_to(outdir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _arm_stats(arm: Arm, rows: list[JobRow | None], spent: float) -> dict[str, Any]:
    done = [r for r in rows if r is not None and r.state == JobState.DONE]
    failed = [r for r in rows if r is not None and r.state == JobState.FAILED]
    passing = sum(1 for r in done if r.checks_passed is True)
    lo, hi = wilson_interval(passing, len(done))
    means: dict[str, Any] = {}
    for name, path in KEY_METRICS.items():
        values = [v for r in done if (v := metric_number(r.metrics, path)) is not None]
        means[name] = {
            "mean": round(statistics.fmean(values), 6) if values else None,
            "n": len(values),
        }
    gen = [
        float(r.timings["generate_s"])
        for r in done
        if r.timings and isinstance(r.timings.get("generate_s"), int | float)
    ]
    return {
        **arm.to_dict(),
        "jobs": len(rows),
        "done": len(done),
        "failed": len(failed),
        "passed": passing,
        "pass_rate": None if not done else round(passing / len(done), 6),
        "pass_rate_ci95": [round(lo, 6), round(hi, 6)],
        "metrics": means,
        "cost_usd": round(spent, 6),
        "cost_per_passing_usd": None if passing == 0 else round(spent / passing, 6),
        "median_generate_s": None if not gen else round(statistics.median(gen), 4),
    }


def approval_stats(journal: Journal, job_ids: Sequence[str]) -> dict[str, Any] | None:
    """People's verdicts on an arm's jobs ``job_ids`` (section 13): approved out of reviewed,
    the rate and its 95 % Wilson interval; None when none of them was reviewed."""
    current = journal.current_reviews()
    verdicts = [current[j].verdict for j in dict.fromkeys(job_ids) if j in current]
    if not verdicts:
        return None
    approved = sum(1 for v in verdicts if v == "approve")
    lo, hi = wilson_interval(approved, len(verdicts))
    return {
        "reviewed": len(verdicts),
        "approved": approved,
        "approval_rate": round(approved / len(verdicts), 6),
        "approval_rate_ci95": [round(lo, 6), round(hi, 6)],
    }


def refresh_approval(outdir: str | Path) -> dict[str, Any] | None:
    """Bring ``OUTDIR/ab.json`` and ``ab.html`` up to date with the reviews in the arms'
    journals (the review page calls this after each verdict). None when there is no ab.json."""
    out = Path(outdir)
    try:
        doc: dict[str, Any] = json.loads((out / AB_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for arm in doc.get("arms") or []:
        name = arm.get("name")
        path = out / str(name) / "journal.sqlite"
        ids = [
            str(p["arms"][name]["job_id"])
            for p in doc.get("pairs") or []
            if (p.get("arms") or {}).get(name, {}).get("job_id")
        ]
        if path.exists():
            with Journal(path, durable=False) as journal:
                arm["approval"] = approval_stats(journal, ids)
    write_bytes_atomic(out / AB_JSON, (json.dumps(doc, indent=2) + "\n").encode())
    write_ab_html(out, doc)
    return doc


def ab_summary(
    pairs: Pairs, arms: Sequence[Arm], outdir: Path, *, backend_name: str, config: BatchConfig
) -> dict[str, Any]:
    """The ab.json document, from the arms' journals (pure reading: safe any time)."""
    per_arm: dict[str, list[JobRow | None]] = {}
    stats: list[dict[str, Any]] = []
    for arm in arms:
        path = outdir / arm.name / "journal.sqlite"
        if path.exists():
            with Journal(path, durable=False) as journal:
                rows = _rows_for(pairs, arm_config(config, arm), journal, backend_name)
                spent = journal.spent_usd()
                approval = approval_stats(
                    journal, [r.job_id for r in rows if r is not None and r.state == JobState.DONE]
                )
        else:
            rows, spent, approval = [None] * len(pairs.rows), 0.0, None
        per_arm[arm.name] = rows
        stats.append({**_arm_stats(arm, rows, spent), "approval": approval})
    comparisons = []
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            wins = losses = ties = 0
            for ra, rb in zip(per_arm[a.name], per_arm[b.name], strict=True):
                sa, sb = job_score(ra), job_score(rb)
                if sa is None or sb is None:
                    continue  # not settled under both arms: not paired
                c = compare_scores(sa, sb)
                wins += c > 0
                losses += c < 0
                ties += c == 0
            comparisons.append(
                {
                    "a": a.name,
                    "b": b.name,
                    "paired": wins + losses + ties,
                    "wins": wins,
                    "losses": losses,
                    "ties": ties,
                    "sign_test_p": round(sign_test(wins, losses), 6),
                }
            )
    pair_rows = []
    for idx, row in enumerate(pairs.rows):
        cells = {}
        for arm in arms:
            r = per_arm[arm.name][idx]
            s = job_score(r)
            cells[arm.name] = {
                "job_id": None if r is None else r.job_id,
                "state": None if r is None else str(r.state),
                "output": None if r is None else _rel(r.output_path, outdir),
                "passed": None if r is None else r.checks_passed,
                "score": None if s is None else s.to_dict(),
                "checks": {
                    name: c.get("pass")
                    for name, c in ((r.metrics or {}).get("checks") or {}).items()
                }
                if r is not None
                else {},
                "cost_usd": None if r is None else r.cost_usd,
                "error": None if r is None else r.error,
            }
        pair_rows.append(
            {
                "line": row.line,
                "id": row.id,
                "sources": [_rel(s, outdir) if "://" not in s else s for s in row.sources],
                "arms": cells,
            }
        )
    if backend_name == "local":
        n_sources = len(pairs.rows[0].sources) if pairs.rows else 2
        for arm, st in zip(arms, stats, strict=True):
            st["official_usd_per_call"] = _official_price(arm_config(config, arm), n_sources)
    return {
        "pairs_file": str(pairs.path),
        "backend": backend_name,
        "offline_demo": backend_name == "local",
        "candidates": config.candidates,
        "arms": stats,
        "comparisons": comparisons,
        "pairs": pair_rows,
    }


def _official_price(config: BatchConfig, n_sources: int) -> float | None:
    """What a typical job of ``config`` with ``n_sources`` images costs on the official
    (bfl) backend: per call for Kontext, by the megapixel of what is sent for FLUX.2."""
    from .run import JobSpec, typical_price

    spec = JobSpec(
        recipe=config.recipe,
        prompt=config.prompt,
        variables=dict(config.variables),
        request=config.request_options,
        compose=config.compose_options,
    )
    try:
        return float(typical_price(spec, "bfl", n_sources))
    except FluxComposeError:
        return None
