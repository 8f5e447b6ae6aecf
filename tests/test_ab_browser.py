"""``OUTDIR/ab.html`` in headless Chromium: every image loads and there is one row per pair.

An A/B of two arms over three pairs runs against the fake API (outputs depend on the
model, see tests/candidates_fake.py); Chromium opens a probed copy of the page from disk
and reports what it saw. Skips when no Chromium/Chrome is installed, like
tests/test_report_browser.py, whose browser helper it reuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fluxcompose.cli import cli
from tests.candidates_fake import BETTER_W, FAIL_W, width_hook, write_recipe, write_target
from tests.fakeapi import FakeAPI
from tests.hermetic import hermetic_env
from tests.test_report_browser import BROWSER, WINDOW, body_attrs, chromium

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium or chrome on PATH")

PROBE = """<script>
window.addEventListener("load", function () {
  var b = document.body, imgs = Array.prototype.slice.call(document.images);
  b.setAttribute("data-img-total", imgs.length);
  b.setAttribute("data-img-loaded",
    imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length);
  var rows = Array.prototype.slice.call(document.querySelectorAll("#pairs tbody tr"));
  b.setAttribute("data-pair-rows", rows.length);
  b.setAttribute("data-pair-outputs", JSON.stringify(rows.map(function (tr) {
    return tr.querySelectorAll("img.output").length; })));
  b.setAttribute("data-arm-rows", document.querySelectorAll("#arms tbody tr").length);
  b.setAttribute("data-cmp", document.querySelector("#comparisons tbody").innerText);
  b.setAttribute("data-overflow", document.documentElement.scrollWidth - window.innerWidth);
});
</script>
"""


def test_ab_html_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_env(monkeypatch, "sk-ab-browser", fast_retries=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    lines = ["id,image1,seed"] + [f"p{i},t{i}.png,{10 * i}" for i in range(3)]
    for i in range(3):
        write_target(tmp_path / f"t{i}.png", i)
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "ab"
    with FakeAPI() as api:
        api.result_hook = width_hook(
            lambda m, s: BETTER_W if m == "flux-kontext-max" or s == 0 else FAIL_W
        )
        res = CliRunner().invoke(
            cli,
            ["ab", str(tmp_path / "pairs.csv"), "-r", str(write_recipe(tmp_path)),
             "--arm", "pro=flux-kontext-pro", "--arm", "max=flux-kontext-max", "-o", str(out),
             "--backend", "openai", "--base-url", api.openai_base],
            catch_exceptions=False,
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    page = (out / "ab.html").read_text(encoding="utf-8")
    for needle in ("<link", "<script", "http://", "https://"):
        assert needle not in page.lower(), needle
    probe = out / "ab.probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(
        ["--dump-dom", "--virtual-time-budget=5000", probe.as_uri()], tmp_path, "ab-dom"
    ).stdout
    attrs = body_attrs(dom)
    assert "data-img-total" in attrs, f"the probe did not run: {dom[:500]}"
    # Per pair: one source and two outputs.
    assert int(attrs["data-img-total"]) == 3 * 3
    assert int(attrs["data-img-loaded"]) == 9
    assert int(attrs["data-pair-rows"]) == 3
    assert json.loads(attrs["data-pair-outputs"]) == [2, 2, 2]
    assert int(attrs["data-arm-rows"]) == 2
    # pro wins nothing, ties pair 0 (both squares small), loses pairs 1 and 2.
    assert attrs["data-cmp"].split() == ["pro", "vs", "max", "3", "0", "2", "1", "0.5000"]
    assert int(attrs["data-overflow"]) <= 0
    shot = tmp_path / "ab.png"
    chromium([f"--screenshot={shot}", (out / "ab.html").as_uri()], tmp_path, "ab-shot")
    with Image.open(shot) as im:
        assert im.size == WINDOW
        assert float(np.asarray(im.convert("L")).std()) > 20.0
