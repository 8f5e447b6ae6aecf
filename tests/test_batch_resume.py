"""``fluxcompose batch`` as a real process: SIGKILL part way, SIGINT, and resuming.

The fake API runs in the test process; the batch runs in a child process through the
command line, and the test reads the child's journal while it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.fakeapi import FakeAPI
from tests.hermetic import API_ENV_PREFIXES

KEY = "sk-resume-secret-51c0de"
KEY_VAR = {"openai": "FLUXCOMPOSE_API_KEY", "bfl": "BFL_API_KEY"}
CONCURRENCY = 4


def child_env(backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(API_ENV_PREFIXES)}
    env[KEY_VAR[backend]] = KEY  # the key goes by environment, never on the command line
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def command(pairs: Path, out: Path, backend: str, api: FakeAPI) -> list[str]:
    base = api.openai_base if backend == "openai" else api.bfl_base
    return [
        sys.executable, "-c", "from fluxcompose.cli import main; main()",
        "batch", str(pairs), "-o", str(out), "--backend", backend, "--base-url", base,
        "--concurrency", str(CONCURRENCY), "--max-attempts", "50", "--no-compare", "--json",
    ]  # fmt: skip


def journal_query(out: Path, sql: str) -> int:
    path = out / "journal.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute(sql).fetchone()[0] or 0)
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 40
    while not cond():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"batch exited ({proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def done_count(out: Path) -> int:
    return journal_query(out, "SELECT COUNT(*) FROM jobs WHERE state = 'done'")


def setup(tmp_path: Path, n: int) -> tuple[Path, Path, list[str]]:
    prompts = [f"resume job number {i}" for i in range(n)]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("prompt,aspect_ratio\n" + "".join(f"{p},1:1\n" for p in prompts))
    return pairs, tmp_path / "out", prompts


def check_outputs(summary: dict[str, object], out: Path, prompts: list[str]) -> None:
    """Every job done, each output complete and the server's picture for its prompt."""
    db = sqlite3.connect(out / "journal.sqlite")
    rows = db.execute("SELECT prompt, state, output_path FROM jobs").fetchall()
    assert sorted(r[0] for r in rows) == sorted(prompts)
    for prompt, state, output in rows:
        assert state == "done"
        d = hashlib.sha256(prompt.encode()).digest()
        with Image.open(output) as im:
            im.load()  # a truncated file raises here
            assert im.convert("RGB").getextrema() == ((d[0], d[0]), (d[1], d[1]), (d[2], d[2]))
    assert sorted(summary["outputs"]) == sorted(r[2] for r in rows)  # type: ignore[arg-type]
    assert not list(out.glob(".*.part")), "a partial download was left behind"


@pytest.mark.parametrize("backend", ["bfl", "openai"])
def test_sigkill_part_way_then_resume(tmp_path: Path, backend: str) -> None:
    pairs, out, prompts = setup(tmp_path, 12)
    with FakeAPI() as api:
        api.hold()  # every submission waits for the test: no guess at how long a job takes
        cmd = command(pairs, out, backend, api)
        proc = subprocess.Popen(
            cmd, env=child_env(backend), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        api.let_go(3)
        wait_for(lambda: done_count(out) >= 3, proc, "3 jobs done")
        if backend == "bfl":
            # BFL bills at submission and only a committed task id makes a task resumable:
            # the next tasks are accepted but never ready, and the kill comes once every
            # accepted task's id is in the journal.
            api.pending_polls = 10_000
            api.let_go(CONCURRENCY)
            wait_for(
                lambda: (
                    journal_query(out, "SELECT COUNT(task_id) FROM jobs WHERE state = 'submitted'")
                    == CONCURRENCY
                ),
                proc,
                "every accepted task id committed",
            )
            assert api.billable == 3 + CONCURRENCY
        else:
            api.wait_arrived(3 + CONCURRENCY)  # the next requests are out, unanswered
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert done_count(out) == 3
        if backend == "bfl":
            submitted = journal_query(out, "SELECT COUNT(*) FROM jobs WHERE state = 'submitted'")
            assert submitted == CONCURRENCY  # to be resumed by id
            api.pending_polls = 0
            for task in api._tasks.values():  # the provider finished them meanwhile
                task.polls_left = 0
        api.let_go()

        second = subprocess.run(
            cmd, env=child_env(backend), capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stderr[-2000:]
        summary = json.loads(second.stdout)
        assert summary["jobs"] == 12 and summary["done"] == 12 and summary["failed"] == 0
        check_outputs(summary, out, prompts)
        if backend == "bfl":
            assert api.billable == 12  # resumed tasks were polled, never submitted again
        else:
            # Only the requests cut off by the kill are paid twice (the provider answered
            # them after the client died).
            assert 12 <= api.billable <= 12 + CONCURRENCY
        assert KEY not in second.stderr and KEY not in second.stdout


def read_stderr_until(proc: subprocess.Popen[str], text: str) -> str:
    """What the child wrote to stderr up to the line that has ``text`` (blocking)."""
    assert proc.stderr is not None
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"the batch closed stderr before {text!r}: {seen[-2000:]}")
        seen += line
    return seen


def test_sigint_stops_cleanly_and_the_same_command_finishes(tmp_path: Path) -> None:
    pairs, out, prompts = setup(tmp_path, 12)
    with FakeAPI() as api:
        api.hold()
        cmd = command(pairs, out, "openai", api)
        proc = subprocess.Popen(
            cmd, env=child_env("openai"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        api.let_go(2)
        wait_for(lambda: done_count(out) >= 2, proc, "2 jobs done")
        api.wait_arrived(2 + CONCURRENCY)  # four more on the network, unanswered
        proc.send_signal(signal.SIGINT)
        # The jobs in flight are answered only once the batch has taken the signal in.
        early = read_stderr_until(proc, "not starting new jobs")
        api.let_go()
        stdout, rest = proc.communicate(timeout=60)
        stderr = early + rest
        assert proc.returncode == 130, stderr[-2000:]
        assert "Traceback" not in stderr
        assert "run the same command" in stderr and "batch" in stderr
        first = json.loads(stdout)
        # In-flight work reached the journal: nothing is left half-way, nothing new went.
        assert first["interrupted"] and first["done"] == 2 + CONCURRENCY
        assert (
            journal_query(
                out, "SELECT COUNT(*) FROM jobs WHERE state IN ('submitted', 'downloaded')"
            )
            == 0
        )
        assert api.billable == first["done"] and len(api.submissions) == first["done"]

        second = subprocess.run(
            cmd, env=child_env("openai"), capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stderr[-2000:]
        summary = json.loads(second.stdout)
        assert summary["done"] == 12 and summary["skipped"] == first["done"]
        check_outputs(summary, out, prompts)
        assert api.billable == 12


def test_a_second_batch_on_the_same_outdir_is_refused(tmp_path: Path) -> None:
    pairs, out, _ = setup(tmp_path, 4)
    with FakeAPI() as api:
        api.hold()  # the first batch stays on the network until the test lets it go
        cmd = command(pairs, out, "openai", api)
        proc = subprocess.Popen(
            cmd, env=child_env("openai"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            api.wait_arrived(1)
            other = subprocess.run(
                cmd, env=child_env("openai"), capture_output=True, text=True, timeout=60
            )
            assert other.returncode == 2
            assert "another fluxcompose batch is running" in other.stderr
        finally:
            api.let_go()
            proc.communicate(timeout=60)
        assert proc.returncode == 0 and api.billable == 4
