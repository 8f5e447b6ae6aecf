"""CLI glue around ``fluxcompose run``: bad input, --dry-run, backend choice, --strict,
and the ``cost`` and ``recipes`` commands (DESIGN.md sections 4-7).

Bad input must exit 2 with one line and write nothing; the key environment
must be exactly the documented one (never OPENAI_API_KEY).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fakeapi import FakeAPI
from tests.test_run import (  # noqa: F401 - `hermetic` is an autouse fixture, used by name
    BFL_KEY,
    KEY,
    MODEL,
    PATTERN,
    PT_PROMPT,
    STYLE,
    assert_no_secret,
    console_script,
    files_in,
    hermetic,
    invoke,
    one_error,
    subprocess_env,
    use_openai,
)

# --------------------------------------------------------------------------- bad input (exit 2)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BAD_INPUT: list[Any] = [
    pytest.param(
        ["-r", "no-such-recipe", PATTERN, MODEL], {}, "no-such-recipe", id="unknown-recipe"
    ),
    pytest.param(["-r", "{bad_toml}", PATTERN, MODEL], {}, "invalid TOML", id="malformed-recipe"),
    pytest.param(
        ["-r", "pattern-transfer", "--var", "colour=red", PATTERN, MODEL],
        {},
        "colour",
        id="unknown-var",
    ),
    pytest.param(
        ["-r", "pattern-transfer", "--var", "novalue", PATTERN, MODEL],
        {},
        "novalue",
        id="var-without-equals",
    ),
    pytest.param(
        ["--prompt", "a fox", "--safety-tolerance", "7"], {}, "safety-tolerance", id="safety-7"
    ),
    pytest.param(["--prompt", "a fox", "--aspect-ratio", "1:9"], {}, "1:9", id="ratio-1:9"),
    pytest.param(["--prompt", "a fox", "--aspect-ratio", "abc"], {}, "abc", id="ratio-abc"),
    pytest.param(
        ["-r", "pattern-transfer", "--aspect-ratio", "match:nobody", PATTERN, MODEL],
        {},
        "nobody",
        id="match-unknown-source",
    ),
    pytest.param(
        ["--prompt", "a fox", "--aspect-ratio", "canvas"], {}, "canvas", id="canvas-without-images"
    ),
    pytest.param(
        ["--prompt", "a fox", "--model", "flux-kontext-ultra"],
        {},
        "flux-kontext-ultra",
        id="unknown-model",
    ),
    pytest.param(["--prompt", "a fox", "--backend", "nope"], {}, "nope", id="unknown-backend"),
    pytest.param(
        ["--prompt", "a fox"],
        {"FLUXCOMPOSE_BACKEND": "nope"},
        "FLUXCOMPOSE_BACKEND",
        id="unknown-backend-env",
    ),
    pytest.param(
        ["--prompt", "a fox", "--backend", "openai"],
        {"OPENAI_API_KEY": KEY},
        "FLUXCOMPOSE_API_KEY",
        id="openai-no-key",
    ),
    pytest.param(
        ["--prompt", "a fox", "--backend", "bfl"],
        {"FLUXCOMPOSE_API_KEY": KEY},
        "BFL_API_KEY",
        id="bfl-no-key",
    ),
    pytest.param(["-r", "pattern-transfer", MODEL], {}, "2 image", id="one-image-for-two"),
    pytest.param(
        ["-r", "pattern-transfer", PATTERN, MODEL, STYLE], {}, "2 image", id="three-images-for-two"
    ),
    pytest.param(["-r", "pattern-transfer"], {}, "2 image", id="no-images"),
    pytest.param(
        ["-r", "pattern-transfer", PATTERN, "{missing}"], {}, "missing.png", id="missing-image"
    ),
    pytest.param(
        ["-r", "pattern-transfer", PATTERN, "{not_image}"],
        {},
        "not-an-image.png",
        id="text-file-as-image",
    ),
    pytest.param(
        ["-r", "pattern-transfer", PATTERN, "ftp://example.com/a.png"], {}, "ftp", id="ftp-url"
    ),
    pytest.param([PATTERN, MODEL], {}, "--prompt", id="no-recipe-no-prompt"),
]


@pytest.mark.parametrize(("args", "env", "needle"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[Any],
    env: dict[str, str],
    needle: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    paths = {
        "{bad_toml}": _write(tmp_path / "bad.toml", 'name = "x"\nsources = ["a", "b"\n'),
        "{missing}": tmp_path / "missing.png",
        "{not_image}": _write(tmp_path / "not-an-image.png", "hello, not pixels\n"),
    }
    argv = [paths.get(a, a) if isinstance(a, str) else a for a in args]
    out = tmp_path / "out"
    r = invoke("run", "-o", out, *argv)
    line = one_error(r, 2)
    assert needle in line
    assert r.stdout == ""
    assert not out.exists() or files_in(out) == set()
    assert KEY not in r.stderr and "DoNotLeak" not in r.stderr


def test_outdir_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    out = _write(tmp_path / "out", "a file\n")
    r = invoke("run", "--prompt", "a fox", "-o", out)
    one_error(r, 2)
    assert out.read_text() == "a file\n"


def test_bad_input_in_a_real_process() -> None:
    proc = subprocess.run(
        [console_script(), "run", "--prompt", "a fox", "--aspect-ratio", "1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fluxcompose: error:")
    assert "3:7" in lines[0] and "7:3" in lines[0]  # names the allowed range


def test_rejected_key_in_a_real_process(fake_api: FakeAPI, tmp_path: Path) -> None:
    fake_api.api_key = "the-right-key"
    env = subprocess_env() | {
        "FLUXCOMPOSE_API_KEY": KEY,
        "FLUXCOMPOSE_BASE_URL": fake_api.openai_base,
    }
    out = tmp_path / "out"
    proc = subprocess.run(
        [console_script(), "run", "--prompt", "a fox", "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("backend: openai")
    assert lines[-1].startswith("fluxcompose: error:") and len(lines) == 2
    assert KEY not in proc.stderr and "DoNotLeak" not in proc.stderr
    assert len(fake_api.submissions) == 1


# --------------------------------------------------------------------------- --dry-run


def test_dry_run_sends_nothing_and_elides_the_image(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_openai(fake_api, monkeypatch)
    out = tmp_path / "out"
    r = invoke("run", PATTERN, MODEL, "-r", "pattern-transfer", "-o", out, "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert fake_api.requests == []
    assert not out.exists()
    text = r.stdout
    assert PT_PROMPT in text
    assert "3:4" in text and "flux-kontext-pro" in text and "openai" in text
    image_lines = [line for line in text.splitlines() if line.startswith("input_image")]
    assert len(image_lines) == 1 and "<image/jpeg," in image_lines[0] and "bytes>" in image_lines[0]
    assert "base64" not in text and len(text) < 4000  # the canvas itself is not printed
    assert "nothing sent" in r.stderr
    assert_no_secret(r, out, KEY)


def test_dry_run_json(fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_openai(fake_api, monkeypatch)
    out = tmp_path / "out"
    r = invoke(
        "run",
        PATTERN,
        MODEL,
        "-r",
        "pattern-transfer",
        "-o",
        out,
        "--dry-run",
        "--json",
        "--seed",
        "3",
        "--model",
        "flux-kontext-max",
    )
    assert r.exit_code == 0, r.stderr
    assert fake_api.requests == []
    assert not out.exists()
    plan = json.loads(r.stdout)
    req = plan["request"]
    assert plan["backend"] == "openai"
    assert plan["recipe"] == "pattern-transfer"
    assert req["prompt"] == PT_PROMPT
    assert req["model"] == "flux-kontext-max"
    assert req["seed"] == 3
    assert req["aspect_ratio"] == "3:4"
    assert req["input_image"].startswith("<image/jpeg, ") and req["input_image"].endswith(" bytes>")
    assert plan["estimated_usd"] == pytest.approx(0.07)
    cells = plan["canvas"]["cells"]
    assert [c["index"] for c in cells] == [0, 1]
    assert [s["name"] for s in plan["sources"]] == ["pattern", "target"]
    assert_no_secret(r, out, KEY)


def test_match_ratio_is_clamped_for_a_thin_source(tmp_path: Path) -> None:
    thin = tmp_path / "thin.png"
    Image.new("RGB", (40, 400), (200, 30, 30)).save(thin)  # 1:10, narrower than 3:7
    r = invoke("run", thin, "--prompt", "make it blue", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["request"]["aspect_ratio"] == "3:7"


# --------------------------------------------------------------------------- choosing the backend


@pytest.mark.parametrize(
    ("env", "flag", "chosen"),
    [
        ({}, None, "local"),
        ({"OPENAI_API_KEY": KEY}, None, "local"),  # never the user's OpenAI key
        ({"BFL_API_KEY": BFL_KEY}, None, "bfl"),
        ({"FLUXCOMPOSE_API_KEY": KEY, "BFL_API_KEY": BFL_KEY}, None, "openai"),
        ({"FLUXCOMPOSE_API_KEY": KEY, "FLUXCOMPOSE_BACKEND": "bfl"}, None, "bfl"),
        ({"FLUXCOMPOSE_BACKEND": "openai"}, "local", "local"),
    ],
)
def test_backend_choice(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], flag: str | None, chosen: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    extra = [] if flag is None else ["--backend", flag]
    r = invoke("run", "--prompt", "a fox", "--dry-run", "--json", *extra)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["backend"] == chosen
    c = invoke("cost", "10", "--json", *extra)
    assert json.loads(c.stdout)["backend"] == chosen


def test_openai_api_key_alone_stays_local_and_sends_nothing(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_api.openai_base)
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["backend"] == "local"
    assert r.stderr.splitlines()[0].startswith("backend: local")
    assert fake_api.requests == []
    assert_no_secret(r, out, KEY)


def test_openai_sdk_variables_are_not_used(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With FLUXCOMPOSE_API_KEY set, OPENAI_* settings neither redirect nor decorate the request."""
    use_openai(fake_api, monkeypatch)
    other = "sk-users-own-openai-key-DoNotLeakOpenAI"
    monkeypatch.setenv("OPENAI_API_KEY", other)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-users-own")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-users-own")
    out = tmp_path / "out"
    r = invoke("run", "--prompt", "a fox", "-o", out)
    assert r.exit_code == 0, r.stderr
    (rec,) = fake_api.submissions
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert "openai-organization" not in rec.headers
    assert "openai-project" not in rec.headers
    assert other not in json.dumps(rec.headers)
    assert_no_secret(r, out, KEY, other)


