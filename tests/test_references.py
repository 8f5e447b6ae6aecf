"""Separate references next to the stitched canvas, FLUX.2 output sizes, and cost truth
(DESIGN.md section 11).

- hypothesis: FLUX.2 sizes (multiples of 16, >= 64, <= 4 MP, within 0.02 of the asked
  aspect after clamping), each reference within its budget, inputs plus output within 9 MP;
- separate mode end to end on the local backend: the references saved are byte for byte
  what the request carried, and the sidecar says so;
- refusals before anything is sent (Kontext with 5 separate images, flex-only options);
- prompt_separate in separate mode, the old prompt (and the old job ids) when stitched;
- against the loopback fake: the sidecar's cost is BFL's when its reply carries one, the
  official formula when it does not; a FLUX.2 batch resumes by polling its stored task.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose import geometry
from fluxcompose.backends import LocalBackend, make_backend
from fluxcompose.cli import cli
from fluxcompose.compare import align_output, ssim
from fluxcompose.errors import ConfigError, InputError
from fluxcompose.journal import Journal
from fluxcompose.models import MAX_TOTAL_PIXELS
from fluxcompose.recipes import load_recipe, to_toml
from fluxcompose.run import (
    JobSpec,
    RequestOptions,
    complete_job,
    prepare_job,
    reference_budget,
    run_job,
    typical_price,
)
from tests.fakeapi import FakeAPI, flux2_cost

REPO = Path(__file__).resolve().parent.parent
PATTERN = str(REPO / "samples" / "pattern.png")
MODEL = str(REPO / "samples" / "model.jpg")
MP = geometry.MEGAPIXEL


def _spec(model: str | None = None, **request: object) -> JobSpec:
    return JobSpec(
        recipe=load_recipe("pattern-transfer"),
        sources=(PATTERN, MODEL),
        request=RequestOptions(model=model, seed=7, **request),  # type: ignore[arg-type]
    )


def _jpeg(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[...] = colour
    arr[:, : size[0] // 2, 0] = 255 - colour[0]  # not flat, so JPEG has work to do
    Image.fromarray(arr).save(path, format="JPEG", quality=80)
    return str(path)


# --------------------------------------------------------------------------- sizes


ratios = st.floats(min_value=0.05, max_value=20.0, allow_nan=False)
budgets = st.floats(min_value=0.05, max_value=4.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(ratios, budgets)
def test_flux2_sizes_are_valid_for_any_ratio(aspect: float, megapixels: float) -> None:
    w, h = geometry.flux2_size(aspect, megapixels)
    assert w % 16 == 0 and h % 16 == 0
    assert w >= 64 and h >= 64
    assert w * h <= 4 * MP
    clamped = min(7 / 3, max(3 / 7, aspect))
    assert abs(math.log(w / h) - math.log(clamped)) <= 0.02 + 1e-12
    # the budget is honoured where the +/-5 % band has room (it always has from 0.1 MP)
    if megapixels >= 0.1:
        assert w * h <= 4 * MP and w * h >= 0.9 * min(megapixels, 3.8) * MP


def test_flux2_size_known_answers_and_limits() -> None:
    assert geometry.flux2_size("1:1") == (1024, 1024)
    assert geometry.flux2_size("4:3") == (1200, 896)  # not Kontext's 1184x880 bucket
    assert geometry.flux2_size("1:1", 4.0) == (2048, 2048)
    assert geometry.flux2_size("1:10") == geometry.flux2_size("3:7")  # clamped
    for bad in (0.0, 4.5, float("nan")):
        with pytest.raises(InputError):
            geometry.flux2_size("1:1", bad)


sides = st.integers(min_value=1, max_value=12000)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(sides, sides), min_size=1, max_size=8),
    ratios,
    budgets,
    st.floats(min_value=0.05, max_value=4.0),
)
def test_references_fit_their_budget_and_nine_megapixels(
    sources: list[tuple[int, int]], aspect: float, out_mp: float, ref_mp: float
) -> None:
    ow, oh = geometry.flux2_size(aspect, out_mp)
    budget = reference_budget(len(sources), ref_mp, ow * oh)
    assert budget <= ref_mp * MP
    total = ow * oh
    for w, h in sources:
        rw, rh = geometry.reference_size(w, h, budget)
        assert rw * rh <= budget
        assert rw <= w and rh <= h  # never enlarged
        scale = min(1.0, math.sqrt(budget / (w * h)))
        # uniform scaling: each side within rounding of the same scale
        assert abs(rw - w * scale) < 2 and abs(rh - h * scale) < 2
        total += rw * rh
    assert total <= MAX_TOTAL_PIXELS


# --------------------------------------------------------------------------- prepare


def test_flux2_defaults_to_separate_with_prompt_separate_and_a_flux2_size() -> None:
    prepared = prepare_job(_spec("flux-2-pro"), backend_name="bfl")
    req = prepared.request
    assert prepared.references == "separate" and prepared.composite is None
    assert req.prompt.startswith("Transfer the pattern/design from image 1")
    assert "left" not in req.prompt
    # match:target: the model photo is 768x1024 upright (EXIF 6), 3:4 -> 896x1200
    assert (req.width, req.height) == geometry.flux2_size("3:4") == (896, 1200)
    assert [r["name"] for r in prepared.references_sent] == ["pattern", "target"]
    assert [(r["width"], r["height"]) for r in prepared.references_sent] == [
        (512, 512),
        (768, 1024),
    ]
    assert len(req.more_images) == 1
    with Image.open(io.BytesIO(req.more_images[0][0])) as im:
        assert im.size == (768, 1024)  # upright, as the sidecar says
    assert prepared.request_bytes == len(req.input_image or b"") + len(req.more_images[0][0])
    # official price of what is sent: 1.03 MP out + 0.25 + 0.75 MP in -> 3 MP billed
    credits, _, _ = flux2_cost("flux-2-pro", 896 * 1200, [512 * 512, 768 * 1024])
    assert prepared.price_usd == pytest.approx(credits / 100)


def test_kontext_stays_stitched_and_keeps_its_job_ids() -> None:
    # Ids computed at 94b4303, before separate references existed: a stitched Kontext
    # job must keep its id, or a resumed batch would pay for it twice.
    known = {
        "local": "pattern-transfer-90a08563c91b",
        "bfl": "pattern-transfer-5937c5578609",
        "openai": "pattern-transfer-f298182ece3b",
    }
    for backend, job_id in known.items():
        prepared = prepare_job(_spec(), backend_name=backend)
        assert prepared.job_id == job_id
        assert prepared.references == "stitched"
        assert prepared.request.prompt.startswith("Look at the left image and right image.")
        described = prepared.request.describe()
        assert "width" not in described and "more_images" not in described
    assert prepare_job(_spec(references="stitched"), backend_name="local").job_id == known["local"]


def test_modes_and_models_give_different_jobs() -> None:
    ids = {
        prepare_job(_spec(m, references=r), backend_name="bfl").job_id
        for m in ("flux-kontext-pro", "flux-2-pro")
        for r in ("stitched", "separate")
    }
    assert len(ids) == 4


def test_flux2_stitched_sends_the_canvas_at_a_flux2_size() -> None:
    prepared = prepare_job(_spec("flux-2-max", references="stitched"), backend_name="bfl")
    assert prepared.composite is not None and not prepared.request.more_images
    assert prepared.request.prompt.startswith("Look at the left image")
    assert (prepared.request.width, prepared.request.height) == (896, 1200)
    assert prepared.references_sent[0]["name"] == "canvas"


def test_kontext_separate_uses_input_image_2_and_refuses_five(tmp_path: Path) -> None:
    prepared = prepare_job(_spec("flux-kontext-max", references="separate"), backend_name="bfl")
    assert len(prepared.request.more_images) == 1
    assert prepared.request.width is None  # Kontext takes the aspect ratio only
    five = tuple(_jpeg(tmp_path / f"{i}.jpg", (64, 48), (40 * i, 90, 30)) for i in range(5))
    spec = JobSpec(
        recipe=None,
        prompt="combine them",
        sources=five,
        request=RequestOptions(model="flux-kontext-pro", references="separate"),
    )
    with pytest.raises(ConfigError, match="at most 4"):
        prepare_job(spec, backend_name="bfl")


def test_nine_megapixels_shrinks_the_references(tmp_path: Path) -> None:
    # 8 references of 1 MP and a 4 MP output would be 12 MP: each reference shrinks to
    # (9 - 4) / 8 MP, the output keeps its size.
    eight = tuple(_jpeg(tmp_path / f"{i}.jpg", (1024, 1024), (30 * i, 100, 50)) for i in range(8))
    spec = JobSpec(
        recipe=None,
        prompt="combine them",
        sources=eight,
        request=RequestOptions(model="flux-2-pro", megapixels=4.0, aspect_ratio="1:1"),
    )
    prepared = prepare_job(spec, backend_name="bfl")
    assert (prepared.request.width, prepared.request.height) == (2048, 2048)
    sizes = [(r["width"], r["height"]) for r in prepared.references_sent]
    assert len(sizes) == 8
    assert all(w * h <= 5 * MP / 8 for w, h in sizes)
    assert all(w * h > 0.6 * MP for w, h in sizes)
    assert 4 * MP + sum(w * h for w, h in sizes) <= MAX_TOTAL_PIXELS


def test_flex_options_and_bad_values_are_refused_before_sending() -> None:
    flex = prepare_job(_spec("flux-2-flex", steps=30, guidance=4.5), backend_name="bfl")
    assert (flex.request.steps, flex.request.guidance) == (30, 4.5)
    with pytest.raises(ConfigError, match="flux-2-flex only"):
        prepare_job(_spec("flux-2-pro", steps=30), backend_name="bfl")
    with pytest.raises(ConfigError, match="guidance"):
        prepare_job(_spec("flux-2-flex", guidance=11.0), backend_name="bfl")
    with pytest.raises(ConfigError, match="4 MP"):
        prepare_job(_spec("flux-2-pro", megapixels=5.0), backend_name="bfl")
    with pytest.raises(ConfigError, match="0 to 5"):
        prepare_job(_spec("flux-2-pro", safety_tolerance=6), backend_name="bfl")


def test_cli_refusals_are_exit_2_and_send_nothing(tmp_path: Path) -> None:
    five = [_jpeg(tmp_path / f"{i}.jpg", (64, 48), (40 * i, 90, 30)) for i in range(5)]
    with FakeAPI() as api:
        runner = CliRunner()
        env = {"BFL_API_KEY": "k", "NO_PROXY": "127.0.0.1"}
        base = ["--backend", "bfl", "--base-url", api.bfl_base, "-o", str(tmp_path / "o")]
        cases = [
            ["run", *five, "--prompt", "mix", "--model", "flux-kontext-pro",
             "--references", "separate", *base],
            ["run", PATTERN, MODEL, "-r", "pattern-transfer", "--model", "flux-2-pro",
             "--steps", "20", *base],
            ["run", PATTERN, MODEL, "-r", "pattern-transfer", "--model", "flux-2-pro",
             "--megapixels", "6", *base],
        ]  # fmt: skip
        for args in cases:
            result = runner.invoke(cli, args, env=env)
            assert result.exit_code == 2, (args, result.output)
            assert "Traceback" not in result.output
        assert api.submissions == []


# --------------------------------------------------------------------------- end to end


def test_separate_run_on_the_local_backend(tmp_path: Path) -> None:
    spec = _spec("flux-2-pro")
    prepared = prepare_job(spec, backend_name="local")
    outcome = complete_job(prepared, LocalBackend(), tmp_path)
    req = prepared.request
    sent = [req.input_image, *(data for data, _ in req.more_images)]
    assert [p.name for p in outcome.reference_paths] == [
        f"{outcome.job_id}.ref1.jpg",
        f"{outcome.job_id}.ref2.jpg",
    ]
    for path, data in zip(outcome.reference_paths, sent, strict=True):
        assert path.read_bytes() == data  # exactly what the request carried
    assert outcome.canvas_path is None
    assert not list(tmp_path.glob("*.canvas.*"))
    side = json.loads(outcome.sidecar_path.read_text())
    assert side["references"] == "separate"
    assert side["canvas"] is None
    assert [(r["index"], r["name"], r["path"]) for r in side["references_sent"]] == [
        (1, "pattern", f"{outcome.job_id}.ref1.jpg"),
        (2, "target", f"{outcome.job_id}.ref2.jpg"),
    ]
    for ref, path in zip(side["references_sent"], outcome.reference_paths, strict=True):
        assert ref["bytes"] == path.stat().st_size
        with Image.open(path) as im:
            assert im.size == (ref["width"], ref["height"])
    assert side["request_bytes"] == sum(len(d or b"") for d in sent)
    assert side["request"]["width"] == 896 and side["request"]["height"] == 1200
    assert side["output"]["width"] == 896 and side["output"]["height"] == 1200
    assert side["cost_usd"] == 0.0 and side["cost"]["source"] == "estimate"
    # compare ran without a canvas: the output was aligned to the target directly
    assert side["compare"] is not None and "error" not in side["compare"]
    assert side["compare"]["pattern"]["found"] is True


def test_local_notice_says_the_model_only_changes_the_price(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["run", PATTERN, MODEL, "-r", "pattern-transfer", "--model", "flux-2-max",
         "--backend", "local", "--no-compare", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "local preview: the model (flux-2-max) only changes the estimated price" in (
        result.output
    )
    assert len(list(tmp_path.glob("*.ref*.jpg"))) == 2


def test_compare_aligns_a_flux2_sized_output_without_a_canvas() -> None:
    # A 4:3 target and an output at FLUX.2's 4:3 size (1200x896, no Kontext bucket).
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    target = Image.fromarray(small).resize((400, 300), Image.Resampling.BICUBIC)
    w, h = geometry.flux2_size("4:3")
    output = target.resize((w, h), Image.Resampling.BICUBIC)
    aligned = align_output(output, target)
    assert aligned.size == target.size
    assert ssim(np.asarray(aligned), np.asarray(target)) > 0.95


# --------------------------------------------------------------------------- cost truth


def _bfl_run(api: FakeAPI, tmp_path: Path) -> dict[str, object]:
    backend = make_backend("bfl", api_key="k", base_url=api.bfl_base)
    outcome = run_job(_spec("flux-2-pro"), backend, tmp_path, compare=False)
    return outcome.sidecar


def test_sidecar_cost_is_bfl_s_when_the_reply_carries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeAPI() as api:
        api.bfl_cost = {"cost": 7.5, "input_mp": 1.0, "output_mp": 1.03}
        side = _bfl_run(api, tmp_path / "a")
        body = api.of_kind("bfl-submit")[0].json
        assert body is not None and (body["width"], body["height"]) == (896, 1200)
        assert "input_image_2" in body and "aspect_ratio" not in body
    assert side["cost_usd"] == 0.075
    assert side["cost"] == {
        "estimated_usd": 0.06,
        "billed_credits": 7.5,
        "input_mp": 1.0,
        "output_mp": 1.03,
        "source": "provider",
    }


def test_sidecar_cost_is_the_official_formula_for_the_sizes_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeAPI() as api:
        api.bfl_cost = {}  # a reply without cost: the estimate stands
        side = _bfl_run(api, tmp_path / "b")
        # the same job again, billed by the fake's own formula: both agree
        api.bfl_cost = None
        billed = _bfl_run(api, tmp_path / "c")
    refs = side["references_sent"]
    assert isinstance(refs, list)
    out = side["output"]
    assert isinstance(out, dict)
    credits, input_mp, output_mp = flux2_cost(
        "flux-2-pro", out["width"] * out["height"], [r["width"] * r["height"] for r in refs]
    )
    assert side["cost"]["source"] == "estimate"  # type: ignore[index]
    assert side["cost_usd"] == pytest.approx(credits / 100)
    # ours to the pixel; BFL's (the fake's) to 2 decimals
    assert side["cost"]["input_mp"] == pytest.approx(input_mp, abs=0.005)  # type: ignore[index]
    assert side["cost"]["output_mp"] == pytest.approx(output_mp, abs=0.005)  # type: ignore[index]
    assert billed["cost"]["source"] == "provider"  # type: ignore[index]
    assert billed["cost_usd"] == side["cost_usd"]


def test_flux2_batch_resumes_by_polling_the_stored_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job submitted (and billed) whose run died before the result: the next batch polls
    the stored task id, never submits again, and records BFL's cost."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("BFL_API_KEY", "k")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"id,image1,image2\njob-1,{PATTERN},{MODEL}\n")
    out = tmp_path / "out"
    with FakeAPI() as api:
        api.bfl_cost = {"cost": 4.5, "input_mp": 1.0, "output_mp": 1.03}

        class Died(Exception):
            pass

        def die(token: str) -> None:
            tokens.append(token)
            raise Died  # the process dies right after the task is accepted

        tokens: list[str] = []
        backend = make_backend("bfl", api_key="k", base_url=api.bfl_base)
        prepared = prepare_job(_spec("flux-2-pro"), backend_name="bfl")
        with pytest.raises(Died):
            backend.generate(prepared.request, on_submitted=die)
        out.mkdir()
        with Journal.for_outdir(out) as journal:
            journal.ensure("job-1", line=2)
            journal.mark_submitted("job-1", tokens[0], attempts=1)
        assert len(api.of_kind("bfl-submit")) == 1

        result = CliRunner().invoke(
            cli,
            ["batch", str(pairs), "-r", "pattern-transfer", "--model", "flux-2-pro",
             "--seed", "7", "-o", str(out), "--backend", "bfl", "--base-url", api.bfl_base,
             "--no-compare", "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert len(api.of_kind("bfl-submit")) == 1  # polled, never submitted again
        assert len(api.of_kind("bfl-poll")) >= 1
    summary = json.loads(result.stdout)
    assert summary["done"] == 1 and summary["failed"] == 0
    db = sqlite3.connect(out / "journal.sqlite")
    state, cost = db.execute("SELECT state, cost_usd FROM jobs WHERE job_id='job-1'").fetchone()
    db.close()
    assert state == "done"
    assert cost == pytest.approx(0.045)  # BFL's word, carried in the task token
    side = json.loads((out / "job-1.json").read_text())
    assert side["cost"]["source"] == "provider" and side["cost_usd"] == 0.045
    assert side["references"] == "separate"
    assert [p["path"] for p in side["references_sent"]] == ["job-1.ref1.jpg", "job-1.ref2.jpg"]
    # the report shows each reference as a source, with no canvas to cut them from
    assert (out / "thumbs" / "job-1.src1.jpg").exists() and (
        out / "thumbs" / "job-1.src2.jpg"
    ).exists()


def test_a_separate_output_in_another_frame_is_not_measured(tmp_path: Path) -> None:
    # 16:9 asked for a 3:4 target, and no canvas to cut from: compare says it cannot align
    # rather than measuring a squashed picture (a false pass is the worst outcome).
    outcome = run_job(_spec("flux-2-pro", aspect_ratio="16:9"), LocalBackend(), tmp_path)
    metrics = outcome.sidecar["compare"]
    assert outcome.sidecar["output"]["width"] == 1392 and outcome.sidecar["output"]["height"] == 784
    assert "cannot be aligned" in metrics["error"]
    assert metrics["passed"] is None and outcome.checks_passed is None


def test_a_recipe_may_choose_separate_references(tmp_path: Path) -> None:
    recipe = load_recipe("pattern-transfer").to_dict()
    recipe["request"]["references"] = "separate"
    recipe["request"]["reference_megapixels"] = 0.25
    path = tmp_path / "mine.toml"
    path.write_text(to_toml(recipe), encoding="utf-8")
    spec = JobSpec(recipe=load_recipe(path), sources=(PATTERN, MODEL))
    prepared = prepare_job(spec, backend_name="bfl")  # Kontext, separate by the recipe
    assert prepared.references == "separate" and prepared.request.width is None
    assert prepared.request.prompt.startswith("Transfer the pattern/design from image 1")
    assert all(r["width"] * r["height"] <= MP // 4 for r in prepared.references_sent)
    # the flag beats the recipe
    flagged = JobSpec(
        recipe=load_recipe(path),
        sources=(PATTERN, MODEL),
        request=RequestOptions(references="stitched"),
    )
    assert prepare_job(flagged, backend_name="bfl").references == "stitched"


def test_dry_run_text_shows_size_and_references() -> None:
    result = CliRunner().invoke(
        cli,
        ["run", PATTERN, MODEL, "-r", "pattern-transfer", "--model", "flux-2-flex",
         "--steps", "28", "--backend", "local", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for line in (
        "size:              896x1200",
        "steps:             28",
        "references:        separate",
        "reference 1:       pattern: 512x512",
        "reference 2:       target: 768x1024",
    ):
        assert line in result.output
    assert "input_image_2:" in result.output


def test_typical_price_before_reading_images() -> None:
    recipe = load_recipe("pattern-transfer")

    def price(model: str, backend: str, **kw: object) -> float:
        spec = JobSpec(recipe=recipe, request=RequestOptions(model=model, **kw))  # type: ignore[arg-type]
        return typical_price(spec, backend, 2)

    assert price("flux-kontext-pro", "bfl") == 0.04  # per call
    assert price("flux-kontext-pro", "openai") == 0.035
    # 1 MP out + two 1 MP references = 3 MP: $0.03 + 2 x $0.015
    assert price("flux-2-pro", "bfl") == pytest.approx(0.06)
    # stitched: one 1 MP canvas = 2 MP
    assert price("flux-2-pro", "bfl", references="stitched") == pytest.approx(0.045)
    assert price("flux-2-max", "local") == 0.0


def test_flux2_writes_webp_and_kontext_refuses_it_before_sending(tmp_path: Path) -> None:
    outcome = run_job(_spec("flux-2-pro", output_format="webp"), LocalBackend(), tmp_path)
    head = outcome.output_path.read_bytes()[:12]
    assert head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    assert outcome.output_path.suffix == ".webp"
    with pytest.raises(ConfigError, match="flux-kontext-pro writes png, jpeg"):
        prepare_job(_spec("flux-kontext-pro", output_format="webp"), backend_name="local")
