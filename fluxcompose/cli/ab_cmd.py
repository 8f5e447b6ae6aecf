"""``fluxcompose ab``: every pair under every arm (model and references mode), compared."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ._common import (
    BatchRunOptions,
    JobOptions,
    batch_config,
    batch_options,
    json_option,
    notice,
    print_json,
)
from .batch_cmd import _stop_on_signals, redacted_command

__all__ = ["ab_cmd"]


@click.command("ab")
@click.argument("pairs", type=click.Path(path_type=Path, dir_okay=True))
@click.option(
    "--arm",
    "arms",
    multiple=True,
    required=True,
    metavar="NAME=MODEL[:stitched|separate]",
    help="An arm (at least two): its folder name in OUTDIR, model and references mode.",
)
@batch_options(
    outdir_help="Where each arm's batch (OUTDIR/NAME/), ab.json and ab.html go; run again to resume.",
    concurrency_help="Jobs in flight at once per arm; also the size of the interleaved chunks.",
    budget_help="Per arm: never start a job that would take the arm's total over USD.",
)
@json_option("Print ab.json on stdout.")
def ab_cmd(
    pairs: Path,
    arms: tuple[str, ...],
    recipe: str | None,
    outdir: Path,
    run: BatchRunOptions,
    opts: JobOptions,
    as_json: bool,
) -> int:
    """Run every pair of PAIRS under every --arm and compare the arms: which model and
    references mode pass the recipe's checks more often, and at what cost per passing output.

    Each arm is a resumable batch in OUTDIR/NAME/; the arms are interleaved chunk by chunk
    (--concurrency pairs), so an interrupted A/B stays balanced. Writes OUTDIR/ab.json and
    OUTDIR/ab.html. Exit status as batch: 0 all done, 1 some failed, 2 bad usage, 130
    interrupted.

    \b
    Examples:
      fluxcompose ab samples/pairs.csv -r pattern-transfer --arm kontext=flux-kontext-pro --arm f2=flux-2-pro -o ab/ --backend local
      fluxcompose ab pairs.csv -r pattern-transfer --arm pro=flux-kontext-pro --arm max=flux-kontext-max -o ab/ --candidates 3 --stop-on-pass
    """
    backend, request = opts.backend, opts.request
    from ..ab import parse_arms, run_ab
    from ..pairs import read_pairs

    parsed_arms = parse_arms(arms)
    if request.model is not None or request.references is not None:
        raise InputError("--model and --references are set per arm (--arm NAME=MODEL[:MODE])")
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a folder")
    parsed = read_pairs(pairs)
    config = batch_config(recipe, opts, run)
    backend_obj = backend.build()
    text = getattr(backend_obj, "NOTICE", None)
    if text:
        notice(str(text))

    def on_step(arm: Any, end: int, summary: Any) -> None:
        notice(
            f"ab: arm {arm.name} ({arm.model}): {summary['done']}/{summary['jobs']} of the first"
            f" {end} pairs done, {summary['failed']} failed, spent ${summary['spent_usd']:.3f}"
        )

    stop = threading.Event()
    with _stop_on_signals(stop):
        doc = run_ab(
            parsed, parsed_arms, outdir, backend=backend_obj, config=config,
            stop_event=stop, on_step=on_step,
        )  # fmt: skip
    if as_json:
        print_json(doc)
    for a in doc["arms"]:
        lo, hi = a["pass_rate_ci95"]
        cpp = a["cost_per_passing_usd"]
        notice(
            f"ab: {a['name']}: {a['done']}/{a['jobs']} done, {a['passed']} passed"
            f" (95 % CI {lo:.2f}-{hi:.2f}), ${a['cost_usd']:.3f}"
            + ("" if cpp is None else f", ${cpp:.3f} per passing output")
        )
    for c in doc["comparisons"]:
        notice(
            f"ab: {c['a']} vs {c['b']}: {c['wins']} wins, {c['losses']} losses, {c['ties']} ties,"
            f" sign test p = {c['sign_test_p']:.4f}"
        )
    notice(f"ab: {outdir / 'ab.html'}")
    if doc.get("interrupted"):
        notice("ab: interrupted; to resume, run the same command again:\n  "
               + redacted_command(sys.argv[1:]))  # fmt: skip
        return 130
    if any(a["done"] < a["jobs"] for a in doc["arms"]):
        return 1
    return 0
