"""Progress of one batch run: what it has seen (the ledger) and how it is shown (the bar)."""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol

from ..journal import JobState, Journal

__all__ = ["Ledger", "ProgressReporter", "ProgressSnapshot", "StderrProgress"]


@dataclass(frozen=True)
class ProgressSnapshot:
    """The batch at one moment. Money in USD, times in seconds."""

    jobs: int
    done: int
    failed: int
    in_flight: int  # on the network now
    spent_usd: float
    elapsed_s: float
    finished_this_run: int
    eta_s: float | None


class ProgressReporter(Protocol):
    def update(self, snap: ProgressSnapshot) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, snap: ProgressSnapshot) -> None: ...


def _fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class StderrProgress:
    """A one-line bar redrawn in place on a terminal; plain periodic lines otherwise.

    Plain lines come every ``interval`` seconds or every 5 % of the jobs, whichever
    is first, so a log file stays short.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        tty: bool | None = None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.clock = clock
        self._last = -float("inf")
        self._last_step = -1
        self._line_len = 0
        self._lock = threading.Lock()
        self._last_snap: ProgressSnapshot | None = None

    @staticmethod
    def line(snap: ProgressSnapshot, *, bar_width: int = 0) -> str:
        finished = snap.done + snap.failed
        pct = 100.0 * finished / snap.jobs if snap.jobs else 100.0
        bar = ""
        if bar_width:
            filled = int(bar_width * finished / snap.jobs) if snap.jobs else bar_width
            bar = "[" + "#" * filled + "." * (bar_width - filled) + "] "
        return (
            f"{bar}{finished}/{snap.jobs} ({pct:.0f}%) done {snap.done}, failed {snap.failed},"
            f" in flight {snap.in_flight}, spent ${snap.spent_usd:.3f},"
            f" elapsed {_fmt_time(snap.elapsed_s)}, ETA {_fmt_time(snap.eta_s)}"
        )

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()

    def update(self, snap: ProgressSnapshot) -> None:
        with self._lock:
            self._last_snap = snap
            now = self.clock()
            if self.tty:
                if now - self._last < 0.1:
                    return
                self._last = now
                self._redraw(snap)
                return
            step = int(20 * (snap.done + snap.failed) / snap.jobs) if snap.jobs else 20
            if now - self._last >= self.interval or step > self._last_step:
                self._last, self._last_step = now, step
                self._write("fluxcompose: " + self.line(snap) + "\n")

    def _redraw(self, snap: ProgressSnapshot) -> None:
        # A line wider than the terminal wraps, and "\r" would then redraw only its tail.
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = self.line(snap, bar_width=20)[: max(20, width)]
        self._line_len = len(text)
        self._write("\r" + text + "\x1b[K")

    def message(self, text: str) -> None:
        with self._lock:
            if self.tty and self._line_len:
                self._write("\r\x1b[K" + text + "\n")
                if self._last_snap is not None:
                    self._redraw(self._last_snap)
            else:
                self._write(text + "\n")

    def close(self, snap: ProgressSnapshot) -> None:
        with self._lock:
            if self.tty:
                self._write("\r" + self.line(snap, bar_width=20) + "\x1b[K\n")
            else:
                self._write("fluxcompose: " + self.line(snap) + "\n")
            self._line_len = 0


class Ledger:
    """This run's jobs: their ids in PAIRS order, their states and the run's counters.

    Written by the worker threads and read by the progress bar and the report, always
    under its one lock. ``unclaimed`` counts planned rows whose job id is not known yet
    (an id comes from composing), so ``jobs`` is right before every row is composed.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._lock = threading.Lock()
        self._state: dict[str, JobState] = {}
        self._lines: dict[str, int] = {}  # job id -> the first PAIRS line that has it
        self.unclaimed = 0
        self.in_flight = 0  # jobs on the network now
        self.submitted = 0  # jobs this run started on the network (resumed polls excluded)
        self.skipped = 0  # done before this run began
        self.finished_this_run = 0

    def claim(self, job_id: str, line: int, *, planned: bool = False) -> int | None:
        """Register ``job_id`` for this run; returns the first line if another row has it.

        ``planned``: the row was counted in ``unclaimed`` (it went through the pipeline).
        """
        with self._lock:
            if planned:
                self.unclaimed -= 1
            if job_id in self._lines:
                return self._lines[job_id]
            self._lines[job_id] = line
            self._state[job_id] = JobState.PENDING
            return None

    def set_state(
        self, job_id: str, state: JobState, *, finished: bool = False, skipped: bool = False
    ) -> None:
        with self._lock:
            self._state[job_id] = state
            self.finished_this_run += finished
            self.skipped += skipped

    def network(self, delta: int, *, submitted: bool = False) -> None:
        """A job enters (+1) or leaves (-1) the network; ``submitted``: a new paid call."""
        with self._lock:
            self.in_flight += delta
            self.submitted += submitted

    def ordered_ids(self) -> list[str]:
        """This run's job ids in PAIRS line order."""
        with self._lock:
            return sorted(self._lines, key=self._lines.__getitem__)

    def jobs(self) -> int:
        with self._lock:
            return len(self._lines) + self.unclaimed

    def snapshot(self, t0: float) -> ProgressSnapshot:
        with self._lock:
            states = list(self._state.values())
            in_flight = self.in_flight
            finished = self.finished_this_run
            jobs = len(states) + self.unclaimed
        done = states.count(JobState.DONE)
        failed = states.count(JobState.FAILED)
        elapsed = time.monotonic() - t0
        remaining = jobs - done - failed
        eta = None
        if finished and elapsed > 0:
            eta = remaining / (finished / elapsed)
        elif remaining == 0:
            eta = 0.0
        return ProgressSnapshot(
            jobs=jobs,
            done=done,
            failed=failed,
            in_flight=in_flight,
            spent_usd=self.journal.spent_usd(),
            elapsed_s=elapsed,
            finished_this_run=finished,
            eta_s=eta,
        )
