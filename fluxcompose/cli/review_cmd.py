"""``fluxcompose review``: the review page, verdicts from the command line, export, agreement."""

from __future__ import annotations

import csv
import dataclasses
import getpass
import io
import json
import secrets
import sys
import webbrowser
from pathlib import Path
from typing import Any

import click

from ..ab import refresh_approval
from ..errors import InputError
from ..images import write_bytes_atomic
from ..review import EXPORT_COLUMNS, ReviewStore, agreement, parse_set
from ._common import json_option, notice, print_json

__all__ = ["review_cmd"]


def _default_reviewer() -> str | None:
    try:
        return getpass.getuser() or None
    except Exception:  # no user name in this environment: leave it empty
        return None


def _export(store: ReviewStore, dest: Path) -> int:
    rows = store.export_rows()
    suffix = dest.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            cp = row["checks_passed"]
            writer.writerow(
                {
                    **row,
                    "checks_passed": "" if cp is None else ("true" if cp else "false"),
                    "note": row["note"] or "",
                    "reviewer": row["reviewer"] or "",
                    "candidate": "" if row["candidate"] is None else row["candidate"],
                    "output": row["output"] or "",
                }
            )
        data = buf.getvalue()
    elif suffix == ".jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        raise InputError(f"--export {dest}: the file must end in .csv or .jsonl")
    if dest.parent and not dest.parent.is_dir():
        raise InputError(f"--export {dest}: no such folder {dest.parent}")
    write_bytes_atomic(dest, data.encode("utf-8"), durable=False)
    return len(rows)


def _ci(ci: list[float]) -> str:
    return f"95 % CI {ci[0] * 100:.1f}–{ci[1] * 100:.1f} %"


def _print_agreement(doc: dict[str, Any]) -> None:
    def rate(r: float | None) -> str:
        return "–" if r is None else f"{r * 100:.1f} %"

    t = doc["table"]
    lines = [
        f"reviewed: {doc['reviewed']}",
        f"{'checks':<14}{'approved':>10}{'rejected':>10}",
        *(
            f"{label:<14}{t[k]['approved']:>10}{t[k]['rejected']:>10}"
            for k, label in (
                ("passed", "passed"),
                ("failed", "failed"),
                ("not_measured", "not measured"),
            )
        ),
        f"false-pass rate: {rate(doc['false_pass_rate'])} ({_ci(doc['false_pass_ci'])})"
        " — checks passed, a person rejected",
        f"false-fail rate: {rate(doc['false_fail_rate'])} ({_ci(doc['false_fail_ci'])})"
        " — checks failed, a person approved",
    ]
    if doc["per_check"]:
        lines.append(
            f"{'per check':<32}{'pass+app':>9}{'pass+rej':>9}{'fail+app':>9}{'fail+rej':>9}"
        )
        for name, c in doc["per_check"].items():
            lines.append(
                f"{name:<32}{c['pass_approved']:>9}{c['pass_rejected']:>9}"
                f"{c['fail_approved']:>9}{c['fail_rejected']:>9}"
            )
    click.echo("\n".join(lines))


@click.command("review")
@click.argument("outdir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: a free one).",
)
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
@click.option("--reviewer", default=None, metavar="NAME", help="Who reviews (default: the user).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="JOB=approve|reject[:REASON,...]",
    help="Record a verdict without the page; repeatable. Reasons: size, placement, distorted,"
    " colours, garment, person, background, artefacts, other.",
)
@click.option("--note", default=None, metavar="TEXT", help="A note for the --set verdicts.")
@click.option(
    "--export",
    "export",
    default=None,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE.csv|FILE.jsonl",
    help="Write each reviewed job's current verdict.",
)
@click.option(
    "--agreement",
    "show_agreement",
    is_flag=True,
    help="How far the checks agree with people (false-pass and false-fail rates).",
)
@json_option("With --agreement: print JSON.")
def review_cmd(
    outdir: Path,
    host: str,
    port: int,
    no_browser: bool,
    reviewer: str | None,
    sets: tuple[str, ...],
    note: str | None,
    export: Path | None,
    show_agreement: bool,
    as_json: bool,
) -> int:
    """Review OUTDIR (what run, batch or ab wrote) in a local web page: approve or
    reject each output, with reasons, and see how far the checks agree with people.

    The page listens on 127.0.0.1 and its printed URL carries a random token; every
    request needs it. Verdicts go into the journal (a run folder gets reviews.sqlite).

    \b
    Examples:
      fluxcompose review out/
      fluxcompose review out/ --port 0 --no-browser
      fluxcompose review out/ --set tee-1=approve --set tee-2=reject:size,placement
      fluxcompose review out/ --export verdicts.csv
      fluxcompose review out/ --agreement --json
    """
    if not outdir.is_dir():
        raise InputError(f"{outdir}: no such folder")
    parsed = [parse_set(s) for s in sets]
    if note is not None and not parsed:
        raise InputError("--note goes with --set")
    who = reviewer or _default_reviewer()
    with ReviewStore(outdir, reviewer=who) as store:
        acted = False
        if parsed:
            entries = [store.find(p.job) for p in parsed]  # every JOB known before any is written
            for p, entry in zip(parsed, entries, strict=True):
                store.record(entry.key, dataclasses.replace(p, note=note, reviewer=who))
                notice(
                    f"fluxcompose: {entry.key}: {p.verdict}"
                    + (f" ({', '.join(p.reasons)})" if p.reasons else "")
                )
            if store.kind == "ab":
                refresh_approval(store.root)
            acted = True
        if export is not None:
            n = _export(store, export)
            notice(f"fluxcompose: wrote {n} reviewed job(s) to {export}")
            acted = True
        if show_agreement:
            doc = agreement(store.agreement_input())
            if as_json:
                print_json(doc)
            else:
                _print_agreement(doc)
            acted = True
        if acted:
            return 0
        if as_json:
            raise InputError("--json goes with --agreement")
        return _serve(store, host, port, no_browser)


def _serve(store: ReviewStore, host: str, port: int, no_browser: bool) -> int:
    # The web stack (starlette, uvicorn: ~0.15 s) is imported only when the page is served,
    # so that --help, --set, --export and --agreement do not pay for it.
    from ..review.server import bind, build_app, is_loopback, make_server

    if not is_loopback(host):
        notice(
            f"fluxcompose: warning: listening on {host}, not on loopback: anyone who can reach"
            " this address and learns the URL can change verdicts"
        )
    token = secrets.token_urlsafe(24)
    sock = bind(host, port)
    real_port = int(sock.getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{real_port}/?token={token}"
    click.echo(f"fluxcompose: review page: {url}")
    sys.stdout.flush()
    notice(f"fluxcompose: {len(store.jobs())} job(s) in {store.root}; Ctrl+C stops")
    server = make_server(build_app(store, token))
    if not no_browser:
        webbrowser.open(url)
    server.run(sockets=[sock])
    return 0
