"""End to end: ``fluxcompose run`` (one job) against the local backend and a fake API.

Every hosted case talks to the fake server in :mod:`tests.fakeapi` on 127.0.0.1
and checks what it *received* (paths, headers, fields, the decoded canvas)
against expectations written here from DESIGN.md sections 4-6, not from the
code under test. The CLI is driven through click's CliRunner, plus one real
subprocess of the ``fluxcompose`` console script.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image, ImageOps

import fluxcompose.backends.bfl as bfl_mod
import fluxcompose.run as run_mod
from fluxcompose.cli import cli
from tests.fakeapi import FakeAPI, Scripted, render_result
from tests.hermetic import API_ENV_PREFIXES

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PATTERN = SAMPLES / "pattern.png"  # 512x512 RGBA
MODEL = SAMPLES / "model.jpg"  # stored 1024x768 with EXIF orientation 6: upright 768x1024
STYLE = SAMPLES / "style.jpg"

# Distinctive keys: any echo of them, whole or in part, is easy to find.
KEY = "sk-fctest-Zq8DoNotLeakOpenAI4f1c9a7e"
BFL_KEY = "bfl-fctest-Wx3DoNotLeakBFL0c9e8d7a"
SECRET_CORES = ("DoNotLeakOpenAI", "DoNotLeakBFL")

# The pattern-transfer template, copied from DESIGN.md section 4 (an independent expectation).
PT_TEMPLATE = (
    "Look at the left image and right image. Transfer the pattern/design from the left image to "
    "the clothes of the model in the right image, with the size being {size} of the width of the "
    "chest, located in the {placement}. Make it look natural and well-integrated."
)
PT_PROMPT = PT_TEMPLATE.format(size="2/3", placement="middle")

# Kontext buckets (DESIGN.md section 2) that the fake server and the local backend snap to.
BUCKET_3_4 = (880, 1184)
BUCKET_16_9 = (1392, 752)
BUCKET_1_1 = (1024, 1024)


def clear_env(mp: pytest.MonkeyPatch) -> None:
    """Remove every variable that could choose a backend, a key or a URL."""
    for name in list(os.environ):
        if name.startswith(API_ENV_PREFIXES):
            mp.delenv(name)
    # Set (not just deleted) so monkeypatch restores it even if --debug sets it.
    mp.setenv("FLUXCOMPOSE_DEBUG", "0")
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    mp.setenv("no_proxy", "127.0.0.1,localhost")


def fast_waits(mp: pytest.MonkeyPatch) -> None:
    """Retry back-off and BFL polling in hundredths of a second, not seconds."""
    mp.setattr(run_mod, "BACKOFF_BASE", 0.01)
    mp.setattr(run_mod, "RETRY_AFTER_DEFAULT", 0.05)
    mp.setattr(bfl_mod, "FAST_POLL_S", 0.01)


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user configuration leaks in, and no test waits for real back-off."""
    clear_env(monkeypatch)
    fast_waits(monkeypatch)


# --------------------------------------------------------------------------- helpers


def invoke(*args: object) -> Result:
    """Run ``fluxcompose ARGS`` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error(result: Result, code: int) -> str:
    """Assert exit ``code`` and exactly one error line, the last on stderr, without a traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("fluxcompose: error:")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0], result.stderr
    return errors[0]


def files_in(outdir: Path) -> set[str]:
    """Names of every file under ``outdir`` (hidden temporaries included); empty if absent."""
    if not outdir.exists():
        return set()
    return {str(p.relative_to(outdir)) for p in outdir.rglob("*") if p.is_file()}


def assert_no_secret(result: Result, outdir: Path, *keys: str) -> None:
    """No key, nor its distinctive core, in stdout, stderr or any file under ``outdir``."""
    needles = [*keys, *SECRET_CORES]
    for needle in needles:
        assert needle not in result.stdout
        assert needle not in result.stderr
    if outdir.exists():
        for path in outdir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for needle in needles:
                    assert needle.encode() not in data, f"{needle} leaked into {path.name}"


