"""The openai backend through the real ``openai`` client against the fake server, and the registry."""

from __future__ import annotations

import base64
import email.utils
import io
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.backends import (
    BACKENDS,
    BFLBackend,
    LocalBackend,
    OpenAICompatBackend,
    make_backend,
    resolve_api_key,
    resolve_backend_name,
    resolve_base_url,
    validate_model,
)
from fluxcompose.backends.base import GenerationRequest
from fluxcompose.download import download_result
from fluxcompose.errors import (
    AuthError,
    ConfigError,
    InputError,
    InsufficientCredits,
    Moderated,
    RateLimited,
    RequestError,
    RetryableError,
    TransientError,
)
from tests.fakeapi import FakeAPI, Scripted, render_result

KEY = "sk-test-0123456789abcdef"


def _png(size: tuple[int, int] = (96, 64), color: tuple[int, int, int] = (200, 30, 90)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, color)
    img.putpixel((3, 4), (0, 255, 0))  # not a flat image, so resizing matters
    img.save(buf, format="PNG")
    return buf.getvalue()


CANVAS = _png()


def _req(**kw: object) -> GenerationRequest:
    base: dict[str, object] = {
        "prompt": "put the pattern on the shirt",
        "input_image": CANVAS,
        "aspect_ratio": "3:2",
        "seed": 1234,
        "safety_tolerance": 3,
        "output_format": "png",
        "prompt_upsampling": True,
    }
    base.update(kw)
    return GenerationRequest(**base)  # type: ignore[arg-type]


def _backend(
    api: FakeAPI, transport: str = "generations", key: str = KEY, timeout: float = 30.0
) -> OpenAICompatBackend:
    return OpenAICompatBackend(key, base_url=api.openai_base, transport=transport, timeout=timeout)


@pytest.fixture
def keyed_api(fake_api: FakeAPI) -> FakeAPI:
    fake_api.api_key = KEY
    return fake_api


# --------------------------------------------------------------------------- wire format


def test_generations_json_is_exactly_the_contract(keyed_api: FakeAPI, tmp_path: Path) -> None:
    result = _backend(keyed_api).generate(_req())
    [rec] = keyed_api.requests
    assert rec.method == "POST" and rec.path == "/v1/images/generations"
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.headers["content-type"].startswith("application/json")
    body = dict(rec.json)
    data_url = body.pop("input_image")
    assert body == {
        "model": "flux-kontext-pro",
        "prompt": "put the pattern on the shirt",
        "n": 1,
        "aspect_ratio": "3:2",
        "seed": 1234,
        "safety_tolerance": 3,
        "output_format": "png",
        "prompt_upsampling": True,
    }
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    assert base64.b64decode(data_url[len(prefix) :]) == CANVAS
    # The reply's URL leads to the image the server made from our canvas.
    assert result.url is not None and result.data is None
    path = download_result(result.url, tmp_path, "job")
    assert path.read_bytes() == render_result(CANVAS, "3:2", "png", "put the pattern on the shirt")
    with Image.open(path) as im:
        assert im.size == (1248, 832)


def test_seed_is_omitted_when_none_and_jpeg_canvas_mime(fake_api: FakeAPI) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(jpeg, format="JPEG")
    _backend(fake_api).generate(
        _req(seed=None, input_image=jpeg.getvalue(), input_mime="image/jpeg")
    )
    body = fake_api.requests[0].json
    assert "seed" not in body
    assert body["input_image"].startswith("data:image/jpeg;base64,")
    assert fake_api.requests[0].image == jpeg.getvalue()


def test_b64_json_reply_gives_bytes(fake_api: FakeAPI) -> None:
    fake_api.reply_as = "b64_json"
    result = _backend(fake_api).generate(_req(output_format="jpeg", aspect_ratio="16:9"))
    assert result.url is None
    assert result.data == render_result(CANVAS, "16:9", "jpeg", "put the pattern on the shirt")
    with Image.open(io.BytesIO(result.data or b"")) as im:
        assert im.size == (1392, 752) and im.format == "JPEG"


def test_text_to_image_sends_no_input_image(fake_api: FakeAPI) -> None:
    for transport in ("generations", "edits"):
        _backend(fake_api, transport).generate(_req(input_image=None, seed=None))
    assert [r.kind for r in fake_api.requests] == ["generations", "generations"]
    for rec in fake_api.requests:
        assert "input_image" not in rec.json
        assert rec.json["aspect_ratio"] == "3:2"


