"""FLUX.2 and multi-reference requests on the wire, both hosted backends, against the fake API.

The exact body each model and references mode sends (bfl JSON; the gateway's JSON as the
fake received it through the real ``openai`` client), the cap on references, sizes and
options refused before anything is sent, moderation and 402, and BFL's cost fields.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fluxcompose.backends.base import GenerationRequest, validate_request
from fluxcompose.backends.bfl import BFLBackend, decode_task, task_billing
from fluxcompose.backends.openai_compat import OpenAICompatBackend
from fluxcompose.errors import ConfigError, InsufficientCredits, Moderated
from fluxcompose.models import MODEL_NAMES, MODEL_SPECS, model_spec
from fluxcompose.pricing import image_megapixels, price_usd
from tests.fakeapi import FakeAPI, Scripted

KEY = "wire-key-7a7a7a7a7a7a"
PROMPT = "put the pattern of image 1 on the shirt in image 2"
COLOURS = [(200, 30, 90), (20, 120, 220), (30, 200, 60), (250, 200, 0), (90, 0, 160)]


def _png(i: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small PNG, different for each ``i``, so the order on the wire can be checked."""
    buf = io.BytesIO()
    img = Image.new("RGB", size, COLOURS[i % len(COLOURS)])
    img.putpixel((i % size[0], 0), (255, 255, 255))
    img.save(buf, format="PNG")
    return buf.getvalue()


