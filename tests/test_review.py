"""Review without a browser: the reviews table, agreement against hand-computed tables and
Wilson intervals, --set, --export, a run folder's reviews.sqlite, and ab's approval rates."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fluxcompose import journal as journal_mod
from fluxcompose.ab import approval_stats, refresh_approval
from fluxcompose.cli import cli
from fluxcompose.errors import InputError
from fluxcompose.journal import Journal
from fluxcompose.review import (
    REASON_NAMES,
    Judged,
    ReviewStore,
    agreement,
    checks_verdict,
    parse_set,
)
from tests.fakeapi import FakeAPI
from tests.review_data import CHECKS, ORDER, SAMPLES, copy_batch, pairs_file


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("fluxcompose: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


# --------------------------------------------------------------------------- the journal


def test_reviews_come_by_a_new_migration_and_keep_older_journals_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [fn.__name__ for fn in journal_mod.MIGRATIONS]
    assert "m003_reviews" in names
    older = [fn for fn in journal_mod.MIGRATIONS if fn.__name__ != "m003_reviews"]
    monkeypatch.setattr(journal_mod, "MIGRATIONS", older)
    with Journal(tmp_path / "j.sqlite") as j:
        j.ensure("job-1", line=2)
    monkeypatch.undo()
    with Journal(tmp_path / "j.sqlite") as j:
        assert j.get("job-1") is not None
        j.add_review("job-1", "approve", reviewer="ann")
    db = sqlite3.connect(tmp_path / "j.sqlite")
    cols = {r[1] for r in db.execute("PRAGMA table_info(reviews)")}
    assert {"job_id", "candidate", "verdict", "reasons", "note", "reviewer", "reviewed_at"} <= cols


def test_current_verdict_is_the_latest_and_the_history_stays(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        j.add_review("a", "approve", reviewer="ann")
        j.add_review("a", "reject", reasons=("size", "other"), note="too big", reviewer="bob")
        j.add_review("b", "approve")
        j.add_review("b", "choose", candidate=2)  # the output changed: b is unjudged again
        current = j.current_reviews()
        assert set(current) == {"a"}
        assert current["a"].verdict == "reject" and current["a"].reasons == ("size", "other")
        assert [r.verdict for r in j.review_history("a")] == ["approve", "reject"]
        assert [r.verdict for r in j.review_history("b")] == ["approve", "choose"]
        with pytest.raises(ValueError):
            j.add_review("a", "maybe")
    # Committed: a second connection sees every row.
    db = sqlite3.connect(tmp_path / "j.sqlite")
    assert db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 4


# --------------------------------------------------------------------------- pure parts


def test_checks_verdict_never_counts_unmeasured_as_passed() -> None:
    ok = {"pass": True}
    assert checks_verdict({"a": ok, "b": ok}) == "passed"
    assert checks_verdict({"a": ok, "b": {"pass": None}}) == "not_measured"
    assert checks_verdict({"a": {"pass": False}, "b": {"pass": None}}) == "failed"
    assert checks_verdict({}) == "not_measured"
    assert checks_verdict(None, None) == "not_measured"
    assert checks_verdict(None, False) == "failed"


def test_parse_set() -> None:
    s = parse_set("job-7=reject:placement,size")
    assert (s.job, s.verdict, s.reasons) == ("job-7", "reject", ("size", "placement"))
    assert parse_set("a=b=approve").job == "a=b"
    for bad in ("job", "job=maybe", "job=reject:tiny", "=approve", "job=approve:size"):
        with pytest.raises(InputError):
            parse_set(bad)
    assert REASON_NAMES == (
        "size", "placement", "distorted", "colours", "garment", "person", "background",
        "artefacts", "other",
    )  # fmt: skip


def _judged(
    person: str, checks: str, n: int, per: dict[str, bool | None] | None = None
) -> list[Judged]:
    return [Judged(person, checks, per or {}) for _ in range(n)]


def test_agreement_against_a_hand_computed_table() -> None:
    judged = (
        _judged("approve", "passed", 8, {"width": True, "placement": True})
        + _judged("reject", "passed", 2, {"width": True, "placement": True})
        + _judged("approve", "failed", 3, {"width": False, "placement": True})
        + _judged("reject", "failed", 1, {"width": False, "placement": None})
        + _judged("reject", "not_measured", 2, {"width": None})
        + _judged("approve", "not_measured", 1)
    )
    doc = agreement(judged)
    assert doc["reviewed"] == 17
    assert doc["table"] == {
        "passed": {"approved": 8, "rejected": 2},
        "failed": {"approved": 3, "rejected": 1},
        "not_measured": {"approved": 1, "rejected": 2},
    }
    # False pass: 2 of 10. Wilson 95 % for 2/10 is 0.0567..0.5098 (standard tables).
    assert doc["false_pass_rate"] == pytest.approx(0.2)
    assert doc["false_pass_ci"] == pytest.approx([0.0567, 0.5098], abs=1e-4)
    # False fail: 3 of 4. Wilson 95 % for 3/4 is 0.3006..0.9544.
    assert doc["false_fail_rate"] == pytest.approx(0.75)
    assert doc["false_fail_ci"] == pytest.approx([0.3006, 0.9544], abs=1e-4)
    assert doc["per_check"] == {
        "placement": {
            "pass_approved": 11,
            "pass_rejected": 2,
            "fail_approved": 0,
            "fail_rejected": 0,
        },
        "width": {"pass_approved": 8, "pass_rejected": 2, "fail_approved": 3, "fail_rejected": 1},
    }
    assert list(doc) == [
        "reviewed", "table", "false_pass_rate", "false_pass_ci", "false_fail_rate",
        "false_fail_ci", "per_check",
    ]  # fmt: skip


def test_agreement_with_nothing_reviewed_knows_nothing() -> None:
    doc = agreement([])
    assert doc["reviewed"] == 0 and doc["false_pass_rate"] is None
    assert doc["false_pass_ci"] == [0.0, 1.0] and doc["false_fail_ci"] == [0.0, 1.0]


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    return copy_batch(tmp_path / "out")


def test_set_export_and_agreement_from_the_command_line(batch: Path, tmp_path: Path) -> None:
    r = invoke(
        "review", batch, "--reviewer", "ann", "--note", "checked by hand",
        "--set", "tee-middle=approve",
        "--set", "tee-left-chest=reject:placement,size",
        "--set", "tee-badbox=approve",
        "--set", "tee-nobody=reject:person",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = invoke("review", batch, "--set", "tee-middle=reject:artefacts", "--reviewer", "bob")
    assert r.exit_code == 0, r.output
    csv_path = tmp_path / "v.csv"
    assert invoke("review", batch, "--export", csv_path).exit_code == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["job_id"] for r in rows] == list(ORDER)
    by = {r["job_id"]: r for r in rows}
    assert list(rows[0]) == [
        "job_id", "verdict", "reasons", "note", "reviewer", "reviewed_at", "candidate",
        "checks_passed", "output",
    ]  # fmt: skip
    assert (by["tee-middle"]["verdict"], by["tee-middle"]["reasons"]) == ("reject", "artefacts")
    assert by["tee-middle"]["reviewer"] == "bob" and by["tee-middle"]["note"] == ""
    assert by["tee-left-chest"]["reasons"] == "size;placement"
    assert by["tee-left-chest"]["note"] == "checked by hand"
    assert by["tee-left-chest"]["checks_passed"] == "true"
    assert by["tee-badbox"]["checks_passed"] == "false"
    assert by["tee-nobody"]["checks_passed"] == ""  # not measured
    assert by["tee-nobody"]["candidate"] == "1" and by["tee-nobody"]["output"] == "tee-nobody.png"
    assert by["tee-badbox"]["reviewed_at"].endswith("+00:00")

    jl = tmp_path / "v.jsonl"
    assert invoke("review", batch, "--export", jl).exit_code == 0
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert [x["checks_passed"] for x in lines] == [
        {"passed": True, "failed": False}.get(CHECKS[j]) for j in ORDER
    ]

    r = invoke("review", batch, "--agreement", "--json")
    doc = json.loads(r.stdout)
    # tee-middle passed/rejected, tee-left-chest passed/rejected, tee-badbox failed/approved,
    # tee-nobody not measured/rejected.
    assert doc["table"] == {
        "passed": {"approved": 0, "rejected": 2},
        "failed": {"approved": 1, "rejected": 0},
        "not_measured": {"approved": 0, "rejected": 1},
    }
    assert doc["false_pass_rate"] == 1.0 and doc["false_fail_rate"] == 1.0
    assert doc["per_check"]["pattern_found"] == {
        "pass_approved": 0, "pass_rejected": 3, "fail_approved": 1, "fail_rejected": 0,
    }  # fmt: skip
    text = invoke("review", batch, "--agreement")
    assert "false-pass rate: 100.0 %" in text.stdout


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (["tee-middle=approve", "no-such-job=approve"], "unknown job 'no-such-job'"),
        (["tee-middle=reject:size,wobbly"], "unknown reason 'wobbly'"),
        (["tee-middle=perhaps"], "approve or reject"),
    ],
)
def test_bad_set_is_one_line_exit_2_and_writes_nothing(
    batch: Path, sets: list[str], words: str
) -> None:
    args = [a for s in sets for a in ("--set", s)]
    assert words in one_error(invoke("review", batch, *args))
    with Journal(batch / "journal.sqlite") as j:
        assert j.review_history() == []


def test_export_to_an_unknown_format_is_exit_2(batch: Path, tmp_path: Path) -> None:
    assert ".csv or .jsonl" in one_error(invoke("review", batch, "--export", tmp_path / "v.xlsx"))
    assert not (tmp_path / "v.xlsx").exists()


def test_a_run_folder_gets_reviews_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = invoke(
        "run", SAMPLES / "pattern.png", SAMPLES / "model.jpg", "-r", "pattern-transfer",
        "-o", out, "--backend", "local", "--seed", "3",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    job = json.loads(next(p for p in out.glob("*.json")).read_text())["job_id"]
    assert invoke("review", out, "--set", f"{job}=reject:colours").exit_code == 0
    assert (out / "reviews.sqlite").is_file() and not (out / "journal.sqlite").exists()
    with ReviewStore(out) as store:
        assert store.kind == "run"
        assert store.current()[job].reasons == ("colours",)
        assert [e.checks_verdict for e in store.jobs()] == ["passed"]


# --------------------------------------------------------------------------- ab


def test_ab_approval_rates_with_wilson_intervals(tmp_path: Path) -> None:
    arms = {"pro": ["p1", "p2", "p3", "p4"], "max": ["m1", "m2"]}
    for arm, ids in arms.items():
        (tmp_path / arm).mkdir()
        with Journal(tmp_path / arm / "journal.sqlite") as j:
            for i in ids:
                j.ensure(i, line=int(i[1]) + 1)
    with Journal(tmp_path / "pro" / "journal.sqlite") as j:
        j.add_review("p1", "approve")
        j.add_review("p2", "approve")
        j.add_review("p3", "reject", reasons=("size",))
        j.add_review("p4", "approve")
        j.add_review("p4", "choose", candidate=2)  # changed since: not counted
        assert approval_stats(j, ["p1", "p2", "p3", "p4"]) == {
            "reviewed": 3,
            "approved": 2,
            "approval_rate": pytest.approx(0.666667),
            # Wilson 95 % for 2/3: 0.2077..0.9385.
            "approval_rate_ci95": pytest.approx([0.2077, 0.9385], abs=1e-4),
        }
    doc = {
        "arms": [
            {"name": "pro", "model": "flux-kontext-pro", "references": None, "jobs": 4, "done": 4,
             "passed": 4, "pass_rate": 1.0, "pass_rate_ci95": [0.5, 1.0], "metrics": {},
             "cost_usd": 0, "cost_per_passing_usd": None, "median_generate_s": None},
            {"name": "max", "model": "flux-kontext-max", "references": None, "jobs": 2, "done": 2,
             "passed": 2, "pass_rate": 1.0, "pass_rate_ci95": [0.3, 1.0], "metrics": {},
             "cost_usd": 0, "cost_per_passing_usd": None, "median_generate_s": None},
        ],
        "comparisons": [],
        "pairs": [
            {"line": n + 2, "id": None, "sources": [],
             "arms": {"pro": {"job_id": f"p{n + 1}"}, "max": {"job_id": f"m{n + 1}"} if n < 2 else {}}}
            for n in range(4)
        ],
    }  # fmt: skip
    (tmp_path / "ab.json").write_text(json.dumps(doc))
    out = refresh_approval(tmp_path)
    assert out is not None
    saved = json.loads((tmp_path / "ab.json").read_text())
    assert saved["arms"][0]["approval"]["approved"] == 2
    assert saved["arms"][1]["approval"] is None
    page = (tmp_path / "ab.html").read_text()
    assert "approved by people" in page and "2/3 (67 %)" in page and "21–94 %" in page
    assert "not reviewed" in page


# --------------------------------------------------------------------------- retry-rejected


def _retry_pairs(tmp_path: Path) -> Path:
    folder = tmp_path / "pairs"
    folder.mkdir()
    return pairs_file(folder, ("tee-middle", "tee-left-chest", "tee-badbox", "tee-nobody"))


def test_retry_rejected_runs_only_the_rejected_with_a_new_seed_and_keeps_history(
    batch: Path, tmp_path: Path
) -> None:
    pairs = _retry_pairs(tmp_path)
    assert invoke("review", batch, "--set", "tee-badbox=reject:size,placement").exit_code == 0
    assert invoke("review", batch, "--set", "tee-middle=approve").exit_code == 0
    before = {j: (batch / f"{j}.png").read_bytes() for j in ORDER}
    old_side = json.loads((batch / "tee-badbox.json").read_text())
    r = invoke(
        "batch", pairs, "-r", "pattern-transfer", "-o", batch, "--backend", "local",
        "--retry-rejected", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    err = r.stderr.splitlines()
    price = next(i for i, ln in enumerate(err) if "retrying 1 rejected job(s) with new seeds" in ln)
    assert "about $0.000 more" in err[price]
    assert price < next(i for i, ln in enumerate(err) if ln.startswith("backend:"))
    summary = json.loads(r.stdout)
    assert summary["done"] == 4 and summary["skipped"] == 3
    # The earlier output and verdict stay; the new output is unreviewed.
    kept = batch / "history" / "tee-badbox" / "1"
    assert (kept / "tee-badbox.png").read_bytes() == before["tee-badbox"]
    assert json.loads((kept / "tee-badbox.json").read_text())["seed"] == old_side["seed"] == 5
    new_seed = json.loads((batch / "tee-badbox.json").read_text())["seed"]
    assert new_seed != 5
    with Journal(batch / "journal.sqlite") as j:
        hist = j.review_history("tee-badbox")
        current = j.current_reviews()
        assert j.get("tee-badbox").state == "done"  # type: ignore[union-attr]
    assert [(h.verdict, h.reasons) for h in hist] == [
        ("reject", ("size", "placement")),
        ("retry", ()),
    ]
    assert hist[1].output_path == "history/tee-badbox/1/tee-badbox.png"
    assert "tee-badbox" not in current and current["tee-middle"].verdict == "approve"
    for j in ("tee-middle", "tee-left-chest", "tee-nobody"):
        assert (batch / f"{j}.png").read_bytes() == before[j]
    # Nothing rejected any more: nothing to run.
    r = invoke("batch", pairs, "-r", "pattern-transfer", "-o", batch, "--backend", "local",
               "--retry-rejected")  # fmt: skip
    assert r.exit_code == 0 and "no rejected job" in r.stderr


def test_retry_rejected_keeps_to_the_budget(
    batch: Path, tmp_path: Path, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.api_key = "sk-review-test"
    monkeypatch.setenv("FLUXCOMPOSE_API_KEY", "sk-review-test")
    monkeypatch.setenv("FLUXCOMPOSE_BASE_URL", fake_api.openai_base)
    pairs = _retry_pairs(tmp_path)
    for j in ("tee-badbox", "tee-nobody"):
        assert invoke("review", batch, "--set", f"{j}=reject").exit_code == 0
    args = ("batch", pairs, "-r", "pattern-transfer", "-o", batch, "--backend", "openai")
    r = invoke(*args, "--retry-rejected", "--budget", "0.05", "--no-compare")
    assert "2 call(s), about $0.070 more (budget $0.050 in total)" in r.stderr
    assert fake_api.billable == 1 and r.exit_code == 1  # the second would pass the budget
    assert "budget" in r.stderr
    # The one left behind is still to be retried (with a new seed), and is paid for once.
    r = invoke(*args, "--retry-rejected", "--budget", "1", "--no-compare")
    assert r.exit_code == 0, r.stderr
    assert "retrying 1 rejected job(s)" in r.stderr and fake_api.billable == 2
    assert sorted(p.name for p in (batch / "history").iterdir()) == ["tee-badbox", "tee-nobody"]


# --------------------------------------------------------------------------- an A/B folder


@pytest.fixture
def ab_folder(tmp_path: Path) -> Path:
    """Two arms made of the sample batch and the ab.json that ``fluxcompose ab`` writes."""
    root = tmp_path / "ab"
    root.mkdir()
    for arm in ("pro", "max"):
        copy_batch(root / arm)
    doc = {
        "arms": [
            {"name": a, "model": m, "references": None, "jobs": 4, "done": 4, "passed": 2,
             "pass_rate": 0.5, "pass_rate_ci95": [0.15, 0.85], "metrics": {}, "cost_usd": 0,
             "cost_per_passing_usd": None, "median_generate_s": None}
            for a, m in (("pro", "flux-kontext-pro"), ("max", "flux-kontext-max"))
        ],
        "comparisons": [],
        "pairs": [{"line": i + 2, "id": j, "sources": [],
                   "arms": {"pro": {"job_id": j}, "max": {"job_id": j}}} for i, j in enumerate(ORDER)],
    }  # fmt: skip
    (root / "ab.json").write_text(json.dumps(doc))
    return root


def test_an_ab_folder_reviews_each_arm_into_its_own_journal(ab_folder: Path) -> None:
    with ReviewStore(ab_folder) as store:
        assert store.kind == "ab"
        keys = [e.key for e in store.jobs()]
        assert keys[:2] == ["pro/tee-middle", "max/tee-middle"] and len(keys) == 8
        detail = store.detail("max/tee-middle")
        assert [a["arm"] for a in detail["arms"]] == ["pro", "max"]
        assert detail["output"] == "max/tee-middle.png"
    assert "several arms" in one_error(invoke("review", ab_folder, "--set", "tee-middle=approve"))
    r = invoke(
        "review", ab_folder, "--set", "pro/tee-middle=approve", "--set", "pro/tee-badbox=reject",
        "--set", "max/tee-middle=approve",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    with Journal(ab_folder / "pro" / "journal.sqlite") as j:
        assert {k: v.verdict for k, v in j.current_reviews().items()} == {
            "tee-middle": "approve",
            "tee-badbox": "reject",
        }
    arms = {
        a["name"]: a["approval"] for a in json.loads((ab_folder / "ab.json").read_text())["arms"]
    }
    assert (arms["pro"]["approved"], arms["pro"]["reviewed"]) == (1, 2)
    assert (arms["max"]["approved"], arms["max"]["reviewed"]) == (1, 1)
    assert "approved by people" in (ab_folder / "ab.html").read_text()
