"""``OUTDIR/report.html``: one self-contained page for a batch.

The page has inline CSS and no external resources; every link and ``<img src>`` is
relative to OUTDIR, so the folder can be moved or zipped and still opens from disk.
Sources are shown as small JPEG thumbnails written to ``OUTDIR/thumbs/`` (cut from
the canvas, so they exist even when the sources live elsewhere or were URLs), and
link to the source itself. All text is escaped.
"""

from __future__ import annotations

import html
import io
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .images import write_bytes_atomic
from .journal import JobRow
from .lru import LruCache

__all__ = [
    "REPORT_NAME",
    "THUMBS_DIR",
    "VERDICTS",
    "ReportWriter",
    "checks_verdict",
    "count_verdicts",
    "make_thumbs",
    "render_report",
    "write_report",
]

REPORT_NAME = "report.html"
LIVE_REFRESH_S = 5  # seconds between reloads of a running batch's page
THUMBS_DIR = "thumbs"
THUMB_SIZE = 160  # longest side, pixels


# A done job's checks: passed, failed, or not measured (never counted as a pass or a fail).
VERDICTS = ("passed", "failed", "not_measured")


def checks_verdict(job: JobRow) -> str | None:
    """The verdict of a job's checks (DESIGN.md section 7); None for a job not done.

    From the metrics' checks when there are any: ``failed`` when one failed, else
    ``not_measured`` when one was not measured (``pass`` null, e.g. no subject found),
    else ``passed``. Without them (compare off or failed, no checks, an old journal):
    ``checks_passed`` True or False, else ``not_measured``.
    """
    if job.state != "done":
        return None
    metrics = job.metrics if isinstance(job.metrics, Mapping) else {}
    checks = metrics.get("checks")
    if isinstance(checks, Mapping) and checks:
        results = [c.get("pass") if isinstance(c, Mapping) else None for c in checks.values()]
        if any(r is False for r in results):
            return "failed"
        return "not_measured" if any(r is not True for r in results) else "passed"
    if metrics.get("error") or job.checks_passed is None:
        return "not_measured"
    return "passed" if job.checks_passed else "failed"


def count_verdicts(jobs: Sequence[JobRow]) -> dict[str, int]:
    """``{"passed", "failed", "not_measured"}``: how many done jobs have each verdict."""
    counts = dict.fromkeys(VERDICTS, 0)
    for job in jobs:
        verdict = checks_verdict(job)
        if verdict is not None:
            counts[verdict] += 1
    return counts


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file beside ``path``, then rename: a reader never sees half a page.

    No fsync: the report and thumbnails are derived data, rebuilt from the journal.
    """
    write_bytes_atomic(path, data, durable=False)


def _thumb_bytes(image: Image.Image, size: int) -> bytes:
    im = image.convert("RGB") if image.mode != "RGB" else image.copy()
    im.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return _jpeg(im)


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


# Thumbnail bytes of cells whose pixels have a key (``Composite.pixel_keys``), by (key, size):
# a batch putting one pattern on a thousand photos makes that pattern's thumbnail once.
_CELL_THUMBS: LruCache[bytes] = LruCache(64)


def _cell_thumbs(
    canvas: Image.Image,
    boxes: Sequence[tuple[int, int, int, int]],
    size: int,
    keys: Sequence[Hashable | None] = (),
) -> list[bytes]:
    """Each cell of the canvas shrunk to at most ``size`` (longest side), as JPEG.

    Each cell is box-reduced by its own integer factor (the one Pillow's ``thumbnail``
    would take: keeping at least twice ``size``), then resized: the same quality as a
    thumbnail of the cell, without reducing the padding and gutters between cells, or a
    large cell only by the factor a small one allows. ``keys`` (one per box, or none) are
    the cells' pixel keys: a cell with a key seen before reuses that thumbnail."""
    im = canvas.convert("RGB") if canvas.mode != "RGB" else canvas
    out = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        key = keys[i] if i < len(keys) else None
        cached = None if key is None else _CELL_THUMBS.get((key, size))
        if cached is not None:
            out.append(cached)
            continue
        k = max(1, int(max(x1 - x0, y1 - y0) / size / 2.0))
        cell = im.reduce(k, (x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)))
        cell.thumbnail((size, size), Image.Resampling.BILINEAR)
        data = _jpeg(cell)
        if key is not None:
            _CELL_THUMBS.put((key, size), data)
        out.append(data)
    return out