REFS = [_png(i) for i in range(9)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _data_url(data: bytes) -> str:
    return f"data:image/png;base64,{_b64(data)}"


def _req(model: str, n_refs: int, **kw: Any) -> GenerationRequest:
    """A request for ``model`` with ``n_refs`` separate references (1 = a stitched canvas)."""
    fields: dict[str, Any] = {
        "prompt": PROMPT,
        "model": model,
        "input_image": REFS[0] if n_refs else None,
        "more_images": tuple((REFS[i], "image/png") for i in range(1, n_refs)),
        "seed": 7,
        "safety_tolerance": 2,
    }
    if model_spec(model).is_flux2:
        fields.update(width=1024, height=768, output_format="jpeg")
    else:
        fields.update(aspect_ratio="4:3", output_format="png")
    fields.update(kw)
    return GenerationRequest(**fields)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _bfl(api: FakeAPI) -> BFLBackend:
    clock = _Clock()
    return BFLBackend(KEY, base_url=api.bfl_base, sleep=clock.sleep, clock=clock)


def _gateway(api: FakeAPI, transport: str = "generations") -> OpenAICompatBackend:
    return OpenAICompatBackend(KEY, base_url=api.openai_base, transport=transport, timeout=30)


def _fetch_size(url: str) -> tuple[int, int]:
    with urllib.request.urlopen(url, timeout=10) as reply:  # 127.0.0.1 only
        data = reply.read()
    with Image.open(io.BytesIO(data)) as img:
        return img.size


# --------------------------------------------------------------------------- the model table


def test_model_table() -> None:
    assert MODEL_NAMES == (
        "flux-kontext-pro",
        "flux-kontext-max",
        "flux-2-pro",
        "flux-2-max",
        "flux-2-flex",
    )
    for name, spec in MODEL_SPECS.items():
        assert spec.bfl_endpoint == f"/v1/{name}"
        flux2 = name.startswith("flux-2-")
        assert spec.family == ("flux2" if flux2 else "kontext")
        assert spec.max_references == (8 if flux2 else 4)
        assert spec.size_fields == ("width_height" if flux2 else "aspect_ratio")
        assert spec.safety_range == ((0, 5) if flux2 else (0, 6))
        assert spec.default_references == ("separate" if flux2 else "stitched")
        assert spec.tunable == (name == "flux-2-flex")
        assert spec.bfl_concurrency == (6 if name == "flux-kontext-max" else 24)
    assert set(MODEL_SPECS["flux-2-pro"].output_formats) == {"jpeg", "png", "webp"}
    assert set(MODEL_SPECS["flux-kontext-pro"].output_formats) == {"jpeg", "png"}
    with pytest.raises(ConfigError, match="flux-2-flex"):
        model_spec("flux-3")


# --------------------------------------------------------------------------- bfl: exact bodies


def test_bfl_kontext_stitched_body(fake_api: FakeAPI) -> None:
    result = _bfl(fake_api).generate(_req("flux-kontext-pro", 1))
    (sub,) = fake_api.submissions
    assert sub.path == "/v1/flux-kontext-pro"
    assert sub.json == {
        "prompt": PROMPT,
        "input_image": _b64(REFS[0]),
        "seed": 7,
        "aspect_ratio": "4:3",
        "output_format": "png",
        "prompt_upsampling": False,
        "safety_tolerance": 2,
    }
    assert result.url and "cost_credits" not in result.extra


def test_bfl_kontext_separate_four_and_a_fifth_refused(fake_api: FakeAPI) -> None:
    backend = _bfl(fake_api)
    backend.generate(_req("flux-kontext-max", 4))
    (sub,) = fake_api.submissions
    assert sub.path == "/v1/flux-kontext-max"
    assert sub.json == {
        "prompt": PROMPT,
        "input_image": _b64(REFS[0]),
        "input_image_2": _b64(REFS[1]),
        "input_image_3": _b64(REFS[2]),
        "input_image_4": _b64(REFS[3]),
        "seed": 7,
        "aspect_ratio": "4:3",
        "output_format": "png",
        "prompt_upsampling": False,
        "safety_tolerance": 2,
    }
    assert sub.images == REFS[:4]
    before = len(fake_api.requests)
    with pytest.raises(ConfigError, match="at most 4 input images, got 5"):
        backend.generate(_req("flux-kontext-max", 5))
    assert len(fake_api.requests) == before


@pytest.mark.parametrize("n_refs", [2, 8])
def test_bfl_flux2_pro_separate_body(fake_api: FakeAPI, n_refs: int) -> None:
    result = _bfl(fake_api).generate(_req("flux-2-pro", n_refs))
    (sub,) = fake_api.submissions
    assert sub.path == "/v1/flux-2-pro"
    expected: dict[str, Any] = {"prompt": PROMPT, "input_image": _b64(REFS[0])}
    expected.update({f"input_image_{i}": _b64(REFS[i - 1]) for i in range(2, n_refs + 1)})
    expected.update(
        {"seed": 7, "width": 1024, "height": 768, "output_format": "jpeg", "safety_tolerance": 2}
    )
    assert sub.json == expected  # no aspect_ratio, no prompt_upsampling (pro does not take it)
    assert list(sub.json) == list(expected)  # and in this order
    assert sub.images == REFS[:n_refs]
    assert result.url is not None and _fetch_size(result.url) == (1024, 768)
    # The cost BFL replied, kept in extra and equal to the official formula for the sizes sent.
    inputs = [image_megapixels(64, 48)] * n_refs
    usd = price_usd("bfl", "flux-2-pro", output_mp=image_megapixels(1024, 768), input_mps=inputs)
    assert result.extra["cost_credits"] == pytest.approx(usd * 100)
    assert result.extra["output_mp"] == 0.75
    assert result.extra["input_mp"] == round(n_refs * 64 * 48 / 1024**2, 2)


def test_bfl_flux2_ninth_reference_refused(fake_api: FakeAPI) -> None:
    with pytest.raises(ConfigError, match="at most 8 input images, got 9"):
        _bfl(fake_api).generate(_req("flux-2-pro", 9))
    assert fake_api.requests == []


def test_bfl_flux2_flex_steps_guidance_body(fake_api: FakeAPI) -> None:
    request = _req(
        "flux-2-flex", 2, steps=28, guidance=4.5, prompt_upsampling=True, output_format="webp"
    )
    result = _bfl(fake_api).generate(request)
    (sub,) = fake_api.submissions
    assert sub.path == "/v1/flux-2-flex"
    assert sub.json == {
        "prompt": PROMPT,
        "input_image": _b64(REFS[0]),
        "input_image_2": _b64(REFS[1]),
        "seed": 7,
        "width": 1024,
        "height": 768,
        "steps": 28,
        "guidance": 4.5,
        "output_format": "webp",
        "prompt_upsampling": True,
        "safety_tolerance": 2,
    }
    assert result.url is not None and _fetch_size(result.url) == (1024, 768)


def test_bfl_flux2_max_text_to_image(fake_api: FakeAPI) -> None:
    result = _bfl(fake_api).generate(_req("flux-2-max", 0, width=512, height=512, seed=None))
    (sub,) = fake_api.submissions
    assert sub.path == "/v1/flux-2-max"
    assert sub.json == {
        "prompt": PROMPT,
        "width": 512,
        "height": 512,
        "output_format": "jpeg",
        "safety_tolerance": 2,
    }
    assert result.extra["cost_credits"] == 7.0  # 0.25 MP out, the first MP is flat


# --------------------------------------------------------------------------- gateway: exact bodies


def test_gateway_kontext_stitched_body(fake_api: FakeAPI) -> None:
    _gateway(fake_api).generate(_req("flux-kontext-pro", 1))
    (sub,) = fake_api.submissions
    assert sub.kind == "generations"
    assert sub.json == {
        "model": "flux-kontext-pro",
        "prompt": PROMPT,
        "n": 1,
        "input_image": _data_url(REFS[0]),
        "aspect_ratio": "4:3",
        "seed": 7,
        "safety_tolerance": 2,
        "output_format": "png",
        "prompt_upsampling": False,
    }


def test_gateway_kontext_separate_body(fake_api: FakeAPI) -> None:
    backend = _gateway(fake_api)
    backend.generate(_req("flux-kontext-pro", 4))
    (sub,) = fake_api.submissions
    assert [
        sub.json[k] for k in ("input_image", "input_image_2", "input_image_3", "input_image_4")
    ] == [_data_url(r) for r in REFS[:4]]
    assert "input_image_5" not in sub.json and sub.json["aspect_ratio"] == "4:3"
    with pytest.raises(ConfigError, match="at most 4"):
        backend.generate(_req("flux-kontext-pro", 5))
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize("n_refs", [2, 8])
def test_gateway_flux2_pro_separate_body(fake_api: FakeAPI, n_refs: int) -> None:
    result = _gateway(fake_api).generate(_req("flux-2-pro", n_refs))
    (sub,) = fake_api.submissions
    expected: dict[str, Any] = {
        "model": "flux-2-pro",
        "prompt": PROMPT,
        "n": 1,
        "input_image": _data_url(REFS[0]),
    }
    expected.update({f"input_image_{i}": _data_url(REFS[i - 1]) for i in range(2, n_refs + 1)})
    expected.update(
        {"width": 1024, "height": 768, "seed": 7, "safety_tolerance": 2, "output_format": "jpeg"}
    )
    assert sub.json == expected
    assert sub.images == REFS[:n_refs]
    assert result.url is not None and _fetch_size(result.url) == (1024, 768)
    with pytest.raises(ConfigError, match="at most 8"):
        _gateway(fake_api).generate(_req("flux-2-pro", 9))
    assert len(fake_api.submissions) == 1


def test_gateway_flux2_flex_body(fake_api: FakeAPI) -> None:
    _gateway(fake_api).generate(_req("flux-2-flex", 2, steps=50, guidance=1.5))
    (sub,) = fake_api.submissions
    assert sub.json == {
        "model": "flux-2-flex",
        "prompt": PROMPT,
        "n": 1,
        "input_image": _data_url(REFS[0]),
        "input_image_2": _data_url(REFS[1]),
        "width": 1024,
        "height": 768,
        "seed": 7,
        "steps": 50,
        "guidance": 1.5,
        "safety_tolerance": 2,
        "output_format": "jpeg",
        "prompt_upsampling": False,
    }


def test_gateway_edits_sends_each_reference_as_a_file(fake_api: FakeAPI) -> None:
    result = _gateway(fake_api, "edits").generate(_req("flux-2-pro", 3))
    (sub,) = fake_api.submissions
    assert sub.kind == "edits"
    assert [(name, ctype) for name, _f, ctype, _d in sub.file_parts] == [
        ("image[]", "image/png")
    ] * 3
    assert sub.images == REFS[:3]
    assert sub.form["width"] == "1024" and sub.form["height"] == "768"
    assert "aspect_ratio" not in sub.form and "input_image" not in sub.form
    assert result.url is not None and _fetch_size(result.url) == (1024, 768)


def test_gateway_edits_one_canvas_is_one_image_field(fake_api: FakeAPI) -> None:
    _gateway(fake_api, "edits").generate(_req("flux-kontext-pro", 1))
    (sub,) = fake_api.submissions
    assert [(name, fname) for name, fname, _c, _d in sub.file_parts] == [("image", "canvas.png")]
    assert sub.form["aspect_ratio"] == "4:3"


# --------------------------------------------------------------------------- refused before sending

BAD = [
    ("flux-2-pro", {"width": 1000}, "multiple of 16"),
    ("flux-2-pro", {"height": 770}, "multiple of 16"),
    ("flux-2-pro", {"width": 48}, "below the minimum of 64"),
    ("flux-2-pro", {"width": 2064, "height": 2048}, "over the 4 MP maximum"),
    ("flux-2-pro", {"width": None}, "needs the output width and height"),
    ("flux-kontext-pro", {"width": 1024, "height": 1024}, "aspect ratio"),
    ("flux-2-pro", {"safety_tolerance": 6}, "0..5"),
    ("flux-kontext-pro", {"safety_tolerance": 7}, "0..6"),
    ("flux-kontext-pro", {"output_format": "webp"}, "not 'webp'"),
    ("flux-2-pro", {"steps": 20}, "does not take steps"),
    ("flux-2-max", {"guidance": 3.0}, "does not take guidance"),
    ("flux-kontext-pro", {"steps": 20}, "does not take steps"),
    ("flux-2-flex", {"steps": 0}, "steps must be 1..50"),
    ("flux-2-flex", {"steps": 51}, "steps must be 1..50"),
    ("flux-2-flex", {"guidance": 1.4}, "guidance must be 1.5..10"),
    ("flux-2-flex", {"guidance": 10.5}, "guidance must be 1.5..10"),
    ("flux-2-pro", {"prompt_upsampling": True}, "does not take prompt_upsampling"),
    ("flux-kontext-pro", {"model": "flux-3"}, "unknown model"),
]


@pytest.mark.parametrize("backend_name", ["bfl", "openai"])
@pytest.mark.parametrize("model,change,message", BAD)
def test_refused_before_sending(
    fake_api: FakeAPI, backend_name: str, model: str, change: dict[str, Any], message: str
) -> None:
    backend = _bfl(fake_api) if backend_name == "bfl" else _gateway(fake_api)
    request = dataclasses.replace(_req(model, 2), **change)
    with pytest.raises(ConfigError, match=message):
        backend.generate(request)
    assert fake_api.requests == []


def test_nine_megapixels_in_all(fake_api: FakeAPI) -> None:
    """Inputs plus output above 9 MP: refused, with the sizes read from the images."""
    big = _png(0, (2048, 1024))  # 2 MP each
    four = tuple((big, "image/png") for _ in range(3))
    ok = _req("flux-2-pro", 1, input_image=big, more_images=four[:2], width=2048, height=1024)
    validate_request(ok)  # 3 x 2 MP + 2 MP = 8 MP
    too_big = _req("flux-2-pro", 1, input_image=big, more_images=four, width=2048, height=1024)
    with pytest.raises(ConfigError, match="10.00 MP, over the 9 MP maximum"):
        _bfl(fake_api).generate(too_big)
    with pytest.raises(ConfigError, match="over the 9 MP maximum"):
        _gateway(fake_api).generate(too_big)
    assert fake_api.requests == []
    # The edge counts as allowed: 2048x2048 output + 5 MP of references = 9 MP exactly.
    edge = _png(1, (2560, 2048))
    validate_request(_req("flux-2-pro", 1, input_image=edge, width=2048, height=2048))


# --------------------------------------------------------------------------- moderation, 402, cost


@pytest.mark.parametrize("backend_name", ["bfl", "openai"])
def test_flux2_moderation_and_402(fake_api: FakeAPI, backend_name: str) -> None:
    backend = _bfl(fake_api) if backend_name == "bfl" else _gateway(fake_api)
    fake_api.moderate_substring = "forbidden"
    with pytest.raises(Moderated):
        backend.generate(_req("flux-2-pro", 2, prompt="a forbidden print"))
    fake_api.moderate_substring = None
    fake_api.script(Scripted(402))
    with pytest.raises(InsufficientCredits, match="402"):
        backend.generate(_req("flux-2-max", 2))


def test_bfl_cost_from_the_reply_survives_resume(fake_api: FakeAPI) -> None:
    fake_api.bfl_cost = {"cost": 7.25, "input_mp": 2.0, "output_mp": 1.02}
    tokens: list[str] = []
    first = _bfl(fake_api).generate(_req("flux-2-pro", 2), on_submitted=tokens.append)
    billing = {"cost_credits": 7.25, "input_mp": 2.0, "output_mp": 1.02}
    assert {k: first.extra[k] for k in billing} == billing
    (token,) = tokens
    assert task_billing(token) == billing
    task_id, polling_url = decode_task(token, fake_api.bfl_base)
    assert task_id == first.extra["id"] and polling_url.endswith(f"id={task_id}")
    # A later run polls the stored token: no second submission, and the cost is still known.
    resumed = _bfl(fake_api).generate(_req("flux-2-pro", 2), resume_task_id=token)
    assert len(fake_api.submissions) == 1
    assert {k: resumed.extra[k] for k in billing} == billing
    # Old two-part tokens (and bare ids) still poll; they carry no cost.
    assert task_billing(f"{task_id}|{polling_url}") == {}
    assert (
        "cost_credits"
        not in _bfl(fake_api)
        .generate(_req("flux-2-pro", 2), resume_task_id=f"{task_id}|{polling_url}")
        .extra
    )


def test_bfl_reply_without_cost_fields(fake_api: FakeAPI) -> None:
    fake_api.bfl_cost = {}
    tokens: list[str] = []
    result = _bfl(fake_api).generate(_req("flux-2-pro", 2), on_submitted=tokens.append)
    assert "cost_credits" not in result.extra
    assert tokens[0].count("|") == 1


# --------------------------------------------------------------------------- the wheel


def test_wheel_ships_the_price_table(built_wheel: Path) -> None:
    """The built wheel carries the price table, as the code reads it."""
    repo = Path(__file__).resolve().parents[1]
    with zipfile.ZipFile(built_wheel) as zf:
        shipped = zf.read("fluxcompose/data/prices.toml").decode("utf-8")
    assert shipped == (repo / "fluxcompose" / "data" / "prices.toml").read_text("utf-8")
    from fluxcompose.pricing import load_prices

    assert set(load_prices(shipped)) == set(MODEL_NAMES)
