"""The review page in a real browser: Playwright for Python drives Debian's chromium.

Each test serves a fresh copy of the sample batch (tests/review_data.py) with a real
uvicorn server on port 0 in a thread, and waits for conditions (Playwright's expect),
never for time. Skips when playwright or chromium is missing (.ci/run installs both).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluxcompose.journal import Journal
from fluxcompose.review import ReviewStore
from fluxcompose.review.server import RunningServer, start_server
from tests.review_data import ORDER, copy_batch, run_rows

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()),
    None,
)
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed (it is in the [test] extra)",
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium (.ci/run installs Debian's)"),
]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Session:
    """A served copy of the batch and a page on it."""

    def __init__(self, browser: Any, out: Path) -> None:
        self.out = out
        self.browser = browser
        self.store: ReviewStore | None = None
        self.server: RunningServer | None = None
        self.page: Any = None
        self.errors: list[str] = []

    def open(self) -> Any:
        from playwright.sync_api import expect

        self.close_server()
        self.store = ReviewStore(self.out, reviewer="pat")
        self.server = start_server(self.store)
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 860})
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.server.url)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
        return self.page

    def close_server(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.store is not None:
            self.store.close()
            self.store = None


@pytest.fixture
def session(browser: Any, tmp_path: Path) -> Iterator[Session]:
    s = Session(browser, copy_batch(tmp_path / "out"))
    yield s
    s.close_server()
    assert s.errors == []


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_opens_on_the_first_unreviewed_job(session: Session) -> None:
    with Journal(session.out / "journal.sqlite") as j:
        j.add_review(ORDER[0], "approve")
    page = session.open()
    expect = _expect()
    expect(page.locator("#job-view")).to_be_visible()
    expect(page.locator("#job-id")).to_have_text(ORDER[1])
    expect(page.locator("#review-status")).to_have_text("unreviewed")
    # Its output, the sources and what was sent are on the page.
    img = page.locator("#main-img")
    page.wait_for_function("document.querySelector('#main-img').naturalWidth > 0", timeout=WAIT_MS)
    assert f"/files/{ORDER[1]}.png" in img.get_attribute("src")
    expect(page.locator("#sources figure")).to_have_count(2)
    expect(page.locator("#sent figure")).to_have_count(1)
    expect(page.locator("#checks-table tr")).to_have_count(6)
    # Before/after, overlays and zoom.
    page.keyboard.press("t")
    expect(img).to_have_attribute("src", re.compile(r"^/api/target\?key=" + ORDER[1]))
    page.wait_for_function("document.querySelector('#main-img').naturalWidth > 0", timeout=WAIT_MS)
    page.keyboard.press("t")
    expect(img).to_have_attribute("src", re.compile(f"^/files/{ORDER[1]}\\.png"))
    page.keyboard.press("o")
    expect(page.locator("#overlay")).to_be_visible()
    # tee-nobody: the print was found, no subject (so no chest box is drawn).
    expect(page.locator("#overlay polygon.print")).to_have_count(1)
    expect(page.locator("#overlay rect.chest")).to_have_count(0)
    width = page.locator("#frame").bounding_box()["width"]
    page.keyboard.press("+")
    expect(page.locator("#zoom-level")).to_have_text("1.5×")
    assert page.locator("#frame").bounding_box()["width"] == pytest.approx(1.5 * width, abs=2)


def test_keys_record_verdicts_that_survive_a_restart(session: Session) -> None:
    page = session.open()
    expect = _expect()
    expect(page.locator("#job-id")).to_have_text(ORDER[0])
    page.keyboard.press("a")
    expect(page.locator("#job-id")).to_have_text(ORDER[1])
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("2")  # untick again
    page.keyboard.press("7")
    expect(page.locator("#reason-size")).to_be_checked()
    expect(page.locator("#reason-placement")).not_to_be_checked()
    page.keyboard.press("r")
    expect(page.locator("#job-id")).to_have_text(ORDER[2])
    expect(page.locator("#toast")).to_contain_text("saved")
    # Buttons do the same as keys.
    page.click("#btn-reject")
    expect(page.locator("#job-id")).to_have_text(ORDER[3])
    session.close_server()
    with Journal(session.out / "journal.sqlite") as j:
        current = j.current_reviews()
    assert current[ORDER[0]].verdict == "approve" and current[ORDER[0]].reviewer == "pat"
    assert current[ORDER[1]].verdict == "reject"
    assert current[ORDER[1]].reasons == ("size", "background")
    assert current[ORDER[2]].verdict == "reject" and current[ORDER[2]].reasons == ()
    # After a restart the page opens on the one job left, and the grid shows what was saved.
    page = session.open()
    expect(page.locator("#job-id")).to_have_text(ORDER[3])
    page.keyboard.press("g")
    expect(page.locator("#filter-review-approved")).to_have_attribute("data-count", "1")
    expect(page.locator("#filter-review-rejected")).to_have_attribute("data-count", "2")
    expect(page.locator(f'.card[data-key="{ORDER[1]}"]')).to_have_attribute(
        "data-review", "rejected"
    )
    # Approving the last one leaves nothing unreviewed: the page goes to the grid.
    page.locator(f'.card[data-key="{ORDER[3]}"]').click()
    expect(page.locator("#job-id")).to_have_text(ORDER[3])
    page.keyboard.press("a")
    expect(page.locator("#grid-view")).to_be_visible()


def test_filters_and_counts(session: Session) -> None:
    with Journal(session.out / "journal.sqlite") as j:
        j.add_review("tee-middle", "approve")
        j.add_review("tee-badbox", "reject", reasons=("size",))
    page = session.open()
    expect = _expect()
    page.keyboard.press("g")
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(4)

    def keys() -> list[str]:
        return [c.get_attribute("data-key") for c in cards.all()]

    page.click("#filter-checks-passed")
    expect(cards).to_have_count(2)
    assert sorted(keys()) == ["tee-left-chest", "tee-middle"]
    page.click("#filter-checks-failed")
    expect(cards).to_have_count(1)
    assert keys() == ["tee-badbox"]
    page.click("#filter-checks-not_measured")
    expect(cards).to_have_count(1)
    assert keys() == ["tee-nobody"]
    page.click("#filter-checks-all")
    page.click("#filter-review-unreviewed")
    expect(cards).to_have_count(2)
    assert sorted(keys()) == ["tee-left-chest", "tee-nobody"]
    page.click("#filter-review-rejected")
    expect(cards).to_have_count(1)
    page.click("#filter-review-all")
    page.click("#filter-flagged")
    expect(cards).to_have_count(1)
    assert keys() == ["tee-nobody"]
    page.click("#filter-flagged")
    expect(cards).to_have_count(4)
    for fid, n in {
        "checks-passed": 2, "checks-failed": 1, "checks-not_measured": 1,
        "review-unreviewed": 2, "review-approved": 1, "review-rejected": 1,
    }.items():  # fmt: skip
        expect(page.locator(f"#filter-{fid}")).to_have_attribute("data-count", str(n))
    page.select_option("#sort", "checks")
    expect(cards.first).to_have_attribute("data-key", "tee-badbox")


def test_choosing_a_candidate_makes_it_the_output(session: Session) -> None:
    out = session.out
    c2 = (out / "candidates" / "tee-nobody" / "tee-nobody.c2.png").read_bytes()
    assert (out / "tee-nobody.png").read_bytes() != c2
    page = session.open()
    expect = _expect()
    page.locator("#btn-grid").click()
    page.locator('.card[data-key="tee-nobody"]').click()
    expect(page.locator("#job-id")).to_have_text("tee-nobody")
    expect(page.locator(".cand.chosen")).to_have_attribute("data-index", "1")
    page.keyboard.press("c")
    expect(page.locator(".cand.chosen")).to_have_attribute("data-index", "2")
    assert (
        hashlib.sha256((out / "tee-nobody.png").read_bytes()).digest()
        == hashlib.sha256(c2).digest()
    )
    side = json.loads((out / "tee-nobody.json").read_text())
    assert side["chosen"] == 2 and side["chosen_by"] == "person"
    assert [c["chosen"] for c in side["candidates"]] == [False, True]
    with Journal(out / "journal.sqlite") as j:
        hist = j.review_history("tee-nobody")
    assert [(h.verdict, h.candidate) for h in hist] == [("choose", 2)]
    # The verdict that follows is on candidate 2.
    page.keyboard.press("a")
    expect(page.locator("#job-id")).not_to_have_text("tee-nobody")
    with Journal(out / "journal.sqlite") as j:
        assert j.current_reviews()["tee-nobody"].candidate == 2


def test_a_job_that_finishes_while_the_page_is_open_appears(session: Session) -> None:
    page = session.open()
    expect = _expect()
    page.keyboard.press("g")
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(4)
    run_rows(session.out, ("tee-live",))
    expect(page.locator('.card[data-key="tee-live"]')).to_be_visible(timeout=WAIT_MS)
    expect(cards).to_have_count(5)
    expect(page.locator("#filter-review-unreviewed")).to_have_attribute("data-count", "5")
