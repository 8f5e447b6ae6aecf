"""The report and the batch summary count checks passed, failed and not measured apart
(DESIGN.md section 7): not measured is amber and never counted as a pass or a fail."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluxcompose.cli import cli
from fluxcompose.journal import JobRow
from fluxcompose.report import checks_verdict, count_verdicts, render_report
from tests.paths import SHARED_IMAGES

REPO = Path(__file__).resolve().parent.parent


def _row(job_id: str, checks: dict[str, Any] | None, passed: bool | None, **kw: Any) -> JobRow:
    base: dict[str, Any] = dict(
        job_id=job_id, line=1, row_key=None, state="done", attempts=1, backend="local",
        model="flux-kontext-pro", task_id=None, price_usd=0.0, cost_usd=0.0, error=None,
        error_kind=None, output_path=None, sidecar_path=None,
        metrics=None if checks is None else {"checks": checks, "passed": passed},
        checks_passed=passed, sources=[], prompt="p", thumbs=None, timings=None,
        created_at=0.0, updated_at=0.0, started_at=None, finished_at=None,
    )  # fmt: skip
    base.update(kw)
    return JobRow(**base)


NO_SUBJECT = {"pass": None, "value": None, "expected": 0.8, "reason": "no subject found"}
OK = {"pass": True, "value": 0.9, "expected": 0.5}
BAD = {"pass": False, "value": 0.1, "expected": 0.5}


def test_three_verdicts_counted_apart() -> None:
    rows = [
        _row("p", {"a": OK, "b": OK}, True),
        _row("f", {"a": OK, "b": BAD, "c": NO_SUBJECT}, False),  # a measured fail is a fail
        # compare says passed: false when a check was not measured; that is not a fail.
        _row("n", {"a": OK, "c": NO_SUBJECT}, False),
        _row("off", None, None),  # --no-compare: nothing was measured
        _row("pending", None, None, state="pending"),  # no verdict at all
    ]
    assert [checks_verdict(r) for r in rows] == [
        "passed", "failed", "not_measured", "not_measured", None
    ]  # fmt: skip
    assert count_verdicts(rows) == {"passed": 1, "failed": 1, "not_measured": 2}
    page = render_report("/tmp", rows)
    totals = re.search(r'<div class="totals">(.*?)</div>\n', page, re.S)
    assert totals is not None
    text = re.sub(r"<[^>]+>", " ", totals.group(1))
    text = " ".join(text.split())
    assert "1/4 checks passed" in text and "1 checks failed" in text
    assert "2 checks not measured" in text
    assert '<div class="unmeasured"><b>2</b>checks not measured</div>' in page
    cells = re.findall(r"<td>(<span class=\"(?:pass|fail|unmeasured)\".*?</span>)</td>", page)
    assert len(cells) == 4  # the pending job has no verdict
    assert cells[0] == '<span class="pass">pass</span>'
    assert cells[1] == '<span class="fail">fail</span>'
    assert cells[2].startswith('<span class="unmeasured" title="c: no subject found">')
    assert cells[2].endswith(">not measured</span>") and "not measured" in cells[3]
    assert ".unmeasured{" in page  # amber, styled inline


@pytest.mark.skipif(not (SHARED_IMAGES / "flower.jpg").is_file(), reason="needs ../shared")
def test_batch_summary_counts_not_measured_apart(tmp_path: Path) -> None:
    """A photo with no person (flower): its chest checks are not measured; the summary, the
    --json and the page say so, and do not count it as failed."""
    pattern = REPO / "samples" / "pattern.png"
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "id,image1,image2\n"
        f"flower,{pattern},{SHARED_IMAGES / 'flower.jpg'}\n"
        f"model,{pattern},{REPO / 'samples' / 'model.jpg'}\n"
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        ["batch", str(pairs), "-r", "pattern-transfer", "-o", str(out), "--backend", "local",
         "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    counts = [summary[k] for k in ("checks_passed", "checks_failed", "checks_not_measured")]
    assert sum(counts) == summary["done"] == 2
    assert summary["checks_not_measured"] >= 1
    side = json.loads((out / "flower.json").read_text())
    assert any(c["pass"] is None for c in side["checks"].values())
    assert not any(c["pass"] is False for c in side["checks"].values())
    assert f"checks: {counts[0]} passed, {counts[1]} failed, {counts[2]} not measured" in res.stderr
    page = (out / "report.html").read_text()
    assert f"<b>{counts[2]}</b>checks not measured" in page


def test_rewritten_report_renders_again_only_changed_jobs_and_shows_their_change(
    tmp_path: Path,
) -> None:
    """A live report keeps the rows it rendered (``row_cache``): the page equals a fresh
    render, and a job whose verdict or state changed shows the change."""
    jobs = [_row(f"job-{i}", {"fit": OK}, True) for i in range(4)]
    jobs.append(_row("job-x", None, None, state="submitted"))
    cache: dict[str, Any] = {}

    def body(page: str) -> str:
        return re.sub(r"updated [0-9: -]+", "", page)  # the time stamp apart

    first = render_report(tmp_path, jobs, live=True, row_cache=cache)
    assert body(first) == body(render_report(tmp_path, jobs, live=True))
    assert set(cache) == {j.job_id for j in jobs}
    changed = list(jobs)
    changed[1] = _row("job-1", {"fit": BAD}, False)
    changed[4] = _row("job-x", {"fit": NO_SUBJECT}, None, state="done")
    again = render_report(tmp_path, changed, live=True, row_cache=cache)
    assert body(again) == body(render_report(tmp_path, changed, live=True))
    assert body(again) != body(first)
    assert cache["job-1"][0] == changed[1] and cache["job-x"][0] == changed[4]
