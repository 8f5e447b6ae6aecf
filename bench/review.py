"""The review page's first screen for a big batch (DESIGN.md section 13: 2,000 jobs < 1 s).

Jobs are made with the journal API, not by generating: each is a done job with a small
output image and thumbnail on disk, compare metrics with six checks (a mix of passed,
failed and not measured) and a sidecar, and every fifth job reviewed. A real uvicorn server
on port 0 serves the folder, and the script measures, medians of ``--repeat`` runs:

- ``cold``: ``GET /api/jobs`` as the first request of a newly started server;
- ``html``: ``GET /`` (the page);
- ``jobs``: ``GET /api/jobs``, the grid's data for every job (what the first screen waits on);
- ``first screen``: ``page + app.js + app.css + /api/jobs`` over HTTP, one after the other;
- ``browser`` (when playwright and chromium are there): headless chromium from ``goto``
  to the grid's first card drawn, the page loaded on ``#grid``.

Each is printed for 200 and for N jobs side by side, with the ratio N/200.

    python3 bench/review.py                 # 2,000 jobs, 5 repeats
    python3 bench/review.py --jobs 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _timing import median_time  # a sibling: bench/ is on sys.path
from PIL import Image

from fluxcompose.journal import Journal
from fluxcompose.review import ReviewStore
from fluxcompose.review.server import RunningServer, start_server

CHECK_NAMES = (
    "pattern_found",
    "pattern_width_fraction",
    "pattern_placement",
    "pattern_on_garment",
    "target_ssim_outside_edit",
    "target_ssim_outside_garment",
)
CHROMIUM = "/usr/bin/chromium"


def make_outdir(root: Path, n: int) -> Path:
    """An OUTDIR with ``n`` done jobs made through the journal API."""
    out = root / f"jobs-{n}"
    (out / "thumbs").mkdir(parents=True)
    out_img = Image.new("RGB", (96, 128), (200, 200, 200))
    thumb = Image.new("RGB", (48, 64), (180, 180, 180))
    with Journal(out / "journal.sqlite", durable=False) as j:
        for i in range(n):
            job = f"job-{i:05d}"
            out_img.save(out / f"{job}.png")
            thumb.save(out / "thumbs" / f"{job}.out.jpg", quality=80)
            kind = i % 3  # 0 passed, 1 failed, 2 not measured
            checks = {
                name: {
                    "pass": True if kind == 0 or k > 0 else (False if kind == 1 else None),
                    "value": 0.5,
                    "expected": 0.4,
                }
                for k, name in enumerate(CHECK_NAMES)
            }
            metrics = {"ssim": 0.9, "checks": checks, "passed": kind == 0}
            sidecar = {"job_id": job, "output": {"path": f"{job}.png"}, "compare": metrics}
            (out / f"{job}.json").write_text(json.dumps(sidecar))
            j.ensure(job, line=i + 2, backend="local", model="flux-kontext-pro")
            j.mark_done(
                job,
                output_path=out / f"{job}.png",
                cost_usd=0.0,
                sidecar_path=out / f"{job}.json",
                metrics=metrics,
                checks_passed=kind == 0,
                thumbs={"output": f"thumbs/{job}.out.jpg", "sources": []},
            )
            if i % 5 == 0:
                j.add_review(job, "approve" if i % 10 else "reject", reasons=())
    return out


def get(server: RunningServer, path: str) -> bytes:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("GET", path, headers={"X-Review-Token": server.token})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, (path, resp.status)
    return body


def browser_first_screen(server: RunningServer, repeat: int) -> float | None:
    if importlib.util.find_spec("playwright") is None or not Path(CHROMIUM).is_file():
        return None
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        times = []
        for i in range(repeat + 1):
            page = b.new_page(viewport={"width": 1280, "height": 900})
            t0 = time.perf_counter()
            page.goto(server.url + "#grid", wait_until="commit")
            page.wait_for_selector("#grid .card img", timeout=60_000)
            dt = time.perf_counter() - t0
            if i:
                times.append(dt)
            page.close()
        b.close()
    return statistics.median(times)


def cold_jobs(out: Path, repeat: int) -> float:
    """``GET /api/jobs`` as the first request of a freshly started server (nothing cached)."""
    times = []
    for _ in range(repeat):
        store = ReviewStore(out)
        server = start_server(store)
        try:
            t0 = time.perf_counter()
            get(server, "/api/jobs")
            times.append(time.perf_counter() - t0)
        finally:
            server.stop()
            store.close()
    return statistics.median(times)


def measure(out: Path, repeat: int) -> dict[str, float | None]:
    cold = cold_jobs(out, repeat)
    store = ReviewStore(out)
    server = start_server(store)
    try:
        n_jobs = len(json.loads(get(server, "/api/jobs"))["jobs"])
        html = median_time(lambda: get(server, "/"), repeat)[0]
        jobs = median_time(lambda: get(server, "/api/jobs"), repeat)[0]

        def first() -> None:
            for path in ("/", "/static/app.js", "/static/app.css", "/api/jobs"):
                get(server, path)

        return {
            "n": n_jobs,
            "cold": cold,
            "html": html,
            "jobs": jobs,
            "first": median_time(first, repeat)[0],
            "browser": browser_first_screen(server, repeat),
        }
    finally:
        server.stop()
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fluxcompose-bench-review-"))
    try:
        t0 = time.perf_counter()
        small = make_outdir(root, 200)
        big = make_outdir(root, args.jobs)
        print(f"made {200 + args.jobs} journalled jobs in {time.perf_counter() - t0:.1f} s")
        a, b = measure(small, args.repeat), measure(big, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'median seconds':<34}{a['n']:>10}{b['n']:>10}{'ratio':>8}")
    for key, label in (
        ("cold", "GET /api/jobs, new server (cold)"),
        ("html", "GET / (the page)"),
        ("jobs", "GET /api/jobs (the grid's data)"),
        ("first", "first screen over HTTP"),
        ("browser", "browser: goto -> first card"),
    ):
        x, y = a[key], b[key]
        if x is None or y is None:
            print(f"{label:<34}{'skipped (no playwright/chromium)':>28}")
            continue
        print(f"{label:<34}{x:>10.3f}{y:>10.3f}{y / x:>8.2f}")
    target = b["browser"] if b["browser"] is not None else b["first"]
    assert target is not None
    print(
        f"target: first screen for {b['n']} jobs under 1 s: {target:.3f} s ({target:.2f}x of 1 s)"
    )


if __name__ == "__main__":
    main()
