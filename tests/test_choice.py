"""Best-of-N never chooses blind (DESIGN.md section 12): ``chosen_by`` is ``checks``,
``margin`` or ``none`` with the reason, in the sidecar, on stderr and in the journal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fluxcompose.candidates import Candidate, choice
from fluxcompose.cli import cli
from fluxcompose.scoring import score_checks
from tests.candidates_fake import FAIL_W, PASS_W, width_hook, write_recipe, write_target
from tests.fakeapi import FakeAPI
from tests.hermetic import hermetic_env
from tests.paths import SHARED_IMAGES

KEY = "sk-choice-secret-12"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_env(monkeypatch, KEY)


def _cand(index: int, checks: dict[str, Any] | None, *, error: str | None = None) -> Candidate:
    metrics = None if checks is None and error is None else {"checks": checks or {}}
    if error is not None and metrics is not None:
        metrics["error"] = error
    c = Candidate(index, 100 + index, state="done", metrics=metrics)
    c.score = score_checks(checks) if checks is not None and error is None else None
    return c


def _check(ok: bool | None, value: float | None, expected: Any, reason: str | None = None) -> Any:
    entry: dict[str, Any] = {"pass": ok, "value": value, "expected": expected}
    if reason:
        entry["reason"] = reason
    return entry


NO_SUBJECT = "no subject was found on the target; give --subject-box"


def test_a_check_measured_on_none_makes_the_choice_blind() -> None:
    """The issue's case: no subject, so the width was measured on none; the others' margins
    (here SSIM, largest on the widest print) must not choose. The first is kept, flagged."""
    cands = [
        _cand(
            i,
            {
                "ssim_min": _check(True, ssim, 0.5),
                "pattern_width_fraction": _check(None, None, [0.45, 0.8], NO_SUBJECT),
            },
        )
        for i, ssim in enumerate([0.6, 0.7, 0.9, 0.8])
    ]
    got = choice(cands)
    assert got is not None
    assert got.candidate.index == 0 and got.chosen_by == "none" and got.flagged
    assert "pattern_width_fraction" in got.reason and "no subject" in got.reason


def test_checks_margin_and_none_are_told_apart() -> None:
    passes = _cand(0, {"a_min": _check(True, 0.9, 0.5), "b_min": _check(False, 0.1, 0.5)})
    fails_more = _cand(1, {"a_min": _check(False, 0.4, 0.5), "b_min": _check(False, 0.2, 0.5)})
    got = choice([fails_more, passes])
    assert got is not None and got.candidate is passes and got.chosen_by == "checks"
    assert not got.flagged
    # The same checks failed on both, all measured: the margins decide, and say so.
    near = _cand(0, {"a_min": _check(False, 0.45, 0.5)})
    far = _cand(1, {"a_min": _check(False, 0.1, 0.5)})
    got = choice([far, near])
    assert got is not None and got.candidate is near and got.chosen_by == "margin"
    # Every check passes on both: the one chosen passes, so "checks".
    both = [
        _cand(0, {"a_min": _check(True, 0.6, 0.5)}),
        _cand(1, {"a_min": _check(True, 0.9, 0.5)}),
    ]
    got = choice(both)
    assert got is not None and got.candidate.index == 1 and got.chosen_by == "checks"
    # Nothing compared at all, or compare failed on every one: blind, the first kept.
    for cands in (
        [_cand(0, None), _cand(1, None)],
        [_cand(0, {}, error="x"), _cand(1, {}, error="y")],
    ):
        got = choice(cands)
        assert got is not None and got.candidate.index == 0 and got.chosen_by == "none"
    assert choice([Candidate(0, 1), Candidate(1, 2, state="failed")]) is None


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _fake_args(fake_api: FakeAPI, target: Path, recipe: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(target), "-r", str(recipe), "--backend", "openai", "--base-url",
            fake_api.openai_base, "--seed", "100", "-o", str(out), "--json", *extra]  # fmt: skip


def test_run_says_margin_when_all_fail_the_same_check(tmp_path: Path, fake_api: FakeAPI) -> None:
    widths = {100: FAIL_W, 101: 0.6}  # both fail ssim_min; the narrower square by less
    fake_api.result_hook = width_hook(lambda model, seed: widths[seed])
    recipe = write_recipe(tmp_path)
    target = write_target(tmp_path / "t.png", 1)
    res = _run(_fake_args(fake_api, target, recipe, tmp_path / "out", "--candidates", "2"))
    assert res.exit_code == 0, res.output
    side = json.loads(res.stdout)
    assert [c["passed"] for c in side["candidates"]] == [False, False]
    assert side["chosen"] == 2 and side["chosen_by"] == "margin"
    assert side["flagged_for_review"] is False
    assert "candidates: chose 2 of 2 drawn (2 asked) by margin" in res.stderr


def test_run_without_compare_never_claims_a_choice(tmp_path: Path, fake_api: FakeAPI) -> None:
    widths = {100: FAIL_W, 101: PASS_W, 102: PASS_W}
    fake_api.result_hook = width_hook(lambda model, seed: widths[seed])
    recipe = write_recipe(tmp_path)
    target = write_target(tmp_path / "t.png", 1)
    out = tmp_path / "out"
    res = _run(_fake_args(fake_api, target, recipe, out, "--candidates", "3", "--no-compare"))
    assert res.exit_code == 0, res.output
    side = json.loads(res.stdout)
    assert side["chosen"] == 1 and side["chosen_by"] == "none"
    assert side["flagged_for_review"] is True and "was compared" in side["chosen_reason"]
    assert json.loads((out / f"{side['job_id']}.json").read_text())["chosen_by"] == "none"
    assert "chose" not in res.stderr and "flagged for review" in res.stderr


def test_batch_journals_the_flag(tmp_path: Path, fake_api: FakeAPI) -> None:
    fake_api.result_hook = width_hook(lambda model, seed: PASS_W if seed % 2 else FAIL_W)
    recipe = write_recipe(tmp_path)
    write_target(tmp_path / "a.png", 1)
    write_target(tmp_path / "b.png", 2)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("id,image1,seed\nja,a.png,10\njb,b.png,20\n")
    out = tmp_path / "out"
    common = ["batch", str(pairs), "-r", str(recipe), "-o", str(out), "--backend", "openai",
              "--base-url", fake_api.openai_base, "--candidates", "2", "--json"]  # fmt: skip
    res = _run([*common, "--no-compare"])
    assert res.exit_code == 0, res.output
    assert res.stderr.count("flagged for review") == 2
    db = sqlite3.connect(out / "journal.sqlite")
    rows = db.execute("SELECT job_id, chosen_by, flagged_for_review, flag_reason FROM jobs")
    got = sorted(tuple(r) for r in rows)
    db.close()
    assert [(j, by, flag) for j, by, flag, _ in got] == [("ja", "none", 1), ("jb", "none", 1)]
    assert all("was compared" in (why or "") for *_, why in got)
    # Compared: seed 11 and 21 pass, the checks choose, nothing is flagged.
    out2 = tmp_path / "out2"
    common[common.index(str(out))] = str(out2)
    res = _run(common)
    assert res.exit_code == 0, res.output
    db = sqlite3.connect(out2 / "journal.sqlite")
    rows = db.execute("SELECT chosen_by, flagged_for_review, flag_reason FROM jobs")
    assert sorted(tuple(r) for r in rows) == [("checks", 0, None)] * 2
    db.close()


@pytest.mark.skipif(not (SHARED_IMAGES / "flower.jpg").is_file(), reason="needs ../shared")
def test_no_subject_on_the_target_is_a_blind_choice(tmp_path: Path) -> None:
    """The local preview on a photo with no person: the chest checks are measured on no
    candidate, so none is chosen by the others' margins."""
    out = tmp_path / "out"
    res = _run(
        ["run", str(REPO / "samples" / "pattern.png"), str(SHARED_IMAGES / "flower.jpg"),
         "-r", "pattern-transfer", "--backend", "local", "--seed", "1", "--candidates", "2",
         "-o", str(out), "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads(res.stdout)
    assert side["chosen_by"] == "none" and side["chosen"] == 1, side["chosen_reason"]
    assert side["flagged_for_review"] is True
    assert "candidates: chose" not in res.stderr