def pixels(source: bytes | Path) -> np.ndarray:
    """RGB pixels of an encoded image (bytes or a file)."""
    data = source.read_bytes() if isinstance(source, Path) else source
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def use_openai(api: FakeAPI, mp: pytest.MonkeyPatch) -> None:
    """Configure the openai backend by environment only (the key also selects it)."""
    api.api_key = KEY
    mp.setenv("FLUXCOMPOSE_API_KEY", KEY)
    mp.setenv("FLUXCOMPOSE_BASE_URL", api.openai_base)


def use_bfl(api: FakeAPI, mp: pytest.MonkeyPatch) -> None:
    """Configure the bfl backend by environment only (the key also selects it)."""
    api.api_key = BFL_KEY
    mp.setenv("BFL_API_KEY", BFL_KEY)
    mp.setenv("BFL_BASE_URL", api.bfl_base)


def use(backend: str, api: FakeAPI, mp: pytest.MonkeyPatch) -> str:
    """Configure ``backend`` and return its key."""
    if backend == "openai":
        use_openai(api, mp)
        return KEY
    use_bfl(api, mp)
    return BFL_KEY


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB").resize(a.size, Image.Resampling.LANCZOS), dtype=np.float64)
    return float(np.abs(x - y).mean())


def console_script() -> str:
    """The installed ``fluxcompose`` entry point."""
    found = shutil.which("fluxcompose") or str(Path(sys.executable).parent / "fluxcompose")
    assert Path(found).exists(), "the fluxcompose console script is not installed"
    return found


def subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(API_ENV_PREFIXES)} | {
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


# --------------------------------------------------------------------------- local backend


@dataclass
class LocalRuns:
    first: Result
    out1: Path
    second: subprocess.CompletedProcess[str]
    out2: Path


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuns]:
    """The samples through the local backend twice with the same seed: once in-process
    (with compare), once as a real subprocess of the console script (without)."""
    with pytest.MonkeyPatch.context() as mp:
        clear_env(mp)
        out1 = tmp_path_factory.mktemp("local1") / "out"
        first = invoke(
            "run", PATTERN, MODEL, "-r", "pattern-transfer", "-o", out1, "--seed", "7", "--json"
        )
        out2 = tmp_path_factory.mktemp("local2") / "out"
        second = subprocess.run(
            [
                console_script(),
                "run",
                str(PATTERN),
                str(MODEL),
                "--recipe",
                "pattern-transfer",
                "--outdir",
                str(out2),
                "--seed",
                "7",
                "--no-compare",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=subprocess_env(),
            check=False,
        )
        yield LocalRuns(first, out1, second, out2)


def test_local_run_writes_the_four_outputs(local_runs: LocalRuns) -> None:
    r = local_runs.first
    assert r.exit_code == 0, r.stderr
    sidecar = json.loads(r.stdout)  # stdout is the sidecar and nothing else
    job = sidecar["job_id"]
    assert job.startswith("pattern-transfer-")
    assert files_in(local_runs.out1) == {
        f"{job}.png",
        f"{job}.canvas.jpg",
        f"{job}.sheet.png",
        f"{job}.json",
    }
    assert json.loads((local_runs.out1 / f"{job}.json").read_text()) == sidecar
    # The result follows the recipe's match:target rule: upright model.jpg is 3:4.
    assert image_size(local_runs.out1 / f"{job}.png") == BUCKET_3_4
    with Image.open(local_runs.out1 / f"{job}.sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 0


def test_local_run_stderr_names_backend_model_price_and_preview(local_runs: LocalRuns) -> None:
    lines = local_runs.first.stderr.splitlines()
    first = lines[0]
    assert "local" in first and "flux-kontext-pro" in first and "$0.000" in first
    assert any("preview" in line for line in lines)
    assert not any(line.startswith("fluxcompose: error") for line in lines)


def test_local_sidecar_provenance(local_runs: LocalRuns) -> None:
    sidecar = json.loads(local_runs.first.stdout)
    job = sidecar["job_id"]
    out = local_runs.out1
    assert sidecar["recipe"]["name"] == "pattern-transfer"
    assert sidecar["prompt"] == PT_PROMPT
    assert sidecar["backend"] == "local"
    assert sidecar["model"] == "flux-kontext-pro"
    assert sidecar["seed"] == 7
    assert sidecar["cost_usd"] == 0
    canvas_path = out / f"{job}.canvas.jpg"
    req = sidecar["request"]
    assert req["prompt"] == PT_PROMPT
    assert req["model"] == "flux-kontext-pro"
    assert req["aspect_ratio"] == "3:4"
    assert req["seed"] == 7
    assert req["safety_tolerance"] == 2
    assert req["output_format"] == "png"
    assert req["prompt_upsampling"] is False
    # The image is elided, and the elided size is that of the canvas written.
    assert req["input_image"] == f"<image/jpeg, {canvas_path.stat().st_size} bytes>"

    pattern, target = sidecar["sources"]
    for entry, path, upright, orientation in (
        (pattern, PATTERN, (512, 512), 1),
        (target, MODEL, (768, 1024), 6),
    ):
        assert entry["sha256"] == sha256(path)
        assert entry["bytes"] == path.stat().st_size
        assert (entry["width"], entry["height"]) == upright
        assert entry["orientation"] == orientation
    assert (pattern["name"], target["name"]) == ("pattern", "target")

    result = out / f"{job}.png"
    assert sidecar["output"]["sha256"] == sha256(result)
    assert (sidecar["output"]["width"], sidecar["output"]["height"]) == BUCKET_3_4
    assert sidecar["sheet"] == f"{job}.sheet.png"
    timings = sidecar["timings"]
    for key in ("prepare_s", "generate_s", "download_s", "finish_s"):
        assert isinstance(timings[key], int | float) and timings[key] >= 0


def test_local_canvas_layout_and_pixels(local_runs: LocalRuns) -> None:
    sidecar = json.loads(local_runs.first.stdout)
    canvas = sidecar["canvas"]
    path = local_runs.out1 / canvas["path"]
    width, height = image_size(path)
    assert (canvas["width"], canvas["height"]) == (width, height)
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width * height / 2**20 - 1.0) <= 0.05
    assert canvas["layout"] == "horizontal"
    # [pattern 1:1 | target 3:4] with matched heights is 7:4, inside 3:7..7:3: no padding.
    assert canvas["aspect_ratio"] == "7:4"
    c0, c1 = canvas["cells"]
    assert (c0["x"], c0["y"], c1["y"]) == (0, 0, 0)
    assert c0["h"] == c1["h"] == height
    assert c1["x"] == c0["w"] and c0["w"] + c1["w"] == width
    assert abs(c0["w"] - c0["h"]) <= 1
    assert abs(c1["w"] - 0.75 * c1["h"]) <= 1
    assert c1["orientation_applied"] == 6

    with Image.open(path) as im:
        im.load()
        cell0 = im.crop((c0["x"], c0["y"], c0["x"] + c0["w"], c0["y"] + c0["h"]))
        cell1 = im.crop((c1["x"], c1["y"], c1["x"] + c1["w"], c1["y"] + c1["h"]))
    with Image.open(PATTERN) as p:
        flat = Image.new("RGB", p.size, (255, 255, 255))
        flat.paste(p, mask=p.getchannel("A"))
    assert mean_abs_diff(cell0, flat) < 4
    with Image.open(MODEL) as m:
        upright = ImageOps.exif_transpose(m)
        stored = m.convert("RGB")
    # The target cell is the photo upright, not as stored.
    assert mean_abs_diff(cell1, upright) < 4
    assert mean_abs_diff(cell1, stored) > 4 * mean_abs_diff(cell1, upright)


def test_local_compare_metrics_and_checks(local_runs: LocalRuns) -> None:
    sidecar = json.loads(local_runs.first.stdout)
    metrics = sidecar["compare"]
    assert -1 <= metrics["ssim"] <= 1
    assert 0 <= metrics["edit_region"]["area_fraction"] <= 1
    # The preview put the print at the recipe's 2/3 of the chest's width, in its middle
    # (DESIGN.md section 10): the sample's headless shot is found by the pose model.
    assert metrics["subject"]["found"] is True and metrics["subject"]["method"] == "pose"
    pattern = metrics["pattern"]
    assert pattern["found"] is True and pattern["relative_to"] == "chest"
    assert pattern["width_fraction"] == pytest.approx(2 / 3, abs=0.05)
    assert max(abs(v) for v in pattern["center_offset"]) < 0.05
    assert pattern["on_garment"] > 0.95
    checks = sidecar["checks"]
    assert set(checks) == {
        "pattern_found",
        "pattern_width_fraction",
        "pattern_placement",
        "pattern_on_garment",
        "target_ssim_outside_edit",
        "target_ssim_outside_garment",
    }
    assert all(c["pass"] is True for c in checks.values())
    assert sidecar["passed"] is True
    assert local_runs.first.stderr.splitlines()[-1] == "recipe checks passed"


def test_same_seed_same_job_and_bytes_in_a_real_process(local_runs: LocalRuns) -> None:
    proc = local_runs.second
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    first = json.loads(local_runs.first.stdout)
    second = json.loads(proc.stdout)
    job = first["job_id"]
    assert second["job_id"] == job
    assert second["compare"] is None and second["sheet"] is None  # --no-compare
    assert files_in(local_runs.out2) == {f"{job}.png", f"{job}.canvas.jpg", f"{job}.json"}
    for name in (f"{job}.png", f"{job}.canvas.jpg"):
        assert (local_runs.out1 / name).read_bytes() == (local_runs.out2 / name).read_bytes()
    assert "local" in proc.stderr and "preview" in proc.stderr


def test_dry_run_predicts_the_job_id_and_other_seeds_differ(local_runs: LocalRuns) -> None:
    job = json.loads(local_runs.first.stdout)["job_id"]
    base = ["run", PATTERN, MODEL, "-r", "pattern-transfer", "--dry-run", "--json"]
    same = invoke(*base, "--seed", "7")
    other = invoke(*base, "--seed", "8")
    assert same.exit_code == 0 and other.exit_code == 0
    assert json.loads(same.stdout)["job_id"] == job
    assert json.loads(other.stdout)["job_id"] != job


# --------------------------------------------------------------------------- openai backend


OPENAI_FIELDS = {
    "model",
    "prompt",
    "n",
    "aspect_ratio",
    "safety_tolerance",
    "output_format",
    "prompt_upsampling",
}


@pytest.mark.parametrize(
    ("transport", "reply", "extra", "want"),
    [
        pytest.param("generations", "url", [], {}, id="generations-url"),
        pytest.param(
            "generations",
            "b64_json",
            [
                "--seed",
                "42",
                "--safety-tolerance",
                "5",
                "--prompt-upsampling",
                "--model",
                "flux-kontext-max",
                "--var",
                "placement=upper left",
            ],
            {
                "seed": 42,
                "safety_tolerance": 5,
                "prompt_upsampling": True,
                "model": "flux-kontext-max",
                "placement": "upper left",
            },
            id="generations-b64-overrides",
        ),
        pytest.param("edits", "url", ["--seed", "0"], {"seed": 0}, id="edits-url-seed0"),
        pytest.param(
            "edits",
            "b64_json",
            ["--output-format", "jpeg"],
            {"output_format": "jpeg"},
            id="edits-b64-jpeg",
        ),
    ],
)
def test_openai_run_sends_the_contract_request(
    fake_api: FakeAPI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    transport: str,
    reply: str,
    extra: list[str],
    want: dict[str, Any],
) -> None:
    use_openai(fake_api, monkeypatch)
    fake_api.reply_as = reply
    out = tmp_path / "out"
    r = invoke(
        "run",
        PATTERN,
        MODEL,
        "-r",
        "pattern-transfer",
        "-o",
        out,
        "--transport",
        transport,
        "--no-compare",
        "--json",
        *extra,
    )
    assert r.exit_code == 0, r.stderr
    exp: dict[str, Any] = {
        "model": "flux-kontext-pro",
        "seed": None,
        "safety_tolerance": 2,
        "output_format": "png",
        "prompt_upsampling": False,
        "placement": "middle",
    } | want
    prompt = PT_TEMPLATE.format(size="2/3", placement=exp["placement"])

    subs = fake_api.submissions
    assert len(subs) == 1
    assert not fake_api.of_kind("unknown")
    rec = subs[0]
    assert rec.method == "POST" and rec.path == f"/v1/images/{transport}"
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    fields = OPENAI_FIELDS | ({"seed"} if exp["seed"] is not None else set())
    if transport == "generations":
        body = rec.json
        assert set(body) == fields | {"input_image"}
        assert body["input_image"].startswith("data:image/jpeg;base64,")
        assert body["model"] == exp["model"]
        assert body["prompt"] == prompt
        assert body["n"] == 1
        assert body["aspect_ratio"] == "3:4"
        assert body["safety_tolerance"] == exp["safety_tolerance"]
        assert body["output_format"] == exp["output_format"]
        assert body["prompt_upsampling"] is exp["prompt_upsampling"]
        assert body.get("seed") == exp["seed"]
    else:
        form = rec.form
        assert set(form) == fields
        assert set(rec.files) == {"image"}
        assert rec.files["image"][1] == "image/jpeg"
        assert form["model"] == exp["model"]
        assert form["prompt"] == prompt
        assert form["n"] == "1"
        assert form["aspect_ratio"] == "3:4"
        assert form["safety_tolerance"] == str(exp["safety_tolerance"])
        assert form["output_format"] == exp["output_format"]
        assert form["prompt_upsampling"] == str(exp["prompt_upsampling"]).lower()
        if exp["seed"] is not None:
            assert form["seed"] == str(exp["seed"])

    sidecar = json.loads(r.stdout)
    job = sidecar["job_id"]
    ext = "jpg" if exp["output_format"] == "jpeg" else "png"  # by magic bytes
    assert files_in(out) == {f"{job}.{ext}", f"{job}.canvas.jpg", f"{job}.json"}
    # The server got exactly the canvas that was written...
    assert rec.image is not None
    assert np.array_equal(pixels(rec.image), pixels(out / f"{job}.canvas.jpg"))
    # ...and the result on disk is exactly what it served.
    served = render_result(rec.image, "3:4", exp["output_format"], prompt)
    assert (out / f"{job}.{ext}").read_bytes() == served
    downloads = fake_api.of_kind("result")
    assert len(downloads) == (1 if reply == "url" else 0)
    for d in downloads:  # the result host never sees the key
        assert "authorization" not in d.headers and "x-key" not in d.headers

    price = 0.07 if exp["model"] == "flux-kontext-max" else 0.035
    assert sidecar["backend"] == "openai"
    assert sidecar["model"] == exp["model"]
    assert sidecar["seed"] == exp["seed"]
    assert sidecar["prompt"] == prompt
    assert sidecar["cost_usd"] == pytest.approx(price)
    assert sidecar["request"]["aspect_ratio"] == "3:4"
    assert sidecar["compare"] is None
    notice = r.stderr.splitlines()[0]
    assert "openai" in notice and exp["model"] in notice and f"${price:.3f}" in notice
    assert "preview" not in r.stderr
    assert_no_secret(r, out, KEY)


def test_openai_flags_override_environment(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--backend/--api-key/--base-url win over the environment (here: a BFL key)."""
    fake_api.api_key = KEY
    monkeypatch.setenv("BFL_API_KEY", BFL_KEY)
    monkeypatch.setenv("FLUXCOMPOSE_BASE_URL", "http://127.0.0.1:9/never")
    out = tmp_path / "out"
    r = invoke(
        "run",
        "--prompt",
        "a fox",
        "-o",
        out,
        "--backend",
        "openai",
        "--api-key",
        KEY,
        "--base-url",
        fake_api.openai_base,
    )
    assert r.exit_code == 0, r.stderr
    (rec,) = fake_api.submissions
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert "x-key" not in rec.headers
    assert_no_secret(r, out, KEY, BFL_KEY)


# --------------------------------------------------------------------------- bfl backend


@pytest.mark.parametrize(
    ("extra", "model", "seed", "price"),
    [
        pytest.param([], "flux-kontext-pro", None, 0.04, id="pro"),
        pytest.param(
            ["--model", "flux-kontext-max", "--seed", "9"],
            "flux-kontext-max",
            9,
            0.08,
            id="max-seed",
        ),
    ],
)
def test_bfl_run_submits_polls_and_downloads(
    fake_api: FakeAPI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: list[str],
    model: str,
    seed: int | None,
    price: float,
) -> None:
    use_bfl(fake_api, monkeypatch)
    fake_api.pending_polls = 3
    out = tmp_path / "out"
    r = invoke(
        "run", PATTERN, MODEL, "-r", "pattern-transfer", "-o", out, "--no-compare", "--json", *extra
    )
    assert r.exit_code == 0, r.stderr

    (rec,) = fake_api.submissions
    assert rec.method == "POST" and rec.path == f"/v1/{model}"
    assert rec.headers["x-key"] == BFL_KEY
    assert "authorization" not in rec.headers
    body = rec.json
    want = {
        "prompt",
        "input_image",
        "aspect_ratio",
        "output_format",
        "prompt_upsampling",
        "safety_tolerance",
    } | ({"seed"} if seed is not None else set())
    assert set(body) == want
    assert body["prompt"] == PT_PROMPT
    assert not body["input_image"].startswith("data:")
    raw = base64.b64decode(body["input_image"], validate=True)
    assert body["aspect_ratio"] == "3:4"
    assert body["output_format"] == "png"
    assert body["prompt_upsampling"] is False
    assert body["safety_tolerance"] == 2
    assert body.get("seed") == seed

    polls = fake_api.of_kind("bfl-poll")
    assert len(polls) == 4  # three Pending, then Ready
    assert all(p.headers.get("x-key") == BFL_KEY for p in polls)
    task_id = polls[0].query["id"]
    downloads = fake_api.of_kind("result")
    assert len(downloads) == 1
    assert "x-key" not in downloads[0].headers

    sidecar = json.loads(r.stdout)
    job = sidecar["job_id"]
    assert files_in(out) == {f"{job}.png", f"{job}.canvas.jpg", f"{job}.json"}
    assert np.array_equal(pixels(raw), pixels(out / f"{job}.canvas.jpg"))
    assert (out / f"{job}.png").read_bytes() == render_result(raw, "3:4", "png", PT_PROMPT)
    assert sidecar["backend"] == "bfl"
    assert sidecar["model"] == model
    assert sidecar["cost_usd"] == pytest.approx(price)
    assert sidecar["task_id"] == task_id  # the id only, never the polling URL
    notice = r.stderr.splitlines()[0]
    assert "bfl" in notice and model in notice and f"${price:.3f}" in notice
    assert_no_secret(r, out, BFL_KEY)


# --------------------------------------------------------------------------- text-to-image, one image


@pytest.mark.parametrize("backend", ["openai", "bfl"])
@pytest.mark.parametrize(
    ("ratio", "sent", "size"),
    [(None, "1:1", BUCKET_1_1), ("16:9", "16:9", BUCKET_16_9)],
)
def test_text_to_image_sends_no_image(
    fake_api: FakeAPI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    backend: str,
    ratio: str | None,
    sent: str,
    size: tuple[int, int],
) -> None:
    key = use(backend, fake_api, monkeypatch)
    out = tmp_path / "out"
    extra = [] if ratio is None else ["--aspect-ratio", ratio]
    r = invoke("run", "--prompt", "a fox", "-o", out, "--json", *extra)
    assert r.exit_code == 0, r.stderr
    (rec,) = fake_api.submissions
    if backend == "openai":
        assert rec.path == "/v1/images/generations"
    assert "input_image" not in rec.json
    assert rec.json["prompt"] == "a fox"
    assert rec.json["aspect_ratio"] == sent
    sidecar = json.loads(r.stdout)
    job = sidecar["job_id"]
    assert files_in(out) == {f"{job}.png", f"{job}.json"}
    assert image_size(out / f"{job}.png") == size
    assert sidecar["sources"] == [] and sidecar["canvas"] is None
    assert sidecar["request"]["input_image"] is None
    assert_no_secret(r, out, key)


def test_single_image_edit_keeps_the_image_ratio(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_openai(fake_api, monkeypatch)
    out = tmp_path / "out"
    r = invoke(
        "run",
        MODEL,
        "--prompt",
        "make it a watercolour painting",
        "-o",
        out,
        "--no-compare",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    (rec,) = fake_api.submissions
    assert rec.json["prompt"] == "make it a watercolour painting"
    assert rec.json["aspect_ratio"] == "3:4"  # upright model.jpg, after EXIF orientation
    sidecar = json.loads(r.stdout)
    job = sidecar["job_id"]
    assert image_size(out / f"{job}.png") == BUCKET_3_4
    canvas = out / f"{job}.canvas.jpg"
    assert np.array_equal(pixels(rec.image), pixels(canvas))
    cw, ch = image_size(canvas)
    assert abs(cw / ch - 0.75) < 0.02
    with Image.open(MODEL) as m, Image.open(canvas) as c:
        assert mean_abs_diff(c, ImageOps.exif_transpose(m)) < 4
    assert_no_secret(r, out, KEY)


def test_result_extension_comes_from_magic_bytes(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A JPEG served as image/png for a png request is still written as .jpg."""
    use_openai(fake_api, monkeypatch)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, format="JPEG")
    fake_api.result_content = buf.getvalue()
    fake_api.result_content_type = "image/png"
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out, "--output-format", "png", "--json")
    assert r.exit_code == 0, r.stderr
    sidecar = json.loads(r.stdout)
    job = sidecar["job_id"]
    assert files_in(out) == {f"{job}.jpg", f"{job}.json"}
    assert (out / f"{job}.jpg").read_bytes() == buf.getvalue()
    assert sidecar["output"]["format"] == "jpeg"


