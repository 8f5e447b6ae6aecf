"""``fluxcompose batch``: many jobs from a PAIRS file, concurrent and resumable."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from ..errors import InputError
from ._common import (
    BatchRunOptions,
    JobOptions,
    announce,
    batch_config,
    batch_options,
    json_option,
    notice,
    print_json,
)

if TYPE_CHECKING:
    from ..batch import BatchSummary

__all__ = ["batch", "redacted_command"]

_SECRET_OPTIONS = ("--api-key",)


def redacted_command(argv: list[str]) -> str:
    """The command line to run again, with any ``--api-key`` value replaced by ``...``."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("...")
            hide_next = False
        elif arg in _SECRET_OPTIONS:
            out.append(arg)
            hide_next = True
        elif any(arg.startswith(o + "=") for o in _SECRET_OPTIONS):
            out.append(arg.split("=", 1)[0] + "=...")
        else:
            out.append(arg)
    return shlex.join(["fluxcompose", *out])


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (finish what is in flight); a second one quits at once.

    Quitting at once is safe: every committed journal transition survives, and the
    next run resumes from there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            notice("fluxcompose: stopping now; the journal has everything committed so far")
            os._exit(130)
        stop.set()
        name = signal.Signals(signum).name
        notice(
            f"fluxcompose: {name}: not starting new jobs; waiting for the jobs in flight"
            " to reach the journal (again to quit at once)"
        )

    sigs = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@click.command("batch")
@click.argument("pairs", type=click.Path(path_type=Path, dir_okay=True))
@batch_options(
    outdir_help="Where outputs, journal.sqlite and report.html go; run again with the same one to resume.",
    concurrency_help="Jobs in flight at once (capped by the backend's limit).",
    budget_help="Never start a job that would take this OUTDIR's total spend over USD.",
)
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="Run the jobs people rejected (fluxcompose review) again with new seeds; pays"
    " again, within --budget. Earlier outputs and verdicts stay in the history.",
)
@json_option("Print the summary as JSON on stdout.")
def batch(
    pairs: Path,
    recipe: str | None,
    outdir: Path,
    run: BatchRunOptions,
    opts: JobOptions,
    retry_rejected: bool,
    as_json: bool,
) -> int:
    """Run every job in PAIRS: CSV (left,right or image1,image2,... plus optional
    id, prompt, seed, aspect_ratio, subject_box, var.NAME columns), JSON Lines with the same
    keys, or text with one left|right per line. Relative paths resolve against
    the PAIRS file's folder.

    Progress is journaled in OUTDIR/journal.sqlite: run the same command again
    to resume. Done jobs are skipped and never paid for twice; BFL tasks already
    submitted are polled by id. OUTDIR/report.html shows every job.

    Exit status: 0 when every job is done, 1 when some failed or were not
    started (budget), 2 for bad usage, 130 when interrupted.

    \b
    Examples:
      fluxcompose batch pairs.csv --recipe pattern-transfer -o out/
      fluxcompose batch pairs.txt -r side-by-side -o out/ --concurrency 16 --budget 5
      fluxcompose batch pairs.csv -r style-fusion -o out/ --retry-failed --json
      fluxcompose batch pairs.csv -r pattern-transfer -o out/ --retry-rejected --budget 2
    """
    backend, request, job, compose, candidates, _ = opts
    from ..batch import StderrProgress, run_batch
    from ..pairs import read_pairs
    from ..request import JobSpec, resolve_model, typical_price
    from ..review.retry import HISTORY_DIR, apply_retry, plan_retry

    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a folder")
    parsed = read_pairs(pairs)
    config = batch_config(recipe, opts, run)
    backend_obj = backend.build()
    chosen_model = resolve_model(config.recipe, request.model)
    typical = JobSpec(
        recipe=config.recipe, prompt=job.prompt or "x", request=request, compose=compose
    )
    n_sources = len(config.recipe.sources) if config.recipe is not None else 2
    price = typical_price(typical, backend_obj.name, n_sources)
    if retry_rejected:
        retry = plan_retry(outdir, parsed)
        n_retry = len(retry.job_ids) + len(retry.unfinished)
        if not n_retry:
            notice("fluxcompose: no rejected job in this PAIRS file to retry")
            return 0
        calls = n_retry * candidates
        notice(
            f"fluxcompose: retrying {n_retry} rejected job(s) with new seeds:"
            f" {calls} call(s), about ${calls * price:.3f} more"
            + (
                f" (budget ${config.budget_usd:.3f} in total)"
                if config.budget_usd is not None
                else ""
            )
            + f"; earlier outputs are kept in {outdir / HISTORY_DIR}"
        )
        apply_retry(outdir, retry)
        parsed = retry.pairs
        announce(backend_obj, chosen_model, calls, price)
    else:
        announce(backend_obj, chosen_model, len(parsed) * candidates, price)
    stop = threading.Event()
    with _stop_on_signals(stop):
        summary = run_batch(
            parsed,
            None,
            outdir,
            backend=backend_obj,
            config=config,
            progress=StderrProgress(),
            stop_event=stop,
        )
    if as_json:
        print_json(summary)
    _print_summary(summary)
    if summary.get("interrupted"):
        notice(
            "fluxcompose: interrupted; to resume, run the same command again:\n  "
            + redacted_command(sys.argv[1:])
        )
        return 130
    if summary["failed"] or summary.get("pending"):
        return 1
    return 0


def _print_summary(summary: BatchSummary) -> None:
    notice(
        f"fluxcompose: {summary['done']}/{summary['jobs']} done"
        f" ({summary['skipped']} already done before this run), {summary['failed']} failed,"
        f" {summary.get('pending', 0)} not finished; spent ${summary['spent_usd']:.3f} in total;"
        f" {summary['wall_s']:.1f} s"
    )
    if summary["done"]:
        notice(
            f"fluxcompose: checks: {summary['checks_passed']} passed,"
            f" {summary['checks_failed']} failed,"
            f" {summary['checks_not_measured']} not measured"
        )
    errors = summary.get("errors") or []
    for err in errors[:10]:
        notice(f"  failed: {err['error']}")
    if len(errors) > 10:
        notice(f"  ... and {len(errors) - 10} more (see the report)")
    if summary.get("budget_stopped"):
        notice(
            "fluxcompose: stopped at the budget; raise --budget and run the same command"
            " to continue"
        )
    if summary.get("report"):
        notice(f"fluxcompose: report: {summary['report']}")