def make_thumbs(
    outdir: str | Path,
    job_id: str,
    *,
    canvas: Image.Image | bytes | None = None,
    cells: Sequence[tuple[int, int, int, int]] = (),
    cell_keys: Sequence[Hashable | None] = (),
    output: str | Path | None = None,
    size: int = THUMB_SIZE,
) -> dict[str, Any]:
    """Write JPEG thumbnails for a job into ``OUTDIR/thumbs/``; return their relative paths.

    ``canvas`` is the composed canvas (a PIL image or encoded bytes) and ``cells`` the
    ``(x0, y0, x1, y1)`` boxes of the sources on it, in canvas pixels; ``cell_keys`` are
    their pixel keys (``Composite.pixel_keys``), when known. ``output`` is
    the result file. Returns ``{"sources": [...], "output": str | None}``; a thumbnail
    that cannot be made is simply left out (the report is cosmetic, the job is not).
    """
    out_dir = Path(outdir)
    folder = out_dir / THUMBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"sources": [], "output": None}
    if canvas is not None and cells:
        try:
            im = Image.open(io.BytesIO(canvas)) if isinstance(canvas, bytes) else canvas
            for i, data in enumerate(_cell_thumbs(im, cells, size, cell_keys), start=1):
                name = f"{job_id}.src{i}.jpg"
                _write_atomic(folder / name, data)
                result["sources"].append(f"{THUMBS_DIR}/{name}")
        except (OSError, ValueError):
            result["sources"] = []
    if output is not None:
        try:
            with Image.open(output) as im:
                im.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8 scale, >= size
                name = f"{job_id}.out.jpg"
                _write_atomic(folder / name, _thumb_bytes(im, size))
                result["output"] = f"{THUMBS_DIR}/{name}"
        except (OSError, ValueError, Image.DecompressionBombError):
            pass
    return result


