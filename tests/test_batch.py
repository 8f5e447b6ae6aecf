"""``fluxcompose batch`` in-process: faults, budget, resume rules, scale, report, CLI errors.

Hosted backends run against tests.fakeapi.FakeAPI on 127.0.0.1. Outputs are checked
against what the fake server renders (a text-to-image result is a solid colour taken
from the prompt's SHA-256), money against the server's billable counter.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from fluxcompose import run as run_mod
from fluxcompose.backends import LocalBackend
from fluxcompose.backends.base import GenerationRequest, GenerationResult
from fluxcompose.backends.bfl import BFLBackend
from fluxcompose.backends.openai_compat import OpenAICompatBackend
from fluxcompose.batch import BatchSummary, ProgressSnapshot, StderrProgress, run_batch
from fluxcompose.cli import cli
from fluxcompose.cli.batch_cmd import redacted_command
from fluxcompose.journal import JobRow, Journal
from fluxcompose.report import render_report
from fluxcompose.run import ComposeOptions, RequestOptions
from tests.fakeapi import FakeAPI, Scripted
from tests.hermetic import hermetic_env
from tests.paths import SHARED_IMAGES

KEY = "sk-batch-secret-7f3a9c"
IMAGES = SHARED_IMAGES
PRICE = {"openai": 0.035, "bfl": 0.04}


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user configuration leaks in; retries back off in milliseconds, not seconds."""
    hermetic_env(monkeypatch)


def make_backend(name: str, api: FakeAPI) -> Any:
    if name == "openai":
        return OpenAICompatBackend(KEY, base_url=api.openai_base)
    # Poll every 20 ms instead of 0.5 s: the schedule is the backend's, tested there.
    return BFLBackend(KEY, base_url=api.bfl_base, sleep=lambda s: time.sleep(min(s, 0.02)))


def t2i_pairs(path: Path, prompts: list[str], ratio: str = "1:1") -> Path:
    path.write_text(
        "prompt,aspect_ratio\n" + "".join(f'"{p}",{ratio}\n' for p in prompts), encoding="utf-8"
    )
    return path


def expected_colour(prompt: str) -> tuple[int, int, int]:
    d = hashlib.sha256(prompt.encode()).digest()
    return d[0], d[1], d[2]


def assert_solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    """The file decodes completely and is the fake server's picture for that prompt."""
    with Image.open(path) as im:
        im.load()  # raises on a truncated file
        assert im.size == size
        assert im.convert("RGB").getextrema() == tuple((c, c) for c in colour)


def rows(outdir: Path) -> list[JobRow]:
    with Journal.for_outdir(outdir) as j:
        return j.jobs()


def secret_free(outdir: Path) -> None:
    for path in outdir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path.name


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("backend_name", ["openai", "bfl"])
def test_fault_mix_every_good_job_done_and_paid_once(tmp_path: Path, backend_name: str) -> None:
    prompts = [f"a lighthouse, variation {i}" for i in range(16)]
    prompts.insert(9, "a FORBIDDEN scene")  # line 11
    pairs = t2i_pairs(tmp_path / "pairs.csv", prompts)
    out = tmp_path / "out"
    with FakeAPI(seed=4) as api:
        api.fault_429, api.fault_500, api.fault_drop = 0.2, 0.1, 0.05
        api.retry_after = "0.05"
        api.moderate_substring = "FORBIDDEN"
        summary = run_batch(
            pairs,
            None,
            out,
            backend=make_backend(backend_name, api),
            concurrency=4,
            max_attempts=12,
            compare=False,
        )
        statuses = [r.status for r in api.submissions]
        billable = api.billable
        moderated_submissions = [
            r for r in api.submissions if "FORBIDDEN" in str((r.json or {}).get("prompt"))
        ]

    # The fault mix really happened (the fake's RNG is seeded: the sequence is fixed).
    assert 429 in statuses and 500 in statuses and 0 in statuses
    assert summary["jobs"] == 17 and summary["done"] == 16 and summary["failed"] == 1
    assert summary["skipped"] == 0 and summary["pending"] == 0
    (err,) = summary["errors"]
    assert err["kind"] == "moderated" and err["line"] == 11 and "line 11" in err["error"]
    # Moderation is never retried: the prompt got past the faults exactly once.
    assert len([r for r in moderated_submissions if r.status in (200, 400)]) == 1
    assert len(summary["outputs"]) == 16
    by_prompt = {r.prompt: r for r in rows(out)}
    for prompt in prompts:
        row = by_prompt[prompt]
        if "FORBIDDEN" in prompt:
            assert row.state == "failed" and row.error_kind == "moderated"
            continue
        assert row.state == "done" and row.cost_usd == PRICE[backend_name]
        assert row.output_path in summary["outputs"]
        assert_solid(Path(str(row.output_path)), expected_colour(prompt), (1024, 1024))
    # Paid once per done job. BFL also bills the moderated task: it was accepted, then
    # refused while polling; its id is in the journal like every other accepted task.
    if backend_name == "openai":
        assert billable == 16
    else:
        assert billable == 17 == sum(1 for r in rows(out) if r.task_id)
    assert summary["spent_usd"] == pytest.approx(16 * PRICE[backend_name])
    assert not list(out.glob(".*.part"))
    secret_free(out)


