"""Lean jobs: the canvas is sent as JPEG (q95, 4:4:4) unless asked for PNG, the file
saved as ``<job>.canvas.<ext>`` is byte for byte what the server received, and the
sidecar records ``request_bytes``."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, JpegImagePlugin

from fluxcompose.backends.base import Backend
from fluxcompose.backends.bfl import BFLBackend
from fluxcompose.backends.openai_compat import OpenAICompatBackend
from fluxcompose.cli import cli
from fluxcompose.errors import ConfigError
from fluxcompose.images import canvas_extension, encode_canvas
from fluxcompose.recipes import load_recipe
from fluxcompose.run import JobSpec, RequestOptions, prepare_job, run_job
from tests.fakeapi import FakeAPI, RecordedRequest, _parse_multipart
from tests.jpegs import direct_jpeg, restart_interval

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PAIR = (str(SAMPLES / "pattern.png"), str(SAMPLES / "model.jpg"))
KEY = "lean-test-key-0000"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _spec(fmt: str | None) -> JobSpec:
    return JobSpec(
        recipe=load_recipe("pattern-transfer"),
        sources=PAIR,
        request=RequestOptions(canvas_format=fmt),
    )


def _sent_image(rec: RecordedRequest) -> tuple[bytes, str]:
    """(image bytes, MIME type) decoded here from the raw request body, not from the fake's parse."""
    if rec.kind == "edits":
        _, files = _parse_multipart(rec.headers["content-type"], rec.body)
        _name, mime, data = files["image"]
        return data, mime
    body = json.loads(rec.body)
    value = body["input_image"]
    if rec.kind == "bfl-submit":
        return base64.b64decode(value, validate=True), "?"
    head, _, b64 = value.partition(",")
    assert head.startswith("data:") and head.endswith(";base64")
    return base64.b64decode(b64, validate=True), head[5:].split(";")[0]


def _backend(kind: str, api: FakeAPI) -> Backend:
    if kind == "bfl":
        return BFLBackend(KEY, base_url=api.bfl_base, sleep=lambda s: None)
    return OpenAICompatBackend(KEY, base_url=api.openai_base, transport=kind)


@pytest.mark.parametrize("fmt", [None, "jpeg", "png"])
@pytest.mark.parametrize("kind", ["bfl", "generations", "edits"])
def test_saved_canvas_is_byte_for_byte_what_was_sent(
    fake_api: FakeAPI, tmp_path: Path, kind: str, fmt: str | None
) -> None:
    outcome = run_job(_spec(fmt), _backend(kind, fake_api), tmp_path, compare=False)
    [rec] = fake_api.submissions
    sent, mime = _sent_image(rec)
    want_ext = "png" if fmt == "png" else "jpg"
    assert outcome.canvas_path == tmp_path / f"{outcome.job_id}.canvas.{want_ext}"
    assert outcome.canvas_path.read_bytes() == sent
    if kind != "bfl":  # BFL takes plain base64 with no type
        assert mime == ("image/png" if fmt == "png" else "image/jpeg")
    magic = b"\x89PNG" if fmt == "png" else b"\xff\xd8\xff"
    assert sent.startswith(magic)
    sidecar = json.loads(outcome.sidecar_path.read_text())
    assert sidecar["request_bytes"] == len(sent)
    assert sidecar["canvas"]["path"] == outcome.canvas_path.name


def test_jpeg_canvas_is_quality_95_full_chroma() -> None:
    prepared = prepare_job(_spec(None), backend_name="local")
    assert prepared.composite is not None and prepared.composite.image is not None
    assert prepared.request.input_mime == "image/jpeg"
    sent = prepared.canvas_bytes
    assert sent is not None
    with Image.open(io.BytesIO(sent)) as im:
        assert im.format == "JPEG" and im.size == prepared.composite.size
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
    # An independent encode with the settings the contract names. The pattern's cell may be
    # reused from an earlier canvas (canvas_jpeg): then restart markers come with it, which
    # change no pixel, so the encode uses the interval the canvas declares.
    image = prepared.composite.image
    assert sent == direct_jpeg(image, restart_interval(sent))
    with Image.open(io.BytesIO(sent)) as a, Image.open(io.BytesIO(direct_jpeg(image))) as b:
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("kind", ["bfl", "generations", "edits"])
def test_jpeg_request_is_at_most_half_the_png_request(
    fake_api: FakeAPI, tmp_path: Path, kind: str
) -> None:
    backend = _backend(kind, fake_api)
    jpeg = run_job(_spec("jpeg"), backend, tmp_path / "j", compare=False)
    png = run_job(_spec("png"), backend, tmp_path / "p", compare=False)
    rec_j, rec_p = fake_api.submissions
    assert jpeg.sidecar["request_bytes"] * 2 <= png.sidecar["request_bytes"]
    assert len(rec_j.body) * 2 <= len(rec_p.body)  # the whole request body too


def test_canvas_format_flag_and_bad_values(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["run", *PAIR, "-r", "pattern-transfer", "--backend", "local", "--dry-run", "--json"]
    for flag, mime in (([], "image/jpeg"), (["--canvas-format", "png"], "image/png")):
        result = runner.invoke(cli, [*base, *flag])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["request"]["input_mime"] == mime
    result = runner.invoke(cli, [*base, "--canvas-format", "webp"])
    assert result.exit_code == 2
    with pytest.raises(ConfigError):
        prepare_job(_spec("webp"), backend_name="local")
    assert canvas_extension("image/jpeg") == "jpg" and canvas_extension("image/png") == "png"
    with pytest.raises(ConfigError):
        encode_canvas(Image.new("RGB", (4, 4)), "gif")