# -- the page ---------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}
.totals{display:flex;flex-wrap:wrap;gap:1.2em;margin:.6em 0 1.2em;padding:.7em 1em;background:#fff;border:1px solid #ddd;border-radius:6px}
.totals b{font-size:1.25em;display:block}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e4e4e4;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:160px;max-height:160px;display:block;border:1px solid #ccc;background:#eee}
.srcs{display:flex;gap:4px}
.state-done{color:#17692e;font-weight:600}.state-failed{color:#b3261e;font-weight:600}
.state-pending,.state-submitted,.state-downloaded{color:#8a6d00;font-weight:600}
.pass{color:#17692e}.fail{color:#b3261e}.unmeasured{color:#8a5a00;background:#fff3cd;padding:0 .3em;border-radius:3px}
.totals .unmeasured{padding:0 .4em}
.err{color:#b3261e;min-width:12em;max-width:28em;overflow-wrap:anywhere}
.id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;white-space:nowrap}
.muted{color:#888}
.strip{display:flex;gap:4px;margin-top:4px}.strip img{max-width:64px;max-height:64px}
.cand{padding:2px;border:2px solid transparent;font-size:.8em}.cand.chosen{border-color:#17692e}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _href(target: str, outdir: Path) -> str:
    """A link that works from OUTDIR/report.html: URLs as is, files relative to OUTDIR."""
    if target.lower().startswith(("http://", "https://")):
        return _e(target)
    try:
        rel = os.path.relpath(target, outdir)
    except ValueError:  # another drive on Windows
        rel = Path(target).resolve().as_uri()
        return _e(rel)
    return _e(Path(rel).as_posix())


def _num(value: Any, fmt: str = "{:.3f}") -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt.format(value)
    return '<span class="muted">–</span>'


def _metric(metrics: Mapping[str, Any] | None, *path: str) -> Any:
    cur: Any = metrics
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _source_label(source: Any) -> str:
    if isinstance(source, Mapping):
        return str(source.get("source", ""))
    return str(source)


def _candidates_strip(cands: Any) -> str:
    """Best-of-N: the job's candidates as a strip of thumbnails, the chosen one marked."""
    if not isinstance(cands, list) or not cands:
        return ""
    items = []
    for c in cands:
        if not isinstance(c, Mapping):
            continue
        label = f"#{c.get('index')} seed {c.get('seed')}"
        score = c.get("score") if isinstance(c.get("score"), Mapping) else None
        if score is not None:
            label += f" · {score.get('passed')}/{score.get('total')}"
        elif c.get("state") == "pending":
            label += " · not drawn"
        cls = "cand chosen" if c.get("chosen") else "cand"
        img = (
            f'<a href="{_e(c["output"])}"><img src="{_e(c["thumb"])}" alt="candidate"'
            ' loading="lazy"></a>'
            if c.get("thumb") and c.get("output")
            else ""
        )
        mark = " ✓ chosen" if c.get("chosen") else ""
        items.append(f'<div class="{cls}">{img}<small>{_e(label)}{mark}</small></div>')
    return f'<div class="strip">{"".join(items)}</div>'


def _verdict_html(job: JobRow) -> str:
    """The checks cell: pass, fail, or not measured in amber with the reasons as its title."""
    verdict = checks_verdict(job)
    if verdict == "passed":
        return '<span class="pass">pass</span>'
    if verdict == "failed":
        return '<span class="fail">fail</span>'
    if verdict is None:
        return '<span class="muted">–</span>'
    checks = _metric(job.metrics, "checks")
    reasons: list[str] = []
    if isinstance(checks, Mapping):
        for name, c in checks.items():
            if isinstance(c, Mapping) and c.get("pass") is None:
                reasons.append(f"{name}: {c.get('reason') or 'not measured'}")
    if not reasons:
        reasons.append(str(_metric(job.metrics, "error") or "no checks were run"))
    return f'<span class="unmeasured" title="{_e("; ".join(reasons))}">not measured</span>'


def _row_html(job: JobRow, outdir: Path) -> str:
    thumbs = job.thumbs or {}
    src_thumbs: list[str] = list(thumbs.get("sources") or [])
    sources = job.sources or []
    cells: list[str] = []
    for i, src in enumerate(sources):
        label = _source_label(src)
        href = _href(label, outdir) if label else ""
        if i < len(src_thumbs):
            inner = f'<img src="{_e(src_thumbs[i])}" alt="source {i + 1}" loading="lazy">'
        else:
            inner = _e(Path(label).name if "://" not in label else label)
        cells.append(f'<a href="{href}" title="{_e(label)}">{inner}</a>' if href else inner)
    src_html = (
        f'<div class="srcs">{"".join(cells)}</div>'
        if cells
        else '<span class="muted">text only</span>'
    )

    out_html = '<span class="muted">–</span>'
    if job.output_path:
        href = _href(job.output_path, outdir)
        if thumbs.get("output"):
            inner = f'<img src="{_e(thumbs["output"])}" alt="output" loading="lazy">'
        else:
            inner = _e(Path(job.output_path).name)
        out_html = f'<a href="{href}">{inner}</a>'
    out_html += _candidates_strip(thumbs.get("candidates"))
    if job.flagged_for_review:
        why = f": {job.flag_reason}" if job.flag_reason else ""
        out_html += f'<div class="unmeasured">flagged for review{_e(why)}</div>'

    m = job.metrics
    checks = _verdict_html(job)
    id_html = _e(job.job_id)
    if job.sidecar_path:
        id_html = f'<a href="{_href(job.sidecar_path, outdir)}">{id_html}</a>'
    error = _e(job.error) if job.error else ""
    if job.error_kind and job.error:
        error = f"<b>{_e(job.error_kind)}</b>: {error}"
    return (
        "<tr>"
        f'<td class="num">{_e(job.line) if job.line is not None else ""}</td>'
        f'<td class="id">{id_html}</td>'
        f'<td class="state-{_e(job.state)}">{_e(job.state)}</td>'
        f"<td>{src_html}</td>"
        f"<td>{out_html}</td>"
        f'<td class="num">{_num(_metric(m, "ssim"))}</td>'
        f'<td class="num">{_num(_metric(m, "ssim_outside_edit"))}</td>'
        f'<td class="num">{_num(_metric(m, "pattern", "width_fraction"))}</td>'
        f"<td>{checks}</td>"
        f'<td class="num">{_num(job.cost_usd, "${:.3f}")}</td>'
        f'<td class="num">{job.attempts}</td>'
        f'<td class="err">{error}</td>'
        "</tr>"
    )


def _cached_row(job: JobRow, outdir: Path, cache: dict[str, tuple[JobRow, str]]) -> str:
    """``_row_html`` (a function of the job and the folder only), reused for a job equal,
    field by field, to the one it was rendered for."""
    hit = cache.get(job.job_id)
    if hit is not None and hit[0] == job:
        return hit[1]
    row = _row_html(job, outdir)
    cache[job.job_id] = (job, row)
    return row


def render_report(
    outdir: str | Path,
    jobs: Sequence[JobRow],
    *,
    title: str = "fluxcompose batch",
    spent_usd: float | None = None,
    extra: Mapping[str, Any] | None = None,
    live: bool = False,
    row_cache: dict[str, tuple[JobRow, str]] | None = None,
) -> str:
    """The report page as a string. ``spent_usd`` defaults to the sum over ``jobs``.

    ``live`` marks a batch still running: the page then reloads itself every
    LIVE_REFRESH_S seconds, so a user can watch it; the final page does not.
    ``row_cache`` (job id -> the job as last rendered, its row) lets a page rewritten
    for the same folder render again only the jobs that changed.
    """
    out = Path(outdir).resolve()
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.state] = counts.get(job.state, 0) + 1
    spent = sum(j.cost_usd for j in jobs) if spent_usd is None else spent_usd
    verdicts = count_verdicts(jobs)
    judged = sum(verdicts.values())
    in_progress = sum(counts.get(s, 0) for s in ("pending", "submitted", "downloaded"))
    totals = [
        ("jobs", str(len(jobs))),
        ("done", str(counts.get("done", 0))),
        ("failed", str(counts.get("failed", 0))),
        ("not finished", str(in_progress)),
        # Three apart: a check not measured is neither a pass nor a fail.
        ("checks passed", f"{verdicts['passed']}/{judged}" if judged else "–"),
        ("checks failed", str(verdicts["failed"])),
        ("checks not measured", str(verdicts["not_measured"])),
        ("spent", f"${spent:.3f}"),
    ]
    for key, value in (extra or {}).items():
        totals.append((str(key), str(value)))
    totals_html = "".join(
        f'<div class="unmeasured"><b>{_e(v)}</b>{_e(k)}</div>'
        if k == "checks not measured" and v != "0"
        else f"<div><b>{_e(v)}</b>{_e(k)}</div>"
        for k, v in totals
    )
    rows = "\n".join(
        _row_html(j, out) if row_cache is None else _cached_row(j, out, row_cache) for j in jobs
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    refresh = f'<meta http-equiv="refresh" content="{LIVE_REFRESH_S}">' if live else ""
    status = f" · running, this page reloads every {LIVE_REFRESH_S} s" if live else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{_e(title)}</h1><div class="muted">updated {_e(stamp)}{status} · '
        f"{_e(str(out))}</div>\n"
        f'<div class="totals">{totals_html}</div>\n'
        "<table><thead><tr><th>line</th><th>job</th><th>state</th><th>sources</th>"
        "<th>output</th><th>ssim</th><th>ssim outside edit</th><th>pattern width</th>"
        "<th>checks</th><th>cost</th><th>tries</th><th>error</th></tr></thead><tbody>\n"
        f"{rows}\n</tbody></table></body></html>\n"
    )


def write_report(outdir: str | Path, jobs: Sequence[JobRow], **options: Any) -> Path:
    """Write ``OUTDIR/report.html`` atomically and return its path; ``options`` are
    :func:`render_report`'s (``title``, ``spent_usd``, ``extra``, ``live``, ``row_cache``)."""
    path = Path(outdir) / REPORT_NAME
    _write_atomic(path, render_report(outdir, jobs, **options).encode("utf-8"))
    return path


# The live report rewrites the whole page, which costs time in proportion to the jobs so far:
# bench/live_report.py measures 0.18 s at 2,000 jobs and 0.83 s at 8,000 for a first write,
# 0.10 s and 0.68 s for a rewrite (rows of unchanged jobs kept; loading the journal stays).
# At most this share of the batch's time goes to it: a long batch refreshes its page less
# often, instead of spending a core on it (every 2 s at 8,000 jobs was 41 % of one).
LIVE_REPORT_SHARE = 0.02


class ReportWriter:
    """Rewrites the report while a batch runs: at most every ``interval`` seconds, and
    after a write that took t seconds, not again for t / ``LIVE_REPORT_SHARE`` seconds.

    ``load`` returns the current jobs and spent total (usually from the journal).
    """

    def __init__(
        self,
        outdir: str | Path,
        load: Callable[[], tuple[Sequence[JobRow], float]],
        *,
        title: str = "fluxcompose batch",
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outdir = Path(outdir)
        self._load = load
        self._title = title
        self._interval = interval
        self._clock = clock
        self._last = -float("inf")
        self._wait = interval
        self._rows: dict[str, tuple[JobRow, str]] = {}  # each job's row, as last rendered
        self._lock = threading.Lock()
        self.path = self.outdir / REPORT_NAME

    def maybe_write(self) -> bool:
        """Write if the wait (see the class) has passed since the last write; True when it
        wrote."""
        if self._clock() - self._last < self._wait:
            return False
        self.write(live=True)
        return True

    def write(self, extra: Mapping[str, Any] | None = None, *, live: bool = False) -> Path:
        """Write now; ``live`` while the batch runs, not for the final page."""
        with self._lock:
            started = self._clock()
            jobs, spent = self._load()
            write_report(
                self.outdir,
                jobs,
                title=self._title,
                spent_usd=spent,
                extra=extra,
                live=live,
                row_cache=self._rows,
            )
            self._last = self._clock()
            self._wait = max(self._interval, (self._last - started) / LIVE_REPORT_SHARE)
        return self.path
