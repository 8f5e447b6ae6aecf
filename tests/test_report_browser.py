"""``OUTDIR/report.html`` in a real headless browser: it renders, from disk, offline.

A small pattern-transfer batch runs on the local backend (one row has a missing image,
so one job fails). Chromium then opens the report through a ``file://`` URL twice:

- a screenshot, in which every thumbnail written to ``OUTDIR/thumbs/`` must be found
  pixel for pixel (template matching), so the images were really drawn;
- ``--dump-dom`` on a copy of the report in the same folder with a probe script that,
  after load, writes what the browser saw (images loaded, rows, cell texts, totals,
  horizontal overflow, image URLs) into ``<body data-*>`` attributes.

The module skips when no Chromium/Chrome binary is installed (.ci/run installs one).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fluxcompose.backends import LocalBackend
from fluxcompose.batch import BatchSummary, run_batch
from fluxcompose.report import REPORT_NAME

BROWSER = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if (found := shutil.which(name))
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no chromium, chromium-browser or google-chrome on PATH (.ci/run installs chromium)",
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
WINDOW = (1280, 2000)  # CSS pixels; device scale factor 1, so also screenshot pixels
TIMEOUT_S = 60.0
# Headless and offline: the background-networking flags stop Chromium from calling home
# (the network is closed in CI); --disable-dev-shm-usage because containers often have a
# 64 MB /dev/shm, which crashes renderers.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)

# Injected before </body> of a copy of the report. It reports, on load and again each
# time an image settles, what the page looks like to the browser.
PROBE = """<script>
(function () {
  function update() {
    var b = document.body, imgs = Array.prototype.slice.call(document.images);
    var rows = Array.prototype.slice.call(document.querySelectorAll("table tbody tr"));
    var totals = document.querySelector(".totals");
    b.setAttribute("data-img-total", imgs.length);
    b.setAttribute("data-img-loaded",
      imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
    b.setAttribute("data-img-shown",
      imgs.filter(function (i) { return i.getBoundingClientRect().width > 0; }).length);
    b.setAttribute("data-rows", rows.length);
    b.setAttribute("data-cells", JSON.stringify(rows.map(function (tr) {
      return Array.prototype.map.call(tr.cells, function (td) { return td.innerText.trim(); });
    })));
    b.setAttribute("data-totals", totals ? totals.innerText : "");
    b.setAttribute("data-overflow", document.documentElement.scrollWidth - window.innerWidth);
    var table = document.querySelector("table");
    b.setAttribute("data-overhang", table && totals ? Math.round(
      table.getBoundingClientRect().right - totals.getBoundingClientRect().right) : "");
    // Resource Timing skips file:// loads; the images' resolved URLs are what was fetched.
    b.setAttribute("data-img-urls",
      JSON.stringify(imgs.map(function (i) { return i.currentSrc; })));
  }
  window.addEventListener("load", function () {
    update();
    Array.prototype.forEach.call(document.images, function (i) {
      i.addEventListener("load", update);
      i.addEventListener("error", update);
    });
  });
})();
</script>
"""


def chromium(args: Sequence[str], tmp: Path, name: str) -> subprocess.CompletedProcess[str]:
    """Run the browser with a fresh profile and HOME; kill its whole process group on timeout."""
    profile = tmp / f"profile-{name}"
    profile.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["HOME"] = str(profile)  # nothing lands in the real home folder
    cmd = [str(BROWSER), *FLAGS, f"--user-data-dir={profile}", *args]
    # A new session: the browser, its zygote and renderers share one group to kill.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium {name} did not finish in {TIMEOUT_S:.0f} s")
    finally:
        # Helpers left behind by a crash (crashpad) belong to our group too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"chromium {name} exit {proc.returncode}: {err[-2000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class _BodyAttrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.attrs = {k: v or "" for k, v in attrs}


def body_attrs(dom: str) -> dict[str, str]:
    parser = _BodyAttrs()
    parser.feed(dom)
    return parser.attrs


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BatchSummary]:
    """Two pattern-transfer jobs on the local backend with compare on, plus a failing row."""
    tmp = tmp_path_factory.mktemp("report-browser")
    shutil.copy(SAMPLES / "pattern.png", tmp / "pattern.png")
    shutil.copy(SAMPLES / "model.jpg", tmp / "model.jpg")
    pairs = tmp / "pairs.csv"
    pairs.write_text(
        "id,left,right,seed,var.placement\n"
        "tee-middle,pattern.png,model.jpg,42,middle\n"
        "tee-chest,pattern.png,model.jpg,7,upper left of the chest\n"
        "no-image,missing.png,model.jpg,,\n",
        encoding="utf-8",
    )
    out = tmp / "out"
    summary = run_batch(
        pairs, "pattern-transfer", out, backend=LocalBackend(), concurrency=2, compare=True
    )
    assert (summary["jobs"], summary["done"], summary["failed"]) == (3, 2, 1)
    return out, summary


def test_report_is_offline_and_has_totals(batch: tuple[Path, BatchSummary]) -> None:
    out, _ = batch
    page = (out / REPORT_NAME).read_text(encoding="utf-8")
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, re.IGNORECASE)
    assert refs, "the report links nothing"
    external = [r for r in refs if re.match(r"(?i)(?:https?:)?//", r.strip())]
    assert not external, f"external references: {external}"
    for needle in ("<link", "<script", "@import", "url(", "http://", "https://"):
        assert needle not in page.lower(), needle
    # Every local reference resolves from OUTDIR, except the deliberately missing source.
    missing = [r for r in refs if not (out / html.unescape(r)).exists()]
    assert missing == ["../missing.png"]
    assert re.search(r'class="totals".*<b>3</b>jobs.*<b>2</b>done.*<b>1</b>failed', page)


def test_report_renders_in_chromium(batch: tuple[Path, BatchSummary], tmp_path: Path) -> None:
    out, summary = batch
    report = out / REPORT_NAME
    page = report.read_text(encoding="utf-8")
    thumbs = sorted(set(re.findall(r'<img src="([^"]+)"', page)))
    # 2 done jobs x (2 sources + 1 output), one file each.
    assert len(thumbs) == 6 and all(t.startswith("thumbs/") for t in thumbs)

    # (1) The screenshot: right size, not blank, and every thumbnail drawn on it.
    shot = tmp_path / "report.png"
    chromium([f"--screenshot={shot}", report.as_uri()], tmp_path, "screenshot")
    assert shot.is_file()
    with Image.open(shot) as im:
        assert im.size == WINDOW
        pixels = np.asarray(im.convert("RGB"))
    assert float(pixels.std()) > 20.0, "the screenshot is (nearly) one colour"
    for rel in thumbs:
        with Image.open(out / rel) as th:
            template = np.asarray(th.convert("RGB"))
        score = cv2.matchTemplate(pixels, template, cv2.TM_CCOEFF_NORMED)
        # JPEG decoders may differ by a level or two; a missing image scores far lower.
        assert float(score.max()) > 0.97, f"{rel} is not visible in {shot}"

    # (2) The live DOM after load, from a probed copy beside the report (same relative links).
    assert page.count("</body>") == 1
    probe = out / "report.probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(
        ["--dump-dom", "--virtual-time-budget=5000", probe.as_uri()], tmp_path, "dom"
    ).stdout
    attrs = body_attrs(dom)
    assert "data-img-total" in attrs, f"the probe did not run: {dom[:500]}"
    total = int(attrs["data-img-total"])
    assert total == len(thumbs) == 6
    assert int(attrs["data-img-loaded"]) == total
    assert int(attrs["data-img-shown"]) == total
    assert int(attrs["data-rows"]) == summary["jobs"] == 3
    assert int(attrs["data-overflow"]) <= 0, "the page scrolls sideways at 1280 px"
    # The table stays inside the page margins, flush with the totals box above it.
    assert int(attrs["data-overhang"]) <= 0, "the table is wider than the page at 1280 px"
    urls = json.loads(attrs["data-img-urls"])
    assert sorted(urls) == sorted((out / t).as_uri() for t in thumbs)

    totals = " ".join(attrs["data-totals"].split())
    for text in ("3 jobs", "2 done", "1 failed", "0 not finished", "2/2 checks passed"):
        assert text in totals, (text, totals)

    cells = json.loads(attrs["data-cells"])
    by_id = {row[1]: row for row in cells}
    assert set(by_id) == {"tee-middle", "tee-chest", "no-image"}
    for job_id in ("tee-middle", "tee-chest"):
        line, _, state, _, _, ssim, outside, width, checks, cost, tries, error = by_id[job_id]
        assert state == "done" and checks == "pass" and cost == "$0.000" and tries == "1"
        assert 0.0 < float(ssim) <= 1.0 and 0.0 < float(outside) <= 1.0
        assert 0.0 < float(width) <= 1.0 and error == ""
    failed = by_id["no-image"]
    assert failed[2] == "failed" and failed[0] == "4"
    assert "missing.png" in failed[3] and "missing.png" in failed[11]