def test_duplicate_rows_are_one_job(tmp_path: Path) -> None:
    pairs = t2i_pairs(tmp_path / "pairs.csv", ["same", "same", "other"])
    with FakeAPI() as api:
        summary = run_batch(pairs, None, tmp_path / "out", backend=make_backend("openai", api))
        assert api.billable == 2
    assert summary["jobs"] == 2 and summary["done"] == 2


# --------------------------------------------------------------------------- budget


class Messages:
    """A progress sink that keeps the messages."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, snap: ProgressSnapshot) -> None:
        pass

    def message(self, text: str) -> None:
        self.lines.append(text)

    def close(self, snap: ProgressSnapshot) -> None:
        pass


def test_budget_starts_exactly_the_jobs_it_allows_and_counts_earlier_runs(tmp_path: Path) -> None:
    pairs = t2i_pairs(tmp_path / "pairs.csv", [f"budget job {i}" for i in range(10)])
    out = tmp_path / "out"
    with FakeAPI() as api:
        api.latency = 0.05  # keep several jobs in flight when the budget is checked
        sink = Messages()
        first = run_batch(
            pairs,
            None,
            out,
            backend=make_backend("openai", api),
            concurrency=4,
            budget_usd=3 * 0.035,  # 0.105: three jobs, despite float rounding
            compare=False,
            progress=sink,
        )
        assert api.billable == 3 and len(api.submissions) == 3
        assert first["budget_stopped"] and first["done"] == 3 and first["pending"] == 7
        assert first["jobs"] == 10 and first["spent_usd"] == pytest.approx(0.105)
        assert any("budget" in m and "same command" in m for m in sink.lines)
        # The same budget again: the journal already spent it, nothing starts.
        again = run_batch(
            pairs,
            None,
            out,
            backend=make_backend("openai", api),
            budget_usd=0.105,
            compare=False,
        )
        assert api.billable == 3 and again["done"] == 3 and again["skipped"] == 3
        # A bigger budget counts what earlier runs spent: 0.21 allows three more.
        more = run_batch(
            pairs,
            None,
            out,
            backend=make_backend("openai", api),
            concurrency=4,
            budget_usd=0.21,
            compare=False,
        )
        assert api.billable == 6 and more["done"] == 6 and more["skipped"] == 3
        assert more["spent_usd"] == pytest.approx(0.21)


# --------------------------------------------------------------------------- resume rules


def test_resume_skips_done_and_retries_failed_only_when_asked(tmp_path: Path) -> None:
    prompts = ["keep 1", "keep 2", "keep 3", "bad request", "a FORBIDDEN one"]
    pairs = t2i_pairs(tmp_path / "pairs.csv", prompts)
    out = tmp_path / "out"
    with FakeAPI() as api:
        api.moderate_substring = "FORBIDDEN"
        backend = make_backend("openai", api)
        # concurrency 1, and the 400 is scripted just before that prompt is sent.
        calls = {"n": 0}
        original = backend.generate

        def generate(request: GenerationRequest, **kw: Any) -> GenerationResult:
            calls["n"] += 1
            if request.prompt == "bad request" and calls["n"] < 100:
                api.script(Scripted(400, code="invalid_request", message="bad field"))
            return original(request, **kw)

        backend.generate = generate  # type: ignore[method-assign]
        first = run_batch(pairs, None, out, backend=backend, concurrency=1, compare=False)
        assert (first["done"], first["failed"]) == (3, 2)
        kinds = {r.prompt: r.error_kind for r in rows(out) if r.state == "failed"}
        assert kinds == {"bad request": "request", "a FORBIDDEN one": "moderated"}
        n_submissions = len(api.submissions)

        second = run_batch(pairs, None, out, backend=backend, concurrency=1, compare=False)
        assert len(api.submissions) == n_submissions  # nothing sent at all
        assert (second["done"], second["failed"], second["skipped"]) == (3, 2, 3)

        calls["n"] = 1000  # the 400 was a one-off
        third = run_batch(
            pairs, None, out, backend=backend, concurrency=1, compare=False, retry_failed=True
        )
        sent = [r.json["prompt"] for r in api.submissions[n_submissions:]]
        assert sent == ["bad request"]  # the moderated prompt is never sent again
        assert (third["done"], third["failed"], third["skipped"]) == (4, 1, 3)
        assert api.billable == 4


def test_bfl_failed_task_is_polled_again_by_id_not_resubmitted(tmp_path: Path) -> None:
    pairs = t2i_pairs(tmp_path / "pairs.csv", ["slow task", "quick task"])
    out = tmp_path / "out"
    with FakeAPI() as api:
        fast = make_backend("bfl", api)
        api.pending_polls = 10_000  # never ready while this run waits
        slow = BFLBackend(KEY, base_url=api.bfl_base, timeout=0.2, sleep=lambda s: time.sleep(0.02))
        first = run_batch(pairs, None, out, backend=slow, max_attempts=1, compare=False)
        assert first["failed"] == 2 and api.billable == 2
        assert {r.error_kind for r in rows(out)} == {"transient"}
        assert all(r.task_id for r in rows(out))

        api.pending_polls = 0
        for task in api._tasks.values():  # the provider finished them meanwhile
            task.polls_left = 0
        kept = run_batch(pairs, None, out, backend=fast, compare=False)
        assert kept["failed"] == 2 and api.billable == 2  # not retried without the flag

        n_submissions = len(api.submissions)
        retried = run_batch(pairs, None, out, backend=fast, compare=False, retry_failed=True)
        assert retried["done"] == 2 and retried["failed"] == 0
        assert len(api.submissions) == n_submissions and api.billable == 2  # polled, not paid
    for prompt, row in ((r.prompt, r) for r in rows(out)):
        assert prompt is not None
        assert_solid(Path(str(row.output_path)), expected_colour(prompt), (1024, 1024))


def test_stop_event_leaves_the_rest_pending_and_a_rerun_finishes(tmp_path: Path) -> None:
    pairs = t2i_pairs(tmp_path / "pairs.csv", [f"stop job {i}" for i in range(12)])
    out = tmp_path / "out"
    stop = threading.Event()
    with FakeAPI() as api:
        api.hold()
        backend = make_backend("openai", api)
        got: dict[str, BatchSummary] = {}

        def first_run() -> None:
            got["first"] = run_batch(
                pairs, None, out, backend=backend, concurrency=2, compare=False, stop_event=stop
            )

        runner = threading.Thread(target=first_run)
        runner.start()
        api.wait_arrived(2)  # two jobs on the network
        api.let_go(2)  # they are answered; the next two go out and are held
        api.wait_arrived(4)
        stop.set()
        api.let_go()
        runner.join(120)
        first = got["first"]
        # What was in flight when the stop came finished and was recorded; nothing else went.
        assert first["interrupted"] and first["done"] == 4 and first["failed"] == 0
        assert first["pending"] == 8 and api.billable == 4 and len(api.submissions) == 4
        second = run_batch(pairs, None, out, backend=backend, concurrency=4, compare=False)
        assert second["done"] == 12 and not second["interrupted"]
        assert second["skipped"] == first["done"] and api.billable == 12


# --------------------------------------------------------------------------- scale


class TinyLocal(LocalBackend):
    """The local backend with a 16x16 output: the real one renders ~1 MP per job
    (60-300 ms), which would make 2,000 rows take minutes on two cores."""

    calls = 0
    lock = threading.Lock()

    def generate(
        self, request: GenerationRequest, *, on_submitted: Any = None, resume_task_id: Any = None
    ) -> GenerationResult:
        with self.lock:
            TinyLocal.calls += 1
        assert request.input_image is not None
        with Image.open(io.BytesIO(request.input_image)) as canvas:
            small = canvas.convert("RGB").resize((16, 16))
        buf = io.BytesIO()
        small.save(buf, "PNG")
        return GenerationResult(data=buf.getvalue())


def test_two_thousand_rows_on_the_local_backend(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6), (200, 30, 30)).save(tmp_path / "l.png")
    Image.new("RGB", (6, 8), (30, 30, 200)).save(tmp_path / "r.png")
    n = 2000
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("left,right,seed\n" + "".join(f"l.png,r.png,{i}\n" for i in range(n)))
    out = tmp_path / "out"
    TinyLocal.calls = 0
    opts = ComposeOptions(upscale=False)
    summary = run_batch(
        pairs, "side-by-side", out, backend=TinyLocal(), compose_options=opts, compare=False
    )
    assert summary["jobs"] == n and summary["done"] == n and summary["failed"] == 0
    assert summary["spent_usd"] == 0 and TinyLocal.calls == n
    assert len(set(summary["outputs"])) == n
    db = sqlite3.connect(out / "journal.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT line), MIN(line), MAX(line), SUM(attempts)"
        " FROM jobs WHERE state = 'done' AND output_path IS NOT NULL AND finished_at >= started_at"
    ).fetchone() == (n, n, 2, n + 1, n)
    for path in summary["outputs"][:: n // 20]:
        with Image.open(path) as im:
            im.load()
            assert im.size == (16, 16)
    again = run_batch(
        pairs, "side-by-side", out, backend=TinyLocal(), compose_options=opts, compare=False
    )
    assert again["skipped"] == n and TinyLocal.calls == n


# --------------------------------------------------------------------------- report, progress


def test_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    (tmp_path / "thumbs").mkdir()
    nasty = '<script>alert("x")</script>'
    job = JobRow(
        job_id="job-1",
        line=2,
        row_key=None,
        state="failed",
        attempts=1,
        backend="openai",
        model="flux-kontext-pro",
        task_id=None,
        price_usd=0.035,
        cost_usd=0.0,
        error=f"line 2: {nasty}",
        error_kind="request",
        output_path=None,
        sidecar_path=None,
        metrics=None,
        checks_passed=None,
        sources=[{"source": str(tmp_path / f"{nasty}.png")}, {"source": "https://e.com/a&b.png"}],
        prompt=nasty,
        thumbs=None,
        timings=None,
        created_at=0.0,
        updated_at=0.0,
        started_at=None,
        finished_at=None,
    )
    done = JobRow(
        **{
            **job.__dict__,
            "job_id": "job-2",
            "state": "done",
            "error": None,
            "error_kind": None,
            "output_path": str(tmp_path / "job-2.png"),
            "metrics": {
                "ssim": 0.91234,
                "ssim_outside_edit": 0.8,
                "pattern": {"width_fraction": 0.5},
            },
            "checks_passed": True,
            "cost_usd": 0.035,
            "thumbs": {"sources": ["thumbs/job-2.src1.jpg"], "output": "thumbs/job-2.out.jpg"},
        }
    )
    page = render_report(tmp_path, [job, done])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="https://e.com/a&amp;b.png"' in page
    assert 'src="thumbs/job-2.out.jpg"' in page and 'href="job-2.png"' in page
    assert "0.912" in page and "$0.035" in page and ">pass<" in page
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_batch_report_thumbnails_exist_and_links_are_relative(tmp_path: Path) -> None:
    left, right = tmp_path / "left.jpg", tmp_path / "right.jpg"
    shutil.copy(IMAGES / "hopper.jpg", left)
    shutil.copy(IMAGES / "flower2.jpg", right)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("left.jpg|right.jpg\n")
    out = tmp_path / "out"
    with FakeAPI() as api:
        summary = run_batch(
            pairs,
            "side-by-side",
            out,
            backend=make_backend("openai", api),
            request_options=RequestOptions(output_format="jpeg"),
            compare=False,
        )
    assert summary["done"] == 1
    page = (out / "report.html").read_text()
    (row,) = rows(out)
    assert row.thumbs is not None and len(row.thumbs["sources"]) == 2 and row.thumbs["output"]
    for rel in [*row.thumbs["sources"], row.thumbs["output"]]:
        assert f'src="{rel}"' in page
        with Image.open(out / rel) as im:
            assert max(im.size) <= 160
    assert 'href="../left.jpg"' in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 3 and all(not s.startswith(("http", "/", "file:")) for s in srcs)


def test_progress_lines_plain_and_tty() -> None:
    snap = ProgressSnapshot(
        jobs=40,
        done=10,
        failed=2,
        in_flight=3,
        spent_usd=0.35,
        elapsed_s=12,
        finished_this_run=12,
        eta_s=28,
    )
    plain, now = io.StringIO(), [0.0]
    p = StderrProgress(plain, tty=False, interval=2.0, clock=lambda: now[0])
    p.update(snap)
    now[0] = 0.5
    p.update(snap)  # too soon, same 5 % step: nothing
    now[0] = 2.6
    p.update(snap)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in plain.getvalue()
    assert "12/40" in lines[0] and "done 10" in lines[0] and "failed 2" in lines[0]
    assert "in flight 3" in lines[0] and "$0.350" in lines[0] and "ETA 00:28" in lines[0]
    tty = io.StringIO()
    t = StderrProgress(tty, tty=True, clock=lambda: now[0])
    t.update(snap)
    t.message("note")
    t.close(snap)
    assert tty.getvalue().startswith("\r[") and "note\n" in tty.getvalue()


# --------------------------------------------------------------------------- CLI


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("fluxcompose: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.fixture
def two_images(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    shutil.copy(IMAGES / "hopper.jpg", a)
    shutil.copy(IMAGES / "flower2.jpg", b)
    yield a, b


def test_cli_bad_usage_exits_2_with_one_line(tmp_path: Path, two_images: tuple[Path, Path]) -> None:
    out = tmp_path / "out"
    assert "not found" in one_error(
        invoke("batch", tmp_path / "nope.csv", "-r", "side-by-side", "-o", out)
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("first,second\na.jpg,b.jpg\n")
    assert "left,right" in one_error(invoke("batch", bad, "-r", "side-by-side", "-o", out))
    good = tmp_path / "good.txt"
    good.write_text("a.jpg|b.jpg\n")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "not a folder" in one_error(invoke("batch", good, "-r", "side-by-side", "-o", a_file))
    assert "--recipe" in one_error(invoke("batch", good, "-o", out, "--backend", "local"))
    assert not out.exists()


def test_the_resume_hint_never_shows_the_key() -> None:
    hint = redacted_command(["batch", "p.csv", "--api-key", KEY, "-o", "out", f"--api-key={KEY}"])
    assert KEY not in hint
    assert hint == "fluxcompose batch p.csv --api-key ... -o out --api-key=..."


def test_cli_a_missing_image_fails_only_its_row(
    tmp_path: Path, two_images: tuple[Path, Path]
) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("left,right\na.jpg,b.jpg\nmissing.jpg,b.jpg\nb.jpg,a.jpg\n")
    out = tmp_path / "out"
    result = invoke(
        "batch", pairs, "-r", "side-by-side", "-o", out, "--backend", "local",
        "--no-compare", "--output-format", "jpeg", "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("jobs", "done", "failed", "skipped")} == {
        "jobs": 3,
        "done": 2,
        "failed": 1,
        "skipped": 0,
    }
    (err,) = summary["errors"]
    assert err["line"] == 3 and "line 3" in err["error"] and "missing.jpg" in err["error"]
    assert "line 3" in result.stderr and (out / "report.html").exists()
    for path in summary["outputs"]:
        with Image.open(path) as im:
            im.load()
    rerun = invoke(
        "batch", pairs, "-r", "side-by-side", "-o", out, "--backend", "local",
        "--no-compare", "--output-format", "jpeg", "--json",
    )  # fmt: skip
    assert rerun.exit_code == 1 and json.loads(rerun.stdout)["skipped"] == 2


def test_cli_batch_takes_the_compose_options_of_run(
    tmp_path: Path, two_images: tuple[Path, Path]
) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("left,right\na.jpg,b.jpg\n")
    out = tmp_path / "out"
    result = invoke(
        "batch", pairs, "-r", "side-by-side", "-o", out, "--backend", "local", "--no-compare",
        "--layout", "vertical", "--gutter", "12", "--megapixels", "0.25", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (output,) = json.loads(result.stdout)["outputs"]
    sidecar = json.loads(Path(output).with_suffix(".json").read_text())
    canvas = sidecar["canvas"]
    assert canvas["layout"] == "vertical" and canvas["gutter"] == 12
    # Two cells stacked: the second starts at least one gutter below the first.
    first, second = canvas["cells"]
    assert second["y"] - (first["y"] + first["h"]) >= 12
    assert canvas["width"] * canvas["height"] <= 0.25 * 1024 * 1024 * 1.05


def test_cli_hosted_run_exit_0_and_no_key_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = t2i_pairs(tmp_path / "pairs.csv", ["one", "two"])
    out = tmp_path / "out"
    with FakeAPI(api_key=KEY) as api:
        monkeypatch.setenv("FLUXCOMPOSE_API_KEY", KEY)
        result = invoke(
            "batch", pairs, "-o", out, "--backend", "openai", "--base-url", api.openai_base,
            "--concurrency", "2", "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) >= {"jobs", "done", "failed", "skipped", "spent_usd", "wall_s", "outputs"}
    assert summary["done"] == 2 and summary["spent_usd"] == pytest.approx(0.07)
    assert KEY not in result.stdout and KEY not in result.stderr
    secret_free(out)


def test_report_reloads_itself_only_while_the_batch_runs(tmp_path: Path) -> None:
    from fluxcompose.report import ReportWriter

    ticks = iter([0.0, 0.0, 10.0, 10.0, 20.0, 20.0])
    writer = ReportWriter(tmp_path, lambda: ([], 0.0), interval=2.0, clock=lambda: next(ticks))
    assert writer.maybe_write()
    assert 'http-equiv="refresh"' in writer.path.read_text()
    writer.write()
    assert 'http-equiv="refresh"' not in writer.path.read_text()


def test_a_slow_live_report_is_rewritten_less_often(tmp_path: Path) -> None:
    """The page costs time in proportion to the jobs so far: after a write that took 1 s,
    the next waits 1 / LIVE_REPORT_SHARE s, not the 2 s interval; a quick one, 2 s."""
    from fluxcompose.report import LIVE_REPORT_SHARE, ReportWriter

    now = [0.0]
    load_takes = [1.0]

    def load() -> tuple[list[Any], float]:
        now[0] += load_takes[0]  # the clock moves while the jobs load
        return [], 0.0

    writer = ReportWriter(tmp_path, load, interval=2.0, clock=lambda: now[0])
    assert writer.maybe_write()  # t = 0 -> 1
    wait = 1.0 / LIVE_REPORT_SHARE
    assert wait > 2.0
    now[0] = 1.0 + 2.5
    assert not writer.maybe_write()
    now[0] = 1.0 + wait - 0.01
    assert not writer.maybe_write()
    now[0] = 1.0 + wait
    load_takes[0] = 0.001  # a quick write: back to the interval
    assert writer.maybe_write()
    done = now[0]
    now[0] = done + 1.9
    assert not writer.maybe_write()
    now[0] = done + 2.0
    assert writer.maybe_write()


def test_a_finish_that_cannot_reach_a_worker_process_is_done_in_the_thread(
    tmp_path: Path,
) -> None:
    import dataclasses

    from fluxcompose.batch.finish import FinishTask, finish_in_worker

    prepared = run_mod.prepare_job(
        run_mod.JobSpec(recipe=None, prompt="a finish test"), backend_name="local"
    )

    class Unpicklable(run_mod.PreparedJob):  # a local class: pickle cannot name it
        pass

    local = Unpicklable(**{f.name: getattr(prepared, f.name) for f in dataclasses.fields(prepared)})
    output = tmp_path / f"{prepared.job_id}.png"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(output)
    for job in (local, prepared):  # the second one does go to the worker
        task = FinishTask(job, output, tmp_path, "local", False, None)
        done = finish_in_worker(task, workers=1)
        assert done.error is None and done.outcome is not None
        sidecar = json.loads(done.outcome.sidecar_path.read_text())
        assert sidecar["output"]["width"] == 32 and sidecar["output"]["height"] == 24
        assert done.thumbs is not None and (tmp_path / done.thumbs["output"]).exists()