def test_edits_multipart_fields(keyed_api: FakeAPI) -> None:
    result = _backend(keyed_api, "edits").generate(_req())
    [rec] = keyed_api.requests
    assert rec.path == "/v1/images/edits"
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.headers["content-type"].startswith("multipart/form-data")
    assert rec.form == {
        "model": "flux-kontext-pro",
        "prompt": "put the pattern on the shirt",
        "n": "1",
        "aspect_ratio": "3:2",
        "seed": "1234",
        "safety_tolerance": "3",
        "output_format": "png",
        "prompt_upsampling": "true",
    }
    filename, ctype, data = rec.files["image"]
    assert data == CANVAS and ctype == "image/png" and filename.endswith(".png")
    assert rec.json is None
    assert result.url is not None


def test_no_openai_environment_leaks_to_the_gateway(
    fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-should-never-be-sent")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-private")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-private")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-private")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Private: yes\nAuthorization: Bearer sk-custom")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    _backend(fake_api).generate(_req())
    [rec] = fake_api.requests
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    for header in ("openai-organization", "openai-project", "x-private"):
        assert header not in rec.headers
    assert "private" not in repr(rec.headers) and "sk-openai" not in repr(rec.headers)


def test_key_is_not_in_repr() -> None:
    backend = OpenAICompatBackend(KEY, base_url="http://127.0.0.1:9/v1")
    assert KEY not in repr(backend) and KEY not in str(vars(backend).get("base_url"))


# --------------------------------------------------------------------------- errors


def _raises(
    api: FakeAPI, exc_type: type[BaseException], key: str = KEY, **req: object
) -> BaseException:
    with pytest.raises(exc_type) as info:
        _backend(api, key=key).generate(_req(**req))
    text = f"{info.value} {info.value!r} {info.value.__cause__} {info.value.__cause__!r}"
    assert key not in text
    return info.value


def test_401_is_auth_error_and_never_echoes_the_key(keyed_api: FakeAPI) -> None:
    wrong = "sk-wrong-key-ABCDEF987654"
    exc = _raises(keyed_api, AuthError, key=wrong)
    assert "FLUXCOMPOSE_API_KEY" in str(exc)
    # The fake server echoed the key in its error body: prove that it did.
    assert wrong in keyed_api.requests[0].headers["authorization"]
    assert len(keyed_api.requests) == 1  # the client's own retries are off


