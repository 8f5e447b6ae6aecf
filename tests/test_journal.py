"""The SQLite journal: migrations, transitions, money, threads and kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fluxcompose import journal as journal_mod
from fluxcompose.journal import Journal


def test_fresh_journal_is_wal_and_records_its_migrations(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    j.close()
    db = sqlite3.connect(tmp_path / "j.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    assert names == [fn.__name__ for fn in journal_mod.MIGRATIONS]
    cols = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    assert {"job_id", "state", "attempts", "task_id", "cost_usd", "error", "error_kind"} <= cols
    assert {"output_path", "metrics", "checks_passed", "sources", "prompt", "line"} <= cols
    assert {"created_at", "updated_at", "started_at", "finished_at"} <= cols


def test_a_new_migration_runs_once_and_keeps_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        j.ensure("a", line=2)
    calls = []

    def m999_note(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("ALTER TABLE jobs ADD COLUMN note TEXT")

    monkeypatch.setattr(journal_mod, "MIGRATIONS", [*journal_mod.MIGRATIONS, m999_note])
    for _ in range(2):
        with Journal(tmp_path / "j.sqlite") as j:
            assert j.get("a") is not None
    assert calls == [1]


def test_a_failing_migration_leaves_nothing_half_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Journal(tmp_path / "j.sqlite").close()

    def m998_broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE extra (x)")
        raise RuntimeError("boom")

    monkeypatch.setattr(journal_mod, "MIGRATIONS", [*journal_mod.MIGRATIONS, m998_broken])
    with pytest.raises(RuntimeError):
        Journal(tmp_path / "j.sqlite")
    db = sqlite3.connect(tmp_path / "j.sqlite")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "extra" not in tables
    assert "m998_broken" not in {r[0] for r in db.execute("SELECT name FROM _migrations")}


def test_transitions_costs_and_attempts(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        row = j.ensure("job", line=4, prompt="p", sources=[{"source": "a.png"}], price_usd=0.04)
        assert (row.state, row.attempts, row.cost_usd, row.sources) == (
            "pending",
            0,
            0.0,
            [{"source": "a.png"}],
        )
        j.mark_submitted("job", "task-1|http://x/poll", attempts=1, started_at=100.0)
        j.note_retry("job", "HTTP 500", kind="transient")
        again = j.ensure("job", line=4)  # does not reset anything
        assert (again.state, again.task_id, again.attempts) == (
            "submitted",
            "task-1|http://x/poll",
            2,
        )
        j.mark_downloaded("job", tmp_path / "job.png", started_at=999.0)
        j.mark_done(
            "job",
            output_path=tmp_path / "job.png",
            cost_usd=0.04,
            metrics={"ssim": 0.9},
            checks_passed=True,
        )
        done = j.get("job")
        assert done is not None
        assert done.state == "done" and done.started_at == 100.0 and done.finished_at
        assert done.metrics == {"ssim": 0.9} and done.checks_passed is True
        assert done.error is None and done.output_path == str(tmp_path / "job.png")
        # Failed after being paid, retried, paid again: both payments count.
        j.ensure("other")
        j.mark_failed("other", "corrupt output", kind="output", cost_usd=0.04)
        j.mark_pending("other")
        j.mark_done("other", output_path="o.png", cost_usd=0.04)
        assert j.spent_usd() == pytest.approx(0.12)
        assert j.counts() == {"pending": 0, "submitted": 0, "downloaded": 0, "done": 2, "failed": 0}
        with pytest.raises(KeyError):
            j.mark_downloaded("nope", "x.png")


def test_jobs_are_returned_in_the_order_asked(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        for i, name in enumerate("cab"):
            j.ensure(name, line=10 - i)
        assert [r.job_id for r in j.jobs()] == ["b", "a", "c"]  # by line
        assert [r.job_id for r in j.jobs(["c", "zz", "a"])] == ["c", "a"]
        j.ensure("d", row_key="k1")
        found = j.find_by_row_key("k1")
        assert found is not None and found.job_id == "d"


def test_many_threads_one_journal(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")

    def worker(t: int) -> None:
        for i in range(50):
            jid = f"{t}-{i}"
            j.ensure(jid, line=i)
            j.mark_submitted(jid, f"task-{jid}", attempts=1)
            j.mark_done(jid, output_path=f"{jid}.png", cost_usd=0.01)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert j.counts()["done"] == 400
    assert j.spent_usd() == pytest.approx(4.0)
    assert all(r.attempts == 1 and r.task_id == f"task-{r.job_id}" for r in j.jobs())
    j.close()


_KILLER = """
import os, signal, sys
from fluxcompose.journal import Journal
j = Journal(sys.argv[1])
for i in range(200):
    j.ensure(f"job{i}", line=i)
    j.mark_submitted(f"job{i}", f"task{i}", attempts=1)
    if i % 2:
        j.mark_done(f"job{i}", output_path=f"o{i}.png", cost_usd=0.04)
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("durable", [True])
def test_kill_9_loses_nothing_committed(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "j.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    assert "committed" in proc.stdout
    with Journal(path, durable=durable) as j:
        counts = j.counts()
        assert counts["submitted"] == 100 and counts["done"] == 100
        assert j.spent_usd() == pytest.approx(4.0)
        assert all(r.task_id == f"task{r.job_id[3:]}" for r in j.jobs())
