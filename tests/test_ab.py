"""``fluxcompose ab`` against the fake API, whose output depends on the model and the seed
(a grey square whose width the test chooses), so pass rates, wins and p-values are known."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fluxcompose.ab import parse_arm
from fluxcompose.cli import cli
from fluxcompose.errors import InputError
from tests.candidates_fake import BETTER_W, FAIL_W, width_hook, write_recipe, write_target
from tests.fakeapi import FakeAPI
from tests.hermetic import hermetic_env

KEY = "sk-ab-secret-11"
PRO, MAX = "flux-kontext-pro", "flux-kontext-max"

# Pair i has seed 10 * i. Pairs 0-7: max passes, pro fails (max wins); 8-9: pro wins;
# 10-11: the same output under both arms (ties).
N_PAIRS = 12


def widths(model: str, seed: int) -> float:
    i = seed // 10
    if i < 8:
        return BETTER_W if model == MAX else FAIL_W
    if i < 10:
        return BETTER_W if model == PRO else FAIL_W
    return BETTER_W


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_env(monkeypatch, KEY)


def make_pairs(folder: Path, n: int) -> Path:
    lines = ["id,image1,seed"]
    for i in range(n):
        write_target(folder / f"t{i}.png", i)
        lines.append(f"p{i:02d},t{i}.png,{10 * i}")
    pairs = folder / "pairs.csv"
    pairs.write_text("\n".join(lines) + "\n")
    return pairs


def test_ab_known_answers(tmp_path: Path, fake_api: FakeAPI) -> None:
    fake_api.result_hook = width_hook(widths)
    pairs = make_pairs(tmp_path, N_PAIRS)
    recipe = write_recipe(tmp_path)
    out = tmp_path / "ab"
    res = CliRunner().invoke(
        cli,
        ["ab", str(pairs), "-r", str(recipe), "--arm", f"pro={PRO}", "--arm", f"max={MAX}",
         "-o", str(out), "--backend", "openai", "--base-url", fake_api.openai_base,
         "--concurrency", "6", "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc == json.loads((out / "ab.json").read_text())
    assert fake_api.billable == 2 * N_PAIRS
    models = [r.json["model"] for r in fake_api.submissions]
    # Interleaved by chunks of 6 pairs: pro's chunk, then max's, then the next chunk.
    assert models == ([PRO] * 6 + [MAX] * 6) * 2
    pro, mx = doc["arms"]
    assert (pro["name"], pro["jobs"], pro["done"], pro["passed"]) == ("pro", 12, 12, 4)
    assert (mx["name"], mx["jobs"], mx["done"], mx["passed"]) == ("max", 12, 12, 10)
    assert pro["pass_rate_ci95"] == pytest.approx([0.13817, 0.60937], abs=1e-4)  # Wilson 4/12
    assert mx["pass_rate_ci95"] == pytest.approx([0.55196, 0.95302], abs=1e-4)  # Wilson 10/12
    assert pro["cost_usd"] == pytest.approx(12 * 0.035) and mx["cost_usd"] == pytest.approx(
        12 * 0.07
    )
    assert pro["cost_per_passing_usd"] == pytest.approx(12 * 0.035 / 4)
    assert mx["cost_per_passing_usd"] == pytest.approx(12 * 0.07 / 10)
    assert (
        pro["metrics"]["ssim"]["n"] == 12
        and mx["metrics"]["ssim"]["mean"] > pro["metrics"]["ssim"]["mean"]
    )
    (cmp,) = doc["comparisons"]
    assert (cmp["a"], cmp["b"], cmp["wins"], cmp["losses"], cmp["ties"]) == ("pro", "max", 2, 8, 2)
    assert cmp["sign_test_p"] == pytest.approx(0.109375)
    assert len(doc["pairs"]) == N_PAIRS
    first = doc["pairs"][0]["arms"]
    assert first["pro"]["passed"] is False and first["max"]["passed"] is True
    assert first["max"]["checks"] == {"ssim_min": True}
    assert (out / first["max"]["output"]).is_file()
    assert (out / "pro" / "journal.sqlite").is_file() and (out / "max" / "report.html").is_file()
    assert not doc["offline_demo"]
    # Run again: everything is done in both arms, nothing is paid.
    res = CliRunner().invoke(
        cli,
        ["ab", str(pairs), "-r", str(recipe), "--arm", f"pro={PRO}", "--arm", f"max={MAX}",
         "-o", str(out), "--backend", "openai", "--base-url", fake_api.openai_base, "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0 and fake_api.billable == 2 * N_PAIRS
    assert json.loads(res.stdout)["comparisons"] == doc["comparisons"]


def test_ab_with_candidates_and_stop_on_pass(tmp_path: Path, fake_api: FakeAPI) -> None:
    # Under pro the first draw of every pair fails and the second passes; under max the
    # first passes: --stop-on-pass pays 2 per pair for pro and 1 per pair for max.
    def w(model: str, seed: int) -> float:
        return BETTER_W if (model == MAX or seed % 10 == 1) else FAIL_W

    fake_api.result_hook = width_hook(w)
    pairs = make_pairs(tmp_path, 3)
    recipe = write_recipe(tmp_path)
    res = CliRunner().invoke(
        cli,
        ["ab", str(pairs), "-r", str(recipe), "--arm", f"pro={PRO}", "--arm", f"max={MAX}",
         "-o", str(tmp_path / "ab"), "--backend", "openai", "--base-url", fake_api.openai_base,
         "--candidates", "3", "--stop-on-pass", "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert fake_api.billable == 3 * 2 + 3 * 1  # of 3 * 3 * 2 = 18 asked
    pro, mx = doc["arms"]
    assert pro["passed"] == mx["passed"] == 3
    assert pro["cost_usd"] == pytest.approx(6 * 0.035) and mx["cost_usd"] == pytest.approx(3 * 0.07)
    assert doc["candidates"] == 3


@pytest.mark.parametrize(
    "arms",
    [
        ["a=flux-kontext-pro"],
        ["a=flux-kontext-pro", "A=flux-kontext-max"],
        ["a=flux-kontext-pro", "b=flux-nope"],
        ["../x=flux-kontext-pro", "b=flux-kontext-max"],
        ["a=flux-kontext-pro:sideways", "b=flux-kontext-max"],
        ["candidates=flux-kontext-pro", "b=flux-kontext-max"],
        ["flux-kontext-pro", "b=flux-kontext-max"],
    ],
)
def test_bad_arms_are_bad_usage(tmp_path: Path, arms: list[str]) -> None:
    pairs = make_pairs(tmp_path, 1)
    args = ["ab", str(pairs), "-r", str(write_recipe(tmp_path)), "-o", str(tmp_path / "o")]
    for a in arms:
        args += ["--arm", a]
    res = CliRunner().invoke(cli, [*args, "--backend", "local"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_parse_arm() -> None:
    assert parse_arm("k2=flux-kontext-max:separate").references == "separate"
    assert parse_arm("k=flux-kontext-pro").references is None
    with pytest.raises(InputError):
        parse_arm("k=")


# -- kill -9 in the middle of an A/B, then resume --------------------------------------


def _query(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(sql).fetchone()[0] or 0)
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def _wait(cond: object, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not cond():  # type: ignore[operator]
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"ab exited ({proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigkill_mid_ab_then_resume_pays_nothing_twice(tmp_path: Path) -> None:
    n = 4
    pairs = make_pairs(tmp_path, n)
    recipe = write_recipe(tmp_path)
    out = tmp_path / "ab"
    dbs = [out / "pro" / "journal.sqlite", out / "max" / "journal.sqlite"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUXCOMPOSE_", "BFL_"))}
    env["BFL_API_KEY"] = KEY
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    with FakeAPI() as api:
        api.result_hook = width_hook(widths)
        api.pending_polls = 1  # a task stays "submitted" for a poll: there is work to resume
        cmd = [
            sys.executable, "-c", "from fluxcompose.cli import main; main()", "ab", str(pairs),
            "-r", str(recipe), "--arm", f"pro={PRO}", "--arm", f"max={MAX}", "-o", str(out),
            "--backend", "bfl", "--base-url", api.bfl_base, "--concurrency", "2",
            "--max-attempts", "50", "--json",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # Pro's first chunk is done and max is on its way: kill in the middle.
        _wait(lambda: _query(dbs[1], "SELECT COUNT(task_id) FROM jobs") >= 1, proc, "max started")
        api.force_status = 503  # no more accepted submissions; then every id is committed

        def settled() -> bool:
            # Every submission the fake saw has been answered (any later one gets 503), and
            # every accepted one's task id is in a journal: what a kill must not lose.
            answered = all(r.status != 0 for r in api.submissions)
            ids = sum(_query(d, "SELECT COUNT(task_id) FROM jobs") for d in dbs)
            return answered and ids == api.billable

        _wait(settled, proc, "every accepted task id committed")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        done = sum(_query(d, "SELECT COUNT(*) FROM jobs WHERE state = 'done'") for d in dbs)
        assert done < 2 * n, "the kill came too late to test resuming"
        paid_before = api.billable
        assert paid_before >= 1
        api.force_status = None
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert second.returncode == 0, second.stderr[-3000:]
        doc = json.loads(second.stdout)
        assert api.billable == 2 * n
        pro, mx = doc["arms"]
        assert (pro["done"], mx["done"]) == (n, n)
        assert pro["cost_usd"] == pytest.approx(n * 0.04) and mx["cost_usd"] == pytest.approx(
            n * 0.08
        )
        assert (pro["passed"], mx["passed"]) == (0, n)  # pairs 0-3: max passes, pro fails
        (cmp,) = doc["comparisons"]
        assert (cmp["wins"], cmp["losses"], cmp["ties"]) == (0, n, 0)
        assert cmp["sign_test_p"] == pytest.approx(2 / 2**n)
        assert KEY not in second.stderr and KEY not in second.stdout


def test_the_local_page_says_the_arms_differ_only_in_price(tmp_path: Path) -> None:
    from fluxcompose.ab_report import render_ab_html

    arm = {
        "metrics": {"ssim": {"mean": 0.9, "n": 1}},
        "jobs": 1, "done": 1, "passed": 1, "pass_rate": 1.0, "pass_rate_ci95": [0.2, 1.0],
        "cost_usd": 0.0, "cost_per_passing_usd": 0.0, "median_generate_s": 0.5,
        "references": None,
    }  # fmt: skip
    doc = {
        "pairs_file": "pairs.csv",
        "backend": "local",
        "offline_demo": True,
        "arms": [
            {**arm, "name": "k", "model": PRO, "official_usd_per_call": 0.04},
            {**arm, "name": "m<x>", "model": MAX, "official_usd_per_call": 0.08},
        ],
        "comparisons": [],
        "pairs": [],
    }
    page = render_ab_html(tmp_path, doc)
    assert "the arms differ only in price" in page
    assert "$0.040 per call" in page and "$0.080 per call" in page
    assert "m&lt;x&gt;" in page and "m<x>" not in page


def test_the_offline_price_note_prices_flux2_by_what_a_job_sends() -> None:
    """Kontext is per call; flux-2-pro with two 1 MP references and a 1 MP output is 3 MP:
    $0.03 + 2 x $0.015 (DESIGN.md section 11), not the 1 MP lower bound."""
    from fluxcompose.ab import Arm, _official_price, arm_config
    from fluxcompose.batch import BatchConfig
    from fluxcompose.recipes import load_recipe

    base = BatchConfig(recipe=load_recipe("pattern-transfer"))
    kontext = arm_config(base, Arm("k", "flux-kontext-pro", "stitched"))
    flux2 = arm_config(base, Arm("f", "flux-2-pro", "separate"))
    assert _official_price(kontext, 2) == pytest.approx(0.04)
    assert _official_price(flux2, 2) == pytest.approx(0.06)
