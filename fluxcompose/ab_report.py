"""``OUTDIR/ab.html``: an A/B run as one self-contained page (inline CSS, relative links).

Per arm: jobs, done, the pass rate with its 95 % Wilson interval, mean key metrics, cost,
cost per passing output and median generation time. Per pair of arms: wins, losses, ties
and the sign test's p-value. Per pair: one table row with the sources and every arm's output
side by side, with its check results. All text is escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .images import write_bytes_atomic

__all__ = ["render_ab_html", "write_ab_html"]

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.2em 0 .4em}
.note{padding:.6em 1em;background:#fff7d6;border:1px solid #e6d38a;border-radius:6px;margin:.6em 0}
table{border-collapse:collapse;background:#fff;margin-bottom:1em;max-width:100%}
th,td{border-bottom:1px solid #e4e4e4;padding:5px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-size:.9em}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:220px;max-height:220px;display:block;border:1px solid #ccc;background:#eee}
.srcs{display:flex;gap:4px}.srcs img{max-width:90px;max-height:90px}
.pass{color:#17692e;font-weight:600}.fail{color:#b3261e;font-weight:600}.muted{color:#888}
.win{outline:3px solid #17692e}
ul.checks{margin:.3em 0 0;padding-left:1.1em;font-size:.9em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _src(target: str, outdir: Path) -> str:
    """An ``src``/``href`` that works from OUTDIR/ab.html."""
    if target.lower().startswith(("http://", "https://")):
        return _e(target)
    path = Path(target)
    if not path.is_absolute():
        return _e(path.as_posix())
    try:
        return _e(Path(os.path.relpath(path, outdir)).as_posix())
    except ValueError:
        return _e(path.as_uri())


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt.format(value)
    return '<span class="muted">–</span>'


def _pf(passed: Any) -> str:
    if passed is True:
        return '<span class="pass">pass</span>'
    if passed is False:
        return '<span class="fail">fail</span>'
    return '<span class="muted">not measured</span>'


def _arms_table(doc: Mapping[str, Any]) -> str:
    metric_names = list((doc["arms"][0]["metrics"] if doc["arms"] else {}).keys())
    reviewed = any(a.get("approval") for a in doc["arms"])
    head = (
        "<tr><th>arm</th><th>model</th><th>references</th><th>jobs</th><th>done</th>"
        "<th>pass rate</th><th>95 % Wilson</th>"
        + "".join(f"<th>mean {_e(m.replace('_', ' '))}</th>" for m in metric_names)
        + "<th>cost</th><th>cost per passing output</th><th>median generation</th>"
        + ("<th>approved by people</th><th>95 % Wilson</th>" if reviewed else "")
        + "</tr>"
    )
    rows = []
    for a in doc["arms"]:
        lo, hi = a["pass_rate_ci95"]
        rate = a["pass_rate"]
        rows.append(
            '<tr class="arm">'
            f"<td><b>{_e(a['name'])}</b></td><td>{_e(a['model'])}</td>"
            f"<td>{_e(a['references'] or 'default')}</td>"
            f'<td class="num">{a["jobs"]}</td><td class="num">{a["done"]}</td>'
            f'<td class="num">{a["passed"]}/{a["done"]}'
            f"{'' if rate is None else f' ({rate * 100:.0f} %)'}</td>"
            f'<td class="num">{lo * 100:.0f}–{hi * 100:.0f} %</td>'
            + "".join(f'<td class="num">{_num(a["metrics"][m]["mean"])}</td>' for m in metric_names)
            + f'<td class="num">{_num(a["cost_usd"], "${:.3f}")}</td>'
            f'<td class="num">{_num(a["cost_per_passing_usd"], "${:.3f}")}</td>'
            f'<td class="num">{_num(a["median_generate_s"], "{:.2f} s")}</td>'
            + (_approval_cells(a.get("approval")) if reviewed else "")
            + "</tr>"
        )
    return f'<table id="arms"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _approval_cells(approval: Mapping[str, Any] | None) -> str:
    """People's approval rate of one arm and its Wilson interval (section 13), or dashes."""
    if not approval:
        return '<td class="num approval"><span class="muted">not reviewed</span></td><td></td>'
    lo, hi = approval["approval_rate_ci95"]
    return (
        f'<td class="num approval">{approval["approved"]}/{approval["reviewed"]}'
        f" ({approval['approval_rate'] * 100:.0f} %)</td>"
        f'<td class="num">{lo * 100:.0f}–{hi * 100:.0f} %</td>'
    )


