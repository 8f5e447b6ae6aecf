"""Timing shared by the benchmark scripts (imported as a sibling: ``python3 bench/x.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) over ``runs`` calls,
    after one warm-up call (imports, cascades, the allocator).

    With one OpenCV thread the CPU time is the one-core cost even when other processes
    share the machine; on an idle machine the two agree.
    """
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)