# --------------------------------------------------------------------------- --strict


def _strict_recipe(tmp_path: Path) -> Path:
    text = (
        Path(__file__).resolve().parent.parent / "recipes" / "pattern-transfer.toml"
    ).read_text()
    text = text.replace('name = "pattern-transfer"', 'name = "too-wide"')
    text = text.replace(
        "pattern_width_fraction = [0.45, 0.8]", "pattern_width_fraction = [0.9, 0.95]"
    )
    assert "[0.9, 0.95]" in text
    return _write(tmp_path / "too-wide.toml", text)


@pytest.mark.parametrize("strict", [True, False])
def test_failed_checks(tmp_path: Path, strict: bool) -> None:
    recipe = _strict_recipe(tmp_path)
    out = tmp_path / "out"
    extra = ["--strict"] if strict else []
    r = invoke("run", PATTERN, MODEL, "-r", recipe, "-o", out, "--seed", "1", "--json", *extra)
    sidecar = json.loads(r.stdout)  # printed before the checks decide the exit code
    job = sidecar["job_id"]
    assert job.startswith("too-wide-")
    assert sidecar["passed"] is False
    assert sidecar["checks"]["pattern_width_fraction"]["pass"] is False
    assert sidecar["checks"]["pattern_width_fraction"]["expected"] == [0.9, 0.95]
    assert sidecar["checks"]["pattern_found"]["pass"] is True
    assert json.loads((out / f"{job}.json").read_text())["passed"] is False
    assert {f"{job}.png", f"{job}.json", f"{job}.canvas.jpg", f"{job}.sheet.png"} == files_in(out)
    if strict:
        line = one_error(r, 1)
        assert "pattern_width_fraction" in line
    else:
        assert r.exit_code == 0, r.stderr
        assert "fluxcompose: error" not in r.stderr
        warnings = [line for line in r.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "pattern_width_fraction" in warnings[0]


# --------------------------------------------------------------------------- cost, recipes


@pytest.mark.parametrize(
    ("backend", "model", "per_call"),
    [
        ("openai", "flux-kontext-pro", 0.035),
        ("openai", "flux-kontext-max", 0.07),
        ("bfl", "flux-kontext-pro", 0.04),
        ("bfl", "flux-kontext-max", 0.08),
        ("local", "flux-kontext-pro", 0.0),
        ("local", "flux-kontext-max", 0.0),
    ],
)
def test_cost_json(backend: str, model: str, per_call: float) -> None:
    r = invoke("cost", "1000", "--model", model, "--backend", backend, "--json")
    assert r.exit_code == 0, r.stderr
    est = json.loads(r.stdout)
    assert est["calls"] == 1000
    assert est["model"] == model
    assert est["backend"] == backend
    assert est["usd_per_call"] == pytest.approx(per_call)
    assert est["usd"] == pytest.approx(1000 * per_call)


def test_cost_text_compares_both_routes() -> None:
    r = invoke("cost", "1000", "--model", "flux-kontext-pro", "--backend", "openai")
    assert r.exit_code == 0, r.stderr
    assert "$35.00" in r.stdout and "$40.00" in r.stdout


@pytest.mark.parametrize(
    "args", [["-1"], ["ten"], ["10", "--model", "flux-kontext-ultra"], ["10", "--backend", "x"]]
)
def test_cost_bad_usage(args: list[str]) -> None:
    one_error(invoke("cost", *args), 2)


def test_recipes_through_the_top_level_cli() -> None:
    listed = invoke("recipes")
    assert listed.exit_code == 0
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert names == ["pattern-transfer", "side-by-side", "style-fusion"]
    shown = invoke("recipes", "show", "pattern-transfer", "--json")
    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert data["sources"] == ["pattern", "target"]
    assert data["prompt"].format(**data["variables"]) == PT_PROMPT
    assert data["request"]["aspect_ratio"] == "match:target"
    assert "no-such" in one_error(invoke("recipes", "show", "no-such"), 2)


@pytest.mark.parametrize(
    ("path", "needle"),
    [("/images/nope.png", "404"), ("/v1/get_result?id=x", "not a readable image")],
)
def test_image_url_that_fails_is_bad_input(
    fake_api: FakeAPI, tmp_path: Path, path: str, needle: str
) -> None:
    out = tmp_path / "out"
    r = invoke("run", "-r", "pattern-transfer", "-o", out, PATTERN, fake_api.url + path)
    line = one_error(r, 2)
    assert needle in line
    assert files_in(out) == set()


def test_default_outdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    r = invoke("run", "--prompt", "a fox", "--json")
    assert r.exit_code == 0, r.stderr
    job = json.loads(r.stdout)["job_id"]
    assert files_in(tmp_path / "fluxcompose-out") == {f"{job}.png", f"{job}.json"}