# --------------------------------------------------------------------------- failures (exit 1)


@pytest.mark.parametrize(
    ("backend", "status"), [("openai", 410), ("openai", 403), ("openai", 404), ("bfl", 410)]
)
def test_expired_result_link(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str, status: int
) -> None:
    key = use(backend, fake_api, monkeypatch)
    fake_api.link_ttl = -1.0  # every link is already older than its lifetime
    fake_api.expired_status = status
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out, "--json")
    line = one_error(r, 1)
    assert "expired" in line
    assert r.stdout == ""
    assert len(fake_api.submissions) == 1
    assert len(fake_api.of_kind("result")) == 1  # an expired link is not tried again
    assert files_in(out) == set()  # no result, and no partial download left behind
    assert_no_secret(r, out, key)


@pytest.mark.parametrize(
    ("backend", "setting"),
    [
        ("openai", "content_policy_violation"),
        ("openai", None),  # a gateway that says so only in the message
        ("bfl", "Request Moderated"),
        ("bfl", "Content Moderated"),
    ],
)
def test_moderated(
    fake_api: FakeAPI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    backend: str,
    setting: str | None,
) -> None:
    key = use(backend, fake_api, monkeypatch)
    fake_api.moderate_substring = "forbidden"
    if backend == "openai":
        fake_api.openai_moderation_code = setting
    else:
        assert setting is not None
        fake_api.bfl_moderation_status = setting
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a forbidden fox", "-o", out)
    line = one_error(r, 1)
    assert "moderat" in line.lower()
    assert len(fake_api.submissions) == 1  # moderation is never retried
    assert files_in(out) == set()
    assert_no_secret(r, out, key)