def _comparisons_table(doc: Mapping[str, Any]) -> str:
    rows = "".join(
        '<tr class="comparison">'
        f'<td>{_e(c["a"])} vs {_e(c["b"])}</td><td class="num">{c["paired"]}</td>'
        f'<td class="num">{c["wins"]}</td><td class="num">{c["losses"]}</td>'
        f'<td class="num">{c["ties"]}</td><td class="num">{c["sign_test_p"]:.4f}</td></tr>'
        for c in doc["comparisons"]
    )
    return (
        '<table id="comparisons"><thead><tr><th>arms (A vs B)</th><th>paired</th>'
        "<th>A wins</th><th>B wins</th><th>ties</th><th>sign test p (two-sided)</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _cell(cell: Mapping[str, Any], outdir: Path, best: bool) -> str:
    if not cell.get("output"):
        state = cell.get("state") or "not run"
        err = f'<div class="fail">{_e(cell["error"])}</div>' if cell.get("error") else ""
        return f'<td><span class="muted">{_e(state)}</span>{err}</td>'
    href = _src(str(cell["output"]), outdir)
    score = cell.get("score") or {}
    checks = "".join(
        f"<li>{_e(name)}: {_pf(ok)}</li>" for name, ok in (cell.get("checks") or {}).items()
    )
    return (
        f'<td><a href="{href}"><img class="output{" win" if best else ""}" src="{href}"'
        f' alt="output"></a>{_pf(cell.get("passed"))}'
        f' <span class="muted">score {score.get("passed", "–")}/{score.get("total", "–")},'
        f" margin {_num(score.get('margin'), '{:+.3f}')}</span>"
        f'<ul class="checks">{checks}</ul></td>'
    )


def _pairs_table(doc: Mapping[str, Any], outdir: Path) -> str:
    names = [a["name"] for a in doc["arms"]]
    head = (
        "<tr><th>line</th><th>pair</th><th>sources</th>"
        + "".join(f"<th>{_e(n)}</th>" for n in names)
        + "</tr>"
    )
    rows = []
    for p in doc["pairs"]:
        srcs = "".join(
            f'<a href="{_src(s, outdir)}"><img class="source" src="{_src(s, outdir)}"'
            f' alt="source" loading="lazy"></a>'
            for s in p["sources"]
        )
        keys = {
            n: (c["score"]["passed"], c["score"]["margin"])
            for n, c in p["arms"].items()
            if c.get("score") and c.get("output")
        }
        top = max(keys.values()) if keys else None
        winners = [n for n, k in keys.items() if k == top]
        best = winners[0] if len(winners) == 1 else None
        cells = "".join(_cell(p["arms"][n], outdir, n == best) for n in names)
        rows.append(
            f'<tr class="pair"><td class="num">{_e(p["line"])}</td><td>{_e(p["id"] or "")}</td>'
            f'<td><div class="srcs">{srcs}</div></td>{cells}</tr>'
        )
    return f'<table id="pairs"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def render_ab_html(outdir: str | Path, doc: Mapping[str, Any]) -> str:
    """The page for an ab.json document ``doc`` written in ``outdir``."""
    out = Path(outdir).resolve()
    title = f"fluxcompose A/B: {Path(str(doc.get('pairs_file', ''))).name}"
    notes = []
    if doc.get("offline_demo"):
        modes = {a.get("references") for a in doc["arms"]}
        notes.append(
            "Local backend: an offline demonstration. The local preview ignores the model, so"
            " the arms differ only in price here (on the paid backends); their outputs and"
            " checks are the same"
            + (
                "."
                if len(modes) == 1
                else " except where the references mode (stitched or separate) differs."
            )
            + "".join(
                f" {a['name']} ({a['model']}) costs ${a['official_usd_per_call']:.3f} per call"
                " on the bfl backend."
                for a in doc["arms"]
                if a.get("official_usd_per_call") is not None
            )
        )
    if doc.get("interrupted"):
        notes.append("Interrupted: run the same command again to finish every arm.")
    if (doc.get("candidates") or 1) > 1:
        notes.append(f"Each job is the best of {doc['candidates']} candidates by the checks.")
    note_html = "".join(f'<div class="note">{_e(n)}</div>' for n in notes)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{_e(title)}</h1><div class="muted">backend {_e(doc.get("backend"))} · '
        f"{_e(str(out))}</div>\n{note_html}\n"
        f"<h2>Arms</h2>{_arms_table(doc)}\n"
        "<h2>Head to head (by score: checks passed, then mean margin)</h2>"
        f"{_comparisons_table(doc)}\n"
        f"<h2>Pairs</h2>{_pairs_table(doc, out)}\n</body></html>\n"
    )


def write_ab_html(outdir: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``OUTDIR/ab.html`` atomically and return its path."""
    path = Path(outdir) / "ab.html"
    write_bytes_atomic(path, render_ab_html(outdir, doc).encode("utf-8"), durable=False)
    return path
