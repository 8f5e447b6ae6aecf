"""The live report's cost as a batch grows: a write of report.html at 500, 2,000 and 8,000
journalled jobs, and the share of the batch's time it takes.

- before: every row rendered on every write, a write every 2 s;
- now: a row rendered again only when its job changed (``ReportWriter`` keeps the rows it
  rendered), and the wait after a write growing with the write
  (``report.LIVE_REPORT_SHARE``). ``first`` is a writer's first write (every row new),
  ``rewrite`` a later one with no job changed (the usual case: a few of thousands).

    python3 bench/live_report.py               # 3 repeats
    python3 bench/live_report.py --jobs 500 2000 --repeat 5

The jobs are made as bench/review.py makes them (done jobs with thumbnails, compare
metrics and sidecars). Medians of the process's CPU time per write are printed, and the
CPU per job this adds to a batch of that size at concurrency 8 against a 1 s API, where
a job takes 1/8 s of the batch's time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from review import make_outdir  # noqa: E402

from fluxcompose.journal import Journal  # noqa: E402
from fluxcompose.report import LIVE_REPORT_SHARE, ReportWriter  # noqa: E402

INTERVAL = 2.0  # seconds: ReportWriter's default
JOB_SHARE_S = 1.0 / 8  # seconds of a batch's time per job, at C=8 against a 1 s API


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[500, 2000, 8000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'jobs':>6} {'first s':>8} {'rewrite':>8} {'before':>9} {'now':>6} {'waits':>9}"
          f" {'ms/job before':>14} {'ms/job now':>11}")  # fmt: skip
    for n in args.jobs:
        with tempfile.TemporaryDirectory() as d:
            out = make_outdir(Path(d), n)
            journal = Journal.for_outdir(out)
            first, again = [], []
            for _ in range(args.repeat):
                writer = ReportWriter(out, lambda j=journal: (j.jobs(), j.spent_usd()))
                for times in (first, again):
                    c0 = time.process_time()
                    writer.write(live=True)
                    times.append(time.process_time() - c0)
            journal.close()
        cold, warm = statistics.median(first), statistics.median(again)
        wait = max(INTERVAL, warm / LIVE_REPORT_SHARE)
        before, now = cold / INTERVAL, warm / wait
        print(
            f"{n:>6} {cold:>8.3f} {warm:>8.3f} {before:>9.1%} {now:>6.1%} {wait:>8.1f}s"
            f" {before * JOB_SHARE_S * 1e3:>14.2f} {now * JOB_SHARE_S * 1e3:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