@pytest.mark.parametrize(
    "status,exc_type",
    [
        (401, AuthError),
        (403, AuthError),
        (402, InsufficientCredits),
        (404, RequestError),
        (422, RequestError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
    ],
)
def test_status_mapping(fake_api: FakeAPI, status: int, exc_type: type[BaseException]) -> None:
    fake_api.script(Scripted(status, message=f"trouble with {KEY}"))
    exc = _raises(fake_api, exc_type)
    assert len(fake_api.requests) == 1
    assert isinstance(exc, RetryableError) == (status >= 500)


def test_429_retry_after_seconds(fake_api: FakeAPI) -> None:
    fake_api.script(Scripted(429, retry_after="7"))
    exc = _raises(fake_api, RateLimited)
    assert isinstance(exc, RateLimited) and exc.retry_after == 7.0
    assert len(fake_api.requests) == 1


def test_429_retry_after_http_date(fake_api: FakeAPI) -> None:
    when = email.utils.formatdate(time.time() + 40, usegmt=True)
    fake_api.script(Scripted(429, retry_after=when))
    exc = _raises(fake_api, RateLimited)
    assert isinstance(exc, RateLimited) and exc.retry_after is not None
    assert 30 <= exc.retry_after <= 41


def test_moderation_by_code(fake_api: FakeAPI) -> None:
    fake_api.moderate_substring = "forbidden"
    exc = _raises(fake_api, Moderated, prompt="a forbidden thing")
    assert "moderation" in str(exc)
    assert fake_api.billable == 0


def test_moderation_by_message(fake_api: FakeAPI) -> None:
    fake_api.moderate_substring = "forbidden"
    fake_api.openai_moderation_code = None
    _raises(fake_api, Moderated, prompt="a forbidden thing")


def test_plain_400_is_request_error(fake_api: FakeAPI) -> None:
    fake_api.script(Scripted(400, code="invalid_value", message="aspect_ratio is wrong"))
    exc = _raises(fake_api, RequestError)
    assert "aspect_ratio is wrong" in str(exc)


def test_dropped_connection_is_transient(fake_api: FakeAPI) -> None:
    fake_api.script(Scripted(drop=True))
    _raises(fake_api, TransientError)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAICompatBackend(KEY, base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    with pytest.raises(TransientError, match="could not reach"):
        backend.generate(_req())


def test_timeout_is_transient(fake_api: FakeAPI) -> None:
    fake_api.hold()  # never answered while the client waits; let go when the fake stops
    with pytest.raises(TransientError, match="did not answer"):
        _backend(fake_api, timeout=0.2).generate(_req())
    assert fake_api.billable == 0


def test_unknown_model_fails_before_sending(fake_api: FakeAPI) -> None:
    with pytest.raises(ConfigError, match="flux-kontext-max"):
        _backend(fake_api).generate(_req(model="dall-e-3"))
    assert fake_api.requests == []


def test_billable_counts_accepted_submissions(fake_api: FakeAPI) -> None:
    fake_api.script(500)
    backend = _backend(fake_api)
    with pytest.raises(TransientError):
        backend.generate(_req())
    backend.generate(_req())
    backend.generate(_req(model="flux-kontext-max"))
    assert fake_api.billable == 2
    assert [r.json["model"] for r in fake_api.submissions] == ["flux-kontext-pro"] * 2 + [
        "flux-kontext-max"
    ]


def test_concurrency_caps() -> None:
    backend = OpenAICompatBackend(KEY)
    assert backend.max_concurrency("flux-kontext-pro") == 24
    assert backend.max_concurrency("flux-kontext-max") == 6
    for model in ("flux-2-pro", "flux-2-max", "flux-2-flex"):
        assert backend.max_concurrency(model) == 24
    assert backend.resumable is False and backend.name == "openai"


def _status_exc(status: int, body: object, headers: dict[str, str] | None = None) -> object:
    import httpx2
    import openai

    request = httpx2.Request("POST", "https://gw.example/v1/images/generations")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    return openai.APIStatusError(f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize(
    "status,headers,message,expected,retry_after",
    [
        (429, {"retry-after-ms": "1500"}, "slow down", RateLimited, 1.5),
        (429, {"retry-after": "3", "retry-after-ms": "1500"}, "slow down", RateLimited, 3.0),
        # Moderation is recognised only in the 4xx that are not auth, credits or rate limits.
        (402, {}, "moderation credits exhausted", InsufficientCredits, None),
        (403, {}, "blocked by moderation", AuthError, None),
        (422, {}, "content policy violation", Moderated, None),
        (400, {}, "bad width", RequestError, None),
        (503, {}, "overloaded", TransientError, None),
    ],
)
def test_status_error_mapping_direct(
    status: int,
    headers: dict[str, str],
    message: str,
    expected: type[BaseException],
    retry_after: float | None,
) -> None:
    backend = OpenAICompatBackend(KEY, base_url="https://gw.example/v1")
    exc = _status_exc(status, {"error": {"message": f"{message} {KEY}", "code": None}}, headers)
    err = backend._status_error(exc)  # type: ignore[arg-type]
    assert type(err) is expected
    assert KEY not in str(err)
    if retry_after is not None:
        assert isinstance(err, RateLimited) and err.retry_after == retry_after


# --------------------------------------------------------------------------- registry and resolution


def test_registry_names() -> None:
    assert list(BACKENDS) == ["local", "openai", "bfl"]
    assert BACKENDS["openai"] is OpenAICompatBackend and BACKENDS["bfl"] is BFLBackend


@pytest.mark.parametrize(
    "explicit,env,expected",
    [
        ("bfl", {"FLUXCOMPOSE_BACKEND": "openai", "FLUXCOMPOSE_API_KEY": "k"}, "bfl"),
        (None, {"FLUXCOMPOSE_BACKEND": "local", "FLUXCOMPOSE_API_KEY": "k"}, "local"),
        (None, {"FLUXCOMPOSE_API_KEY": "k", "BFL_API_KEY": "b"}, "openai"),
        (None, {"BFL_API_KEY": "b"}, "bfl"),
        (None, {"OPENAI_API_KEY": "sk"}, "local"),
        (None, {"FLUXCOMPOSE_API_KEY": " "}, "local"),
        (None, {}, "local"),
        ("OpenAI", {}, "openai"),
    ],
)
def test_resolve_backend_name(explicit: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_backend_name(explicit, env) == expected


@settings(max_examples=60, deadline=None)
@given(
    explicit=st.sampled_from([None, "local", "openai", "bfl"]),
    chosen=st.sampled_from([None, "local", "openai", "bfl"]),
    flux_key=st.booleans(),
    bfl_key=st.booleans(),
)
def test_resolve_backend_name_order(
    explicit: str | None, chosen: str | None, flux_key: bool, bfl_key: bool
) -> None:
    env = {"OPENAI_API_KEY": "never-used"}
    if chosen:
        env["FLUXCOMPOSE_BACKEND"] = chosen
    if flux_key:
        env["FLUXCOMPOSE_API_KEY"] = "f"
    if bfl_key:
        env["BFL_API_KEY"] = "b"
    expected = explicit or chosen or ("openai" if flux_key else "bfl" if bfl_key else "local")
    assert resolve_backend_name(explicit, env) == expected


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="local, openai, bfl"):
        resolve_backend_name("replicate", {})
    with pytest.raises(ConfigError, match="FLUXCOMPOSE_BACKEND"):
        resolve_backend_name(None, {"FLUXCOMPOSE_BACKEND": "nope"})


def test_resolve_api_key() -> None:
    env = {"FLUXCOMPOSE_API_KEY": "fk", "BFL_API_KEY": "bk", "OPENAI_API_KEY": "ok"}
    assert resolve_api_key("openai", None, env) == "fk"
    assert resolve_api_key("openai", "cli", env) == "cli"
    assert resolve_api_key("bfl", None, env) == "bk"
    assert resolve_api_key("local", None, env) is None
    with pytest.raises(ConfigError, match="FLUXCOMPOSE_API_KEY") as info:
        resolve_api_key("openai", None, {"OPENAI_API_KEY": "sk-secret-openai"})
    assert "sk-secret-openai" not in str(info.value)
    assert isinstance(info.value, InputError) and info.value.exit_code == 2
    with pytest.raises(ConfigError, match="BFL_API_KEY"):
        resolve_api_key("bfl", None, {"FLUXCOMPOSE_API_KEY": "fk"})


def test_resolve_base_url() -> None:
    assert resolve_base_url("openai", None, {}) == "https://api.apiyi.com/v1"
    assert resolve_base_url("bfl", None, {}) == "https://api.bfl.ai"
    assert (
        resolve_base_url("openai", None, {"FLUXCOMPOSE_BASE_URL": "http://x/v1/"}) == "http://x/v1"
    )
    assert (
        resolve_base_url("bfl", "https://api.eu.bfl.ai", {"BFL_BASE_URL": "http://y"})
        == "https://api.eu.bfl.ai"
    )
    assert resolve_base_url("local", None, {}) is None
    with pytest.raises(ConfigError):
        resolve_base_url("openai", "ftp://x", {})


def test_make_backend(fake_api: FakeAPI) -> None:
    env = {"FLUXCOMPOSE_API_KEY": KEY, "FLUXCOMPOSE_BASE_URL": fake_api.openai_base}
    backend = make_backend("openai", transport="edits", env=env)
    assert isinstance(backend, OpenAICompatBackend) and backend.transport == "edits"
    backend.generate(_req())
    assert fake_api.requests[0].headers["authorization"] == f"Bearer {KEY}"
    bfl = make_backend("bfl", api_key="bk", env={})
    assert isinstance(bfl, BFLBackend) and bfl.base_url == "https://api.bfl.ai"
    assert isinstance(make_backend("local", env={}), LocalBackend)
    with pytest.raises(ConfigError, match="FLUXCOMPOSE_API_KEY"):
        make_backend("openai", env={"OPENAI_API_KEY": "sk"})
    with pytest.raises(ConfigError, match="transport"):
        make_backend("openai", api_key="k", transport="chat", env={})
    with pytest.raises(ConfigError, match="only to the openai"):
        make_backend("bfl", api_key="k", transport="edits", env={})


def test_validate_model() -> None:
    assert validate_model("flux-kontext-max") == "flux-kontext-max"
    with pytest.raises(ConfigError, match="flux-kontext-pro, flux-kontext-max"):
        validate_model("flux-pro")


# --------------------------------------------------------------------------- the fake server itself


def test_concurrent_requests_share_one_client(fake_api: FakeAPI) -> None:
    from concurrent.futures import ThreadPoolExecutor

    backend = _backend(fake_api)
    prompts = [f"prompt {i}" for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: backend.generate(_req(prompt=p)), prompts))
    assert fake_api.billable == 16
    assert len({r.url for r in results}) == 16
    assert sorted(r.json["prompt"] for r in fake_api.submissions) == sorted(prompts)


def _outcomes(seed: int) -> list[str]:
    with FakeAPI(seed=seed) as api:
        api.fault_429, api.fault_500, api.fault_drop = 0.2, 0.2, 0.2
        backend = _backend(api)
        seen = []
        for _ in range(30):
            try:
                backend.generate(_req())
                seen.append("ok")
            except RateLimited:
                seen.append("429")
            except TransientError:
                seen.append("transient")
        assert api.billable == seen.count("ok")
        return seen


def test_fake_faults_are_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    first = _outcomes(5)
    assert first == _outcomes(5)
    assert {"ok", "429", "transient"} <= set(first)
