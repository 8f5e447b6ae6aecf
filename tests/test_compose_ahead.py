"""The batch composes ahead of the network, into a bounded queue (issue 16 item 3).

The fake holds every reply until the test releases it, so nothing here races a clock:
while ``concurrency`` requests are held, the next jobs are already composed and journaled
(ready for the moment a slot frees), and no more than the queue's bound."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fluxcompose.backends import make_backend
from fluxcompose.batch import run_batch
from tests.fakeapi import FakeAPI

C = 2
N = 24


def _journal_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not there yet
        return 0
    finally:
        db.close()


def _until(what: Any, timeout: float = 30.0) -> None:
    """Wait for a condition the code under test must reach (a deadline, not a race)."""
    end = time.monotonic() + timeout
    while not what():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the batch")
        time.sleep(0.01)


def test_jobs_are_composed_ahead_and_the_queue_is_bounded(
    tmp_path: Path, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # two composers, as on the CI machine
    gate = threading.Event()
    seen = threading.Semaphore(0)

    def hold(model: str, fields: dict[str, Any], image: bytes, fmt: str) -> bytes:
        seen.release()
        gate.wait(60)
        return image

    fake_api.result_hook = hold
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("prompt\n" + "".join(f"compose ahead {i}\n" for i in range(N)))
    out = tmp_path / "out"
    backend = make_backend("openai", api_key="k", base_url=fake_api.openai_base)
    got: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: got.update(
            run_batch(pairs, None, out, backend=backend, concurrency=C, compare=False)
        )
    )
    runner.start()
    try:
        for _ in range(C):
            assert seen.acquire(timeout=60)  # C requests are out and held
        # Composed ahead: C senders waiting for a slot and C more in the queue.
        _until(lambda: _journal_rows(out / "journal.sqlite") >= 3 * C)
        held = len(fake_api.submissions)
        rows = _journal_rows(out / "journal.sqlite")
        # Bounded: in flight, senders waiting, the queue, one blocked job per composer.
        assert held == C
        assert 3 * C <= rows <= 3 * C + 2 < N
    finally:
        gate.set()
        runner.join(120)
    assert got["done"] == N and fake_api.billable == N