@pytest.mark.parametrize("backend", ["openai", "bfl"])
def test_rejected_key_is_exit_1_and_never_echoed(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str
) -> None:
    key = use(backend, fake_api, monkeypatch)
    fake_api.api_key = "the-right-key"  # ours is wrong; the fake echoes what it got
    out = tmp_path / "out"
    r = invoke("run", PATTERN, MODEL, "-r", "pattern-transfer", "-o", out, "--json")
    line = one_error(r, 1)
    assert "key" in line.lower() and "401" in line
    assert len(fake_api.submissions) == 1
    assert_no_secret(r, out, key)


def test_bfl_insufficient_credits(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_bfl(fake_api, monkeypatch)
    fake_api.force_status = 402
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    line = one_error(r, 1)
    assert "insufficient credits" in line.lower() and "402" in line
    assert len(fake_api.submissions) == 1  # not retried
    assert_no_secret(r, out, BFL_KEY)


@pytest.mark.parametrize("status", ["Error", "Task not found"])
def test_bfl_failed_task(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: str
) -> None:
    use_bfl(fake_api, monkeypatch)
    fake_api.bfl_final_status = status
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    line = one_error(r, 1)
    assert status in line
    assert len(fake_api.submissions) == 1


def test_result_that_is_not_an_image(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_openai(fake_api, monkeypatch)
    fake_api.result_content = b"<html><body>Sign in</body></html>"
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    line = one_error(r, 1)
    assert "not an image" in line
    assert files_in(out) == set()


@pytest.mark.parametrize("backend", ["openai", "bfl"])
def test_server_errors_are_retried_then_succeed(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str
) -> None:
    key = use(backend, fake_api, monkeypatch)
    fake_api.script(500, 502)
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    assert [s.status for s in fake_api.submissions] == [500, 502, 200]
    assert sum(line.startswith("attempt ") for line in r.stderr.splitlines()) == 2
    job = json.loads(r.stdout)["job_id"]
    assert files_in(out) == {f"{job}.png", f"{job}.json"}
    assert_no_secret(r, out, key)


def test_rate_limit_honours_retry_after(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_openai(fake_api, monkeypatch)
    fake_api.script(Scripted(429, retry_after="0.1"))
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert [s.status for s in fake_api.submissions] == [429, 200]
    assert "retrying in 0.1s" in r.stderr


def test_failing_download_is_retried_but_never_paid_twice(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_openai(fake_api, monkeypatch)
    fake_api.result_status = 500
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    line = one_error(r, 1)
    assert "500" in line
    assert len(fake_api.submissions) == 1
    assert len(fake_api.of_kind("result")) == 3
    assert files_in(out) == set()


def test_persistent_server_error_gives_up_after_four_attempts(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_openai(fake_api, monkeypatch)
    fake_api.force_status = 500
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    line = one_error(r, 1)
    assert "500" in line
    assert len(fake_api.submissions) == 4
    assert files_in(out) == set()


def test_unreachable_server_is_exit_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    r = invoke(
        "run",
        "--prompt",
        "a fox",
        "-o",
        out,
        "--backend",
        "openai",
        "--api-key",
        KEY,
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
    )
    line = one_error(r, 1)
    assert "could not reach" in line
    assert_no_secret(r, out, KEY)


@pytest.mark.parametrize("backend", ["openai", "bfl"])
def test_multi_line_server_message_is_still_one_line(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str
) -> None:
    use(backend, fake_api, monkeypatch)
    fake_api.force_status = 400
    fake_api.error_message = "bad request\nsecond line of the server's text"
    r = invoke("run", "--prompt", "a fox", "-o", tmp_path / "out")
    line = one_error(r, 1)
    assert "second line" in line


def test_text_to_image_with_a_recipe_defaults_to_square(tmp_path: Path) -> None:
    """A recipe's match:/canvas rule has no image to follow without sources: 1:1."""
    from fluxcompose.recipes import load_recipe
    from fluxcompose.run import JobSpec, prepare_job

    spec = JobSpec(recipe=load_recipe("pattern-transfer"), prompt="a red fox in snow")
    prepared = prepare_job(spec, backend_name="local")
    assert prepared.request.aspect_ratio == "1:1"
    assert prepared.request.input_image is None


def test_a_compare_failure_keeps_the_result_and_the_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generation is paid for: a bug in measuring it must not lose the sidecar."""
    import fluxcompose.compare as compare_mod
    from fluxcompose.backends import make_backend
    from fluxcompose.recipes import load_recipe
    from fluxcompose.run import JobSpec, run_job

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(compare_mod, "compare", broken)
    spec = JobSpec(
        recipe=load_recipe("pattern-transfer"),
        sources=(str(SAMPLES / "pattern.png"), str(SAMPLES / "model.jpg")),
    )
    outcome = run_job(spec, make_backend("local"), tmp_path)
    assert outcome.output_path.is_file()
    sidecar = json.loads(outcome.sidecar_path.read_text())
    assert sidecar["compare"]["error"] == "compare failed: RuntimeError: boom"
    assert sidecar["passed"] is None
