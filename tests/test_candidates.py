"""Best-of-N (``--candidates``, ``--stop-on-pass``) against the fake API, whose output is a
grey square whose width depends on the seed: the checks' verdicts are known in advance."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluxcompose.cli import cli
from tests.candidates_fake import BETTER_W, FAIL_W, PASS_W, width_hook, write_recipe, write_target
from tests.fakeapi import FakeAPI
from tests.hermetic import hermetic_env

KEY = "sk-candidates-secret-11"
PRICE = 0.035  # openai backend, flux-kontext-pro


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_env(monkeypatch, KEY)


# Candidate k of a job with seed 100 has seed 100 + k: fail, pass, pass by most, fail.
WIDTHS = {100: FAIL_W, 101: PASS_W, 102: BETTER_W, 103: 0.5}


def cli_run(args: list[str]) -> Any:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result


def test_best_of_n_picks_what_the_checks_prefer(tmp_path: Path, fake_api: FakeAPI) -> None:
    fake_api.result_hook = width_hook(lambda model, seed: WIDTHS[seed])
    recipe = write_recipe(tmp_path)
    target = write_target(tmp_path / "t.png", 1)
    out = tmp_path / "out"
    res = cli_run(
        ["run", str(target), "-r", str(recipe), "--backend", "openai", "--base-url",
         fake_api.openai_base, "--seed", "100", "--candidates", "4", "-o", str(out), "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads(res.stdout)
    assert len(fake_api.submissions) == 4
    assert [c["seed"] for c in side["candidates"]] == [100, 101, 102, 103]
    assert [c["passed"] for c in side["candidates"]] == [False, True, True, False]
    assert side["chosen"] == 3  # seed 102: the smallest square, the largest SSIM margin
    assert side["seed"] == 102 and side["passed"] is True
    assert side["cost_usd"] == pytest.approx(4 * PRICE)
    scores = [c["score"] for c in side["candidates"]]
    assert scores[2]["margin"] > scores[1]["margin"] > 0 > scores[3]["margin"]
    # The job's output is the chosen candidate's, byte for byte; all four are kept.
    job = side["job_id"]
    cdir = out / "candidates" / job
    assert (out / f"{job}.png").read_bytes() == (cdir / f"{job}.c3.png").read_bytes()
    for k in range(1, 5):
        assert (cdir / f"{job}.c{k}.json").is_file() and (cdir / f"{job}.c{k}.sheet.png").is_file()
    assert json.loads((out / f"{job}.json").read_text())["chosen"] == 3


def test_stop_on_pass_stops_at_the_first_pass(tmp_path: Path, fake_api: FakeAPI) -> None:
    fake_api.result_hook = width_hook(lambda model, seed: WIDTHS[seed])
    recipe = write_recipe(tmp_path)
    target = write_target(tmp_path / "t.png", 1)
    res = cli_run(
        ["run", str(target), "-r", str(recipe), "--backend", "openai", "--base-url",
         fake_api.openai_base, "--seed", "100", "--candidates", "4", "--stop-on-pass",
         "-o", str(tmp_path / "out"), "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads(res.stdout)
    assert len(fake_api.submissions) == 2 and fake_api.billable == 2  # seeds 100 and 101 only
    assert side["chosen"] == 2 and side["seed"] == 101
    assert [c["state"] for c in side["candidates"]] == ["done", "done", "pending", "pending"]
    assert side["cost_usd"] == pytest.approx(2 * PRICE)
    assert side["stop_on_pass_saved"] == 2


def batch_args(pairs: Path, recipe: Path, out: Path, api: FakeAPI, *extra: str) -> list[str]:
    return ["batch", str(pairs), "-r", str(recipe), "-o", str(out), "--backend", "openai",
            "--base-url", api.openai_base, "--json", *extra]  # fmt: skip


def test_batch_candidates_journal_budget_and_resume(tmp_path: Path, fake_api: FakeAPI) -> None:
    fake_api.result_hook = width_hook(lambda model, seed: WIDTHS[seed % 10 + 100])
    recipe = write_recipe(tmp_path)
    (tmp_path / "a.png").write_bytes(write_target(tmp_path / "a.png", 1).read_bytes())
    write_target(tmp_path / "b.png", 2)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("id,image1,seed\nja,a.png,10\njb,b.png,20\n")
    out = tmp_path / "out"
    # Budget for 5 of the 6 candidates: never over it, the last job stays pending.
    res = cli_run(batch_args(pairs, recipe, out, fake_api, "--candidates", "3", "--budget",
                             str(5 * PRICE), "--concurrency", "1"))  # fmt: skip
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert fake_api.billable == 5
    assert summary["spent_usd"] == pytest.approx(5 * PRICE)
    assert summary["done"] == 1 and summary["pending"] == 1
    db = sqlite3.connect(out / "journal.sqlite")
    rows = db.execute("SELECT job_id, idx, seed, state, cost_usd FROM candidates ORDER BY 1, 2")
    got = [tuple(r) for r in rows]
    db.close()
    # Two workers share the one network slot, so which job got its three is up to the
    # scheduler: five candidates done at one price each, one pending, seeds base + index.
    assert [(j, i, seed) for j, i, seed, _, _ in got] == [
        ("ja", 0, 10), ("ja", 1, 11), ("ja", 2, 12), ("jb", 0, 20), ("jb", 1, 21), ("jb", 2, 22),
    ]  # fmt: skip
    assert sorted((state, cost) for _, _, _, state, cost in got) == [("done", PRICE)] * 5 + [
        ("pending", 0.0)
    ]
    unfinished = next(j for j, _, _, state, _ in got if state == "pending")
    assert not (out / f"{unfinished}.json").exists()
    # Resume with more budget: only the one missing candidate is paid for.
    res = cli_run(batch_args(pairs, recipe, out, fake_api, "--candidates", "3"))
    assert res.exit_code == 0, res.output
    assert fake_api.billable == 6
    summary = json.loads(res.stdout)
    assert summary["done"] == 2 and summary["spent_usd"] == pytest.approx(6 * PRICE)
    for job, base in (("ja", 10), ("jb", 20)):
        side = json.loads((out / f"{job}.json").read_text())
        assert side["chosen"] == 3 and side["seed"] == base + 2  # width BETTER_W
    # Run again: everything is done, nothing is paid.
    res = cli_run(batch_args(pairs, recipe, out, fake_api, "--candidates", "3"))
    assert res.exit_code == 0 and fake_api.billable == 6
    page = (out / "report.html").read_text()
    assert page.count('class="cand chosen"') == 2 and page.count('class="cand"') == 4
